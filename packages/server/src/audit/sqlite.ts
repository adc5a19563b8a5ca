/**
 * The SQLite audit log: its own append-only file (DESIGN §3), next to the backend's (WAL, one
 * owning process via `locking_mode=EXCLUSIVE`; file 0600). Triggers refuse UPDATE and DELETE
 * on the events table. Indexed by time, and by type, user and device (actor's and subject's)
 * then time. Tested by the suite in `test/support/audit-conformance.ts` (`sqlite.test.ts`) and the crash test
 * in `test/audit/`.
 *
 * Durability with group commit (`group-commit.ts`): the events of one tick (or of the time
 * the previous batch took) are inserted in one transaction, then the WAL file is flushed
 * with one `fdatasync` on libuv's thread pool, and only then do their `emit` calls resolve.
 * SQLite runs with `synchronous=NORMAL`: it writes the commit's WAL frames without syncing
 * them (we do, off the event loop) and still syncs the WAL before each checkpoint and the
 * database after it, so an acknowledged event survives a crash of the process and of the
 * machine. The event loop is held only for one batch's inserts, never for a disk flush.
 *
 * @example
 *   const audit = await SqliteAuditLog.open({ path: '/var/lib/warden/audit.sqlite' });
 */
import { closeSync, fdatasync, mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import { type AuditEvent, type AuditEventInput, auditCode, isWardenError, WardenError } from '@warden/api';
import Database from 'better-sqlite3';
import { type Clock, systemClock } from '../clock';
import { GroupCommit } from './group-commit';
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

export const AUDIT_SCHEMA_VERSION = 1;
const DB_QUERY_CODE = auditCode('db.query', true)!;

const SCHEMA_V1 = `
CREATE TABLE events (
  seq INTEGER PRIMARY KEY,
  id TEXT NOT NULL UNIQUE,
  time INTEGER NOT NULL,
  type TEXT NOT NULL,
  code TEXT NOT NULL,
  success INTEGER NOT NULL,
  user TEXT,
  device TEXT,
  subject_device TEXT,
  data TEXT NOT NULL
);
CREATE INDEX events_time ON events (time, seq);
CREATE INDEX events_type_time ON events (type, time, seq);
CREATE INDEX events_user_time ON events (user, time, seq) WHERE user IS NOT NULL;
CREATE INDEX events_device_time ON events (device, time, seq) WHERE device IS NOT NULL;
CREATE INDEX events_subject_device_time ON events (subject_device, time, seq) WHERE subject_device IS NOT NULL;
CREATE TRIGGER events_no_update BEFORE UPDATE ON events BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER events_no_delete BEFORE DELETE ON events BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
`;

function openError(path: string, err: unknown): WardenError {
  if (isWardenError(err)) return err;
  const code = String((err as { code?: unknown }).code);
  if (code === 'SQLITE_BUSY' || code === 'SQLITE_LOCKED') {
    return new WardenError(
      'WARDEN_ERR_BAD_CONFIG',
      `the audit database ${path} is in use by another process`,
    );
  }
  if (
    code === 'SQLITE_NOTADB' ||
    code === 'SQLITE_CORRUPT' ||
    code === 'SQLITE_CANTOPEN' ||
    code === 'EACCES'
  ) {
    return new WardenError('WARDEN_ERR_BAD_CONFIG', `cannot open the audit database ${path} (${code})`);
  }
  return new WardenError('WARDEN_ERR_INTERNAL', `cannot open the audit database ${path}`);
}

type Row = [string, number, string, string, number, string | null, string | null, string | null, string];

/** Flushes a file's data to disk on the thread pool. */
function syncData(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fdatasync(fd, (e) => (e ? reject(e) : resolve())));
}

export interface SqliteAuditLogOptions {
  path: string;
  clock?: Clock;
  /** Most events per transaction (default 512). */
  maxBatch?: number;
  /** Most events waiting to be written before `emit` waits for room (default 8192). */
  maxQueued?: number;
  /** How long bulk events (statements) may gather before their commit (`GroupCommit`'s `bulkIntervalMs`). */
  bulkIntervalMs?: number;
}

