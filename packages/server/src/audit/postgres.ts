/**
 * The PostgreSQL audit log: the audit store for clusters on the PostgreSQL backend (DESIGN §3),
 * shared by every replica. Table `audit_events` in the configured schema (default `warden`,
 * next to the backend's tables; version in `audit_meta`), indexed like the SQLite one: by
 * time, and by type, user and device (actor's and subject's) then time. Triggers refuse
 * UPDATE, DELETE and TRUNCATE. Validation, scrubbing and query checks are the shared code in
 * `prepare.ts`.
 *
 * Group commit (`group-commit.ts`): the events of one tick, or of the time the previous batch
 * took, go in as one INSERT (one transaction, one WAL flush), and each `emit` resolves once
 * its batch is committed. A batch is safe to retry after a lost connection (each event's id
 * is unique and a repeated insert is ignored), so it is retried like the backend's idempotent
 * writes. When the table refuses a row of a batch (a data error, a constraint, an index entry
 * too large, a trigger's RAISE: `rowLevel`), the batch is written again in one transaction with
 * a savepoint per half, halving the refused parts until the refused rows are found (about
 * 2·log2(n) statements for one bad row): only their writers fail, the rest of the batch is
 * durable. Failures of the whole store (a full disk, lost privileges) still fail the batch.
 * A database session's statements take the SQLite log's fast path (`statements`: serialised
 * from a per-session template, a callback per statement, the same batches). Event times come
 * from this replica's clock, as with every AuditLog; searches order by time, then by insertion.
 * Tested by the shared suite in `test/support/audit-conformance.ts` against a real server (`test/postgres/`).
 *
 * @example
 *   const audit = await PostgresAuditLog.open({ connString: 'postgres://warden@db/warden', passwordFile: '/etc/warden/db-password' });
 */
import { type AuditEvent, type AuditEventInput, auditCode, WardenError } from '@warden/api';
import type pg from 'pg';
import {
  migrateSchema,
  POSTGRES_DEFAULT_SCHEMA,
  type PostgresConnectionOptions,
  PostgresPool,
  resolveConnection,
  sqlState,
} from '../backend';
import { type Clock, systemClock } from '../clock';
import type { Logger } from '../log';
import { type CommitFailures, GroupCommit } from './group-commit';
import {
  auditClosedError,
  DbQueryTemplate,
  deviceIdsOf,
  groupOptions,
  type NormalizedQuery,
  normalizeQuery,
  prepareAuditEvent,
  type StatementStore,
  templateStatements,
} from './prepare';
import type { AuditLog, AuditQuery, AuditStatementBase, AuditStatementWriter } from './types';

export const POSTGRES_AUDIT_SCHEMA_VERSION = 1;
const DB_QUERY_CODE = auditCode('db.query', true)!;

export interface PostgresAuditLogOptions extends PostgresConnectionOptions {
  /** The PostgreSQL schema holding the table; created if missing (default `warden`). */
  schema?: string;
  /** Stamps event times (default: the system clock). */
  clock?: Clock;
  logger?: Logger;
}

function auditV1(q: string): string {
  return `
CREATE TABLE ${q}.audit_events (
  seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  id text NOT NULL UNIQUE,
  time bigint NOT NULL,
  type text NOT NULL,
  code text NOT NULL,
  success boolean NOT NULL,
  user_name text,
  device text,
  subject_device text,
  data text NOT NULL
);
CREATE INDEX audit_events_time ON ${q}.audit_events (time, seq);
CREATE INDEX audit_events_type_time ON ${q}.audit_events (type, time, seq);
CREATE INDEX audit_events_user_time ON ${q}.audit_events (user_name, time, seq) WHERE user_name IS NOT NULL;
CREATE INDEX audit_events_device_time ON ${q}.audit_events (device, time, seq) WHERE device IS NOT NULL;
CREATE INDEX audit_events_subject_device_time ON ${q}.audit_events (subject_device, time, seq)
  WHERE subject_device IS NOT NULL;
CREATE FUNCTION ${q}.audit_append_only() RETURNS trigger LANGUAGE plpgsql
  SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  RAISE EXCEPTION 'the audit log is append-only' USING ERRCODE = '42501';
END $$;
CREATE TRIGGER audit_events_no_change BEFORE UPDATE OR DELETE ON ${q}.audit_events
  FOR EACH ROW EXECUTE FUNCTION ${q}.audit_append_only();
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON ${q}.audit_events
  FOR EACH STATEMENT EXECUTE FUNCTION ${q}.audit_append_only();
`;
}

/**
 * PostgreSQL text cannot hold NUL: index columns store it as U+FFFD, and searches map their
 * parameter the same way (the event itself is stored as JSON, where NUL is escaped).
 */
