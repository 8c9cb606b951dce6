#!/usr/bin/env node
// Runs the compiled tests (test/dist) with node:test. Node 20's `node --test` does not
// expand quoted globs, so the files are listed here and handed to `run({ files })`.
//
//   node test/run.mjs                 every layer
//   node test/run.mjs unit e2e        only these layers (folders under test/)
//   node test/run.mjs --grep harakiri only files whose path contains "harakiri"
import { readdirSync, statSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { run } from 'node:test';
import { spec } from 'node:test/reporters';

// The emperor, its masters and their Node workers run from the one-file bundles
// (scripts/bundle.mjs); rebuild them from tsc's output so `tsc -b && node test/run.mjs`
// never tests a stale bundle (about 0.5 s).
await (await import('../scripts/bundle.mjs')).bundle();

const root = fileURLToPath(new URL('./dist/', import.meta.url));
const args = process.argv.slice(2);
const grepAt = args.indexOf('--grep');
const grep = grepAt >= 0 ? args.splice(grepAt, 2)[1] : undefined;
const layers = args.length > 0 ? args : ['unit', 'component', 'e2e'];
// Under c8 (npm test), every Node process of the run writes its coverage into
// NODE_V8_COVERAGE: masters and workers run as vassal users, so the directory is theirs too.
if (process.env.NODE_V8_COVERAGE) {
  const { chmodSync, mkdirSync } = await import('node:fs');
  mkdirSync(process.env.NODE_V8_COVERAGE, { recursive: true });
  chmodSync(process.env.NODE_V8_COVERAGE, 0o1777);
}
// The reliability layer records what it tried; start each run with an empty record.
if (layers.includes('reliability')) {
  const { writeFileSync } = await import('node:fs');
  writeFileSync(process.env.EMPEROR_RELIABILITY_OUT ?? join(root, 'reliability.jsonl'), '');
}

function walk(dir) {
  let out = [];
  let entries;
  try { entries = readdirSync(dir); } catch { return out; }
  for (const name of entries.sort()) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out = out.concat(walk(path));
    else if (name.endsWith('.test.js')) out.push(path);
  }
  return out;
}

const files = layers.flatMap((layer) => walk(join(root, layer)))
  .filter((f) => grep === undefined || relative(root, f).split(sep).join('/').includes(grep));
if (files.length === 0) {
  console.error(`no test files found for layers ${layers.join(', ')}${grep ? ` matching ${grep}` : ''}`);
  process.exit(1);
}

// Unit tests are cheap and parallel; component and e2e tests start real processes and
// sockets, so on a 2-core machine they run two files at a time.
const concurrency = layers.every((l) => l === 'unit') ? true : 2;
const stream = run({ files, concurrency, timeout: 10 * 60_000 });
stream.on('test:fail', () => { process.exitCode = 1; });
stream.compose(spec).pipe(process.stdout);
