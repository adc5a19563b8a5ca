/**
 * The proxy's HTTPS API: a small router for the RPC contract (`@warden/api` rpc). Requests
 * are JSON; errors are `{ error: { code, message } }` with the catalogue's status. Unknown
 * errors become a plain 500 `internal error` and are never echoed to the client (they are
 * logged with a request id).
 *
 * Authentication is mTLS: routes marked `auth: 'user'` need a client certificate that the
 * TLS layer verified against the user CA; `identify` turns it into an identity (and may
 * refuse it, e.g. for a lock).
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { isWardenError, parseJsonInput, WardenError } from '@warden/api';
import type { z } from 'zod';
import type { Identity } from '../access';

export interface RequestContext<B = unknown> {
  params: Record<string, string>;
  query: URLSearchParams;
  body: B;
  /** Client address (IP) for rate limits and audit. */
  addr: string;
  /** The caller (with `clientAddr` set), when the route has one. */
  identity: Identity | undefined;
}

export interface Route {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  path: string;
  /** `optional`: the identity when a valid client certificate came with the request, else none. */
  auth: 'none' | 'user' | 'optional';
  body?: z.ZodType;
  handler(ctx: RequestContext<never>): Promise<unknown>;
}

export interface Logger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

const MAX_BODY = 1 << 20;

function match(pattern: string, path: string): Record<string, string> | undefined {
  const p = pattern.split('/');
  const s = path.split('/');
  if (p.length !== s.length) return undefined;
  const params: Record<string, string> = {};
  for (let i = 0; i < p.length; i++) {
    const seg = p[i]!;
    if (seg.startsWith(':')) {
      try {
        params[seg.slice(1)] = decodeURIComponent(s[i]!);
      } catch {
        return undefined;
      }
      if (!params[seg.slice(1)]) return undefined;
    } else if (seg !== s[i]) return undefined;
  }
  return params;
}

/** A request's body, refused (BAD_PARAMETER) as soon as it passes `maxBytes`. */
export async function readLimitedBody(req: IncomingMessage, maxBytes: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > maxBytes) throw new WardenError('WARDEN_ERR_BAD_PARAMETER', 'request body too large');
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks);
}

async function readBody(req: IncomingMessage): Promise<unknown> {
  const body = await readLimitedBody(req, MAX_BODY);
  if (body.length === 0) return undefined;
  return parseJsonInput(body.toString('utf8'), 'request body');
}

function send(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const data = Buffer.from(JSON.stringify(body ?? {}));
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': data.length,
    'cache-control': 'no-store',
    ...headers,
  });
  res.end(data);
}

/** `Retry-After` (whole seconds, rounded up) for an error that says when to retry. */
export function retryAfterHeader(e: WardenError): Record<string, string> {
  const ms = e.details?.retryAfterMs;
  return typeof ms === 'number' && ms > 0 ? { 'retry-after': String(Math.ceil(ms / 1000)) } : {};
}

/** Rate limits of the routes that need no client certificate (`SourceRateLimits`). */
export interface PublicRouteLimits {
  /** Counts a request from `addr`; throws RATE_LIMITED when the address is over a limit. */
  admit(addr: string): Promise<void>;
  /** Counts a refused token or password from `addr`. */
  failed(addr: string): Promise<void>;
}

export interface RouterOptions {
  routes: Route[];
  logger: Logger;
  /** Turns a verified client certificate (DER) into an identity; throws to refuse. */
  identify(certDer: Buffer): Promise<Identity>;
  /**
   * Limits per source address on the routes with `auth: 'none' | 'optional'` (issue 15 item 4);
   * `isGuess` says which errors count as a failed attempt.
   */
  limits?: PublicRouteLimits & { isGuess(e: unknown): boolean };
  /** A call that took at least this long is logged with its route pattern (default 5 s). */
  slowRequestMs?: number;
}

/** API calls answer in milliseconds; one that took this long is logged (its route pattern only). */
const SLOW_REQUEST_MS = 5000;

export function createRequestHandler(opts: RouterOptions) {
  const slowMs = opts.slowRequestMs ?? SLOW_REQUEST_MS;
  return async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'https://proxy');
    // The route's pattern is logged, never the path itself (it may carry a token id).
    const started = performance.now();
    let pattern = '(no route)';
    res.once('close', () => {
      const ms = performance.now() - started;
      if (ms >= slowMs)
        opts.logger.warn(
          { method: req.method, route: pattern, ms: Math.round(ms), answered: res.writableFinished },
          'slow API request',
        );
    });
    const addr = req.socket.remoteAddress?.replace(/^::ffff:/, '') ?? 'unknown';
    try {
      let params: Record<string, string> | undefined;
      let route: Route | undefined;
      let pathMatched = false;
      for (const r of opts.routes) {
        const p = match(r.path, url.pathname);
        if (!p) continue;
        pathMatched = true;
        if (r.method === req.method) {
          route = r;
          params = p;
          pattern = r.path;
          break;
        }
      }
      if (!route || !params) {
        throw new WardenError(
          pathMatched ? 'WARDEN_ERR_BAD_PARAMETER' : 'WARDEN_ERR_NOT_FOUND',
          pathMatched
            ? `method ${req.method} not allowed on ${url.pathname}`
            : `no such API route ${url.pathname}`,
        );
      }
      const limited = route.auth !== 'user' ? opts.limits : undefined;
      if (limited) await limited.admit(addr);
      let identity: Identity | undefined;
      if (route.auth !== 'none') {
        const socket = req.socket as TLSSocket;
        const peer = socket.getPeerCertificate?.();
        if (socket.authorized && peer?.raw) {
          // On `optional` routes too: a certificate that identify refuses (a lock, a stale lock
          // view in strict mode) refuses the call — it does not fall back to anonymous.
          identity = { ...(await opts.identify(peer.raw)), clientAddr: addr };
        } else if (route.auth === 'user') {
          throw new WardenError(
            'WARDEN_ERR_NOT_LOGGED_IN',
            'this call needs a valid Warden client certificate; run `wsh login` (or use wctl on the auth host)',
          );
        }
      }
      let body = req.method === 'GET' || req.method === 'DELETE' ? undefined : await readBody(req);
      if (route.body) {
        const parsed = route.body.safeParse(body ?? {});
        if (!parsed.success) {
          const issue = parsed.error.issues[0];
          const where = issue?.path.length ? `${issue.path.join('.')}: ` : '';
          throw new WardenError(
            'WARDEN_ERR_BAD_PARAMETER',
            `invalid request: ${where}${issue?.message ?? 'bad input'}`,
          );
        }
        body = parsed.data;
      }
      let out: unknown;
      try {
        out = await route.handler({
          params,
          query: url.searchParams,
          body: body as never,
          addr,
          identity,
        });
      } catch (e) {
        if (limited?.isGuess(e)) await limited.failed(addr);
        throw e;
      }
      send(res, 200, out);
    } catch (e) {
      if (isWardenError(e)) {
        send(res, e.status, { error: { code: e.code, message: e.message } }, retryAfterHeader(e));
        return;
      }
      const requestId = randomUUID();
      opts.logger.error({ err: e, requestId, path: url.pathname }, 'unhandled error in API handler');
      send(res, 500, {
        error: { code: 'WARDEN_ERR_INTERNAL', message: `internal error (request ${requestId})` },
      });
    }
  };
}
