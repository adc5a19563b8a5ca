/**
 * HTTP plumbing of the Web UI: cookies, the security headers of every response (a strict
 * Content-Security-Policy with no inline scripts, `X-Frame-Options: DENY`…), JSON bodies and
 * errors (`{ error: { code, message } }`; unknown errors are a plain 500, never echoed).
 * Internal to `web/`.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { isWardenError, parseJsonInput, WardenError } from '@warden/api';
import type { Logger } from '../log';
import { readLimitedBody } from '../proxy';

/** The session cookie. `__Host-`: Secure, Path=/, no Domain — browsers enforce it. */
export const SESSION_COOKIE = '__Host-warden_web';

const MAX_BODY = 64 * 1024;

/** The CSP of every Web UI response: scripts and styles only from the proxy itself. */
export function contentSecurityPolicy(helperPorts: readonly number[]): string {
  const helpers = helperPorts.map((p) => `http://127.0.0.1:${p}`).join(' ');
  return [
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    `connect-src 'self' ${helpers}`,
    "form-action 'self'",
    "frame-ancestors 'none'",
    "base-uri 'none'",
  ].join('; ');
}

export function securityHeaders(helperPorts: readonly number[]): Record<string, string> {
  return {
    'content-security-policy': contentSecurityPolicy(helperPorts),
    'x-frame-options': 'DENY',
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
    'cross-origin-opener-policy': 'same-origin',
    'cross-origin-resource-policy': 'same-origin',
    'strict-transport-security': 'max-age=31536000',
    'permissions-policy': 'camera=(), microphone=(), geolocation=()',
  };
}

export function parseCookies(header: string | undefined): Map<string, string> {
  const out = new Map<string, string>();
  if (!header) return out;
  for (const part of header.split(';')) {
    const i = part.indexOf('=');
    if (i < 0) continue;
    const name = part.slice(0, i).trim();
    if (!out.has(name)) out.set(name, part.slice(i + 1).trim());
  }
  return out;
}

/** Set-Cookie for the session (max-age in seconds; 0 clears it). */
export function sessionCookie(token: string, maxAgeMs: number): string {
  const maxAge = Math.max(0, Math.floor(maxAgeMs / 1000));
  return `${SESSION_COOKIE}=${token}; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=${maxAge}`;
}

export async function readJson(req: IncomingMessage): Promise<unknown> {
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  const body = await readLimitedBody(req, MAX_BODY);
  if (body.length === 0) return {};
  if (type !== 'application/json')
    throw new WardenError('WARDEN_ERR_BAD_PARAMETER', 'request bodies must be application/json');
  return parseJsonInput(body.toString('utf8'), 'request body');
}

export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string | string[]>,
): void {
  const data = Buffer.from(JSON.stringify(body ?? {}));
  res.writeHead(status, {
    ...headers,
    'content-type': 'application/json; charset=utf-8',
    'content-length': data.length,
    'cache-control': 'no-store',
  });
  res.end(data);
}

export function sendError(
  res: ServerResponse,
  e: unknown,
  headers: Record<string, string | string[]>,
  logger: Logger,
  path: string,
): void {
  if (isWardenError(e)) {
    const ms = e.details?.retryAfterMs;
    const retry: Record<string, string> =
      typeof ms === 'number' && ms > 0 ? { 'retry-after': String(Math.ceil(ms / 1000)) } : {};
    sendJson(res, e.status, { error: { code: e.code, message: e.message } }, { ...headers, ...retry });
    return;
  }
  const requestId = randomUUID();
  logger.error({ err: e, requestId, path }, 'unhandled error in the Web UI API');
  sendJson(
    res,
    500,
    { error: { code: 'WARDEN_ERR_INTERNAL', message: `internal error (request ${requestId})` } },
    headers,
  );
}
