/**
 * Tunnels through the proxy port (SSH, databases): TLS with one ALPN protocol and the
 * profile's client certificate, one JSON request line, one JSON answer line, then the raw
 * protocol inside that TLS connection (server side: packages/server/src/proxy/*-tunnel.ts).
 */
import { createHash } from 'node:crypto';
import type { Duplex } from 'node:stream';
import { connect, createSecureContext, type SecureContext, type TLSSocket } from 'node:tls';
import { isErrorCode, WardenError } from '@warden/api';
import type { LoadedProfile } from '../profile';
import { splitHostPort } from './address';

const MAX_ANSWER = 64 * 1024;
/** Credentials (and their TLS sessions) remembered per process; a long-lived relay uses one or two. */
const MAX_CREDENTIALS = 16;

interface Credentials {
  context: SecureContext;
  /** The last TLS session the proxy gave us, per proxy address and protocol (resumption). */
  sessions: Map<string, Buffer>;
}
const credentials = new Map<string, Credentials>();

/**
 * One SecureContext per certificate, key and CA set: parsing the key and certificates for every
 * connection cost more than the rest of a resumed handshake. The proxy still sees every
 * connection's certificate (resumed sessions carry it) and re-checks it per tunnel.
 */
function credentialsFor(profile: LoadedProfile): Credentials {
  const id = createHash('sha256')
    .update(profile.tlsCert)
    .update('\0')
    .update(profile.keyPem)
    .update('\0')
    .update(profile.hostCaPems.join('\n'))
    .digest('base64');
  let c = credentials.get(id);
  if (!c) {
    c = {
      context: createSecureContext({ ca: profile.hostCaPems, cert: profile.tlsCert, key: profile.keyPem }),
      sessions: new Map(),
    };
    credentials.set(id, c);
    if (credentials.size > MAX_CREDENTIALS) credentials.delete(credentials.keys().next().value as string);
  }
  return c;
}

/**
 * The failure side of one step on a socket to the proxy: the first `fail` destroys the socket
 * and rejects; `closed` is the proxy closing it; after `handOver()` (the step succeeded and the
 * socket is the caller's) failures are no longer this step's.
 */
function step(socket: TLSSocket, reject: (e: Error) => void) {
  let settled = false;
  const fail = (e: Error) => {
    if (settled) return;
    settled = true;
    socket.destroy();
    reject(e);
  };
  return {
    fail,
    closed: () => fail(new WardenError('WARDEN_ERR_CONNECTION', 'the proxy closed the connection')),
    handOver: () => {
      settled = true;
    },
  };
}

/** TLS errors and early closes as WARDEN_ERR_CONNECTION naming the proxy. */
function reachError(profile: LoadedProfile, e: Error): WardenError {
  return e instanceof WardenError
    ? e
    : new WardenError('WARDEN_ERR_CONNECTION', `cannot reach the proxy at ${profile.proxy}: ${e.message}`);
}

/**
 * TLS to the proxy with one ALPN protocol and the profile's client certificate; resolves once
 * the handshake is done and the proxy chose `alpn`. Nothing is sent yet: `openTunnel` on it
 * sends the request. A long-lived relay dials one ahead (`wsh proxy db --tunnel`), so a new
 * local connection does not wait for a handshake; the proxy decides on the request when it
 * comes (identity, locks), so a connection made ahead decides nothing early.
 *
 * @example
 *   const ready = connectProxy(profile, 'warden-db/1');
 *   const { stream } = await openTunnel(profile, 'warden-db/1', { db: 'orders' }, 'db', ready);
 */
export function connectProxy(profile: LoadedProfile, alpn: string): Promise<TLSSocket> {
  const { host, port } = splitHostPort(profile.proxy);
  const creds = credentialsFor(profile);
  const sessionKey = `${profile.proxy}|${alpn}|${profile.insecure ? 'insecure' : ''}`;
  const session = creds.sessions.get(sessionKey);
  return new Promise((resolve, reject) => {
    const socket = connect({
      host,
      port,
      servername: /^[\d.]+$|:/.test(host) ? undefined : host,
      secureContext: creds.context,
      rejectUnauthorized: !profile.insecure,
      ALPNProtocols: [alpn],
      ...(session ? { session } : {}),
    });
    // TLS 1.3 tickets arrive after the handshake; the next connection resumes with the newest.
    socket.on('session', (s: Buffer) => creds.sessions.set(sessionKey, s));
    socket.setNoDelay(true);
    const { fail, closed: onClose, handOver } = step(socket, reject);
    // Stays attached: errors after the hand-over are the consumer's to see on 'close'.
    socket.on('error', (e: Error) => fail(reachError(profile, e)));
    socket.on('close', onClose);
    socket.once('secureConnect', () => {
      if (socket.alpnProtocol !== alpn) {
        fail(
          new WardenError('WARDEN_ERR_CONNECTION', `the proxy at ${profile.proxy} does not route ${alpn}`),
        );
        return;
      }
      handOver();
      socket.removeListener('close', onClose);
      resolve(socket);
    });
  });
}

/**
 * Opens a tunnel and returns the stream with the answer's `field` (e.g. `node`, `db`). Throws
 * WardenError with the proxy's reason when it refuses (its code: ACCESS_DENIED, LOCKED,
 * NOT_FOUND…), or WARDEN_ERR_CONNECTION when it cannot be reached or answers nonsense.
 * `connected`: a connection from `connectProxy` for the same profile and `alpn` (else one is
 * dialed).
 *
 * @example
 *   const { stream, info } = await openTunnel<NodeInfo>(profile, 'warden-ssh/1', { node, login }, 'node');
 */
export async function openTunnel<T>(
  profile: LoadedProfile,
  alpn: string,
  request: Record<string, unknown>,
  field: string,
  connected?: Promise<TLSSocket>,
): Promise<{ stream: Duplex; info: T }> {
  const socket = await (connected ?? connectProxy(profile, alpn));
  return new Promise((resolve, reject) => {
    let buffered = Buffer.alloc(0);
    const { fail, closed: onClose, handOver } = step(socket, reject);
    const malformed = () =>
      fail(new WardenError('WARDEN_ERR_CONNECTION', 'the proxy sent a malformed answer'));
    const onData = (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      const nl = buffered.indexOf(0x0a);
      if (nl === -1) {
        if (buffered.length > MAX_ANSWER) malformed();
        return;
      }
      socket.off('data', onData);
      socket.pause();
      let answer: Record<string, unknown>;
      try {
        answer = JSON.parse(buffered.subarray(0, nl).toString('utf8')) as Record<string, unknown>;
      } catch {
        malformed();
        return;
      }
      if (!answer.ok || answer[field] === undefined) {
        const code = isErrorCode(answer.code) ? answer.code : 'WARDEN_ERR_INTERNAL';
        const message =
          typeof answer.message === 'string' ? answer.message : 'the proxy refused the connection';
        fail(new WardenError(code, message));
        return;
      }
      const rest = buffered.subarray(nl + 1);
      if (rest.length) socket.unshift(rest);
      handOver();
      socket.removeListener('close', onClose);
      socket.removeListener('error', onError);
      resolve({ stream: socket, info: answer[field] as T });
    };
    const onError = (e: Error) => fail(reachError(profile, e));
    if (socket.destroyed) {
      onClose();
      return;
    }
    socket.on('data', onData);
    socket.on('error', onError);
    socket.on('close', onClose);
    socket.write(`${JSON.stringify(request)}\n`);
  });
}
