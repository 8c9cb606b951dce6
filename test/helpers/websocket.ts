/**
 * A WebSocket client that speaks RFC 6455 byte by byte (Node 20 has no WebSocket client):
 * the handshake, masked frames of any opcode and fragmentation, and the frames the server
 * sends, for asserting framing, close codes and limits.
 */
import { createHash, randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { waitFor } from './index.js';

/** One frame from the server. */
export interface WsFrame {
  readonly fin: boolean;
  readonly opcode: number;
  readonly payload: Buffer;
}

export const OP = { CONT: 0, TEXT: 1, BINARY: 2, CLOSE: 8, PING: 9, PONG: 10 } as const;

/** A client frame: masked (unless `masked` is false), FIN unless `fin` is false. */
export function clientFrame(opcode: number, payload: Buffer | string, options: { fin?: boolean; masked?: boolean } = {}): Buffer {
  const data = typeof payload === 'string' ? Buffer.from(payload) : payload;
  const masked = options.masked ?? true;
  const first = ((options.fin ?? true) ? 0x80 : 0) | opcode;
  let head: Buffer;
  if (data.length < 126) head = Buffer.from([first, (masked ? 0x80 : 0) | data.length]);
  else if (data.length < 65536) {
    head = Buffer.alloc(4);
    head.writeUInt8(first, 0);
    head.writeUInt8((masked ? 0x80 : 0) | 126, 1);
    head.writeUInt16BE(data.length, 2);
  } else {
    head = Buffer.alloc(10);
    head.writeUInt8(first, 0);
    head.writeUInt8((masked ? 0x80 : 0) | 127, 1);
    head.writeBigUInt64BE(BigInt(data.length), 2);
  }
  if (!masked) return Buffer.concat([head, data]);
  const mask = randomBytes(4);
  const out = Buffer.alloc(data.length);
  for (let i = 0; i < data.length; i++) out[i] = (data[i] as number) ^ (mask[i % 4] as number);
  return Buffer.concat([head, mask, out]);
}

/** A close frame's payload: the code, then the reason. */
export function closePayload(code: number, reason = ''): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(code, 0);
  return Buffer.concat([b, Buffer.from(reason)]);
}

/** An open WebSocket connection (or a refused handshake: see `status`). */
export class WsClient {
  readonly socket: Socket;
  readonly status: number;
  readonly head: string;
  readonly frames: WsFrame[] = [];
  closed = false;
  #buf: Buffer;

  private constructor(socket: Socket, status: number, head: string, rest: Buffer) {
    this.socket = socket;
    this.status = status;
    this.head = head;
    this.#buf = rest;
    socket.on('data', (d: Buffer) => {
      this.#buf = Buffer.concat([this.#buf, d]);
      this.#parse();
    });
    socket.on('close', () => { this.closed = true; });
    this.#parse();
  }

  /** Connects and sends the handshake to `path` on 127.0.0.1:`port`; resolves once the response head came. */
  static open(port: number, path: string, headers: Record<string, string> = {}): Promise<WsClient> {
    const key = randomBytes(16).toString('base64');
    return new Promise((resolve, reject) => {
      const socket = connect(port, '127.0.0.1');
      let buf = Buffer.alloc(0);
      const onData = (d: Buffer): void => {
        buf = Buffer.concat([buf, d]);
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        socket.off('data', onData);
        const head = buf.subarray(0, end).toString('latin1');
        const status = Number(head.split(' ')[1]);
        if (status === 101) {
          const accept = createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
          if (!head.toLowerCase().includes(`sec-websocket-accept: ${accept.toLowerCase()}`)) reject(new Error(`bad Sec-WebSocket-Accept in ${head}`));
        }
        resolve(new WsClient(socket, status, head, buf.subarray(end + 4)));
      };
      socket.on('data', onData);
      socket.on('error', reject);
      const extra = Object.entries({ 'Sec-WebSocket-Key': key, 'Sec-WebSocket-Version': '13', ...headers }).map(([k, v]) => `${k}: ${v}\r\n`).join('');
      socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n${extra}\r\n`);
    });
  }

  #parse(): void {
    for (;;) {
      const b = this.#buf;
      if (b.length < 2) return;
      let n = (b[1] as number) & 0x7f;
      let at = 2;
      if (n === 126) {
        if (b.length < 4) return;
        n = b.readUInt16BE(2);
        at = 4;
      } else if (n === 127) {
        if (b.length < 10) return;
        n = Number(b.readBigUInt64BE(2));
        at = 10;
      }
      if (b.length < at + n) return;
      this.frames.push({ fin: ((b[0] as number) & 0x80) !== 0, opcode: (b[0] as number) & 0x0f, payload: b.subarray(at, at + n) });
      this.#buf = b.subarray(at + n);
    }
  }

  send(data: Buffer): void {
    this.socket.write(data);
  }

  sendText(text: string): void {
    this.send(clientFrame(OP.TEXT, text));
  }

  /** Waits for the next frame not yet taken and takes it. */
  async next(timeoutMs = 5000): Promise<WsFrame> {
    const frame = await waitFor(() => this.frames[0], { timeoutMs, message: 'a WebSocket frame' });
    this.frames.shift();
    return frame;
  }

  /** The close code of a close frame. */
  static code(frame: WsFrame): number {
    return frame.payload.length >= 2 ? frame.payload.readUInt16BE(0) : 1005;
  }

  end(): void {
    this.socket.destroy();
  }
}
