/**
 * `emperor check` as an operator runs it: exit codes, one line per problem, --print, and
 * the app as the vassal's user would find it (issue 22, point 4).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { EMPEROR_BIN, tempDir } from '../helpers/index.js';

const run = promisify(execFile);

/** `emperor check ARGS`: its exit code and stdout, whether it fails or not. */
async function check(args: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<{ code: number; stdout: string }> {
  try {
    const { stdout } = await run(process.execPath, [EMPEROR_BIN, 'check', ...args], { env });
    return { code: 0, stdout };
  } catch (err) {
    const e = err as { code: number; stdout: string };
    return { code: e.code, stdout: e.stdout };
  }
}

const root = process.getuid?.() === 0;
/** Debian's /usr/bin/python3, which every user can run (the pyenv one on PATH here lives under /root). */
const SYSTEM_PYTHON = '/usr/bin/python3';

test('emperor check: 0 when every file is valid, 1 otherwise, every problem as file:line: option: message', async (t) => {
  const dir = tempDir(t);
  const good = join(dir, 'good.ini');
  const bad = join(dir, 'bad.xml');
  writeFileSync(good, '[uwsgi]\nhttp-socket = 127.0.0.1:8080\nmodule = app.mjs\ngevent = 100\n');
  writeFileSync(join(dir, 'app.mjs'), 'export default (req, res) => res.end();\n');
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
  writeFileSync(join(dir, 'shop.mjs'), 'export default (req, res) => res.end();\n');
  const { stdout } = await run(process.execPath, [EMPEROR_BIN, 'check', file, '--print']);
  assert.match(stdout, new RegExp(`^module = ${dir}/shop\\.mjs +; ${file}:3$`, 'm'));
  assert.match(stdout, /^; defaults of the vassal options not set above$/m);
  assert.match(stdout, /^processes = 1$/m);
  assert.doesNotMatch(stdout, /^harakiri = 0$/m);
  // The master always runs: --print says so (issue 22, point 8), and master = false says it changes nothing.
  assert.match(stdout, /^master = true$/m);
  assert.doesNotMatch(stdout, /^master = false$/m);
  writeFileSync(file, '[uwsgi]\nhttp-socket = 127.0.0.1:8080\nmodule = %d%n.mjs\nmaster = false\n');
  const off = await check([file]);
  assert.equal(off.stdout, `${file}:4: master: Emperor always runs as master = true; "false" changes nothing\n${file}: valid vassal file (1 warning)\n`);
});

test('emperor check: a module, wsgi-file, chdir or home that does not exist, each on its own line (issue 22, point 4)', async (t) => {
  const dir = tempDir(t);
  const node = join(dir, 'node.ini');
  writeFileSync(node, `[uwsgi]\nhttp-socket = 127.0.0.1:8080\nchdir = ${dir}/srv\nmodule = app.mjs\n`);
  let r = await check([node]);
  assert.equal(r.code, 1);
  assert.deepEqual(r.stdout.trimEnd().split('\n'), [
    `${node}:3: chdir: ${dir}/srv does not exist`,
    `${node}:4: module: ${dir}/srv/app.mjs does not exist`,
    `${node}: invalid vassal file (2 errors)`,
  ]);
  mkdirSync(join(dir, 'srv'));
  writeFileSync(join(dir, 'srv', 'app.mjs'), 'export default (req, res) => res.end();\n');
  assert.deepEqual(await check([node]), { code: 0, stdout: `${node}: valid vassal file\n` });

  const wsgi = join(dir, 'wsgi.xml');
  writeFileSync(wsgi, `<uwsgi>\n  <socket>127.0.0.1:3031</socket>\n  <wsgi-file>${dir}/srv/app.py</wsgi-file>\n  <virtualenv>${dir}/venv</virtualenv>\n  <pythonpath>${dir}/lib</pythonpath>\n</uwsgi>\n`);
  r = await check([wsgi]);
  assert.equal(r.code, 1);
  assert.deepEqual(r.stdout.trimEnd().split('\n'), [
    `${wsgi}:3: wsgi-file: ${dir}/srv/app.py does not exist`,
    `${wsgi}:4: virtualenv: ${dir}/venv does not exist`,
    // A pythonpath entry that is missing does not stop the worker: a warning.
    `${wsgi}:5: pythonpath: ${dir}/lib does not exist; the worker skips it`,
    `${wsgi}: invalid vassal file (2 errors, 1 warning)`,
  ]);
});

test('emperor check: module = pkg.mod is looked for on chdir and pythonpath without running the package (issue 22, point 4)', async (t) => {
  const dir = tempDir(t);
  mkdirSync(join(dir, 'site', 'shop'), { recursive: true });
  // Importing the package would leave a mark: the check must not import it.
  const mark = join(dir, 'imported');
  writeFileSync(join(dir, 'site', 'shop', '__init__.py'), `open(${JSON.stringify(mark)}, "w").close()\n`);
  writeFileSync(join(dir, 'site', 'shop', 'wsgi.py'), 'def application(environ, start_response):\n    start_response("200 OK", [])\n    return [b""]\n');
  const file = join(dir, 'shop.ini');
  const body = (module: string): string => `[uwsgi]\nsocket = 127.0.0.1:3031\nchdir = ${dir}/site\nmodule = ${module}\nenv = PATH=/usr/bin:/bin\n`;
  writeFileSync(file, body('shop.wsgi:application'));
  assert.deepEqual(await check([file]), { code: 0, stdout: `${file}: valid vassal file\n` });
  writeFileSync(file, body('shop.views'));
  let r = await check([file]);
  assert.equal(r.code, 1);
  assert.match(r.stdout, new RegExp(`^${file}:4: module: no module "shop\\.views" in package "shop" \\(searched ${dir}/site/shop\\b`, 'm'));
  writeFileSync(file, body('shopp.wsgi'));
  r = await check([file]);
  assert.match(r.stdout, new RegExp(`^${file}:4: module: no module "shopp" on the worker's sys\\.path \\(searched ${dir}/site, `, 'm'));
  writeFileSync(file, body('shop.wsgi.app'));
  r = await check([file]);
  assert.match(r.stdout, new RegExp(`^${file}:4: module: "shop\\.wsgi" is a module \\(${dir}/site/shop/wsgi\\.py\\), not a package`, 'm'));
  // pythonpath comes before chdir, as in the worker.
  writeFileSync(file, `[uwsgi]\nsocket = 127.0.0.1:3031\npythonpath = ${dir}/site\nmodule = shop.wsgi\nenv = PATH=/usr/bin:/bin\n`);
  assert.deepEqual(await check([file]), { code: 0, stdout: `${file}: valid vassal file\n` });
  assert.equal(existsSync(mark), false, 'shop/__init__.py never ran');
});

test('emperor check: an app the vassal\'s uid cannot read is an error naming the user and the directory in the way (issue 22, point 4)', { skip: !root ? 'needs root (the vassal runs as www-data)' : !existsSync(SYSTEM_PYTHON) ? `no ${SYSTEM_PYTHON}` : false }, async (t) => {
  const dir = tempDir(t);
  chmodSync(dir, 0o755);
  const app = join(dir, 'private');
  mkdirSync(app, { mode: 0o700 });
  chmodSync(app, 0o700);
  writeFileSync(join(app, 'app.mjs'), 'export default (req, res) => res.end();\n');
  const file = join(dir, 'shop.ini');
  writeFileSync(file, `[uwsgi]\nhttp-socket = 127.0.0.1:8080\nmodule = ${app}/app.mjs\nuid = www-data\ngid = www-data\n`);
  let r = await check([file]);
  assert.equal(r.code, 1);
  assert.match(r.stdout, new RegExp(`^${file}:3: module: www-data \\(uid \\d+\\) cannot read ${app}/app\\.mjs: it cannot enter ${app} \\(drwx------ root:root\\)$`, 'm'));
  chmodSync(app, 0o755);
  chmodSync(join(app, 'app.mjs'), 0o600);
  r = await check([file]);
  assert.match(r.stdout, new RegExp(`^${file}:3: module: www-data \\(uid \\d+\\) cannot read ${app}/app\\.mjs \\(-rw------- root:root\\)$`, 'm'));
  chmodSync(join(app, 'app.mjs'), 0o644);
  assert.deepEqual(await check([file]), { code: 0, stdout: `${file}: valid vassal file\n` });

  // A Python module the user cannot read, found by the interpreter run as that user.
  mkdirSync(join(app, 'shop'));
  writeFileSync(join(app, 'shop', '__init__.py'), '');
  writeFileSync(join(app, 'shop', 'wsgi.py'), 'application = None\n');
  chmodSync(join(app, 'shop', 'wsgi.py'), 0o600);
  writeFileSync(file, `[uwsgi]\nsocket = 127.0.0.1:3031\nchdir = ${app}\nmodule = shop.wsgi\nuid = www-data\nenv = PATH=/usr/bin:/bin\n`);
  r = await check([file]);
  assert.match(r.stdout, new RegExp(`^${file}:4: module: www-data \\(uid \\d+\\) cannot read ${app}/shop/wsgi\\.py`, 'm'));
  chmodSync(join(app, 'shop', 'wsgi.py'), 0o644);
  assert.deepEqual(await check([file]), { code: 0, stdout: `${file}: valid vassal file\n` });

  // --tyrant: the file's owner is the user; a file of root's is refused, as the emperor refuses it.
  writeFileSync(file, `[uwsgi]\nhttp-socket = 127.0.0.1:8080\nmodule = ${app}/app.mjs\n`);
  r = await check(['--tyrant', file]);
  assert.equal(r.code, 1);
  assert.match(r.stdout, new RegExp(`^${file}: refused: it is owned by uid 0 \\(root\\) gid 0 \\(root\\)\\. In tyrant mode`, 'm'));
  const wwwData = Number(execFileSync('id', ['-u', 'www-data'], { encoding: 'utf8' }).trim());
  const wwwGroup = Number(execFileSync('id', ['-g', 'www-data'], { encoding: 'utf8' }).trim());
  chownSync(file, wwwData, wwwGroup);
  assert.deepEqual(await check(['--tyrant', file]), { code: 0, stdout: `${file}: valid vassal file\n` });
  chmodSync(join(app, 'app.mjs'), 0o640);
  r = await check(['--tyrant', file]);
  assert.match(r.stdout, new RegExp(`^${file}:3: module: www-data \\(uid ${wwwData}\\) cannot read ${app}/app\\.mjs \\(-rw-r----- root:root\\)$`, 'm'));
});

test('emperor check picks the Python interpreter as the vassal\'s user would: a python3 first on PATH in a directory that user cannot search is skipped, as the master skips it', { skip: !root ? 'needs root (the vassal runs as www-data)' : !existsSync(SYSTEM_PYTHON) ? `no ${SYSTEM_PYTHON}` : false }, async (t) => {
  const dir = tempDir(t);
  chmodSync(dir, 0o755);
  // Root's own interpreter, as pyenv's shims under /root: first on the check's PATH, runnable by root only.
  const rootOnly = join(dir, 'root-only');
  mkdirSync(join(rootOnly, 'bin'), { recursive: true });
  chmodSync(rootOnly, 0o700);
  writeFileSync(join(rootOnly, 'bin', 'python3'), `#!/bin/sh\nexec ${SYSTEM_PYTHON} "$@"\n`, { mode: 0o755 });
  const app = join(dir, 'app');
  mkdirSync(app, { mode: 0o755 });
  writeFileSync(join(app, 'shop.py'), 'application = None\n');
  chmodSync(join(app, 'shop.py'), 0o644);
  const file = join(dir, 'shop.ini');
  const env = { ...process.env, PATH: `${join(rootOnly, 'bin')}:/usr/bin:/bin` };
  writeFileSync(file, `[uwsgi]\nsocket = 127.0.0.1:3031\nchdir = ${app}\nmodule = shop\nuid = www-data\ngid = www-data\n`);
  // Before: "module: the interpreter .../root-only/bin/python3: www-data cannot run it". The
  // master, once it runs as www-data, skips that directory and runs /usr/bin/python3.
  assert.deepEqual(await check([file], env), { code: 0, stdout: `${file}: valid vassal file\n` });
  // The same file without uid: root's view, root's interpreter, which finds the module too.
  writeFileSync(file, `[uwsgi]\nsocket = 127.0.0.1:3031\nchdir = ${app}\nmodule = shop\n`);
  assert.deepEqual(await check([file], env), { code: 0, stdout: `${file}: valid vassal file\n` });
  // The module readable by root only: found by the interpreter run as www-data, which cannot read it.
  writeFileSync(file, `[uwsgi]\nsocket = 127.0.0.1:3031\nchdir = ${app}\nmodule = shop\nuid = www-data\ngid = www-data\n`);
  chmodSync(join(app, 'shop.py'), 0o600);
  const r = await check([file], env);
  assert.equal(r.code, 1);
  assert.match(r.stdout, new RegExp(`^${file}:4: module: www-data \\(uid \\d+\\) cannot read ${app}/shop\\.py`, 'm'));
});
