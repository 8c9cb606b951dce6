/**
 * docs/stats.md against live stats servers: every key the document lists is in the JSON a
 * running vassal and emperor serve, with the documented type, and every key they serve is
 * documented. uwsgitop and the other uWSGI tools read these keys, so a key renamed or
 * dropped in code, or a document that drifts, fails here.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:net';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FIXTURES, ROOT, freePort, httpGet, spawnEmperor, statsOf, tempDir, waitFor } from '../helpers/index.js';

const APP = join(FIXTURES, 'apps', 'basic.mjs');

/** One table of docs/stats.md: key → documented type ("" when the table gives none). */
type Schema = Map<string, string>;

/**
 * The tables of docs/stats.md by scope: "vassal", "vassal.sockets", "vassal.workers",
 * "emperor", "emperor.vassals". A row's first cell holds one or more backticked keys
 * (`pid`, `uid`, `gid`); `name[]` is an array key. The keys of entries described in a
 * row's meaning (`apps[]`, `cores[]`, `blacklist[]`) are returned as scope "<row key>".
 */
function documentedSchema(): Map<string, Schema> {
  const scopes = new Map<string, Schema>();
  let doc = '';
  let scope = '';
  for (const line of readFileSync(join(ROOT, 'docs', 'stats.md'), 'utf8').split('\n')) {
    const heading = /^## (Vassal|Emperor) document/.exec(line);
    if (heading) [doc, scope] = [(heading[1] as string).toLowerCase(), (heading[1] as string).toLowerCase()];
    const sub = /^`(\w+)\[\]`:/.exec(line);
    if (sub && doc !== '') scope = `${doc}.${sub[1] as string}`;
    const row = /^\|\s*(`[^|]+`)\s*\|([^|]*)\|(.*)\|\s*$/.exec(line);
    if (!row || doc === '') continue;
    const [, keys, type, meaning] = row as unknown as [string, string, string, string];
    const schema = scopes.get(scope) ?? new Map<string, string>();
    scopes.set(scope, schema);
    for (const [, key, array] of keys.matchAll(/`(\w+)(\[\])?`/g)) {
      schema.set(key as string, type.trim());
      // An array whose entries the meaning cell lists (`req_info.request_start` gives `req_info`).
      const inner = array ? [...meaning.matchAll(/`([a-z_0-9]+)(?:`|\.)/g)].map((m) => m[1] as string) : [];
      if (inner.length > 0) scopes.set(`${scope}.${key as string}`, new Map(inner.map((k) => [k, ''])));
    }
  }
  return scopes;
}

function typeOk(type: string, value: unknown): boolean {
  switch (type) {
    case 'int': return Number.isInteger(value);
    case 'string': return typeof value === 'string';
    case 'array': return Array.isArray(value);
    case '0/1': return value === 0 || value === 1;
    case 'string[]': return Array.isArray(value) && value.every((v) => typeof v === 'string');
    default: return true;
  }
}

/**
 * Every documented key present with its type, every live key documented. `optional` are
 * documented keys an object has only at times (a core's `vars` outside a request).
 */
function conforms(scope: string, schema: Schema | undefined, live: Record<string, unknown>, optional: readonly string[] = []): void {
  assert.ok(schema && schema.size > 0, `docs/stats.md has a table for ${scope}`);
  for (const [key, type] of schema) {
    if (!(key in live)) {
      assert.ok(optional.includes(key), `${scope}: documented key "${key}" is not served`);
      continue;
    }
    assert.ok(typeOk(type, live[key]), `${scope}.${key}: documented as ${type}, served ${JSON.stringify(live[key])}`);
  }
  for (const key of Object.keys(live)) assert.ok(schema.has(key), `${scope}: served key "${key}" is not in docs/stats.md`);
}

function listen(server: Server, port: number): Promise<void> {
  return new Promise((resolve) => server.listen(port, '127.0.0.1', resolve));
}

