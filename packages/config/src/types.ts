/**
 * The filled, readonly configuration types every other package consumes.
 *
 * Vassal and emperor files use uWSGI's option names and units at the edge; the
 * loader validates once and converts once, into these types, whose field names carry
 * their unit (`harakiriMs`, `reloadOnRssBytes`). Nothing downstream re-parses strings.
 */
import type { CapabilityName } from './capabilities.js';
import type { OptionName } from './options.js';

/** The file formats we read. YAML is recognised by extension and refused with a clear error. */
export type ConfigFormat = 'ini' | 'xml' | 'json';

/** Where a value came from, for error messages and `emperor check --print`. */
export interface SourceLocation {
  /** Path of the file as given to the loader (not made absolute), or `<command line>`. */
  readonly file: string;
  /** 1-based line of the option in that file; 0 when unknown (command line, env). */
  readonly line: number;
}

/**
 * One option occurrence as read from a file, after the per-file magic placeholders
 * (`%n`, `%d`, ...) were expanded and before `%(option)` / `$(ENV)` were.
 */
export interface RawOption extends SourceLocation {
  /** Option name exactly as written (lower-case in practice; uWSGI names are case-sensitive). */
  readonly name: string;
  /** Value as written; `""` for a bare INI key and `"1"` for an empty XML element (uWSGI's rules). */
  readonly value: string;
}

/** A parsed file: its options in file order. Repeated keys appear repeatedly. */
export interface RawConfig {
  /** Path of the file as given to the loader. */
  readonly file: string;
  readonly format: ConfigFormat;
  readonly options: readonly RawOption[];
}

/** An option after every placeholder pass, as `emperor check --print` shows it. */
export interface ResolvedOption extends SourceLocation {
  readonly name: string;
  readonly value: string;
}

/** A TCP address: `host:port`, `:port` (all IPv4 interfaces), `[v6]:port`. */
export interface TcpAddress {
  readonly kind: 'tcp';
  /** IP literal or host name as written; `0.0.0.0` for `:port`. IPv6 without brackets. */
  readonly host: string;
  /** 0..65535; 0 asks the kernel for a free port. */
  readonly port: number;
}

/** A unix domain socket: a filesystem path, or `@name` in the abstract namespace. */
export interface UnixAddress {
  readonly kind: 'unix';
  /** Absolute path, or for an abstract socket the name without the leading `@`. */
  readonly path: string;
  readonly abstract: boolean;
}

export type ListenAddress = TcpAddress | UnixAddress;

/**
 * A socket the master did not bind: `fd://N`, an open socket inherited on file
 * descriptor N (uWSGI core/socket.c `uwsgi_add_socket_from_fd`). `fd://0` is what a web
 * server that spawns its FastCGI backend passes (lighttpd `bin-path`, Apache mod_fcgid:
 * the FastCGI spec's `FCGI_LISTENSOCK_FILENO`).
 */
export interface InheritedAddress {
  readonly kind: 'fd';
  /** The file descriptor, 0 .. 1023. */
  readonly fd: number;
}

/** Where a vassal socket listens: an address the master binds, or an inherited socket. */
export type SocketAddress = ListenAddress | InheritedAddress;

/** The protocol a worker speaks on a socket (the stats `proto`, uWSGI's names). */
export type SocketProtocol = 'http' | 'uwsgi' | 'fastcgi';

/** A listening socket the vassal master binds (or inherits) and every worker inherits. */
export interface SocketSpec extends SourceLocation {
  /** The address as written, e.g. `127.0.0.1:8080`, `:8080`, `/run/app.sock`, `fd://0`; used as the stats `name`. */
  readonly name: string;
  readonly address: SocketAddress;
  /**
   * `http-socket` → `http`; `uwsgi-socket` → `uwsgi`; `fastcgi-socket` → `fastcgi`;
   * `socket` → `protocol` (default `uwsgi`), as in uWSGI.
   */
  readonly protocol: SocketProtocol;
  /**
   * The option that declared it: `http-socket`, `socket`, `uwsgi-socket` or
   * `fastcgi-socket`. A socket found listening on stdin has `file` `<stdin>` (`STDIN_SOCKET_FILE`)
   * and the option of its protocol.
   */
  readonly option: OptionName;
}

