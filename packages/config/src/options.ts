/**
 * The option table: the ONLY place options are defined. The resolver looks names up here,
 * docs/configuration.md is generated from it, unknown-option suggestions and the CLI's
 * boolean flags come from it, and {@link OptionName} is derived from it, so a misspelt
 * option name in our own code is a compile error.
 *
 * Names, units and defaults are uWSGI 2.0's (core/uwsgi.c `uwsgi_base_options`, the python
 * plugin, plugins/cheaper_busyness, core/emperor.c) unless the doc says otherwise.
 */

/** Which file an option belongs in: a vassal file, the emperor's own file, or either. */
export type OptionScope = 'vassal' | 'emperor' | 'both';

/**
 * How a value is read.
 * - `bool`: `true/false`, `1/0`, `yes/no`, `on/off` (any case); a bare key is true.
 * - `uint`: whole number `^\d+$`, within `min`..`max`, then converted by `unit`.
 * - `string`, `identifier` (a Python identifier), `choice` (one of `choices`).
 * - `path`: resolved once to an absolute path.
 * - `socket`, `address`: `host:port`, `:port`, `[v6]:port`, `@abstract`, or a unix path.
 * - `mode`: 3 octal digits; empty or `1` means 666. `owner`: `user[:group]`.
 * - `principal`: a user/group name or number. `env`: `KEY=VALUE`.
 * - `placeholder`: `name=value` (defines `%(name)`). `plugins`: comma/space separated names.
 * - `capabilities`: Linux capability names or numbers, comma separated (`setgid,setuid`).
 */
export type OptionType =
  | 'bool'
  | 'uint'
  | 'string'
  | 'identifier'
  | 'choice'
  | 'path'
  | 'socket'
  | 'address'
  | 'mode'
  | 'owner'
  | 'principal'
  | 'env'
  | 'placeholder'
  | 'plugins'
  | 'capabilities';

/**
 * The unit a number is written in (uWSGI's). Conversion happens once, in the resolver:
 * `seconds` → milliseconds (×1000), `megabytes` → bytes (MiB, ×1024×1024); `milliseconds`,
 * `bytes` and `percent` are kept.
 */
export type OptionUnit = 'seconds' | 'milliseconds' | 'megabytes' | 'bytes' | 'percent';

/** Sections of docs/configuration.md, in order. */
export type OptionGroup = 'app' | 'sockets' | 'files' | 'health' | 'cheaper' | 'logging' | 'general' | 'emperor';

/**
 * One option. In the table, `N` is the option's own name and `T` its own type, so the
 * names can be checked at compile time; elsewhere they default to any name and type.
 */
export interface OptionSpec<N extends string = string, T extends OptionType = OptionType> {
  /** Canonical name, as uWSGI spells it. */
  readonly name: N;
  /** Other names uWSGI accepts for it (`workers` for `processes`). */
  readonly aliases: readonly string[];
  readonly scope: OptionScope;
  readonly group: OptionGroup;
  readonly type: T;
  /** Repeated occurrences accumulate (in order) instead of the last one winning. */
  readonly repeatable: boolean;
  /** The default as the docs show it, in `unit`; absent when "unset" is the default. */
  readonly default?: string;
  readonly unit?: OptionUnit;
  /** Smallest accepted value, in `unit` (`uint` only). @default 0 */
  readonly min?: number;
  /** Largest accepted value, in `unit` (`uint` only). @default Number.MAX_SAFE_INTEGER */
  readonly max?: number;
  /** Accepted values (`choice` only). */
  readonly choices?: readonly string[];
  /**
   * Accepted for compatibility, with no effect: Emperor always behaves as `default` says
   * (`master`: the master always runs). Another value is reported once as `no-effect`.
   */
  readonly fixed?: boolean;
  /** One or two sentences for docs/configuration.md. */
  readonly doc: string;
}

/** A real uWSGI option we do not implement: reported once by name and ignored. */
export interface UnsupportedOption {
  readonly name: string;
  /** Why, in a few words, for the warning and the docs. */
  readonly reason: string;
}

/** Titles of the option groups, in docs order. */
export const OPTION_GROUPS: readonly { readonly group: OptionGroup; readonly title: string }[] = [
  { group: 'app', title: 'Application and processes' },
  { group: 'sockets', title: 'Sockets' },
  { group: 'files', title: 'Pidfile, stats and metrics' },
  { group: 'health', title: 'Worker health, recycling and reloads' },
  { group: 'cheaper', title: 'Cheaper (adaptive pool size)' },
  { group: 'logging', title: 'Logging' },
  { group: 'general', title: 'Placeholders and checking' },
  { group: 'emperor', title: 'Emperor' },
];

/** The largest whole seconds whose milliseconds still fit a Node timer (2^31 - 1 ms, about 24.8 days). */
const MAX_TIMER_SECONDS = 2_147_483;
const MAX_TIMER_MS = 2_147_483_647;
/** 128 TiB, the x86-64 user address space: no memory limit can usefully be larger. */
const MAX_MEGABYTES = 134_217_728;
/** Upper bound of `processes`, and of anything counted in workers. */
const MAX_WORKERS = 1024;
/** Threads per Python worker, at most (uWSGI has no bound; each is an OS thread with its stack). */
const MAX_THREADS = 256;

type OptionInit = Omit<OptionSpec, 'name' | 'aliases' | 'repeatable' | 'scope'> &
  Partial<Pick<OptionSpec, 'aliases' | 'repeatable' | 'scope'>>;
/** An init whose type (and whether it has a default) the helpers below keep for the compiler. */
type TypedInit<T extends OptionType, D extends { readonly default?: string } = { readonly default: string }> = OptionInit & { readonly type: T } & D;

