/**
 * The page's calls to the proxy's Web UI API (`/v1/web`, same origin, session cookie). Every
 * state-changing call carries the session's CSRF token in `X-Warden-Csrf`. Imports only
 * types from `@warden/api` (DESIGN §2).
 */
import type { web } from '@warden/api';

const CSRF_HEADER = 'x-warden-csrf';

export class ApiError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
}

let csrf = '';

/** Remembers the session's CSRF token (from sign-in or GET /v1/web/session). */
export function setCsrf(token: string): void {
  csrf = token;
}

export async function call<T>(method: 'GET' | 'POST' | 'DELETE', path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (method !== 'GET') headers[CSRF_HEADER] = csrf || 'none';
  if (body !== undefined) headers['content-type'] = 'application/json';
  let res: Response;
  try {
    res = await fetch(path, {
      method,
      headers,
      credentials: 'same-origin',
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
  } catch {
    throw new ApiError('WARDEN_ERR_CONNECTION', 'cannot reach the Warden proxy: check your connection', 0);
  }
  let data: unknown;
  try {
    data = await res.json();
  } catch {
    throw new ApiError(
      'WARDEN_ERR_CONNECTION',
      `unexpected answer from the proxy (HTTP ${res.status})`,
      res.status,
    );
  }
  if (!res.ok) {
    const e = (data as web.ErrorBody).error;
    throw new ApiError(e?.code ?? 'WARDEN_ERR_INTERNAL', e?.message ?? `HTTP ${res.status}`, res.status);
  }
  return data as T;
}

export const Routes = {
  config: '/v1/web/config',
  login: '/v1/web/login',
  logout: '/v1/web/logout',
  session: '/v1/web/session',
  resources: '/v1/web/resources',
  deviceChallenge: '/v1/web/device/challenge',
  admin: '/v1/web/admin',
  locks: '/v1/web/locks',
  audit: '/v1/web/audit',
  signupBegin: '/v1/web/signup/begin',
  signupFinish: '/v1/web/signup/finish',
  apps: '/v1/web/apps',
} as const satisfies typeof web.WebRoutes;
