import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { OPTIONS, OPTION_GROUPS, UNSUPPORTED_UWSGI_OPTIONS, renderConfigurationReference, renderLogFormatVariables, renderUwsgiCoverage, replaceGenerated } from '@emperor/config';

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

test('the generated parts of migrating-from-uwsgi.md and logging.md are up to date (run npm run docs)', () => {
  for (const [file, name, render] of [
    ['docs/migrating-from-uwsgi.md', 'uwsgi-coverage', renderUwsgiCoverage],
    ['docs/logging.md', 'log-format-variables', renderLogFormatVariables],
  ] as const) {
    const committed = readFileSync(new URL(file, ROOT), 'utf8');
    assert.ok(committed === replaceGenerated(committed, name, render()), `${file} differs from the code: run npm run docs`);
  }
  const coverage = renderUwsgiCoverage();
  assert.match(coverage, /^\| `harakiri` \| supported \|/m);
  assert.match(coverage, /^\| `master` \| accepted, no effect \|/m);
  assert.match(coverage, /^\| `gevent` \| not supported \| Workers are processes, or threads in Python workers: no async cores\. \|$/m);
  assert.match(coverage, /^\| `threads` \| supported \| Python: threads per worker/m);
  assert.match(coverage, /^\| `prometheus` \| Emperor only \|/m);
});

test('docs/benchmarks.md and its charts are what npm run bench:report renders from docs/benchmarks/results.json', async () => {
  const report = (await import(new URL('scripts/bench-report.mjs', ROOT).href)) as { renderBenchmarks: (r: unknown) => { markdown: string; svgs: Record<string, string> } };
  const { markdown, svgs } = report.renderBenchmarks(JSON.parse(readFileSync(new URL('docs/benchmarks/results.json', ROOT), 'utf8')));
  assert.ok(readFileSync(new URL('docs/benchmarks.md', ROOT), 'utf8') === markdown, 'docs/benchmarks.md is stale: run npm run bench:report');
  assert.ok(Object.keys(svgs).length > 0, 'at least one chart');
  for (const [name, svg] of Object.entries(svgs)) {
    assert.ok(readFileSync(new URL(`docs/benchmarks/${name}`, ROOT), 'utf8') === svg, `docs/benchmarks/${name} is stale`);
    assert.match(markdown, new RegExp(`\\]\\(benchmarks/${name}\\)`));
  }
});