test('docs/stats.md lists exactly the keys a live vassal and emperor serve, with their types', async (t) => {
  const schema = documentedSchema();
  assert.deepEqual([...schema.keys()].sort(), ['emperor', 'emperor.blacklist', 'emperor.vassals', 'vassal', 'vassal.sockets', 'vassal.workers', 'vassal.workers.apps', 'vassal.workers.cores']);

  const dir = tempDir(t);
  const [port, busyPort, emperorStats] = [await freePort(), await freePort(), await freePort()];
  const vassalStats = join(dir, 'a.stats');
  writeFileSync(join(dir, 'a.ini'), `[uwsgi]\nhttp-socket = 127.0.0.1:${port}\nmodule = ${APP}\nstats = ${vassalStats}\n`);
  // A port held here: b.ini's master cannot bind it, exits, and is throttled (a blacklist entry).
  const holder = createServer();
  await listen(holder, busyPort);
  t.after(() => holder.close());
  writeFileSync(join(dir, 'b.ini'), `[uwsgi]\nhttp-socket = 127.0.0.1:${busyPort}\nmodule = ${APP}\n`);
  spawnEmperor(t, ['--emperor', dir, '--emperor-stats', `127.0.0.1:${emperorStats}`]);

  const emperor = await waitFor(async () => {
    const d = await statsOf<Record<string, unknown> & { vassals: Record<string, unknown>[]; blacklist: Record<string, unknown>[] }>(`127.0.0.1:${emperorStats}`);
    return d.vassals.some((v) => v.id === 'a.ini' && v.ready === 1) && d.blacklist.length > 0 ? d : undefined;
  }, { message: 'a.ini ready and b.ini in the blacklist', timeoutMs: 30_000 });
  conforms('emperor', schema.get('emperor'), emperor);
  for (const v of emperor.vassals) conforms(`emperor.vassals (${String(v.id)})`, schema.get('emperor.vassals'), v);
  for (const b of emperor.blacklist) conforms('emperor.blacklist', schema.get('emperor.blacklist'), b);

  // The vassal document idle, then with a request in flight (a core's vars and req_info).
  type VassalDoc = Record<string, unknown> & { sockets: Record<string, unknown>[]; workers: (Record<string, unknown> & { apps: Record<string, unknown>[]; cores: Record<string, unknown>[] })[] };
  const idle = await statsOf<VassalDoc>(vassalStats);
  const slow = httpGet(`http://127.0.0.1:${port}/sleep?ms=4000`);
  const busy = await waitFor(async () => {
    const d = await statsOf<VassalDoc>(vassalStats);
    return d.workers[0]?.cores[0]?.in_request === 1 ? d : undefined;
  }, { message: 'the worker in a request, in the stats', timeoutMs: 10_000 });
  for (const [when, d] of [['idle', idle], ['busy', busy]] as const) {
    conforms(`vassal (${when})`, schema.get('vassal'), d);
    for (const s of d.sockets) conforms('vassal.sockets', schema.get('vassal.sockets'), s);
    for (const w of d.workers) {
      conforms('vassal.workers', schema.get('vassal.workers'), w);
      for (const a of w.apps) conforms('vassal.workers.apps', schema.get('vassal.workers.apps'), a);
      for (const c of w.cores) conforms(`vassal.workers.cores (${when})`, schema.get('vassal.workers.cores'), c, when === 'idle' ? ['vars', 'req_info'] : []);
    }
  }
  const core = busy.workers[0]?.cores[0] as { vars: string[]; req_info: { request_start: number } };
  assert.deepEqual(core.vars, ['REQUEST_METHOD=GET', 'REQUEST_URI=/sleep?ms=4000', ''], 'the oldest request in flight, then "" (docs/stats.md)');
  assert.ok(Math.abs(core.req_info.request_start - Date.now() / 1000) < 10, 'request_start is in unix seconds');
  assert.equal((await slow).status, 200);
});
