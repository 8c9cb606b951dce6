/**
 * The package (issue 22): `npm pack` makes a tarball that `npm install -g` installs on a
 * clean prefix, offline (the workspace packages and their dependencies are bundled),
 * giving a working `emperor` on PATH, its man page, and its docs.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FIXTURES, ROOT, freePort, serving, spawnProcess, tempDir } from '../helpers/index.js';

test('npm pack, then npm install -g --prefix DIR TARBALL: DIR/bin/emperor runs Node and Python vassals, with its man page and docs', async (t) => {
  const dir = tempDir(t);
  const npmEnv = { ...process.env, npm_config_update_notifier: 'false', npm_config_fund: 'false', npm_config_audit: 'false' };
  // The build is the tests' own (npm test builds first); --ignore-scripts skips rebuilding it.
  execFileSync('npm', ['pack', '--ignore-scripts', '--pack-destination', dir], { cwd: ROOT, env: npmEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  const { version } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
  const tarball = join(dir, `emperor-${version}.tgz`);
  assert.ok(existsSync(tarball), readdirSync(dir).join(', '));
  const listing = execFileSync('tar', ['tzf', tarball], { encoding: 'utf8' }).split('\n');
  assert.ok(!listing.some((f) => /^package\/node_modules\/@emperor\/[^/]+\/src\//.test(f)), 'no TypeScript sources in the package');
  assert.ok(!listing.some((f) => f.startsWith('package/test/') || f.startsWith('package/bench/')), 'no tests or benchmarks');

  // A clean prefix, and --offline: everything the command needs is in the tarball.
  const prefix = join(dir, 'prefix');
  execFileSync('npm', ['install', '-g', '--offline', '--prefix', prefix, tarball], { cwd: dir, env: npmEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  const bin = join(prefix, 'bin', 'emperor');
  const env = { ...process.env, PATH: `${join(prefix, 'bin')}:/usr/bin:/bin` };
  assert.equal(execFileSync(bin, ['--version'], { encoding: 'utf8', env }).trim(), version);
  assert.ok(existsSync(join(prefix, 'share', 'man', 'man1', 'emperor.1')), 'the man page is installed where man finds it');
  const installed = join(prefix, 'lib', 'node_modules', 'emperor');
  assert.match(execFileSync(bin, ['--help'], { encoding: 'utf8', env }), new RegExp(`guides in\\s+${installed.replaceAll('.', '\\.')}/docs/`));

  // A Node vassal and a Python one (its worker ships in the vassal package), and check.
  const [nodePort, pyPort] = [await freePort(), await freePort()];
  const node = spawnProcess(t, bin, ['--http-socket', `127.0.0.1:${nodePort}`, '--module', join(FIXTURES, 'apps', 'basic.mjs')], { cwd: dir, env });
  const python = spawnProcess(t, bin, ['--http-socket', `127.0.0.1:${pyPort}`, '--wsgi-file', join(FIXTURES, 'apps', 'wsgi_app.py')], { cwd: dir, env });
  assert.match(await serving(`http://127.0.0.1:${nodePort}/`), /^pid \d+/);
  await serving(`http://127.0.0.1:${pyPort}/`);
  assert.ok(node.pid > 0 && python.pid > 0);
  const file = join(dir, 'app.ini');
  writeFileSync(file, `[uwsgi]\nhttp-socket = 127.0.0.1:8080\nmodule = ${join(FIXTURES, 'apps', 'basic.mjs')}\n`);
  assert.equal(execFileSync(bin, ['check', file], { encoding: 'utf8', env }), `${file}: valid vassal file\n`);
});
