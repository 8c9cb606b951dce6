import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { OPTIONS, OPTION_GROUPS, UNSUPPORTED_UWSGI_OPTIONS, renderConfigurationReference } from '@emperor/config';

const ROOT = new URL('../../../../', import.meta.url);

test('docs/configuration.md is up to date (run npm run docs)', () => {
  const committed = readFileSync(new URL('docs/configuration.md', ROOT), 'utf8');
  assert.ok(committed === renderConfigurationReference(), 'docs/configuration.md differs from the option table: run npm run docs');
});

test('the reference documents every option, alias, group and unsupported option', () => {
  const doc = renderConfigurationReference();
  for (const { title } of OPTION_GROUPS) assert.ok(doc.includes(`\n## ${title}\n`), title);
  for (const spec of OPTIONS) {
    const aliases = spec.aliases.length === 0 ? '' : ` (${spec.aliases.map((a) => `\`${a}\``).join(', ')})`;
    assert.ok(doc.includes(`\n| \`${spec.name}\`${aliases} | ${spec.scope} |`), spec.name);
  }
  for (const { name } of UNSUPPORTED_UWSGI_OPTIONS) assert.ok(doc.includes(`\`${name}\``), name);
  assert.ok(doc.includes('| `harakiri` | vassal | integer 0..2147483 | s | `0` |'));
});

test('docs/errors.md has a row for each config error code', () => {
  const errors = readFileSync(new URL('docs/errors.md', ROOT), 'utf8');
  for (const code of ['ERR_CONFIG_READ', 'ERR_CONFIG_PARSE', 'ERR_CONFIG_VALUE']) assert.match(errors, new RegExp(`^\\| \`${code}\` \\|`, 'm'));
});
