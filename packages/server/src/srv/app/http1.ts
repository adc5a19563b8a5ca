/**
 * The lean HTTP/1.1 path of app connections that carry an app certificate (`wsh proxy app`
 * tunnels, and TLS connections on an app host name that did not negotiate h2): requests
 * without a body are read from the socket and answered with raw bytes, without node:http's
 * IncomingMessage/ServerResponse per request. Everything else is handed to node:http with the
 * unread bytes put back, and node:http serves the connection from then on:
 *
 *   socket ──▶ complete head of a plain request? ── yes ──▶ hooks.handle(req, res) (raw writes)
 *                  │ no: a body (Content-Length, Transfer-Encoding), Upgrade, Expect, HTTP/1.0,
 *                  │     a duplicate or malformed header, a head not yet complete, …
 *                  └──────▶ hooks.handOver(socket): node:http, which parses it as before
 *
 * Why this is safe to do by hand: a request taken here has no body (RFC 9112 §6.3: neither
 * Content-Length nor Transfer-Encoding), so its end is its empty line and no framing can be
 * read two ways; anything that does not match the strict grammar below is left to llhttp.
 * Internal to `srv/app`. Tested by `http1.test.ts` (and end to end in `test/app/`).
 */
import { STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';

/**
 * Header fields that describe one hop and never cross a proxy (RFC 9110 §7.6.1), plus HTTP/2's
 * `http2-settings`: dropped from requests and responses by both forwarding paths.
 */
export const HOP_BY_HOP: ReadonlySet<string> = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'http2-settings',
]);

/** A request the lean path serves: no body, HTTP/1.1, origin-form target, unique headers. */
export interface LeanRequest {
  method: 'GET' | 'HEAD' | 'OPTIONS' | 'DELETE';
  /** The request target as sent (origin form: starts with `/`). */
  url: string;
  /** Lower-case names; each at most once (null prototype). */
  headers: Record<string, string>;
  /** False when the client sent `Connection: close`. */
  keepAlive: boolean;
}

export interface Http1Hooks {
  /** False: node:http should serve this request (and the connection from then on). Decided before any side effect. */
  accepts(req: LeanRequest): boolean;
  /** Serves one request; resolves when its response is complete (or the connection is gone). */
  handle(req: LeanRequest, res: RawResponse): Promise<void>;
  /** node:http takes the socket over (its unread bytes are back in it). */
  handOver(socket: Duplex): void;
}

export interface Http1Options {
  /** An idle keep-alive connection closes after this long. */
  idleMs: number;
}

/** A head larger than this goes to node:http (which answers 431 past its own limit). */
export const MAX_LEAN_HEAD = 16 * 1024;
const MAX_HEADER_LINES = 100;
/** The methods of the lean path (no request body), by the length of their names. */
const LEAN_METHODS: Record<number, LeanRequest['method']> = {
  3: 'GET',
  4: 'HEAD',
  6: 'DELETE',
  7: 'OPTIONS',
};
const HTTP11 = ' HTTP/1.1';
export const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
export const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;
/** Headers whose presence means node:http must serve the request. */
const NOT_LEAN = new Set(['content-length', 'transfer-encoding', 'upgrade', 'expect', 'http2-settings']);
const EMPTY_LINE = Buffer.from('\r\n\r\n');

