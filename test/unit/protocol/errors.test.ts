import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigError, ConfigValueError, ERRORS, SocketListenError, EmperorError, isEmperorError, type ErrorClass, type ErrorCode } from '@emperor/protocol';

const ROOT = fileURLToPath(new URL('../../../../', import.meta.url));
const REGISTRY = 'packages/protocol/src/errors.ts';
const CODES = Object.keys(ERRORS) as ErrorCode[];

/** Every TypeScript source file of every package, as `packages/NAME/src/...` paths. */
function packageSources(): string[] {
  const out: string[] = [];
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir).sort()) {
      const path = join(dir, name);
      if (statSync(path).isDirectory()) walk(path);
      else if (name.endsWith('.ts') && !name.endsWith('.d.ts')) out.push(relative(ROOT, path).split(sep).join('/'));
    }
  };
  for (const pkg of readdirSync(join(ROOT, 'packages')).sort()) walk(join(ROOT, 'packages', pkg, 'src'));
  return out;
}

/** The source without comment lines (doc comments name classes and codes too). */
function code(file: string): string {
  return readFileSync(join(ROOT, file), 'utf8')
    .split('\n')
    .filter((line) => !/^\s*(?:\/\/|\/\*|\*)/.test(line))
    .join('\n');
}

/** The rows of the table in docs/errors.md, in order. */
function documentedRows(): { code: string; meaning: string; fix: string }[] {
  const doc = readFileSync(join(ROOT, 'docs/errors.md'), 'utf8');
  const rows = [];
  for (const line of doc.split('\n')) {
    const m = /^\| `([A-Z_]+)` \| (.*) \| (.*) \|$/.exec(line);
    if (m !== null) rows.push({ code: m[1] as string, meaning: m[2] as string, fix: m[3] as string });
  }
  return rows;
}

/** An instance of `errorClass`, whatever its constructor takes. */
function instance(errorClass: ErrorClass, cause: Error): EmperorError {
  const location = { file: 'shop.ini', line: 7 };
  if (errorClass === SocketListenError) return new SocketListenError('problem', cause);
  if (errorClass === ConfigValueError) return new ConfigValueError({ ...location, option: 'harakiri', value: 'ten', expected: 'whole seconds >= 0', problem: 'problem' }, { cause });
  const args = errorClass.prototype instanceof ConfigError ? [location, 'problem', { cause }] : ['problem', { cause }];
  return Reflect.construct(errorClass, args) as EmperorError;
}

test('docs/errors.md has one row per registered code, in the registry\'s order, and no other', () => {
  const rows = documentedRows();
  const documented = rows.map((r) => r.code);
  assert.deepEqual(CODES.filter((c) => !documented.includes(c)), [], 'registered codes without a row in docs/errors.md');
  assert.deepEqual(documented.filter((c) => !(CODES as string[]).includes(c)), [], 'rows in docs/errors.md for codes the registry does not have');
  assert.equal(new Set(documented).size, documented.length, 'a code has two rows');
  assert.deepEqual(documented, CODES, 'rows in another order than ERRORS');
  for (const row of rows) {
    assert.ok(row.meaning.length > 20 && row.fix.length > 20, `${row.code}: the row needs a meaning and a fix`);
  }
});

test('each registered class carries its own code, its name and the cause', () => {
  assert.ok(CODES.length >= 14, `only ${CODES.length} codes`);
  const classes = new Set<ErrorClass>();
  for (const c of CODES) {
    const info = ERRORS[c];
    assert.ok(!classes.has(info.errorClass), `${c}: a class serves two codes`);
    classes.add(info.errorClass);
    const cause = new Error('low level');
    const err = instance(info.errorClass, cause);
    assert.equal(err.code, c);
    assert.equal(err.name, info.errorClass.name);
    assert.ok(err instanceof EmperorError && isEmperorError(err) && err instanceof Error, c);
    assert.equal(err.cause, cause, c);
    assert.match(err.message, /problem/, c);
    assert.ok(info.meaning.length > 0 && info.thrownFrom.length > 0, c);
  }
});

test('every coded error class is defined in the registry, and nowhere else', () => {
  const outside = packageSources()
    .filter((file) => file !== REGISTRY)
    .flatMap((file) => {
      const src = code(file);
      const found = [...src.matchAll(/class (\w+) extends (\w*Error)\b/g)].map((m) => `${file}: class ${m[1]} extends ${m[2]}`);
      if (/readonly code = '/.test(src)) found.push(`${file}: defines a code`);
      return found;
    });
  assert.deepEqual(outside, [], 'move these classes into packages/protocol/src/errors.ts, with an entry in ERRORS and a row in docs/errors.md');
  const registry = code(REGISTRY);
  const defined = [...registry.matchAll(/readonly code = '([A-Z_]+)' as const/g)].map((m) => m[1]);
  assert.deepEqual([...defined].sort(), [...CODES].sort(), 'a class in errors.ts with a code ERRORS does not list');
});

test('each code is thrown from exactly the files the registry names', () => {
  const sources = packageSources().filter((file) => file !== REGISTRY);
  for (const c of CODES) {
    const { errorClass, thrownFrom } = ERRORS[c];
    const pattern = new RegExp(`\\bnew ${errorClass.name}\\(`);
    const actual = sources.filter((file) => pattern.test(code(file)));
    assert.deepEqual(actual, [...thrownFrom].sort(), `${c}: ERRORS.${c}.thrownFrom should list the files that construct ${errorClass.name}`);
  }
});

/**
 * Bare errors left in files owned by the master and Node worker restructures (issue 16),
 * at most this many per file: each is to become a coded error; lower the count (or drop
 * the line) when one does.
 */
const KNOWN_BARE_ERRORS: Readonly<Record<string, number>> = {
  'packages/vassal/src/worker/node/protocols/uwsgi-packet.ts': 2,
  'packages/vassal/src/worker/node/worker-main.ts': 2,
};

test('no package throws a bare Error (only the listed leftovers, which may only shrink)', () => {
  const over: string[] = [];
  for (const file of packageSources()) {
    const n = code(file).match(/\b(?:new|throw) (?:Error|TypeError|RangeError|SyntaxError)\(/g)?.length ?? 0;
    if (n > (KNOWN_BARE_ERRORS[file] ?? 0)) over.push(`${file}: ${n} bare error(s)`);
  }
  assert.deepEqual(over, [], 'throw a coded error from the registry (packages/protocol/src/errors.ts) instead');
});
