#!/usr/bin/env node
// Writes docs/configuration.md from the option table in packages/config/src/options.ts.
// Run `npm run docs` after changing options; a unit test fails while the file is stale.
import { mkdirSync, writeFileSync } from 'node:fs';
import { renderConfigurationReference } from '@emperor/config';

const docs = new URL('../docs/', import.meta.url);
mkdirSync(docs, { recursive: true });
writeFileSync(new URL('configuration.md', docs), renderConfigurationReference());
console.log('wrote docs/configuration.md');