/** The language runtime of a vassal's workers. */
export type WorkerRuntime = 'node' | 'python';

/** `cheaper-algo` values we implement (uWSGI core/cheaper.c, plugins/cheaper_busyness). */
export type CheaperAlgo = 'spare' | 'backlog' | 'busyness';

/** A user or group as written: a name (`www-data`) or a numeric id. */
export type Principal = string | number;

/**
 * A vassal's configuration: filled (defaults applied), validated, units converted.
 * Produced by `loadVassalConfig()`; immutable.
 *
 * Semantics follow uWSGI 2.0 unless a field says otherwise; see docs/configuration.md,
 * which is generated from the option table in `options.ts`.
 */
export interface VassalConfig {
  /** Absolute path of the vassal file (`%p`). */
  readonly file: string;
  /** File name with extension (`%s`), the vassal's id in the emperor and in logs. */
  readonly name: string;
  readonly format: ConfigFormat;
  /** Directory the vassal's relative paths resolve against: the vassal file's directory. */
  readonly baseDir: string;

  // --- processes -------------------------------------------------------------------
  /** `processes` / `workers`: the pool size (the maximum when `cheaper` is on). @default 1 */
  readonly processes: number;
  /** `threads`: requests a Python worker serves at once, one per thread. @default 1 */
  readonly threads: number;
  /** `master`: accepted for compatibility; the master is always on. */
  readonly master: boolean;
  /** Worker runtime from `plugin`/`plugins`, else inferred (`.js`/`.mjs`/`.cjs` module → node, `wsgi-file` or a dotted module → python). */
  readonly runtime: WorkerRuntime;
  /**
   * `module`: for node an absolute path of the app module (resolved against `chdir`,
   * else the vassal file's directory); for python the dotted name as written (`pkg.mod` or `pkg.mod:callable`).
   */
  readonly module: string | undefined;
  /** `wsgi-file`: absolute path of a Python file defining the WSGI callable. */
  readonly wsgiFile: string | undefined;
  /** `callable`: name of the WSGI (or ASGI) callable. @default "application" */
  readonly callable: string;
  /**
   * `asgi` set: the Python app is served as ASGI whatever its callable looks like
   * (`module` then holds the app's dotted name). False: `module`/`wsgi-file`, served as
   * ASGI when the worker finds an `async def` callable, else as WSGI.
   */
  readonly asgi: boolean;
  /** `async`: connections an ASGI worker holds at once (each one request or WebSocket session at a time). @default 1000 */
  readonly asyncLimit: number;
  /** `websockets-max-size` (KB), in bytes: the largest WebSocket message an ASGI worker accepts. @default 1 MB */
  readonly websocketsMaxSizeBytes: number;
  /** `pythonpath` (repeatable): absolute directories prepended to `sys.path`. */
  readonly pythonpath: readonly string[];
  /** `home` / `virtualenv` / `venv`: absolute path of a Python virtual environment. */
  readonly home: string | undefined;
  /** `chdir`: absolute directory the workers run in; the app's relative paths resolve here. */
  readonly chdir: string | undefined;
  /** `node-args` (repeatable, our addition): the Node worker's `node` flags, before its program; empty for Python. */
  readonly nodeArgs: readonly string[];
  /** `env` (repeatable, `KEY=VALUE`): one entry per key, in order of first appearance, with the key's last value. */
  readonly env: readonly (readonly [key: string, value: string])[];
  /** `uid`: the user the master and workers run as. Needs root unless it is the current user. */
  readonly uid: Principal | undefined;
  /** `gid`: the group; with `uid`, the user's supplementary groups are added too. */
  readonly gid: Principal | undefined;

