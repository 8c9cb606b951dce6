/**
 * Prometheus metrics (text exposition format, via prom-client) built at scrape time from
 * the same documents the stats servers serve: `buildVassalStats(master)` for a vassal,
 * `emperor.stats()` for the emperor. Nothing is counted per request; a scrape costs one
 * stats document.
 *
 * Conventions (prometheus.io/docs/practices/naming): an `emperor_` prefix, base units
 * (`_seconds`, `_bytes`), `_total` for counters, `vassal` and `worker` labels. Counters
 * carry the totals of the stats document, which survive worker respawns (they count per
 * worker id, as uWSGI's stats do), so `rate()` works across reloads. uwsgi_exporter's
 * `uwsgi_worker_*` metrics map one to one (docs/metrics.md).
 */
import type { Counter, Gauge, Registry } from 'prom-client';
import type { EmperorStats, VassalStats } from '@emperor/protocol';

/** Something that renders the exposition text on demand. */
export interface MetricsSource {
  /** `text/plain; version=0.0.4; charset=utf-8`. */
  readonly contentType: string;
  /** The exposition text, built from a fresh document. */
  render(): Promise<string>;
}

/** Worker statuses reported as a state set (one series per status, 1 for the current one). */
const WORKER_STATUSES = ['idle', 'busy', 'starting', 'stopping', 'cheap'] as const;
/** Vassal states (see docs/stats.md), always all present in `emperor_vassals`. */
const VASSAL_STATES = ['starting', 'ready', 'reloading', 'stopping', 'dead', 'throttled', 'cursed', 'config-error'] as const;

type Labels<K extends string> = Partial<Record<K, string | number>>;

/** The exposition format's content type (prom-client's `Registry.PROMETHEUS_CONTENT_TYPE`). */
export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

/** Makes metrics registered in one registry. */
interface MetricKit {
  gauge<K extends string>(name: string, help: string, labelNames: readonly K[]): Gauge<K>;
  counter<K extends string>(name: string, help: string, labelNames: readonly K[]): Counter<K>;
}

/**
 * A registry whose values are all rewritten from one document per scrape: `fill(doc)`
 * runs after every metric is reset, then the text is rendered. Scrapes are served one
 * after the other (they share the registry). prom-client is loaded by the first scrape:
 * a master without metrics never pays for it (about 50 ms of start-up and a few MB).
 */
function documentMetrics<D>(snapshot: () => D | Promise<D>, define: (kit: MetricKit) => (doc: D) => void): MetricsSource {
  let setUp: Promise<{ registry: Registry; fill: (doc: D) => void }> | undefined;
  const load = async (): Promise<{ registry: Registry; fill: (doc: D) => void }> => {
    const prom = await import('prom-client');
    const registry = new prom.Registry();
    const kit: MetricKit = {
      gauge: (name, help, labelNames) => new prom.Gauge({ name, help, labelNames, registers: [registry] }),
      counter: (name, help, labelNames) => new prom.Counter({ name, help, labelNames, registers: [registry] }),
    };
    return { registry, fill: define(kit) };
  };
  let last: Promise<unknown> = Promise.resolve();
  const renderOnce = async (): Promise<string> => {
    setUp ??= load();
    const { registry, fill } = await setUp;
    const doc = await snapshot();
    registry.resetMetrics();
    fill(doc);
    return registry.metrics();
  };
  return {
    contentType: PROMETHEUS_CONTENT_TYPE,
    render: () => {
      const next = last.then(renderOnce, renderOnce);
      last = next.catch(() => undefined);
      return next;
    },
  };
}

/** A counter set to a total read from the document (prom-client counters only add). */
const total = <K extends string>(c: Counter<K>, labels: Labels<K>, value: number): void => {
  c.inc(labels, Math.max(0, value));
};

