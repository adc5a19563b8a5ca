/**
 * The lean path's client to plain `http:` apps: keep-alive connections per app origin, the
 * request head written as one string, the response read by a strict hand-written HTTP/1.1
 * parser instead of undici's (its queue, its llhttp in WebAssembly, its header objects):
 *
 *   forwardLean ── head ──▶ Http1Upstream.request ── idle connection (or a new one) ── write ──▶ app
 *        ◀── onHead(status, relayable header lines) / onData / onEnd / onError ── parse ◀──┘
 *
 * What it reads, and nothing else: `HTTP/1.1` or `HTTP/1.0` status lines, header fields of the
 * RFC 9110 grammar (no obs-fold, no space before the colon, CRLF only), informational answers
 * (skipped, as undici's path skips them; never `101`), and bodies framed by one
 * `Content-Length`, by `Transfer-Encoding: chunked` alone, by the status or method (HEAD, 204,
 * 304), or by the end of the connection. Anything else — both framings, two different lengths,
 * another transfer coding, a malformed chunk, a head over node's header size limit — is an
 * error: the connection is destroyed, never reused, and the forwarder answers as for an app that
 * failed (a 502 page). A connection goes back to the pool only after a complete response with
 * nothing after it, HTTP/1.1 without `Connection: close`; bytes that arrive on an idle
 * connection destroy it (a response must not be read as the next request's).
 *
 * A request on a reused connection that fails before the first byte of its answer (the app
 * closed the idle connection meanwhile) is sent once more on a new connection: the lean path's
 * requests have no body and idempotent methods (RFC 9110 §9.2.2). No timeouts on an exchange
 * (as undici's pool was configured: Server-Sent Events may be quiet for long); idle
 * connections close after `keepAliveMs`, or sooner when the app's `Keep-Alive: timeout` says so.
 * Internal to `srv/app`. Tested by `http1-upstream.test.ts` against real and hand-written servers.
 */
import { maxHeaderSize } from 'node:http';
import { connect, type Socket } from 'node:net';
import { HOP_BY_HOP, readFields } from './http1';

/** The final response's head, ready to relay. */
export interface UpstreamHead {
  status: number;
  /** The reason phrase (checked: tabs, spaces, visible and obs-text characters only). */
  reason: string;
  /**
   * The header fields to relay, `name: value\r\n` each (lower-case names, values as checked by
   * the grammar): hop-by-hop fields and those the app listed in `Connection` left out.
   */
  lines: string;
  /** The app sent a Content-Length (relayed in `lines`). */
  sized: boolean;
  /** The app sent a Date (relayed in `lines`). */
  hasDate: boolean;
}

export interface UpstreamHandler {
  onHead(head: UpstreamHead): void;
  onData(chunk: Buffer): void;
  onEnd(): void;
  /** The exchange failed (the app's connection or its answer); nothing more follows. */
  onError(e: Error): void;
}

/** One request in flight: the forwarder pauses it while the client is full, and aborts it when the client leaves. */
export interface UpstreamExchange {
  pause(): void;
  resume(): void;
  abort(): void;
}

const STATUS_LINE = /^HTTP\/1\.([01]) ([1-9]\d\d)(?: ([\t\x20-\x7e\x80-\xff]*))?$/;
const CONTENT_LENGTH = /^\d{1,15}$/;
const KEEP_ALIVE_TIMEOUT = /(?:^|[,;\s])timeout=(\d{1,6})/i;
/** chunk-size [ BWS ";" chunk-ext ]: at most 12 hex digits (below 2^48). */
const CHUNK_SIZE = /^([0-9a-fA-F]{1,12})(?:[\t ]*;[\t\x20-\x7e\x80-\xff]*)?$/;
/** More header (or trailer) fields than this are refused (as node's parser limits them). */
const MAX_FIELDS = 2000;
/** A chunk-size line or a trailer field longer than this is refused. */
const MAX_LINE = 8 * 1024;
const CRLF = Buffer.from('\r\n');
const EMPTY_LINE = Buffer.from('\r\n\r\n');