  // --- sockets ---------------------------------------------------------------------
  /**
   * Every `http-socket`, `socket`, `uwsgi-socket` and `fastcgi-socket`, in file order;
   * then, when the caller found a listening socket on stdin that no option names
   * (`fd://0`) and `skip-zero` is off, that one (`stdinSocket` of the loader's options).
   */
  readonly sockets: readonly SocketSpec[];
  /** `chmod-socket`: mode for unix sockets (`chmod-socket` alone means 0o666, as in uWSGI). */
  readonly chmodSocket: number | undefined;
  /** `chown-socket = user[:group]`: owner for unix sockets. */
  readonly chownSocket: { readonly user: Principal; readonly group: Principal | undefined } | undefined;
  /** `listen`: the listen backlog of every socket. @default 100 */
  readonly listen: number;
  /**
   * `mount = MOUNTPOINT=APP`: the path the app is mounted at, without a trailing slash;
   * "" for the root (`mount = /=APP`, or no `mount`). The APP part is in
   * `module`/`wsgiFile`. One app per vassal: uWSGI's several mounts per worker are refused.
   */
  readonly mountpoint: string;
  /**
   * `manage-script-name`: `SCRIPT_NAME` becomes the mountpoint and `PATH_INFO` the rest
   * of the request's path (uWSGI core/protocol.c, with the root as a mountpoint too);
   * Node: the mountpoint is taken off `req.url`. See docs/lighttpd.md.
   */
  readonly manageScriptName: boolean;
  /** `buffer-size`: bytes; bounds a uwsgi packet's variable block, FastCGI params and HTTP headers. @default 4096 */
  readonly bufferSize: number;
  /** `socket-timeout` seconds → ms: how long a worker waits on a client's read or write (uWSGI's default 4 s). */
  readonly socketTimeoutMs: number;
  /** `no-defer-accept`: leave `TCP_DEFER_ACCEPT` off on uwsgi TCP sockets (uWSGI core/socket.c sets it unless this is given). */
  readonly noDeferAccept: boolean;

  // --- files -----------------------------------------------------------------------
  /** `pidfile`: absolute path; the master's pid is written there (before the privilege drop). */
  readonly pidfile: string | undefined;
  /** `vacuum`: remove unix sockets and the pidfile on exit. */
  readonly vacuum: boolean;
  /** `stats` / `stats-server`: where the master serves the stats JSON. */
  readonly stats: ListenAddress | undefined;
  /** `stats-http`: wrap the stats JSON in an HTTP response. */
  readonly statsHttp: boolean;
  /** `stats-minified` / `stats-min`: no newlines or indentation. */
  readonly statsMinified: boolean;
  /** `prometheus`: where the master serves Prometheus metrics (`GET /metrics`); ours. */
  readonly prometheus: ListenAddress | undefined;

