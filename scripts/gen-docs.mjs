#!/usr/bin/env node
// Writes what the docs take from the code, so they cannot drift (a unit test fails while
// any of it is stale): the Python worker's contract.py from packages/protocol's contracts,
// docs/configuration.md from the option table, the generated parts of
// docs/migrating-from-uwsgi.md (option coverage) and docs/logging.md (log-format
// variables), the figures quoted inline in README.md and docs/*.md (`<!-- value:NAME -->`),
// and the man page man/emperor.1 from the command and option tables. Run `npm run docs`
// after changing options or commands.
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import {
  generatedValues, renderConfigurationReference, renderLogFormatVariables, renderUwsgiCoverage, replaceGenerated, replaceGeneratedValues,
} from '@emperor/config';
import { renderManPage } from '@emperor/cli';
import { renderPythonContract } from '@emperor/protocol';

const root = new URL('../', import.meta.url);
const docs = new URL('docs/', root);
mkdirSync(docs, { recursive: true });
writeFileSync(new URL('../packages/vassal/python/emperor_worker/contract.py', import.meta.url), renderPythonContract());
console.log('wrote packages/vassal/python/emperor_worker/contract.py');
writeFileSync(new URL('configuration.md', docs), renderConfigurationReference());
console.log('wrote docs/configuration.md');
for (const [file, name, render] of [
  ['migrating-from-uwsgi.md', 'uwsgi-coverage', renderUwsgiCoverage],
  ['logging.md', 'log-format-variables', renderLogFormatVariables],
]) {
  const url = new URL(file, docs);
  writeFileSync(url, replaceGenerated(readFileSync(url, 'utf8'), name, render()));
  console.log(`updated the generated part of docs/${file}`);
}
const values = generatedValues();
for (const page of ['README.md', ...readdirSync(docs).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)]) {
  const url = new URL(page, root);
  const before = readFileSync(url, 'utf8');
  const after = replaceGeneratedValues(before, values);
  if (after !== before) {
    writeFileSync(url, after);
    console.log(`updated the figures of ${page}`);
  }
}
mkdirSync(new URL('man/', root), { recursive: true });
writeFileSync(new URL('man/emperor.1', root), renderManPage());
console.log('wrote man/emperor.1');
