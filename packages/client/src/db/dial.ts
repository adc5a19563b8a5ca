/**
 * Dialing a database through the proxy: TLS to the proxy port with ALPN `warden-db/1` and
 * the profile's client certificate, one request line `{db, db_user, db_name}`, one answer
 * line, then the database protocol in plaintext inside that TLS connection (protocol in
 * packages/server/src/proxy/db-tunnel.ts). Protocol-agnostic: PostgreSQL and MySQL alike.
 */
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { DB_ALPN } from '@warden/api';
import { openTunnel } from '../api/tunnel';
import type { LoadedProfile } from '../profile';

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
 * `connected`: a TLS connection to the proxy made ahead (`connectProxy`), else one is dialed.
 *
 * @example
 *   const { stream } = await dialDb(profile, { db: 'orders', dbUser: 'alice', dbName: 'orders' });
 */
export async function dialDb(
  profile: LoadedProfile,
  route: DbRoute,
  connected?: Promise<TLSSocket>,
): Promise<{ stream: Duplex; db: DbInfo }> {
  const request = {
    db: route.db,
    ...(route.dbUser ? { db_user: route.dbUser } : {}),
    ...(route.dbName ? { db_name: route.dbName } : {}),
  };
  const { stream, info } = await openTunnel<DbInfo>(profile, DB_ALPN, request, 'db', connected);
  return { stream, db: info };
}
