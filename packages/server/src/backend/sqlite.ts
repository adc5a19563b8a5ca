/**
 * The embedded SQLite backend (DESIGN §3), the default for `warden start`: one file, owned by
 * one process, implementing the contract in `types.ts`. Tested by the conformance suite
 * (`sqlite.test.ts`) and a SIGKILL test (`sqlite-crash.test.ts`).
 *
 * Layout (schema version 1):
 * - `items(key, value, create_rev, mod_rev, expires)`: the live key space.
 * - `events(rev, type, key, value, create_rev, expires)`: the event log, one row per revision.
 * - `meta(name, value)`: `schema_version`, `rev` (latest revision), `compacted_rev`.
 *
 * Group commit: the writes asked for in one tick of the event loop (at most `SQLITE_MAX_BATCH`) run
 * together, in call order, in one transaction with one commit and one fsync; each write runs in
 * a savepoint of its own, so a write that fails (a compare-and-swap that lost, a create of an
 * existing key) undoes only itself and the others commit. Each write's promise settles after
 * the commit. Every write updates items, appends its events and bumps `meta.rev`, so revisions
 * are gap-free and the file is consistent after any crash. Durability: WAL with
 * `synchronous=FULL`: a write is on disk (fsync'd, inside the commit, on the event loop) before
 * its promise resolves and before any reader or watcher can see it, so an acknowledged lock,
 * role or CA change survives power loss, not only a process crash. One fsync per batch, not
 * per write: a busy auth service (a device's collected data per ceremony) pays it once for all
 * the writes of a tick. The connection holds the file with `locking_mode=EXCLUSIVE`: a second
 * process cannot open it while we run, which is what lets watchers be fed in-process after
 * each commit. Order: a commit settles its writers' promises first and wakes the watchers on
 * a later macrotask, once the writers' continuations have run (`#wakeWatchers`): what a writer
 * does next (the lock API's audit event) is queued before a watcher acts on the write (the
 * session monitor ending the lock's sessions).
 *
 * TTLs: reads hide expired items at once; every batch first deletes expired keys (one delete
 * event each); a reaper timer (unref'd, stopped by close()) does the same when idle.
 * History: events older than the last `maxHistory` are compacted automatically.
 *
 * @example
 *   const backend = await SqliteBackend.open({ path: '/var/lib/warden/backend.sqlite' });
 */
