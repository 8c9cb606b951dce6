/**
 * Binding the vassal's sockets in the master.
 *
 * The master must own every listening socket for the vassal's whole life (so connections
 * queue in the kernel while workers change) but must never accept on one: a Node server
 * listening in the master takes connections itself and never answers them (measured:
 * 40 of 100 requests hung). So the master only *binds* (Node's own cluster does the same
 * in `SharedHandle` via `net._createServerHandle`), passes the fd to every worker as fd
 * 3, 4, … (the systemd LISTEN_FDS convention), and the workers call listen() and
 * accept(). Once any process has called listen() the socket stays in LISTEN state as
 * long as the master holds its fd, with no accept watcher in the master. The one
 * exception is cheap mode (cheap-watch.ts): the master then listens on a *duplicate*
 * descriptor ({@link dupSockets}), answers the one connection it takes there by relaying
 * it to the socket, and closes the duplicate at once.
 */
import { spawn } from 'node:child_process';
import net from 'node:net';
import { lookup } from 'node:dns/promises';
import { chmodSync, chownSync, closeSync, existsSync, lstatSync, readFileSync, readlinkSync, unlinkSync } from 'node:fs';
import { dirname } from 'node:path';
import { open } from 'node:fs/promises';
import { getSystemErrorName } from 'node:util';
import type { SocketSpec } from '@emperor/config';
import { isRawServerHandle, type RawServerHandle } from '@emperor/process';
import { SocketBindError } from '@emperor/protocol';

// Defined in the error registry (@emperor/protocol errors.ts); re-exported so existing imports keep working.
export { SocketBindError };

interface ServerHandle {
  readonly fd: number;
  close(): void;
  getsockname?(out: { port?: number }): number;
}

type CreateServerHandle = (address: string | null, port: number, addressType: number, fd?: number, flags?: number) => ServerHandle | number;
// Not in @types/node; stable since Node 0.x because cluster relies on it.
const createServerHandle = (net as unknown as { _createServerHandle: CreateServerHandle })._createServerHandle;

/** A socket bound by the master. */
export interface BoundSocket {
  readonly spec: SocketSpec;
  /** The master's fd; workers receive a duplicate at 3 + index. */
  readonly fd: number;
  /** Kernel inode of the socket, to find its listen queue in /proc/net. */
  readonly inode: number;
  /** A TCP socket (its listen queue is in /proc/net/tcp*); unix sockets show none. */
  readonly tcp: boolean;
  /** Closes the master's fd (and unlinks a unix socket file when `unlink` is set). */
  close(unlink: boolean): void;
}

/** `FILE:LINE: OPTION: NAME`, how every socket error line begins. */
export function socketWhere(spec: Pick<SocketSpec, 'file' | 'line' | 'option' | 'name'>): string {
  return `${spec.file}:${spec.line}: ${spec.option}: ${spec.name}`;
}

/** Socket ownership and mode, from `chown-socket` / `chmod-socket`. */
export interface SocketPermissions {
  /** Mode for unix socket files, e.g. 0o666. */
  readonly mode: number | undefined;
  /** Numeric owner for unix socket files. */
  readonly uid: number | undefined;
  readonly gid: number | undefined;
}

function reason(code: string, spec: SocketSpec): string {
  switch (code) {
    case 'EADDRINUSE':
      return 'address already in use (another process is listening there)';
    case 'EACCES':
      return spec.address.kind === 'tcp' && spec.address.port < 1024
        ? 'permission denied (ports below 1024 need root)'
        : 'permission denied';
    case 'EADDRNOTAVAIL':
      return 'address not available on this host';
    case 'ENOENT':
      return 'the directory does not exist';
    case 'ENOTDIR':
      return 'a component of the path is not a directory';
    default:
      return code;
  }
}