/**
 * One table entry. Its type keeps the literal `name`, the literal `type` and whether a
 * `default` is set, which is what {@link OptionName}, {@link OptionNameOf} and
 * {@link OptionNameWithDefaultOf} are made of.
 */
function option<const N extends string, const I extends OptionInit>(name: N, init: I): OptionSpec<N, I['type']> & Pick<I, keyof I & 'default'> {
  return { name, aliases: [], repeatable: false, scope: 'vassal', ...init };
}

const flag = (group: OptionGroup, doc: string, scope: OptionScope = 'vassal'): TypedInit<'bool'> => ({ group, type: 'bool', default: 'false', doc, scope });
/** A uWSGI flag Emperor always has on: accepted, with no effect (see OptionSpec.fixed). */
const always = (group: OptionGroup, doc: string, scope: OptionScope = 'vassal'): TypedInit<'bool'> => ({ group, type: 'bool', default: 'true', fixed: true, doc, scope });
const seconds = (group: OptionGroup, fallback: string, doc: string, min = 0): TypedInit<'uint'> => ({
  group, type: 'uint', unit: 'seconds', default: fallback, min, max: MAX_TIMER_SECONDS, doc,
});
const megabytes = (doc: string): TypedInit<'uint'> => ({ group: 'health', type: 'uint', unit: 'megabytes', default: '0', max: MAX_MEGABYTES, doc });
const busyness = (fallback: string, min: number, max: number, doc: string, unit?: OptionUnit): TypedInit<'uint'> => ({
  group: 'cheaper', type: 'uint', default: fallback, min, max, doc, ...(unit === undefined ? {} : { unit }),
});

