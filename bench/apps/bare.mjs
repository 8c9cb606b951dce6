// Two bare Node processes sharing one socket, no supervisor: the launcher binds (no
// listen, so it never accepts), hands the fd to two children, and only waits.
import net from 'node:net';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const port = Number(process.env.PORT);
if (process.argv[2] === 'child') {
  const { default: hello } = await import('./hello.mjs');
  (await import('node:http')).createServer(hello).listen({ fd: 3, backlog: 511 });
} else {
  const handle = net._createServerHandle('127.0.0.1', port, 4);
  const self = fileURLToPath(import.meta.url);
  for (let i = 0; i < 2; i++) spawn(process.execPath, [self, 'child'], { stdio: ['ignore', 'inherit', 'inherit', handle.fd] });
  setInterval(() => {}, 1 << 30);
}
