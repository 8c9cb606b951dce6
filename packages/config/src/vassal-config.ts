/**
 * Builds the filled, validated {@link VassalConfig} from the options that apply to a vassal.
 * Cross-option rules live here: the runtime and app, the sockets, cheaper's bounds.
 */
import { basename, dirname, resolve } from 'node:path';
import type { CollectedOptions } from './collect.js';
import { ConfigValueError } from './errors.js';
import { createOptionReader, type OptionReader } from './option-reader.js';
import type { OptionName } from './options.js';
import { describeLocation } from './text.js';
import type { CheaperAlgo, LogStyleChoice, RawConfig, ResolvedOption, SocketAddress, SocketProtocol, SocketSpec, VassalConfig, WorkerRuntime } from './types.js';
import { isLogFormatVariable, parseLogFormat } from './log-format.js';
import { invalid, parseEnv, parseMode, parseOwner, parsePlugins, parsePrincipal, parseSocketAddress, runtimeOfPlugin } from './values.js';

/** The `file` of a socket found listening on stdin rather than declared by an option (a {@link SocketSpec}'s). */
export const STDIN_SOCKET_FILE = '<stdin>';

/**
 * `node-args` (repeatable, whitespace separated) → the Node worker's flags, in order.
 * A word that is not a flag is refused (it would be taken for the program); for a
 * Python vassal the option is reported once as having no effect.
 * @throws ConfigValueError naming the option and the word
 */
function readNodeArgs(read: OptionReader, runtime: WorkerRuntime): string[] {
  const options = read.all('node-args');
  if (runtime !== 'node') {
    if (options[0] !== undefined) read.warn(options[0], 'no-effect', 'has no effect for a Python vassal: its workers are not Node processes');
    return [];
  }
  return options.flatMap((option) => {
    const words = option.value.split(/\s+/).filter((w) => w !== '');
    const bad = words.find((w) => !w.startsWith('-'));
    if (bad !== undefined) invalid(option, 'node flags beginning with -', `${JSON.stringify(bad)} is not a node flag`);
    return words;
  });
}

