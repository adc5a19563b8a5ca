/**
 * Token guessing as an attacker does it: raw HTTPS requests to the proxy's unauthenticated
 * routes from a chosen source address (any 127.0.0.0/8 address reaches a loopback listener).
 * Used by test/hardening/rate-limits.e2e.test.ts and test/ha/rate-limits.e2e.test.ts.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { request } from 'node:https';
import { rpc, web } from '@warden/api';

export interface Answer {
  status: number;
  code: string | undefined;
  message: string;
  retryAfter: string | undefined;
}

export function post(
  proxy: string,
  path: string,
  body: unknown,
  from: string,
  headers: Record<string, string> = {},
): Promise<Answer> {
  const [host, port] = proxy.split(':');
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host,
        port: Number(port),
        path,
        method: 'POST',
        localAddress: from,
        rejectUnauthorized: false,
        headers: { 'content-type': 'application/json', ...headers },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c) => {
          text += c;
        });
        res.on('end', () => {
          const json = JSON.parse(text || '{}') as { error?: { code?: string; message?: string } };
          const retry = res.headers['retry-after'];
          resolve({
            status: res.statusCode ?? 0,
            code: json.error?.code,
            message: json.error?.message ?? '',
            retryAfter: typeof retry === 'string' ? retry : undefined,
          });
        });
      },
    );
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
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
