import { test } from 'node:test';
import assert from 'node:assert/strict';
import { judgeTyrant, readVassalRows, reconcile, sameRowVersion, tsToMs, vassalOrigin, type KnownVassal, type VassalFile, type VassalRow } from '@emperor/emperor';

type Values = Array<string | null>;

function rows(values: Values[], columns = values[0]?.length ?? 3, previous: ReadonlyMap<string, VassalRow> = new Map(), tyrant = false) {
  const read = readVassalRows(values, columns, previous, { tyrant });
  assert.ok(read.ok, read.ok ? '' : read.problem);
  return read;
}

test('columns by position, as uWSGI reads them: name, config, ts; the format from the name', () => {
  const read = rows([
    ['shop.ini', '[uwsgi]\n', '1796565095.800382'],
    ['blog.xml', '<uwsgi/>', '2026-12-06 13:51:35.800382+00'],
    ['api.json', null, null],
  ]);
  assert.deepEqual(read.problems, []);
  assert.deepEqual([...read.rows.values()].map((r) => [r.name, r.format, r.config, r.ts, r.tsMs, r.uid, r.gid, r.socket]), [
    ['shop.ini', 'ini', '[uwsgi]\n', '1796565095.800382', 1796565095800, undefined, undefined, ''],
    ['blog.xml', 'xml', '<uwsgi/>', '2026-12-06 13:51:35.800382+00', Date.UTC(2026, 11, 6, 13, 51, 35, 800), undefined, undefined, ''],
    ['api.json', 'json', '', '', 0, undefined, undefined, ''],
  ]);
});

test('a result with too few columns is refused as a whole (nothing in it is applied)', () => {
  assert.deepEqual(readVassalRows([['a.ini', 'x']], 2, new Map(), { tyrant: false }), {
    ok: false, problem: 'the query returns 2 column(s); it must return name, config and ts first (uWSGI\'s emperor-pg shape)',
  });
  assert.deepEqual(readVassalRows([['a.ini', 'x', '1']], 3, new Map(), { tyrant: true }), {
    ok: false, problem: 'tyrant mode needs uid and gid as the 4th and 5th columns of the query, which returns 3',
  });
  assert.ok(readVassalRows([], 3, new Map(), { tyrant: false }).ok, 'no rows is a valid result: every vassal goes');
});

test('rows that cannot be vassals: one problem each, naming the row; the first of two with one name counts', () => {
  const read = rows([
    [null, 'x', '1'],
    ['readme.txt', 'x', '1'],
    ['app.yaml', 'x', '1'],
    ['../etc/x.ini', 'x', '1'],
    ['.hidden.ini', 'x', '1'],
    ['a.ini', 'first', '1'],
    ['a.ini', 'second', '2'],
  ]);
  assert.deepEqual([...read.rows.keys()], ['a.ini']);
  assert.equal(read.rows.get('a.ini')?.config, 'first');
  assert.deepEqual(read.problems.map((p) => p.message), [
    'row 1: the name is NULL; ignored',
    'row "readme.txt": not a vassal name (a vassal name ends in .ini, .xml or .json, has no "/" and no control characters, does not start with "." and is under 255 bytes); ignored',
    'row "app.yaml": not a vassal name (YAML vassals are not supported; use INI, XML or JSON); ignored',
    'row "../etc/x.ini": not a vassal name (a vassal name ends in .ini, .xml or .json, has no "/" and no control characters, does not start with "." and is under 255 bytes); ignored',
    'row ".hidden.ini": not a vassal name (a vassal name ends in .ini, .xml or .json, has no "/" and no control characters, does not start with "." and is under 255 bytes); ignored',
    'row "a.ini": another row has the same name; only the first one counts',
  ]);
  assert.equal(new Set(read.problems.map((p) => p.key)).size, read.problems.length, 'each problem has its own key');
});

