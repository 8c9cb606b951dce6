#!/usr/bin/env node
/**
 * Entry of a vassal master process spawned by the emperor:
 *   node master.js VASSAL_FILE [--tyrant-uid N --tyrant-gid N] [--inherit FILE]... [--on-demand SOCKET]
 * Not meant to be run by hand; use `emperor --ini FILE` for that. The tyrant ids come
 * from the emperor, on argv, where no vassal option can reach. `--on-demand` names the
 * listening socket the emperor left on fd 0 for an on-demand vassal.
 */
import { ExitCode } from '@emperor/protocol';
import { runVassal } from '../master/run-vassal.js';

const args = process.argv.slice(2);
const file = args.shift();
const inherit: string[] = [];
const tyrant: { uid?: number; gid?: number } = {};
let onDemandSocket: string | undefined;
while (args.length > 0) {
  const flag = args.shift();
  const value = args.shift();
  if (flag === '--inherit' && value !== undefined) inherit.push(value);
  else if (flag === '--on-demand' && value !== undefined) onDemandSocket = value;
  else if ((flag === '--tyrant-uid' || flag === '--tyrant-gid') && value !== undefined && /^\d+$/.test(value)) {
    tyrant[flag === '--tyrant-uid' ? 'uid' : 'gid'] = Number(value);
  } else {
    process.stderr.write(`master: unexpected argument ${JSON.stringify(flag)}\n`);
    process.exit(ExitCode.USAGE);
  }
}
if (file === undefined || (tyrant.uid === undefined) !== (tyrant.gid === undefined)) {
  process.stderr.write('usage: master.js VASSAL_FILE [--tyrant-uid N --tyrant-gid N] [--inherit FILE]...\n');
  process.exit(ExitCode.USAGE);
}
const forced = tyrant.uid !== undefined && tyrant.gid !== undefined ? { uid: tyrant.uid, gid: tyrant.gid } : undefined;
process.exit(await runVassal(file, { inherit, tyrant: forced, onDemandSocket }));
