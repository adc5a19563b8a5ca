/**
 * One database session as the engines see it: who, which database, the access check, the
 * upstream TLS credentials, the audit events (session start or failure, each query, end,
 * each carrying the device when the certificate has one) and server-side termination
 * (locks). Engines drive it; the service creates it and records the end.
 * Internal to `srv/db`; the public surface is `common/index.ts`.
 */
import { randomUUID } from 'node:crypto';
import type { AuditEventInput, DbResource } from '@warden/api';
import { type AccessChecker, type AccessDecision, auditDevice, type Identity } from '../../../access';
import { type AuditLog, type AuditStatementWriter, auditUnavailable, writeAuditEvent } from '../../../audit';
import type { Clock } from '../../../clock';
import type { Logger } from '../../../log';
import { dbTarget } from './access';
import type { DbConnection } from './types';
import type { UpstreamCredentials, UpstreamTlsOptions } from './upstream';

export interface DbSessionDeps {
  clock: Clock;
  audit: AuditLog;
  logger: Logger;
  /** The process's access checker (live views: no backend read per decision). */
  checker: Pick<AccessChecker, 'checkAccess'>;
  credentials: UpstreamCredentials;
}

/** A statement for the audit log. */
export interface DbQuery {
  query: string;
  parameters?: (string | null)[];
  /** Prepared statement or portal name, when not the unnamed one. */
  statement?: string;
}

/** The subject block of every event of session `s` (see `DbSession#subject`). */
function subjectOf(s: DbSession) {
  return {
    user: s.identity.user,
    ...(s.identity.kind === 'bot' ? { user_kind: 'bot' as const } : {}),
    addr: s.clientAddr,
    ...auditDevice(s.identity),
    protocol: 'db' as const,
    resource: {
      kind: 'db',
      name: s.db.metadata.name,
      ...(s.db.metadata.labels ? { labels: { ...s.db.metadata.labels } } : {}),
    },
    ...(s.dbUser !== undefined ? { db_user: s.dbUser } : {}),
    ...(s.dbName !== undefined ? { db_name: s.dbName } : {}),
  };
}

/**
 * Most `db.query` events of one session that may wait for the audit log before the session
 * stops reading its client (back-pressure: the client waits, no event is dropped).
 */
export const MAX_UNWRITTEN_QUERIES = 256;

/** How often a session asks the audit log for a statement writer before it settles for `emit`. */
const MAX_WRITER_TRIES = 8;

export class DbSession {
  readonly id = randomUUID();
  readonly db: DbResource;
  readonly identity: Identity;
  readonly clientAddr: string;
  /** What the proxy's request line asked for (wins over the protocol's startup). */
  readonly requested: { dbUser?: string; dbName?: string };
  readonly startedAt: number;
  /** Set by `authorize`. */
  dbUser: string | undefined;
  dbName: string | undefined;
  #started = false;
  /** The allowing decision's device exemption (a bot under `required-for-humans`), for session.start. */
  #exemption: 'bot' | undefined;
  #ended = false;
  #terminate: ((reason: string) => void) | undefined;
  #terminatedBy: string | undefined;
  readonly #d: DbSessionDeps;
  /** `db.query` events handed to the audit log and not yet written. */
  #unwritten = 0;
  #room: { promise: Promise<void>; resolve(): void } | undefined;

  constructor(conn: DbConnection, deps: DbSessionDeps) {
    this.#d = deps;
    this.db = conn.db;
    this.identity = conn.identity;
    this.clientAddr = conn.clientAddr;
    this.requested = {
      ...(conn.dbUser ? { dbUser: conn.dbUser } : {}),
      ...(conn.dbName ? { dbName: conn.dbName } : {}),
    };
    this.startedAt = deps.clock.now();
  }

  get isStarted(): boolean {
    return this.#started;
  }

  #subjectCache: ReturnType<typeof subjectOf> | undefined;

