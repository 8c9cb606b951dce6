/**
 * End to end: tyrant mode (`emperor-tyrant`) with files owned by real users. Needs root
 * (CI runs as root) to chown files to `nobody` and `daemon` and to start vassals as them.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, chownSync, lchownSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  FIXTURES,
  descendants,
  freePort,
  httpGet,
  isAlive,
  procStatus,
  serving,
  spawnEmperor,
  statsOf,
  tempDir,
  waitFor,
  type EmperorStatsDoc,
  type Spawned,
} from '../helpers/index.js';

const skip = process.getuid?.() !== 0 ? 'tyrant mode needs root' : false;
const APP = join(FIXTURES, 'apps', 'basic.mjs');
const NOBODY = 65534;
const DAEMON = 1;

function vassalIni(port: number, extra = ''): string {
  return `[uwsgi]\nhttp-socket = 127.0.0.1:${port}\nmodule = ${APP}\nprocesses = 1\n${extra}`;
}

/** A world-readable temp dir (the masters run as the files' owners and must read it). */
function openDir(t: TestContext): string {
  const dir = tempDir(t, 'emperor-tyrant-');
  chmodSync(dir, 0o755);
  return dir;
}

/** The emperor in tyrant mode on `dir`, its stats on a unix socket in a dir of its own. */
function tyrantEmperor(t: TestContext, dir: string, extra: readonly string[] = []): { emperor: Spawned; stats: string } {
  const stats = join(tempDir(t, 'emperor-stats-'), 'emperor.stats');
  const emperor = spawnEmperor(t, ['--emperor', dir, '--emperor-tyrant', '--emperor-stats', stats, '--emperor-freq', '1', ...extra]);
  return { emperor, stats };
}

async function vassal(stats: string, id: string, predicate: (v: EmperorStatsDoc['vassals'][number]) => boolean, message: string) {
  return waitFor(async () => {
    const doc = await statsOf<EmperorStatsDoc>(stats);
    const v = doc.vassals.find((x) => x.id === id);
    return v !== undefined && predicate(v) ? v : undefined;
  }, { message: `${id}: ${message}`, timeoutMs: 20_000 });
}

/** Asserts that `pid` and every descendant run as uid:gid with no supplementary groups. */
function assertRunsAs(pid: number, uid: number, gid: number): void {
  for (const p of [pid, ...descendants(pid)]) {
    assert.match(procStatus(p, 'Uid') ?? '', new RegExp(`^${uid}\\s+${uid}\\s+${uid}\\s+${uid}$`), `uid of ${p}`);
    assert.match(procStatus(p, 'Gid') ?? '', new RegExp(`^${gid}\\s+${gid}\\s+${gid}\\s+${gid}$`), `gid of ${p}`);
    assert.equal(procStatus(p, 'Groups'), '', `no supplementary groups in ${p}`);
  }
}

const refusals = (emperor: Spawned, name: string) =>
  emperor.logs.find((l) => l.code === 'ERR_TYRANT' && typeof l.msg === 'string' && l.msg.includes(`/${name}: refused`));