/** Every option Emperor implements. */
export const OPTIONS = [
  // --- application and processes ----------------------------------------------------
  option('processes', { aliases: ['workers'], group: 'app', type: 'uint', default: '1', min: 1, max: MAX_WORKERS,
    doc: 'Number of workers; with `cheaper`, the most workers.' }),
  option('threads', { group: 'app', type: 'uint', default: '1', min: 1, max: MAX_THREADS,
    doc: 'Python: threads per worker, each serving one request at a time, so a worker serves up to this many at once (the app must be thread-safe; `wsgi.multithread` is then true). Node workers serve many requests at once without it.' }),
  option('master', always('app', 'Accepted for compatibility: the vassal master always runs.')),
  option('plugin', { aliases: ['plugins'], group: 'app', type: 'plugins', repeatable: true,
    doc: 'Worker runtime: `node`/`nodejs` or `python`/`python3`/`python3NN`, comma or space separated. Other uWSGI plugins are reported and ignored. Without it the runtime is inferred from `module`/`wsgi-file`.' }),
  option('module', { aliases: ['wsgi'], group: 'app', type: 'string',
    doc: 'The app. Node: a `.js`/`.mjs`/`.cjs` file, resolved against `chdir` if set, else the vassal file\'s directory. Python: a dotted module, `pkg.app` or `pkg.app:callable`.' }),
  option('wsgi-file', { aliases: ['file'], group: 'app', type: 'path', doc: 'Python: a file defining the WSGI callable (instead of `module`).' }),
  option('callable', { group: 'app', type: 'identifier', default: 'application', doc: 'Python: name of the WSGI (or ASGI) callable in the module or file.' }),
  option('asgi', { group: 'app', type: 'string',
    doc: 'Python: an ASGI 3 app, `pkg.app:callable` (or `pkg.app`, the callable then named by `callable`), served by the asyncio worker whatever the callable looks like (instead of `module`). Without it, a `module`/`wsgi-file` callable that is an `async def` (or an object whose `__call__` is one, as FastAPI, Starlette and Django\'s ASGIHandler are) is served as ASGI too. See docs/asgi.md.' }),
  option('async', { group: 'app', type: 'uint', default: '1000', min: 1, max: 100000,
    doc: 'Python ASGI apps: connections a worker holds at once, each serving one request or WebSocket session at a time, so also the most requests in flight (uWSGI\'s async cores; here asyncio tasks). At the cap an idle keep-alive connection is closed to make room, else the worker stops accepting until a connection ends. WSGI workers ignore it (see `threads`).' }),
  option('websockets-max-size', { group: 'app', type: 'uint', default: '1024', min: 1, max: 1048576,
    doc: 'Python ASGI apps: the largest WebSocket message a client may send, in KB (uWSGI\'s unit); a larger one closes the session with code 1009.' }),
  option('pythonpath', { aliases: ['python-path', 'pp'], group: 'app', type: 'path', repeatable: true, doc: 'Python: a directory to prepend to `sys.path`.' }),
  option('home', { aliases: ['virtualenv', 'venv', 'pyhome'], group: 'app', type: 'path', doc: 'Python: the virtual environment to run in.' }),
  option('chdir', { group: 'app', type: 'path', doc: 'Directory the workers run in.' }),
  option('node-args', { group: 'app', type: 'string', repeatable: true,
    doc: 'Node: flags for `node` when it starts each worker, whitespace separated, before the worker program (e.g. `--max-old-space-size=256 --max-semi-space-size=2`); each must begin with `-`. Our addition: uWSGI has no Node workers. The vassal master\'s own flags are fixed (see docs/architecture.md, "Process start-up").' }),
  option('env', { group: 'app', type: 'env', repeatable: true, doc: '`KEY=VALUE` set in the workers\' environment; for a repeated key the last value wins.' }),
  option('uid', { scope: 'both', group: 'app', type: 'principal',
    doc: 'User (name or number) the master and workers run as; needs root unless it is the current user (or an emperor keeping `cap = setgid,setuid` starts the master). In the emperor\'s configuration: the user the emperor drops to once it has bound its stats sockets and written its pidfile (see `cap` and docs/systemd.md).' }),
  option('gid', { scope: 'both', group: 'app', type: 'principal',
    doc: 'Group (name or number); with `uid`, the user\'s supplementary groups are added. In the emperor\'s configuration: the emperor\'s group after the drop.' }),
  option('lazy-apps', flag('app', 'Python: each worker imports the app itself, after it starts. Off (the default, as in uWSGI): the app is imported once, in a template process, and every worker is forked from it (less memory, a respawn in milliseconds; an app that opens connections or starts threads at import needs `uwsgidecorators.postfork` or this option). Node workers always import their app.')),
  option('lazy', flag('app', 'As `lazy-apps`.')),
  option('py-call-osafterfork', always('app', 'Accepted: a forked Python worker always runs Python\'s `os.register_at_fork` after-fork hooks (the fork is Python\'s own `os.fork()`).')),
  option('enable-threads', always('app', 'Accepted: threads a Python app starts always run (uWSGI needs this flag to let them).')),
  option('single-interpreter', always('app', 'Accepted: a Python worker always runs its app in one interpreter.')),
  option('need-app', always('app', 'Accepted: an app that cannot load is always an error (the worker exits 22 and is respawned with backoff), never a worker answering 500.')),
  option('mount', { group: 'app', type: 'string', repeatable: true,
    doc: '`MOUNTPOINT=APP`: the app (as `module` takes it, or a `.py`/`.wsgi` file for Python) mounted at the path MOUNTPOINT (`/` for the root). With `manage-script-name`, SCRIPT_NAME is the mountpoint and PATH_INFO the rest of the path. One app per vassal: given once, without `module`/`wsgi-file`.' }),
  option('manage-script-name', flag('app', 'SCRIPT_NAME becomes the app\'s mountpoint (`mount`; the root without one) and PATH_INFO the rest of the request\'s path, whatever the front end sent (lighttpd\'s `/main.fcgi` rewrite trick, nginx\'s stock `fastcgi_params`). Node: the mountpoint is taken off `req.url`. See docs/lighttpd.md.')),

  // --- sockets ----------------------------------------------------------------------
  option('http-socket', { group: 'sockets', type: 'socket', repeatable: true, doc: 'Listen for HTTP/1.1, parsed in the workers (not uWSGI\'s HTTP router).' }),
  option('socket', { group: 'sockets', type: 'socket', repeatable: true, doc: 'Listen for the uwsgi binary protocol (nginx `uwsgi_pass`), or the protocol `protocol` names. `fd://N` serves a socket inherited on file descriptor N.' }),
  option('uwsgi-socket', { group: 'sockets', type: 'socket', repeatable: true, doc: 'Listen for the uwsgi binary protocol, whatever `protocol` says.' }),
  option('fastcgi-socket', { group: 'sockets', type: 'socket', repeatable: true,
    doc: 'Listen for FastCGI (nginx `fastcgi_pass`, lighttpd `fastcgi.server`, Apache `mod_proxy_fcgi`): responder and authorizer roles, `FCGI_KEEP_CONN`, no multiplexing. `fd://0` serves the listening socket a web server that spawns its backend passes on stdin (lighttpd `bin-path`). See docs/lighttpd.md and docs/nginx.md.' }),
  option('protocol', { aliases: ['socket-protocol'], group: 'sockets', type: 'choice', default: 'uwsgi', choices: ['uwsgi', 'http', 'fastcgi'],
    doc: 'Protocol of every `socket` (not of `uwsgi-socket`, `http-socket` or `fastcgi-socket`), and of a listening socket found on stdin, which speaks FastCGI when this is unset (as flup does; uWSGI gives it this protocol, by default uwsgi).' }),
  option('skip-zero', flag('sockets', 'Do not serve a listening socket found on stdin (fd 0). Without it, `emperor --ini` started by a web server with a listening socket on stdin (lighttpd `bin-path`) serves that socket as FastCGI, as uWSGI and flup do.')),
  option('chmod-socket', { group: 'sockets', type: 'mode', doc: 'Mode of unix sockets: 3 octal digits (`660`); alone or `1` means `666`. Default: the umask decides.' }),
  option('chown-socket', { group: 'sockets', type: 'owner', doc: '`user[:group]` owning unix sockets (names or numbers).' }),
  option('listen', { group: 'sockets', type: 'uint', default: '100', min: 1, max: 65535, doc: 'Listen backlog of every socket (capped by `net.core.somaxconn`).' }),
  option('socket-timeout', { ...seconds('sockets', '4', 'How long a worker waits for a client. Python worker: each read and each write, and the whole request head from its first byte (past it, 408 over HTTP; over uwsgi the connection is closed). Node worker: the whole uwsgi packet; on `http-socket`, Node\'s own limits apply (headers within 60 s).', 1) }),
  option('buffer-size', { group: 'sockets', type: 'uint', unit: 'bytes', default: '4096', min: 1, max: 65535,
    doc: 'Largest uwsgi packet variable block, FastCGI params (all of a request\'s `FCGI_PARAMS` records) or HTTP header block. Values above 65535 are lowered to 65535, as uWSGI does.' }),

  // --- pidfile and stats ------------------------------------------------------------
  option('pidfile', { scope: 'both', group: 'files', type: 'path', doc: 'Write the master\'s (or the emperor\'s) pid here.' }),
  option('no-defer-accept', flag('sockets', 'Do not set `TCP_DEFER_ACCEPT` on `socket`s (uwsgi protocol) over TCP. By default (as in uWSGI) a connection is accepted once its first bytes are there, or after about `socket-timeout` without any. Python workers set it; Node workers do not.')),
  option('vacuum', flag('files', 'Remove unix sockets, the pidfile and the master FIFO on exit.')),
  option('master-fifo', { group: 'files', type: 'path', repeatable: true,
    doc: 'A named pipe (made with mode 0600) the master reads one-letter commands from, as uWSGI\'s: `r` graceful reload, `w` reload the workers with the running config, `c` chain reload, `q`/`Q` graceful/immediate stop, `l` reopen `logto`, `s` stats in the log, `+`/`-` one worker more/less (cheaper), `P` rewrite the pidfile, `0`-`9` switch to the N-th `master-fifo`. Other commands are logged as not supported. See docs/worker-health.md.' }),
  option('stats', { aliases: ['stats-server'], scope: 'both', group: 'files', type: 'address',
    doc: 'Serve the stats JSON (uWSGI\'s shape) on this address. In the emperor\'s configuration: the emperor\'s stats, as `emperor-stats` (with both set, both answer).' }),
  option('stats-http', flag('files', 'Serve the stats JSON over HTTP instead of a raw socket (the vassal\'s `stats` and the emperor\'s `emperor-stats`); such a server also answers `GET /metrics` like `prometheus`.', 'both')),
  option('stats-minified', { ...flag('files', 'Stats JSON without newlines or indentation.', 'both'), aliases: ['stats-min'] }),
  option('prometheus', { group: 'files', type: 'address',
    doc: 'Serve Prometheus metrics (text format) on `GET /metrics` at this address: per worker requests, exceptions, harakiri, respawns, memory, state; per socket listen queue. Emperor\'s addition; uWSGI needs an exporter. See docs/metrics.md.' }),

  // --- worker health, recycling, reloads (uWSGI core/master_checks.c) ----------------
  option('harakiri', seconds('health', '0', 'End a request (and, for a sync worker, the worker) that runs longer than this; 0 = off.')),
  option('harakiri-verbose', flag('health', 'Log the worker\'s stack before a harakiri kill.')),
  option('max-requests', { group: 'health', type: 'uint', default: '0', doc: 'Recycle a worker after this many requests; 0 = off.' }),
  option('max-requests-delta', { group: 'health', type: 'uint', default: '0', doc: 'Worker N recycles after `max-requests + (N-1) * delta` requests, so they do not all restart at once.' }),
  option('min-worker-lifetime', seconds('health', '10', 'A worker younger than this is not recycled by `max-requests` or the memory limits.')),
  option('max-worker-lifetime', seconds('health', '0', 'Recycle a worker after this long; 0 = off.')),
  option('max-worker-lifetime-delta', seconds('health', '0', 'Worker N waits `(N-1) * delta` longer than `max-worker-lifetime`.')),
  option('reload-on-rss', megabytes('Recycle a worker (gracefully, after its request) whose RSS exceeds this; 0 = off.')),
  option('reload-on-as', megabytes('Recycle a worker whose address space exceeds this; 0 = off.')),
  option('evil-reload-on-rss', megabytes('Kill (SIGKILL) a worker whose RSS exceeds this, checked by the master; 0 = off.')),
  option('evil-reload-on-as', megabytes('Kill a worker whose address space exceeds this; 0 = off.')),
  option('limit-as', megabytes('RLIMIT_AS of each worker; 0 = off. Node needs about 720-750 MB of address space just to start, so a Node vassal is refused below 1024.')),
  option('cpu-affinity', { group: 'health', type: 'uint', default: '0', max: MAX_WORKERS, doc: 'CPUs per worker, assigned round-robin; 0 = off.' }),
  option('no-orphans', flag('health', 'Workers and master always exit when their parent dies (within 1 s); with no-orphans a master that loses its emperor does not wait for a new one to adopt it (`emperor-adopt-timeout`) and gives its workers 0.5 s instead of 3 s to finish.')),
  option('worker-reload-mercy', seconds('health', '60', 'Grace a stopping worker gets before SIGKILL.')),
  option('worker-ready-timeout', seconds('health', '60', 'How long a new worker may take to load its app and start accepting; past it the master kills it (SIGKILL) and respawns it with backoff. Raise it for an app that takes longer to boot. Emperor\'s addition; uWSGI has no such option.', 1)),
  option('reload-mercy', seconds('health', '0', 'Bound on a whole vassal stop or reload; 0 = unset.')),
  option('touch-reload', { group: 'health', type: 'path', repeatable: true, doc: 'Reload the workers when this file\'s mtime changes (or it is deleted).' }),
  option('touch-chain-reload', { group: 'health', type: 'path', repeatable: true, doc: 'Chain-reload (one worker at a time) when this file\'s mtime changes.' }),
  option('die-on-term', always('health', 'Accepted: SIGTERM always stops (uWSGI 2.1 semantics).', 'both')),
  option('heartbeat', seconds('health', '10', 'How often the master tells the emperor it is alive: three beats per `emperor-required-heartbeat` (30 s) by default. A settled master wakes this often at most (every 10 s), and every second while it has something to watch (harakiri, cheaper, limits, touch files). Emperor\'s default; uWSGI sends none unless `heartbeat` is set.', 1)),

  // --- cheaper (uWSGI core/cheaper.c, plugins/cheaper_busyness) -----------------------
  option('cheaper', { group: 'cheaper', type: 'uint', default: '0', max: MAX_WORKERS - 1, doc: 'Fewest workers; must be below `processes`. 0 = a fixed pool.' }),
  option('cheaper-initial', { group: 'cheaper', type: 'uint', max: MAX_WORKERS, doc: 'Workers at start; defaults to `cheaper` and is clamped into [`cheaper`, `processes`].' }),
  option('cheaper-step', { group: 'cheaper', type: 'uint', default: '1', min: 1, max: MAX_WORKERS, doc: 'Workers spawned at once when growing.' }),
  option('cheaper-algo', { group: 'cheaper', type: 'choice', default: 'spare', choices: ['spare', 'backlog', 'busyness'], doc: 'How the pool grows and shrinks: `spare`, `backlog` or `busyness`.' }),
  option('cheaper-overload', { group: 'cheaper', type: 'uint', default: '3', min: 1, max: MAX_TIMER_SECONDS,
    doc: 'spare: checks with every worker busy before growing; backlog: queued connections; busyness: seconds between checks.' }),
  option('cheaper-busyness-max', busyness('50', 0, 100, 'Grow when the average busyness is above this.', 'percent')),
  option('cheaper-busyness-min', busyness('25', 0, 100, 'Shrink when the average busyness is below this.', 'percent')),
  option('cheaper-busyness-multiplier', busyness('10', 1, 1000, 'Shrink at most every `overload * multiplier` seconds.')),
  option('cheaper-busyness-penalty', busyness('2', 1, 1000, 'Added to the multiplier when a worker was shrunk too soon.')),
  option('cheaper-busyness-verbose', flag('cheaper', 'Also log the busyness evaluations that change nothing (the average and the thresholds); spawns and cheaps are always logged.')),
  option('cheaper-busyness-backlog-alert', busyness('33', 0, 65535, 'Queued connections that spawn emergency workers.')),
  option('cheaper-busyness-backlog-multiplier', busyness('3', 1, 1000, 'Emergency workers are shrunk after `overload * this` seconds.')),
  option('cheaper-busyness-backlog-step', busyness('1', 1, MAX_WORKERS, 'Emergency workers spawned at once.')),
  option('cheaper-busyness-backlog-nonzero', seconds('cheaper', '60', 'Spawn a worker when the backlog has been non-zero this long.')),
  option('cheaper-rss-limit-soft', { group: 'cheaper', type: 'uint', unit: 'bytes', default: '0', doc: 'Do not grow while the workers\' total RSS is above this (bytes, as in uWSGI); 0 = off.' }),
  option('cheaper-rss-limit-hard', { group: 'cheaper', type: 'uint', unit: 'bytes', default: '0', doc: 'Shrink by one while the workers\' total RSS is above this; 0 = off.' }),
  option('idle', seconds('cheaper', '0', 'Cheap mode after this long without a request (uWSGI core/master_checks.c): every worker stops and the master waits for a connection on its sockets, which spawns the workers again; with `die-on-idle` the master exits instead. 0 = off.')),
  option('cheap', flag('cheaper', 'Start in cheap mode (uWSGI core/master_checks.c): the master binds its sockets and spawns no worker until the first connection waits on one; then `processes` workers start (`cheaper-initial` with cheaper). A Python app is imported then, not before. With `idle` the vassal goes back to cheap mode when idle.')),
  option('die-on-idle', flag('cheaper', 'With `idle`: the master exits instead of entering cheap mode. Under the emperor an on-demand vassal goes back to waiting on its socket; any other vassal stays stopped until its file changes.')),

  // --- request logging ----------------------------------------------------------------
  option('disable-logging', flag('logging', 'No request log lines (except those `log-4xx`, `log-5xx` and `log-slow` ask for).')),
  option('log-4xx', flag('logging', 'With `disable-logging`, still log 4xx responses.')),
  option('log-5xx', flag('logging', 'With `disable-logging`, still log 5xx responses.')),
  option('log-slow', { group: 'logging', type: 'uint', unit: 'milliseconds', default: '0', max: MAX_TIMER_MS, doc: 'With `disable-logging`, still log requests slower than this; 0 = off.' }),
  option('log-zero', flag('logging', 'With `disable-logging`, still log responses with an empty body.')),
  option('log-big', { group: 'logging', type: 'uint', unit: 'bytes', default: '0', doc: 'With `disable-logging`, still log responses whose body is at least this big; 0 = off.' }),
  option('log-format', { aliases: ['logformat'], group: 'logging', type: 'string',
    doc: 'Request log line template with uWSGI\'s `%(var)` variables (`%(addr) %(method) %(uri) %(status) %(msecs) ...`, `%(HTTP_X_NAME)` for a request header); see docs/logging.md. Default: uWSGI\'s own line.' }),
  option('log-json', flag('logging', 'Request log lines as JSON objects (pino), one per line, instead of text. Emperor\'s addition.')),
  option('log-micros', flag('logging', 'Response times in the default request line in microseconds (`in 512 micros`) instead of milliseconds.')),
  option('log-style', { scope: 'both', group: 'logging', type: 'choice', choices: ['auto', 'text', 'json'], default: 'auto',
    doc: 'How event lines (starts, reloads, deaths, warnings: not request lines) are written: `text`, one line per event for people, or `json`, one JSON object per event for machines. `auto`: text under systemd (stderr is the journal) and on a terminal, JSON otherwise. The emperor passes its choice to its vassals; a vassal\'s own `log-style` wins for its master and workers. Emperor\'s addition (uWSGI\'s `log-format` is the request line template, kept as such).' }),
  option('log-x-forwarded-for', flag('logging', 'Log the first address of `X-Forwarded-For` (set by a proxy such as nginx) as the client address.')),
  option('logto', { group: 'logging', type: 'path', doc: 'Append the master\'s and workers\' logs, request lines included, to this file instead of stderr. SIGUSR2 to the master (or the emperor) reopens it, for logrotate.' }),
  option('touch-logreopen', { group: 'logging', type: 'path', repeatable: true, doc: 'Reopen the `logto` file when this file\'s mtime changes (logrotate `postrotate touch FILE` without signals).' }),

  // --- placeholders and checking ------------------------------------------------------
  option('strict', flag('general', 'Unknown options are errors instead of warnings.', 'both')),
  option('set-placeholder', { aliases: ['set-ph'], scope: 'both', group: 'general', type: 'placeholder', repeatable: true,
    doc: '`name=value`: defines `%(name)` without defining an option.' }),

  // --- emperor (uWSGI core/emperor.c) -------------------------------------------------
  option('emperor', { scope: 'emperor', group: 'emperor', type: 'path', repeatable: true, doc: 'A directory of vassal files, a pattern such as `/etc/emperor.d/*.ini` (wildcards `*`, `?`, `[...]` in the file name part only), or a PostgreSQL table: `pg://CONNINFO;QUERY` (also `pgsql://`), a libpq connection string then the query, default `SELECT name,config,EXTRACT(epoch FROM ts) FROM vassals` (uWSGI\'s emperor-pg; see [fleet.md](fleet.md)). Repeatable; a vassal is named by its file name (or row name) across all of them, and a name found twice is refused.' }),
  option('emperor-pg-channel', { scope: 'emperor', group: 'emperor', type: 'string', default: 'emperor',
    doc: 'The channel a `pg://` source LISTENs on: a `NOTIFY` on it re-reads the vassals at once (the query also runs every `emperor-freq` and on every reconnect). Lower-case letters, digits, `_` and `$`, so `NOTIFY name` needs no quotes. Emperor\'s addition; uWSGI only polls.' }),
  option('emperor-stats', { aliases: ['emperor-stats-server'], scope: 'emperor', group: 'emperor', type: 'address', doc: 'Serve the emperor stats JSON on this address.' }),
  option('emperor-prometheus', { scope: 'emperor', group: 'emperor', type: 'address',
    doc: 'Serve the emperor\'s Prometheus metrics on `GET /metrics` at this address: vassals by state, per vassal readiness and respawns. Emperor\'s addition.' }),
  option('emperor-tyrant', flag('emperor', 'Run each vassal as the owner uid/gid of its file (no supplementary groups, as uWSGI). Files owned by uid 0 or gid 0 are refused; a `uid`/`gid` option that differs from the owner is an error. Needs root.', 'emperor')),
  option('emperor-tyrant-nofollow', flag('emperor', 'In tyrant mode, judge a symlinked vassal by the link\'s owner, not the target\'s.', 'emperor')),
  option('emperor-on-demand-extension', { scope: 'emperor', group: 'emperor', type: 'string', aliases: ['emperor-on-demand-ext'],
    doc: 'On-demand vassals: a vassal with a file `VASSAL+EXT` next to it (e.g. `app.ini.socket`) is not started; the emperor binds the socket named in that file (up to its first control character) and starts the vassal on its first connection, handing it the socket on fd 0.' }),
  option('emperor-on-demand-directory', { scope: 'emperor', group: 'emperor', type: 'path', aliases: ['emperor-on-demand-dir'],
    doc: 'On-demand vassals: every vassal waits on the unix socket `DIR/NAME.socket` (NAME without its extension) and starts on its first connection.' }),
  option('emperor-on-demand-exec', { scope: 'emperor', group: 'emperor', type: 'string',
    doc: 'On-demand vassals: run `COMMAND "VASSAL_PATH"` (through /bin/sh); its first line of output names the socket to wait on, an empty output means not on demand.' }),
  option('emperor-freq', { ...seconds('emperor', '3', 'Rescan interval behind the file watch; how often a `pg://` source re-runs its query.', 1), scope: 'emperor' }),
  option('emperor-throttle', { scope: 'emperor', group: 'emperor', type: 'uint', unit: 'milliseconds', default: '1000', min: 1, max: MAX_TIMER_MS,
    doc: 'First respawn delay of a failing vassal; it doubles up to `emperor-max-throttle`.' }),
  option('emperor-max-throttle', { scope: 'emperor', group: 'emperor', type: 'uint', unit: 'milliseconds', default: '180000', min: 1, max: MAX_TIMER_MS,
    doc: 'Largest respawn delay.' }),
  option('emperor-required-heartbeat', { ...seconds('emperor', '30', 'Kill and respawn a vassal master silent this long, counted from its first heartbeat (masters send one every `heartbeat` s); 0 = off.'), scope: 'emperor' }),
  option('emperor-adopt-timeout', { ...seconds('emperor', '60', 'How long a vassal master serves on after losing its emperor (a crash, `systemctl restart`, `emperor upgrade`), waiting for a new emperor on `emperor-runtime-dir` to adopt it; then it stops gracefully. 60 s covers a restart by systemd (RestartSec plus a start) with room to spare, and bounds how long apps run unsupervised. 0 = vassals stop when the emperor goes, within 5 s (uWSGI\'s rule). Emperor\'s addition; see docs/systemd.md.'), scope: 'emperor' }),
  option('emperor-runtime-dir', { scope: 'emperor', group: 'emperor', type: 'path',
    doc: 'Directory for the emperor\'s control socket and its vassals\' leases, writable by the emperor\'s user only: a new emperor started on it adopts the masters the previous one left. Default: `$RUNTIME_DIRECTORY` (systemd\'s RuntimeDirectory=); without either, vassals do not outlive the emperor. Emperor\'s addition.' }),
  option('vassals-inherit', { scope: 'emperor', group: 'emperor', type: 'path', repeatable: true,
    doc: 'A file whose options every vassal gets first; the vassal\'s own scalar options win (uWSGI lets the template win).' }),
  option('emperor-pidfile', { scope: 'emperor', group: 'emperor', type: 'path', doc: 'Same as `pidfile`, for the emperor.' }),
  option('cap', { scope: 'emperor', group: 'emperor', type: 'capabilities',
    doc: 'With `uid`: the Linux capabilities the emperor keeps after dropping to `uid`/`gid`, uWSGI\'s names (`setgid,setuid` to start each vassal as its own user; numbers work too). Vassal masters and workers always run with none. Without `cap`, a dropped emperor runs every vassal as its own user. See docs/systemd.md.' }),
] as const satisfies readonly OptionSpec[];

