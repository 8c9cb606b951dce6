/**
 * `harakiri` inside a Node worker. An event-loop worker serves many requests at once, so
 * killing the process for one slow request would kill the others with it: a request past
 * `harakiri` is ended by the worker itself (its connection closed, one log line). A
 * blocked event loop, where no timer of ours can run, is the master's to catch: the
 * slot's heartbeat stops (slot.ts) and the master kills the worker (master/health.ts),
 * as uWSGI core/master_checks.c kills a sync worker past its deadline.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '@emperor/process/logger';

/** The harakiri line: method and URI, how long it ran (s, one decimal) and the limit (s). */
export function harakiriMessage(method: string | undefined, uri: string | undefined, ranMs: number, harakiriMs: number): string {
  return `HARAKIRI: ${method ?? '?'} ${uri ?? '?'} ran for ${(ranMs / 1000).toFixed(1)} s (harakiri ${harakiriMs / 1000} s); its connection is closed`;
}

/**
 * Arms a request's harakiri timer: `harakiriMs` after it, the request is logged and its
 * response destroyed (which closes its connection). The caller clears the timer when the
 * response closes.
 */
export type ArmHarakiri = (req: IncomingMessage, res: ServerResponse, startMs: number) => NodeJS.Timeout;

/**
 * The per-request harakiri of a worker, or undefined when `harakiriMs` is 0 (off).
 * @param harakiriMs `harakiri` in ms
 * @param onKill called once per request ended so (the slot counts them)
 */
export function perRequestHarakiri(harakiriMs: number, logger: Logger, onKill: () => void): ArmHarakiri | undefined {
  if (harakiriMs <= 0) return undefined;
  return (req, res, startMs) =>
    setTimeout(() => {
      onKill();
      const ranMs = Date.now() - startMs;
      logger.error({ method: req.method, uri: req.url, ran_ms: ranMs, harakiri_ms: harakiriMs }, harakiriMessage(req.method, req.url, ranMs, harakiriMs));
      res.destroy();
    }, harakiriMs);
}
