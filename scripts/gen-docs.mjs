#!/usr/bin/env node
// Writes what the docs take from the code, so they cannot drift (a unit test fails while
// any of it is stale): the Python worker's contract.py from packages/protocol's contracts,
// docs/configuration.md from the option table, and the generated
// parts of docs/migrating-from-uwsgi.md (option coverage) and docs/logging.md (log-format
// variables). Run `npm run docs` after changing options.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { renderConfigurationReference, renderLogFormatVariables, renderUwsgiCoverage, replaceGenerated } from '@emperor/config';
import { renderPythonContract } from '@emperor/protocol';

const docs = new URL('../docs/', import.meta.url);
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