/**
 * What the `misplaced-option` warning says about an option in the wrong kind of file,
 * beyond "ignored": the emperor option meant, or where the option belongs. Options not
 * listed get the general advice ({@link misplacedAdvice}).
 */
const MISPLACED_IN_EMPEROR_FILE: Partial<Record<OptionName, string>> = {
  'socket': 'the emperor serves no requests; each vassal binds its own sockets',
  'uwsgi-socket': 'the emperor serves no requests; each vassal binds its own sockets',
  'http-socket': 'the emperor serves no requests; each vassal binds its own sockets',
  'prometheus': 'the emperor\'s own metrics are emperor-prometheus',
  'plugin': 'the emperor loads no plugins; a vassal names its runtime with plugin (or it is inferred from module/wsgi-file)',
  'master': 'the emperor needs no master',
  'logto': 'the emperor logs to stderr (the journal under systemd); to give every vassal a log file, put logto in a vassals-inherit file',
  'vacuum': 'the emperor removes its own stats sockets and pidfile at exit anyway; for the vassals, put it in a vassals-inherit file',
};
const MISPLACED_IN_VASSAL_FILE: Partial<Record<OptionName, string>> = {
  'cap': 'vassal masters and workers always run without capabilities; cap belongs in the emperor\'s configuration, with uid',
};