function socketInode(fd: number): number {
  try {
    const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/self/fd/${fd}`));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

/** Removes a stale unix socket file left by a dead process; refuses to touch anything else. */
async function clearStaleUnixSocket(spec: SocketSpec, path: string): Promise<void> {
  let isSocket: boolean;
  try {
    isSocket = lstatSync(path).isSocket();
  } catch {
    return; // nothing there
  }
  const where = socketWhere(spec);
  if (!isSocket) throw new SocketBindError(`${where}: cannot bind: a file that is not a socket is in the way`);
  const alive = await new Promise<boolean>((resolve) => {
    const probe = net.connect(path);
    probe.once('connect', () => { probe.destroy(); resolve(true); });
    probe.once('error', () => resolve(false));
  });
  if (alive) throw new SocketBindError(`${where}: cannot bind: address already in use (another process is listening there)`);
  unlinkSync(path);
}

/** What the kernel says of a socket open on a file descriptor (from /proc). */
export interface OpenSocketInfo {
  readonly inode: number;
  /** `tcp` and `unix` only when the socket listens (found among the listening sockets); else `other`. */
  readonly family: 'tcp' | 'unix' | 'other';
  /** It is in LISTEN state (TCP) or accepts connections (unix `__SO_ACCEPTCON`). */
  readonly listening: boolean;
}

/** `__SO_ACCEPTCON` in /proc/net/unix's Flags column: the socket listens. */
const UNIX_ACCEPTCON = 0x10000;

/**
 * Whether `fd` is an open socket, and whether it listens: what a web server that spawns
 * its FastCGI backend leaves on stdin (lighttpd `bin-path`). Read from /proc, since Node
 * has no getsockopt: the socket's inode from /proc/self/fd, then the listening sockets
 * of /proc/net/tcp, tcp6 and unix. uWSGI core/socket.c calls getsockname(0) (any bound
 * socket); flup's getpeername(0) failing with ENOTCONN (not connected) is closer to this.
 * @returns undefined when `fd` is not open or not a socket
 */
export async function inspectSocketFd(fd: number): Promise<OpenSocketInfo | undefined> {
  let inode: number;
  try {
    const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/self/fd/${fd}`));
    if (m === null) return undefined;
    inode = Number(m[1]);
  } catch {
    return undefined;
  }
  if ((await readTcpListenQueues(new Set([inode]))).has(inode)) return { inode, family: 'tcp', listening: true };
  try {
    for (const line of readFileSync('/proc/net/unix', 'latin1').split('\n').slice(1)) {
      // Num RefCount Protocol Flags Type St Inode [Path]
      const f = line.trim().split(/\s+/);
      if (Number(f[6]) !== inode) continue;
      const listening = (Number.parseInt(f[3] ?? '0', 16) & UNIX_ACCEPTCON) !== 0;
      return { inode, family: listening ? 'unix' : 'other', listening };
    }
  } catch {
    // no /proc/net/unix: not a listening unix socket as far as we can tell
  }
  return { inode, family: 'other', listening: false };
}

/**
 * How many connections wait, not yet accepted, on the listening unix sockets whose
 * inodes are given. /proc/net/unix shows no accept queue, but each waiting connection is
 * a socket of its own there, with the listener's path and no inode until accept() gives
 * it one (observed on Linux 5.x/6.x). Used only when no worker runs (`idle`'s cheap
 * mode), where nothing else could have connected sockets at that path.
 */
export function pendingUnixConnections(inodes: ReadonlySet<number>): number {
  if (inodes.size === 0) return 0;
  let lines: string[];
  try {
    lines = readFileSync('/proc/net/unix', 'latin1').split('\n').slice(1);
  } catch {
    return 0;
  }
  const paths = new Set<string>();
  const rows = lines.map((line) => line.trim().split(/\s+/));
  for (const f of rows) if (f.length >= 8 && inodes.has(Number(f[6]))) paths.add(f.slice(7).join(' '));
  if (paths.size === 0) return 0;
  let waiting = 0;
  for (const f of rows) if (f.length >= 8 && f[6] === '0' && paths.has(f.slice(7).join(' '))) waiting += 1;
  return waiting;
}

/**
 * An inherited socket (`fd://N`): used as it is, neither bound nor owned by us; closed
 * with the vassal like the others, never unlinked.
 * @throws SocketBindError when N is not an open socket
 */
async function adoptSocket(spec: SocketSpec, fd: number, where: string): Promise<BoundSocket> {
  const info = await inspectSocketFd(fd);
  if (info === undefined) {
    throw new SocketBindError(`${where}: file descriptor ${fd} is not an open socket${fd === 0 ? ' (start the vassal with a listening socket on stdin, as lighttpd bin-path does)' : ''}`);
  }
  return {
    spec,
    fd,
    inode: info.inode,
    tcp: info.family === 'tcp',
    close() {
      try {
        closeSync(fd);
      } catch {
        // already closed
      }
    },
  };
}

/**
 * Binds one socket (no listen), or adopts an inherited one (`fd://N`). Host names are
 * resolved once.
 * @throws SocketBindError naming the file, line, option, address and reason.
 */
