import { test } from 'node:test';
import assert from 'node:assert/strict';
import { entryFromExports } from '@emperor/vassal/node-app';

test('a default-exported function is a request listener', () => {
  const fn = (): void => {};
  assert.deepEqual(entryFromExports({ default: fn }), { kind: 'listener', listener: fn });
});

test('CommonJS module.exports = fn arrives as default', () => {
  const fn = (): void => {};
  assert.equal(entryFromExports({ default: fn, 'module.exports': fn })?.kind, 'listener');
});

test('an object with fetch is a web-standard app', () => {
  const app = { fetch: () => new Response('x') };
  assert.deepEqual(entryFromExports({ default: app }), { kind: 'fetch', app });
});

test('a Koa-style object gives its callback()', () => {
  const listener = (): void => {};
  const koa = { callback: () => listener, listen: () => {} };
  assert.deepEqual(entryFromExports({ default: koa }), { kind: 'listener', listener });
});

test('named exports only, or nothing servable, give undefined', () => {
  assert.equal(entryFromExports({ default: { port: 3000 } }), undefined);
  assert.equal(entryFromExports({ default: undefined }), undefined);
});

test('loadApp names what it expected when a module offers nothing and never listens', async () => {
  const { loadApp, AppShapeError } = await import('@emperor/vassal/node-app');
  const { join } = await import('node:path');
  const { FIXTURES } = await import('../../helpers/index.js');
  const module = join(FIXTURES, 'apps', 'nothing.mjs');
  await assert.rejects(loadApp(module, 100, new WeakSet(), () => {}), (err: unknown) => {
    assert.ok(err instanceof AppShapeError);
    assert.match(err.message, /nothing\.mjs exports neither a request listener \(req, res\), an object with fetch\(request\), nor one with callback\(\), and did not call listen\(\) within 0\.1 s/);
    return true;
  });
});
