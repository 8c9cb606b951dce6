import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bytes, duration, nextSort, renderTop, StatsShapeError, type TopSample } from '@emperor/cli';

const T0 = Date.UTC(2026, 10, 22, 3, 9, 30);

function worker(id: number, requests: number, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    id, pid: 1000 + id, accepting: 1, requests, delta_requests: requests, exceptions: 0, harakiri_count: 0, signals: 0, signal_queue: 0,
    status: 'idle', rss: 40 * 1024 * 1024, vsz: 710 * 1024 * 1024, running_time: requests * 500, last_spawn: T0 / 1000 - 60, respawn_count: 1,
    tx: requests * 100, avg_rt: 500, apps: [], cores: [], in_flight: 0, websockets: 0, last_exit_reason: '', runtime: 'node', ...extra,
  };
}

function vassalDoc(workers: Record<string, unknown>[]): Record<string, unknown> {
  return {
    version: '0.1.0', listen_queue: 3, listen_queue_errors: 0, signal_queue: 0, load: 3, pid: 999, uid: 1000, gid: 1000, cwd: '/srv',
    locks: [], sockets: [{ name: '127.0.0.1:8080', proto: 'http', queue: 3, max_queue: 100, shared: 0, can_offload: 0 }],
    workers, vassal: 'shop.ini', state: 'ready',
  };
}

const sample = (doc: unknown, atMs = T0): TopSample => ({ doc, atMs });
const wide = { width: Infinity, height: Infinity };

/** The table rows (after the header lines and the column header), as arrays of cells. */
function rows(screen: string): string[][] {
  const lines = screen.trimEnd().split('\n');
  const header = lines.findIndex((l) => /^\s*(WID|VASSAL)\b/.test(l));
  return lines.slice(header + 1).map((l) => l.trim().split(/\s{2,}/));
}

test('a vassal: totals, listen queue, one row per worker, requests per second from two samples', () => {
  const before = sample(vassalDoc([worker(1, 100), worker(2, 300)]), T0);
  const now = sample(vassalDoc([worker(1, 150, { status: 'busy' }), worker(2, 500)]), T0 + 2000);
  const screen = renderTop(now, before, wide);
  const lines = screen.split('\n');
  assert.match(lines[0] ?? '', /^shop\.ini · state ready · version 0\.1\.0 · master pid 999$/);
  assert.match(lines[1] ?? '', /^req\/s 125 · requests 650 · exceptions 0 · harakiri 0 · workers 2 \(1 busy, 1 idle\) · rss 80\.0M$/);
  assert.match(lines[2] ?? '', /^listen queue 3 · 127\.0\.0\.1:8080 http 3\/100$/);
  assert.match(screen, /^WID\s+%\s+PID\s+REQ\s+RPS\s+EXC\s+SIG\s+STATUS\s+AVG\s+RSS\s+VSZ\s+TX\s+ReSpwn\s+HC\s+RunT\s+LastSpwn$/m);
  const table = rows(screen);
  assert.deepEqual(table.map((r) => r.slice(0, 8)), [
    ['1', '23.1', '1001', '150', '25', '0', '0', 'busy'],
    ['2', '76.9', '1002', '500', '100', '0', '0', 'idle'],
  ]);
  assert.deepEqual(table[0]?.slice(8, 13), ['0.5ms', '40.0M', '710M', '14.6K', '1']);
});

test('without a previous sample requests per second are unknown, not zero', () => {
  const screen = renderTop(sample(vassalDoc([worker(1, 5)])), undefined, wide);
  assert.match(screen, /^req\/s - · /m);
  assert.equal(rows(screen)[0]?.[4], '-');
});

