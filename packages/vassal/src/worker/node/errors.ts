/**
 * The Node worker's coded errors; defined in the registry (packages/protocol/src/errors.ts)
 * and re-exported here for the worker's modules. Library modules throw them; only the
 * worker's entry (worker-main.ts) turns them into a log line and an exit code.
 */
export { SocketListenError, WorkerProtocolError } from '@emperor/protocol';
