// Peers that come from npm are installed on demand outside the repository (npm would
// otherwise walk up to this workspace), in a cache directory of their own.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const PEERS_DIR = process.env.EMPEROR_BENCH_PEERS ?? '/var/cache/emperor-bench-peers';

/** Path of an npm peer's bin, installing `spec` first if needed. */
export function npmPeer(bin, spec) {
  const path = join(PEERS_DIR, 'node_modules', '.bin', bin);
  if (!existsSync(path)) {
    mkdirSync(PEERS_DIR, { recursive: true });
    if (!existsSync(join(PEERS_DIR, 'package.json'))) writeFileSync(join(PEERS_DIR, 'package.json'), '{"name":"emperor-bench-peers","private":true}\n');
    console.error(`installing ${spec} into ${PEERS_DIR} ...`);
    execFileSync('npm', ['install', '--no-audit', '--no-fund', spec], { cwd: PEERS_DIR, stdio: 'inherit' });
  }
  return path;
}

/** Path of a Debian tool, or an error saying which package to install. */
export function debianTool(bin, pkg = bin) {
  for (const dir of ['/usr/bin', '/usr/sbin', '/usr/local/bin']) if (existsSync(join(dir, bin))) return join(dir, bin);
  throw new Error(`${bin} is not installed: apt-get install ${pkg}`);
}
