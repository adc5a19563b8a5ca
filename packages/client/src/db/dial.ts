/**
 * Dialing a database through the proxy: TLS to the proxy port with ALPN `warden-db/1` and
 * the profile's client certificate, one request line `{db, db_user, db_name}`, one answer
 * line, then the database protocol in plaintext inside that TLS connection (protocol in
 * packages/server/src/proxy/db-tunnel.ts). Protocol-agnostic: PostgreSQL and MySQL alike.
 */
import type { Duplex } from 'node:stream';
import { connect } from 'node:tls';
import { isErrorCode, WardenError } from '@warden/api';
import { splitHostPort } from '../api';
import type { LoadedProfile } from '../profile';

export const DB_ALPN = 'warden-db/1';
const MAX_ANSWER = 64 * 1024;

/** A database as the proxy describes it. */
export interface DbInfo {
  name: string;
  protocol: string;
  labels: Record<string, string>;
}

export interface DbRoute {
  /** The database's name (`wsh db ls`). */
  db: string;
  /** Database user; when absent, the client's own startup (psql -U) decides. */
  dbUser?: string;
  /** Database (schema) name; when absent, the client's startup decides. */
  dbName?: string;
}

/**
 * TLS to the proxy, asks for `route`, returns the byte stream to the database. Throws
 * WardenError with the proxy's reason (NOT_FOUND, NOT_LOGGED_IN, CONNECTION…). Access to
 * the database is decided after the protocol's startup: refusals arrive as the protocol's
 * own error (psql prints them).
 *
 * @example
 *   const { stream } = await dialDb(profile, { db: 'orders', dbUser: 'alice', dbName: 'orders' });
 */
export function dialDb(profile: LoadedProfile, route: DbRoute): Promise<{ stream: Duplex; db: DbInfo }> {
  const { host, port } = splitHostPort(profile.proxy);
  return new Promise((resolve, reject) => {
    const socket = connect({
      host,
      port,
      servername: /^[\d.]+$|:/.test(host) ? undefined : host,
      ca: profile.hostCaPems,
      rejectUnauthorized: !profile.insecure,
      cert: profile.tlsCert,
      key: profile.keyPem,
      ALPNProtocols: [DB_ALPN],
    });
    socket.setNoDelay(true);
    let buffered = Buffer.alloc(0);
    let settled = false;
    const fail = (e: Error) => {
      if (settled) return;
      settled = true;
      socket.destroy();
      reject(e);
    };
    socket.once('secureConnect', () => {
      if (socket.alpnProtocol !== DB_ALPN) {
        fail(
          new WardenError(
            'WARDEN_ERR_CONNECTION',
            `the proxy at ${profile.proxy} does not route databases (no ${DB_ALPN})`,
          ),
        );
        return;
      }
      socket.write(
        `${JSON.stringify({
          db: route.db,
          ...(route.dbUser ? { db_user: route.dbUser } : {}),
          ...(route.dbName ? { db_name: route.dbName } : {}),
        })}\n`,
      );
    });
    const onData = (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      const nl = buffered.indexOf(0x0a);
      if (nl === -1) {
        if (buffered.length > MAX_ANSWER)
          fail(new WardenError('WARDEN_ERR_CONNECTION', 'the proxy sent a malformed answer'));
        return;
      }
      socket.off('data', onData);
      socket.pause();
      let answer: { ok?: boolean; code?: unknown; message?: unknown; db?: DbInfo };
      try {
        answer = JSON.parse(buffered.subarray(0, nl).toString('utf8')) as typeof answer;
      } catch {
        fail(new WardenError('WARDEN_ERR_CONNECTION', 'the proxy sent a malformed answer'));
        return;
      }
      if (!answer.ok || !answer.db) {
        const code = isErrorCode(answer.code) ? answer.code : 'WARDEN_ERR_INTERNAL';
        fail(
          new WardenError(
            code,
            typeof answer.message === 'string' ? answer.message : 'the proxy refused the connection',
          ),
        );
        return;
      }
      const rest = buffered.subarray(nl + 1);
      if (rest.length) socket.unshift(rest);
      settled = true;
      socket.removeAllListeners('close');
      socket.removeAllListeners('error');
      resolve({ stream: socket, db: answer.db });
    };
    socket.on('data', onData);
    socket.on('error', (e: NodeJS.ErrnoException) =>
      fail(
        e instanceof WardenError
          ? e
          : new WardenError(
              'WARDEN_ERR_CONNECTION',
              `cannot reach the proxy at ${profile.proxy}: ${e.message}`,
            ),
      ),
    );
    socket.on('close', () =>
      fail(new WardenError('WARDEN_ERR_CONNECTION', 'the proxy closed the connection')),
    );
  });
}