/**
 * The `misplaced-option` warning text for `spec` found in a file of the other `kind`:
 * "is a vassal option; ignored in the emperor's configuration (...)", naming the emperor
 * option meant where there is one.
 */
export function misplacedAdvice(spec: OptionSpec<OptionName>, kind: Exclude<OptionScope, 'both'>): string {
  if (kind === 'vassal') {
    const why = MISPLACED_IN_VASSAL_FILE[spec.name];
    return `is an emperor option; ignored in a vassal file${why === undefined ? '' : `: ${why}`}`;
  }
  const why = MISPLACED_IN_EMPEROR_FILE[spec.name] ?? 'to give it to every vassal, put it in a vassals-inherit file';
  return `is a vassal option; ignored in the emperor's configuration: ${why}`;
}

/** An option Emperor implements, with its literal name and type. */
export type KnownOption = (typeof OPTIONS)[number];

/**
 * The canonical name (uWSGI's spelling) of every option Emperor implements. Our own code
 * names options with this type, so `read.uint('harakri')` does not compile. Names read
 * from files stay `string` until {@link findOption} knows them.
 */
export type OptionName = KnownOption['name'];

/** The options of type `T`, e.g. `OptionNameOf<'bool'>` for the flags. */
export type OptionNameOf<T extends OptionType> = Extract<KnownOption, { readonly type: T }>['name'];