export async function bindSocket(spec: SocketSpec, perms: SocketPermissions): Promise<BoundSocket> {
  const where = socketWhere(spec);
  const addr = spec.address;
  if (addr.kind === 'fd') return adoptSocket(spec, addr.fd, where);
  let handle: ServerHandle | number;
  let unixPath: string | undefined;
  if (addr.kind === 'tcp') {
    let ip = addr.host;
    let family = net.isIP(ip);
    if (family === 0) {
      try {
        const found = await lookup(addr.host);
        ip = found.address;
        family = found.family;
      } catch (err) {
        throw new SocketBindError(`${where}: cannot resolve host ${JSON.stringify(addr.host)}`, { cause: err });
      }
    }
    handle = createServerHandle(ip, addr.port, family);
  } else {
    unixPath = addr.abstract ? `\0${addr.path}` : addr.path;
    if (!addr.abstract) await clearStaleUnixSocket(spec, unixPath);
    // bind() creates the file with 0777 & ~umask: with chmod-socket, the umask is set so
    // that the file is born with its mode, not with the umask's until the chmod below
    // (uWSGI chmods after bind; a client racing that window saw the wrong mode).
    // The master is single-threaded and the bind is synchronous, so nothing else sees it.
    const umask = perms.mode !== undefined && !addr.abstract ? process.umask(0o777 & ~perms.mode) : undefined;
    try {
      handle = createServerHandle(unixPath, -1, -1);
    } finally {
      if (umask !== undefined) process.umask(umask);
    }
  }
  if (typeof handle === 'number') {
    let code = getSystemErrorName(handle);
    // libuv reports a unix socket in a missing directory as EACCES (uv_pipe_bind turns
    // ENOENT into EACCES, for Windows' sake): tell the two apart ourselves.
    if (code === 'EACCES' && unixPath !== undefined && !unixPath.startsWith('\0') && !existsSync(dirname(unixPath))) code = 'ENOENT';
    throw new SocketBindError(`${where}: cannot bind: ${reason(code, spec)}`);
  }
  const bound = handle;
  if (addr.kind === 'tcp') {
    // libuv defers EADDRINUSE from bind() to listen() (documented in uv_tcp_bind), and
    // the master never listens: a port someone else listens on would come back as a
    // "bound" socket that is not bound at all, and a worker's listen() would then make
    // the kernel pick a random port. So check what the socket is really bound to.
    const out: { port?: number } = {};
    const err = bound.getsockname?.(out) ?? 0;
    if (err !== 0 || (addr.port !== 0 && out.port !== addr.port)) {
      bound.close();
      throw new SocketBindError(`${where}: cannot bind: ${reason('EADDRINUSE', spec)}`);
    }
  }
  if (unixPath !== undefined && addr.kind === 'unix' && !addr.abstract) {
    try {
      if (perms.uid !== undefined || perms.gid !== undefined) chownSync(unixPath, perms.uid ?? -1, perms.gid ?? -1);
      if (perms.mode !== undefined) chmodSync(unixPath, perms.mode);
    } catch (err) {
      bound.close();
      throw new SocketBindError(`${where}: cannot set owner or mode: ${(err as Error).message}`, { cause: err });
    }
  }
  const path = unixPath;
  return {
    spec,
    fd: bound.fd,
    inode: socketInode(bound.fd),
    tcp: addr.kind === 'tcp',
    close(unlink: boolean) {
      bound.close();
      if (unlink && path !== undefined && !path.startsWith('\0')) {
        try {
          unlinkSync(path);
        } catch {
          // already gone
        }
      }
    },
  };
}

/** The child {@link dupSockets} runs (bin/dup-sockets.ts, bundled; this path holds bundled or not). */
const DUP_ENTRY = new URL('../bundle/dup-sockets.js', import.meta.url).pathname;
/** How long that child may take, ms (50 masters starting at once on 2 cores take seconds each). */
const DUP_TIMEOUT_MS = 60_000;

/**
 * A second libuv handle on a listening socket's descriptor, from {@link dupSockets}: not
 * listening until its owner calls `listen`; closing it leaves the socket open (the
 * master's own descriptor and the workers' keep it).
 */
export type DupHandle = RawServerHandle;

/**
 * A duplicate descriptor of each socket, as a libuv handle the master may watch for a
 * connection and close again (cheap mode; Node has no dup(2)). A short-lived child of this
 * Node (bin/dup-sockets.ts) inherits the sockets and sends each back over IPC
 * (SCM_RIGHTS), without listening or accepting. Costs one Node start (0.1 to 0.15 s of
 * CPU on the 2-core test host), without blocking the master's loop.
 * @returns the handles, in the order of `sockets`
 * @throws (rejects with) SocketBindError naming the sockets and the reason
 */