/** Bytes a header name may have (RFC 9110 token) and a field value (HTAB, SP, VCHAR, obs-text). */
const TOKEN_CHAR = new Uint8Array(256);
const VALUE_CHAR = new Uint8Array(256);
for (const c of "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
  TOKEN_CHAR[c.charCodeAt(0)] = 1;
VALUE_CHAR[0x09] = 1;
for (let c = 0x20; c <= 0xff; c++) if (c !== 0x7f) VALUE_CHAR[c] = 1;

/**
 * The header fields of a head's text (latin1) from `pos` to its end (the text stops before the
 * empty line; lines end in CRLF): `[name, value, name, value, …]`, names in lower case, values
 * without optional whitespace. Undefined when a line breaks the grammar — no space before the
 * colon, no obs-fold, no CR, LF or other control character anywhere — or there are more than
 * `max` fields. One pass over the text, no regular expressions (both parsers of the lean path
 * read every head with it).
 *
 * @example
 *   readFields('GET / HTTP/1.1\r\nHost: a\r\nAccept:  x ', 16, 100); // ['host', 'a', 'accept', 'x']
 */
export function readFields(text: string, pos: number, max: number): string[] | undefined {
  const out: string[] = [];
  const n = text.length;
  while (pos < n) {
    let eol = text.indexOf('\r\n', pos);
    if (eol === -1) eol = n;
    let i = pos;
    while (i < eol && TOKEN_CHAR[text.charCodeAt(i)] === 1) i++;
    if (i === pos || i === eol || text.charCodeAt(i) !== 0x3a) return undefined;
    let vs = i + 1;
    let ve = eol;
    while (vs < ve && (text.charCodeAt(vs) === 0x20 || text.charCodeAt(vs) === 0x09)) vs++;
    while (ve > vs && (text.charCodeAt(ve - 1) === 0x20 || text.charCodeAt(ve - 1) === 0x09)) ve--;
    for (let j = vs; j < ve; j++) if (VALUE_CHAR[text.charCodeAt(j)] !== 1) return undefined;
    if (out.length >= 2 * max) return undefined;
    out.push(text.slice(pos, i).toLowerCase(), text.slice(vs, ve));
    pos = eol + 2;
  }
  return out;
}

/**
 * Parses a complete request head (`buf[0..end)`, without the empty line). Undefined when the
 * request is not one for the lean path.
 *
 * @example
 *   parseLeanHead(Buffer.from('GET / HTTP/1.1\r\nhost: a\r\n\r\n'), 23); // { method: 'GET', url: '/', … }
 */
export function parseLeanHead(buf: Buffer, end: number): LeanRequest | undefined {
  const text = buf.toString('latin1', 0, end);
  let eol = text.indexOf('\r\n');
  if (eol === -1) eol = text.length;
  const first = leanRequestLine(text, eol);
  if (!first) return undefined;
  const fields = readFields(text, eol + 2, MAX_HEADER_LINES - 1);
  if (!fields) return undefined;
  const headers: Record<string, string> = Object.create(null);
  let keepAlive = true;
  for (let i = 0; i < fields.length; i += 2) {
    const name = fields[i]!;
    const value = fields[i + 1]!;
    if (NOT_LEAN.has(name) || headers[name] !== undefined) return undefined;
    headers[name] = value;
    if (name === 'connection') {
      for (const t of value.split(',')) {
        const token = t.trim().toLowerCase();
        if (token === 'close') keepAlive = false;
        else if (token === 'upgrade') return undefined;
      }
    }
  }
  if (headers.host === undefined) return undefined;
  return { method: first.method, url: first.url, headers, keepAlive };
}

/**
 * The method and target of a lean request line, `text`'s first `eol` characters: GET, HEAD,
 * OPTIONS or DELETE, an origin-form target of visible ASCII, `HTTP/1.1`; undefined otherwise.
 * Read in place, without a regular expression (one per request).
 *
 * @example
 *   leanRequestLine('GET /x?y HTTP/1.1', 17); // { method: 'GET', url: '/x?y' }
 */
export function leanRequestLine(
  text: string,
  eol: number,
): { method: LeanRequest['method']; url: string } | undefined {
  const sp = text.indexOf(' ');
  const method = sp === -1 || sp >= eol ? undefined : LEAN_METHODS[sp];
  if (method === undefined || !text.startsWith(method)) return undefined;
  const urlEnd = eol - HTTP11.length;
  if (urlEnd <= sp + 1 || !text.startsWith(HTTP11, urlEnd) || text.charCodeAt(sp + 1) !== 0x2f)
    return undefined;
  for (let i = sp + 2; i < urlEnd; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x21 || c > 0x7e) return undefined;
  }
  return { method, url: text.slice(sp + 1, urlEnd) };
}

/** `process.nextTick`'s callback for a response's cork: no closure per response. */
function uncork(res: RawResponse): void {
  res.uncorked();
}

