/**
 * The contracts of db_service: what the proxy hands over (`DbConnection`, `DbRefusal` through
 * `DbHandoff`), and what a protocol engine implements (`DbEngine`). They are kept narrow and
 * serialisable (a stream plus plain data) so the in-process hand-off can become a network
 * hop (proxy → db_service over mTLS) without touching the engines.
 * Internal to `srv/db`; the public surface is `common/index.ts`.
 */
import type { Duplex } from 'node:stream';
import type { DbProtocol, DbResource } from '@warden/api';
import type { Identity } from '../../../access';
import type { DbSession } from './session';

/** A client connection the proxy authenticated, for one database. */
export interface DbConnection {
  /** The database protocol in plaintext (inside the proxy's TLS tunnel). */
  stream: Duplex;
  db: DbResource;
  /** The authenticated user (from their Warden X.509 certificate). */
  identity: Identity;
  /**
   * From the proxy's request line (`wsh db login --db-user`, `wsh proxy db --db-user`). When
   * given they win over what the client's own startup says; the startup fills the rest.
   */
  dbUser?: string;
  dbName?: string;
  /** The client's address, for the audit log. */
  clientAddr: string;
  /**
   * MySQL straight at the proxy's MySQL listener: the listener already greeted the client and
   * took its SSLRequest before TLS (`mysqlTlsOpening`); the engine reads the handshake response.
   */
  greeted?: { connectionId: number };
}

/**
 * A connection the proxy must refuse after it knew the database (e.g. the user is locked):
 * the engine speaks just enough of the protocol to show `reason` in the client.
 */
export type DbRefusal = {
  stream: Duplex;
  reason: string;
  clientAddr: string;
  /** The user, when known, for the audit log. */
  user?: string;
  /** As in `DbConnection`. */
  greeted?: { connectionId: number };
} & (
  | { db: DbResource }
  /** Refused before the database is known (a native client's certificate at the proxy). */
  | { db?: undefined; protocol: DbProtocol }
);

/**
 * PostgreSQL's plain CancelRequest, on a connection of its own: libpq before 17 sends it
 * without TLS, so it carries no certificate. As in PostgreSQL (and pgbouncer), the key handed
 * to the session's client is its only credential.
 */
export interface DbCancel {
  protocol: 'postgres';
  processId: number;
  secretKey: number;
  clientAddr: string;
}

/** What the proxy calls. In process today; the same calls over the network later. */
export interface DbHandoff {
  serve(conn: DbConnection): void;
  refuse(refusal: DbRefusal): void;
  /** Passes a plain cancel on when its key is one of a live session's; says nothing either way. */
  cancel?(req: DbCancel): void;
}

/**
 * A database protocol (PostgreSQL, MySQL). An engine serves one client connection:
 *
 *   1. speak the protocol's opening until it knows the db user and database;
 *   2. `session.authorize(…)`; on denial send the protocol's access error carrying
 *      `decision.reason` (`unauthorized device`, `access to db denied: …`, the lock message);
 *   3. dial `session.db.spec.uri` and upgrade to TLS with `session.upstreamTls()` (client
 *      certificate from the db CA, CN = db user), log in, then `session.started()`;
 *   4. relay both ways, calling `session.query(…)` for every statement, and register with
 *      `session.onTerminate` how to end the session with a protocol error (locks);
 *   5. resolve when either side closes (the service then records the session's end).
 */
export interface DbEngine {
  readonly protocol: DbProtocol;
  /** `greeted`: see `DbConnection.greeted` (MySQL). */
  serve(stream: Duplex, session: DbSession, greeted?: { connectionId: number }): Promise<void>;
  /** Refuses a connection before any session exists, showing `reason` in the client. */
  refuse(stream: Duplex, reason: string, greeted?: { connectionId: number }): Promise<void>;
  /** Closes what the engine keeps open between sessions (MySQL: connections made ahead). */
  close?(): void;
  /** A plain cancel (`DbCancel`): cancel what runs in the session with this key, if any. */
  cancel?(key: { processId: number; secretKey: number }): Promise<void>;
}