function indexable(value: string | undefined): string | null {
  return value === undefined ? null : value.replaceAll('\0', '\uFFFD');
}

interface Row {
  id: string;
  time: number;
  type: string;
  code: string;
  success: boolean;
  user: string | null;
  device: string | null;
  subjectDevice: string | null;
  data: string;
}

/**
 * SQLSTATE classes that a statement gets for what one row holds, not for the store as a whole:
 * data exception (22), integrity constraint violation (23), program limit exceeded (54: an
 * index entry too large), PL/pgSQL RAISE (P0: a trigger refusing the row).
 */
const ROW_LEVEL_CLASSES = new Set(['22', '23', '54', 'P0']);

function rowLevel(err: unknown): boolean {
  return ROW_LEVEL_CLASSES.has(sqlState(err)?.slice(0, 2) ?? '');
}

export class PostgresAuditLog implements AuditLog {
  readonly #pool: PostgresPool;
  readonly #clock: Clock;
  readonly #q: string;
  readonly #logger: Logger | undefined;
  readonly #group: GroupCommit<Row>;
  #closed = false;
  /** What `templateStatements` needs of this log. */
  readonly #statementStore: StatementStore = {
    closed: () => this.#closed,
    now: () => this.#clock.now(),
    emit: (event) => this.emit(event),
  };

  private constructor(pool: PostgresPool, clock: Clock, q: string, logger: Logger | undefined) {
    this.#pool = pool;
    this.#clock = clock;
    this.#q = q;
    this.#logger = logger;
    this.#group = new GroupCommit<Row>({ commit: (rows) => this.#insert(rows) });
  }

  /** Connects and creates or migrates the table (under an advisory lock: replicas may start together). */
  static async open(opts: PostgresAuditLogOptions): Promise<PostgresAuditLog> {
    if (opts === null || typeof opts !== 'object') {
      throw new WardenError('WARDEN_ERR_BAD_PARAMETER', 'PostgreSQL audit log options are required');
    }
    const schema = opts.schema ?? POSTGRES_DEFAULT_SCHEMA;
    const pool = await PostgresPool.create(resolveConnection(opts), {
      clock: opts.clock,
      logger: opts.logger,
      what: 'PostgreSQL audit log',
    });
    try {
      await migrateSchema(pool, {
        schema,
        metaTable: 'audit_meta',
        versionName: 'schema_version',
        what: 'audit log',
        steps: [auditV1(`"${schema}"`)],
      });
    } catch (err) {
      await pool.close();
      throw err;
    }
    return new PostgresAuditLog(pool, opts.clock ?? systemClock, `"${schema}"`, opts.logger);
  }

  /** Resolves with the stored event once its batch is committed (see the header). */
  async emit(input: AuditEventInput): Promise<AuditEvent> {
    this.#assertOpen();
    const { event, timeMs } = prepareAuditEvent(input, this.#clock.now());
    const { device, subjectDevice } = deviceIdsOf(event);
    await this.#group.add(
      {
        id: event.id,
        time: timeMs,
        type: event.type,
        code: event.code,
        success: event.success,
        user: indexable(event.user),
        device: indexable(device),
        subjectDevice: indexable(subjectDevice),
        data: JSON.stringify(event),
      },
      groupOptions(event.type),
    );
    return event;
  }

  /**
   * A session's `db.query` events as the SQLite log takes them (`DbQueryTemplate`: the shared
   * fields checked and serialised once, a callback instead of a promise per statement), into
   * the same group commit; a statement the template will not take goes through `emit`.
   */
  statements(base: AuditStatementBase): AuditStatementWriter | undefined {
    const template = DbQueryTemplate.for(base);
    if (!template) return undefined;
    const user = indexable(template.user);
    const device = indexable(template.device);
    return templateStatements(base, template, this.#statementStore, (p, done) =>
      this.#group.push(
        {
          id: p.id,
          time: p.timeMs,
          type: 'db.query',
          code: DB_QUERY_CODE,
          success: true,
          user,
          device,
          subjectDevice: null,
          data: p.json,
        },
        true,
        done,
      ),
    );
  }

  /**
   * One statement (one transaction, one WAL flush) for the whole batch, in emission order; if
   * the table refuses a row, the batch again with the refused rows left out (see the header).
   */
  async #insert(rows: readonly Row[]): Promise<CommitFailures | undefined> {
    return this.#pool.run('audit emit', { idempotent: true }, async (client) => {
      try {
        await client.query(this.#batchStatement(rows));
        return undefined;
      } catch (err) {
        if (rows.length === 1 || !rowLevel(err)) throw err;
      }
      return this.#isolate(client, rows);
    });
  }

  /**
   * Writes the rows of a batch the table refused, in one transaction: each part under a
   * savepoint, a refused part halved until single rows are left; returns the refused rows.
   * Any other failure rolls everything back and fails the batch (the pool may retry it).
   */
  async #isolate(client: pg.PoolClient, rows: readonly Row[]): Promise<CommitFailures> {
    const failures = new Map<number, unknown>();
    const attempt = async (from: number, to: number): Promise<void> => {
      await client.query('SAVEPOINT audit_rows');
      try {
        await client.query(this.#batchStatement(rows.slice(from, to)));
        await client.query('RELEASE SAVEPOINT audit_rows');
        return;
      } catch (err) {
        if (!rowLevel(err)) throw err;
        await client.query('ROLLBACK TO SAVEPOINT audit_rows; RELEASE SAVEPOINT audit_rows');
        if (to - from === 1) {
          failures.set(from, this.#rowError(err, rows[from]!));
          return;
        }
      }
      const mid = (from + to) >>> 1;
      await attempt(from, mid);
      await attempt(mid, to);
    };
    await client.query('BEGIN');
    try {
      // The whole batch was refused already: start with its halves.
      const mid = rows.length >>> 1;
      await attempt(0, mid);
      await attempt(mid, rows.length);
      await client.query('COMMIT');
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    }
    return failures;
  }

  /** What the writer of a refused row gets (the row's content stays out of the log). */
  #rowError(err: unknown, row: Row): WardenError {
    const state = sqlState(err) ?? 'none';
    this.#logger?.error(
      { op: 'audit emit', sqlstate: state, event_id: row.id, event_type: row.type },
      'PostgreSQL audit log: the table refused an event',
    );
    return new WardenError(
      'WARDEN_ERR_INTERNAL',
      `PostgreSQL audit log: PostgreSQL refused the ${row.type} event (SQLSTATE ${state})`,
    );
  }

  #batchStatement(rows: readonly Row[]): pg.QueryConfig {
    const column = <K extends keyof Row>(k: K) => rows.map((r) => r[k]);
    return {
      name: `warden-${this.#q}-audit-emit-batch`,
      text: `INSERT INTO ${this.#q}.audit_events
               (id, time, type, code, success, user_name, device, subject_device, data)
             SELECT id, time, type, code, success, user_name, device, subject_device, data
               FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::boolean[],
                           $6::text[], $7::text[], $8::text[], $9::text[]) WITH ORDINALITY
                    AS u(id, time, type, code, success, user_name, device, subject_device, data, n)
              ORDER BY n
             ON CONFLICT (id) DO NOTHING`,
      values: [
        column('id'),
        column('time'),
        column('type'),
        column('code'),
        column('success'),
        column('user'),
        column('device'),
        column('subjectDevice'),
        column('data'),
      ],
    };
  }

  async search(query?: AuditQuery): Promise<AuditEvent[]> {
    this.#assertOpen();
    const { text, values } = buildSearch(this.#q, normalizeQuery(query));
    const rows = await this.#pool.query<{ data: string }>(
      'audit search',
      { idempotent: true },
      { text, values },
    );
    return rows.map((row) => JSON.parse(row.data) as AuditEvent);
  }

  /** Writes what was already accepted, then closes. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    try {
      await this.#group.close();
    } finally {
      await this.#pool.close();
    }
  }

  #assertOpen(): void {
    if (this.#closed) throw auditClosedError();
  }
}

function buildSearch(q: string, n: NormalizedQuery): { text: string; values: unknown[] } {
  const where: string[] = [];
  const values: unknown[] = [];
  const param = (v: unknown) => {
    values.push(v);
    return `$${values.length}`;
  };
  if (n.fromMs !== undefined) where.push(`time >= ${param(n.fromMs)}`);
  if (n.toMs !== undefined) where.push(`time < ${param(n.toMs)}`);
  if (n.types) where.push(`type = ANY(${param(n.types)}::text[])`);
  if (n.user !== undefined) where.push(`user_name = ${param(indexable(n.user))}`);
  if (n.device !== undefined) {
    const p = param(indexable(n.device));
    where.push(`(device = ${p} OR subject_device = ${p})`);
  }
  const dir = n.order === 'asc' ? 'ASC' : 'DESC';
  const filter = where.length > 0 ? ` WHERE ${where.join(' AND ')}` : '';
  return {
    text: `SELECT data FROM ${q}.audit_events${filter} ORDER BY time ${dir}, seq ${dir} LIMIT ${param(n.limit)}`,
    values,
  };
}
