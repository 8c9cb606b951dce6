/**
 * The control channel: how a vassal master that outlived its emperor is adopted by the
 * next one (issue 19).
 *
 * While the emperor that spawned a master lives, the two talk over Node's IPC channel
 * (ipc.ts). That channel dies with the emperor, so every master also gets a *lease* at
 * spawn, on an inherited pipe: the path of the emperor's control socket (a unix socket
 * in the emperor's runtime directory, which only the emperor's user can write) and a
 * secret of its own. The emperor keeps the same lease in a 0600 file of that directory,
 * so its successor can read it. An orphaned master connects to the control socket and
 * both sides prove they hold the secret (HMAC-SHA256 over the other side's nonce):
 *
 * ```
 * master → emperor  hello     { vassal, pid, nonce }
 * emperor → master  challenge { proof = HMAC(secret, "emperor:" + nonce), nonce' }
 * master → emperor  proof     { proof = HMAC(secret, "master:" + nonce'), ready, accepting, loyal }
 * emperor → master  adopted   { adoptTimeoutMs }     (or refused { reason })
 * ```
 *
 * After `adopted`, the socket carries the same messages as the IPC channel
 * ({@link EmperorToMaster}, {@link MasterToEmperor}), one JSON object per line.
 *
 * Node has no SO_PEERCRED; this is its equal: the socket's path is trusted (a directory
 * only the emperor's uid can write), and a peer is trusted for one vassal only if it
 * holds that vassal's secret, which only the emperor's uid and that master have.
 */
import { IpcMessageError } from './errors.js';
import { parseEmperorToMaster, parseMasterToEmperor, type EmperorToMaster, type MasterToEmperor } from './ipc.js';

/**
 * Version of the control channel and of the lease files: stamped on every message and
 * every lease. An emperor that finds a lease of another version replaces that vassal
 * gracefully (a new master first, then the old one stops) instead of adopting it.
 */
export const CONTROL_VERSION = 1;

/** Longest line accepted on the control socket, bytes: a hostile peer cannot make the emperor buffer more. */
export const CONTROL_MAX_LINE = 64 * 1024;

/**
 * What a master is handed at spawn on its lease pipe (fd {@link LEASE_FD}): where to find
 * the next emperor, the secret that proves both sides, and how long to wait.
 */
export interface MasterLease {
  readonly v: number;
  /** The vassal's name (its file name). */
  readonly vassal: string;
  /** Absolute path of the emperor's control socket. */
  readonly control: string;
  /** 32 random bytes, hex. */
  readonly secret: string;
  /** `emperor-adopt-timeout`, ms: how long an orphaned master waits before it stops. */
  readonly adoptTimeoutMs: number;
  /**
   * Retry a bind that finds its address in use for this long, ms: set when the master
   * replaces an older one still holding its sockets (a version change). 0 = fail at once.
   */
  readonly bindWaitMs: number;
}

/** The descriptor a master reads its lease from, and the variable that says so. */
export const LEASE_FD = 4;
export const LEASE_FD_ENV = 'EMPEROR_LEASE_FD';

/** A master's handshake messages (before adoption). */
export type MasterHandshake =
  | { readonly v: 1; readonly type: 'hello'; readonly vassal: string; readonly pid: number; readonly nonce: string }
  | { readonly v: 1; readonly type: 'proof'; readonly proof: string; readonly ready: boolean; readonly accepting: boolean; readonly loyal: boolean };

/** The emperor's handshake messages. */
export type EmperorHandshake =
  | { readonly v: 1; readonly type: 'challenge'; readonly proof: string; readonly nonce: string }
  | { readonly v: 1; readonly type: 'adopted'; readonly adoptTimeoutMs: number }
  | { readonly v: 1; readonly type: 'refused'; readonly reason: string };

const HEX = /^[0-9a-f]{16,128}$/;

function object(raw: unknown, channel: string): Record<string, unknown> {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new IpcMessageError(`${channel}: message is not an object`);
  const m = raw as Record<string, unknown>;
  if (m.v !== CONTROL_VERSION) {
    throw new IpcMessageError(`${channel}: unsupported control version ${JSON.stringify(m.v) ?? 'none'} (this build speaks ${CONTROL_VERSION})`);
  }
  return m;
}

