/**
 * End to end: a vassal directory maintained like a Kubernetes ConfigMap volume. The
 * user-visible files are symlinks `x.ini -> ..data/x.ini`, and `..data` is a symlink to a
 * timestamped directory that a deploy replaces with one atomic rename.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, renameSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  FIXTURES,
  freePort,
  httpGet,
  isAlive,
  spawnEmperor,
  statsOf,
  tempDir,
  waitFor,
  type EmperorStatsDoc,
  type VassalStatsDoc,
} from '../helpers/index.js';

const APP = join(FIXTURES, 'apps', 'basic.mjs');

function ini(port: number, color: string): string {
  return `[uwsgi]\nhttp-socket = 127.0.0.1:${port}\nmodule = ${APP}\nprocesses = 1\nenv = COLOR=${color}\nstats = %d%n.stats\n`;
}

/** Writes a new timestamped version and points `..data` at it atomically, as the kubelet does. */
function publish(dir: string, version: string, files: Record<string, string>): void {
  const target = join(dir, `..${version}`);
  mkdirSync(target);
  for (const [name, text] of Object.entries(files)) writeFileSync(join(target, name), text);
  symlinkSync(`..${version}`, join(dir, '..data_tmp'));
  renameSync(join(dir, '..data_tmp'), join(dir, '..data'));
}

/**
 * Waits until the vassal on `port` answers with `COLOR=expected`. The deadline is long
 * because the suite runs two files at once, and the 30-vassal test can hold both CPUs.
 */
async function color(port: number, expected: string): Promise<void> {
  await waitFor(async () => (await httpGet(`http://127.0.0.1:${port}/env?k=COLOR`)).body === expected, {
    message: `COLOR=${expected} on port ${port}`,
    timeoutMs: 30_000,
  });
}

async function workers(dir: string, name: string): Promise<VassalStatsDoc> {
  return waitFor(async () => {
    const s = await statsOf<VassalStatsDoc>(join(dir, `${name}.stats`));
    return s.workers.length === 1 && s.workers.every((w) => w.accepting === 1) ? s : undefined;
  }, { message: `${name} accepting`, timeoutMs: 30_000 });
}

test('after a ConfigMap-style symlink swap exactly the changed vassals reload, removed ones stop, new ones start, unchanged keep their pids', async (t) => {
  const dir = tempDir(t);
  const [pa, pb, pc, pd] = [await freePort(), await freePort(), await freePort(), await freePort()];
  publish(dir, '2024_01_01_v1', { 'a.ini': ini(pa, 'red'), 'b.ini': ini(pb, 'red'), 'c.ini': ini(pc, 'red') });
  for (const name of ['a.ini', 'b.ini', 'c.ini']) symlinkSync(`..data/${name}`, join(dir, name));
  const stats = join(tempDir(t), 'emperor.stats');
  const emperor = spawnEmperor(t, ['--emperor', dir, '--emperor-stats', stats, '--emperor-freq', '1']);
  const [a, b, c] = [await workers(dir, 'a'), await workers(dir, 'b'), await workers(dir, 'c')];

  publish(dir, '2024_01_02_v2', { 'a.ini': ini(pa, 'red'), 'b.ini': ini(pb, 'blue'), 'd.ini': ini(pd, 'green') });
  symlinkSync('..data/d.ini', join(dir, 'd.ini'));
  unlinkSync(join(dir, 'c.ini'));
  rmSync(join(dir, '..2024_01_01_v1'), { recursive: true });

  await color(pb, 'blue');
  await color(pd, 'green');
  await waitFor(() => !isAlive(c.pid), { message: 'c.ini master gone' });
  await assert.rejects(httpGet(`http://127.0.0.1:${pc}/`), 'c.ini port closed');

  const b2 = await workers(dir, 'b');
  assert.equal(b2.pid, b.pid, 'b.ini: same master, reloaded');
  assert.notEqual(b2.workers[0]?.pid, b.workers[0]?.pid, 'b.ini: new worker');
  const a2 = await workers(dir, 'a');
  assert.equal(a2.pid, a.pid, 'a.ini: same master');
  assert.equal(a2.workers[0]?.pid, a.workers[0]?.pid, 'a.ini: same worker, not reloaded');
  await color(pa, 'red');
  const doc = await statsOf<EmperorStatsDoc>(stats);
  assert.deepEqual(doc.vassals.map((v) => [v.id, v.respawns]), [['a.ini', 0], ['b.ini', 1], ['d.ini', 0]]);
  assert.equal(emperor.logs.find((l) => /^reloading vassal/.test(l.msg ?? '')).map((l) => l.vassal).join(','), 'b.ini');
});
