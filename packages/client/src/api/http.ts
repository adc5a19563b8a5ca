/**
 * HTTPS transport for the RPC contract: JSON requests over node:https with the proxy's host CA
 * as the only trust anchor (or none with `insecure`), and an optional client certificate.
 * Server errors become WardenErrors with the server's code; network errors become
 * WARDEN_ERR_CONNECTION with a message that says what to check.
 */
import { createHash } from 'node:crypto';
import { Agent, request } from 'node:https';
import { isErrorCode, WardenError } from '@warden/api';
import { splitHostPort } from './address';

export { splitHostPort };

/** Keep-alive agents per client certificate (a process uses one or two). */
const MAX_AGENTS = 16;
/** Below the proxy's keep-alive timeout (5 s), so an idle connection is never reused as it closes. */
const IDLE_SOCKET_MS = 4000;
const agents = new Map<string, Agent>();

/**
 * Authenticated calls of one identity share a keep-alive agent: a ceremony's begin and finish
 * (and a command's several calls) go over one mTLS connection, and a new connection resumes
 * the last TLS session (the agent caches it) instead of a full handshake with the client
 * certificate. Idle sockets do not keep the process alive (the agent unrefs them).
 */
function agentFor(opts: HttpOptions): Agent | false {
  if (!opts.identity) return false;
  const id = createHash('sha256')
    .update(opts.identity.certPem)
    .update('\0')
    .update(opts.identity.keyPem)
    .update('\0')
    .update((opts.caPems ?? []).join('\n'))
    .update(opts.insecure ? '\0insecure' : '')
    .digest('base64');
  let agent = agents.get(id);
  if (!agent) {
    agent = new Agent({ keepAlive: true, timeout: IDLE_SOCKET_MS, maxCachedSessions: 4 });
    agents.set(id, agent);
    if (agents.size > MAX_AGENTS) {
      const oldest = agents.keys().next().value as string;
      agents.get(oldest)?.destroy();
      agents.delete(oldest);
    }
  }
  return agent;
}

export interface TlsIdentity {
  certPem: string;
  keyPem: string;
}

export interface HttpOptions {
  /** host:port of the proxy. */
  proxy: string;
  /** CA certificates (PEM) the proxy's TLS certificate must chain to. */
  caPems?: string[];
  /** Skip verification of the proxy's certificate (never with an identity in production). */
  insecure?: boolean;
  identity?: TlsIdentity;
  timeoutMs?: number;
}

export interface RawResponse {
  status: number;
  body: unknown;
  /** The proxy's certificate chain as PEM, leaf first (only when asked). */
  peerChain?: string[];
}

export function httpJson(
  opts: HttpOptions,
  method: 'GET' | 'POST' | 'PUT' | 'DELETE',
  path: string,
  body?: unknown,
): Promise<RawResponse> {
  const { host, port } = splitHostPort(opts.proxy);
  const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host,
        port,
        method,
        path,
        servername: /^[\d.]+$|:/.test(host) ? undefined : host,
        ca: opts.caPems,
        rejectUnauthorized: !opts.insecure,
        cert: opts.identity?.certPem,
        key: opts.identity?.keyPem,
        agent: agentFor(opts),
        timeout: opts.timeoutMs ?? 30_000,
        headers: {
          accept: 'application/json',
          ...(payload ? { 'content-type': 'application/json', 'content-length': payload.length } : {}),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed: unknown;
          try {
            parsed = text ? JSON.parse(text) : undefined;
          } catch {
            reject(
              new WardenError(
                'WARDEN_ERR_CONNECTION',
                `the server at ${opts.proxy} did not answer with JSON (HTTP ${res.statusCode}); is it a Warden proxy?`,
              ),
            );
            return;
          }
          resolve({ status: res.statusCode ?? 0, body: parsed });
        });
        res.on('error', reject);
      },
    );
    req.on('timeout', () => {
      req.destroy(
        new WardenError('WARDEN_ERR_CONNECTION', `timed out talking to the proxy at ${opts.proxy}`),
      );
    });
    req.on('error', (err: NodeJS.ErrnoException) => reject(connectionError(opts.proxy, err)));
    if (payload) req.write(payload);
    req.end();
  });
}

function connectionError(proxy: string, err: NodeJS.ErrnoException): Error {
  if (err instanceof WardenError) return err;
  switch (err.code) {
    case 'ECONNREFUSED':
      return new WardenError(
        'WARDEN_ERR_CONNECTION',
        `cannot reach the proxy at ${proxy} (connection refused); is warden running there?`,
      );
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return new WardenError('WARDEN_ERR_CONNECTION', `cannot resolve the proxy host in "${proxy}"`);
    case 'DEPTH_ZERO_SELF_SIGNED_CERT':
    case 'SELF_SIGNED_CERT_IN_CHAIN':
    case 'UNABLE_TO_VERIFY_LEAF_SIGNATURE':
    case 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY':
    case 'CERT_SIGNATURE_FAILURE':
    case 'ERR_TLS_CERT_ALTNAME_INVALID':
      return new WardenError(
        'WARDEN_ERR_CONNECTION',
        `the proxy at ${proxy} presented a certificate that is not signed by the cluster's host CA (${err.code}); ` +
          'if the cluster was re-created, run `wsh logout` and log in again with --ca-pin',
      );
    case 'EPROTO':
    case 'ERR_SSL_WRONG_VERSION_NUMBER':
      return new WardenError(
        'WARDEN_ERR_CONNECTION',
        `the server at ${proxy} does not speak TLS; is it a Warden proxy?`,
      );
    default:
      return new WardenError('WARDEN_ERR_CONNECTION', `cannot talk to the proxy at ${proxy}: ${err.message}`);
  }
}

/** Turns a non-2xx response into the server's WardenError. */
export function errorFromResponse(res: RawResponse): WardenError {
  const body = res.body as { error?: { code?: unknown; message?: unknown } } | undefined;
  const code = body?.error?.code;
  const message = typeof body?.error?.message === 'string' ? body.error.message : `HTTP ${res.status}`;
  return new WardenError(isErrorCode(code) ? code : 'WARDEN_ERR_INTERNAL', message);
}