  /**
   * What every event of this session says: who, from where, and which database as whom
   * (built once per session after `authorize`; the audit log copies what it stores).
   */
  #subject() {
    this.#subjectCache ??= subjectOf(this);
    return this.#subjectCache;
  }

  /** An event the audit log does not take ends the session (fail closed, issue 15 item 5). */
  async #emit(event: AuditEventInput): Promise<void> {
    await writeAuditEvent(this.#d.audit, this.#d.logger, event, {}, { onLost: (m) => this.terminate(m) });
  }

  /**
   * The access check for this db user and database; a denial is audited (`access.denied`)
   * and returned for the engine to send in the protocol's own form.
   */
  async authorize(req: { dbUser: string; dbName: string | undefined }): Promise<AccessDecision> {
    this.dbUser = req.dbUser;
    this.dbName = req.dbName;
    this.#subjectCache = undefined;
    let decision: AccessDecision;
    try {
      decision = this.#d.checker.checkAccess<'db'>(this.identity, dbTarget(this.db), req);
    } catch (e) {
      this.#d.logger.error({ err: e }, 'database access check failed');
      decision = {
        allowed: false,
        step: 'rbac',
        code: 'WARDEN_ERR_ACCESS_DENIED',
        reason: 'access to db denied: the access check failed; try again later',
      };
    }
    if (decision.allowed) this.#exemption = decision.deviceExemption;
    else {
      await this.#emit({
        type: 'access.denied',
        success: false,
        ...this.#subject(),
        roles: [...this.identity.roles],
        error: decision.reason,
      });
    }
    return decision;
  }

  /** TLS options for dialing the database as the authorized db user. */
  upstreamTls(): Promise<UpstreamTlsOptions> {
    if (this.dbUser === undefined) throw new Error('internal: upstreamTls before authorize');
    return this.#d.credentials.tlsOptions(this.db, this.dbUser);
  }

  /**
   * The database accepted the login: `session.start`. Resolves false when the session must
   * not go on (the audit log did not take the start, or it was ended meanwhile): the engine
   * then refuses the client with `terminatedBy` and relays nothing (issue 15 item 5).
   */
  async started(): Promise<boolean> {
    this.#started = true;
    await this.#emit({
      type: 'session.start',
      success: true,
      ...this.#subject(),
      session_id: this.id,
      roles: [...this.identity.roles],
      ...(this.#exemption ? { device_exemption: this.#exemption } : {}),
    });
    return this.#terminatedBy === undefined;
  }

  /** The session could not start after access was allowed (database unreachable, login refused). */
  async failed(reason: string): Promise<void> {
    await this.#emit({
      type: 'session.start',
      success: false,
      ...this.#subject(),
      session_id: this.id,
      roles: [...this.identity.roles],
      error: reason,
    });
  }

  /**
   * One statement sent to the database (`db.query`). Never throws; never waits: the engine
   * asks `auditBacklog()` before reading more from the client.
   */
  query(q: DbQuery): void {
    this.#unwritten++;
    const writer = this.#statementWriter();
    if (writer) {
      // An empty statement name is the unnamed one: not recorded (as below).
      writer.write(
        q.statement === '' ? { query: q.query, ...(q.parameters ? { parameters: q.parameters } : {}) } : q,
        this.#statementDone,
      );
      return;
    }
    void this.#emit({
      type: 'db.query',
      success: true,
      ...this.#subject(),
      session_id: this.id,
      query: q.query,
      ...(q.parameters ? { parameters: q.parameters } : {}),
      ...(q.statement ? { statement: q.statement } : {}),
    }).finally(this.#written);
  }

  readonly #statementDone = (e?: unknown) => {
    if (e !== undefined) this.#statementLost(e);
    this.#written();
  };

  readonly #written = () => {
    this.#unwritten--;
    if (this.#room && this.#unwritten < MAX_UNWRITTEN_QUERIES) {
      this.#room.resolve();
      this.#room = undefined;
    }
  };

  /** The audit log's writer for this session's statements (`AuditLog.statements`), once it has one. */
  #writer: AuditStatementWriter | undefined;
  /** Times the log was asked for a writer and had none (it may have one later: see device-os). */
  #writerMisses = 0;

  #statementWriter(): AuditStatementWriter | undefined {
    if (this.#writer || this.#writerMisses >= MAX_WRITER_TRIES) return this.#writer;
    this.#writer = this.#d.audit.statements?.({
      type: 'db.query',
      success: true,
      ...this.#subject(),
      session_id: this.id,
    });
    if (!this.#writer) this.#writerMisses++;
    return this.#writer;
  }

  /** As `writeAuditEvent` for a success event on a data path: logged, then the session ends. */
  #statementLost(e: unknown): void {
    this.#d.logger.error(
      { err: e, type: 'db.query' },
      'failed to write audit event: the operation is refused',
    );
    this.terminate(auditUnavailable('db.query').message);
  }

  /**
   * Undefined while the audit log keeps up; otherwise a promise that resolves once this
   * session's unwritten statements are below `MAX_UNWRITTEN_QUERIES`. Engines wait for it
   * before they read the client's next bytes.
   */
  auditBacklog(): Promise<void> | undefined {
    if (this.#unwritten < MAX_UNWRITTEN_QUERIES) return undefined;
    if (!this.#room) {
      let resolve!: () => void;
      const promise = new Promise<void>((r) => {
        resolve = r;
      });
      this.#room = { promise, resolve };
    }
    return this.#room.promise;
  }

  /** `session.end` (once, and only for sessions that started). */
  async ended(): Promise<void> {
    if (this.#ended || !this.#started) return;
    this.#ended = true;
    await this.#emit({
      type: 'session.end',
      success: true,
      ...this.#subject(),
      session_id: this.id,
      roles: [...this.identity.roles],
      duration_ms: Math.max(0, this.#d.clock.now() - this.startedAt),
      ...(this.#terminatedBy ? { terminated_by: this.#terminatedBy } : {}),
    });
  }

  /** How the engine ends this session with a protocol error; called at most once. */
  onTerminate(fn: (reason: string) => void): void {
    this.#terminate = fn;
    if (this.#terminatedBy !== undefined) fn(this.#terminatedBy);
  }

  /**
   * Ends the session from the server side (the session monitor: a lock, the certificate's
   * expiry; the service's shutdown): the client reads `reason`.
   */
  terminate(reason: string): void {
    if (this.#terminatedBy !== undefined) return;
    this.#terminatedBy = reason;
    this.#terminate?.(reason);
  }

  get terminatedBy(): string | undefined {
    return this.#terminatedBy;
  }
}
