/**
 * The worker's accounting of every request, whatever protocol brought it: prepended to
 * the app's server's `request` listeners, so it runs before the app. It keeps the request
 * in flight in the slot, arms its harakiri, and when the response closes counts it, logs
 * it and checks `max-requests`.
 *
 * This is the per-request path: it allocates what it did before the protocol layer (the
 * in-flight entry, the close listener, the harakiri timer when on), nothing more.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { ArmHarakiri } from './harakiri.js';
import type { Lifecycle } from './lifecycle.js';
import type { WorkerLogging } from './logging.js';
import type { RequestSocketFacts } from './protocols/index.js';
import type { SlotPublisher } from './slot.js';

/** What the accounting reports to. */
export interface RequestTracking {
  readonly slot: SlotPublisher;
  /** Undefined when `harakiri` is off. */
  readonly harakiri: ArmHarakiri | undefined;
  readonly logging: WorkerLogging;
  readonly lifecycle: Lifecycle;
}

/** The `request` listener doing the accounting. */
export function trackRequests({ slot, harakiri, logging, lifecycle }: RequestTracking): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    const startMs = Date.now();
    const t0 = performance.now();
    // The protocol makes the socket describe the client and count the response's bytes.
    const socket: RequestSocketFacts = req.socket;
    const tx0 = socket.bytesWritten;
    slot.requestStarted(req, res, startMs);
    if (lifecycle.draining && !res.headersSent) res.setHeader('connection', 'close');
    const timer = harakiri?.(req, res, startMs);
    res.once('close', () => {
      if (timer !== undefined) clearTimeout(timer);
      const rtUs = (performance.now() - t0) * 1000;
      const sent = socket.bytesWritten - tx0;
      const n = slot.requestEnded(req, rtUs, sent, Date.now());
      logging.request(req, res, startMs, rtUs, sent, n);
      lifecycle.requestEnded();
    });
  };
}
