import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import {
  OPTIONS, OPTION_GROUPS, UNSUPPORTED_UWSGI_OPTIONS, generatedValues, loadVassalConfig, renderConfigurationReference, renderLogFormatVariables,
  renderUwsgiCoverage, replaceGenerated, replaceGeneratedValues,
} from '@emperor/config';
import { ExitCode } from '@emperor/protocol';

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

/** README.md and every hand-written page under docs/, as `[name, text]`. */
function pages(): [string, string][] {
  const names = ['README.md', ...readdirSync(new URL('docs/', ROOT)).filter((f) => f.endsWith('.md') && f !== 'configuration.md').map((f) => `docs/${f}`)];
  return names.map((name) => [name, readFileSync(new URL(name, ROOT), 'utf8')]);
}

test('the figures quoted inline in README.md and docs/*.md are the code\'s (npm run docs fills them in; issue 22, point 8)', () => {
  for (const [name, text] of pages()) assert.ok(text === replaceGeneratedValues(text, generatedValues()), `${name}: a <!-- value:... --> figure is stale: run npm run docs`);
  assert.match(readFileSync(new URL('README.md', ROOT), 'utf8'), /there are <!-- value:unsupported-options -->\d+<!-- \/value --> on the list/);
  assert.throws(() => replaceGeneratedValues('<!-- value:nope -->1<!-- /value -->', generatedValues()), { code: 'ERR_DOCS_MARKERS' });
});

test('every count of unsupported uWSGI options in the docs is one number, the table\'s (issue 22, point 8)', () => {
  const n = UNSUPPORTED_UWSGI_OPTIONS.length;
  const found: string[] = [];
  for (const [name, text] of [...pages(), ['docs/configuration.md', readFileSync(new URL('docs/configuration.md', ROOT), 'utf8')] as [string, string], ['man/emperor.1', readFileSync(new URL('man/emperor.1', ROOT), 'utf8')] as [string, string]]) {
    const plain = text.replace(/<!--.*?-->/g, '');
    for (const m of plain.matchAll(/(\d+) (?:uWSGI options? (?:not supported|are recognised)|on the list)/g)) found.push(`${name}: ${m[1]}`);
  }
  assert.ok(found.length >= 4, `the count is quoted in README, configuration.md, migrating-from-uwsgi.md and the man page: ${found.join('; ')}`);
  assert.deepEqual(found.filter((f) => !f.endsWith(`: ${n}`)), [], `every count is ${n}`);
});

test('a default quoted in prose, `option` (N s), is the option table\'s (issue 22, point 8)', () => {
  let checked = 0;
  for (const [name, text] of pages()) {
    for (const spec of OPTIONS) {
      if (spec.default === undefined || spec.unit === undefined) continue;
      for (const alias of [spec.name, ...spec.aliases]) {
        const pattern = new RegExp(`\`${alias}\`[^\`.;]{0,40}?(?:\\(|, )(?:default )?(\\d+)\\s*(s|ms|MB)\\b(?: by default)?`, 'g');
        for (const m of text.matchAll(pattern)) {
          const [value, unit] = [m[1] as string, m[2] as string];
          const expected: string = { seconds: 's', milliseconds: 'ms', megabytes: 'MB', bytes: 'bytes', percent: '%' }[spec.unit];
          assert.deepEqual([value, unit], [spec.default, expected], `${name}: "${m[0]}" but the default of ${spec.name} is ${spec.default} ${expected}`);
          checked++;
        }
      }
    }
  }
  assert.ok(checked >= 5, `only ${checked} quoted defaults found: the pattern no longer matches the docs`);
});

test('the exit codes the docs and the systemd unit name are ExitCode\'s (issue 22, point 8)', () => {
  const architecture = readFileSync(new URL('docs/architecture.md', ROOT), 'utf8');
  assert.match(architecture, new RegExp(`^  - ${ExitCode.CONFIG}: invalid config;`, 'm'));
  assert.match(architecture, new RegExp(`^  - ${ExitCode.UNAVAILABLE}: a socket, the uid, a Python interpreter`, 'm'));
  assert.match(architecture, new RegExp(`^  - ${ExitCode.APP_LOAD}: the app could not be loaded`, 'm'));
  const unit = readFileSync(new URL('docs/systemd/emperor.service', ROOT), 'utf8');
  assert.match(unit, new RegExp(`^RestartPreventExitStatus=${ExitCode.CONFIG}$`, 'm'));
  assert.match(readFileSync(new URL('docs/systemd.md', ROOT), 'utf8'), new RegExp(`\`RestartPreventExitStatus=${ExitCode.CONFIG}\` \\| ${ExitCode.CONFIG} means`));
});

test('README\'s table of the npm start examples matches emperor.d/ and package.json (issue 22, point 8)', () => {
  const readme = readFileSync(new URL('README.md', ROOT), 'utf8');
  const start = (JSON.parse(readFileSync(new URL('package.json', ROOT), 'utf8')) as { scripts: { start: string } }).scripts.start;
  const emperorStats = /--emperor-stats (\S+)/.exec(start)?.[1];
  assert.ok(readme.includes(`Stats for the emperor are at \`${emperorStats ?? '?'}\``), `README names npm start's emperor stats ${emperorStats}`);
  const rows = [...readme.matchAll(/^\| `([^`]+)` \| http:\/\/(127\.0\.0\.1:\d+)\//gm)].map((m) => [m[1] as string, m[2] as string]);
  const files = readdirSync(new URL('emperor.d/', ROOT)).sort();
  assert.deepEqual(rows.map(([file]) => file).sort(), files, 'one row per example vassal');
  const stats: number[] = [];
  for (const [file, address] of rows) {
    const loaded = loadVassalConfig(fileURLToPath(new URL(`emperor.d/${file}`, ROOT)), { env: {} }).config;
    const http = loaded.sockets.find((s) => s.protocol === 'http')?.address;
    assert.equal(http?.kind === 'tcp' ? `${http.host}:${http.port}` : '', address, file);
    if (loaded.stats?.kind === 'tcp') stats.push(loaded.stats.port);
  }
  const range = /each vassal at `(\d+)`–`(\d+)`/.exec(readme);
  assert.deepEqual([Math.min(...stats), Math.max(...stats)], [Number(range?.[1]), Number(range?.[2])], 'the vassals\' stats ports');
});
