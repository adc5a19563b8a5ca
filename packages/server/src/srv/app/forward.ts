/**
 * The upstream forwarding engine: one request from the client (HTTP/1.1 or HTTP/2) becomes one
 * HTTP/1.1 request to the app over keep-alive connections, bodies streamed both ways (chunked
 * uploads, Server-Sent Events and other endless responses pass through as they come); an
 * HTTP/1.1 `Upgrade` (WebSocket) becomes a raw byte relay after the app's `101`.
 *
 *   client ──req──▶ forward() ── headers: hop-by-hop and client copies of Warden's and the
 *                                 forwarding headers dropped; Host = the app's; X-Forwarded-For/
 *                                 Proto/Host set; rewrite headers; Warden-Jwt-Assertion
 *          ◀─res── ◀───────────── status and headers (hop-by-hop dropped), body relayed
 *
 * What the client learns when the app fails is only that it failed (502/504 pages): the app's
 * address and error text go to the log. Internal to `srv/app`; the public surface is
 * `index.ts`. Tested by `forward.test.ts` against real node:http servers.
 */
import { request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2';
import { request as httpsRequest } from 'node:https';
import { type Duplex, Transform } from 'node:stream';
import { JWT_ASSERTION_HEADER } from '@warden/api';
import type { Dispatcher, Pool as PoolType } from 'undici';
import Pool from 'undici/lib/dispatcher/pool.js';
import type { Logger } from '../../log';
import { FIELD_VALUE, HOP_BY_HOP, type LeanRequest, type RawResponse, TOKEN } from './http1';
import { Http1Upstream } from './http1-upstream';
import { type AppRefusal, rawRefusal, sendRefusal } from './refusal';

/**
 * The app's exchange failed: a 502 page while nothing of its answer was sent (and the client is
 * still there), else the client's connection is cut (half a response cannot be mended). Both
 * forwarding paths (node:http and the lean HTTP/1.1 one) end this way.
 */
function upstreamFailed(
  logger: Logger,
  app: string,
  accept: string | undefined,
  res: (ServerResponse | Http2ServerResponse | RawResponse) & { destroy(): unknown },
  result: ForwardResult,
  clientGone: boolean,
  e: Error,
): void {
  if (result.status === 0 && !clientGone) {
    logger.warn({ err: e, app }, 'the app could not be reached');
    result.status = 502;
    sendRefusal(accept, res, badGateway(app));
  } else res.destroy();
}
/**
 * The error a forwarding path aborts the app's exchange with when the client's side refuses the
 * app's response head (an HTTP/2 client and a status outside 200–599, say); the exchange then
 * ends through `upstreamFailed` like any other failure (a 502 page: nothing was sent yet).
 */
function unrelayable(cause?: unknown): Error {
  return new Error('the app sent a response that cannot be relayed', cause ? { cause } : undefined);
}

/** What a relayed body comes from: the app's exchange, paused while the client is full. */
interface PausableSource {
  pause(): void;
  resume(): void;
}

/**
 * The response body's way to the client, for every forwarding path: `write(chunk)` writes it
 * and, when the client's socket is full, pauses the app's exchange until the socket's next
 * `drain` (one listener at a time); `cancel()` drops a pending `drain` listener when the
 * exchange ends first.
 */
function drainGate(
  client: { once(event: 'drain', l: () => void): unknown; off(event: 'drain', l: () => void): unknown },
  write: (chunk: Buffer) => boolean,
  source: () => PausableSource | undefined,
): { write(chunk: Buffer): void; cancel(): void } {
  let waiting: PausableSource | undefined;
  const onDrain = () => {
    const s = waiting;
    waiting = undefined;
    s?.resume();
  };
  return {
    write(chunk) {
      if (write(chunk) || waiting) return;
      waiting = source();
      if (!waiting) return;
      waiting.pause();
      client.once('drain', onDrain);
    },
    cancel() {
      if (!waiting) return;
      waiting = undefined;
      client.off('drain', onDrain);
    },
  };
}

/** Idle keep-alive connections to an app close after this long (ms), or sooner when its `Keep-Alive` says so. */
const KEEP_ALIVE_MS = 4_000;

/** Request headers the client may not set: Warden sets them (or they are spoofable identity claims). */
const SET_BY_WARDEN = new Set([
  JWT_ASSERTION_HEADER.toLowerCase(),
  'x-forwarded-for',
  'x-forwarded-proto',
  'x-forwarded-host',
  'x-forwarded-port',
  'x-real-ip',
  'forwarded',
  'host',
  // Warden's HTTP server has answered `100 Continue` to the client already.
  'expect',
]);

/** Where and how one app is reached. */
export interface Upstream {
  /** The app's URI (`http://127.0.0.1:3000`, maybe with a base path). */
  url: URL;
  insecureSkipVerify: boolean;
}

/** What the forwarder adds to one request. */
export interface ForwardContext {
  upstream: Upstream;
  /** The signed `Warden-Jwt-Assertion`. */
  jwt: string;
  /** The client's IP. */
  clientAddr: string;
  /** `https` when the client reached the proxy with TLS, `http` for `wsh proxy app`'s local side. */
  proto: 'http' | 'https';
  /** The host name the client used (its `Host` / `:authority`). */
  host: string;
  /** Headers from the app's `rewrite.headers`. */
  rewrite: readonly { name: string; value: string }[];
  /** For the audit log and errors: the app's name. */
  app: string;
}

/** The result of one forwarded exchange (for `app.request` audit events). */
export interface ForwardResult {
  status: number;
  requestBytes: number;
  responseBytes: number;
}

type ClientRequest = IncomingMessage | Http2ServerRequest;
type ClientResponse = ServerResponse | Http2ServerResponse;

/** The names listed in `Connection: a, b` (they are hop-by-hop too). */
function connectionTokens(value: string | string[] | undefined): Set<string> {
  const out = new Set<string>();
  for (const v of Array.isArray(value) ? value : value ? [value] : []) {
    for (const t of v.split(',')) {
      const name = t.trim().toLowerCase();
      if (name) out.add(name);
    }
  }
  return out;
}

/**
 * The request headers for the app: the client's minus hop-by-hop headers, HTTP/2 pseudo
 * headers and anything Warden sets itself; then Host, the forwarding headers, the rewrite
 * headers and the JWT.
 *
 * @example
 *   upstreamHeaders(req.headers, ctx); // { accept: '…', host: '127.0.0.1:3000', 'x-forwarded-for': '10.0.0.7', … }
 */
export function upstreamHeaders(
  incoming: Record<string, string | string[] | undefined>,
  ctx: ForwardContext,
): Record<string, string | string[]> {
  const extra = connectionTokens(incoming.connection);
  const out: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(incoming)) {
    if (value === undefined || name.startsWith(':')) continue;
    const lower = name.toLowerCase();
    if (HOP_BY_HOP.has(lower) || extra.has(lower) || SET_BY_WARDEN.has(lower)) continue;
    out[lower] = value;
  }
  out.host = ctx.upstream.url.host;
  out['x-forwarded-for'] = ctx.clientAddr;
  out['x-forwarded-proto'] = ctx.proto;
  out['x-forwarded-host'] = ctx.host;
  for (const h of ctx.rewrite) out[h.name.toLowerCase()] = h.value;
  out[JWT_ASSERTION_HEADER.toLowerCase()] = ctx.jwt;
  return out;
}

