#!/usr/bin/env node
/**
 * Entry of the short-lived child a `cheap` master starts to make its sockets listen
 * (packages/vassal/src/master/sockets.ts `listenWithoutAccepting`):
 *   node listen.js COUNT BACKLOG     (the sockets at fd 3, 4, … 3 + COUNT - 1)
 * It calls listen(BACKLOG) on each (Node's listen on an fd is synchronous) and exits
 * before its event loop could accept a connection: they stay queued for the workers.
 * Exit 0, or 1 with the reasons on stderr, one line.
 */
import net from 'node:net';
import { ExitCode } from '@emperor/protocol';

const [count = 0, backlog = 0] = process.argv.slice(2).map(Number);
const errors: string[] = [];
for (let i = 0; i < count; i++) {
  const fail = (err: Error): void => {
    errors.push(`fd ${3 + i}: ${err.message}`);
  };
  const server = net.createServer();
  server.on('error', fail);
  try {
    server.listen({ fd: 3 + i, backlog });
  } catch (err) {
    fail(err as Error);
  }
}
// A failed listen is reported on the next tick, before the event loop runs.
process.nextTick(() => {
  if (errors.length > 0) process.stderr.write(errors.join('; '));
  process.exit(errors.length > 0 ? ExitCode.FAILURE : ExitCode.OK);
});
