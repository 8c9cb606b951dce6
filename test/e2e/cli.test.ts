/**
 * The command line itself: `--help` and `--version`, a vassal run from a JSON or XML file
 * (`emperor --json FILE`, `emperor --xml FILE`, as `uwsgi --json/--xml`), and SIGINT to
 * the emperor (Ctrl-C in a terminal) stopping every vassal before it exits.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { EMPEROR_BIN, FIXTURES, ROOT, descendants, freePort, isAlive, serving, spawnEmperor, tempDir, waitFor } from '../helpers/index.js';

const run = promisify(execFile);
const APP = join(FIXTURES, 'apps', 'basic.mjs');

test('--help lists the commands, options and examples; each command has its own --help; --version is the package version', async () => {
  const help = await run(process.execPath, [EMPEROR_BIN, '--help']);
  for (const expected of ['emperor stats <address>', 'emperor top <address>', 'emperor check <files..>', '--emperor-stats', 'Examples:', 'emperor --ini emperor.d/hello.ini']) {
    assert.ok(help.stdout.includes(expected), `--help shows ${expected}`);
  }
  for (const [command, expected] of [['top', '--interval'], ['stats', '--json'], ['check', '--print']] as const) {
    const out = (await run(process.execPath, [EMPEROR_BIN, command, '--help'])).stdout;
    assert.ok(out.includes(expected) && out.includes('Examples:'), `emperor ${command} --help shows ${expected} and examples:\n${out}`);
  }
  const { version } = JSON.parse(readFileSync(join(ROOT, 'packages', 'cli', 'package.json'), 'utf8')) as { version: string };
  assert.equal((await run(process.execPath, [EMPEROR_BIN, '--version'])).stdout.trim(), version);
});

test('a mistyped command-line flag: one warning naming it and the likely option, and the vassal serves', async (t) => {
  const port = await freePort();
  const v = spawnEmperor(t, ['--http-socket', `127.0.0.1:${port}`, '--module', APP, '--procesess', '2']);
  await serving(`http://127.0.0.1:${port}/`);
  const warning = await v.logs.waitFor((l) => (l.msg ?? '').includes('procesess'), { message: 'the warning' });
  assert.match(warning.msg ?? '', /procesess: unknown option; ignored; did you mean "processes"\?/);
});

test('a vassal from a JSON file and one from an XML file run standalone, as uwsgi --json/--xml', async (t) => {
  const dir = tempDir(t);
  const [jsonPort, xmlPort] = [await freePort(), await freePort()];
  writeFileSync(join(dir, 'app.json'), JSON.stringify({ uwsgi: { 'http-socket': `127.0.0.1:${jsonPort}`, module: APP, processes: 2 } }));
  writeFileSync(join(dir, 'app.xml'), `<uwsgi>\n  <http-socket>127.0.0.1:${xmlPort}</http-socket>\n  <module>${APP}</module>\n</uwsgi>\n`);
  const fromJson = spawnEmperor(t, ['--json', join(dir, 'app.json')]);
  const fromXml = spawnEmperor(t, ['--xml', join(dir, 'app.xml')]);
  assert.match(await serving(`http://127.0.0.1:${jsonPort}/`), /^pid \d+/);
  assert.match(await serving(`http://127.0.0.1:${xmlPort}/`), /^pid \d+/);
  const workers = await waitFor(() => (descendants(fromJson.pid).length >= 2 ? descendants(fromJson.pid) : undefined), { message: 'processes = 2 from the JSON file' });
  assert.equal(workers.length, 2);
  assert.ok(isAlive(fromXml.pid));
});

test('SIGINT to the emperor stops every vassal, then the emperor exits 0', async (t) => {
  const dir = tempDir(t);
  const ports = [await freePort(), await freePort()];
  ports.forEach((port, i) => writeFileSync(join(dir, `v${i}.ini`), `[uwsgi]\nhttp-socket = 127.0.0.1:${port}\nmodule = ${APP}\n`));
  const emperor = spawnEmperor(t, ['--emperor', dir]);
  for (const port of ports) await serving(`http://127.0.0.1:${port}/`);
  const tree = await waitFor(() => (descendants(emperor.pid).length >= 4 ? descendants(emperor.pid) : undefined), { message: 'two masters and two workers' });
  process.kill(emperor.pid, 'SIGINT');
  assert.deepEqual(await emperor.exited, { code: 0, signal: null });
  assert.equal(emperor.logs.find((l) => /SIGINT received/.test(l.msg ?? '')).length, 1, 'the signal is logged once');
  assert.deepEqual(tree.filter(isAlive), [], 'no master or worker outlives the emperor');
});