/** Names a rewrite header may not have on the lean path's raw head (undici's path takes those apps). */
const NOT_REWRITTEN_RAW = new Set([
  ...HOP_BY_HOP,
  'content-length',
  'expect',
  'host',
  'x-forwarded-for',
  'x-forwarded-proto',
  'x-forwarded-host',
  JWT_ASSERTION_HEADER.toLowerCase(),
]);

/**
 * The lean path's request head for the app, written as one string: the same fields as
 * `upstreamHeaders` gives (in the same order), then the empty line. Undefined when a rewrite
 * header is not a plain token and field value, or repeats a name (then undici writes the request).
 *
 * @example
 *   leanRequestHead({ method: 'GET', url: '/x', headers: { host: 'a' }, keepAlive: true }, ctx);
 *   // 'GET /x HTTP/1.1\r\nhost: 127.0.0.1:3000\r\nx-forwarded-for: …\r\n…warden-jwt-assertion: …\r\n\r\n'
 */
export function leanRequestHead(req: LeanRequest, ctx: ForwardContext): string | undefined {
  let rewritten: Set<string> | undefined;
  let rewriteLines = '';
  for (const h of ctx.rewrite) {
    const name = h.name.toLowerCase();
    if (
      !TOKEN.test(name) ||
      !FIELD_VALUE.test(h.value) ||
      NOT_REWRITTEN_RAW.has(name) ||
      rewritten?.has(name)
    )
      return undefined;
    rewritten ??= new Set();
    rewritten.add(name);
    rewriteLines += `${name}: ${h.value}\r\n`;
  }
  const extra = req.headers.connection === undefined ? undefined : connectionTokens(req.headers.connection);
  let head = `${req.method} ${upstreamPath(ctx.upstream.url, req.url)} HTTP/1.1\r\n`;
  for (const name in req.headers) {
    if (HOP_BY_HOP.has(name) || SET_BY_WARDEN.has(name) || extra?.has(name) || rewritten?.has(name)) continue;
    head += `${name}: ${req.headers[name]}\r\n`;
  }
  return (
    `${head}host: ${ctx.upstream.url.host}\r\nx-forwarded-for: ${ctx.clientAddr}\r\n` +
    `x-forwarded-proto: ${ctx.proto}\r\nx-forwarded-host: ${ctx.host}\r\n${rewriteLines}` +
    `${JWT_ASSERTION_HEADER.toLowerCase()}: ${ctx.jwt}\r\n\r\n`
  );
}