export class SqliteAuditLog implements AuditLog {
  readonly #db: Database.Database;
  readonly #clock: Clock;
  readonly #queries = new Map<string, Database.Statement<unknown[], { data: string }>>();
  readonly #group: GroupCommit<Row>;
  /** Our own descriptor of the WAL file, for the flush after each batch. */
  readonly #walFd: number;
  #closed = false;
  /** What `templateStatements` needs of this log. */
  readonly #statementStore: StatementStore = {
    closed: () => this.#closed,
    now: () => this.#clock.now(),
    emit: (event) => this.emit(event),
  };

  private constructor(db: Database.Database, walFd: number, opts: SqliteAuditLogOptions) {
    this.#db = db;
    this.#walFd = walFd;
    this.#clock = opts.clock ?? systemClock;
    const insert = db.prepare<Row>(
      'INSERT INTO events (id, time, type, code, success, user, device, subject_device, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
    );
    const insertAll = db.transaction((rows: readonly Row[]) => {
      for (const row of rows) insert.run(...row);
    });
    this.#group = new GroupCommit<Row>({
      commit: (rows) => {
        insertAll(rows);
        return syncData(walFd);
      },
      ...(opts.maxBatch ? { maxBatch: opts.maxBatch } : {}),
      ...(opts.maxQueued ? { maxQueued: opts.maxQueued } : {}),
      ...(opts.bulkIntervalMs ? { bulkIntervalMs: opts.bulkIntervalMs } : {}),
    });
  }

  /** Opens (creating if needed: file 0600, directories 0700) the audit database at `path`. */
  static async open(opts: SqliteAuditLogOptions): Promise<SqliteAuditLog> {
    if (typeof opts?.path !== 'string' || opts.path === '') {
      throw new WardenError('WARDEN_ERR_BAD_PARAMETER', 'path must name the audit database file');
    }
    let db: Database.Database | undefined;
    let walFd: number | undefined;
    try {
      mkdirSync(dirname(opts.path), { recursive: true, mode: 0o700 });
      try {
        closeSync(openSync(opts.path, 'wx', 0o600));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      db = new Database(opts.path);
      db.pragma('busy_timeout = 2000');
      db.pragma('locking_mode = EXCLUSIVE');
      if (db.pragma('journal_mode = WAL', { simple: true }) !== 'wal') {
        throw new WardenError('WARDEN_ERR_INTERNAL', `cannot use WAL mode for ${opts.path}`);
      }
      // Commits are flushed by us after each batch (see the header); checkpoints sync as usual.
      db.pragma('synchronous = NORMAL');
      db.pragma('trusted_schema = OFF');
      migrate(db, opts.path);
      // SQLite keeps the WAL file (same inode) while it holds the exclusive lock; it never
      // places POSIX locks on it, so a second descriptor cannot disturb SQLite's own locks.
      walFd = openSync(`${opts.path}-wal`, 'r+');
      return new SqliteAuditLog(db, walFd, opts);
    } catch (err) {
      if (walFd !== undefined) closeSync(walFd);
      db?.close();
      throw openError(opts.path, err);
    }
  }

  /** Resolves with the stored event once it is on disk (see the header). */
  async emit(input: AuditEventInput): Promise<AuditEvent> {
    this.#assertOpen();
    const { event, timeMs } = prepareAuditEvent(input, this.#clock.now());
    const { device, subjectDevice } = deviceIdsOf(event);
    await this.#group.add(
      [
        event.id,
        timeMs,
        event.type,
        event.code,
        event.success ? 1 : 0,
        event.user ?? null,
        device ?? null,
        subjectDevice ?? null,
        JSON.stringify(event),
      ],
      groupOptions(event.type),
    );
    return event;
  }

  /**
   * A session's `db.query` events without the per-event work of `emit`: the shared fields are
   * checked and serialised once (`DbQueryTemplate`); the same group commit, queue bound and
   * durability. A statement the template will not take goes through `emit`.
   */
  statements(base: AuditStatementBase): AuditStatementWriter | undefined {
    const template = DbQueryTemplate.for(base);
    if (!template) return undefined;
    const user = template.user ?? null;
    const device = template.device ?? null;
    return templateStatements(base, template, this.#statementStore, (p, done) =>
      this.#group.push(
        [p.id, p.timeMs, 'db.query', DB_QUERY_CODE, 1, user, device, null, p.json],
        true,
        done,
      ),
    );
  }

  async search(query?: AuditQuery): Promise<AuditEvent[]> {
    this.#assertOpen();
    const q = normalizeQuery(query);
    const { sql, params } = buildSearch(q);
    let stmt = this.#queries.get(sql);
    if (!stmt) {
      stmt = this.#db.prepare<unknown[], { data: string }>(sql);
      this.#queries.set(sql, stmt);
    }
    return stmt.all(...params).map((row) => JSON.parse(row.data) as AuditEvent);
  }

  /** The SQL a query runs, with its parameters; exposed for the index tests. */
  static searchSql(query?: AuditQuery): { sql: string; params: unknown[] } {
    return buildSearch(normalizeQuery(query));
  }

  /** Writes what was already accepted, then closes. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    try {
      await this.#group.close();
    } finally {
      this.#db.close();
      closeSync(this.#walFd);
    }
  }

  #assertOpen(): void {
    if (this.#closed) throw auditClosedError();
  }
}

function buildSearch(q: NormalizedQuery): { sql: string; params: unknown[] } {
  const where: string[] = [];
  const params: unknown[] = [];
  if (q.fromMs !== undefined) {
    where.push('time >= ?');
    params.push(q.fromMs);
  }
  if (q.toMs !== undefined) {
    where.push('time < ?');
    params.push(q.toMs);
  }
  if (q.types) {
    where.push(`type IN (${q.types.map(() => '?').join(', ')})`);
    params.push(...q.types);
  }
  if (q.user !== undefined) {
    where.push('user = ?');
    params.push(q.user);
  }
  if (q.device !== undefined) {
    where.push('(device = ? OR subject_device = ?)');
    params.push(q.device, q.device);
  }
  const dir = q.order === 'asc' ? 'ASC' : 'DESC';
  const filter = where.length > 0 ? ` WHERE ${where.join(' AND ')}` : '';
  params.push(q.limit);
  return { sql: `SELECT data FROM events${filter} ORDER BY time ${dir}, seq ${dir} LIMIT ?`, params };
}

function migrate(db: Database.Database, path: string): void {
  db.transaction(() => {
    db.exec('CREATE TABLE IF NOT EXISTS meta (name TEXT NOT NULL PRIMARY KEY, value INTEGER NOT NULL)');
    const version =
      db.prepare<[], { value: number }>("SELECT value FROM meta WHERE name = 'schema_version'").get()
        ?.value ?? 0;
    if (version > AUDIT_SCHEMA_VERSION) {
      throw new WardenError(
        'WARDEN_ERR_BAD_CONFIG',
        `${path} has audit schema version ${version}, newer than this warden supports (${AUDIT_SCHEMA_VERSION}); upgrade warden`,
      );
    }
    if (version < 1) {
      db.exec(SCHEMA_V1);
      db.prepare("INSERT INTO meta (name, value) VALUES ('schema_version', 1)").run();
    }
  }).immediate();
}
