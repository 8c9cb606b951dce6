/**
 * The stats JSON documents, in uWSGI's shape (uWSGI core/master_utils.c
 * `uwsgi_master_generate_stats`, core/emperor.c `emperor_send_stats`), so uwsgitop and
 * other tools written for uWSGI read ours. Key order follows uWSGI. Our own keys are
 * additions, marked "ours"; none of uWSGI's is renamed. docs/stats.md documents every key.
 */

/** One listening socket (`sockets[]`). */
export interface SocketStats {
  /** The address as configured, e.g. `127.0.0.1:8080` or `/run/app.sock`. */
  name: string;
  /** `http` or `uwsgi`. */
  proto: string;
  /** Connections waiting in the kernel's accept queue now. */
  queue: number;
  /** The listen backlog (`listen`). */
  max_queue: number;
  /** Always 0 (uWSGI shared sockets are not implemented). */
  shared: 0 | 1;
  /** Always 0 (no offload threads). */
  can_offload: 0 | 1;
}

/** One application inside a worker (`workers[].apps[]`); we always run exactly one. */
export interface AppStats {
  id: number;
  modifier1: number;
  mountpoint: string;
  /** Seconds the app took to load. */
  startup_time: number;
  requests: number;
  exceptions: number;
  chdir: string;
}

/** One core of a worker (`workers[].cores[]`). A Node worker is one core serving many requests at once. */
export interface CoreStats {
  id: number;
  requests: number;
  static_requests: number;
  routed_requests: number;
  offloaded_requests: number;
  write_errors: number;
  read_errors: number;
  /** 1 while a request is in flight. */
  in_request: 0 | 1;
  /** uWSGI lists the request's vars here; we list `REQUEST_METHOD=` and `REQUEST_URI=` of the oldest in-flight request, then `""`. */
  vars: string[];
  /** `{ request_start: epoch seconds }` while in a request, else `{}`. */
  req_info: { request_start?: number };
}

/** Worker status strings, uWSGI's plus our `starting` and `stopping`. */
export type WorkerStatus = 'idle' | 'busy' | 'cheap' | 'starting' | 'stopping';

/** One worker slot (`workers[]`). */
export interface WorkerStats {
  /** Worker number, 1-based and stable across respawns. */
  id: number;
  /** 0 when no process runs in the slot. */
  pid: number;
  /** 1 once the worker accepts connections. */
  accepting: 0 | 1;
  /** Requests served by this slot over the vassal's life (not reset on respawn). */
  requests: number;
  /** Requests served by the current process (reset on respawn; what max-requests counts). */
  delta_requests: number;
  exceptions: number;
  harakiri_count: number;
  signals: number;
  signal_queue: number;
  status: WorkerStatus;
  /** Resident set size, bytes. */
  rss: number;
  /** Address space (virtual size), bytes. */
  vsz: number;
  /**
   * ours: proportional set size, bytes (/proc/PID/smaps_rollup): the resident pages with
   * each shared page divided among the processes sharing it. Well below `rss` for a
   * worker forked from a preloaded app; the sum over a vassal's workers is what they cost.
   */
  pss: number;
  /** Sum of request times, microseconds. */
  running_time: number;
  /** Unix time (seconds) of the last spawn; 0 if never spawned. */
  last_spawn: number;
  /** Number of times the slot was spawned (1 after the first spawn). */
  respawn_count: number;
  /** Bytes sent (headers and body). */
  tx: number;
  /** Average response time, microseconds. */
  avg_rt: number;
  apps: AppStats[];
  cores: CoreStats[];
  /** ours: requests in flight now (a Node worker serves several at once). */
  in_flight: number;
  /** ours: WebSocket sessions open now (a Python ASGI worker's; 0 for others). */
  websockets: number;
  /** ours: why the previous process of this slot ended (`max-requests`, `reload-on-rss`, `harakiri`, `crash`, ...); "" if none. */
  last_exit_reason: string;
  /** ours: the worker runtime, `node` or `python`. */
  runtime: string;
}

/** The vassal master's stats document (`stats = ADDR`). */
export interface VassalStats {
  version: string;
  /** Largest current accept queue over all sockets. */
  listen_queue: number;
  listen_queue_errors: number;
  signal_queue: number;
  /** uWSGI sets this to the listen queue too. */
  load: number;
  pid: number;
  uid: number;
  gid: number;
  cwd: string;
  locks: Array<Record<string, number>>;
  sockets: SocketStats[];
  workers: WorkerStats[];
  /** ours: the vassal file name. */
  vassal: string;
  /** ours: the master's lifecycle state. */
  state: string;
}

/** One vassal in the emperor's stats (`vassals[]`). */
export interface EmperorVassalStats {
  /** The vassal file name, e.g. `shop.ini`. */
  id: string;
  /** Master pid; -1 when not running. */
  pid: number;
  /** Unix seconds of the current master's spawn; 0 if never. */
  born: number;
  /** Unix seconds: the vassal file's mtime when last (re)loaded. */
  last_mod: number;
  last_heartbeat: number;
  loyal: number;
  ready: number;
  accepting: number;
  last_loyal: number;
  last_ready: number;
  last_accepting: number;
  first_run: number;
  last_run: number;
  /** Unix seconds when the vassal was cursed, 0 when not. */
  cursed: number;
  zerg: number;
  /** The socket an on-demand vassal waits on (`emperor-on-demand-*`), "" when it is not on demand. */
  on_demand: string;
  uid: number;
  gid: number;
  /** The directory (or glob) the vassal file was found by. */
  monitor: string;
  /** Reloads and respawns of this vassal. */
  respawns: number;
  /** ours: lifecycle state (`starting`, `ready`, `reloading`, `stopping`, `throttled`, `cursed`, `config-error`, `dead`). */
  state: string;
  /** ours: the absolute path of the vassal file. */
  path: string;
  /** ours: milliseconds until the next respawn attempt while throttled, else 0. */
  throttle_ms: number;
  /** ours: the last error (config error, exit status), "" if none. */
  last_error: string;
  /** ours: how many times an on-demand vassal was started by a connection on its socket. */
  cold_starts: number;
}

/** One entry of the emperor's `blacklist[]` (vassals that failed and are being throttled). */
export interface EmperorBlacklistEntry {
  id: string;
  /** Current respawn delay, milliseconds. */
  throttle_level: number;
  attempt: number;
  first_attempt: number;
  last_attempt: number;
}

/** The emperor's stats document (`emperor-stats = ADDR`). */
export interface EmperorStats {
  version: string;
  pid: number;
  uid: number;
  gid: number;
  cwd: string;
  /** The directories or globs watched. */
  emperor: string[];
  emperor_tyrant: 0 | 1;
  throttle_level: number;
  vassals: EmperorVassalStats[];
  blacklist: EmperorBlacklistEntry[];
}
