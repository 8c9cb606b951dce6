/**
 * The man page emperor(1): rendered from the command and option tables, committed as
 * man/emperor.1 (current: npm run docs), installed with the package (issue 22).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { COMMANDS, EXIT_STATUS, renderManPage } from '@emperor/cli';
import { OPTIONS } from '@emperor/config';
import { ExitCode } from '@emperor/protocol';
import { ROOT } from '../../helpers/index.js';

const PAGE = join(ROOT, 'man', 'emperor.1');

test('man/emperor.1 is what npm run docs renders from the command and option tables', () => {
  assert.ok(readFileSync(PAGE, 'utf8') === renderManPage(), 'man/emperor.1 is stale: run npm run docs');
});

test('the man page names every command, flag, option and exit status, and package.json installs it', () => {
  const page = renderManPage();
  const roffName = (name: string): string => name.replace(/-/g, '\\-');
  for (const c of COMMANDS) {
    if (c.name !== 'run') assert.ok(page.includes(`.B emperor ${c.name}`), c.name);
    for (const f of c.flags) assert.ok(page.includes(`\\fB\\-\\-${roffName(f.name)}\\fR`), `${c.name} --${f.name}`);
  }
  for (const spec of OPTIONS) assert.ok(page.includes(`.TP\n\\fB\\-\\-${roffName(spec.name)}\\fR`), spec.name);
  for (const name of Object.keys(ExitCode) as (keyof typeof ExitCode)[]) assert.ok(page.includes(`.B ${ExitCode[name]}\n`) && EXIT_STATUS[name].length > 0, name);
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { man?: string[] };
  assert.deepEqual(pkg.man, ['./man/emperor.1']);
  assert.match(readFileSync(join(ROOT, 'docs', 'systemd', 'emperor.service'), 'utf8'), /^Documentation=man:emperor\(1\)/m, 'the unit names it');
});

test('groff reads the man page without a warning', { skip: existsSync('/usr/bin/groff') ? false : 'no groff' }, () => {
  const r = spawnSync('groff', ['-man', '-Tutf8', '-ww', '-z', PAGE], { encoding: 'utf8' });
  assert.equal(r.status, 0);
  assert.equal(r.stderr, '');
  // Without the overstrikes (bold, underline) grotty writes for a terminal.
  const text = spawnSync('groff', ['-man', '-Tascii', PAGE], { encoding: 'utf8' }).stdout.replace(/.\x08/g, '');
  assert.match(text, /emperor stats address/);
});