/**
 * True when a client request has no body: HTTP/1.1 without Content-Length and
 * Transfer-Encoding (RFC 9112 §6.3: its body is empty), HTTP/2 with END_STREAM on its HEADERS.
 */
export function hasNoBody(req: ClientRequest): boolean {
  if ('stream' in req) return req.stream.endAfterHeaders;
  return req.headers['content-length'] === undefined && req.headers['transfer-encoding'] === undefined;
}

/** The app's response headers (lower-case names) for the client: hop-by-hop ones dropped. */
export function downstreamHeaders(
  headers: Record<string, string | string[] | undefined>,
): Record<string, string | string[]> {
  const extra = connectionTokens(headers.connection);
  const out: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue;
    if (HOP_BY_HOP.has(name) || extra.has(name)) continue;
    out[name] = value;
  }
  return out;
}

/** The path to ask the app for: its URI's base path joined with the client's path and query. */
export function upstreamPath(base: URL, clientPath: string): string {
  const path = clientPath.charCodeAt(0) === SLASH ? clientPath : `/${clientPath}`;
  const prefix = base.pathname;
  // The common base path `/` adds nothing; otherwise its trailing slashes go (once per request, no regex).
  if (prefix === '/') return path;
  let end = prefix.length;
  while (end > 0 && prefix.charCodeAt(end - 1) === SLASH) end--;
  return end === prefix.length ? `${prefix}${path}` : `${prefix.slice(0, end)}${path}`;
}

const SLASH = 0x2f;

export interface ForwarderOptions {
  logger: Logger;
}

/**
 * The connection pool options for one app origin. Upstream requests have no timeouts of
 * their own, as before with node:http (Server-Sent Events and other long responses may be
 * quiet for a long time; the client's connection and the session bound them); idle
 * keep-alive connections close after 4 s, or sooner when the app's `Keep-Alive` says so.
 */
function poolOptions(up: Upstream): PoolType.Options {
  return {
    connections: null,
    pipelining: 1,
    headersTimeout: 0,
    bodyTimeout: 0,
    keepAliveTimeout: KEEP_ALIVE_MS,
    ...(up.url.protocol === 'https:'
      ? { connect: { rejectUnauthorized: !up.insecureSkipVerify, servername: up.url.hostname } }
      : {}),
  };
}

/**
 * Keep-alive connection pools per app origin (undici: a request is a few callbacks on a
 * pooled socket, about half the CPU of a node:http ClientRequest with its agent) and the
 * request/upgrade relays.
 */
