// The floor of a Node three-tier supervisor: what two Node processes per vassal cost with
// none of Emperor's code. `node floor.mjs emperor DIR` starts, for every *.ini in DIR (and
// for every one dropped there later), a "master" that binds the vassal's `http-socket` port
// without listening and hands the fd to one "worker", which serves a hello world on it.
// Deleting a file ends its pair. Nothing else: no config parsing beyond the port, no
// scoreboard, no heartbeat, no logging. Used by bench/emperor-scale.mjs (column "floor").
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, watch } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const self = fileURLToPath(import.meta.url);
const [role, arg] = process.argv.slice(2);

if (role === 'worker') {
  const http = await import('node:http');
  http.createServer((req, res) => res.end('Hello')).listen({ fd: 3 });
} else if (role === 'master') {
  const net = await import('node:net');
  const handle = net._createServerHandle('127.0.0.1', Number(arg), 4);
  const worker = spawn(process.execPath, [self, 'worker'], { stdio: ['ignore', 'ignore', 'inherit', handle.fd] });
  process.on('SIGTERM', () => { worker.kill('SIGTERM'); process.exit(0); });
  worker.on('exit', () => process.exit(1));
} else if (role === 'emperor') {
  const masters = new Map();
  const scan = () => {
    const files = new Set(readdirSync(arg).filter((f) => f.endsWith('.ini')));
    for (const f of files) {
      if (masters.has(f)) continue;
      let port;
      try { port = /http-socket\s*=\s*[\d.]*:(\d+)/.exec(readFileSync(join(arg, f), 'utf8'))?.[1]; } catch { continue; }
      if (port === undefined) continue;
      masters.set(f, spawn(process.execPath, [self, 'master', port], { stdio: ['ignore', 'ignore', 'inherit'] }));
    }
    for (const [f, child] of masters) if (!files.has(f)) { child.kill('SIGTERM'); masters.delete(f); }
  };
  watch(arg, scan);
  scan();
  process.on('SIGTERM', () => { for (const child of masters.values()) child.kill('SIGTERM'); process.exit(0); });
} else {
  console.error('usage: node floor.mjs emperor DIR');
  process.exit(2);
}
