/**
 * The SQLite audit log: its own append-only file (DESIGN §3), next to the backend's, with the
 * same durability choices (WAL, `synchronous=FULL`, one owning process via
 * `locking_mode=EXCLUSIVE`; file 0600). Triggers refuse UPDATE and DELETE on the events
 * table. Indexed by time, and by type, user and device (actor's and subject's) then time.
 * Tested by the suite in `conformance.ts` (`sqlite.test.ts`).
 *
 * @example
 *   const audit = await SqliteAuditLog.open({ path: '/var/lib/warden/audit.sqlite' });
 */
import { closeSync, mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import { type AuditEvent, type AuditEventInput, isWardenError, WardenError } from '@warden/api';
import Database from 'better-sqlite3';
import { type Clock, systemClock } from '../clock';
import { deviceIdsOf, type NormalizedQuery, normalizeQuery, prepareAuditEvent } from './prepare';
import type { AuditLog, AuditQuery } from './types';

export const AUDIT_SCHEMA_VERSION = 1;

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

export class SqliteAuditLog implements AuditLog {
  readonly #db: Database.Database;
  readonly #clock: Clock;
  readonly #insert: Database.Statement<
    [string, number, string, string, number, string | null, string | null, string | null, string]
  >;
  readonly #queries = new Map<string, Database.Statement<unknown[], { data: string }>>();
  #closed = false;

  private constructor(db: Database.Database, clock: Clock) {
    this.#db = db;
    this.#clock = clock;
    this.#insert = db.prepare(
      'INSERT INTO events (id, time, type, code, success, user, device, subject_device, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
    );
  }

  /** Opens (creating if needed: file 0600, directories 0700) the audit database at `path`. */
  static async open(opts: { path: string; clock?: Clock }): Promise<SqliteAuditLog> {
    if (typeof opts?.path !== 'string' || opts.path === '') {
      throw new WardenError('WARDEN_ERR_BAD_PARAMETER', 'path must name the audit database file');
    }
    let db: Database.Database | undefined;
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
      db.pragma('synchronous = FULL');
      db.pragma('trusted_schema = OFF');
      migrate(db, opts.path);
      return new SqliteAuditLog(db, opts.clock ?? systemClock);
    } catch (err) {
      db?.close();
      throw openError(opts.path, err);
    }
  }

  async emit(input: AuditEventInput): Promise<AuditEvent> {
    this.#assertOpen();
    const { event, timeMs } = prepareAuditEvent(input, this.#clock.now());
    const { device, subjectDevice } = deviceIdsOf(event);
    this.#insert.run(
      event.id,
      timeMs,
      event.type,
      event.code,
      event.success ? 1 : 0,
      event.user ?? null,
      device ?? null,
      subjectDevice ?? null,
      JSON.stringify(event),
    );
    return event;
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

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#db.close();
  }

  #assertOpen(): void {
    if (this.#closed) throw new WardenError('WARDEN_ERR_CLOSED', 'the audit log is closed');
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