  // --- worker health (uWSGI core/master_checks.c) ----------------------------------
  /** `harakiri` seconds → ms; 0 = off. */
  readonly harakiriMs: number;
  /** `harakiri-verbose`: log the worker's stack before the kill. */
  readonly harakiriVerbose: boolean;
  /** `max-requests`: recycle a worker after this many requests; 0 = off. */
  readonly maxRequests: number;
  /** `max-requests-delta`: worker N recycles after `max-requests + (N-1)*delta`. */
  readonly maxRequestsDelta: number;
  /** `min-worker-lifetime` seconds → ms; gates max-requests and the memory limits. @default 10 s */
  readonly minWorkerLifetimeMs: number;
  /** `max-worker-lifetime` seconds → ms; 0 = off. */
  readonly maxWorkerLifetimeMs: number;
  /** `max-worker-lifetime-delta` seconds → ms; worker N waits `(N-1)*delta` longer. */
  readonly maxWorkerLifetimeDeltaMs: number;
  /** `reload-on-rss` MB → bytes; 0 = off. */
  readonly reloadOnRssBytes: number;
  /** `reload-on-as` MB → bytes; 0 = off. */
  readonly reloadOnAsBytes: number;
  /** `evil-reload-on-rss` MB → bytes; 0 = off. */
  readonly evilReloadOnRssBytes: number;
  /** `evil-reload-on-as` MB → bytes; 0 = off. */
  readonly evilReloadOnAsBytes: number;
  /** `limit-as` MB → bytes: RLIMIT_AS of each worker; 0 = off. */
  readonly limitAsBytes: number;
  /** `cpu-affinity`: CPUs per worker, assigned round-robin; 0 = off. */
  readonly cpuAffinity: number;
  /** `no-orphans`: workers and master exit when their parent dies (we always do; this is accepted). */
  readonly noOrphans: boolean;
  /** `worker-reload-mercy` seconds → ms: a stopping worker's grace before SIGKILL. @default 60 s */
  readonly workerReloadMercyMs: number;
  /** `worker-ready-timeout` seconds → ms: how long a new worker may take to load its app and accept before SIGKILL. @default 60 s */
  readonly workerReadyTimeoutMs: number;
  /** `reload-mercy` seconds → ms: bound on a whole vassal stop or reload; 0 = unset. */
  readonly reloadMercyMs: number;
  /** `touch-reload` (repeatable): absolute paths whose mtime change reloads the workers. */
  readonly touchReload: readonly string[];
  /** `touch-chain-reload` (repeatable): absolute paths whose mtime change chain-reloads. */
  readonly touchChainReload: readonly string[];
  /** `lazy-apps` (or `lazy`): each Python worker imports the app; false: a template imports it once and forks the workers. */
  readonly lazyApps: boolean;
  /** `die-on-term`: accepted; SIGTERM always stops the vassal (uWSGI 2.1 semantics). */
  readonly dieOnTerm: boolean;
  /** `heartbeat` seconds → ms: how often the master tells the emperor it is alive. @default 10 s */
  readonly heartbeatMs: number;

  // --- cheaper (uWSGI core/cheaper.c) ----------------------------------------------
  /** `cheaper`: minimum workers; 0 = a fixed pool of `processes`. Must be < processes. */
  readonly cheaper: number;
  /** `cheaper-initial`: workers at start, within [cheaper, processes]; `processes` when cheaper is off. @default cheaper */
  readonly cheaperInitial: number;
  /** `cheaper-step`: workers spawned at once when growing. @default 1 */
  readonly cheaperStep: number;
  /** `cheaper-algo`. @default "spare" */
  readonly cheaperAlgo: CheaperAlgo;
  /** `cheaper-overload`: checks (spare), backlog length (backlog) or seconds (busyness). @default 3 */
  readonly cheaperOverload: number;
  /** `cheaper-busyness-*` tuning, uWSGI's names and defaults. */
  readonly cheaperBusyness: {
    /** percent. @default 50 */ readonly max: number;
    /** percent. @default 25 */ readonly min: number;
    /** @default 10 */ readonly multiplier: number;
    /** @default 2 */ readonly penalty: number;
    /** @default false */ readonly verbose: boolean;
    /** queued connections. @default 33 */ readonly backlogAlert: number;
    /** @default 3 */ readonly backlogMultiplier: number;
    /** @default 1 */ readonly backlogStep: number;
    /** seconds → ms. @default 60 s */ readonly backlogNonzeroMs: number;
  };
  /** `cheaper-rss-limit-soft`: bytes (uWSGI reads bytes here, not MB); 0 = off. */
  readonly cheaperRssLimitSoftBytes: number;
  /** `cheaper-rss-limit-hard`: bytes; 0 = off. */
  readonly cheaperRssLimitHardBytes: number;
  /**
   * `idle` seconds → ms: no request for that long stops every worker (cheap mode: the
   * master waits for a connection on its sockets, uWSGI core/master_checks.c); 0 = off.
   */
  readonly idleMs: number;
  /** `die-on-idle`: with `idle`, the master exits instead of entering cheap mode. */
  readonly dieOnIdle: boolean;
  /**
   * `cheap`: start in cheap mode, with no worker, until a connection waits on a socket
   * (uWSGI core/master_checks.c; the first connection is noticed on the master's 1 s tick).
   */
  readonly cheap: boolean;