test('files owned by uid 0 or gid 0 are refused once, with the rule and the owner; others run as their owner', { skip }, async (t) => {
  const dir = openDir(t);
  const [pRoot, pGid0, pOk, pLater] = [await freePort(), await freePort(), await freePort(), await freePort()];
  writeFileSync(join(dir, 'root.ini'), vassalIni(pRoot));
  writeFileSync(join(dir, 'gid0.ini'), vassalIni(pGid0));
  chownSync(join(dir, 'gid0.ini'), NOBODY, 0);
  writeFileSync(join(dir, 'ok.ini'), vassalIni(pOk));
  chownSync(join(dir, 'ok.ini'), NOBODY, NOBODY);
  const { emperor, stats } = tyrantEmperor(t, dir);

  const ok = await vassal(stats, 'ok.ini', (v) => v.ready === 1, 'ready');
  await serving(`http://127.0.0.1:${pOk}/`);
  assertRunsAs(ok.pid, NOBODY, NOBODY);
  await emperor.logs.waitFor(() => refusals(emperor, 'gid0.ini').length > 0, { message: 'gid0.ini refused' });
  const root = refusals(emperor, 'root.ini')[0];
  assert.ok(root, emperor.logs.tail());
  assert.match(root.msg ?? '', /root\.ini: refused: it is owned by uid 0 \(root\) gid 0 \(root\)\. In tyrant mode a vassal runs as the owner of its file, and a file owned by uid 0 or gid 0 would run as root; chown/);
  assert.match(refusals(emperor, 'gid0.ini')[0]?.msg ?? '', /owned by uid 65534 \(nobody\) gid 0 \(root\)/);

  // Later scans do not repeat the refusals: the scan that found later.ini (and the 1 s
  // rescans while it started) judged root.ini and gid0.ini again.
  writeFileSync(join(dir, 'later.ini'), vassalIni(pLater));
  chownSync(join(dir, 'later.ini'), DAEMON, DAEMON);
  const later = await vassal(stats, 'later.ini', (v) => v.ready === 1, 'ready');
  assertRunsAs(later.pid, DAEMON, DAEMON);
  assert.equal(refusals(emperor, 'root.ini').length, 1, emperor.logs.tail());
  assert.equal(refusals(emperor, 'gid0.ini').length, 1, emperor.logs.tail());
  const doc = await statsOf<EmperorStatsDoc>(stats);
  assert.deepEqual(doc.vassals.map((v) => v.id).sort(), ['later.ini', 'ok.ini'], 'refused files are not vassals');
  await assert.rejects(httpGet(`http://127.0.0.1:${pRoot}/`), 'the root-owned vassal never ran');

  // Re-evaluated when the owner changes: chowned to nobody, it runs as nobody.
  chownSync(join(dir, 'root.ini'), NOBODY, NOBODY);
  const fixed = await vassal(stats, 'root.ini', (v) => v.ready === 1, 'ready once chowned');
  assertRunsAs(fixed.pid, NOBODY, NOBODY);
  await serving(`http://127.0.0.1:${pRoot}/`);
});

test('a uid/gid option that differs from the owner is refused, from the file, a placeholder or vassals-inherit', { skip }, async (t) => {
  const dir = openDir(t);
  const inheritDir = openDir(t);
  const inherit = join(inheritDir, 'base.ini');
  writeFileSync(inherit, '[uwsgi]\nuid = root\n');
  const [p1, p2, p3, p4] = [await freePort(), await freePort(), await freePort(), await freePort()];
  const files: [string, string][] = [
    ['uid.ini', vassalIni(p1, 'uid = daemon\n')],
    ['placeholder.ini', vassalIni(p2, 'who = 0\ngid = %(who)\n')],
    ['same.ini', vassalIni(p3, 'uid = nobody\ngid = nogroup\n')],
  ];
  for (const [name, text] of files) {
    writeFileSync(join(dir, name), text);
    chownSync(join(dir, name), NOBODY, NOBODY);
  }
  const { emperor, stats } = tyrantEmperor(t, dir);
  const uid = await vassal(stats, 'uid.ini', (v) => v.state === 'config-error', 'config-error');
  assert.equal(uid.pid, -1);
  await vassal(stats, 'placeholder.ini', (v) => v.state === 'config-error', 'config-error');
  const same = await vassal(stats, 'same.ini', (v) => v.ready === 1, 'asking for its own owner is fine');
  assertRunsAs(same.pid, NOBODY, NOBODY);
  const uidError = await emperor.logs.waitFor((l) => l.code === 'ERR_TYRANT' && l.vassal === 'uid.ini', { message: 'the uid.ini error' });
  assert.match(uidError.msg ?? '', /uid\.ini:5: uid: tyrant mode runs this vassal as the owner of uid\.ini \(uid 65534, gid 65534\); uid = "daemon" is 1\./);
  const phError = await emperor.logs.waitFor((l) => l.code === 'ERR_TYRANT' && l.vassal === 'placeholder.ini', { message: 'the placeholder.ini error' });
  assert.match(phError.msg ?? '', /placeholder\.ini:6: gid: .*gid = "0" is 0/);
  // Not a crash loop: it waits for the file to change.
  assert.equal(emperor.logs.find((l) => l.msg?.startsWith('vassal uid.ini started') === true).length, 1);

  // vassals-inherit cannot set it either (a second emperor, its own dir).
  const dir2 = openDir(t);
  writeFileSync(join(dir2, 'inherits.ini'), vassalIni(p4));
  chownSync(join(dir2, 'inherits.ini'), NOBODY, NOBODY);
  const second = tyrantEmperor(t, dir2, ['--vassals-inherit', inherit]);
  await vassal(second.stats, 'inherits.ini', (v) => v.state === 'config-error', 'config-error');
  const inheritError = await second.emperor.logs.waitFor((l) => l.code === 'ERR_TYRANT', { message: 'the inherited uid error' });
  assert.match(inheritError.msg ?? '', new RegExp(`${inherit.replace(/[.]/g, '\\.')}:2: uid: tyrant mode runs this vassal as the owner of inherits\\.ini`));
});

