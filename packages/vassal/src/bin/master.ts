#!/usr/bin/env node
/**
 * Entry of a vassal master process spawned by the emperor:
 *   node master.js VASSAL_FILE [--inherit FILE]...
 * Not meant to be run by hand; use `emperor --ini FILE` for that.
 */
import { runVassal } from '../run-vassal.js';

const args = process.argv.slice(2);
const file = args.shift();
const inherit: string[] = [];
while (args.length > 0) {
  const flag = args.shift();
  const value = args.shift();
  if (flag === '--inherit' && value !== undefined) inherit.push(value);
  else {
    process.stderr.write(`master: unexpected argument ${JSON.stringify(flag)}\n`);
    process.exit(2);
  }
}
if (file === undefined) {
  process.stderr.write('usage: master.js VASSAL_FILE [--inherit FILE]...\n');
  process.exit(2);
}
await runVassal(file, { inherit });