/** The options of type `T` that have a default in the table (readers that fall back to it take only these). */
export type OptionNameWithDefaultOf<T extends OptionType> = Extract<KnownOption, { readonly type: T; readonly default: string }>['name'];

function unsupported(reason: string, names: string): UnsupportedOption[] {
  return names.trim().split(/\s+/).map((name) => ({ name, reason }));
}

/** Real uWSGI options we do not implement. Each is reported once (`unsupported-option`) and ignored. */
export const UNSUPPORTED_UWSGI_OPTIONS: readonly UnsupportedOption[] = [
  ...unsupported('workers are processes, or threads in Python workers: no async cores', `
    threads-stacksize thread-stacksize ugreen gevent greenlet asyncio`),
  ...unsupported('workers accept() on the shared socket and the kernel wakes one', 'thunder-lock'),
  ...unsupported('request bodies are streamed to the app', `
    post-buffering post-buffering-bufsize body-read-warning upload-progress limit-post`),
  ...unsupported('serve static files from a web server or the app', `
    offload-threads static-map static-map2 static-skip-ext static-index static-gzip-all static-expires static-safe check-static file-serve-mode`),
  ...unsupported('the internal routing language is not implemented', `
    route route-if route-if-not route-run route-host route-uri route-qs route-remote-addr route-user-agent route-referer
    route-label final-route error-route response-route add-header`),
  ...unsupported('logs go to stderr or `logto`; request lines as text, `log-format` or `log-json`', `
    logger req-logger logger-req log-encoder log-route log-master log-reopen log-maxsize log-backupname
    logdate log-date log-ioerror log-drain threaded-logger logfile-chown logfile-chmod memory-report`),
  ...unsupported('run Emperor under systemd or another supervisor instead', 'daemonize daemonize2'),
  ...unsupported('no spooler, mules, cron or legions', `
    spooler spooler-processes spooler-frequency spooler-harakiri mule mules farm mule-harakiri mule-reload-mercy
    cron cron2 unique-cron cron-harakiri legion legion-node`),
  ...unsupported('run other daemons as their own services', `
    attach-daemon attach-daemon2 attach-control-daemon smart-attach-daemon smart-attach-daemon2 worker-exec`),
  ...unsupported('no jails or namespaces; use systemd sandboxing or containers', 'unshare chroot pivot_root jail setns namespace emperor-cap vassals-cap'),
  ...unsupported('process titles are not changed', `
    procname procname-prefix procname-prefix-spaced procname-append procname-master auto-procname emperor-procname`),
  ...unsupported('use touch-reload for code reloads', `
    py-autoreload python-autoreload py-tracebacker py-programname pyargv wsgi-env-behaviour wsgi-disable-file-wrapper
    import pymodule-alias`),
  ...unsupported('one app per vassal, at one mountpoint', 'worker-mount vhost vhost-host'),
  ...unsupported('uWSGI\'s routers and extra protocols are not implemented; use http-socket or socket', `
    http https http-to http-keepalive http-processes http-auto-chunked http-timeout http-websockets https-socket
    scgi-socket suwsgi-socket puwsgi-socket zerg zerg-server shared-socket fastrouter
    http-socket-modifier1 enable-proxy-protocol fastcgi-nph-socket fastcgi-modifier1 fastcgi-modifier2`),
  ...unsupported('no broodlord mode or other emperor extras', `
    emperor-use-clone
    emperor-broodlord emperor-magic-exec emperor-extra-extension emperor-no-blacklist emperor-curse-tolerance
    emperor-nofollow emperor-graceful-shutdown early-emperor emperor-proxy-socket emperor-collect-attr
    emperor-command-socket emperor-wrapper vassal-sos vassal-sos-backlog`),
  ...unsupported('vassals inherit only through vassals-inherit', `
    vassals-include vassals-include-before vassals-inherit-before vassals-set vassal-set vassals-start-hook vassals-stop-hook`),
  ...unsupported('control the vassal through signals, touch files and master-fifo', `
    touch-workers-reload touch-mules-reload touch-spoolers-reload touch-logrotate touch-exec
    touch-signal fs-reload fs-brutal-reload fs-signal reload-on-fd brutal-reload-on-fd reload-on-exception`),
  ...unsupported('harakiri is not tunable beyond harakiri and harakiri-verbose', `
    harakiri-graceful-timeout harakiri-graceful-signal harakiri-queue-threshold harakiri-no-arh no-harakiri-arh
    no-harakiri-after-req-hook`),
  ...unsupported('fixed internally', `
    check-interval forkbomb-delay mem-collector-freq ignore-sigpipe ignore-write-errors disable-write-exception
    max-fd reaper catch-exceptions honour-stdin honour-range skip-atexit disable-sendfile close-on-exec umask
    reuse-port tcp-nodelay so-keepalive so-send-timeout freebind`),
  ...unsupported('use pidfile', 'pidfile2 safe-pidfile safe-pidfile2'),
  ...unsupported('hooks and exec options run commands', `
    exec-asap exec-pre-jail exec-post-jail exec-in-jail exec-as-root exec-as-user exec-as-user-atexit exec-pre-app
    exec-post-app exec-as-vassal exec-as-emperor hook-asap hook-pre-jail hook-post-jail hook-as-root hook-as-user
    hook-as-user-atexit hook-pre-app hook-post-app hook-accepting hook-accepting1 hook-as-vassal hook-as-emperor call-asap`),
  ...unsupported('plugins are not loaded; set the runtime with plugin', 'autoload plugin-dir plugins-dir plugins-list need-plugin need-plugins'),
  ...unsupported('one file per vassal, plus vassals-inherit; no includes or config logic', `
    inherit include ini xml json yaml yml config set declare-option for endfor if-env if-not-env if-exists
    if-not-exists if-file if-dir if-opt if-reload endif`),
  ...unsupported('privileges are dropped once, to uid/gid', 'immediate-uid immediate-gid add-gid master-as-root chdir2 unenv no-server'),
  ...unsupported('no caches, shared areas, queues, subscriptions, alarms or metrics push', `
    cache cache2 cache-blocksize sharedarea queue subscribe-to carbon enable-metrics stats-push alarm alarm-log`),
];

