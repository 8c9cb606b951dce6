/**
 * `http-socket`: HTTP/1.x from the client or from a front end's `proxy_pass`, parsed by
 * Node's own HTTP server. The app's server accepts on the first http socket itself;
 * every further http socket gets a server of its own that hands each request to the
 * app's (`emit('request')`), so every request passes the same `request` listeners (the
 * worker's accounting first).
 */
import http from 'node:http';
import type net from 'node:net';
import { closeGracefully, type Protocol, type ProtocolServer } from './protocol.js';

/** The `http` protocol module. The app's server may be of any kind (http, https, net). */
export const httpProtocol: Protocol = {
  name: 'http',
  serve(app: net.Server, sockets): readonly ProtocolServer[] {
    const forward: http.RequestListener = (req, res) => app.emit('request', req, res);
    return sockets.map((socket, i) => {
      const server = i === 0 ? app : http.createServer(forward);
      return { socket, server, close: () => closeGracefully(server) };
    });
  },
};
