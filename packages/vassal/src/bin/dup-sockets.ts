#!/usr/bin/env node
/**
 * Entry of the short-lived child a master in cheap mode starts to get a second
 * descriptor of each of its listening sockets (packages/vassal/src/master/sockets.ts
 * `dupSockets`):
 *   node dup-sockets.js COUNT      (the sockets at fd 3 … 3 + COUNT - 1, an IPC channel)
 * It wraps each descriptor in a libuv handle without listening on it (so it never
 * accepts a connection) and sends it back on the IPC channel, which gives the master a
 * duplicate descriptor it can watch for a connection and close without closing the
 * socket. Node has no dup(2); this round trip is Node's own way of passing a descriptor
 * (SCM_RIGHTS). Exits 0 once every handle is sent, 1 with the reason on stderr.
 */
import net from 'node:net';
import { ExitCode } from '@emperor/protocol';

type CreateServerHandle = (address: string | null, port: number, addressType: number, fd?: number) => object | number;
// Not in @types/node; stable since Node 0.x because cluster relies on it (the master binds with it too).
const createServerHandle = (net as unknown as { _createServerHandle: CreateServerHandle })._createServerHandle;

const count = Number(process.argv[2] ?? 0);
const fail = (why: string): void => {
  process.stderr.write(why);
  process.exit(ExitCode.FAILURE);
};
if (process.send === undefined) fail('no IPC channel');
let pending = count;
if (pending === 0) process.exit(ExitCode.OK);
for (let i = 0; i < count; i++) {
  const handle = createServerHandle(null, 0, 0, 3 + i); // with an fd, Node asserts no address and no port
  if (typeof handle === 'number') fail(`fd ${3 + i}: not a socket (error ${handle})`);
  process.send?.({ index: i }, handle as net.Server, undefined, (err) => {
    if (err !== null) fail(`fd ${3 + i}: ${err.message}`);
    else if (--pending === 0) process.exit(ExitCode.OK);
  });
}
