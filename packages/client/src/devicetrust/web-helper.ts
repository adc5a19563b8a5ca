/**
 * `wsh device web-helper`: a tiny HTTP server on 127.0.0.1 that the Web UI asks to prove this
 * machine for a browser session (DESIGN §7). Any local user can squat a loopback port, so
 * nothing here is trusted by the server: it checks user, address and device itself. What the
 * helper guards is the user's wsh identity against other web pages:
 *
 *   - listens on 127.0.0.1 only, on the first free port of WEB_HELPER_PORTS;
 *   - `Host` must be exactly `127.0.0.1:<port>` (a DNS-rebinding page has another Host);
 *   - `Origin` must be exactly `https://<proxy>` for a proxy wsh is logged in to, and the
 *     body's `proxy` must be that same proxy;
 *   - only `POST /v1/prove` with `Content-Type: application/json` and `X-Warden-Helper: 1`
 *     (not CORS-safelisted: the browser must send a preflight, answered only for allowed
 *     origins, with `Access-Control-Allow-Private-Network` for Chromium);
 *   - rate-limited (a burst of 5, then one every 6 s) and one ceremony at a time;
 *   - `GET /v1/status` (same Host rule, no CORS: pages cannot read it) names the helper and the
 *     wsh home it serves, so `wsh login` can tell whether its helper already runs.
 *
 * Internal to `devicetrust/`; the public surface is `devicetrust/index.ts`. Tested by
 * `web-helper.test.ts` (raw HTTP) and in Chromium by test/web/.
 */
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { isWardenError, parseJsonInput, type rpc, WardenError, web } from '@warden/api';
import type { LoadedProfile, ProfileStore } from '../profile';
import { proveWebDevice, type WebChallenge } from './web';

export interface WebHelperOptions {
  store: Pick<ProfileStore, 'load'>;
  env?: NodeJS.ProcessEnv;
  /** Ports to try, in order (default `web.webHelperPorts(env)`: $WARDEN_WEB_HELPER_PORTS or 41780-41783). */
  ports?: readonly number[];
  /** The ceremony (tests swap in a fake). */
  prove?: (profile: LoadedProfile, challenge: WebChallenge) => Promise<{ device: rpc.DeviceSummary }>;
  /** One line per request outcome (never secrets). */
  log?: (line: string) => void;
  now?: () => number;
  /** Which wsh home this helper serves (`GET /v1/status`; see `webHelperHomeId`). */
  homeId?: string;
  /** Requests allowed at once, and the time to earn one more (default 5 and 6 s; benchmarks raise it). */
  rateLimit?: { burst: number; refillMs: number };
}

export interface RunningWebHelper {
  port: number;
  close(): Promise<void>;
}

const MAX_BODY = 4096;
/** What `GET /v1/status` answers with (and `wsh login` looks for). */
export const WEB_HELPER_SERVICE = 'wsh-device-web-helper';

/** A short, non-secret name of a wsh home (a helper answers for one home's profiles). */
export function webHelperHomeId(home: string): string {
  return createHash('sha256').update(home).digest('hex').slice(0, 16);
}
const BURST = 5;
const REFILL_MS = 6000;
const ALLOWED_HEADERS = new Set(['content-type', web.HELPER_HEADER]);

