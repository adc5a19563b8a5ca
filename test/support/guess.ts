/**
 * Token guessing as an attacker does it: raw HTTPS requests to the proxy's unauthenticated
 * routes from a chosen source address (any 127.0.0.0/8 address reaches a loopback listener).
 * Used by test/hardening/rate-limits.e2e.test.ts and test/ha/rate-limits.e2e.test.ts; `postRaw`
 * also by test/hardening/attacks.e2e.test.ts.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { type RequestOptions, request } from 'node:https';
import { rpc, web } from '@warden/api';

export interface Answer {
  status: number;
  code: string | undefined;
  message: string;
  retryAfter: string | undefined;
}

/**
 * POSTs `body` (JSON text, sent as it is) to `path` at `proxy` (host:port) over HTTPS with
 * `options` (TLS trust and client certificate, source address, more headers): the status, the
 * headers and the JSON answer (`{}` when empty).
 */
export function postRaw(
  proxy: string,
  path: string,
  body: string,
  options: RequestOptions = {},
): Promise<{ status: number; headers: IncomingHttpHeaders; json: unknown }> {
  const [host, port] = proxy.split(':');
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host,
        port: Number(port),
        path,
        method: 'POST',
        ...options,
        headers: { 'content-type': 'application/json', ...options.headers },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c) => {
          text += c;
        });
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, json: JSON.parse(text || '{}') }),
        );
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

export async function post(
  proxy: string,
  path: string,
  body: unknown,
  from: string,
  headers: Record<string, string> = {},
): Promise<Answer> {
  const res = await postRaw(proxy, path, JSON.stringify(body), {
    localAddress: from,
    rejectUnauthorized: false,
    headers,
  });
  const json = res.json as { error?: { code?: string; message?: string } };
  const retry = res.headers['retry-after'];
  return {
    status: res.status,
    code: json.error?.code,
    message: json.error?.message ?? '',
    retryAfter: typeof retry === 'string' ? retry : undefined,
  };
}

/** POSTs an invite token (a random one unless given) to signup begin, or the Web UI's. */
export function guessInviteToken(
  proxy: string,
  from: string,
  token = randomBytes(16).toString('hex'),
  opts: { web?: boolean } = {},
): Promise<Answer> {
  if (!opts.web) return post(proxy, rpc.Routes.signupBegin, { token }, from);
  return post(proxy, web.WebRoutes.signupBegin, { token }, from, {
    origin: `https://${proxy}`,
    [web.CSRF_HEADER]: '1',
  });
}

/** POSTs a well-formed enrollment request with a random token. */
export function guessEnrollToken(proxy: string, from: string): Promise<Answer> {
  const b64 = Buffer.from('not a TPM structure').toString('base64');
  return post(
    proxy,
    rpc.Routes.deviceEnrollBegin,
    {
      token: randomBytes(16).toString('hex'),
      credential_id: randomUUID(),
      device_data: { collect_time: new Date().toISOString(), os_type: 'linux', serial_number: 'guess' },
      ek: { public: b64 },
      ak: { public: b64, creation_data: b64, creation_attest: b64, creation_signature: b64 },
    },
    from,
  );
}
