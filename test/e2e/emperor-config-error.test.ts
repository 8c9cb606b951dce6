/**
 * End to end: a vassal whose file is invalid shows the error itself as its `last_error`
 * in the emperor's stats (file, line, option, reason), in the JSON and in `emperor stats`,
 * not "invalid vassal file (see the error logged above)" (issue 22, point 3).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { chmodSync, chownSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { EMPEROR_BIN, FIXTURES, freePort, serving, spawnEmperor, statsOf, tempDir, waitFor, type EmperorStatsDoc } from '../helpers/index.js';

const run = promisify(execFile);
const APP = join(FIXTURES, 'apps', 'basic.mjs');

/** The emperor stats document once `name` is in `config-error` with a last error; fails after 15 s. */
function configError(stats: string, name: string): Promise<EmperorStatsDoc['vassals'][number]> {
  return waitFor(async () => {
    const v = (await statsOf<EmperorStatsDoc>(stats)).vassals.find((x) => x.id === name);
    return v?.state === 'config-error' && v.last_error !== '' ? v : undefined;
  }, { message: `${name} in config-error`, timeoutMs: 15_000 });
}

test('an invalid vassal file: its last_error is the error itself, in the stats JSON and in emperor stats', async (t) => {
  const dir = tempDir(t);
  const port = await freePort();
  const bad = join(dir, 'shop.ini');
  writeFileSync(bad, `[uwsgi]\nhttp-socket = 127.0.0.1:${port}\nmodule = ${APP}\nharakiri = ten\n`);
  const broken = join(dir, 'blog.xml');
  writeFileSync(broken, `<uwsgi>\n  <http-socket>127.0.0.1:${port}</http-socket>\n  <processes>4\n</uwsgi>\n`);
  const stats = join(dir, 'emperor.stats');
  const emperor = spawnEmperor(t, ['--emperor', dir, '--emperor-stats', stats]);

  const shop = await configError(stats, 'shop.ini');
  assert.equal(shop.last_error, `${bad}:4: harakiri: expected whole seconds >= 0, got "ten"`);
  const blog = await configError(stats, 'blog.xml');
  assert.equal(blog.last_error, `${broken}:3: <processes> is not closed (</uwsgi> on line 4 comes first)`);
  // In the log, the error is the master's one line; the emperor adds that it waits.
  await emperor.logs.waitFor((l) => /vassal shop\.ini has an invalid file; waiting for it to change/.test(l.msg ?? ''), { message: 'the emperor\'s line' });
  assert.equal(emperor.logs.find((l) => (l.msg ?? '').includes('harakiri: expected whole seconds')).length, 1, 'the error is logged once');

  // `emperor stats` shows it as text too, whole.
  const { stdout } = await run(process.execPath, [EMPEROR_BIN, 'stats', stats]);
  assert.match(stdout, new RegExp(`^shop\\.ini\\s+config-error\\s.*${bad.replaceAll('.', '\\.')}:4: harakiri: expected whole seconds >= 0, got "ten"$`, 'm'));

  // Fixed: the vassal runs and its error is gone.
  writeFileSync(bad, `[uwsgi]\nhttp-socket = 127.0.0.1:${port}\nmodule = ${APP}\nharakiri = 10\n`);
  await serving(`http://127.0.0.1:${port}/`);
  const fixed = await waitFor(async () => {
    const v = (await statsOf<EmperorStatsDoc>(stats)).vassals.find((x) => x.id === 'shop.ini');
    return v?.state === 'ready' ? v : undefined;
  }, { message: 'shop.ini ready' });
  assert.equal(fixed.last_error, '');
});

test('tyrant mode: a uid other than the file\'s owner is the vassal\'s last_error, with its line', { skip: process.getuid?.() !== 0 ? 'needs root (tyrant mode)' : false }, async (t) => {
  const dir = tempDir(t);
  chmodSync(dir, 0o755);
  const port = await freePort();
  const file = join(dir, 'shop.ini');
  writeFileSync(file, `[uwsgi]\nhttp-socket = 127.0.0.1:${port}\nmodule = ${APP}\nuid = nobody\n`);
  const wwwData = Number(execFileSync('id', ['-u', 'www-data'], { encoding: 'utf8' }).trim());
  const wwwGroup = Number(execFileSync('id', ['-g', 'www-data'], { encoding: 'utf8' }).trim());
  chownSync(file, wwwData, wwwGroup);
  const stats = join(dir, 'emperor.stats');
  spawnEmperor(t, ['--emperor', dir, '--emperor-stats', stats, '--emperor-tyrant']);
  const v = await configError(stats, 'shop.ini');
  assert.match(v.last_error, new RegExp(`^${file.replaceAll('.', '\\.')}:4: uid: tyrant mode runs this vassal as the owner of shop\\.ini \\(uid ${wwwData}, gid ${wwwGroup}\\); uid = "nobody" is \\d+\\.`));
});