import { closeSync, mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import { isWardenError, WardenError } from '@warden/api';
import Database from 'better-sqlite3';
import { type Clock, systemClock } from '../clock';
import {
  checkCompact,
  checkDelete,
  checkKey,
  checkPrefix,
  checkSwap,
  checkTxn,
  checkTxnCondition,
  checkWrite,
  DEFAULT_REAP_INTERVAL_MS,
  expiresAt,
  integerOption,
  keyError,
  prefixEnd,
} from './rules';
import type {
  Backend,
  BackendEvent,
  Item,
  RangeResult,
  TxnOp,
  Watcher,
  WatchOptions,
  WriteOptions,
} from './types';
import { type EventLog, type EventPage, Watchers } from './watcher';

export interface SqliteBackendOptions {
  /** The database file; created (mode 0600, parent directories 0700) if missing. */
  path: string;
  /** Time source for TTLs (default: the system clock). */
  clock?: Clock;
  /** Events kept for watchers; older ones are compacted automatically (default 100 000). */
  maxHistory?: number;
  /** How often the reaper deletes expired keys, in ms; 0 disables the timer (default 1000). */
  reapIntervalMs?: number;
}

export const SQLITE_SCHEMA_VERSION = 1;
export const SQLITE_DEFAULT_MAX_HISTORY = 100_000;

const SCHEMA_V1 = `
CREATE TABLE items (
  key TEXT NOT NULL PRIMARY KEY,
  value TEXT NOT NULL,
  create_rev INTEGER NOT NULL,
  mod_rev INTEGER NOT NULL,
  expires INTEGER
);
CREATE INDEX items_expires ON items (expires) WHERE expires IS NOT NULL;
CREATE TABLE events (
  rev INTEGER NOT NULL PRIMARY KEY,
  type TEXT NOT NULL CHECK (type IN ('put', 'delete')),
  key TEXT NOT NULL,
  value TEXT,
  create_rev INTEGER,
  expires INTEGER,
  CHECK ((type = 'put') = (value IS NOT NULL AND create_rev IS NOT NULL))
);
INSERT INTO meta (name, value) VALUES ('rev', 0), ('compacted_rev', 0);
`;

interface ItemRow {
  key: string;
  value: string;
  create_rev: number;
  mod_rev: number;
  expires: number | null;
}

interface EventRow {
  rev: number;
  type: 'put' | 'delete';
  key: string;
  value: string | null;
  create_rev: number | null;
  expires: number | null;
}

function toItem(row: ItemRow): Item {
  const item: Item = { key: row.key, value: row.value, createRev: row.create_rev, modRev: row.mod_rev };
  if (row.expires !== null) item.expires = row.expires;
  return item;
}

function toEvent(row: EventRow): BackendEvent {
  if (row.type === 'delete') return { type: 'delete', rev: row.rev, key: row.key };
  const item: Item = { key: row.key, value: row.value!, createRev: row.create_rev!, modRev: row.rev };
  if (row.expires !== null) item.expires = row.expires;
  return { type: 'put', rev: row.rev, item };
}

/** State of one batch's transaction; copied into the backend only after commit. */
interface Txn {
  now: number;
  rev: number;
  compactedRev: number;
  /** Expired keys the batch deleted before its writes. */
  reaped: number;
}

/** A write waiting for its batch. */
interface PendingWrite {
  fn: (txn: Txn) => unknown;
  resolve(value: unknown): void;
  reject(error: unknown): void;
}

type Outcome = { ok: true; value: unknown } | { ok: false; error: unknown };

/** Most writes in one transaction (the rest go in the next, a tick later). */
export const SQLITE_MAX_BATCH = 1024;

function openError(path: string, err: unknown): WardenError {
  const code = (err as { code?: unknown }).code;
  if (code === 'SQLITE_BUSY' || code === 'SQLITE_LOCKED') {
    return new WardenError(
      'WARDEN_ERR_BAD_CONFIG',
      `the database ${path} is in use by another process; each backend file belongs to one warden process`,
    );
  }
  if (code === 'SQLITE_NOTADB' || code === 'SQLITE_CORRUPT') {
    return new WardenError(
      'WARDEN_ERR_BAD_CONFIG',
      `${path} is not a valid Warden database (${String(code)})`,
    );
  }
  if (code === 'SQLITE_CANTOPEN' || code === 'EACCES' || code === 'ENOENT') {
    return new WardenError('WARDEN_ERR_BAD_CONFIG', `cannot open the database ${path} (${String(code)})`);
  }
  return new WardenError('WARDEN_ERR_INTERNAL', `cannot open the database ${path}`);
}

export class SqliteBackend implements Backend, EventLog {
  readonly #db: Database.Database;
  readonly #clock: Clock;
  readonly #maxHistory: number;
  readonly #watchers = new Watchers(this);
  #timer: NodeJS.Timeout | undefined;
  #rev: number;
  #compactedRev: number;
  #closed = false;
  /** Writes asked for since the last batch, in call order. */
  #queue: PendingWrite[] = [];
  #flushScheduled = false;
  #wakeScheduled = false;
  #batches = 0;
  /** The batch's transaction, and the savepoint each write runs in. */
  readonly #runBatch: (batch: readonly PendingWrite[], txn: Txn) => Outcome[];

  readonly #stmts: {
    getItem: Database.Statement<[string], ItemRow>;
    liveItem: Database.Statement<[string, number], ItemRow>;
    rangeBounded: Database.Statement<[string, string, number], ItemRow>;
    rangeOpen: Database.Statement<[string, number], ItemRow>;
    keysBounded: Database.Statement<[string, string], { key: string }>;
    keysOpen: Database.Statement<[string], { key: string }>;
    expiredKeys: Database.Statement<[number], { key: string }>;
    anyExpired: Database.Statement<[number], { one: number }>;
    putItem: Database.Statement<[string, string, number, number, number | null]>;
    deleteItem: Database.Statement<[string]>;
    putEvent: Database.Statement<[number, string, string, number, number | null]>;
    deleteEvent: Database.Statement<[number, string]>;
    eventsBounded: Database.Statement<[number, number, string, string], EventRow>;
    eventsOpen: Database.Statement<[number, number, string], EventRow>;
    compactEvents: Database.Statement<[number]>;
    setMeta: Database.Statement<[number, string]>;
  };

  private constructor(db: Database.Database, clock: Clock, maxHistory: number) {
    this.#db = db;
    this.#clock = clock;
    this.#maxHistory = maxHistory;
    const meta = (name: string): number => {
      const row = db.prepare<[string], { value: number }>('SELECT value FROM meta WHERE name = ?').get(name);
      if (!row) throw new WardenError('WARDEN_ERR_INTERNAL', `the database has no meta row ${name}`);
      return row.value;
    };
    this.#rev = meta('rev');
    this.#compactedRev = meta('compacted_rev');
    const cols = 'key, value, create_rev, mod_rev, expires';
    const live = '(expires IS NULL OR expires > ?)';
    const ev = 'rev, type, key, value, create_rev, expires';
    this.#stmts = {
      getItem: db.prepare(`SELECT ${cols} FROM items WHERE key = ?`),
      liveItem: db.prepare(`SELECT ${cols} FROM items WHERE key = ? AND ${live}`),
      rangeBounded: db.prepare(
        `SELECT ${cols} FROM items WHERE key >= ? AND key < ? AND ${live} ORDER BY key`,
      ),
      rangeOpen: db.prepare(`SELECT ${cols} FROM items WHERE key >= ? AND ${live} ORDER BY key`),
      keysBounded: db.prepare('SELECT key FROM items WHERE key >= ? AND key < ? ORDER BY key'),
      keysOpen: db.prepare('SELECT key FROM items WHERE key >= ? ORDER BY key'),
      expiredKeys: db.prepare(
        'SELECT key FROM items WHERE expires IS NOT NULL AND expires <= ? ORDER BY key',
      ),
      anyExpired: db.prepare('SELECT 1 AS one FROM items WHERE expires IS NOT NULL AND expires <= ? LIMIT 1'),
      putItem: db.prepare(`INSERT OR REPLACE INTO items (${cols}) VALUES (?, ?, ?, ?, ?)`),
      deleteItem: db.prepare('DELETE FROM items WHERE key = ?'),
      putEvent: db.prepare(`INSERT INTO events (${ev}) VALUES (?, 'put', ?, ?, ?, ?)`),
      deleteEvent: db.prepare(`INSERT INTO events (${ev}) VALUES (?, 'delete', ?, NULL, NULL, NULL)`),
      eventsBounded: db.prepare(
        `SELECT ${ev} FROM events WHERE rev > ? AND rev <= ? AND key >= ? AND key < ? ORDER BY rev`,
      ),
      eventsOpen: db.prepare(`SELECT ${ev} FROM events WHERE rev > ? AND rev <= ? AND key >= ? ORDER BY rev`),
      compactEvents: db.prepare('DELETE FROM events WHERE rev <= ?'),
      setMeta: db.prepare('UPDATE meta SET value = ? WHERE name = ?'),
    };
    const inSavepoint = db.transaction((fn: (txn: Txn) => unknown, txn: Txn) => fn(txn));
    this.#runBatch = db.transaction((batch: readonly PendingWrite[], txn: Txn): Outcome[] => {
      // Expired keys go first (the writes see them as absent; their delete events come first).
      for (const { key } of this.#stmts.expiredKeys.all(txn.now)) this.#deleteItem(txn, key);
      txn.reaped = txn.rev - this.#rev;
      const outcomes = batch.map(({ fn }): Outcome => {
        const before = txn.rev;
        try {
          return { ok: true, value: inSavepoint(fn, txn) };
        } catch (error) {
          txn.rev = before; // its savepoint is rolled back: the revisions it took are free again
          return { ok: false, error };
        }
      });
      if (txn.rev !== this.#rev) {
        this.#stmts.setMeta.run(txn.rev, 'rev');
        const slack = Math.max(1, Math.ceil(this.#maxHistory / 8));
        if (txn.rev - txn.compactedRev >= this.#maxHistory + slack) {
          txn.compactedRev = txn.rev - this.#maxHistory;
          this.#stmts.compactEvents.run(txn.compactedRev);
          this.#stmts.setMeta.run(txn.compactedRev, 'compacted_rev');
        }
      }
      return outcomes;
    });
  }

  /** Write transactions committed so far (each with one fsync; for tests and metrics). */
  get batches(): number {
    return this.#batches;
  }

  /** Opens (creating if needed) the database at `path` and starts the reaper. */
  static async open(opts: SqliteBackendOptions): Promise<SqliteBackend> {
    if (typeof opts?.path !== 'string' || opts.path === '') {
      throw new WardenError('WARDEN_ERR_BAD_PARAMETER', 'path must name the database file');
    }
    const maxHistory = integerOption(opts.maxHistory, SQLITE_DEFAULT_MAX_HISTORY, 'maxHistory', 1);
    const reapIntervalMs = integerOption(opts.reapIntervalMs, DEFAULT_REAP_INTERVAL_MS, 'reapIntervalMs', 0);
    const db = openDatabase(opts.path);
    let backend: SqliteBackend;
    try {
      backend = new SqliteBackend(db, opts.clock ?? systemClock, maxHistory);
    } catch (err) {
      db.close();
      throw isWardenError(err) ? err : openError(opts.path, err);
    }
    if (reapIntervalMs > 0) backend.#startReaper(reapIntervalMs);
    return backend;
  }

  async get(key: string): Promise<Item | undefined> {
    this.#assertOpen();
    checkKey(key);
    const row = this.#stmts.liveItem.get(key, this.#clock.now());
    return row && toItem(row);
  }

  async range(prefix: string): Promise<RangeResult> {
    this.#assertOpen();
    checkPrefix(prefix);
    const now = this.#clock.now();
    const end = prefixEnd(prefix);
    const rows =
      end === undefined
        ? this.#stmts.rangeOpen.all(prefix, now)
        : this.#stmts.rangeBounded.all(prefix, end, now);
    return { items: rows.map(toItem), rev: this.#rev };
  }

  async create(key: string, value: string, opts?: WriteOptions): Promise<Item> {
    this.#assertOpen();
    checkWrite(key, value, opts);
    return this.#write((txn) => {
      if (this.#stmts.getItem.get(key)) throw keyError.exists(key);
      return this.#putItem(txn, key, value, undefined, expiresAt(txn.now, opts));
    });
  }

  async put(key: string, value: string, opts?: WriteOptions): Promise<Item> {
    this.#assertOpen();
    checkWrite(key, value, opts);
    return this.#write((txn) =>
      this.#putItem(txn, key, value, this.#stmts.getItem.get(key)?.create_rev, expiresAt(txn.now, opts)),
    );
  }

  async compareAndSwap(
    key: string,
    expectedModRev: number,
    value: string,
    opts?: WriteOptions,
  ): Promise<Item> {
    this.#assertOpen();
    checkSwap(key, expectedModRev, value, opts);
    return this.#write((txn) => {
      const prev = this.#stmts.getItem.get(key);
      if (!prev) throw keyError.missing(key);
      if (prev.mod_rev !== expectedModRev) {
        throw keyError.changed(key);
      }
      return this.#putItem(txn, key, value, prev.create_rev, expiresAt(txn.now, opts));
    });
  }

  async delete(key: string, opts?: { expectedModRev?: number }): Promise<boolean> {
    this.#assertOpen();
    const expected = checkDelete(key, opts);
    return this.#write((txn) => {
      const prev = this.#stmts.getItem.get(key);
      if (!prev) return false;
      if (expected !== undefined && prev.mod_rev !== expected) {
        throw keyError.changed(key);
      }
      this.#deleteItem(txn, key);
      return true;
    });
  }

  /** In one savepoint, as every write: the first failed condition undoes the operations before it. */
  async txn(ops: readonly TxnOp[]): Promise<(Item | boolean)[]> {
    this.#assertOpen();
    checkTxn(ops);
    return this.#write((txn) =>
      ops.map((op) => {
        const prev = this.#stmts.getItem.get(op.key);
        checkTxnCondition(op, prev?.mod_rev);
        if (op.type !== 'delete')
          return this.#putItem(txn, op.key, op.value, prev?.create_rev, expiresAt(txn.now, op.opts));
        if (!prev) return false;
        this.#deleteItem(txn, op.key);
        return true;
      }),
    );
  }

  async deleteRange(prefix: string): Promise<number> {
    this.#assertOpen();
    checkPrefix(prefix);
    return this.#write((txn) => {
      const end = prefixEnd(prefix);
      const rows =
        end === undefined ? this.#stmts.keysOpen.all(prefix) : this.#stmts.keysBounded.all(prefix, end);
      for (const { key } of rows) this.#deleteItem(txn, key);
      return rows.length;
    });
  }

  watch(prefix: string, opts: WatchOptions): Watcher {
    return this.#watchers.open(prefix, opts);
  }

  async currentRev(): Promise<number> {
    this.#assertOpen();
    return this.#rev;
  }

  async compact(rev: number): Promise<void> {
    this.#assertOpen();
    checkCompact(rev, this.#rev);
    if (rev <= this.#compactedRev) return;
    this.#db.transaction(() => {
      this.#stmts.compactEvents.run(rev);
      this.#stmts.setMeta.run(rev, 'compacted_rev');
    })();
    this.#compactedRev = rev;
  }

  /** Deletes every expired key now (one delete event each); returns how many. */
  async reapExpired(): Promise<number> {
    return this.#write((txn) => txn.reaped);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    // Writes already asked for are committed (or fail) before the file closes.
    this.#flush();
    this.#closed = true;
    if (this.#timer) clearInterval(this.#timer);
    this.#watchers.closeAll();
    this.#db.close();
  }

  /** EventLog for watchers. */
  readAfter(prefix: string, afterRev: number, maxScan: number): EventPage {
    this.#assertOpen();
    if (afterRev < this.#compactedRev) {
      throw new WardenError(
        'WARDEN_ERR_COMPACTED',
        `revision ${afterRev} was compacted (oldest available: ${this.#compactedRev}); list again and watch from the new revision`,
        { compactedRev: this.#compactedRev },
      );
    }
    const through = Math.min(this.#rev, afterRev + maxScan);
    const end = prefixEnd(prefix);
    const rows =
      end === undefined
        ? this.#stmts.eventsOpen.all(afterRev, through, prefix)
        : this.#stmts.eventsBounded.all(afterRev, through, prefix, end);
    return { events: rows.map(toEvent), scannedThrough: through, head: this.#rev };
  }

  #assertOpen(): void {
    if (this.#closed) throw new WardenError('WARDEN_ERR_CLOSED', 'the backend is closed');
  }

  #startReaper(intervalMs: number): void {
    this.#timer = setInterval(() => {
      if (this.#closed || !this.#stmts.anyExpired.get(this.#clock.now())) return;
      this.#write(() => undefined).catch(() => {
        // Reads hide expired items anyway; a failing disk surfaces on the next write.
      });
    }, intervalMs);
    this.#timer.unref();
  }

  /**
   * Queues one write for this tick's batch (see the file comment); settles after the batch's
   * commit with `fn`'s result or error. `fn` runs in the batch's transaction, in its own
   * savepoint: if it fails, only its own changes are undone.
   */
  #write<R>(fn: (txn: Txn) => R): Promise<R> {
    this.#assertOpen();
    return new Promise<R>((resolve, reject) => {
      this.#queue.push({ fn, resolve: resolve as (value: unknown) => void, reject });
      if (!this.#flushScheduled) {
        this.#flushScheduled = true;
        setImmediate(() => {
          this.#flushScheduled = false;
          this.#flush();
        });
      }
    });
  }

  /** Commits the queued writes, a batch at a time; watchers wake after them (`#wakeWatchers`). */
  #flush(): void {
    while (this.#queue.length > 0) {
      const batch = this.#queue.splice(0, SQLITE_MAX_BATCH);
      if (this.#closed) {
        const closed = new WardenError('WARDEN_ERR_CLOSED', 'the backend is closed');
        for (const w of batch) w.reject(closed);
        continue;
      }
      const txn: Txn = {
        now: this.#clock.now(),
        rev: this.#rev,
        compactedRev: this.#compactedRev,
        reaped: 0,
      };
      let outcomes: Outcome[];
      try {
        outcomes = this.#runBatch(batch, txn);
        this.#batches++;
      } catch (error) {
        // The commit itself failed (a full or failing disk): nothing of the batch was written.
        for (const w of batch) w.reject(error);
        continue;
      }
      if (txn.rev !== this.#rev) {
        this.#rev = txn.rev;
        this.#compactedRev = txn.compactedRev;
        this.#wakeWatchers();
      }
      batch.forEach((w, i) => {
        const o = outcomes[i]!;
        if (o.ok) w.resolve(o.value);
        else w.reject(o.error);
      });
    }
  }

  /**
   * Wakes the watchers after a commit, on a macrotask queued once the writers' continuations
   * have run (their microtasks, then a tick, then `setImmediate`): a writer that goes on to
   * queue work of its own (the lock API's `lock.created` audit event, whose commit starts on
   * the audit log's own `setImmediate`) has it queued before a watcher acts on the write (the
   * session monitor's pass over the sessions the lock ends, and the audit events of those
   * ends). Without it both followed the commit in the same tick, and the pass ran first.
   * One wake for every commit until it runs.
   */
  #wakeWatchers(): void {
    if (this.#wakeScheduled) return;
    this.#wakeScheduled = true;
    queueMicrotask(() =>
      process.nextTick(() =>
        setImmediate(() => {
          this.#wakeScheduled = false;
          this.#watchers.wakeAll();
        }),
      ),
    );
  }

  #putItem(
    txn: Txn,
    key: string,
    value: string,
    createRev: number | undefined,
    expires: number | undefined,
  ): Item {
    const rev = ++txn.rev;
    const item: Item = { key, value, createRev: createRev ?? rev, modRev: rev };
    if (expires !== undefined) item.expires = expires;
    this.#stmts.putItem.run(key, value, item.createRev, rev, expires ?? null);
    this.#stmts.putEvent.run(rev, key, value, item.createRev, expires ?? null);
    return item;
  }

  #deleteItem(txn: Txn, key: string): void {
    const rev = ++txn.rev;
    this.#stmts.deleteItem.run(key);
    this.#stmts.deleteEvent.run(rev, key);
  }
}