test('sorting: by any column, either way; s cycles the columns', () => {
  const doc = vassalDoc([worker(1, 10, { rss: 3e6 }), worker(2, 30, { rss: 1e6 }), worker(3, 20, { rss: 2e6 })]);
  const ids = (column: string, descending: boolean): string[] =>
    rows(renderTop(sample(doc), undefined, { ...wide, sort: { column, descending } })).map((r) => r[0] as string);
  assert.deepEqual(ids('WID', false), ['1', '2', '3']);
  assert.deepEqual(ids('REQ', true), ['2', '3', '1']);
  assert.deepEqual(ids('RSS', false), ['2', '3', '1']);
  assert.deepEqual(nextSort('vassal', undefined), { column: '%', descending: true }, 'the first s leaves the default order');
  assert.deepEqual(nextSort('vassal', { column: 'WID', descending: false }), { column: '%', descending: true });
  assert.deepEqual(nextSort('vassal', { column: 'LastSpwn', descending: true }), { column: 'WID', descending: false });
  assert.deepEqual(nextSort('emperor', { column: 'VASSAL', descending: false }), { column: 'STATE', descending: false });
});

test('a narrow terminal drops the least useful columns first and never exceeds its width', () => {
  const doc = vassalDoc([worker(1, 10), worker(2, 30)]);
  const screen = renderTop(sample(doc), undefined, { width: 60, height: 24, interactive: true });
  for (const line of screen.trimEnd().split('\n')) assert.ok(line.length <= 60, `${line.length}: ${line}`);
  const header = screen.split('\n').find((l) => l.trim().startsWith('WID')) ?? '';
  for (const kept of ['WID', 'PID', 'REQ', 'RPS', 'STATUS', 'AVG', 'RSS']) assert.match(header, new RegExp(`\\b${kept}\\b`), kept);
  for (const dropped of ['LastSpwn', 'RunT', 'SIG']) assert.doesNotMatch(header, new RegExp(dropped), dropped);
  assert.match(screen, /s: next column {3}r: reverse {3}q: quit$/m);
});

test('a short terminal shows as many workers as fit and says how many more there are', () => {
  const doc = vassalDoc(Array.from({ length: 40 }, (_, i) => worker(i + 1, i)));
  const screen = renderTop(sample(doc), undefined, { width: 120, height: 15, interactive: true });
  const lines = screen.trimEnd().split('\n');
  assert.equal(lines.length, 15);
  assert.match(screen, /^… 32 more workers$/m);
});

test('uWSGI\'s own document (uwsgitop compatibility): our keys missing, cheaper slots with id 0', () => {
  // Trimmed from uWSGI 2.0.30 (reference/uwsgi-internals.md §3.3): no vassal, state, in_flight or runtime.
  const uwsgi = {
    version: '2.0.30', listen_queue: 0, listen_queue_errors: 0, signal_queue: 0, load: 0, pid: 11760, uid: 0, gid: 0, cwd: '/srv',
    locks: [{ 'user 0': 0 }], sockets: [{ name: '127.0.0.1:18080', proto: 'http', queue: 0, max_queue: 100, shared: 0, can_offload: 0 }],
    workers: [
      { id: 2, pid: 11771, accepting: 1, requests: 1, delta_requests: 1, exceptions: 0, harakiri_count: 0, signals: 0, signal_queue: 0, status: 'busy',
        rss: 12439552, vsz: 61796352, running_time: 375, last_spawn: 1795315029, respawn_count: 1, tx: 51, avg_rt: 187, apps: [], cores: [] },
      { id: 0, pid: 0, accepting: 0, requests: 0, status: 'cheap', last_spawn: 0 },
    ],
  };
  const screen = renderTop(sample(uwsgi), undefined, wide);
  assert.match(screen, /^uWSGI instance · version 2\.0\.30 · master pid 11760$/m);
  const table = rows(screen);
  assert.deepEqual(table[0]?.slice(0, 8), ['0', '0.0', '0', '0', '-', '0', '0', 'cheap']);
  assert.equal(table[0]?.at(-1), '--:--:--', 'never spawned');
  assert.deepEqual(table[1]?.slice(0, 9), ['2', '100.0', '11771', '1', '-', '0', '0', 'busy', '0.2ms']);
});

