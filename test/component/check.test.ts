/** `emperor check` as an operator runs it: exit codes, one line per problem, --print. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { EMPEROR_BIN, tempDir } from '../helpers/index.js';

const run = promisify(execFile);

test('emperor check: 0 when every file is valid, 1 otherwise, every problem as file:line: option: message', async (t) => {
  const dir = tempDir(t);
  const good = join(dir, 'good.ini');
  const bad = join(dir, 'bad.xml');
  writeFileSync(good, '[uwsgi]\nhttp-socket = 127.0.0.1:8080\nmodule = app.mjs\ngevent = 100\n');
  writeFileSync(bad, '<uwsgi>\n  <http-socket>:8080</http-socket>\n  <module>app.mjs</module>\n  <harakiri>ten</harakiri>\n  <max-requests>-1</max-requests>\n</uwsgi>\n');
  const ok = await run(process.execPath, [EMPEROR_BIN, 'check', good]);
  assert.equal(ok.stdout, `${good}:4: gevent: is a uWSGI option Emperor does not support; ignored (workers are processes, or threads in Python workers: no async cores)\n${good}: valid vassal file (1 warning)\n`);
  await assert.rejects(run(process.execPath, [EMPEROR_BIN, 'check', good, bad]), (err: { code: number; stdout: string }) => {
    assert.equal(err.code, 1);
    assert.deepEqual(err.stdout.trimEnd().split('\n').slice(2), [
      `${bad}:4: harakiri: expected whole seconds >= 0, got "ten"`,
      `${bad}:5: max-requests: must be >= 0, got "-1"`,
      `${bad}: invalid vassal file (2 errors)`,
      '2 files checked, 1 invalid',
    ]);
    return true;
  });
});

test('emperor check --print: placeholders expanded, where each value came from, then the defaults', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'shop.ini');
  writeFileSync(file, '[uwsgi]\nhttp-socket = 127.0.0.1:8080\nmodule = %d%n.mjs\nharakiri = 30\n');
  const { stdout } = await run(process.execPath, [EMPEROR_BIN, 'check', file, '--print']);
  assert.match(stdout, new RegExp(`^module = ${dir}/shop\\.mjs +; ${file}:3$`, 'm'));
  assert.match(stdout, /^; defaults of the vassal options not set above$/m);
  assert.match(stdout, /^processes = 1$/m);
  assert.doesNotMatch(stdout, /^harakiri = 0$/m);
});