/** Opens the file, sets the pragmas, takes the exclusive lock and migrates the schema. */
function openDatabase(path: string): Database.Database {
  let db: Database.Database;
  try {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    try {
      closeSync(openSync(path, 'wx', 0o600));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    db = new Database(path);
  } catch (err) {
    throw openError(path, err);
  }
  try {
    db.pragma('busy_timeout = 2000');
    db.pragma('locking_mode = EXCLUSIVE');
    const mode = db.pragma('journal_mode = WAL', { simple: true });
    if (mode !== 'wal')
      throw new WardenError('WARDEN_ERR_INTERNAL', `cannot use WAL mode for ${path} (got ${String(mode)})`);
    db.pragma('synchronous = FULL');
    db.pragma('trusted_schema = OFF');
    migrate(db, path);
    return db;
  } catch (err) {
    db.close();
    throw isWardenError(err) ? err : openError(path, err);
  }
}

function migrate(db: Database.Database, path: string): void {
  db.transaction(() => {
    db.exec('CREATE TABLE IF NOT EXISTS meta (name TEXT NOT NULL PRIMARY KEY, value INTEGER NOT NULL)');
    const row = db
      .prepare<[], { value: number }>("SELECT value FROM meta WHERE name = 'schema_version'")
      .get();
    const version = row?.value ?? 0;
    if (version > SQLITE_SCHEMA_VERSION) {
      throw new WardenError(
        'WARDEN_ERR_BAD_CONFIG',
        `${path} has schema version ${version}, newer than this warden supports (${SQLITE_SCHEMA_VERSION}); upgrade warden`,
      );
    }
    if (version < 1) {
      db.exec(SCHEMA_V1);
      db.prepare("INSERT INTO meta (name, value) VALUES ('schema_version', 1)").run();
    }
  }).immediate();
  const rev = db.prepare<[], { value: number }>("SELECT value FROM meta WHERE name = 'rev'").get()?.value;
  const maxEvent =
    db.prepare<[], { rev: number | null }>('SELECT max(rev) AS rev FROM events').get()?.rev ?? 0;
  if (rev === undefined || maxEvent > rev) {
    throw new WardenError('WARDEN_ERR_INTERNAL', `${path}: the event log is ahead of the revision counter`);
  }
}
