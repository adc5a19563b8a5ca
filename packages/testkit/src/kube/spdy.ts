/**
 * The server half of SPDY/3.1 framing, just enough for Kubernetes port-forward (part of the fake
 * API server, a test double). kubectl 1.30+ tunnels SPDY inside WebSocket binary messages
 * (subprotocol `SPDY/3.1+portforward.k8s.io`): each message carries raw SPDY bytes, frames may
 * span messages. Per forwarded connection the client opens two streams with the headers
 * `streamtype: error|data`, `port`, `requestid`, waits for a SYN_REPLY on each, half-closes the
 * error stream, copies bytes over the data stream, and finally reads the error stream to its FIN
 * (a non-empty message there ends the whole port-forward).
 *
 * Frames handled: SYN_STREAM, SYN_REPLY (sent), RST_STREAM, SETTINGS (ignored), PING (echoed),
 * GOAWAY, HEADERS (ignored), WINDOW_UPDATE (ignored: spdystream does no flow control), DATA.
 * Header blocks are zlib-compressed with the SPDY/3 dictionary, one zlib stream per direction.
 * Left out: priorities, server push, flow control windows.
 */
import { EventEmitter } from 'node:events';
import zlib from 'node:zlib';
import { SPDY3_HEADER_DICTIONARY } from './spdy-dictionary';

const TYPE_SYN_STREAM = 1;
const TYPE_SYN_REPLY = 2;
const TYPE_RST_STREAM = 3;
const TYPE_PING = 6;
const TYPE_GOAWAY = 7;
const FLAG_FIN = 0x01;
const MAX_DATA = 32 * 1024;

/** A stateful zlib transform driven one header block at a time (Z_SYNC_FLUSH after each). */
function zlibSteps(z: zlib.Inflate | zlib.Deflate): (input: Buffer) => Promise<Buffer> {
  return (input) =>
    new Promise((resolve, reject) => {
      z.once('error', reject);
      z.write(input);
      z.flush(zlib.constants.Z_SYNC_FLUSH, () => {
        z.off('error', reject);
        const out: Buffer[] = [];
        for (let c = z.read() as Buffer | null; c !== null; c = z.read() as Buffer | null) out.push(c);
        resolve(Buffer.concat(out));
      });
    });
}

export class SpdyStream extends EventEmitter {
  /** Lower-case header names; multiple values joined with NUL as on the wire. */
  readonly headers: Record<string, string>;
  localClosed = false;
  remoteClosed = false;
  constructor(
    readonly id: number,
    headers: Record<string, string>,
    private readonly session: SpdyServerSession,
  ) {
    super();
    this.headers = headers;
  }
  write(data: Buffer): void {
    if (this.localClosed) return;
    for (let off = 0; off < data.length; off += MAX_DATA) {
      this.session.sendData(this.id, data.subarray(off, off + MAX_DATA), false);
    }
  }
  /** Half-close: DATA with FIN. */
  end(data?: Buffer): void {
    if (data?.length) this.write(data);
    if (this.localClosed) return;
    this.localClosed = true;
    this.session.sendData(this.id, Buffer.alloc(0), true);
    this.session.maybeForget(this);
  }
  reset(): void {
    if (!this.localClosed || !this.remoteClosed) this.session.sendRst(this.id, 5 /* CANCEL */);
    this.localClosed = true;
    this.remoteClosed = true;
    this.session.maybeForget(this);
  }
}

export class SpdyServerSession extends EventEmitter {
  private buf: Buffer = Buffer.alloc(0);
  private readonly streams = new Map<number, SpdyStream>();
  private readonly inflate = zlibSteps(zlib.createInflate({ dictionary: SPDY3_HEADER_DICTIONARY }));
  private readonly deflate = zlibSteps(zlib.createDeflate({ dictionary: SPDY3_HEADER_DICTIONARY }));
  /** Frames are handled strictly in order (header blocks decompress asynchronously). */
  private chain: Promise<void> = Promise.resolve();
  closed = false;

  constructor(private readonly send: (bytes: Buffer) => void) {
    super();
  }