let dateSecond = 0;
let dateText = '';
function httpDate(): string {
  const now = Date.now();
  const second = Math.floor(now / 1000);
  if (second !== dateSecond) {
    dateSecond = second;
    dateText = new Date(now).toUTCString();
  }
  return dateText;
}

/**
 * One response written as raw HTTP/1.1: the head once, then the body as it comes (chunked when
 * the app gave no length), the pieces of one tick in one socket write.
 */
export class RawResponse {
  readonly socket: Duplex;
  readonly #method: string;
  #headersSent = false;
  #chunked = false;
  #noBody = false;
  #corked = false;
  #ended = false;
  #onClientGone: (() => void) | undefined;
  /** The connection ends after this response. */
  closeAfter: boolean;

  constructor(socket: Duplex, req: Pick<LeanRequest, 'method' | 'keepAlive'>) {
    this.socket = socket;
    this.#method = req.method;
    this.closeAfter = !req.keepAlive;
  }

  get headersSent(): boolean {
    return this.#headersSent;
  }

  get ended(): boolean {
    return this.#ended;
  }

  /**
   * `cb` runs once when the client's connection closes while this response is in progress (at
   * once when it has closed already); undefined forgets it. `serveHttp1` tells the response
   * through `clientClosed`: one slot per response instead of a `close` listener per request.
   */
  whenClientGone(cb: (() => void) | undefined): void {
    this.#onClientGone = cb;
    if (cb && this.socket.destroyed) this.clientClosed();
  }

  /** The client's connection closed (called by the connection's owner). */
  clientClosed(): void {
    const cb = this.#onClientGone;
    this.#onClientGone = undefined;
    cb?.();
  }

  #cork(): void {
    if (this.#corked) return;
    this.#corked = true;
    this.socket.cork();
    process.nextTick(uncork, this);
  }

  /** The end of the tick's cork (`uncork`). */
  uncorked(): void {
    this.#corked = false;
    this.socket.uncork();
  }

