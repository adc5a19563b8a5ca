/**
 * A minimal RFC 6455 WebSocket server endpoint for the fake API server (a test double). Written
 * here rather than taken from `ws` because Kubernetes' port-forward subprotocol
 * `SPDY/3.1+portforward.k8s.io` contains `/`, which `ws` (rightly, per the RFC's token grammar)
 * refuses to negotiate, and kubectl needs it echoed. No extensions (kubectl offers none), binary
 * and text messages, fragmentation, ping/pong, close.
 */
import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { closeFrame, serverFrame } from '@warden/server';

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

export class WsConn extends EventEmitter {
  private buf: Buffer = Buffer.alloc(0);
  private fragments: Buffer[] = [];
  private closed = false;
  constructor(
    readonly socket: Duplex,
    readonly protocol: string,
  ) {
    super();
    socket.on('data', (b: Buffer) => this.onData(b));
    socket.on('close', () => this.finish());
    socket.on('error', () => this.finish());
    socket.on('drain', () => this.emit('drain'));
  }

  get open(): boolean {
    return !this.closed;
  }

  /** Bytes queued in the socket, not yet written. */
  get buffered(): number {
    return (this.socket as unknown as { writableLength: number }).writableLength ?? 0;
  }

  /** Sends one binary message; returns false when the socket's buffer is full (wait for `drain`). */
  send(data: Buffer, opcode = 2): boolean {
    if (this.closed) return false;
    return this.socket.write(serverFrame(opcode, data));
  }

  close(code = 1000, reason = ''): void {
    if (this.closed) return;
    this.socket.write(closeFrame(code, reason));
    this.socket.end();
    this.finish();
  }

  terminate(): void {
    this.socket.destroy();
    this.finish();
  }

  pause(): void {
    this.socket.pause();
  }
  resume(): void {
    this.socket.resume();
  }

  private finish(): void {
    if (this.closed) return;
    this.closed = true;
    this.emit('close');
  }

  private onData(chunk: Buffer): void {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    for (;;) {
      if (this.buf.length < 2) return;
      const b0 = this.buf[0]!;
      const b1 = this.buf[1]!;
      let len = b1 & 0x7f;
      let off = 2;
      if (len === 126) {
        if (this.buf.length < 4) return;
        len = this.buf.readUInt16BE(2);
        off = 4;
      } else if (len === 127) {
        if (this.buf.length < 10) return;
        len = Number(this.buf.readBigUInt64BE(2));
        off = 10;
      }
      const masked = (b1 & 0x80) !== 0;
      const need = off + (masked ? 4 : 0) + len;
      if (this.buf.length < need) return;
      const mask = masked ? this.buf.subarray(off, off + 4) : undefined;
      const payload = Buffer.from(this.buf.subarray(off + (masked ? 4 : 0), need));
      if (mask) for (let i = 0; i < payload.length; i++) payload[i]! ^= mask[i & 3]!;
      this.buf = this.buf.subarray(need);
      const fin = (b0 & 0x80) !== 0;
      const opcode = b0 & 0x0f;
      if (opcode === 8) {
        this.close(payload.length >= 2 ? payload.readUInt16BE(0) : 1000);
        return;
      }
      if (opcode === 9) {
        this.send(payload, 10);
        continue;
      }
      if (opcode === 10) continue;
      this.fragments.push(payload);
      if (fin) {
        const msg = this.fragments.length === 1 ? this.fragments[0]! : Buffer.concat(this.fragments);
        this.fragments = [];
        this.emit('message', msg);
      }
    }
  }
}

/** Completes the handshake with `protocol` and returns the connection, or undefined when it's not a WebSocket request. */
export function acceptWebSocket(
  req: IncomingMessage,
  socket: Duplex,
  head: Buffer,
  protocol: string,
): WsConn | undefined {
  const key = req.headers['sec-websocket-key'];
  if (typeof key !== 'string' || (req.headers.upgrade ?? '').toLowerCase() !== 'websocket') return undefined;
  const accept = createHash('sha1')
    .update(key + GUID)
    .digest('base64');
  socket.write(
    `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\nSec-WebSocket-Protocol: ${protocol}\r\n\r\n`,
  );
  const conn = new WsConn(socket, protocol);
  if (head.length) socket.unshift(head);
  return conn;
}

/** The subprotocols a client offered (comma-separated, possibly several headers). */
export function offeredProtocols(req: IncomingMessage): string[] {
  const v = req.headers['sec-websocket-protocol'];
  if (!v) return [];
  return (Array.isArray(v) ? v : [v])
    .flatMap((s) => s.split(','))
    .map((s) => s.trim())
    .filter(Boolean);
}
