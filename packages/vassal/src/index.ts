export * from './shared/scoreboard.js';
export * from './master/sockets.js';
export * from './master/users.js';
export * from './shared/worker-spec.js';
export * from './master/master.js';
export * from './master/pool/index.js';
export * from './master/runtimes/index.js';
export * from './master/io.js';
export * from './master/listen-queues.js';
export * from './master/health.js';
export * from './master/cheaper.js';
export * from './master/cheap-watch.js';
export * from './master/stats.js';
export * from './shared/request-log.js';
export * from './master/python-interpreter.js';
export * from './master/emperor-link.js';
export { runVassal, WORKER_ENTRIES, type RunVassalOptions } from './master/run-vassal.js';

/** Absolute path of the master entry the emperor spawns: the one-file bundle of bin/master.js (scripts/bundle.mjs). */
export const MASTER_ENTRY = new URL('./bundle/master.js', import.meta.url).pathname;
export { encodeUwsgiPacket, parseUwsgiPacket, uwsgiToHttpHead, type UwsgiParse, type UwsgiPacket } from './worker/node/protocols/uwsgi-packet.js';
export {
  FastcgiParser, decodeNameValuePairs, decodeRecords, encodeEndRequest, encodeNameValuePairs, encodeRecord, encodeRequest, encodeStream,
  FCGI_ABORT_REQUEST, FCGI_AUTHORIZER, FCGI_BEGIN_REQUEST, FCGI_CANT_MPX_CONN, FCGI_DATA, FCGI_END_REQUEST, FCGI_FILTER, FCGI_GET_VALUES,
  FCGI_GET_VALUES_RESULT, FCGI_KEEP_CONN, FCGI_PARAMS, FCGI_REQUEST_COMPLETE, FCGI_RESPONDER, FCGI_STDERR, FCGI_STDIN, FCGI_STDOUT,
  FCGI_UNKNOWN_ROLE, FCGI_UNKNOWN_TYPE,
  type EncodeRequestOptions, type FastcgiEvent, type FastcgiRecord, type FastcgiRequestHead,
} from './worker/node/protocols/fastcgi-records.js';