test('tyrant mode: uid and gid columns; a bad one keeps the running vassal\'s previous row, or does not start it', () => {
  const first = rows([['a.ini', 'x', '1', '1000', '1000'], ['b.ini', 'x', '1', '1001', '1001']], 5, new Map(), true);
  assert.deepEqual([first.rows.get('a.ini')?.uid, first.rows.get('a.ini')?.gid], [1000, 1000]);
  const next = rows([['a.ini', 'y', '2', null, '1000'], ['b.ini', 'x', '1', '1001', '1001'], ['c.ini', 'x', '1', '-1', '5']], 5, first.rows, true);
  assert.equal(next.rows.get('a.ini'), first.rows.get('a.ini'), 'a.ini keeps its previous row');
  assert.equal(next.rows.has('c.ini'), false);
  assert.deepEqual(next.problems.map((p) => p.message), [
    'row "a.ini": uid: expected a number from 0 to 4294967294, got NULL; the vassal keeps its previous row',
    'row "c.ini": uid: expected a number from 0 to 4294967294, got "-1"; not started',
  ]);
  assert.equal(rows([['a.ini', 'x', '1', '0', '0']], 5, new Map(), true).rows.get('a.ini')?.uid, 0, 'uid 0 is read; tyrant mode refuses it later, as for a file');
  assert.equal(rows([['a.ini', 'x', '1', 'junk', 'junk']], 5).rows.get('a.ini')?.uid, undefined, 'outside tyrant mode the columns are not read (uWSGI)');
  assert.equal(rows([['a.ini', 'x', '1', null, null, '/run/a.sock']], 6).rows.get('a.ini')?.socket, '/run/a.sock');
});

test('a row\'s version is its ts (and its owner): the same ts is the same version whatever the config says', () => {
  const a = rows([['a.ini', 'one', '10']]).rows.get('a.ini') as VassalRow;
  const b = rows([['a.ini', 'two', '10']]).rows.get('a.ini') as VassalRow;
  const c = rows([['a.ini', 'one', '11']]).rows.get('a.ini') as VassalRow;
  assert.ok(sameRowVersion(a, b));
  assert.ok(!sameRowVersion(a, c));
  const owned = (uid: string) => rows([['a.ini', 'one', '10', uid, '1']], 5, new Map(), true).rows.get('a.ini') as VassalRow;
  assert.ok(!sameRowVersion(owned('1'), owned('2')));
});

test('ts as epoch seconds or a timestamp\'s text; anything else is 0 (still compared as text)', () => {
  assert.equal(tsToMs('1700000000'), 1_700_000_000_000);
  assert.equal(tsToMs('1700000000.5'), 1_700_000_000_500);
  assert.equal(tsToMs('2026-12-06 13:51:35+00'), Date.UTC(2026, 11, 6, 13, 51, 35));
  assert.equal(tsToMs('2026-12-06 14:51:35.25+01'), Date.UTC(2026, 11, 6, 13, 51, 35, 250));
  assert.equal(tsToMs(''), 0);
  assert.equal(tsToMs('version 3'), 0);
});

const rowFile = (name: string, uid: number, gid: number, path = `/run/emperor/emperor-pg-x/${name}`): VassalFile => ({
  name, path, format: 'ini', monitor: 'pg://dbname=fleet', kind: 'row', uid, gid,
  fingerprint: { dev: 0, ino: 0, mtimeMs: 1000, size: 10, hash: 'ts 1' },
});

test('tyrant mode judges a row by its uid and gid columns, with the same rule as a file owner', () => {
  const names = () => ({ user: undefined, group: undefined });
  const verdict = judgeTyrant(rowFile('shop.ini', 0, 1000), { emperorUid: 0, emperorGid: 0, nofollow: false, names });
  assert.equal(verdict.ok, false);
  if (!verdict.ok) {
    assert.equal(verdict.error.message,
      'row "shop.ini" of pg://dbname=fleet: refused: its uid and gid columns say uid 0 gid 1000. In tyrant mode a vassal runs as its row\'s uid and gid, and uid 0 or gid 0 would run it as root; set them to the app\'s user and group');
  }
  assert.deepEqual(judgeTyrant(rowFile('shop.ini', 1000, 1000), { emperorUid: 0, emperorGid: 0, nofollow: false, names }), { ok: true, identity: { uid: 1000, gid: 1000 } });
  assert.equal(vassalOrigin(rowFile('shop.ini', 1, 1)), 'row "shop.ini" of pg://dbname=fleet');
});

test('a name that moves to another source is a stop, then a start from the new one, never a reload', () => {
  const fromDir: VassalFile = { ...rowFile('a.ini', 1, 1, '/etc/emperor.d/a.ini'), kind: 'file', monitor: '/etc/emperor.d' };
  const known: KnownVassal = { name: 'a.ini', file: fromDir, stopping: false };
  assert.deepEqual(reconcile(new Map([['a.ini', rowFile('a.ini', 1, 1)]]), new Map([['a.ini', known]])), [{ kind: 'stop', name: 'a.ini', reason: 'source-changed' }]);
});