/** Parses a master's handshake message. @throws IpcMessageError (also for another version) */
export function parseMasterHandshake(raw: unknown): MasterHandshake {
  const m = object(raw, 'control master→emperor');
  if (m.type === 'hello' && typeof m.vassal === 'string' && m.vassal.length > 0 && m.vassal.length <= 255 && Number.isSafeInteger(m.pid) && (m.pid as number) > 0 && typeof m.nonce === 'string' && HEX.test(m.nonce)) {
    return m as MasterHandshake;
  }
  if (m.type === 'proof' && typeof m.proof === 'string' && HEX.test(m.proof) && typeof m.ready === 'boolean' && typeof m.accepting === 'boolean' && typeof m.loyal === 'boolean') {
    return m as MasterHandshake;
  }
  throw new IpcMessageError(`control master→emperor: unexpected or malformed ${JSON.stringify(m.type) ?? 'message'} during the handshake`);
}

/** Parses the emperor's handshake message. @throws IpcMessageError */
export function parseEmperorHandshake(raw: unknown): EmperorHandshake {
  const m = object(raw, 'control emperor→master');
  if (m.type === 'challenge' && typeof m.proof === 'string' && HEX.test(m.proof) && typeof m.nonce === 'string' && HEX.test(m.nonce)) return m as EmperorHandshake;
  if (m.type === 'adopted' && Number.isSafeInteger(m.adoptTimeoutMs) && (m.adoptTimeoutMs as number) >= 0) return m as EmperorHandshake;
  if (m.type === 'refused' && typeof m.reason === 'string') return m as EmperorHandshake;
  throw new IpcMessageError(`control emperor→master: unexpected or malformed ${JSON.stringify(m.type) ?? 'message'} during the handshake`);
}

/** After adoption, the control socket carries the IPC messages: parses one the master sent. @throws IpcMessageError */
export function parseAdoptedMasterMessage(raw: unknown): MasterToEmperor {
  return parseMasterToEmperor(raw);
}

/** After adoption: parses one the emperor sent. @throws IpcMessageError */
export function parseAdoptingEmperorMessage(raw: unknown): EmperorToMaster {
  return parseEmperorToMaster(raw);
}

/**
 * Parses a lease handed to a master. @throws IpcMessageError when it is not one, or of
 * another version (the master then runs as if it had none: it stops with its emperor).
 */
export function parseMasterLease(raw: unknown): MasterLease {
  const m = object(raw, 'lease');
  const ok = typeof m.vassal === 'string' && typeof m.control === 'string' && m.control.startsWith('/') && typeof m.secret === 'string' && HEX.test(m.secret) &&
    Number.isSafeInteger(m.adoptTimeoutMs) && (m.adoptTimeoutMs as number) >= 0 && Number.isSafeInteger(m.bindWaitMs) && (m.bindWaitMs as number) >= 0;
  if (!ok) throw new IpcMessageError('lease: malformed');
  return m as unknown as MasterLease;
}

/**
 * An operator's request on the control socket (`emperor upgrade`): start the emperor's
 * program anew and hand every vassal over to it. `key` is the content of the runtime
 * directory's `admin.key` (0600, the emperor's user), which the emperor writes at start.
 */
export type AdminRequest = { readonly v: 1; readonly type: 'upgrade'; readonly key: string };

/** The emperor's answer to an {@link AdminRequest}: the new emperor's pid, or why not. */
export type AdminReply =
  | { readonly v: 1; readonly type: 'upgraded'; readonly pid: number }
  | { readonly v: 1; readonly type: 'refused'; readonly reason: string };

/** The file in the runtime directory holding the admin key. */
export const ADMIN_KEY_FILE = 'admin.key';

/** True for a message that is an admin request (as opposed to a master's hello). */
export function isAdminRequest(raw: unknown): boolean {
  return typeof raw === 'object' && raw !== null && (raw as { type?: unknown }).type === 'upgrade';
}

/** Parses an {@link AdminRequest}. @throws IpcMessageError */
export function parseAdminRequest(raw: unknown): AdminRequest {
  const m = object(raw, 'control admin');
  if (m.type === 'upgrade' && typeof m.key === 'string' && HEX.test(m.key)) return m as AdminRequest;
  throw new IpcMessageError('control admin: malformed upgrade request');
}

/** Parses an {@link AdminReply}. @throws IpcMessageError */
export function parseAdminReply(raw: unknown): AdminReply {
  const m = object(raw, 'control admin');
  if (m.type === 'upgraded' && Number.isSafeInteger(m.pid) && (m.pid as number) > 0) return m as AdminReply;
  if (m.type === 'refused' && typeof m.reason === 'string') return m as AdminReply;
  throw new IpcMessageError('control admin: malformed reply');
}
