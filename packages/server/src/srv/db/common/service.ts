/**
 * db_service: takes the connections the proxy authenticated (`DbHandoff`), runs the engine
 * of the database's protocol over a `DbSession`, keeps live sessions under the lock watch,
 * records their end, lists the databases a user may reach, and heartbeats the databases of
 * its config. Every agent enforces authorization itself: the engines call the access
 * checker here, whatever the proxy decided.
 * Internal to `srv/db`; the public surface is `common/index.ts`.
 *
 * @example
 *   const dbService = new DbService({ clock, logger, audit, access, issuer: dbCertIssuer(cas),
 *     engines: [new PostgresEngine({ logger })], onLocksChange: (fn) => lockCache.onChange(fn),
 *     listDbs: () => services.dbs.list() });
 *   proxyDbTunnels = new DbTunnels({ …, handoff: dbService });
 */
import type { Duplex } from 'node:stream';
import type { DbProtocol, DbResource } from '@warden/api';
import type { Identity } from '../../../access';
import type { AuditLog } from '../../../audit';
import type { Clock } from '../../../clock';
import type { Logger } from '../../../log';
import type { DbAccess, DbInfo } from './access';
import { LockWatch } from './lock-watch';
import { DbSession } from './session';
import type { DbConnection, DbEngine, DbHandoff, DbRefusal } from './types';
import { type DbCertIssuer, UpstreamCredentials } from './upstream';

export interface DbServiceOptions {
  clock: Clock;
  logger: Logger;
  audit: AuditLog;
  access: DbAccess;
  issuer: DbCertIssuer;
  engines: readonly DbEngine[];
  /** Subscribes to lock view changes (`lockCache.onChange`). */
  onLocksChange(listener: () => void): () => void;
  /** Every `db` resource (for listings). */
  listDbs(): Promise<DbResource[]>;
  lockCheckIntervalMs?: number;
}

export class DbService implements DbHandoff {
  readonly #o: DbServiceOptions;
  readonly #engines: ReadonlyMap<DbProtocol, DbEngine>;
  readonly #credentials: UpstreamCredentials;
  readonly #watch: LockWatch;
  readonly #live = new Map<DbSession, Duplex>();
  #closed = false;

  constructor(o: DbServiceOptions) {
    this.#o = o;
    this.#engines = new Map(o.engines.map((e) => [e.protocol, e]));
    this.#credentials = new UpstreamCredentials({ issuer: o.issuer, clock: o.clock });
    this.#watch = new LockWatch({
      access: o.access,
      logger: o.logger,
      onLocksChange: o.onLocksChange,
      ...(o.lockCheckIntervalMs ? { intervalMs: o.lockCheckIntervalMs } : {}),
    });
  }

  /** Live sessions (for tests and metrics). */
  get liveSessions(): number {
    return this.#live.size;
  }

  #engine(db: DbResource): DbEngine | undefined {
    return this.#engines.get(db.spec.protocol);
  }

  serve(conn: DbConnection): void {
    const engine = this.#engine(conn.db);
    if (!engine || this.#closed) {
      conn.stream.destroy();
      this.#o.logger.warn(
        { db: conn.db.metadata.name, protocol: conn.db.spec.protocol },
        'no engine for database',
      );
      return;
    }
    const session = new DbSession(conn, {
      clock: this.#o.clock,
      audit: this.#o.audit,
      logger: this.#o.logger,
      access: this.#o.access,
      credentials: this.#credentials,
    });
    this.#live.set(session, conn.stream);
    this.#watch.add(session);
    conn.stream.on('error', () => conn.stream.destroy());
    engine
      .serve(conn.stream, session)
      .catch((e) => this.#o.logger.warn({ err: e, session: session.id }, 'database session failed'))
      .finally(() => {
        conn.stream.destroy();
        this.#watch.delete(session);
        this.#live.delete(session);
        void session.ended();
      });
  }

  refuse(refusal: DbRefusal): void {
    const engine = this.#engine(refusal.db);
    refusal.stream.on('error', () => refusal.stream.destroy());
    if (!engine) {
      refusal.stream.destroy();
      return;
    }
    engine
      .refuse(refusal.stream, refusal.reason)
      .catch(() => undefined)
      .finally(() => refusal.stream.destroy());
  }

  /** The databases `identity` may reach, for `GET /v1/dbs`. */
  async listFor(identity: Identity): Promise<DbInfo[]> {
    return this.#o.access.reachable(identity, await this.#o.listDbs());
  }

  /** Ends every live session and stops watching locks. */
  close(): void {
    this.#closed = true;
    this.#watch.close();
    for (const [session, stream] of this.#live) {
      session.terminate('the database service is shutting down');
      setTimeout(() => stream.destroy(), 1000).unref();
    }
  }
}