const BY_NAME: ReadonlyMap<string, OptionSpec<OptionName>> = new Map(
  OPTIONS.flatMap((spec): [string, OptionSpec<OptionName>][] => [spec.name, ...spec.aliases].map((name) => [name, spec])),
);
const UNSUPPORTED_BY_NAME: ReadonlyMap<string, UnsupportedOption> = new Map(UNSUPPORTED_UWSGI_OPTIONS.map((entry) => [entry.name, entry]));

/** The option called `name` (canonical or alias; case-sensitive, as in uWSGI), if Emperor implements it. */
export function findOption(name: string): OptionSpec<OptionName> | undefined {
  return BY_NAME.get(name);
}

/** The unsupported uWSGI option called `name`, if it is one. */
export function findUnsupportedOption(name: string): UnsupportedOption | undefined {
  return UNSUPPORTED_BY_NAME.get(name);
}

/** Edit distance at which an unknown name is probably a typo of a known one. */
const MAX_SUGGESTION_DISTANCE = 2;

/**
 * The known option name (canonical or alias) closest to `name`, when at most 2 edits away
 * and fewer edits than `name` has characters (so `x` does not suggest `pp`).
 */
export function suggestOptionName(name: string): string | undefined {
  let best: string | undefined;
  let bestDistance = Math.min(MAX_SUGGESTION_DISTANCE, name.length - 1) + 1;
  for (const candidate of BY_NAME.keys()) {
    if (Math.abs(candidate.length - name.length) >= bestDistance) continue;
    const distance = editDistance(name, candidate, bestDistance);
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best;
}

/** Levenshtein distance, giving up (returning `limit`) once every path costs at least `limit`. */
function editDistance(a: string, b: string, limit: number): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    let rowMin = i;
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      const value = Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, (previous[j - 1] ?? 0) + cost);
      current.push(value);
      rowMin = Math.min(rowMin, value);
    }
    if (rowMin >= limit) return limit;
    previous = current;
  }
  return previous[b.length] ?? limit;
}
