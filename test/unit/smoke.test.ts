import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EmperorError, isEmperorError } from '@emperor/protocol';

class DemoError extends EmperorError {
  readonly code = 'ERR_DEMO' as const;
}

test('coded errors keep their code, name and cause', () => {
  const cause = new Error('low level');
  const err = new DemoError('high level', { cause });
  assert.equal(err.code, 'ERR_DEMO');
  assert.equal(err.name, 'DemoError');
  assert.equal(err.cause, cause);
  assert.ok(isEmperorError(err));
  assert.ok(!isEmperorError(cause));
});