  /**
   * Writes the status line and headers (lower-case names, hop-by-hop ones already removed).
   * False, with nothing written, when a name or value could not be sent as is (CR, LF, NUL…).
   */
  writeHead(status: number, reason: string | undefined, headers: Record<string, string | string[]>): boolean {
    if (this.#headersSent || !Number.isInteger(status) || status < 200 || status > 999) return false;
    const phrase = reason && FIELD_VALUE.test(reason) ? reason : undefined;
    let head = '';
    for (const name in headers) {
      const value = headers[name]!;
      if (!TOKEN.test(name)) return false;
      if (typeof value === 'string') {
        if (!FIELD_VALUE.test(value)) return false;
        head += `${name}: ${value}\r\n`;
      } else {
        for (const v of value) {
          if (!FIELD_VALUE.test(v)) return false;
          head += `${name}: ${v}\r\n`;
        }
      }
    }
    this.writeHeadLines(
      status,
      phrase,
      head,
      headers['content-length'] !== undefined,
      headers.date !== undefined,
    );
    return true;
  }

  /**
   * Writes the status line and header lines already checked (`name: value\r\n` each, lower-case
   * names, hop-by-hop ones removed: `http1-upstream.ts` reads them so). `reason` must be checked
   * too (undefined: the standard phrase); `sized`: the lines carry a Content-Length.
   */
  writeHeadLines(
    status: number,
    reason: string | undefined,
    lines: string,
    sized: boolean,
    hasDate: boolean,
  ): void {
    if (this.#headersSent) return;
    let head = `HTTP/1.1 ${status} ${reason || (STATUS_CODES[status] ?? '')}\r\n${lines}`;
    this.#noBody = this.#method === 'HEAD' || status === 204 || status === 304;
    if (!this.#noBody && !sized) {
      this.#chunked = true;
      head += 'transfer-encoding: chunked\r\n';
    }
    if (!hasDate) head += `date: ${httpDate()}\r\n`;
    if (this.closeAfter) head += 'connection: close\r\n';
    this.#headersSent = true;
    this.#cork();
    this.socket.write(`${head}\r\n`, 'latin1');
  }

  /** One piece of the body; false when the socket is full (wait for its `drain`). */
  write(chunk: Buffer): boolean {
    if (this.#noBody || chunk.length === 0 || this.#ended) return true;
    this.#cork();
    if (!this.#chunked) return this.socket.write(chunk);
    this.socket.write(`${chunk.length.toString(16)}\r\n`, 'latin1');
    this.socket.write(chunk);
    return this.socket.write('\r\n', 'latin1');
  }

  /** The end of the response. */
  end(): void {
    if (this.#ended) return;
    this.#ended = true;
    if (this.#chunked && !this.#noBody) {
      this.#cork();
      this.socket.write('0\r\n\r\n', 'latin1');
    }
  }

  /** A complete response of Warden's own (refusals, error pages). */
  send(status: number, headers: Record<string, string | number>, body: Buffer): void {
    if (this.#headersSent) {
      this.destroy();
      return;
    }
    const h: Record<string, string> = {};
    for (const [k, v] of Object.entries(headers)) h[k] = String(v);
    h['content-length'] = String(body.length);
    this.writeHead(status, undefined, h);
    this.write(body);
    this.end();
  }

  /** Cuts the connection (a response that cannot be completed). */
  destroy(): void {
    this.#ended = true;
    this.socket.destroy();
  }
}

/**
 * Serves a connection with the lean path until a request needs node:http.
 *
 * @example
 *   serveHttp1(socket, { accepts, handle, handOver: (s) => server.emit('connection', s) }, { idleMs: 30_000 });
 */
export function serveHttp1(socket: Duplex, hooks: Http1Hooks, o: Http1Options): void {
  let buf: Buffer | undefined;
  let busy = false;
  let gone = false;
  /** The response in progress, told when the connection closes. */
  let current: RawResponse | undefined;
  /** When the last response ended (or the connection began): idle since then unless busy. */
  let idleSince = Date.now();
  const onData = (chunk: Buffer) => {
    buf = buf ? Buffer.concat([buf, chunk]) : chunk;
    // A client that sends far ahead of its responses waits for them (pipelining is bounded).
    if (busy && buf.length > MAX_LEAN_HEAD) socket.pause();
    if (!busy) next();
  };
  // Idleness is looked at a few times per idleMs instead of with the socket's own timeout, which
  // re-arms a timer on every read and write. While a response is pending — a quiet Server-Sent
  // Events stream, say — it is not idleness; a connection closes idleMs to 1.25 × idleMs after
  // its last response ended.
  const idleCheck = setInterval(
    () => {
      if (!busy && !gone && Date.now() - idleSince >= o.idleMs) socket.destroy();
    },
    Math.max(10, Math.floor(o.idleMs / 4)),
  );
  idleCheck.unref();
  const onClose = () => {
    gone = true;
    clearInterval(idleCheck);
    current?.clientClosed();
  };
  const onError = () => socket.destroy();
  socket.on('data', onData);
  socket.on('close', onClose);
  socket.on('error', onError);

  const handOver = () => {
    socket.off('data', onData);
    socket.off('close', onClose);
    socket.off('error', onError);
    clearInterval(idleCheck);
    socket.pause();
    if (buf?.length) socket.unshift(buf);
    buf = undefined;
    hooks.handOver(socket);
    // node:http reads the socket's handle directly from now on; what was put back is emitted
    // on the next tick, before any later read of the handle.
    socket.resume();
  };

  const next = (): void => {
    while (!busy && !gone && buf?.length) {
      const end = buf.indexOf(EMPTY_LINE);
      if (end === -1 || end > MAX_LEAN_HEAD) {
        handOver();
        return;
      }
      const req = parseLeanHead(buf, end);
      if (!req || !hooks.accepts(req)) {
        handOver();
        return;
      }
      buf = end + 4 < buf.length ? buf.subarray(end + 4) : undefined;
      busy = true;
      const res = new RawResponse(socket, req);
      current = res;
      const done = () => {
        busy = false;
        current = undefined;
        idleSince = Date.now();
        if (gone) return;
        if (!res.ended) {
          res.destroy();
          return;
        }
        if (res.closeAfter) {
          socket.end();
          gone = true;
          return;
        }
        if (socket.isPaused()) socket.resume();
        next();
      };
      hooks.handle(req, res).then(done, () => {
        res.destroy();
        done();
      });
    }
  };
}
