/**
 * Fuzzing the vassal file loader (fast-check, time-bounded): random text and mutated
 * real vassal files, in every format, only ever give a parsed file or one of our coded
 * config errors on one line; never another exception, never a hang.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ConfigError, parseConfigText, resolveVassalConfig, type ConfigFormat, type RawConfig } from '@emperor/config';
import { record } from '../helpers/record.js';

const REAL: Record<ConfigFormat, string> = {
  ini: '[uwsgi]\nhttp-socket = 127.0.0.1:8080\nmodule = app.mjs\nprocesses = 4\nharakiri = 30\nenv = A=%n\nstats = /run/%n.stats\n',
  xml: '<?xml version="1.0"?>\n<uwsgi>\n  <http-socket>127.0.0.1:8080</http-socket>\n  <module>app.mjs</module>\n  <master/>\n  <env>A=&amp;b</env>\n</uwsgi>\n',
  json: '{"uwsgi": {"http-socket": ["127.0.0.1:8080", "/run/a.sock"], "module": "app.mjs", "processes": 4, "master": true}}\n',
};

/** A mutation of `text`: bytes replaced, inserted or deleted, or a slice repeated. */
const mutated = (text: string): fc.Arbitrary<string> =>
  fc.array(
    fc.oneof(
      fc.record({ kind: fc.constant('set' as const), at: fc.nat(), ch: fc.string({ minLength: 1, maxLength: 3 }) }),
      fc.record({ kind: fc.constant('cut' as const), at: fc.nat(), len: fc.nat(20) }),
      fc.record({ kind: fc.constant('dup' as const), at: fc.nat(), len: fc.nat(40), times: fc.integer({ min: 1, max: 50 }) }),
    ),
    { minLength: 1, maxLength: 8 },
  ).map((edits) => {
    let s = text;
    for (const e of edits) {
      const at = s.length === 0 ? 0 : e.at % s.length;
      if (e.kind === 'set') s = s.slice(0, at) + e.ch + s.slice(at + 1);
      else if (e.kind === 'cut') s = s.slice(0, at) + s.slice(at + e.len);
      else s = s.slice(0, at) + s.slice(at, at + e.len).repeat(e.times) + s.slice(at);
    }
    return s;
  });

/** Parses and resolves; returns 'ok', 'error' (ours), or throws whatever else came out. */
function load(text: string, format: ConfigFormat): 'ok' | 'error' {
  let raw: RawConfig;
  try {
    raw = parseConfigText(text, `/srv/vassals/fuzz.${format}`, format);
    resolveVassalConfig([raw], { env: {} });
    return 'ok';
  } catch (err) {
    if (err instanceof ConfigError) {
      assert.ok(!err.message.includes('\n'), `one line: ${JSON.stringify(err.message)}`);
      assert.ok(err.message.length < 400, `short: ${err.message.length} chars`);
      return 'error';
    }
    throw err;
  }
}

for (const format of ['ini', 'xml', 'json'] as const) {
  test(`the ${format} loader only ever answers with a config or a coded one-line error`, () => {
    let runs = 0;
    const outcomes = { ok: 0, error: 0 };
    const started = Date.now();
    fc.assert(
      fc.property(fc.oneof(mutated(REAL[format]), fc.string({ maxLength: 400 }), fc.string({ unit: 'binary', maxLength: 400 })), (text) => {
        runs++;
        outcomes[load(text, format)]++;
      }),
      { numRuns: 20_000, interruptAfterTimeLimit: 8_000, seed: Number(process.env.FUZZ_SEED ?? Date.now() % 2 ** 31) },
    );
    const ms = Date.now() - started;
    assert.ok(runs >= 1000, `ran ${runs} inputs`);
    record({
      area: 'fuzz',
      what: `${format.toUpperCase()} loader on random text and mutated real vassal files (fast-check)`,
      tries: runs,
      outcome: `${outcomes.ok} parsed, ${outcomes.error} refused with a one-line coded error; nothing else thrown; ${ms} ms`,
    });
  });
}

test('a pathological XML file (deep nesting) is refused fast', () => {
  const deep = `<uwsgi>${'<a>'.repeat(50_000)}${'</a>'.repeat(50_000)}</uwsgi>`;
  const started = Date.now();
  assert.equal(load(deep, 'xml'), 'error');
  assert.ok(Date.now() - started < 5000);
});
