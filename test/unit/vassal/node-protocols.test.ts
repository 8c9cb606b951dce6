import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import type { SocketProtocol } from '@emperor/config';
import type { Logger } from '@emperor/process/logger';
import { PROTOCOLS, planProtocols, protocolFor, type ProtocolOptions } from '@emperor/vassal/node-worker/protocols/index';
import { WorkerProtocolError } from '@emperor/vassal/node-worker/errors';
import { frameUwsgiResponse } from '@emperor/vassal/node-worker/protocols/uwsgi';
import type { WorkerSocket } from '@emperor/vassal';

const socket = (protocol: string, name = '127.0.0.1:9000', fd = 3): WorkerSocket => ({ fd, name, protocol: protocol as SocketProtocol });
const quiet = { warn: () => {}, error: () => {}, info: () => {} } as unknown as Logger;
const options: ProtocolOptions = { bufferSize: 4096, socketTimeoutMs: 4000, fastcgi: { maxConns: 512, maxReqs: 1 }, logger: quiet };

test('each socket protocol the config knows has a module of that name', () => {
  // `satisfies` makes this list fail to compile when the config gains a protocol.
  const every = { http: true, uwsgi: true, fastcgi: true } as const satisfies Record<SocketProtocol, true>;
  for (const name of Object.keys(every)) assert.equal(protocolFor(socket(name)).name, name);
  assert.deepEqual([...PROTOCOLS.keys()].sort(), Object.keys(every).sort());
  for (const [name, module] of PROTOCOLS) assert.equal(module.name, name);
});

test('an unknown protocol name is refused with the socket, the name and the ones there are', () => {
  assert.throws(() => protocolFor(socket('scgi', '/run/app.sock')), (err: unknown) => {
    assert.ok(err instanceof WorkerProtocolError);
    assert.equal(err.code, 'ERR_WORKER_PROTOCOL');
    assert.equal(err.message, 'socket /run/app.sock: unknown protocol "scgi" in the worker spec (EMPEROR_WORKER); this Node worker serves http, uwsgi, fastcgi');
    return true;
  });
  // Names an object lookup would find on Object.prototype find nothing.
  for (const name of ['constructor', '__proto__', 'toString', 'hasOwnProperty', '', 'HTTP', 'uwsgi ']) {
    assert.throws(() => protocolFor(socket(name)), WorkerProtocolError, JSON.stringify(name));
  }
});

test('planProtocols groups sockets by module in config order, and stops at the first unknown one', () => {
  const sockets = [socket('uwsgi', 'u1', 3), socket('http', 'h1', 4), socket('uwsgi', 'u2', 5), socket('http', 'h2', 6)];
  const plan = planProtocols(sockets);
  assert.equal(plan.sockets, sockets);
  assert.deepEqual([...plan.byProtocol].map(([p, ss]) => [p.name, ss.map((s) => s.name)]), [['uwsgi', ['u1', 'u2']], ['http', ['h1', 'h2']]]);
  assert.throws(() => planProtocols([socket('http', 'h1'), socket('scgi', 's1'), socket('fcgi', 'f1')]), /socket s1: unknown protocol "scgi"/);
});

test('http: the app server takes the first socket; a further one hands its requests to it', () => {
  const app = http.createServer();
  const seen: unknown[] = [];
  app.on('request', (req) => seen.push(req));
  const served = protocolFor(socket('http')).serve(app, [socket('http', 'h1', 3), socket('http', 'h2', 4)], options);
  assert.deepEqual(served.map((s) => s.socket.name), ['h1', 'h2']);
  assert.equal(served[0]?.server, app);
  const second = served[1]?.server;
  assert.ok(second instanceof http.Server && second !== app);
  const req = {};
  second.emit('request', req, {});
  assert.deepEqual(seen, [req], 'the request reached the app server once');
});

test('uwsgi: needs an http.Server, frames its responses, and gives each socket its own server', () => {
  const uwsgi = protocolFor(socket('uwsgi'));
  const plain = net.createServer();
  assert.throws(() => uwsgi.serve(plain, [socket('uwsgi', 'u1'), socket('uwsgi', 'u2', 4)], options), (err: unknown) => {
    assert.ok(err instanceof WorkerProtocolError);
    assert.equal(err.message, "cannot serve u1, u2: the uwsgi protocol needs the app's server to be an http.Server");
    return true;
  });
  const app = http.createServer(() => {});
  const before = app.listeners('request').length;
  const served = uwsgi.serve(app, [socket('uwsgi', 'u1')], options);
  assert.equal(app.listeners('request').length, before + 1, 'one per-request hook');
  assert.equal(app.listeners('request')[0], frameUwsgiResponse, 'prepended: it runs before the app');
  assert.equal(served.length, 1);
  assert.ok(served[0]?.server instanceof net.Server && served[0].server !== app && !(served[0].server instanceof http.Server));
});

test('close() of a server that never listened resolves (a stop during start-up)', async () => {
  const app = http.createServer();
  const served = protocolFor(socket('uwsgi')).serve(app, [socket('uwsgi')], options);
  await Promise.all(served.map((s) => s.close()));
});
