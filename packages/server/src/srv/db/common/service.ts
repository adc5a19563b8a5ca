/**
 * db_service: takes the connections the proxy authenticated (`DbHandoff`), runs the engine
 * of the database's protocol over a `DbSession`, registers each live session with the
 * process's SessionMonitor (a lock arriving through the watch, or the certificate's expiry,
 * ends it with the engine's protocol error carrying the message), records their end, and
 * lists the databases a user may reach. Every agent enforces authorization itself: the
 * engines ask the access checker here, whatever the proxy decided.
 * Internal to `srv/db`; the public surface is `common/index.ts`.
 *
 * @example
 *   const dbService = new DbService({ clock, logger, audit, checker, monitor,
 *     issuer: dbCertIssuer(cas), engines: [new PostgresEngine({ logger })],
 *     listDbs: () => services.dbs.list() });
 *   proxyDbTunnels = new DbTunnels({ …, handoff: dbService });
 */
import type { Duplex } from 'node:stream';
import type { DbProtocol, DbResource } from '@warden/api';
import type { AccessChecker, Identity, SessionMonitor } from '../../../access';
import type { AuditLog } from '../../../audit';
import type { Clock } from '../../../clock';
import type { Logger } from '../../../log';
import { type DbInfo, reachableDbs } from './access';
import { DbSession } from './session';
import type { DbCancel, DbConnection, DbEngine, DbHandoff, DbRefusal } from './types';
import { type DbCertIssuer, UpstreamCredentials } from './upstream';

export interface DbServiceOptions {
  clock: Clock;
  logger: Logger;
  audit: AuditLog;
  /** The process's access checker (bin/start.ts builds one). */
  checker: Pick<AccessChecker, 'checkAccess' | 'resolve'>;
  /** The process's session monitor: every live session registers with it. */
  monitor: Pick<SessionMonitor, 'register'>;
  issuer: DbCertIssuer;
  engines: readonly DbEngine[];
  /** Every `db` resource (for listings). */
  listDbs(): Promise<DbResource[]>;
}

export class DbService implements DbHandoff {
  readonly #o: DbServiceOptions;
  readonly #engines: ReadonlyMap<DbProtocol, DbEngine>;
  readonly #credentials: UpstreamCredentials;
  readonly #live = new Map<DbSession, Duplex>();
  #closed = false;

  constructor(o: DbServiceOptions) {
    this.#o = o;
    this.#engines = new Map(o.engines.map((e) => [e.protocol, e]));
    this.#credentials = new UpstreamCredentials({ issuer: o.issuer, clock: o.clock });
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
      checker: this.#o.checker,
      credentials: this.#credentials,
    });
    this.#live.set(session, conn.stream);
    // A session already locked out when it registers is ended right after (the monitor
    // checks it against the current view): a lock between the proxy's decision and here
    // is not missed.
    const registration = this.#o.monitor.register({
      identity: conn.identity,
      protocol: 'db',
      end: (message) => session.terminate(message),
    });
    conn.stream.on('error', () => conn.stream.destroy());
    engine
      .serve(conn.stream, session, conn.greeted)
      .catch((e) => this.#o.logger.warn({ err: e, session: session.id }, 'database session failed'))
      .finally(() => {
        conn.stream.destroy();
        registration.unregister();
        this.#live.delete(session);
        void session.ended();
      });
  }

  refuse(refusal: DbRefusal): void {
    const engine = this.#engines.get(refusal.db ? refusal.db.spec.protocol : refusal.protocol);
    refusal.stream.on('error', () => refusal.stream.destroy());
    if (!engine) {
      refusal.stream.destroy();
      return;
    }
    engine
      .refuse(refusal.stream, refusal.reason, refusal.greeted)
      .catch(() => undefined)
      .finally(() => refusal.stream.destroy());
  }

  cancel(req: DbCancel): void {
    const engine = this.#engines.get(req.protocol);
    if (!engine?.cancel || this.#closed) return;
    engine
      .cancel({ processId: req.processId, secretKey: req.secretKey })
      .catch((e) => this.#o.logger.warn({ err: e, addr: req.clientAddr }, 'cancel request failed'));
  }

  /** The databases `identity` may reach, for `GET /v1/dbs`. */
  async listFor(identity: Identity): Promise<DbInfo[]> {
    return reachableDbs(this.#o.checker.resolve(identity), await this.#o.listDbs());
  }

  /** Ends every live session. */
  close(): void {
    this.#closed = true;
    for (const engine of this.#engines.values()) engine.close?.();
    for (const [session, stream] of this.#live) {
      session.terminate('the database service is shutting down');
      setTimeout(() => stream.destroy(), 1000).unref();
    }
  }
}