  // --- request logging -------------------------------------------------------------
  /** `disable-logging`: no request log lines (except `log-4xx`/`log-5xx`/`log-slow`). */
  readonly disableLogging: boolean;
  readonly log4xx: boolean;
  readonly log5xx: boolean;
  /** `log-slow` ms: with `disable-logging`, still log requests slower than this; 0 = off. */
  readonly logSlowMs: number;
  /** `log-zero`: with `disable-logging`, still log responses with an empty body. */
  readonly logZero: boolean;
  /** `log-big` bytes: with `disable-logging`, still log response bodies at least this big; 0 = off. */
  readonly logBigBytes: number;
  /** `log-format` / `logformat`: a `%(var)` template for request lines; undefined = uWSGI's default line. */
  readonly logFormat: string | undefined;
  /** `log-json`: request lines as JSON objects (ours). */
  readonly logJson: boolean;
  /** `log-micros`: the default line gives response times in microseconds. */
  readonly logMicros: boolean;
  /** `log-x-forwarded-for`: the client address is the first `X-Forwarded-For` entry when present. */
  readonly logXForwardedFor: boolean;
  /** `log-style` (ours): how the master's and workers' event lines are written; `auto` keeps the emperor's choice. */
  readonly logStyle: LogStyleChoice;
  /** `logto`: absolute path of the log file of the master and workers (reopened on SIGUSR2). */
  readonly logto: string | undefined;
  /** `touch-logreopen` (repeatable): absolute paths whose mtime change reopens `logto`. */
  readonly touchLogreopen: readonly string[];
  /** `master-fifo` (repeatable): named pipes for one-letter commands; the first is read, `0`-`9` switch. */
  readonly masterFifo: readonly string[];

  /** Every option after all placeholder passes, in file order, for `emperor check --print`. */
  readonly resolved: readonly ResolvedOption[];
}

/**
 * The emperor's own configuration (`emperor --ini /etc/emperor.ini`, or command-line
 * flags). uWSGI core/emperor.c semantics; see docs/configuration.md.
 */