/** A response that cannot be read as it came (the connection is never reused). */
class UpstreamProtocolError extends Error {
  constructor(why: string) {
    super(`the app's response could not be read: ${why}`);
  }
}

enum State {
  /** Reading a response head (or an informational one before it). */
  Head,
  /** A body of `remaining` bytes. */
  Sized,
  /** A chunk-size line. */
  ChunkSize,
  /** `remaining` bytes of a chunk. */
  ChunkData,
  /** The CRLF after a chunk's data. */
  ChunkEnd,
  /** Trailer fields, until the empty line. */
  Trailers,
  /** A body until the app closes the connection. */
  UntilClose,
  Done,
}

export interface Http1UpstreamOptions {
  host: string;
  port: number;
  /** Idle connections close after this long (ms). */
  keepAliveMs: number;
}

/** Keep-alive connections to one app origin (plain TCP) and the requests on them. */
export class Http1Upstream {
  readonly #o: Http1UpstreamOptions;
  /** Idle connections, the most recently used last. */
  readonly #idle: Connection[] = [];
  readonly #all = new Set<Connection>();
  #sweep: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(o: Http1UpstreamOptions) {
    this.#o = o;
  }

  /**
   * Sends one request head (`method target HTTP/1.1`, its fields, the empty line; no body) and
   * reads its response into `h`. `h` is never called before this returns.
   */
  request(head: string, method: string, h: UpstreamHandler): UpstreamExchange {
    const ex = new Exchange(this, head, method === 'HEAD', h);
    if (this.#closed) {
      queueMicrotask(() => ex.fail(new Error('the upstream client is closed')));
      return ex;
    }
    ex.start(this.take());
    return ex;
  }

  /** An idle connection, or a new one. */
  take(fresh = false): Connection {
    if (!fresh) {
      while (this.#idle.length) {
        const c = this.#idle.pop()!;
        if (c.usable()) return c;
        c.socket.destroy();
      }
    }
    const c = new Connection(this, connect({ host: this.#o.host, port: this.#o.port, noDelay: true }));
    this.#all.add(c);
    return c;
  }

  /** A connection whose response ended cleanly: idle until the next request, or its expiry. */
  release(c: Connection, keepAliveMs: number | undefined): void {
    if (this.#closed || !c.usable()) {
      c.socket.destroy();
      return;
    }
    const ms = Math.min(this.#o.keepAliveMs, keepAliveMs ?? Number.POSITIVE_INFINITY);
    if (ms <= 0) {
      c.socket.destroy();
      return;
    }
    c.idleUntil = Date.now() + ms;
    this.#idle.push(c);
    if (!this.#sweep) this.#scheduleSweep();
  }

  /** Expired idle connections close; one timer per pool while any connection is idle. */
  #scheduleSweep(): void {
    this.#sweep = setTimeout(() => {
      this.#sweep = undefined;
      const now = Date.now();
      for (let i = this.#idle.length - 1; i >= 0; i--) {
        const c = this.#idle[i]!;
        if (c.idleUntil <= now) {
          this.#idle.splice(i, 1);
          c.socket.destroy();
        }
      }
      if (this.#idle.length) this.#scheduleSweep();
    }, 1_000);
    this.#sweep.unref();
  }

  forget(c: Connection): void {
    this.#all.delete(c);
    const i = this.#idle.indexOf(c);
    if (i !== -1) this.#idle.splice(i, 1);
  }

  /** Idle connections open now (tests). */
  get idleConnections(): number {
    return this.#idle.length;
  }

  close(): void {
    this.#closed = true;
    if (this.#sweep) clearTimeout(this.#sweep);
    for (const c of [...this.#all]) c.socket.destroy();
    this.#idle.length = 0;
  }
}

/** One TCP connection to the app; at most one exchange at a time (no pipelining). */
class Connection {
  readonly socket: Socket;
  readonly #pool: Http1Upstream;
  ex: Exchange | undefined;
  /** Responses completed on this connection. */
  served = 0;
  idleUntil = 0;

  constructor(pool: Http1Upstream, socket: Socket) {
    this.#pool = pool;
    this.socket = socket;
    socket.on('data', (chunk: Buffer) => {
      // Bytes nobody asked for: the connection can no longer be trusted to frame responses.
      if (this.ex) this.ex.feed(chunk);
      else socket.destroy();
    });
    socket.on('end', () => this.ex?.eof());
    socket.on('error', (e) => this.ex?.fail(e));
    socket.on('close', () => {
      this.#pool.forget(this);
      this.ex?.fail(new Error('the app closed the connection'));
    });
  }

  usable(): boolean {
    const s = this.socket;
    return !s.destroyed && s.writable && s.readable;
  }
}

class Exchange implements UpstreamExchange {
  readonly #pool: Http1Upstream;
  readonly #head: string;
  readonly #noBody: boolean;
  readonly #h: UpstreamHandler;
  #conn: Connection | undefined;
  #state = State.Head;
  /** Unparsed bytes of a head or line that did not end in the last read. */
  #pending: Buffer | undefined;
  #remaining = 0;
  /** A byte of the answer arrived (no retry after that). */
  #answered = false;
  #retried = false;
  #reusable = true;
  #keepAliveMs: number | undefined;
  #trailerBytes = 0;
  #paused = false;

  constructor(pool: Http1Upstream, head: string, noBody: boolean, h: UpstreamHandler) {
    this.#pool = pool;
    this.#head = head;
    this.#noBody = noBody;
    this.#h = h;
  }

  start(c: Connection): void {
    this.#conn = c;
    c.ex = this;
    c.socket.write(this.#head, 'latin1');
  }

  pause(): void {
    if (this.#state === State.Done || this.#paused) return;
    this.#paused = true;
    this.#conn?.socket.pause();
  }

  resume(): void {
    if (this.#state === State.Done || !this.#paused) return;
    this.#paused = false;
    this.#conn?.socket.resume();
  }

  /** The client left: the app's answer is not wanted (the connection cannot be reused mid-response). */
  abort(): void {
    if (this.#state === State.Done) return;
    this.#state = State.Done;
    const c = this.#conn;
    this.#conn = undefined;
    if (c) {
      c.ex = undefined;
      c.socket.destroy();
    }
  }

  /** The connection failed or closed before the response was complete. */
  fail(e: Error): void {
    if (this.#state === State.Done) return;
    const c = this.#conn;
    if (c && !this.#answered && !this.#retried && c.served > 0) {
      // A reused connection the app had closed: the request again on a new one.
      this.#retried = true;
      c.ex = undefined;
      c.socket.destroy();
      this.start(this.#pool.take(true));
      return;
    }
    this.#finish(false);
    this.#h.onError(e);
  }

  /** The app ended its side of the connection. */
  eof(): void {
    if (this.#state === State.UntilClose) {
      this.#reusable = false;
      this.#complete();
    } else this.fail(new Error('the app closed the connection before its response was complete'));
  }

  #error(why: string): void {
    if (this.#state === State.Done) return;
    this.#retried = true;
    this.#reusable = false;
    this.#finish(false);
    this.#h.onError(new UpstreamProtocolError(why));
  }

  /** Leaves the connection: back to the pool when it may be reused, else destroyed. */
  #finish(reuse: boolean): void {
    this.#state = State.Done;
    const c = this.#conn;
    this.#conn = undefined;
    if (!c) return;
    c.ex = undefined;
    if (this.#paused) c.socket.resume();
    if (reuse) {
      c.served++;
      this.#pool.release(c, this.#keepAliveMs);
    } else c.socket.destroy();
  }

  #complete(leftover = false): void {
    this.#finish(this.#reusable && !leftover);
    this.#h.onEnd();
  }

  feed(chunk: Buffer): void {
    this.#answered = true;
    let data = chunk;
    while (this.#state !== State.Done) {
      switch (this.#state) {
        case State.Head: {
          const buf = this.#pending ? Buffer.concat([this.#pending, data]) : data;
          this.#pending = undefined;
          const end = buf.indexOf(EMPTY_LINE);
          if (end === -1 || end > maxHeaderSize) {
            if (buf.length > maxHeaderSize) {
              this.#error('its head is too large');
              return;
            }
            if (buf.length) this.#pending = buf;
            return;
          }
          data = buf.subarray(end + 4);
          if (!this.#readHead(buf.toString('latin1', 0, end))) return;
          break;
        }
        case State.Sized: {
          if (this.#remaining === 0) {
            // Anything after the response: the connection's framing can't be trusted any longer.
            this.#complete(data.length > 0);
            return;
          }
          if (data.length === 0) return;
          if (data.length <= this.#remaining) {
            this.#remaining -= data.length;
            this.#h.onData(data);
            if (this.#remaining === 0) this.#complete();
            return;
          }
          const body = data.subarray(0, this.#remaining);
          this.#remaining = 0;
          this.#h.onData(body);
          this.#complete(true);
          return;
        }
        case State.ChunkSize: {
          const line = this.#line(data);
          if (line === undefined) return;
          data = line.rest;
          const m = CHUNK_SIZE.exec(line.text);
          if (!m) {
            this.#error('a malformed chunk size');
            return;
          }
          const size = Number.parseInt(m[1]!, 16);
          if (size === 0) this.#state = State.Trailers;
          else {
            this.#remaining = size;
            this.#state = State.ChunkData;
          }
          break;
        }
        case State.ChunkData: {
          if (data.length === 0) return;
          const n = Math.min(this.#remaining, data.length);
          this.#remaining -= n;
          this.#h.onData(n === data.length ? data : data.subarray(0, n));
          data = data.subarray(n);
          if (this.#remaining === 0) this.#state = State.ChunkEnd;
          break;
        }
        case State.ChunkEnd: {
          const line = this.#line(data);
          if (line === undefined) return;
          if (line.text !== '') {
            this.#error('a chunk longer than its size');
            return;
          }
          data = line.rest;
          this.#state = State.ChunkSize;
          break;
        }
        case State.Trailers: {
          const line = this.#line(data);
          if (line === undefined) return;
          data = line.rest;
          if (line.text === '') {
            this.#complete(data.length > 0);
            return;
          }
          this.#trailerBytes += line.text.length;
          if (this.#trailerBytes > maxHeaderSize || !readFields(line.text, 0, 1)) {
            this.#error('malformed trailer fields');
            return;
          }
          // Trailer fields are not relayed (as on the node:http path).
          break;
        }
        case State.UntilClose: {
          if (data.length) this.#h.onData(data);
          return;
        }
      }
    }
    // Done with bytes left: a second response nobody asked for (already not reused).
  }

  /** One CRLF-terminated line (latin1) and what follows it; undefined: wait for more (or failed). */
  #line(data: Buffer): { text: string; rest: Buffer } | undefined {
    const buf = this.#pending ? Buffer.concat([this.#pending, data]) : data;
    this.#pending = undefined;
    const end = buf.indexOf(CRLF);
    if (end === -1) {
      if (buf.length > MAX_LINE) this.#error('a line too long');
      else if (buf.length) this.#pending = buf;
      return undefined;
    }
    if (end > MAX_LINE) {
      this.#error('a line too long');
      return undefined;
    }
    return { text: buf.toString('latin1', 0, end), rest: buf.subarray(end + 2) };
  }

  /**
   * A response head (without its empty line). Informational ones are skipped; the final one
   * goes to the handler and sets how its body is framed. False: refused (the exchange failed).
   */
  #readHead(text: string): boolean {
    let eol = text.indexOf('\r\n');
    if (eol === -1) eol = text.length;
    const first = statusLine(text, eol);
    if (!first) {
      this.#error('a malformed status line');
      return false;
    }
    const { http10, status } = first;
    if (status < 200) {
      // 100, 102, 103…: not relayed, the final answer follows. 101 was never asked for.
      if (status === 101) {
        this.#error('101 Switching Protocols to a request without Upgrade');
        return false;
      }
      return true;
    }
    const fields = readFields(text, eol + 2, MAX_FIELDS);
    if (!fields) {
      this.#error('a malformed header field');
      return false;
    }
    let length: string | undefined;
    let chunked = false;
    let close = http10;
    let hasDate = false;
    let hop: Set<string> | undefined;
    for (let i = 0; i < fields.length; i += 2) {
      const name = fields[i]!;
      const value = fields[i + 1]!;
      if (name === 'content-length') {
        if (!CONTENT_LENGTH.test(value) || (length !== undefined && length !== value)) {
          this.#error('an invalid or repeated Content-Length');
          return false;
        }
        length = value;
      } else if (name === 'transfer-encoding') {
        if (chunked || value.toLowerCase() !== 'chunked' || http10) {
          this.#error('a transfer coding other than chunked alone');
          return false;
        }
        chunked = true;
      } else if (name === 'connection') {
        for (const t of value.split(',')) {
          const token = t.trim().toLowerCase();
          if (token === 'close') close = true;
          else if (token === 'keep-alive' && http10)
            close = true; // HTTP/1.0 keep-alive is not reused
          else if (token) {
            hop ??= new Set();
            hop.add(token);
          }
        }
      } else if (name === 'keep-alive') {
        const ms = keepAliveTimeoutMs(value);
        if (ms !== undefined) this.#keepAliveMs = ms;
      } else if (name === 'date') hasDate = true;
    }
    if (chunked && length !== undefined) {
      this.#error('both Content-Length and Transfer-Encoding');
      return false;
    }
    let lines = '';
    let relayedLength = false;
    for (let i = 0; i < fields.length; i += 2) {
      const name = fields[i]!;
      if (HOP_BY_HOP.has(name) || hop?.has(name)) continue;
      // A repeated (identical) Content-Length is relayed once.
      if (name === 'content-length') {
        if (relayedLength) continue;
        relayedLength = true;
      }
      lines += `${name}: ${fields[i + 1]}\r\n`;
    }
    if (close) this.#reusable = false;
    const noBody = this.#noBody || status === 204 || status === 304;
    // A 204/304 that announces a body is not trusted to frame the next response.
    if ((status === 204 || status === 304) && length !== undefined && length !== '0') this.#reusable = false;
    if (noBody || (length !== undefined && !chunked)) {
      this.#state = State.Sized;
      this.#remaining = noBody ? 0 : Number(length);
    } else if (chunked) this.#state = State.ChunkSize;
    else {
      this.#reusable = false;
      this.#state = State.UntilClose;
    }
    this.#h.onHead({ status, reason: first.reason, lines, sized: length !== undefined, hasDate });
    // Aborted by the handler: nothing more to read.
    return (this.#state as State) !== State.Done;
  }
}

interface StatusLine {
  http10: boolean;
  status: number;
  reason: string;
}

/** The last status line read and what it said: an app answers `HTTP/1.1 200 OK` again and again. */
let lastStatus: { line: string; parsed: StatusLine } | undefined;

/**
 * The status line that is `text`'s first `eol` characters, or undefined when malformed. The
 * last one read is remembered (its text compared in place), so the regular expression and the
 * slice run only when the line differs from the previous response's.
 */
export function statusLine(text: string, eol: number): StatusLine | undefined {
  const last = lastStatus;
  if (last && last.line.length === eol && text.startsWith(last.line)) return last.parsed;
  const line = text.slice(0, eol);
  const m = STATUS_LINE.exec(line);
  if (!m) return undefined;
  const parsed = { http10: m[1] === '0', status: Number(m[2]), reason: m[3] ?? '' };
  lastStatus = { line, parsed };
  return parsed;
}

/** The last `Keep-Alive` value read and its timeout: apps send the same value with every response. */
let lastKeepAlive: { value: string; ms: number | undefined } | undefined;

/**
 * How long an idle connection may be kept, from the app's `Keep-Alive` value (`timeout=N`: a
 * second less than N, ms); undefined without a timeout. The last value read is remembered.
 *
 * @example
 *   keepAliveTimeoutMs('timeout=5'); // 4000
 *   keepAliveTimeoutMs('max=100'); // undefined
 */
export function keepAliveTimeoutMs(value: string): number | undefined {
  const last = lastKeepAlive;
  if (last && last.value === value) return last.ms;
  const t = KEEP_ALIVE_TIMEOUT.exec(value);
  const ms = t ? (Number(t[1]) - 1) * 1000 : undefined;
  lastKeepAlive = { value, ms };
  return ms;
}
