// Option names are typed from the option table: each `@ts-expect-error` below is a
// misspelt or mistyped name that must NOT compile (tsc -b fails on an unused directive,
// so these lines fail the build the day the typing stops catching them). Past the
// compiler (a cast, plain JavaScript), the reader still refuses them at run time.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  OPTIONS,
  createOptionReader,
  findOption,
  type CollectedOptions,
  type OptionName,
  type OptionNameOf,
  type OptionNameWithDefaultOf,
  type OptionReader,
} from '@emperor/config';

/** A reader over `harakiri = 30` from shop.ini line 3. */
function reader(): OptionReader {
  const spec = findOption('harakiri');
  assert.ok(spec);
  const option = { file: 'shop.ini', line: 3, name: 'harakiri', value: '30' };
  const collected: CollectedOptions = { resolved: [option], applied: [{ spec, option }], warnings: [] };
  return createOptionReader(collected, () => '/srv');
}

test('a well-spelt name of the right type reads its value, or the table\'s default', () => {
  const read = reader();
  assert.equal(read.uint('harakiri'), 30_000);
  assert.equal(read.uint('processes'), 1);
  assert.equal(read.bool('vacuum'), false);
  assert.equal(read.bool('master'), true, 'a flag Emperor always has on reads as its default, true');
  assert.equal(read.optionalUint('cheaper-initial'), undefined);
  assert.equal(read.last('harakiri')?.line, 3);
});

test('a misspelt option name is a compile error, and an ERR_INTERNAL at run time', () => {
  const read = reader();
  // @ts-expect-error 'harakri' is not an option
  assert.throws(() => read.uint('harakri'), { code: 'ERR_INTERNAL', message: 'option table has no uint option "harakri"' });
  // @ts-expect-error nor is 'chdri'
  assert.throws(() => read.path('chdri'), { code: 'ERR_INTERNAL', message: 'option table has no path option "chdri"' });
  // @ts-expect-error harakiri is a uint, not a bool
  assert.throws(() => read.bool('harakiri'), { code: 'ERR_INTERNAL', message: 'option table has no bool option "harakiri"' });
  // @ts-expect-error cheaper-initial has no default: read it with optionalUint
  assert.throws(() => read.uint('cheaper-initial'), { code: 'ERR_INTERNAL', message: 'option cheaper-initial has no default; use optionalUint' });
  // @ts-expect-error an alias is not the canonical name the reader keys on ('workers' is 'processes')
  assert.deepEqual(read.all('workers'), []);
});

test('OptionName is the table\'s canonical names, and only those', () => {
  const names: readonly OptionName[] = ['harakiri', 'processes', 'emperor', 'emperor-tyrant-nofollow'];
  // @ts-expect-error misspelt
  const misspelt: OptionName = 'harakri';
  // @ts-expect-error a real uWSGI option Emperor does not implement
  const unsupported: OptionName = 'gevent';
  // @ts-expect-error an alias ('processes' is the name)
  const alias: OptionName = 'workers';
  const flag: OptionNameOf<'bool'> = 'master';
  // @ts-expect-error processes is not a bool
  const notFlag: OptionNameOf<'bool'> = 'processes';
  // @ts-expect-error cheaper-initial is the one uint without a default
  const noDefault: OptionNameWithDefaultOf<'uint'> = 'cheaper-initial';
  const spec = findOption('pidfile');
  // @ts-expect-error a comparison with a misspelt name cannot be true, and does not compile
  assert.equal(spec?.name === 'pidflie', false);
  const canonical = new Set<string>(OPTIONS.map((s) => s.name));
  for (const name of [...names, flag]) assert.ok(canonical.has(name), name);
  for (const name of [misspelt, unsupported, alias]) assert.ok(!canonical.has(name), name);
  assert.equal(findOption(flag)?.type, 'bool');
  assert.equal(findOption(notFlag)?.type, 'uint');
  assert.equal(findOption(noDefault)?.default, undefined);
});