export interface EmperorConfig {
  /**
   * `emperor` (repeatable), in order: absolute directories or glob patterns of vassal
   * files, and `pg://`/`pgsql://` values exactly as given (checked with `parsePgMonitor`;
   * they may hold a password, so show them through `maskPgMonitor`).
   */
  readonly emperor: readonly string[];
  /** `emperor-pg-channel`: the channel `pg://` sources LISTEN on. @default "emperor" */
  readonly emperorPgChannel: string;
  /** `emperor-stats` / `emperor-stats-server`. */
  readonly emperorStats: ListenAddress | undefined;
  /** `stats` / `stats-server` in the emperor's file: the emperor's stats too, as `emperor-stats` (both answer when both are set). */
  readonly stats: ListenAddress | undefined;
  /** `stats-http`: serve the emperor stats over HTTP (uWSGI applies it to both stats servers). */
  readonly statsHttp: boolean;
  /** `stats-minified`: emperor stats JSON on one line. */
  readonly statsMinified: boolean;
  /** `emperor-prometheus`: where the emperor serves Prometheus metrics (`GET /metrics`); ours. */
  readonly emperorPrometheus: ListenAddress | undefined;
  /** `emperor-tyrant`: each vassal runs as its file's owner. */
  readonly emperorTyrant: boolean;
  /** `emperor-tyrant-nofollow`: judge a symlinked vassal by the link's own owner. */
  readonly emperorTyrantNofollow: boolean;
  /** `emperor-freq` seconds → ms: rescan interval behind the file watch. @default 3 s */
  readonly emperorFreqMs: number;
  /** `emperor-throttle` ms: first respawn delay of a failing vassal. @default 1000 */
  readonly emperorThrottleMs: number;
  /** `emperor-max-throttle` ms: largest respawn delay. @default 180000 */
  readonly emperorMaxThrottleMs: number;
  /**
   * How an on-demand vassal's socket is named, from the first of
   * `emperor-on-demand-extension`, `-directory`, `-exec` that is set (uWSGI
   * core/emperor.c `emperor_check_on_demand_socket`); undefined = no on-demand vassals.
   */
  readonly emperorOnDemand: EmperorOnDemand | undefined;
  /** `emperor-required-heartbeat` seconds → ms: restart a vassal silent this long; 0 = off. */
  readonly emperorRequiredHeartbeatMs: number;
  /**
   * `emperor-adopt-timeout` seconds → ms: how long an orphaned master waits for a new
   * emperor before it stops gracefully; 0 = the master stops when its emperor goes. @default 60 s
   */
  readonly emperorAdoptTimeoutMs: number;
  /** `emperor-runtime-dir` (else `$RUNTIME_DIRECTORY`): control socket and leases; undefined = no handover. */
  readonly emperorRuntimeDir: string | undefined;
  /** `vassals-inherit` (repeatable): absolute paths of files whose options every vassal gets. */
  readonly vassalsInherit: readonly string[];
  /** `pidfile` / `emperor-pidfile`: where the emperor writes its pid. */
  readonly pidfile: string | undefined;
  /** `die-on-term`: accepted; SIGTERM always stops the emperor. */
  readonly dieOnTerm: boolean;
  /** `log-style` (ours): how event lines are written; the emperor passes its choice to its vassals. */
  readonly logStyle: LogStyleChoice;
  /**
   * `uid`: the user the emperor drops to after binding its stats sockets and writing its
   * pidfile (uWSGI core/uwsgi.c `uwsgi_as_root`). Not looked up here.
   */
  readonly uid: Principal | undefined;
  /** `gid`: the emperor's group after the drop; with `uid` only, the user's primary group. */
  readonly gid: Principal | undefined;
  /** `cap`: the capabilities the emperor keeps after dropping to `uid` (empty: none). */
  readonly cap: readonly CapabilityName[];
  readonly resolved: readonly ResolvedOption[];
}

/**
 * `log-style`: `text` (one line per event, for people), `json` (pino's objects, for
 * machines), or `auto`: text under systemd (stderr is the journal) and on a terminal,
 * JSON otherwise (see `@emperor/process` logger.ts, which resolves it).
 */
export type LogStyleChoice = 'auto' | 'text' | 'json';

/** Severity-free diagnostics that do not stop a vassal. */
export type ConfigWarningCode =
  /** Not an option we or uWSGI know: most likely a typo. */
  | 'unknown-option'
  /** A real uWSGI option that Emperor does not implement; it is ignored. */
  | 'unsupported-option'
  /** An option of the other kind of file (a vassal option in the emperor's file, or the reverse). */
  | 'misplaced-option'
  /** Accepted for compatibility but has no effect (with the reason). */
  | 'no-effect'
  /** `$(NAME)` of an environment variable that is not set; it expanded to "". */
  | 'unset-variable';

/** A problem reported once that does not stop the vassal. */
export interface ConfigWarning extends SourceLocation {
  readonly code: ConfigWarningCode;
  readonly option: string;
  /** One sentence, without the `file:line: option:` prefix. */
  readonly message: string;
}

/** Where on-demand socket names come from (see `EmperorConfig.emperorOnDemand`). */
export type EmperorOnDemand =
  /** `emperor-on-demand-extension`: the contents of `VASSAL_PATH + extension`. */
  | { readonly kind: 'extension'; readonly extension: string }
  /** `emperor-on-demand-directory`: `directory/NAME.socket` (NAME without its extension). */
  | { readonly kind: 'directory'; readonly directory: string }
  /** `emperor-on-demand-exec`: the first line of `command "VASSAL_PATH"`'s output. */
  | { readonly kind: 'exec'; readonly command: string };
