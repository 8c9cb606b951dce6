/**
 * One JSON object per line over a stream socket: the control channel's framing (the
 * emperor's control socket and an adopted master's end of it), and the proofs both
 * sides exchange (see @emperor/protocol control.ts).
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { CONTROL_MAX_LINE } from '@emperor/protocol';

/**
 * A socket speaking newline-delimited JSON. `message` carries each parsed object (the
 * owner validates it); `close` comes once, whatever ended it: the peer closing, an error
 * (EPIPE, ECONNRESET), a line that is not JSON or longer than {@link CONTROL_MAX_LINE}.
 * Writing to a closed channel is a no-op, never an exception.
 */
export class JsonLines extends EventEmitter<{ message: [unknown]; close: [reason: string] }> {
  readonly socket: Socket;
  #buffer = '';
  #closed = false;

  constructor(socket: Socket) {
    super();
    this.socket = socket;
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => this.#onData(chunk));
    socket.on('error', (err) => this.close(err.message));
    socket.on('close', () => this.close('closed by the peer'));
    socket.on('end', () => this.close('closed by the peer'));
  }

  get closed(): boolean {
    return this.#closed;
  }

  #onData(chunk: string): void {
    if (this.#closed) return;
    this.#buffer += chunk;
    for (let nl = this.#buffer.indexOf('\n'); nl >= 0; nl = this.#buffer.indexOf('\n')) {
      const line = this.#buffer.slice(0, nl);
      this.#buffer = this.#buffer.slice(nl + 1);
      let value: unknown;
      try {
        value = JSON.parse(line);
      } catch {
        this.close('a line that is not JSON');
        return;
      }
      this.emit('message', value);
      if (this.#closed) return;
    }
    if (this.#buffer.length > CONTROL_MAX_LINE) this.close(`a line longer than ${CONTROL_MAX_LINE} bytes`);
  }

  /** Sends one message; false when the channel is closed. */
  send(message: unknown): boolean {
    if (this.#closed || this.socket.destroyed) return false;
    this.socket.write(`${JSON.stringify(message)}\n`);
    return true;
  }

  /** Closes the channel (idempotent); `close` is emitted once with the reason. */
  close(reason = 'closed'): void {
    if (this.#closed) return;
    this.#closed = true;
    this.socket.destroy();
    this.emit('close', reason);
  }
}

/** A fresh random nonce or secret, hex (`bytes` random bytes). */
export function randomHex(bytes = 32): string {
  return randomBytes(bytes).toString('hex');
}

/** The proof that `role` holds `secret`: HMAC-SHA256(secret, `${role}:${nonce}`), hex. */
export function leaseProof(secret: string, role: 'emperor' | 'master', nonce: string): string {
  return createHmac('sha256', Buffer.from(secret, 'hex')).update(`${role}:${nonce}`).digest('hex');
}

/** True when `proof` is {@link leaseProof} of `secret`, compared in constant time. */
export function checkLeaseProof(secret: string, role: 'emperor' | 'master', nonce: string, proof: string): boolean {
  const want = Buffer.from(leaseProof(secret, role, nonce), 'hex');
  const got = Buffer.from(proof, 'hex');
  return got.length === want.length && timingSafeEqual(got, want);
}

/**
 * True while `pid` is a live process (not a zombie). kill(pid, 0) answers for any pid
 * (EPERM still means it exists); /proc tells a zombie, when this process may see it.
 */
export function pidAlive(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  let ours = true;
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
    ours = false; // another user's process: it exists
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    // Another user's process hidden by ProtectProc=invisible (as under the shipped unit):
    // kill(2) said it exists. One of ours that vanished meanwhile is gone.
    return !ours;
  }
}
