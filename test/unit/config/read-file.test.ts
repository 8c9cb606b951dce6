import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { ConfigParseError, ConfigReadError, MAX_CONFIG_BYTES, readConfigFile } from '@emperor/config';
import { tempDir, throwsExactly } from './helpers.js';

test('reads a file by extension; the path stays as given', (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'shop.json');
  writeFileSync(path, '{"uwsgi": {"socket": ":1"}}');
  const rel = relative(process.cwd(), path);
  const raw = readConfigFile(rel);
  assert.equal(raw.file, rel);
  assert.equal(raw.format, 'json');
  assert.deepEqual(raw.options, [{ file: rel, line: 1, name: 'socket', value: ':1' }]);
  writeFileSync(join(dir, 'shop.conf'), '[uwsgi]\nmaster\n');
  assert.equal(readConfigFile(join(dir, 'shop.conf'), { format: 'ini' }).options[0]?.name, 'master');
});

test('missing file, directory, symlink loop', (t) => {
  const dir = tempDir(t);
  const missing = join(dir, 'missing.ini');
  const err = throwsExactly(() => readConfigFile(missing), ConfigReadError, `${missing}: cannot read: no such file`);
  assert.equal((err.cause as NodeJS.ErrnoException).code, 'ENOENT');
  const sub = join(dir, 'dir.ini');
  mkdirSync(sub);
  throwsExactly(() => readConfigFile(sub), ConfigReadError, `${sub}: cannot read: not a regular file (a directory)`);
  const loop = join(dir, 'loop.ini');
  symlinkSync(join(dir, 'other.ini'), loop);
  symlinkSync(loop, join(dir, 'other.ini'));
  throwsExactly(() => readConfigFile(loop), ConfigReadError, `${loop}: cannot read: too many levels of symbolic links (a symlink loop?)`);
});

test('a FIFO is refused without blocking', (t) => {
  const dir = tempDir(t);
  const fifo = join(dir, 'pipe.ini');
  const made = spawnSync('mkfifo', [fifo]); // node:fs cannot make one
  if (made.status !== 0) return t.skip('mkfifo is not available');
  throwsExactly(() => readConfigFile(fifo), ConfigReadError, `${fifo}: cannot read: not a regular file (a FIFO)`);
});

test('an unreadable file (EACCES)', (t) => {
  const dir = tempDir(t);
  chmodSync(dir, 0o755);
  const path = join(dir, 'secret.ini');
  writeFileSync(path, '[uwsgi]\nsocket = :1\n', { mode: 0o600 });
  chmodSync(path, 0o000);
  if (process.getuid?.() !== 0) {
    throwsExactly(() => readConfigFile(path), ConfigReadError, `${path}: cannot read: permission denied`);
    return;
  }
  // root reads anything, so read as nobody in a child process.
  const script = `
    import { readConfigFile } from ${JSON.stringify(import.meta.resolve('@emperor/config'))};
    try { readConfigFile(${JSON.stringify(path)}); console.log('read'); } catch (err) { console.log(JSON.stringify([err.code, err.message])); }`;
  const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], { uid: 65534, gid: 65534, encoding: 'utf8', cwd: dir });
  assert.equal(child.stderr, '');
  assert.deepEqual(JSON.parse(child.stdout), ['ERR_CONFIG_READ', `${path}: cannot read: permission denied`]);
});

test('files over 1 MiB are refused with their size', (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'big.ini');
  writeFileSync(path, `[uwsgi]\n${'; padding\n'.repeat(MAX_CONFIG_BYTES / 10 + 1)}`);
  throwsExactly(() => readConfigFile(path), ConfigReadError, `${path}: file is ${statSync(path).size} bytes; the limit is 1048576 bytes (1 MiB)`);
  const exact = join(dir, 'exact.ini');
  writeFileSync(exact, `[uwsgi]\n${'x'.repeat(MAX_CONFIG_BYTES - 9)}\n`);
  assert.equal(readConfigFile(exact).options.length, 1);
});

test('binary junk: invalid UTF-8 and NUL bytes, with their line', (t) => {
  const dir = tempDir(t);
  const latin1 = join(dir, 'latin1.ini');
  writeFileSync(latin1, Buffer.concat([Buffer.from('[uwsgi]\nsocket = :1\nenv = A='), Buffer.from([0xe9]), Buffer.from('\n')]));
  throwsExactly(() => readConfigFile(latin1), ConfigReadError, `${latin1}:3: not valid UTF-8`);
  const nul = join(dir, 'nul.xml');
  writeFileSync(nul, '<uwsgi>\n<a>1</a>\n<b>\0</b></uwsgi>');
  throwsExactly(() => readConfigFile(nul), ConfigReadError, `${nul}:3: contains a NUL byte; is it a binary file?`);
  const elf = join(dir, 'a.out.json');
  writeFileSync(elf, Buffer.from([0x7f, 0x45, 0x4c, 0x46, 0x02, 0x01, 0x01, 0x00]));
  throwsExactly(() => readConfigFile(elf), ConfigReadError, `${elf}:1: contains a NUL byte; is it a binary file?`);
});

test('YAML and unknown extensions are refused', () => {
  throwsExactly(() => readConfigFile('emperor.d/shop.yaml'), ConfigParseError, 'emperor.d/shop.yaml: YAML vassal files are not supported; use INI, XML or JSON');
  throwsExactly(() => readConfigFile('emperor.d/shop.yml'), ConfigParseError, 'emperor.d/shop.yml: YAML vassal files are not supported; use INI, XML or JSON');
  throwsExactly(() => readConfigFile('emperor.d/shop.toml'), ConfigParseError, 'emperor.d/shop.toml: unsupported config file extension ".toml"; expected .ini, .xml or .json');
  throwsExactly(() => readConfigFile('emperor.d/shop'), ConfigParseError, 'emperor.d/shop: unsupported config file name without an extension; expected .ini, .xml or .json');
});