test('an emperor: vassals with state, pid, readiness, respawns, uptime and last error', () => {
  const emperor = {
    version: '0.1.0', pid: 100, uid: 0, gid: 0, cwd: '/', emperor: ['/etc/emperor.d'], emperor_tyrant: 0, throttle_level: 0,
    vassals: [
      { id: 'shop.ini', pid: 200, born: T0 / 1000 - 3725, ready: 1, loyal: 1, respawns: 2, state: 'ready', last_error: '' },
      { id: 'blog.xml', pid: -1, born: 0, ready: 0, loyal: 0, respawns: 7, state: 'cursed', last_error: 'master exit code 69' },
    ],
    blacklist: [],
  };
  const screen = renderTop(sample(emperor), undefined, wide);
  assert.match(screen, /^emperor · version 0\.1\.0 · pid 100 · watching \/etc\/emperor\.d · tyrant off$/m);
  assert.match(screen, /^2 vassals: 1 ready, 1 cursed · respawns 9$/m);
  assert.deepEqual(rows(screen), [
    ['blog.xml', 'cursed', '-', 'no', 'no', '7', '-', '-', 'master exit code 69'],
    ['shop.ini', 'ready', '200', 'yes', 'yes', '2', '-', '1h02m'],
  ]);
  const byRespawns = rows(renderTop(sample(emperor), undefined, { ...wide, sort: { column: 'RESPAWNS', descending: false } }));
  assert.deepEqual(byRespawns.map((r) => r[0]), ['shop.ini', 'blog.xml']);
});

test('uWSGI\'s emperor document: only id and pid are sure to be there', () => {
  const screen = renderTop(sample({ version: '2.0.30', pid: 12192, emperor: ['/etc/uwsgi/vassals'], emperor_tyrant: 0, vassals: [{ id: 'good.ini', pid: 12194 }] }), undefined, wide);
  assert.deepEqual(rows(screen), [['good.ini', '-', '12194', '-', '-', '-', '-', '-']]);
});

test('on-demand vassals show as `on demand`, with their cold starts (ours, and uWSGI\'s document by its on_demand and pid -1)', () => {
  const emperor = {
    version: '0.1.0', pid: 100, emperor: ['/etc/emperor.d'], emperor_tyrant: 0,
    vassals: [
      { id: 'a.ini', pid: -1, born: 0, ready: 0, loyal: 0, respawns: 0, state: 'on-demand', on_demand: '/run/a.sock', cold_starts: 3, last_error: '' },
      { id: 'b.ini', pid: 300, born: T0 / 1000 - 5, ready: 1, loyal: 1, respawns: 0, state: 'ready', on_demand: '127.0.0.1:9000', cold_starts: 1, last_error: '' },
    ],
  };
  const screen = renderTop(sample(emperor), undefined, wide);
  assert.match(screen, /^2 vassals: 1 on demand, 1 ready · respawns 0$/m);
  assert.deepEqual(rows(screen), [
    ['a.ini', 'on demand', '-', 'no', 'no', '0', '3', '-'],
    ['b.ini', 'ready', '300', 'yes', 'yes', '0', '1', '5.0s'],
  ]);
  const uwsgi = renderTop(sample({ version: '2.0.30', pid: 1, emperor: ['/v'], vassals: [{ id: 'od.ini', pid: -1, on_demand: '/tmp/od.sock' }] }), undefined, wide);
  assert.equal(rows(uwsgi)[0]?.[1], 'on demand');
});

test('a document that is neither kind is refused with a coded error', () => {
  assert.throws(() => renderTop(sample({ hello: 1 }), undefined, wide), (err) => err instanceof StatsShapeError && err.code === 'ERR_STATS_SHAPE');
  assert.throws(() => renderTop(sample([1, 2]), undefined, wide), StatsShapeError);
});

test('units: bytes and durations', () => {
  assert.deepEqual([0, 1023, 1024, 1536, 45.2 * 1024 * 1024, 1.5 * 1024 ** 3].map(bytes), ['0', '1023', '1.0K', '1.5K', '45.2M', '1.5G']);
  assert.deepEqual([187, 12_400, 3_200_000, 245_000_000, 7_620_000_000, 3 * 86400e6].map(duration), ['0.2ms', '12ms', '3.2s', '4m05s', '2h07m', '3d00h']);
});
