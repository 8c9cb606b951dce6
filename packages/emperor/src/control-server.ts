/**
 * The emperor's control socket: where masters a previous emperor left come to be
 * adopted (issue 19; the handshake is in @emperor/protocol control.ts).
 *
 * The socket lives in the runtime directory, which only the emperor's user can write, so
 * a master connecting to it reaches the emperor and nobody else. It is mode 0666 since
 * masters run as their vassals' users; who may be adopted is decided by the lease proof
 * alone. A peer that fails it is refused with one log line naming what it claimed.
 */
import { chmodSync, unlinkSync } from 'node:fs';
import net from 'node:net';
import { timingSafeEqual } from 'node:crypto';
import { CONTROL_VERSION, ControlAuthError, RuntimeDirError, isAdminRequest, parseAdminRequest, parseMasterHandshake } from '@emperor/protocol';
import { JsonLines, checkLeaseProof, leaseProof, randomHex, type Logger } from '@emperor/process';

/** How long a peer may take over the handshake, ms. */
export const CONTROL_HANDSHAKE_MS = 3000;

const ADMIN_KEY_NOTE = 'the runtime directory\'s admin.key';

/** Handshakes in progress at most; more connections are closed at once (a flood). */
export const CONTROL_MAX_PENDING = 64;

/** What a master reports about itself when it is adopted. */
export interface AdoptionFlags {
  readonly ready: boolean;
  readonly accepting: boolean;
  readonly loyal: boolean;
}

/** Options of {@link ControlServer.listen}. */
export interface ControlServerOptions {
  /** The socket's path (in the runtime directory). */
  readonly path: string;
  readonly logger: Logger;
  /** `emperor-adopt-timeout`, ms, told to each adopted master. */
  readonly adoptTimeoutMs: number;
  /**
   * The secret of the lease of vassal `vassal`'s master `pid`, or why there is none
   * (the refusal's reason, sent to the peer and logged).
   */
  readonly lookup: (vassal: string, pid: number) => { readonly secret: string } | { readonly refused: string };
  /** A master proved its lease: the channel is now the vassal's. */
  readonly onAdopt: (vassal: string, pid: number, channel: JsonLines, flags: AdoptionFlags) => void;
  /** The admin key (hex) an `emperor upgrade` must present. */
  readonly adminKey: string;
  /** A valid upgrade request: resolves with the new emperor's pid, rejects with why not. */
  readonly onUpgrade: () => Promise<number>;
}

/** The control socket's server. */
export class ControlServer {
  readonly path: string;
  readonly #server: net.Server;
  readonly #options: ControlServerOptions;
  readonly #pending = new Set<JsonLines>();

  private constructor(server: net.Server, options: ControlServerOptions) {
    this.#server = server;
    this.#options = options;
    this.path = options.path;
  }

  /**
   * Listens on `options.path`, replacing a stale socket file.
   * @throws RuntimeDirError when another emperor answers there (it still runs); the listen's error
   */
  static async listen(options: ControlServerOptions): Promise<ControlServer> {
    if (await answers(options.path)) {
      throw new RuntimeDirError(`another emperor is running on ${options.path} (its control socket answers): stop it first, or give this one another emperor-runtime-dir`);
    }
    try {
      unlinkSync(options.path);
    } catch {
      // none
    }
    const server = net.createServer();
    const control = new ControlServer(server, options);
    server.on('connection', (socket) => control.#onConnection(socket));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.path, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', (err) => options.logger.error(`control socket ${options.path}: ${err.message}`));
    chmodSync(options.path, 0o666);
    return control;
  }

  #refuse(channel: JsonLines, claimed: string, reason: string): void {
    const err = new ControlAuthError(`control socket: refused ${claimed}: ${reason}`);
    this.#options.logger.warn({ code: err.code }, err.message);
    channel.send({ v: CONTROL_VERSION, type: 'refused', reason });
    channel.socket.end();
    channel.close(reason);
  }