export async function dupSockets(sockets: readonly BoundSocket[]): Promise<DupHandle[]> {
  if (sockets.length === 0) return [];
  const got: (DupHandle | undefined)[] = sockets.map(() => undefined);
  const why = await new Promise<string | undefined>((resolve) => {
    const child = spawn(process.execPath, [DUP_ENTRY, String(sockets.length)], {
      stdio: ['ignore', 'ignore', 'pipe', ...sockets.map((s) => s.fd), 'ipc'],
      timeout: DUP_TIMEOUT_MS,
    });
    let stderr = '';
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.on('message', (message: unknown, handle: unknown) => {
      const index = (message as { index?: unknown } | null)?.index;
      if (typeof index === 'number' && isRawServerHandle(handle) && index >= 0 && index < got.length && got[index] === undefined) got[index] = handle;
      else if (isRawServerHandle(handle)) handle.close();
    });
    child.on('error', (err) => resolve(err.message));
    child.on('close', (code, signal) => {
      if (code === 0 && got.every((h) => h !== undefined)) resolve(undefined);
      else resolve(stderr.trim().split('\n')[0] || (signal !== null ? `killed by ${signal}` : code === 0 ? 'not every socket came back' : `exit code ${code}`));
    });
  });
  if (why === undefined) return got as DupHandle[];
  for (const h of got) h?.close();
  throw new SocketBindError(`${sockets.map((s) => socketWhere(s.spec)).join(', ')}: cannot watch for a connection (cheap mode): ${why}`);
}

/** Binds every socket, or none: on a failure the ones already bound are closed. */
export async function bindSockets(specs: readonly SocketSpec[], perms: SocketPermissions): Promise<BoundSocket[]> {
  const out: BoundSocket[] = [];
  try {
    for (const spec of specs) out.push(await bindSocket(spec, perms));
  } catch (err) {
    for (const s of out) s.close(true);
    throw err;
  }
  return out;
}

/**
 * Reads the accept queues of listening TCP sockets from /proc/net/tcp and tcp6: for a
 * socket in LISTEN state the kernel reports the connections waiting to be accepted in
 * `rx_queue` (`sk_ack_backlog`). The maximum is not there (`ss` gets it over netlink);
 * it is the `listen` backlog, capped by `net.core.somaxconn`. Unix sockets do not show
 * their queue in /proc at all. Keys are socket inodes; values are queue lengths.
 *
 * Only the head of each file is read. The kernel writes the listening sockets first, then
 * every other socket of the host (linux net/ipv4/tcp_ipv4.c `tcp_get_idx`: the listening
 * hash, then the established one), and builds the text as it is read, so stopping at the
 * first connection skips the walk over the rest. Behind nginx `uwsgi_pass`, every request
 * is a new connection and leaves a TIME_WAIT entry: with 24,000 of them here, reading the
 * whole file cost 14 ms of CPU, its head 0.08 ms (measured), and a master reads it every
 * second while its workers are busy. SYN_RECV lines may follow their listener (kernels
 * before 4.4) and are skipped. Asynchronous all the same: the master's event loop never
 * waits on it.
 */
export async function readTcpListenQueues(inodes: ReadonlySet<number>): Promise<Map<number, number>> {
  const out = new Map<number, number>();
  if (inodes.size === 0) return out;
  await Promise.all(['/proc/net/tcp', '/proc/net/tcp6'].map((file) => listenQueuesIn(file, inodes, out).catch(() => undefined)));
  return out;
}

/** Bytes read from a /proc/net/tcp file at a time (a line is 150 bytes). */
const PROC_TCP_CHUNK = 16 * 1024;
const TCP_LISTEN = '0A';
const TCP_SYN_RECV = '03';

/** {@link readTcpListenQueues} for one file: its listening sockets, then it stops. */
async function listenQueuesIn(file: string, inodes: ReadonlySet<number>, out: Map<number, number>): Promise<void> {
  const handle = await open(file, 'r');
  try {
    const buf = Buffer.allocUnsafe(PROC_TCP_CHUNK);
    let rest = '';
    let header = true;
    for (;;) {
      const { bytesRead } = await handle.read(buf, 0, buf.length, null);
      if (bytesRead === 0) return;
      const lines = (rest + buf.toString('latin1', 0, bytesRead)).split('\n');
      rest = lines.pop() ?? '';
      for (const line of lines) {
        if (header) {
          header = false;
          continue;
        }
        const f = line.trim().split(/\s+/);
        if (f[3] === TCP_SYN_RECV) continue;
        if (f[3] !== TCP_LISTEN) return; // the connections begin: no listening socket after this
        const inode = Number(f[9]);
        if (inodes.has(inode)) out.set(inode, parseInt((f[4] ?? '0:0').split(':')[1] ?? '0', 16));
      }
    }
  } finally {
    await handle.close();
  }
}

/** The backlog the kernel really uses for `listen(fd, backlog)`: capped by net.core.somaxconn. */
export function effectiveBacklog(backlog: number): number {
  try {
    return Math.min(backlog, Number(readFileSync('/proc/sys/net/core/somaxconn', 'utf8').trim()) || backlog);
  } catch {
    return backlog;
  }
}
