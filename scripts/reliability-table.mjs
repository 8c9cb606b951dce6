#!/usr/bin/env node
// Renders the reliability suite's record (test/dist/reliability.jsonl) as the Markdown
// table of docs/reliability.md. Prints it; with --write, also replaces the table in the doc.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

const root = join(fileURLToPath(new URL('.', import.meta.url)), '..');
const source = process.env.EMPEROR_RELIABILITY_OUT ?? join(root, 'test', 'dist', 'reliability.jsonl');
if (!existsSync(source)) {
  console.error(`no results at ${source}: run npm run test:reliability`);
  process.exit(1);
}
const rows = readFileSync(source, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
const order = ['bad file', 'fuzz', 'chaos', 'zero downtime', 'security'];
rows.sort((a, b) => order.indexOf(a.area) - order.indexOf(b.area) || a.what.localeCompare(b.what));
const cell = (s) => String(s ?? '').replaceAll('|', '\\|').replaceAll('\n', ' ');
const lines = [
  '| area | what was tried | times | what happened | log line |',
  '| --- | --- | ---: | --- | --- |',
  ...rows.map((r) => `| ${cell(r.area)} | ${cell(r.what)} | ${r.tries} | ${cell(r.outcome)} | ${r.log ? `\`${cell(r.log).slice(0, 160)}\`` : ''} |`),
];
const table = lines.join('\n');
console.log(`\n${table}\n`);
if (process.argv.includes('--write')) {
  const doc = join(root, 'docs', 'reliability.md');
  const text = readFileSync(doc, 'utf8');
  const start = text.indexOf('<!-- table -->');
  const end = text.indexOf('<!-- /table -->');
  if (start < 0 || end < 0) throw new Error(`${doc} has no <!-- table --> ... <!-- /table --> markers`);
  writeFileSync(doc, `${text.slice(0, start + '<!-- table -->'.length)}\n${table}\n${text.slice(end)}`);
  console.log(`wrote ${doc}`);
}
