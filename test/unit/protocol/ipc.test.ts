import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  EmperorError,
  IpcMessageError,
  isEmperorError,
  parseEmperorToMaster,
  parseMasterToEmperor,
  parseMasterToWorker,
  parseStatsAddress,
  parseWorkerToMaster,
} from '@emperor/protocol';

test('known messages parse to themselves', () => {
  assert.deepEqual(parseEmperorToMaster({ v: 1, type: 'reload' }), { v: 1, type: 'reload' });
  assert.deepEqual(parseEmperorToMaster({ v: 1, type: 'stop' }), { v: 1, type: 'stop' });
  assert.deepEqual(parseMasterToEmperor({ v: 1, type: 'reloaded', ok: false }), { v: 1, type: 'reloaded', ok: false });
  // A master tells its emperor why its file is invalid before it exits 78 (issue 22, point 3).
  const configError = { v: 1, type: 'config-error', code: 'ERR_CONFIG_VALUE', message: 'shop.ini:4: harakiri: expected whole seconds >= 0, got "ten"' };
  assert.deepEqual(parseMasterToEmperor(configError), configError);
  assert.deepEqual(parseMasterToWorker({ v: 1, type: 'stop' }), { v: 1, type: 'stop' });
  assert.deepEqual(parseWorkerToMaster({ v: 1, type: 'ready' }), { v: 1, type: 'ready' });
});

test('unknown, unversioned and malformed messages throw a coded error', () => {
  const cases: [unknown, RegExp][] = [
    [null, /not an object/],
    ['stop', /not an object/],
    [{ type: 'stop' }, /unsupported message version undefined/],
    [{ v: 2, type: 'stop' }, /unsupported message version 2/],
    [{ v: 1, type: 'explode' }, /unknown message type "explode"/],
    [{ v: 1, type: 'toString' }, /unknown message type "toString"/],
  ];
  for (const [raw, message] of cases) {
    assert.throws(() => parseEmperorToMaster(raw), (err: unknown) => {
      assert.ok(err instanceof IpcMessageError);
      assert.equal(err.code, 'ERR_IPC_MESSAGE');
      assert.match(err.message, message);
      return true;
    });
  }
  assert.throws(() => parseMasterToEmperor({ v: 1, type: 'reloaded' }), /malformed reloaded message/);
  assert.throws(() => parseMasterToEmperor({ v: 1, type: 'config-error', code: 'ERR_CONFIG_VALUE' }), /malformed config-error message/);
  assert.throws(() => parseMasterToEmperor({ v: 2, type: 'config-error', code: 'X', message: 'm' }), /unsupported message version 2/);
  // A worker may not send what only the emperor sends.
  assert.throws(() => parseWorkerToMaster({ v: 1, type: 'stop' }), /unknown message type "stop"/);
});

test('coded errors keep their code, name and cause', () => {
  class DemoError extends EmperorError {
    readonly code = 'ERR_DEMO' as const;
  }
  const cause = new Error('low level');
  const err = new DemoError('high level', { cause });
  assert.equal(err.name, 'DemoError');
  assert.equal(err.cause, cause);
  assert.ok(isEmperorError(err));
  assert.ok(!isEmperorError(cause));
});

test('stats addresses parse as uwsgitop reads them', () => {
  assert.deepEqual(parseStatsAddress('127.0.0.1:9191'), { kind: 'tcp', host: '127.0.0.1', port: 9191 });
  assert.deepEqual(parseStatsAddress(':9191'), { kind: 'tcp', host: '127.0.0.1', port: 9191 });
  assert.deepEqual(parseStatsAddress('[::1]:9191'), { kind: 'tcp', host: '::1', port: 9191 });
  assert.deepEqual(parseStatsAddress('/run/app.stats'), { kind: 'unix', path: '/run/app.stats' });
  assert.deepEqual(parseStatsAddress('@app'), { kind: 'unix', path: '\0app' });
  assert.deepEqual(parseStatsAddress('http://127.0.0.1:9191/'), { kind: 'http', url: 'http://127.0.0.1:9191/' });
});