/** A bare Node 20 HTTP server needs 750 MiB of address space to start (measured: it aborts at 740 MiB and hangs at 128 MiB); 1024 leaves room for the app. */
export const MIN_NODE_LIMIT_AS_MB = 1024;
/** uWSGI stores buffer-size in 16 bits and lowers larger values to this. */
const MAX_BUFFER_SIZE = 65535;
const NODE_MODULE = /\.(?:c|m)?js$/;
const PYTHON_MODULE = /^[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*(?::[A-Za-z_]\w*)?$/;
/** Options that only mean something to Python workers. */
const PYTHON_ONLY: readonly OptionName[] = ['home', 'pythonpath', 'callable', 'threads', 'async', 'websockets-max-size'];
/** A `mount` APP that is a file (uWSGI plugins/python/pyloader.c `uwsgi_mount_loader`), not a module. */
const PYTHON_FILE = /\.(?:py|wsgi)$/;
/** A mountpoint: a path, without whitespace or control characters. */
const MOUNTPOINT = /^\/[^\s\0-\x1f\x7f]*$/;
/** The option a socket of each protocol is declared with, for a socket no option declared (stdin). */
const SOCKET_OPTION: Readonly<Record<SocketProtocol, OptionName>> = { http: 'http-socket', uwsgi: 'socket', fastcgi: 'fastcgi-socket' };

/** What the caller of {@link buildVassalConfig} knows besides the options. */
export interface VassalBuildOptions {
  /** A listening socket is open on stdin (fd 0): see `ResolveVassalConfigOptions.stdinSocket`. */
  readonly stdinSocket: boolean;
  /** The on-demand socket's name: see `ResolveVassalConfigOptions.onDemandSocket`. */
  readonly onDemandSocket?: string | undefined;
}

/**
 * @param vassal the vassal's own file (the last source): its path names the vassal and anchors relative paths
 * @throws {ConfigValueError} any invalid value or missing/contradictory option
 */
export function buildVassalConfig(vassal: RawConfig, collected: CollectedOptions, options: VassalBuildOptions = { stdinSocket: false }): VassalConfig {
  const file = resolve(vassal.file);
  const baseDir = dirname(file);
  const read = createOptionReader(collected, () => baseDir);
  const processes = read.uint('processes');
  const chdir = read.path('chdir');
  const mount = readMount(read);
  const app = resolveApp(read, vassal.file, chdir, mount);
  const limitAsBytes = read.uint('limit-as');
  const limitAs = read.last('limit-as');
  if (limitAs !== undefined && app.runtime === 'node' && limitAsBytes > 0 && limitAsBytes < MIN_NODE_LIMIT_AS_MB * 1024 * 1024) {
    invalid(limitAs, `0 (off) or >= ${MIN_NODE_LIMIT_AS_MB} for a Node vassal`,
      `must be >= ${MIN_NODE_LIMIT_AS_MB} for a Node vassal (a Node worker needs about 720-750 MB of address space just to start)`);
  }

  return {
    file,
    name: basename(file),
    format: vassal.format,
    baseDir,
    processes,
    threads: read.uint('threads'),
    master: read.bool('master'),
    ...app,
    callable: read.identifier('callable'),
    asyncLimit: read.uint('async'),
    websocketsMaxSizeBytes: read.uint('websockets-max-size') * 1024,
    pythonpath: read.paths('pythonpath'),
    home: read.path('home'),
    chdir,
    nodeArgs: readNodeArgs(read, app.runtime),
    env: [...new Map(read.all('env').map(parseEnv))],
    uid: read.parsed('uid', parsePrincipal),
    gid: read.parsed('gid', parsePrincipal),
    sockets: readSockets(read, collected, vassal.file, options.stdinSocket, options.onDemandSocket),
    chmodSocket: read.parsed('chmod-socket', parseMode),
    chownSocket: read.parsed('chown-socket', parseOwner),
    mountpoint: mount?.mountpoint ?? '',
    manageScriptName: read.bool('manage-script-name'),
    listen: read.uint('listen'),
    bufferSize: readBufferSize(read),
    socketTimeoutMs: read.uint('socket-timeout'),
    noDeferAccept: read.bool('no-defer-accept'),
    pidfile: read.path('pidfile'),
    vacuum: read.bool('vacuum'),
    stats: read.address('stats'),
    statsHttp: read.bool('stats-http'),
    statsMinified: read.bool('stats-minified'),
    prometheus: read.address('prometheus'),
    harakiriMs: read.uint('harakiri'),
    harakiriVerbose: read.bool('harakiri-verbose'),
    maxRequests: read.uint('max-requests'),
    maxRequestsDelta: read.uint('max-requests-delta'),
    minWorkerLifetimeMs: read.uint('min-worker-lifetime'),
    maxWorkerLifetimeMs: read.uint('max-worker-lifetime'),
    maxWorkerLifetimeDeltaMs: read.uint('max-worker-lifetime-delta'),
    reloadOnRssBytes: read.uint('reload-on-rss'),
    reloadOnAsBytes: read.uint('reload-on-as'),
    evilReloadOnRssBytes: read.uint('evil-reload-on-rss'),
    evilReloadOnAsBytes: read.uint('evil-reload-on-as'),
    limitAsBytes,
    cpuAffinity: read.uint('cpu-affinity'),
    noOrphans: read.bool('no-orphans'),
    workerReloadMercyMs: read.uint('worker-reload-mercy'),
    workerReadyTimeoutMs: read.uint('worker-ready-timeout'),
    reloadMercyMs: read.uint('reload-mercy'),
    touchReload: read.paths('touch-reload'),
    touchChainReload: read.paths('touch-chain-reload'),
    lazyApps: read.bool('lazy-apps') || read.bool('lazy'),
    dieOnTerm: read.bool('die-on-term'),
    heartbeatMs: read.uint('heartbeat'),
    ...readCheaper(read, collected, processes),
    disableLogging: read.bool('disable-logging'),
    log4xx: read.bool('log-4xx'),
    log5xx: read.bool('log-5xx'),
    logSlowMs: read.uint('log-slow'),
    logZero: read.bool('log-zero'),
    logBigBytes: read.uint('log-big'),
    ...readLogFormat(read),
    logMicros: read.bool('log-micros'),
    logXForwardedFor: read.bool('log-x-forwarded-for'),
    logStyle: read.choice('log-style') as LogStyleChoice,
    logto: read.path('logto'),
    touchLogreopen: read.paths('touch-logreopen'),
    masterFifo: read.paths('master-fifo'),
    resolved: collected.resolved,
  };
}

/** `mount = MOUNTPOINT=APP`, split: the APP part as an occurrence of its own (for the app's checks and messages). */
interface Mount {
  /** Without a trailing slash; "" for `/`. */
  readonly mountpoint: string;
  readonly app: ResolvedOption;
  /** APP names a Python file (`.py`, `.wsgi`): a `wsgi-file`, not a `module`. */
  readonly isFile: boolean;
}

/**
 * The vassal's `mount`, if any. uWSGI mounts one app per `mount` and picks one per request
 * by SCRIPT_NAME; a vassal here runs one app, so a second `mount` is refused, and so is a
 * `mount` beside `module`/`wsgi-file` (two names for the app).
 */
function readMount(read: OptionReader): Mount | undefined {
  const [first, second] = read.all('mount');
  if (first === undefined) return undefined;
  if (second !== undefined) {
    invalid(second, 'one mount per vassal', `a vassal runs one app, already mounted at ${describeLocation(first.file, first.line)}; run the other as a vassal of its own`);
  }
  const at = first.value.indexOf('=');
  const point = first.value.slice(0, Math.max(at, 0));
  const app = first.value.slice(at + 1).trim();
  if (at < 0 || app === '') invalid(first, 'MOUNTPOINT=APP, such as /blog=blog.wsgi:application');
  if (!MOUNTPOINT.test(point)) invalid(first, 'MOUNTPOINT=APP with MOUNTPOINT a path starting with /', `the mountpoint ${JSON.stringify(point)} is not a path starting with / (uWSGI's app ids and vhost keys are not supported)`);
  for (const other of ['module', 'wsgi-file'] as const) {
    const named = read.last(other);
    if (named !== undefined) invalid(first, `mount or ${other}, not both`, `mount names the app, and so does ${other} (${describeLocation(named.file, named.line)}); keep one`);
  }
  return { mountpoint: point.replace(/\/+$/, ''), app: { ...first, value: app }, isFile: PYTHON_FILE.test(app) };
}

/** The runtime, `module` and `wsgi-file`, from `plugin` or inferred (see VassalConfig.runtime); `mount`'s APP counts as one of them. */
function resolveApp(read: OptionReader, file: string, chdir: string | undefined, mount: Mount | undefined): Pick<VassalConfig, 'runtime' | 'module' | 'wsgiFile' | 'asgi'> {
  const asgi = read.last('asgi');
  if (asgi !== undefined) return resolveAsgi(read, asgi, mount);
  return { ...resolveModule(read, file, chdir, mount), asgi: false };
}

/** `asgi = pkg.app:callable`: a Python app served as ASGI; alone (not beside `module`, `wsgi-file` or `mount`'s APP). */
function resolveAsgi(read: OptionReader, asgi: ResolvedOption, mount: Mount | undefined): Pick<VassalConfig, 'runtime' | 'module' | 'wsgiFile' | 'asgi'> {
  for (const other of ['module', 'wsgi-file', 'mount'] as const) {
    const named = other === 'mount' ? (mount === undefined ? undefined : read.all('mount')[0]) : read.last(other);
    if (named !== undefined) invalid(asgi, `asgi or ${other}, not both`, `asgi names the app, and so does ${other} (${describeLocation(named.file, named.line)}); keep one`);
  }
  if (runtimeFromPlugins(read) === 'node') invalid(asgi, 'a Python vassal', 'asgi needs the python runtime, but plugin selects node');
  if (!PYTHON_MODULE.test(asgi.value)) invalid(asgi, 'a dotted Python module such as pkg.app or pkg.app:callable');
  return { runtime: 'python', module: asgi.value, wsgiFile: undefined, asgi: true };
}

/** The runtime, `module` and `wsgi-file` of a vassal without `asgi`. */
function resolveModule(read: OptionReader, file: string, chdir: string | undefined, mount: Mount | undefined): Pick<VassalConfig, 'runtime' | 'module' | 'wsgiFile'> {
  const module = mount === undefined ? read.last('module') : mount.isFile ? undefined : mount.app;
  const wsgiFile = mount === undefined ? read.last('wsgi-file') : mount.isFile ? mount.app : undefined;
  if (module !== undefined && wsgiFile !== undefined) {
    invalid(wsgiFile, 'module or wsgi-file, not both', `module (${describeLocation(module.file, module.line)}) and wsgi-file are both set; keep one`);
  }
  const app = module ?? wsgiFile;
  if (app === undefined) {
    throw new ConfigValueError({
      file, line: 0, option: 'module', value: undefined, expected: 'module or wsgi-file', subject: 'no app',
      problem: 'set module (a .js file for Node, a Python module) or wsgi-file',
    });
  }
  const runtime = runtimeFromPlugins(read) ?? inferRuntime(app, module !== undefined);
  if (runtime === 'node') {
    if (wsgiFile !== undefined) invalid(wsgiFile, 'a Python vassal', 'wsgi-file needs the python runtime, but plugin selects node');
    for (const name of PYTHON_ONLY) {
      const option = read.last(name);
      if (option !== undefined) read.warn(option, 'no-effect', 'applies to Python apps only; this vassal runs Node');
    }
  }
  if (mount !== undefined && mount.mountpoint !== '' && !read.bool('manage-script-name')) {
    read.warn(read.all('mount')[0] as ResolvedOption, 'no-effect', 'the mountpoint changes nothing without manage-script-name: SCRIPT_NAME stays what the front end sends');
  }
  // uWSGI loads a mounted file from its working directory (chdir); wsgi-file is a path option.
  if (module === undefined) return { runtime, module: undefined, wsgiFile: resolve(mount === undefined ? read.baseDirOf(app) : (chdir ?? read.baseDirOf(app)), app.value) };
  if (runtime === 'node') return { runtime, module: resolve(chdir ?? read.baseDirOf(module), module.value), wsgiFile: undefined };
  if (!PYTHON_MODULE.test(module.value)) invalid(module, 'a dotted Python module such as pkg.app or pkg.app:callable');
  return { runtime, module: module.value, wsgiFile: undefined };
}

/** Without `plugin`: a `.js`/`.mjs`/`.cjs` module is Node (checked first: `app.js` is also a valid dotted name), `wsgi-file` or a dotted module is Python. */
function inferRuntime(app: ResolvedOption, isModule: boolean): WorkerRuntime {
  if (isModule && NODE_MODULE.test(app.value)) return 'node';
  if (!isModule || PYTHON_MODULE.test(app.value)) return 'python';
  return invalid(app, 'a .js, .mjs or .cjs file (Node) or a dotted Python module such as pkg.app');
}

/** The runtime `plugin` asks for; other plugins are reported once each and ignored. */
function runtimeFromPlugins(read: OptionReader): WorkerRuntime | undefined {
  let runtime: { readonly kind: WorkerRuntime; readonly name: string } | undefined;
  const reported = new Set<string>();
  for (const option of read.all('plugin')) {
    for (const name of parsePlugins(option)) {
      const kind = runtimeOfPlugin(name);
      if (kind === undefined) {
        if (!reported.has(name)) read.warn(option, 'unsupported-option', `plugin ${JSON.stringify(name)} is a uWSGI plugin Emperor does not support; ignored`);
        reported.add(name);
      } else if (runtime !== undefined && runtime.kind !== kind) {
        invalid(option, 'one runtime per vassal', `plugins ${runtime.name} and ${name} select two runtimes; a vassal has one`);
      } else {
        runtime = { kind, name };
      }
    }
  }
  return runtime?.kind;
}

/**
 * The sockets, in file order, each with its protocol (uWSGI core/uwsgi.c: the option's
 * own, and for `socket` the `protocol` option's); then the listening socket on stdin when
 * the caller found one, no option names `fd://0` and `skip-zero` is off.
 */
function readSockets(read: OptionReader, collected: CollectedOptions, file: string, stdinSocket: boolean, onDemandSocket?: string): readonly SocketSpec[] {
  const sockets: SocketSpec[] = [];
  const seen = new Map<string, ResolvedOption>();
  // The table's choices for protocol are exactly SocketProtocol's members (a unit test holds them equal).
  const protocol = read.choice('protocol') as SocketProtocol;
  const keyOf = (address: SocketAddress): string =>
    address.kind === 'tcp' ? `${address.host}:${address.port}` : address.kind === 'fd' ? `fd://${address.fd}` : `${address.abstract ? '@' : ''}${address.path}`;
  let onDemandKey: string | undefined;
  if (onDemandSocket !== undefined) {
    try {
      onDemandKey = keyOf(parseSocketAddress({ name: 'socket', value: onDemandSocket, file, line: 0 }, dirname(resolve(file))));
    } catch {
      onDemandKey = undefined; // a name no option could spell: fd 0 is served on its own
    }
  }
  for (const { spec, option } of collected.applied) {
    if (spec.type !== 'socket') continue;
    let address = parseSocketAddress(option, read.baseDirOf(option));
    const key = keyOf(address);
    // The on-demand socket, declared: served from fd 0, where the emperor handed it over.
    if (onDemandKey !== undefined && key === onDemandKey && !seen.has('fd://0')) address = { kind: 'fd', fd: 0 };
    const first = seen.get(key);
    if (first !== undefined && !(address.kind === 'tcp' && address.port === 0)) {
      invalid(option, 'each address once', `the same address is already declared at ${describeLocation(first.file, first.line)}`);
    }
    seen.set(key, option);
    if (address.kind === 'fd' && address.fd === 0) seen.set('fd://0', option);
    const own: SocketProtocol = spec.name === 'http-socket' ? 'http' : spec.name === 'fastcgi-socket' ? 'fastcgi' : spec.name === 'uwsgi-socket' ? 'uwsgi' : protocol;
    sockets.push({ file: option.file, line: option.line, name: option.value, address, protocol: own, option: spec.name });
  }
  if (stdinSocket && !read.bool('skip-zero') && !seen.has('fd://0')) {
    // FastCGI unless `protocol` says otherwise: the FastCGI spec's FCGI_LISTENSOCK_FILENO, and what flup assumes.
    // On demand, `protocol` as uWSGI (default uwsgi): the emperor's socket is the vassal's.
    const own: SocketProtocol = read.last('protocol') === undefined && onDemandSocket === undefined ? 'fastcgi' : protocol;
    sockets.push({ file: STDIN_SOCKET_FILE, line: 0, name: onDemandSocket ?? 'fd://0', address: { kind: 'fd', fd: 0 }, protocol: own, option: SOCKET_OPTION[own] });
  }
  if (sockets.length === 0) {
    throw new ConfigValueError({
      file, line: 0, option: 'socket', value: undefined, expected: 'http-socket, socket, uwsgi-socket or fastcgi-socket', subject: 'no socket',
      problem: 'set http-socket, socket, uwsgi-socket or fastcgi-socket (or start the vassal with a listening socket on stdin)',
    });
  }
  return sockets;
}

/** `buffer-size` above 65535 is lowered, as uWSGI does, with a warning instead of an error. */
function readBufferSize(read: OptionReader): number {
  const option = read.last('buffer-size');
  if (option !== undefined && /^\d+$/.test(option.value) && Number(option.value) > MAX_BUFFER_SIZE) {
    read.warn(option, 'no-effect', `more than ${MAX_BUFFER_SIZE}; using ${MAX_BUFFER_SIZE}, as uWSGI does`);
    return MAX_BUFFER_SIZE;
  }
  return read.uint('buffer-size');
}

type CheaperFields = Pick<VassalConfig,
  'cheaper' | 'cheaperInitial' | 'cheaperStep' | 'cheaperAlgo' | 'cheaperOverload' | 'cheaperBusyness' |
  'cheaperRssLimitSoftBytes' | 'cheaperRssLimitHardBytes' | 'idleMs' | 'dieOnIdle' | 'cheap'>;

/** uWSGI core/cheaper.c rules: cheaper < processes; cheaper-initial clamped into [cheaper, processes]. */
function readCheaper(read: OptionReader, collected: CollectedOptions, processes: number): CheaperFields {
  const cheaper = read.uint('cheaper');
  const cheaperOption = read.last('cheaper');
  if (cheaperOption !== undefined && cheaper > 0 && cheaper >= processes) {
    invalid(cheaperOption, `fewer than processes (${processes})`, `must be lower than processes (${processes})`);
  }
  // The table's choices for cheaper-algo are exactly CheaperAlgo's members (a unit test holds them equal).
  const cheaperAlgo = read.choice('cheaper-algo') as CheaperAlgo;
  const busyness = {
    max: read.uint('cheaper-busyness-max'),
    min: read.uint('cheaper-busyness-min'),
    multiplier: read.uint('cheaper-busyness-multiplier'),
    penalty: read.uint('cheaper-busyness-penalty'),
    verbose: read.bool('cheaper-busyness-verbose'),
    backlogAlert: read.uint('cheaper-busyness-backlog-alert'),
    backlogMultiplier: read.uint('cheaper-busyness-backlog-multiplier'),
    backlogStep: read.uint('cheaper-busyness-backlog-step'),
    backlogNonzeroMs: read.uint('cheaper-busyness-backlog-nonzero'),
  };
  const minOption = read.last('cheaper-busyness-min');
  if (minOption !== undefined && busyness.min > busyness.max) {
    invalid(minOption, `at most cheaper-busyness-max (${busyness.max})`, `must be <= cheaper-busyness-max (${busyness.max})`);
  }

  // Tuning that cannot matter is accepted and reported once per name.
  const reported = new Set<string>();
  for (const { spec, option } of collected.applied) {
    if (spec.group !== 'cheaper' || spec.name === 'cheaper' || spec.name === 'idle' || spec.name === 'die-on-idle' || spec.name === 'cheap' || reported.has(spec.name)) continue;
    if (cheaper === 0) read.warn(option, 'no-effect', 'has no effect without cheaper');
    else if (spec.name.startsWith('cheaper-busyness-') && cheaperAlgo !== 'busyness') read.warn(option, 'no-effect', `applies to cheaper-algo = busyness only, not ${cheaperAlgo}`);
    else continue;
    reported.add(spec.name);
  }

  let cheaperInitial = cheaper === 0 ? processes : (read.optionalUint('cheaper-initial') ?? cheaper);
  const initialOption = read.last('cheaper-initial');
  if (cheaper > 0 && initialOption !== undefined && (cheaperInitial < cheaper || cheaperInitial > processes)) {
    const clamped = Math.min(Math.max(cheaperInitial, cheaper), processes);
    read.warn(initialOption, 'no-effect', `${cheaperInitial} is outside [cheaper, processes] = [${cheaper}, ${processes}]; using ${clamped}`);
    cheaperInitial = clamped;
  }

  return {
    cheaper,
    cheaperInitial,
    cheaperStep: read.uint('cheaper-step'),
    cheaperAlgo,
    cheaperOverload: read.uint('cheaper-overload'),
    cheaperBusyness: busyness,
    cheaperRssLimitSoftBytes: read.uint('cheaper-rss-limit-soft'),
    cheaperRssLimitHardBytes: read.uint('cheaper-rss-limit-hard'),
    idleMs: read.uint('idle'),
    dieOnIdle: read.bool('die-on-idle'),
    cheap: read.bool('cheap'),
  };
}

/**
 * `log-format` and `log-json`. A variable we do not know is logged as "" (uWSGI logs a
 * missing request var as nothing too), with a `no-effect` warning naming it.
 */
function readLogFormat(read: OptionReader): Pick<VassalConfig, 'logFormat' | 'logJson'> {
  const logJson = read.bool('log-json');
  const format = read.last('log-format');
  if (format === undefined) return { logFormat: undefined, logJson };
  if (logJson) read.warn(format, 'no-effect', 'log-json is set: request lines are JSON objects; log-format is ignored');
  const unknown = parseLogFormat(format.value).flatMap((part) => (part.kind === 'var' && !isLogFormatVariable(part.name) ? [part.name] : []));
  if (unknown.length > 0) {
    read.warn(format, 'no-effect', `unknown variable(s) ${[...new Set(unknown)].map((n) => `%(${n})`).join(', ')} logged as "" (docs/logging.md lists the variables)`);
  }
  return { logFormat: format.value, logJson };
}