export class Forwarder {
  readonly #o: ForwarderOptions;
  readonly #pools = new Map<string, PoolType>();
  readonly #raw = new Map<string, Http1Upstream>();

  constructor(o: ForwarderOptions) {
    this.#o = o;
  }

  /** The lean path's client to a plain `http:` app origin. */
  #http1(url: URL): Http1Upstream {
    let up = this.#raw.get(url.host);
    if (!up) {
      up = new Http1Upstream({
        host: url.hostname.replace(/^\[|\]$/g, ''),
        port: Number(url.port || 80),
        keepAliveMs: KEEP_ALIVE_MS,
      });
      this.#raw.set(url.host, up);
    }
    return up;
  }

  #pool(up: Upstream): PoolType {
    const key = `${up.url.origin}|${up.insecureSkipVerify ? 'insecure' : ''}`;
    let pool = this.#pools.get(key);
    if (!pool) {
      pool = new Pool(up.url.origin, poolOptions(up));
      this.#pools.set(key, pool);
    }
    return pool;
  }

  /**
   * Relays one request and its response. Resolves when the exchange is over (or failed);
   * never rejects. A failure before the app answered is a 502 page; after, the client's
   * stream is cut.
   */
  forward(req: ClientRequest, res: ClientResponse, ctx: ForwardContext): Promise<ForwardResult> {
    return new Promise((resolve) => {
      const result: ForwardResult = { status: 0, requestBytes: 0, responseBytes: 0 };
      const out = res as NodeJS.WritableStream;
      let done = false;
      let clientGone = false;
      let controller: Dispatcher.DispatchController | undefined;
      const body = drainGate(
        out,
        (chunk) => out.write(chunk),
        () => controller,
      );
      const finish = () => {
        if (done) return;
        done = true;
        body.cancel();
        resolve(result);
      };
      // The client went away (or the session was cut): stop the upstream exchange too.
      res.on('close', () => {
        if (!res.writableFinished) {
          clientGone = true;
          controller?.abort(new Error('the client closed the connection'));
        }
        finish();
      });
      // A body streams through a counting Transform, piped at once: the pool may only start
      // reading it once it has a connection, and a 'data' listener on the request itself would
      // let chunks flow past before that.
      let upload: Transform | null = null;
      if (!hasNoBody(req)) {
        const counted = new Transform({
          transform(chunk: Buffer, _encoding, done) {
            result.requestBytes += chunk.length;
            done(null, chunk);
          },
        });
        req.on('error', (e) => counted.destroy(e));
        (req as NodeJS.ReadableStream).pipe(counted);
        upload = counted;
      }
      const handler: Dispatcher.DispatchHandler = {
        onRequestStart: (c) => {
          controller = c;
          if (clientGone) c.abort(new Error('the client closed the connection'));
        },
        onResponseStart: (c, status, headers, statusMessage) => {
          // Informational answers (102, 103 Early Hints) are not relayed; the final one follows.
          if (status < 200) return;
          const h = downstreamHeaders(headers);
          try {
            if ('stream' in res) res.writeHead(status, h);
            else res.writeHead(status, statusMessage || undefined, h);
          } catch (e) {
            c.abort(unrelayable(e));
            return;
          }
          result.status = status;
          // A body of unknown length (SSE, streams) may not send a byte for a while: send the
          // headers now. A sized body goes out with its headers in one write.
          if (!('stream' in res) && headers['content-length'] === undefined)
            (res as ServerResponse).flushHeaders();
        },
        // Each chunk written as it comes, the app paused while the client's socket is full.
        // Node corks the socket for the tick of a write, so a small body and the end of the
        // response still leave in one write.
        onResponseData: (_c, chunk) => {
          result.responseBytes += chunk.length;
          body.write(chunk);
        },
        onResponseEnd: () => {
          out.end();
          finish();
        },
        onResponseError: (_c, e) => {
          if (done) return;
          upstreamFailed(this.#o.logger, ctx.app, req.headers.accept, res, result, clientGone, e);
          finish();
        },
      };
      this.#pool(ctx.upstream).dispatch(
        {
          path: upstreamPath(ctx.upstream.url, req.url ?? '/'),
          method: (req.method ?? 'GET') as Dispatcher.HttpMethod,
          headers: upstreamHeaders(req.headers, ctx),
          body: upload,
        },
        handler,
      );
    });
  }

  /**
   * The lean path's exchange (`http1.ts`): a request without a body, the response written as
   * raw HTTP/1.1 to the client socket. Same headers, pool, errors and back-pressure as
   * `forward`; resolves when the exchange is over (or failed), never rejects.
   */
  forwardLean(req: LeanRequest, res: RawResponse, ctx: ForwardContext): Promise<ForwardResult> {
    const head = ctx.upstream.url.protocol === 'http:' ? leanRequestHead(req, ctx) : undefined;
    if (head === undefined) return this.#forwardLeanPooled(req, res, ctx);
    return new Promise((resolve) => {
      const result: ForwardResult = { status: 0, requestBytes: 0, responseBytes: 0 };
      const socket = res.socket;
      let done = false;
      let clientGone = false;
      const body = drainGate(
        socket,
        (chunk) => res.write(chunk),
        () => ex,
      );
      const onClose = () => {
        clientGone = true;
        ex.abort();
        finish();
      };
      const finish = () => {
        if (done) return;
        done = true;
        res.whenClientGone(undefined);
        body.cancel();
        resolve(result);
      };
      const ex = this.#http1(ctx.upstream.url).request(head, req.method, {
        onHead: (h) => {
          result.status = h.status;
          res.writeHeadLines(h.status, h.reason, h.lines, h.sized, h.hasDate);
        },
        onData: (chunk) => {
          result.responseBytes += chunk.length;
          body.write(chunk);
        },
        onEnd: () => {
          res.end();
          finish();
        },
        onError: (e) => {
          if (done) return;
          upstreamFailed(this.#o.logger, ctx.app, req.headers.accept, res, result, clientGone, e);
          finish();
        },
      });
      // The client went away (or the session was cut): stop the upstream exchange too.
      if (!done) res.whenClientGone(onClose);
    });
  }

  /** `forwardLean` through undici's pool: `https:` apps, and rewrite headers the raw head does not write. */
  #forwardLeanPooled(req: LeanRequest, res: RawResponse, ctx: ForwardContext): Promise<ForwardResult> {
    return new Promise((resolve) => {
      const result: ForwardResult = { status: 0, requestBytes: 0, responseBytes: 0 };
      const socket = res.socket;
      let done = false;
      let clientGone = false;
      let controller: Dispatcher.DispatchController | undefined;
      const body = drainGate(
        socket,
        (chunk) => res.write(chunk),
        () => controller,
      );
      const onClose = () => {
        clientGone = true;
        controller?.abort(new Error('the client closed the connection'));
        finish();
      };
      const finish = () => {
        if (done) return;
        done = true;
        res.whenClientGone(undefined);
        body.cancel();
        resolve(result);
      };
      // The client went away (or the session was cut): stop the upstream exchange too.
      res.whenClientGone(onClose);
      const handler: Dispatcher.DispatchHandler = {
        onRequestStart: (c) => {
          controller = c;
          if (clientGone) c.abort(new Error('the client closed the connection'));
        },
        onResponseStart: (c, status, headers, statusMessage) => {
          if (done || status < 200) return;
          if (!res.writeHead(status, statusMessage, downstreamHeaders(headers))) c.abort(unrelayable());
          else result.status = status;
        },
        onResponseData: (_c, chunk) => {
          if (done) return;
          result.responseBytes += chunk.length;
          body.write(chunk);
        },
        onResponseEnd: () => {
          if (done) return;
          res.end();
          finish();
        },
        onResponseError: (_c, e) => {
          if (done) return;
          upstreamFailed(this.#o.logger, ctx.app, req.headers.accept, res, result, clientGone, e);
          finish();
        },
      };
      this.#pool(ctx.upstream).dispatch(
        {
          path: upstreamPath(ctx.upstream.url, req.url),
          method: req.method,
          headers: upstreamHeaders(req.headers, ctx),
          body: null,
        },
        handler,
      );
    });
  }

  /**
   * Relays an HTTP/1.1 upgrade (WebSocket): the app's `101` and then raw bytes both ways.
   * `onOpen` receives the app-side socket (so a session can cut it); resolves with the
   * app's status when the exchange is set up or failed.
   */
  upgrade(
    req: IncomingMessage,
    client: Duplex,
    head: Buffer,
    ctx: ForwardContext,
    onOpen: (upstream: Duplex) => void,
  ): Promise<ForwardResult> {
    return new Promise((resolve) => {
      const result: ForwardResult = { status: 0, requestBytes: head.length, responseBytes: 0 };
      const headers = upstreamHeaders(req.headers, ctx);
      headers.connection = 'Upgrade';
      headers.upgrade = String(req.headers.upgrade ?? '');
      const path = upstreamPath(ctx.upstream.url, req.url ?? '/');
      // Upgraded sockets never go back to a pool: no agent.
      const send = ctx.upstream.url.protocol === 'https:' ? httpsRequest : httpRequest;
      const up = send({
        hostname: ctx.upstream.url.hostname.replace(/^\[|\]$/g, ''),
        port: ctx.upstream.url.port || (ctx.upstream.url.protocol === 'https:' ? 443 : 80),
        method: req.method,
        path,
        headers,
        ...(ctx.upstream.url.protocol === 'https:'
          ? { rejectUnauthorized: !ctx.upstream.insecureSkipVerify, servername: ctx.upstream.url.hostname }
          : {}),
      });
      const fail = (status: number) => {
        result.status = status;
        if (client.writable) client.end(rawRefusal(req.headers.accept, badGateway(ctx.app)));
        resolve(result);
      };
      client.on('error', () => up.destroy());
      up.on('upgrade', (ures, socket, uhead) => {
        result.status = 101;
        let raw = `HTTP/1.1 101 ${ures.statusMessage || 'Switching Protocols'}\r\n`;
        for (let i = 0; i + 1 < ures.rawHeaders.length; i += 2) {
          raw += `${ures.rawHeaders[i]}: ${ures.rawHeaders[i + 1]}\r\n`;
        }
        client.write(`${raw}\r\n`);
        if (uhead.length) client.write(uhead);
        if (head.length) socket.write(head);
        socket.setNoDelay?.(true);
        socket.on('error', () => client.destroy());
        client.on('error', () => socket.destroy());
        socket.on('close', () => client.destroy());
        client.on('close', () => socket.destroy());
        socket.pipe(client);
        client.pipe(socket);
        onOpen(socket);
        resolve(result);
      });
      up.on('response', (ures) => {
        // The app refused the upgrade: relay its answer as is, then close.
        result.status = ures.statusCode ?? 502;
        let raw = `HTTP/1.1 ${result.status} ${ures.statusMessage ?? ''}\r\n`;
        const h = downstreamHeaders(ures.headers);
        for (const [name, value] of Object.entries(h)) {
          for (const v of Array.isArray(value) ? value : [value]) raw += `${name}: ${v}\r\n`;
        }
        client.write(`${raw}transfer-encoding: chunked\r\nconnection: close\r\n\r\n`);
        ures.on('data', (c: Buffer) => {
          result.responseBytes += c.length;
          client.write(`${c.length.toString(16)}\r\n`);
          client.write(c);
          client.write('\r\n');
        });
        ures.on('end', () => {
          client.end('0\r\n\r\n');
          resolve(result);
        });
        ures.on('error', () => {
          client.destroy();
          resolve(result);
        });
      });
      up.on('error', (e) => {
        if (result.status !== 0) return;
        this.#o.logger.warn({ err: e, app: ctx.app }, 'the app could not be reached for an upgrade');
        fail(502);
      });
      up.end();
    });
  }

  close(): void {
    for (const pool of this.#pools.values()) void pool.destroy().catch(() => undefined);
    this.#pools.clear();
    for (const up of this.#raw.values()) up.close();
    this.#raw.clear();
  }
}

/** The page when the app does not answer (never its address or error). */
export function badGateway(app: string): AppRefusal {
  return {
    code: 'WARDEN_ERR_CONNECTION',
    status: 502,
    message: `The app "${app}" is not answering.`,
    hint: 'Warden reached its app service but not the app. Try again later, or tell the app’s administrator.',
  };
}