  #onConnection(socket: net.Socket): void {
    if (this.#pending.size >= CONTROL_MAX_PENDING) {
      socket.destroy();
      return;
    }
    const channel = new JsonLines(socket);
    this.#pending.add(channel);
    let claimed = 'a peer that sent nothing';
    let hello: { vassal: string; pid: number; secret: string; nonce: string } | undefined;
    const timer = setTimeout(() => this.#refuse(channel, claimed, `no handshake within ${CONTROL_HANDSHAKE_MS / 1000} s`), CONTROL_HANDSHAKE_MS);
    channel.once('close', () => {
      clearTimeout(timer);
      this.#pending.delete(channel);
    });
    channel.on('message', (raw) => {
      if (hello === undefined && isAdminRequest(raw)) {
        clearTimeout(timer);
        this.#pending.delete(channel);
        this.#admin(channel, raw);
        return;
      }
      let message;
      try {
        message = parseMasterHandshake(raw);
      } catch (err) {
        this.#refuse(channel, claimed, (err as Error).message);
        return;
      }
      if (message.type === 'hello' && hello === undefined) {
        claimed = `a peer claiming to be the master (pid ${message.pid}) of vassal ${message.vassal}`;
        const found = this.#options.lookup(message.vassal, message.pid);
        if ('refused' in found) {
          this.#refuse(channel, claimed, found.refused);
          return;
        }
        hello = { vassal: message.vassal, pid: message.pid, secret: found.secret, nonce: randomHex(16) };
        channel.send({ v: CONTROL_VERSION, type: 'challenge', proof: leaseProof(found.secret, 'emperor', message.nonce), nonce: hello.nonce });
        return;
      }
      if (message.type === 'proof' && hello !== undefined) {
        if (!checkLeaseProof(hello.secret, 'master', hello.nonce, message.proof)) {
          this.#refuse(channel, claimed, 'it does not hold that vassal\'s lease (wrong proof)');
          return;
        }
        clearTimeout(timer);
        this.#pending.delete(channel);
        channel.removeAllListeners('message');
        channel.send({ v: CONTROL_VERSION, type: 'adopted', adoptTimeoutMs: this.#options.adoptTimeoutMs });
        this.#options.onAdopt(hello.vassal, hello.pid, channel, { ready: message.ready, accepting: message.accepting, loyal: message.loyal });
        return;
      }
      this.#refuse(channel, claimed, `${message.type} out of order`);
    });
  }

  #admin(channel: JsonLines, raw: unknown): void {
    channel.removeAllListeners('message');
    let key: Buffer;
    try {
      key = Buffer.from(parseAdminRequest(raw).key, 'hex');
    } catch (err) {
      this.#refuse(channel, 'an upgrade request', (err as Error).message);
      return;
    }
    const want = Buffer.from(this.#options.adminKey, 'hex');
    if (key.length !== want.length || !timingSafeEqual(key, want)) {
      this.#refuse(channel, 'an upgrade request', `wrong key (not the one in ${ADMIN_KEY_NOTE})`);
      return;
    }
    this.#options.onUpgrade().then(
      (pid) => {
        channel.send({ v: CONTROL_VERSION, type: 'upgraded', pid });
        channel.socket.end();
      },
      (err: unknown) => {
        channel.send({ v: CONTROL_VERSION, type: 'refused', reason: (err as Error).message });
        channel.socket.end();
      },
    );
  }

  /** Stops listening and removes the socket file; open adopted channels are left to their owners. Idempotent. */
  async close(): Promise<void> {
    for (const channel of this.#pending) channel.close('the emperor is closing its control socket');
    if (!this.#server.listening) return;
    // The file goes first, so a master reconnecting meanwhile finds nothing rather than a dying listener.
    try {
      unlinkSync(this.path);
    } catch {
      // gone
    }
    // Not waiting for close's callback: it comes only once every adopted channel has ended.
    this.#server.close();
    await Promise.resolve();
  }
}

/** True when something accepts a connection on the unix socket `path` within 1 s. */
function answers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.createConnection(path);
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1000, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}
