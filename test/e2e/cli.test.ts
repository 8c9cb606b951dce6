/**
 * The command line itself: `--help` and `--version`, a vassal run from a JSON or XML file
 * (`emperor --json FILE`, `emperor --xml FILE`, as `uwsgi --json/--xml`), SIGINT to
 * the emperor (Ctrl-C in a terminal) stopping every vassal before it exits, its own
 * errors as one plain line, and shell completion.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { promisify } from 'node:util';
import { EMPEROR_BIN, FIXTURES, ROOT, descendants, freePort, isAlive, serving, spawnEmperor, tempDir, waitFor } from '../helpers/index.js';

const run = promisify(execFile);
const APP = join(FIXTURES, 'apps', 'basic.mjs');

/** `emperor ARGS` to its end: exit code, stdout, stderr (JSON log lines would show here). */
function emperor(args: readonly string[], cwd?: string): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [EMPEROR_BIN, ...args], { encoding: 'utf8', timeout: 30_000, ...(cwd === undefined ? {} : { cwd }), env: { ...process.env, EMPEROR_LOG_STYLE: 'json' } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

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

test('--help points to the manual and to docs by absolute paths that exist, never a relative one (issue 22, point 8)', async () => {
  for (const cwd of [ROOT, '/']) {
    const { stdout } = await run(process.execPath, [EMPEROR_BIN, '--help'], { cwd });
    assert.match(stdout, /Manual: man emperor/);
    const paths = [...stdout.matchAll(/(\S*docs\/\S*?)[,.;)]?(?:\s|$)/g)].map((m) => m[1] as string);
    assert.ok(paths.length > 0, `--help names the docs:\n${stdout}`);
    for (const path of paths) {
      assert.ok(isAbsolute(path), `${path} is absolute (from ${cwd})`);
      assert.ok(existsSync(path), `${path} exists`);
    }
    for (const guide of [...stdout.matchAll(/\b([a-z-]+\.md)\b/g)].map((m) => m[1] as string)) assert.ok(existsSync(join(ROOT, 'docs', guide)), guide);
  }
});

test('a mistyped command suggests the right one; the command line\'s own errors are one plain line on stderr (issue 22, point 5)', (t) => {
  const dir = tempDir(t);
  const cases: [args: string[], code: number, line: string][] = [
    [['stat', '127.0.0.1:9191'], 2, 'emperor: unknown command "stat"; did you mean stats? (see emperor --help)'],
    [['chek', 'app.ini'], 2, 'emperor: unknown command "chek"; did you mean check? (see emperor --help)'],
    [['app.ini'], 2, 'emperor: unknown command "app.ini"; to run a file, give it with its format: emperor --ini app.ini'],
    [['--ini'], 2, 'emperor: --ini needs a value; see emperor --help'],
    [['check'], 2, 'emperor: check: missing <files..> (INI, XML or JSON files); see emperor check --help'],
    [['top'], 2, 'emperor: top: missing <address> (host:port, a unix socket path, @abstract, or http://...); see emperor top --help'],
    [['top', '127.0.0.1:1', '--interval', 'fast'], 2, 'emperor: top: --interval: expected seconds >= 0.1, got "fast"'],
    [['--ini', join(dir, 'missing.ini')], 78, `emperor: ${join(dir, 'missing.ini')}: cannot read: no such file`],
  ];
  writeFileSync(join(dir, 'bad.ini'), `[uwsgi]\nhttp-socket = 127.0.0.1:1\nmodule = ${APP}\nharakiri = ten\n`);
  cases.push([['--ini', join(dir, 'bad.ini')], 78, `emperor: ${join(dir, 'bad.ini')}:4: harakiri: expected whole seconds >= 0, got "ten"`]);
  writeFileSync(join(dir, 'bad.xml'), '<uwsgi>\n  <http-socket>127.0.0.1:1</http-socket>\n  <processes>4\n</uwsgi>\n');
  cases.push([['--xml', join(dir, 'bad.xml')], 78, `emperor: ${join(dir, 'bad.xml')}:3: <processes> is not closed (</uwsgi> on line 4 comes first)`]);
  writeFileSync(join(dir, 'emperor.ini'), '[uwsgi]\nemperor = /etc/emperor.d\nemperor-freq = often\n');
  cases.push([['--ini', join(dir, 'emperor.ini')], 78, `emperor: ${join(dir, 'emperor.ini')}:3: emperor-freq: expected whole seconds >= 1, got "often"`]);
  for (const [args, code, line] of cases) {
    const r = emperor(args);
    assert.deepEqual([r.code, r.stderr, r.stdout], [code, `${line}\n`, ''], `emperor ${args.join(' ')}`);
  }
  // Options alone that make no vassal: the error, then the flag that is no option at all.
  const r = emperor(['--intervall', '5']);
  assert.deepEqual([r.code, r.stderr], [78, 'emperor: <command line>: no app: set module (a .js file for Node, a Python module) or wsgi-file\nemperor: --intervall: unknown option\n']);
});

test('emperor completion: bash completes the commands, their flags and every option name (issue 22)', async (t) => {
  const dir = tempDir(t);
  const script = (await run(process.execPath, [EMPEROR_BIN, 'completion'])).stdout;
  assert.match(script, /complete -o bashdefault -o default -F _emperor_yargs_completions emperor/);
  // The script runs `emperor`, as installed on PATH.
  mkdirSync(join(dir, 'bin'));
  writeFileSync(join(dir, 'bin', 'emperor'), `#!/bin/sh\nexec ${JSON.stringify(process.execPath)} ${JSON.stringify(EMPEROR_BIN)} "$@"\n`, { mode: 0o755 });
  writeFileSync(join(dir, 'completion.bash'), script);
  const complete = (words: string[]): string[] => {
    const line = `source ${JSON.stringify(join(dir, 'completion.bash'))}; COMP_WORDS=(${words.map((w) => JSON.stringify(w)).join(' ')}); COMP_CWORD=${words.length - 1}; _emperor_yargs_completions; printf '%s\\n' "\${COMPREPLY[@]}"`;
    const out = spawnSync('bash', ['-c', line], { encoding: 'utf8', env: { ...process.env, PATH: `${join(dir, 'bin')}:${process.env.PATH ?? ''}` } });
    assert.equal(out.status, 0, out.stderr);
    return out.stdout.split('\n').filter((w) => w !== '');
  };
  assert.deepEqual(complete(['emperor', 'st']), ['stats']);
  assert.deepEqual(complete(['emperor', 'c']).sort(), ['check', 'completion']);
  assert.deepEqual(complete(['emperor', '--harak']).sort(), ['--harakiri', '--harakiri-verbose']);
  assert.ok(complete(['emperor', '--log-s']).includes('--log-style'));
  assert.ok(complete(['emperor', 'check', '--']).includes('--print'));
  assert.deepEqual(complete(['emperor', '--ini', '']), [], 'after --ini: no words, so bash completes file names');
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