/** The metrics of one vassal master, from its stats document. */
export function vassalMetrics(snapshot: () => VassalStats | Promise<VassalStats>): MetricsSource {
  return documentMetrics(snapshot, (kit) => {
    const w = ['vassal', 'worker'] as const;
    const requests = kit.counter('emperor_worker_requests_total', 'Requests served by this worker id, over all its processes.', w);
    const exceptions = kit.counter('emperor_worker_exceptions_total', 'Exceptions raised by the app while handling requests (answered 500).', w);
    const harakiri = kit.counter('emperor_worker_harakiri_total', 'Requests ended or workers killed for exceeding harakiri.', w);
    const respawns = kit.counter('emperor_worker_respawns_total', 'Processes started for this worker id after its first one.', w);
    const tx = kit.counter('emperor_worker_transmitted_bytes_total', 'Bytes sent, headers and bodies.', w);
    const busyTime = kit.counter('emperor_worker_response_time_seconds_total', 'Sum of response times.', w);
    const avg = kit.gauge('emperor_worker_average_response_time_seconds', 'Average response time as uWSGI computes it: a running (avg + rt) / 2.', w);
    const rss = kit.gauge('emperor_worker_rss_bytes', 'Resident memory of the worker\'s current process.', w);
    const vsz = kit.gauge('emperor_worker_vsz_bytes', 'Address space of the worker\'s current process.', w);
    const pss = kit.gauge('emperor_worker_pss_bytes', 'Proportional set size of the worker\'s current process: shared pages divided among their sharers.', w);
    const inFlight = kit.gauge('emperor_worker_in_flight_requests', 'Requests in flight in the worker\'s current process.', w);
    const websockets = kit.gauge('emperor_worker_websockets', 'WebSocket sessions open in the worker\'s current process (Python ASGI workers).', w);
    const accepting = kit.gauge('emperor_worker_accepting', '1 when the worker\'s current process accepts connections.', w);
    const spawned = kit.gauge('emperor_worker_last_spawn_timestamp_seconds', 'When the worker\'s current process was spawned (unix time).', w);
    const status = kit.gauge('emperor_worker_status', 'The worker\'s status: 1 for the current one, 0 for the others.', [...w, 'status']);
    const queue = kit.gauge('emperor_socket_queue_length', 'Connections waiting to be accepted on this socket now.', ['vassal', 'socket', 'proto']);
    const maxQueue = kit.gauge('emperor_socket_max_queue_length', 'The socket\'s listen backlog.', ['vassal', 'socket', 'proto']);
    const listenQueue = kit.gauge('emperor_vassal_listen_queue_length', 'The largest accept queue of the vassal\'s sockets now.', ['vassal']);
    return (doc) => {
      const vassal = doc.vassal;
      listenQueue.set({ vassal }, doc.listen_queue);
      for (const s of doc.sockets) {
        queue.set({ vassal, socket: s.name, proto: s.proto }, s.queue);
        maxQueue.set({ vassal, socket: s.name, proto: s.proto }, s.max_queue);
      }
      for (const wk of doc.workers) {
        const labels = { vassal, worker: wk.id };
        total(requests, labels, wk.requests);
        total(exceptions, labels, wk.exceptions);
        total(harakiri, labels, wk.harakiri_count);
        total(respawns, labels, wk.respawn_count - 1);
        total(tx, labels, wk.tx);
        total(busyTime, labels, wk.running_time / 1e6);
        avg.set(labels, wk.avg_rt / 1e6);
        rss.set(labels, wk.rss);
        vsz.set(labels, wk.vsz);
        pss.set(labels, wk.pss);
        inFlight.set(labels, wk.in_flight);
        websockets.set(labels, wk.websockets ?? 0);
        accepting.set(labels, wk.accepting);
        spawned.set(labels, wk.last_spawn);
        for (const s of WORKER_STATUSES) status.set({ ...labels, status: s }, wk.status === s ? 1 : 0);
      }
    };
  });
}

/** The emperor's metrics, from its stats document. */
export function emperorMetrics(snapshot: () => EmperorStats | Promise<EmperorStats>): MetricsSource {
  return documentMetrics(snapshot, (kit) => {
    const v = ['vassal'] as const;
    const byState = kit.gauge('emperor_vassals', 'Vassals in each state.', ['state']);
    const state = kit.gauge('emperor_vassal_state', 'The vassal\'s state (one series, value 1).', [...v, 'state']);
    const respawns = kit.counter('emperor_vassal_respawns_total', 'Reloads and respawns after a crash of this vassal\'s master.', v);
    const ready = kit.gauge('emperor_vassal_ready', '1 when every worker of the vassal\'s first generation accepts.', v);
    const loyal = kit.gauge('emperor_vassal_loyal', '1 once the vassal has served a request.', v);
    const started = kit.gauge('emperor_vassal_start_time_seconds', 'When the vassal\'s current master was spawned (unix time); 0 when none runs.', v);
    const throttle = kit.gauge('emperor_vassal_throttle_seconds', 'Time until the next respawn attempt while throttled or cursed.', v);
    return (doc) => {
      for (const s of new Set([...VASSAL_STATES, ...doc.vassals.map((x) => x.state)])) byState.set({ state: s }, doc.vassals.filter((x) => x.state === s).length);
      for (const x of doc.vassals) {
        const labels = { vassal: x.id };
        state.set({ ...labels, state: x.state }, 1);
        total(respawns, labels, x.respawns);
        ready.set(labels, x.ready);
        loyal.set(labels, x.loyal);
        started.set(labels, x.pid > 0 ? x.born : 0);
        throttle.set(labels, x.throttle_ms / 1000);
      }
    };
  });
}
