import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError, parseConfigText, resolveVassalConfig, type ConfigFormat } from '@emperor/config';

const SEEDS: Readonly<Record<ConfigFormat, string>> = {
  ini: '[uwsgi]\nsocket = :80\nmodule = app.js\nenv = A=%(x)\nx = $(HOME)\nchmod-socket = 660\n',
  xml: '<?xml version="1.0"?>\n<uwsgi>\n<socket>:80</socket>\n<module>app.js</module>\n<master/>\n<env>A=&amp;</env>\n</uwsgi>\n',
  json: '{"uwsgi": {"socket": [":80", ":81"], "module": "app.js", "master": true, "processes": 4}}',
};
const ALPHABET = '<>/="[]{}:,%()$@&;#\\\n \t!?-0123456789abcxyz\u00e9\u0000\ufeff';
const ROUNDS = 1500;

/** A small deterministic generator (LCG), so a failure reproduces. */
function random(seed: number): () => number {
  let state = seed;
  return () => (state = (state * 1103515245 + 12345) % 2147483648) / 2147483648;
}

function mutate(text: string, rnd: () => number): string {
  let out = text;
  for (let k = 1 + Math.floor(rnd() * 6); k > 0; k--) {
    const pos = Math.floor(rnd() * (out.length + 1));
    const op = rnd();
    if (op < 0.4) out = out.slice(0, pos) + (ALPHABET[Math.floor(rnd() * ALPHABET.length)] ?? '') + out.slice(pos);
    else if (op < 0.7) out = out.slice(0, pos) + out.slice(pos + 1 + Math.floor(rnd() * 5));
    else out = out.slice(0, pos) + out.slice(Math.floor(rnd() * out.length), Math.floor(rnd() * out.length)) + out.slice(pos);
  }
  return out;
}

test('mutated files either load or fail with a one-line coded config error', () => {
  const rnd = random(42);
  let loaded = 0;
  for (const [format, seed] of Object.entries(SEEDS) as [ConfigFormat, string][]) {
    for (let i = 0; i < ROUNDS; i++) {
      const text = mutate(seed, rnd);
      try {
        resolveVassalConfig([parseConfigText(text, `emperor.d/fuzz.${format}`, format)], { env: {} });
        loaded++;
      } catch (err) {
        assert.ok(err instanceof ConfigError, `${format} ${JSON.stringify(text)}: ${String(err)}`);
        assert.ok(!err.message.includes('\n'), err.message);
      }
    }
  }
  // The mutations must leave some files valid, or this would only test the error path.
  assert.ok(loaded > ROUNDS / 10, `only ${loaded} mutated files loaded`);
});