test('a symlink is judged by its target\'s owner, or by its own with emperor-tyrant-nofollow', { skip }, async (t) => {
  const dir = openDir(t);
  const targets = openDir(t);
  const [p1, p2] = [await freePort(), await freePort()];
  mkdirSync(join(targets, 'daemon'), { mode: 0o755 });
  const target = join(targets, 'daemon', 'app.ini');
  writeFileSync(target, vassalIni(p1));
  chownSync(target, DAEMON, DAEMON);
  symlinkSync(target, join(dir, 'linked.ini')); // the link itself belongs to root

  const { stats } = tyrantEmperor(t, dir);
  const followed = await vassal(stats, 'linked.ini', (v) => v.ready === 1, 'ready as the target\'s owner');
  assertRunsAs(followed.pid, DAEMON, DAEMON);

  const dir2 = openDir(t);
  const target2 = join(targets, 'app2.ini');
  writeFileSync(target2, vassalIni(p2));
  chownSync(target2, DAEMON, DAEMON);
  symlinkSync(target2, join(dir2, 'linked.ini'));
  const nofollow = tyrantEmperor(t, dir2, ['--emperor-tyrant-nofollow']);
  const refused = await nofollow.emperor.logs.waitFor((l) => l.code === 'ERR_TYRANT', { message: 'the root-owned link refused' });
  assert.match(refused.msg ?? '', /linked\.ini: refused: the symlink is owned by uid 0/);
  lchownSync(join(dir2, 'linked.ini'), NOBODY, NOBODY);
  const own = await vassal(nofollow.stats, 'linked.ini', (v) => v.ready === 1, 'ready as the link\'s owner');
  assertRunsAs(own.pid, NOBODY, NOBODY);
  await serving(`http://127.0.0.1:${p2}/`);
});

test('an owner change stops the running vassal; it comes back only as an allowed owner', { skip }, async (t) => {
  const dir = openDir(t);
  const port = await freePort();
  const file = join(dir, 'moving.ini');
  writeFileSync(file, vassalIni(port));
  chownSync(file, NOBODY, NOBODY);
  const { emperor, stats } = tyrantEmperor(t, dir);
  const first = await vassal(stats, 'moving.ini', (v) => v.ready === 1, 'ready');
  const firstTree = [first.pid, ...descendants(first.pid)];

  chownSync(file, DAEMON, DAEMON);
  const second = await vassal(stats, 'moving.ini', (v) => v.ready === 1 && v.pid !== first.pid, 'restarted as daemon');
  for (const pid of firstTree) assert.ok(!isAlive(pid), `old process ${pid} gone`);
  assertRunsAs(second.pid, DAEMON, DAEMON);
  assert.equal(emperor.logs.find((l) => /owner changed from uid 65534 gid 65534; stopping vassal moving\.ini/.test(l.msg ?? '')).length, 1);
  await serving(`http://127.0.0.1:${port}/`);

  const secondTree = [second.pid, ...descendants(second.pid)];
  chownSync(file, 0, 0);
  await emperor.logs.waitFor(() => refusals(emperor, 'moving.ini').length > 0, { message: 'refused once root-owned' });
  for (const pid of secondTree) await waitFor(() => !isAlive(pid), { message: `process ${pid} stopped` });
  await waitFor(async () => (await statsOf<EmperorStatsDoc>(stats)).vassals.length === 0, { message: 'no vassal left' });
  await assert.rejects(httpGet(`http://127.0.0.1:${port}/`), 'port closed');
});
