/**
 * readTcpListenQueues against the kernel: listeners that never accept (a Python process),
 * on IPv4 and IPv6, with established connections in the same files after them, which the
 * reader stops before (it reads only the listening head of /proc/net/tcp and tcp6).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readlinkSync } from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';
import { readTcpListenQueues } from '@emperor/vassal';
import { spawnProcess, waitFor } from '../helpers/index.js';

/** A Python process listening on `host` with backlog 16 that never accepts; resolves to its port and socket inode. */
async function idleListener(t: import('node:test').TestContext, host: string): Promise<{ port: number; inode: number }> {
  const family = host.includes(':') ? 'AF_INET6' : 'AF_INET';
  const p = spawnProcess(t, '/usr/bin/python3', ['-c', [
    'import socket, sys, time',
    `s = socket.socket(socket.${family}, socket.SOCK_STREAM)`,
    `s.bind((${JSON.stringify(host)}, 0))`,
    's.listen(16)',
    'print(s.getsockname()[1], s.fileno(), flush=True)',
    'time.sleep(600)',
  ].join('\n')]);
  // The whole line, not the first bytes of it that a busy machine may hand over alone.
  const [, port, fd] = (await waitFor(() => /^(\d+) (\d+)\n/.exec(p.stdout()) ?? undefined, { message: 'the listener' })).map(Number);
  const inode = Number(/^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${p.pid}/fd/${fd}`))?.[1]);
  return { port: port as number, inode };
}

test('readTcpListenQueues counts the connections waiting in each listener, IPv4 and IPv6', async (t) => {
  // Connections of our own, established and accepted, so both files list sockets past the listeners.
  const server = createServer((s) => s.on('error', () => {}));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => server.close());
  const opened: Socket[] = [];
  t.after(() => opened.forEach((s) => s.destroy()));
  const open = (port: number, host: string): Promise<void> => new Promise((resolve) => {
    const s = connect(port, host, () => resolve());
    s.on('error', () => resolve());
    opened.push(s);
  });
  const address = server.address() as { port: number };
  await Promise.all(Array.from({ length: 20 }, () => open(address.port, '127.0.0.1')));

  const v4 = await idleListener(t, '127.0.0.1');
  const v6 = await idleListener(t, '::1');
  assert.deepEqual(await readTcpListenQueues(new Set([v4.inode, v6.inode])), new Map([[v4.inode, 0], [v6.inode, 0]]));
  await Promise.all([...Array.from({ length: 3 }, () => open(v4.port, '127.0.0.1')), ...Array.from({ length: 5 }, () => open(v6.port, '::1'))]);
  const queues = await waitFor(async () => {
    const q = await readTcpListenQueues(new Set([v4.inode, v6.inode]));
    return q.get(v4.inode) === 3 && q.get(v6.inode) === 5 ? q : undefined;
  }, { message: '3 and 5 connections queued' });
  assert.equal(queues.size, 2);
  assert.deepEqual(await readTcpListenQueues(new Set()), new Map());
});