  /** Feeds bytes received from the transport. Emits `stream` (SpdyStream), `error`, `goaway`. */
  push(chunk: Buffer): void {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    while (this.buf.length >= 8) {
      const len = this.buf.readUIntBE(5, 3);
      if (this.buf.length < 8 + len) break;
      const frame = this.buf.subarray(0, 8 + len);
      this.buf = this.buf.subarray(8 + len);
      this.chain = this.chain
        .then(() => this.handle(frame))
        .catch((err) => {
          this.emit('error', err);
        });
    }
  }

  /** Resets every stream (the transport is gone). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const s of this.streams.values()) {
      s.remoteClosed = true;
      s.localClosed = true;
      s.emit('reset');
    }
    this.streams.clear();
  }

  private async handle(frame: Buffer): Promise<void> {
    if (this.closed) return;
    const flags = frame[4]!;
    const body = frame.subarray(8);
    if ((frame[0]! & 0x80) === 0) {
      const id = frame.readUInt32BE(0) & 0x7fffffff;
      const s = this.streams.get(id);
      if (!s) return;
      if (body.length) s.emit('data', Buffer.from(body));
      if (flags & FLAG_FIN) {
        s.remoteClosed = true;
        s.emit('end');
        this.maybeForget(s);
      }
      return;
    }
    const type = frame.readUInt16BE(2);
    switch (type) {
      case TYPE_SYN_STREAM: {
        const id = body.readUInt32BE(0) & 0x7fffffff;
        const headers = decodeHeaderBlock(await this.inflate(body.subarray(10)));
        const s = new SpdyStream(id, headers, this);
        this.streams.set(id, s);
        await this.reply(id);
        this.emit('stream', s);
        if (flags & FLAG_FIN) {
          s.remoteClosed = true;
          s.emit('end');
        }
        return;
      }
      case TYPE_RST_STREAM: {
        const id = body.readUInt32BE(0) & 0x7fffffff;
        const s = this.streams.get(id);
        if (!s) return;
        this.streams.delete(id);
        s.remoteClosed = true;
        s.localClosed = true;
        s.emit('reset');
        return;
      }
      case TYPE_PING:
        this.send(Buffer.from(frame));
        return;
      case TYPE_GOAWAY:
        this.emit('goaway');
        return;
      default:
        // SETTINGS, HEADERS, WINDOW_UPDATE, NOOP: nothing to do for port-forward.
        return;
    }
  }

  private async reply(id: number): Promise<void> {
    const empty = Buffer.alloc(4); // zero header pairs
    const block = await this.deflate(empty);
    const head = Buffer.alloc(12);
    head.writeUInt16BE(0x8003, 0);
    head.writeUInt16BE(TYPE_SYN_REPLY, 2);
    head.writeUIntBE(4 + block.length, 5, 3);
    head.writeUInt32BE(id, 8);
    this.send(Buffer.concat([head, block]));
  }

  sendData(id: number, data: Buffer, fin: boolean): void {
    if (this.closed) return;
    const head = Buffer.alloc(8);
    head.writeUInt32BE(id & 0x7fffffff, 0);
    head[4] = fin ? FLAG_FIN : 0;
    head.writeUIntBE(data.length, 5, 3);
    this.send(data.length ? Buffer.concat([head, data]) : head);
  }

  sendRst(id: number, status: number): void {
    if (this.closed) return;
    const f = Buffer.alloc(16);
    f.writeUInt16BE(0x8003, 0);
    f.writeUInt16BE(TYPE_RST_STREAM, 2);
    f.writeUIntBE(8, 5, 3);
    f.writeUInt32BE(id, 8);
    f.writeUInt32BE(status, 12);
    this.send(f);
  }

  maybeForget(s: SpdyStream): void {
    if (s.localClosed && s.remoteClosed) this.streams.delete(s.id);
  }
}

function decodeHeaderBlock(b: Buffer): Record<string, string> {
  const out: Record<string, string> = {};
  let off = 0;
  const n = b.readUInt32BE(off);
  off += 4;
  for (let i = 0; i < n; i++) {
    const nl = b.readUInt32BE(off);
    off += 4;
    const name = b
      .subarray(off, off + nl)
      .toString('latin1')
      .toLowerCase();
    off += nl;
    const vl = b.readUInt32BE(off);
    off += 4;
    out[name] = b.subarray(off, off + vl).toString('latin1');
    off += vl;
  }
  return out;
}