class HelperError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** Starts the helper on the first free port; throws when every port is taken. */
export async function startWebHelper(o: WebHelperOptions): Promise<RunningWebHelper> {
  const ports = o.ports ?? web.webHelperPorts(o.env ?? process.env);
  const now = o.now ?? Date.now;
  const log = o.log ?? (() => {});
  const prove = o.prove ?? ((profile, challenge) => proveWebDevice(profile, challenge, { env: o.env }));
  const burst = o.rateLimit?.burst ?? BURST;
  const refillMs = o.rateLimit?.refillMs ?? REFILL_MS;
  let tokens = burst;
  let refilled = now();
  let busy = false;
  let port = 0;

  /** The profile for an allowed Origin, or undefined. */
  const profileFor = (origin: string | undefined): LoadedProfile | undefined => {
    if (!origin?.startsWith('https://')) return undefined;
    const proxy = origin.slice('https://'.length);
    if (!proxy || proxy.includes('/')) return undefined;
    const p = o.store.load(proxy);
    return p && p.proxy === proxy ? p : undefined;
  };

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const origin = req.headers.origin;
    const cors: Record<string, string> = { vary: 'Origin', 'cache-control': 'no-store' };
    const answer = (status: number, body: web.HelperProveResponse) => {
      const data = Buffer.from(JSON.stringify(body));
      res.writeHead(status, { ...cors, 'content-type': 'application/json', 'content-length': data.length });
      res.end(data);
    };
    try {
      // DNS rebinding: the page must have addressed us by our loopback address and port.
      if (req.headers.host !== `127.0.0.1:${port}`)
        throw new HelperError(421, 'WARDEN_ERR_ACCESS_DENIED', 'wrong Host header');
      const url = new URL(req.url ?? '/', `http://127.0.0.1:${port}`);
      if (url.pathname === '/v1/status' && req.method === 'GET' && !origin) {
        const data = Buffer.from(JSON.stringify({ service: WEB_HELPER_SERVICE, home: o.homeId ?? '' }));
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': data.length });
        res.end(data);
        return;
      }
      if (url.pathname !== '/v1/prove') throw new HelperError(404, 'WARDEN_ERR_NOT_FOUND', 'not found');
      const profile = profileFor(origin);
      if (!profile) {
        throw new HelperError(
          403,
          'WARDEN_ERR_ACCESS_DENIED',
          `origin ${origin ?? '(none)'} is not a Warden proxy wsh is logged in to`,
        );
      }
      cors['access-control-allow-origin'] = origin!;
      if (req.method === 'OPTIONS') {
        const wanted = (req.headers['access-control-request-headers'] ?? '')
          .split(',')
          .map((h) => h.trim().toLowerCase())
          .filter(Boolean);
        if (
          req.headers['access-control-request-method'] !== 'POST' ||
          wanted.some((h) => !ALLOWED_HEADERS.has(h))
        ) {
          delete cors['access-control-allow-origin'];
          throw new HelperError(403, 'WARDEN_ERR_ACCESS_DENIED', 'preflight refused');
        }
        res.writeHead(204, {
          ...cors,
          'access-control-allow-methods': 'POST',
          'access-control-allow-headers': [...ALLOWED_HEADERS].join(', '),
          'access-control-max-age': '600',
          ...(req.headers['access-control-request-private-network'] === 'true'
            ? { 'access-control-allow-private-network': 'true' }
            : {}),
        });
        res.end();
        return;
      }
      if (req.method !== 'POST') throw new HelperError(405, 'WARDEN_ERR_BAD_PARAMETER', 'use POST');
      if (req.headers[web.HELPER_HEADER] !== '1')
        throw new HelperError(403, 'WARDEN_ERR_ACCESS_DENIED', `missing ${web.HELPER_HEADER} header`);
      if ((req.headers['content-type'] ?? '').split(';')[0]!.trim() !== 'application/json')
        throw new HelperError(415, 'WARDEN_ERR_BAD_PARAMETER', 'expected application/json');
      // Rate limit: a small burst, then one every few seconds; one ceremony at a time.
      const earned = Math.floor((now() - refilled) / refillMs);
      if (earned > 0) {
        tokens = Math.min(burst, tokens + earned);
        refilled += earned * refillMs;
      }
      if (tokens <= 0 || busy)
        throw new HelperError(
          429,
          'WARDEN_ERR_RATE_LIMITED',
          'too many device trust requests: wait a few seconds',
        );
      tokens--;
      const body = await readBody(req);
      if (body.proxy !== profile.proxy)
        throw new HelperError(
          403,
          'WARDEN_ERR_ACCESS_DENIED',
          'the request names another proxy than its origin',
        );
      busy = true;
      try {
        const { device } = await prove(profile, { id: body.challenge_id, secret: body.challenge_secret });
        log(`proved device "${device.asset_tag}" for ${profile.user}'s browser session on ${profile.proxy}`);
        answer(200, { ok: true });
      } finally {
        busy = false;
      }
    } catch (e) {
      const err =
        e instanceof HelperError
          ? e
          : isWardenError(e)
            ? new HelperError(e.status >= 400 && e.status < 600 ? e.status : 500, e.code, e.message)
            : new HelperError(500, 'WARDEN_ERR_INTERNAL', e instanceof Error ? e.message : String(e));
      log(`refused ${req.method} from origin ${origin ?? '(none)'}: ${err.message}`);
      answer(err.status, { ok: false, error: { code: err.code, message: err.message } });
    }
  };

  const server: Server = createServer((req, res) => {
    handle(req, res).catch(() => res.destroy());
  });
  server.requestTimeout = 120_000;
  for (const p of ports) {
    const ok = await new Promise<boolean>((resolve) => {
      const onError = () => resolve(false);
      server.once('error', onError);
      server.listen(p, '127.0.0.1', () => {
        server.off('error', onError);
        resolve(true);
      });
    });
    if (ok) {
      port = (server.address() as AddressInfo).port;
      return {
        port,
        close: () => new Promise<void>((resolve) => server.close(() => resolve())),
      };
    }
  }
  throw new WardenError(
    'WARDEN_ERR_ALREADY_EXISTS',
    `every device helper port is taken (127.0.0.1:${ports.join(', ')}): is another wsh device web-helper running?`,
  );
}

async function readBody(req: IncomingMessage): Promise<web.HelperProveRequest> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > MAX_BODY) throw new HelperError(413, 'WARDEN_ERR_BAD_PARAMETER', 'request too large');
    chunks.push(c as Buffer);
  }
  let v: unknown;
  try {
    v = parseJsonInput(Buffer.concat(chunks).toString('utf8'), 'request body', 4);
  } catch (e) {
    throw new HelperError(
      400,
      'WARDEN_ERR_BAD_PARAMETER',
      e instanceof Error ? e.message : 'bad request body',
    );
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v))
    throw new HelperError(
      400,
      'WARDEN_ERR_BAD_PARAMETER',
      'expected { proxy, challenge_id, challenge_secret }',
    );
  const b = v as Partial<web.HelperProveRequest>;
  const ok = (x: unknown, max: number) => typeof x === 'string' && x.length > 0 && x.length <= max;
  if (!ok(b.proxy, 300) || !ok(b.challenge_id, 128) || !ok(b.challenge_secret, 256))
    throw new HelperError(
      400,
      'WARDEN_ERR_BAD_PARAMETER',
      'expected { proxy, challenge_id, challenge_secret }',
    );
  return b as web.HelperProveRequest;
}
