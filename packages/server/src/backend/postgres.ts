/**
 * The PostgreSQL backend (DESIGN §3): the shared store that lets several auth and proxy
 * replicas form one cluster. Implements the contract in `types.ts`; tested by the
 * conformance suite and the fault tests in `test/postgres/` against a real server.
 *
 * Writes: one PL/pgSQL call each (`postgres-schema.ts`): lock the revision counter's row,
 * reap expired keys, apply the conditional change, append the events, store the counter,
 * NOTIFY — one transaction, so revisions are gap-free and committed in revision order.
 * Serialization failures and deadlocks are retried; a connection lost mid-write is retried
 * only for idempotent writes (put, deleteRange, compact, reaping); create, compareAndSwap and
 * delete fail with WARDEN_ERR_CONNECTION saying the outcome is unknown.
 *
 * Watch across replicas: each watcher is a cursor over the `events` table
 * (`watcher.ts`). It is woken by this replica's own commits, by LISTEN/NOTIFY on a dedicated
 * connection, and by a poll of the counter every `pollIntervalMs` (the fallback when a
 * notification is lost or the LISTEN connection is down). A notification carries the
 * revision's event when its transaction made exactly one that fits (`postgres-schema.ts`,
 * version 2): this replica keeps the last `RECENT_EVENTS` of those, and a watcher whose next
 * revisions are all among them takes them from there instead of reading the table (the read
 * after every notification was a round trip per watcher between a lock's commit and the
 * sessions it ends). A replica's own write is known the same way when its revision directly
 * follows the head this replica knew before it (`ownWriteEvent`): its watchers wake on the
 * write's answer, before the notification arrives, and would otherwise each read the table
 * then (five reads, and new pool connections after a quiet spell, on the replica that writes
 * a lock). Anything else (a gap, a batch of reaped keys, a large value, a cursor
 * below a compaction this replica knows of) reads the table as before. When the database is unreachable, watchers wait and retry from their
 * cursor: a restart or failover resumes them without a reset, missing and repeating nothing.
 * Watching below the compacted revision gives WARDEN_ERR_COMPACTED. Because watchers ride
 * out outages silently, `health()` and `staleForMs()` say how stale this replica's view may
 * be: a strict locking mode must deny while that passes its bound.
 *
 * Time: TTLs are computed and compared with the database's clock (`clock_timestamp()`), never
 * the replica's, so replicas with skewed clocks agree on expiry. The `clock` option is the
 * replica's clock and only stamps `health().lastContactAt`.
 *
 * Background work (timers unref'd, stopped by close()): the reaper deletes expired keys in
 * batches, one replica at a time (advisory lock), with a delete event each; the compaction
 * job keeps about `maxHistory` events (also triggered by writes that cross the bound).
 *
 * @example
 *   const backend = await PostgresBackend.open({
 *     connString: 'postgres://warden@db.internal:5432/warden?sslmode=verify-full&sslrootcert=/etc/warden/db-ca.pem',
 *     passwordFile: '/etc/warden/db-password',
 *   });
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { WardenError } from '@warden/api';
import type pg from 'pg';
import { type Clock, systemClock } from '../clock';
import type { Logger } from '../log';
import {
  type PoolHealth,
  type PostgresConnectionOptions,
  PostgresPool,
  type RunOptions,
  resolveConnection,
} from './postgres-connection';
import { type BackendSchema, backendSchema, migrateBackend, NOTIFY_PAYLOAD_MAX } from './postgres-schema';
import {
  checkDelete,
  checkKey,
  checkPrefix,
  checkRev,
  checkSwap,
  checkTxn,
  checkWrite,
  compactPastHead,
  DEFAULT_REAP_INTERVAL_MS,
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

export interface PostgresBackendOptions extends PostgresConnectionOptions {
  /** The PostgreSQL schema holding the tables; created if missing (default `warden`). */
  schema?: string;
  /** The replica's clock: only for `health().lastContactAt`. TTLs use the database's clock. */
  clock?: Clock;
  logger?: Logger;
  /** Events kept for watchers; older ones are compacted (default 100 000). */
  maxHistory?: number;
  /** How often this replica tries to reap expired keys, in ms; 0 disables (default 1000). */
  reapIntervalMs?: number;
  /** Expired keys deleted per transaction (default 500). */
  reapBatchSize?: number;
  /** How often the revision counter is polled when no notification came, in ms (default 1000). */
  pollIntervalMs?: number;
  /**
   * TESTS ONLY: take TTL time from this clock instead of the database's (the conformance
   * suite's FakeClock). Never set it in production: every replica must share one clock.
   */
  ttlClock?: Clock;
}

export interface PostgresBackendHealth extends PoolHealth {
  /** True while the LISTEN connection is up (watchers then wake at once, else within a poll). */
  listening: boolean;
}

/** How watchers got their events: from notifications, or by reading the events table. */
export interface PostgresWatchStats {
  /** Watcher pages served from events that notifications carried (no round trip). */
  pagesFromNotifications: number;
  /** Watcher pages read from the events table. */
  pagesRead: number;
}

export const POSTGRES_DEFAULT_SCHEMA = 'warden';
export const POSTGRES_DEFAULT_MAX_HISTORY = 100_000;
export const POSTGRES_DEFAULT_POLL_INTERVAL_MS = 1000;
export const POSTGRES_DEFAULT_REAP_BATCH = 500;
/** How often the LISTEN connection is checked for life. */
const LISTEN_PING_MS = 10_000;
/** Expired keys a write deletes before its own change (the reaper does the rest). */
const WRITE_REAP_BATCH = 100;
/** Events carried by notifications that this replica keeps for its watchers. */
const RECENT_EVENTS = 256;

/**
 * The one event a write of this replica made, when that can be known without reading it back:
 * a successful create, put, compare-and-swap or delete whose revision is `headBefore + 1`,
 * `headBefore` being a revision known to be committed before the write was sent. The write
 * took the counter's lock after that commit, so it started at `headBefore` or later and made
 * at least its own event; ending at `headBefore + 1` it made exactly that one (no expired key
 * reaped on the way). Anything else (another replica's commit in between, reaped keys, a
 * failed condition, a range delete, a value larger than a notification carries) gives
 * undefined: the watchers read the table, as before. `value` is the bytes stored.
 */
export function ownWriteEvent(
  op: WriteOp,
  key: string,
  value: Buffer | null,
  row: Pick<WriteRow, 'o_status' | 'o_rev' | 'o_create_rev' | 'o_expires'>,
  headBefore: number,
): BackendEvent | undefined {
  if (row.o_status !== 'ok' || op === 'delete_range' || row.o_rev !== headBefore + 1) return undefined;
  if (op === 'delete') return { type: 'delete', rev: row.o_rev, key };
  if (value === null || value.length > NOTIFY_PAYLOAD_MAX || row.o_create_rev === null) return undefined;
  const item: Item = { key, value: value.toString('utf8'), createRev: row.o_create_rev, modRev: row.o_rev };
  if (row.o_expires !== null) item.expires = row.o_expires;
  return { type: 'put', rev: row.o_rev, item };
}

interface ItemRow {
  key: string;
  value: Buffer;
  create_rev: number;
  mod_rev: number;
  expires: number | null;
}

interface RangeRow {
  head: number;
  key: string | null;
  value: Buffer | null;
  create_rev: number | null;
  mod_rev: number | null;
  expires: number | null;
}

interface EventRow {
  head: number;
  compacted: number;
  rev: number | null;
  type: 'put' | 'delete' | null;
  key: string | null;
  value: Buffer | null;
  create_rev: number | null;
  expires: number | null;
}

interface WriteRow {
  o_status: 'ok' | 'exists' | 'not_found' | 'changed';
  o_rev: number;
  o_create_rev: number | null;
  o_expires: number | null;
  o_count: number;
  o_compacted_rev: number;
}

type WriteOp = 'create' | 'put' | 'cas' | 'delete' | 'delete_range';

interface TxnRow {
  o_status: 'ok' | 'exists' | 'not_found' | 'changed';
  o_index: number | null;
  o_rev: number;
  o_mod_revs: (number | null)[] | null;
  o_create_revs: (number | null)[] | null;
  o_expires: (number | null)[] | null;
  o_done: boolean[] | null;
  o_compacted_rev: number;
}

function toItem(row: ItemRow): Item {
  const item: Item = {
    key: row.key,
    value: row.value.toString('utf8'),
    createRev: row.create_rev,
    modRev: row.mod_rev,
  };
  if (row.expires !== null) item.expires = row.expires;
  return item;
}

function toEvent(row: EventRow): BackendEvent {
  const rev = row.rev!;
  if (row.type === 'delete') return { type: 'delete', rev, key: row.key! };
  const item: Item = {
    key: row.key!,
    value: row.value!.toString('utf8'),
    createRev: row.create_rev!,
    modRev: rev,
  };
  if (row.expires !== null) item.expires = row.expires;
  return { type: 'put', rev, item };
}

/**
 * A notification on the event channel: the revision alone, or the JSON of its one event
 * (`postgres-schema.ts`, version 2). Undefined for anything else (ignored, as a lost one).
 */
export function parseEventNotification(
  payload: string | undefined,
): { rev: number; event?: BackendEvent } | undefined {
  if (payload === undefined || payload === '') return undefined;
  if (payload[0] !== '{') {
    const rev = Number(payload);
    return Number.isSafeInteger(rev) && rev > 0 ? { rev } : undefined;
  }
  let m: Record<string, unknown>;
  try {
    m = JSON.parse(payload) as Record<string, unknown>;
  } catch {
    return undefined;
  }
  const { rev, type, key, value, create_rev: createRev, expires } = m;
  if (!Number.isSafeInteger(rev) || (rev as number) < 1 || typeof key !== 'string') return undefined;
  const r = rev as number;
  if (type === 'delete') return { rev: r, event: { type: 'delete', rev: r, key } };
  if (type !== 'put' || typeof value !== 'string' || !Number.isSafeInteger(createRev)) return { rev: r };
  if (expires !== null && !Number.isSafeInteger(expires)) return { rev: r };
  const item: Item = {
    key,
    value: Buffer.from(value, 'base64').toString('utf8'),
    createRev: createRev as number,
    modRev: r,
  };
  if (expires !== null) item.expires = expires as number;
  return { rev: r, event: { type: 'put', rev: r, item } };
}

function queries(n: BackendSchema) {
  const s = n.q;
  const cols = 'i.key, i.value, i.create_rev, i.mod_rev, i.expires';
  const live = `(i.expires IS NULL OR i.expires > (SELECT ${s}.db_now($3::bigint)))`;
  const range = (bounded: boolean) =>
    `SELECT m.value AS head, ${cols} FROM ${s}.meta m LEFT JOIN ${s}.items i
       ON i.key >= $1 AND ${bounded ? 'i.key < $2' : '$2::text IS NULL'} AND ${live}
     WHERE m.name = 'rev' ORDER BY i.key`;
  const events = (bounded: boolean) =>
    `SELECT h.value AS head, c.value AS compacted, e.rev, e.type, e.key, e.value, e.create_rev, e.expires
     FROM ${s}.meta h JOIN ${s}.meta c ON c.name = 'compacted_rev'
     LEFT JOIN ${s}.events e ON $1 >= c.value AND e.rev > $1 AND e.rev <= least(h.value, $1 + $2)
       AND e.key >= $3 AND ${bounded ? 'e.key < $4' : '$4::text IS NULL'}
     WHERE h.name = 'rev' ORDER BY e.rev`;
  return {
    get: `SELECT ${cols} FROM ${s}.items i WHERE i.key = $1 AND (i.expires IS NULL OR i.expires > (SELECT ${s}.db_now($2::bigint)))`,
    rangeBounded: range(true),
    rangeOpen: range(false),
    eventsBounded: events(true),
    eventsOpen: events(false),
    write: `SELECT * FROM ${s}.write($1, $2, $3, $4, $5, $6, $7, $8)`,
    txn: `SELECT * FROM ${s}.txn($1::text[], $2::text[], $3::bytea[], $4::bigint[], $5::float8[], $6, $7)`,
    reap: `SELECT * FROM ${s}.reap($1, $2, $3)`,
    compact: `SELECT * FROM ${s}.compact($1)`,
    head: `SELECT value AS rev FROM ${s}.meta WHERE name = 'rev'`,
    heads: `SELECT (SELECT value FROM ${s}.meta WHERE name = 'rev') AS rev,
              (SELECT value FROM ${s}.meta WHERE name = 'compacted_rev') AS compacted`,
  };
}

const READ: RunOptions = { idempotent: true };
/** Timer work: one attempt, no log lines (the next tick tries again; health() shows outages). */
const BACKGROUND: RunOptions = { idempotent: true, giveUp: () => true, quiet: true };

export class PostgresBackend implements Backend, EventLog {
  readonly #pool: PostgresPool;
  readonly #names: BackendSchema;
  readonly #sql: ReturnType<typeof queries>;
  readonly #ttlClock: Clock | undefined;
  readonly #logger: Logger | undefined;
  readonly #maxHistory: number;
  readonly #reapBatch: number;
  readonly #watchers = new Watchers(this);
  readonly #stop = new AbortController();
  readonly #timers: NodeJS.Timeout[] = [];
  /** The highest revision known to be committed (own writes, notifications, polls). */
  #head = 0;
  /** The highest compacted revision this replica has seen (reads, its own compactions). */
  #compacted = 0;
  /** Events that notifications carried, by revision (the last RECENT_EVENTS, oldest first). */
  readonly #recent = new Map<number, BackendEvent>();
  readonly #stats: PostgresWatchStats = { pagesFromNotifications: 0, pagesRead: 0 };
  #listening = false;
  #listener: pg.Client | undefined;
  #polling = false;
  #maintaining = false;
  #closed = false;

  private constructor(
    pool: PostgresPool,
    names: BackendSchema,
    opts: PostgresBackendOptions,
    settings: { maxHistory: number; reapBatch: number },
  ) {
    this.#pool = pool;
    this.#names = names;
    this.#sql = queries(names);
    this.#ttlClock = opts.ttlClock;
    this.#logger = opts.logger;
    this.#maxHistory = settings.maxHistory;
    this.#reapBatch = settings.reapBatch;
  }

  /**
   * Connects, creates or migrates the schema (under an advisory lock: replicas may start
   * together), starts listening for new revisions, the poll and the reaper.
   */
  static async open(opts: PostgresBackendOptions): Promise<PostgresBackend> {
    if (opts === null || typeof opts !== 'object') {
      throw new WardenError('WARDEN_ERR_BAD_PARAMETER', 'PostgreSQL backend options are required');
    }
    const maxHistory = integerOption(opts.maxHistory, POSTGRES_DEFAULT_MAX_HISTORY, 'maxHistory', 1);
    const reapIntervalMs = integerOption(opts.reapIntervalMs, DEFAULT_REAP_INTERVAL_MS, 'reapIntervalMs', 0);
    const reapBatch = integerOption(opts.reapBatchSize, POSTGRES_DEFAULT_REAP_BATCH, 'reapBatchSize', 1);
    const pollIntervalMs = integerOption(
      opts.pollIntervalMs,
      POSTGRES_DEFAULT_POLL_INTERVAL_MS,
      'pollIntervalMs',
      1,
    );
    const names = backendSchema(opts.schema ?? POSTGRES_DEFAULT_SCHEMA);
    // Three warm connections: a request, the poll and the maintenance job (each every second)
    // may all want one at once; with one kept, a lock arriving as the jobs fired after a quiet
    // spell made each job open its own, with a SCRAM login, while the lock's sessions ended.
    const pool = await PostgresPool.create(resolveConnection(opts, { warm: 3 }), {
      clock: opts.clock ?? systemClock,
      logger: opts.logger,
      what: 'PostgreSQL backend',
    });
    const backend = new PostgresBackend(pool, names, opts, { maxHistory, reapBatch });
    try {
      await migrateBackend(pool, names);
      const [row] = await pool.query<{ rev: number }>('read of the revision', READ, {
        text: backend.#sql.head,
      });
      backend.#head = row?.rev ?? 0;
      await backend.#startListening();
    } catch (err) {
      await backend.close();
      throw err;
    }
    backend.#every(pollIntervalMs, () => backend.#poll());
    if (reapIntervalMs > 0) backend.#every(reapIntervalMs, () => backend.#maintain());
    return backend;
  }

  /** Where this backend connects, without the password (`user@host:port/database`). */
  get target(): string {
    return this.#pool.target;
  }

  /** How this replica's watchers got their events so far (for tests and diagnostics). */
  watchStats(): PostgresWatchStats {
    return { ...this.#stats };
  }

  /** Whether the database answers; for a strict locking mode, with `staleForMs`. */
  health(): PostgresBackendHealth {
    return { ...this.#pool.health(), listening: this.#listening };
  }

  /**
   * How long this replica has been cut off from the database at `now` (its own clock): 0
   * while connected, Infinity if it never was. Watchers cannot be fresher than this.
   */
  staleForMs(now: number): number {
    const h = this.#pool.health();
    if (h.connected) return 0;
    return h.lastContactAt === undefined ? Number.POSITIVE_INFINITY : Math.max(0, now - h.lastContactAt);
  }

  async get(key: string): Promise<Item | undefined> {
    this.#assertOpen();
    checkKey(key);
    const rows = await this.#pool.query<ItemRow>('get', READ, {
      name: this.#name('get'),
      text: this.#sql.get,
      values: [key, this.#ttlNow()],
    });
    return rows[0] && toItem(rows[0]);
  }

  async range(prefix: string): Promise<RangeResult> {
    this.#assertOpen();
    checkPrefix(prefix);
    const end = prefixEnd(prefix);
    const rows = await this.#pool.query<RangeRow>('range', READ, {
      name: this.#name(end === undefined ? 'range-open' : 'range'),
      text: end === undefined ? this.#sql.rangeOpen : this.#sql.rangeBounded,
      values: [prefix, end ?? null, this.#ttlNow()],
    });
    const items: Item[] = [];
    for (const row of rows) if (row.key !== null) items.push(toItem(row as ItemRow));
    return { items, rev: rows[0]?.head ?? 0 };
  }

  async create(key: string, value: string, opts?: WriteOptions): Promise<Item> {
    this.#assertOpen();
    checkWrite(key, value, opts);
    const row = await this.#write('create', false, key, value, undefined, opts);
    if (row.o_status === 'exists') throw keyError.exists(key);
    return this.#item(row, key, value);
  }

  async put(key: string, value: string, opts?: WriteOptions): Promise<Item> {
    this.#assertOpen();
    checkWrite(key, value, opts);
    return this.#item(await this.#write('put', true, key, value, undefined, opts), key, value);
  }

  async compareAndSwap(
    key: string,
    expectedModRev: number,
    value: string,
    opts?: WriteOptions,
  ): Promise<Item> {
    this.#assertOpen();
    checkSwap(key, expectedModRev, value, opts);
    const row = await this.#write('cas', false, key, value, expectedModRev, opts);
    if (row.o_status === 'not_found') throw keyError.missing(key);
    if (row.o_status === 'changed') {
      throw keyError.changed(key);
    }
    return this.#item(row, key, value);
  }

  async delete(key: string, opts?: { expectedModRev?: number }): Promise<boolean> {
    this.#assertOpen();
    const expected = checkDelete(key, opts);
    const row = await this.#write('delete', false, key, undefined, expected, undefined);
    if (row.o_status === 'changed') {
      throw keyError.changed(key);
    }
    return row.o_status === 'ok';
  }

  /** One call of the schema's `txn` function: one round trip, one transaction. */
  async txn(ops: readonly TxnOp[]): Promise<(Item | boolean)[]> {
    this.#assertOpen();
    checkTxn(ops);
    const [row] = await this.#pool.query<TxnRow>(
      'transaction',
      { idempotent: false },
      {
        name: this.#name('txn'),
        text: this.#sql.txn,
        values: [
          ops.map((op) => op.type),
          ops.map((op) => op.key),
          ops.map((op) => (op.type === 'delete' ? null : Buffer.from(op.value, 'utf8'))),
          ops.map((op) => (op.type === 'cas' || op.type === 'delete' ? (op.expectedModRev ?? null) : null)),
          ops.map((op) => (op.type === 'delete' ? null : (op.opts?.ttlMs ?? null))),
          this.#ttlNow(),
          WRITE_REAP_BATCH,
        ],
      },
    );
    if (!row) throw new WardenError('WARDEN_ERR_INTERNAL', 'the transaction returned nothing');
    this.#sawCompacted(row.o_compacted_rev);
    this.#advance(row.o_rev);
    await this.#compactIfDue(row.o_rev, row.o_compacted_rev);
    if (row.o_status !== 'ok') {
      const key = ops[row.o_index ?? 0]!.key;
      if (row.o_status === 'exists') throw keyError.exists(key);
      if (row.o_status === 'not_found') throw keyError.missing(key);
      throw keyError.changed(key);
    }
    return ops.map((op, i) => {
      if (op.type === 'delete') return row.o_done?.[i] === true;
      const item: Item = {
        key: op.key,
        value: op.value,
        createRev: Number(row.o_create_revs?.[i]),
        modRev: Number(row.o_mod_revs?.[i]),
      };
      const expires = row.o_expires?.[i];
      if (expires !== null && expires !== undefined) item.expires = Number(expires);
      return item;
    });
  }

  async deleteRange(prefix: string): Promise<number> {
    this.#assertOpen();
    checkPrefix(prefix);
    const row = await this.#write('delete_range', true, prefix, undefined, undefined, undefined);
    return row.o_count;
  }

  watch(prefix: string, opts: WatchOptions): Watcher {
    return this.#watchers.open(prefix, opts);
  }

  async currentRev(): Promise<number> {
    this.#assertOpen();
    const [row] = await this.#pool.query<{ rev: number }>('read of the revision', READ, {
      name: this.#name('head'),
      text: this.#sql.head,
    });
    const rev = row?.rev ?? 0;
    this.#advance(rev);
    return rev;
  }

  async compact(rev: number): Promise<void> {
    this.#assertOpen();
    checkRev(rev, 'rev');
    const [row] = await this.#pool.query<{ o_status: string; o_head: number; o_compacted_rev: number }>(
      'compaction',
      READ,
      { name: this.#name('compact'), text: this.#sql.compact, values: [rev] },
    );
    if (row) this.#sawCompacted(row.o_compacted_rev);
    if (row?.o_status === 'future') {
      throw compactPastHead(rev, row.o_head);
    }
  }

  /**
   * Deletes every expired key now (one delete event each) and returns how many, in batches,
   * waiting for a reaping replica to finish first.
   */
  async reapExpired(): Promise<number> {
    this.#assertOpen();
    return this.#reap(true, READ);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#stop.abort();
    for (const t of this.#timers) clearInterval(t);
    this.#watchers.closeAll();
    const listener = this.#listener;
    this.#listener = undefined;
    this.#listening = false;
    await Promise.all([listener?.end().catch(() => undefined), this.#pool.close()]);
  }

  /**
   * EventLog for watchers: one page of events after `afterRev`, with the head and the
   * compacted revision read in the same snapshot. Retries until the database answers (or the
   * backend closes: then an empty page, and the closed watcher ends).
   */
  async readAfter(prefix: string, afterRev: number, maxScan: number): Promise<EventPage> {
    this.#assertOpen();
    const carried = this.#fromNotifications(prefix, afterRev, maxScan);
    if (carried) return carried;
    const end = prefixEnd(prefix);
    let rows: EventRow[];
    try {
      rows = await this.#pool.query<EventRow>(
        'watch',
        { idempotent: true, giveUp: () => false },
        {
          name: this.#name(end === undefined ? 'events-open' : 'events'),
          text: end === undefined ? this.#sql.eventsOpen : this.#sql.eventsBounded,
          values: [afterRev, maxScan, prefix, end ?? null],
        },
      );
    } catch (err) {
      if (this.#closed) return { events: [], scannedThrough: afterRev, head: afterRev };
      throw err;
    }
    this.#stats.pagesRead++;
    const first = rows[0];
    if (!first) throw new WardenError('WARDEN_ERR_INTERNAL', 'the backend has no revision counter');
    this.#sawCompacted(first.compacted);
    if (afterRev < first.compacted) {
      throw new WardenError(
        'WARDEN_ERR_COMPACTED',
        `revision ${afterRev} was compacted (oldest available: ${first.compacted}); list again and watch from the new revision`,
        { compactedRev: first.compacted },
      );
    }
    const events: BackendEvent[] = [];
    for (const row of rows) if (row.rev !== null) events.push(toEvent(row));
    const head = Math.max(first.head, afterRev);
    return { events, scannedThrough: Math.min(head, afterRev + maxScan), head };
  }

  /**
   * The page `readAfter` would read, from the events notifications carried, when every
   * revision after `afterRev` up to the known head (or `maxScan` of them) is among them and
   * `afterRev` is not below a compaction this replica knows of; else undefined (read it).
   */
  #fromNotifications(prefix: string, afterRev: number, maxScan: number): EventPage | undefined {
    const head = this.#head;
    if (head <= afterRev || afterRev < this.#compacted) return undefined;
    const through = Math.min(head, afterRev + maxScan);
    const events: BackendEvent[] = [];
    for (let rev = afterRev + 1; rev <= through; rev++) {
      const event = this.#recent.get(rev);
      if (!event) return undefined;
      if ((event.type === 'put' ? event.item.key : event.key).startsWith(prefix)) events.push(event);
    }
    this.#stats.pagesFromNotifications++;
    return { events, scannedThrough: through, head };
  }

  /** Records a notification from the event channel, with its event if it carried one. */
  #notified(payload: string | undefined): void {
    const n = parseEventNotification(payload);
    if (!n) return;
    if (n.event) this.#remember(n.event);
    this.#advance(n.rev);
  }

  /** Keeps a revision's event for the watchers (the last RECENT_EVENTS; none below a compaction). */
  #remember(event: BackendEvent): void {
    if (event.rev <= this.#compacted || this.#recent.has(event.rev)) return;
    this.#recent.set(event.rev, event);
    if (this.#recent.size > RECENT_EVENTS) {
      const oldest = this.#recent.keys().next().value;
      if (oldest !== undefined) this.#recent.delete(oldest);
    }
  }

  #sawCompacted(rev: number | null | undefined): void {
    if (typeof rev !== 'number' || rev <= this.#compacted) return;
    this.#compacted = rev;
    for (const r of this.#recent.keys()) if (r <= rev) this.#recent.delete(r);
  }

  #assertOpen(): void {
    if (this.#closed) throw new WardenError('WARDEN_ERR_CLOSED', 'the backend is closed');
  }

  /** Prepared statement names are per connection; the schema keeps two backends apart. */
  #name(query: string): string {
    return `warden-${this.#names.schema}-${query}`;
  }

  #ttlNow(): number | null {
    return this.#ttlClock ? this.#ttlClock.now() : null;
  }

  #item(row: WriteRow, key: string, value: string): Item {
    const item: Item = { key, value, createRev: row.o_create_rev!, modRev: row.o_rev };
    if (row.o_expires !== null) item.expires = row.o_expires;
    return item;
  }

  async #write(
    op: WriteOp,
    idempotent: boolean,
    key: string,
    value: string | undefined,
    expected: number | undefined,
    opts: WriteOptions | undefined,
  ): Promise<WriteRow> {
    const end = op === 'delete_range' ? (prefixEnd(key) ?? null) : null;
    const bytes = value === undefined ? null : Buffer.from(value, 'utf8');
    const headBefore = this.#head;
    const [row] = await this.#pool.query<WriteRow>(
      op === 'cas' ? 'compare-and-swap' : op.replace('_', ' '),
      {
        idempotent,
      },
      {
        name: this.#name('write'),
        text: this.#sql.write,
        values: [
          op,
          key,
          bytes,
          expected ?? null,
          opts?.ttlMs ?? null,
          this.#ttlNow(),
          end,
          WRITE_REAP_BATCH,
        ],
      },
    );
    if (!row) throw new WardenError('WARDEN_ERR_INTERNAL', 'the write returned nothing');
    this.#sawCompacted(row.o_compacted_rev);
    const own = ownWriteEvent(op, key, bytes, row, headBefore);
    if (own) this.#remember(own);
    this.#advance(row.o_rev);
    await this.#compactIfDue(row.o_rev, row.o_compacted_rev);
    return row;
  }

  /** Records a committed revision and wakes the watchers if it is new. */
  #advance(rev: number): void {
    if (rev <= this.#head) return;
    this.#head = rev;
    this.#watchers.wakeAll();
  }

  /** Keeps about maxHistory events: trims when the history is an eighth over (so rarely). */
  async #compactIfDue(rev: number, compactedRev: number): Promise<void> {
    const slack = Math.max(1, Math.ceil(this.#maxHistory / 8));
    if (rev - compactedRev < this.#maxHistory + slack) return;
    try {
      const [row] = await this.#pool.query<{ o_compacted_rev: number }>('compaction', READ, {
        name: this.#name('compact'),
        text: this.#sql.compact,
        values: [rev - this.#maxHistory],
      });
      this.#sawCompacted(row?.o_compacted_rev);
    } catch (err) {
      if (!this.#closed) this.#logger?.warn({ err }, 'PostgreSQL backend: compaction failed; will retry');
    }
  }

  async #reap(wait: boolean, runOpts: RunOptions): Promise<number> {
    let total = 0;
    for (;;) {
      const [row] = await this.#pool.query<{ o_count: number; o_rev: number | null }>('reaping', runOpts, {
        name: this.#name('reap'),
        text: this.#sql.reap,
        values: [this.#ttlNow(), this.#reapBatch, wait],
      });
      if (!row || row.o_count <= 0) return total;
      total += row.o_count;
      if (row.o_rev !== null) this.#advance(row.o_rev);
      if (row.o_count < this.#reapBatch) return total;
    }
  }

  /** Runs `fn` every `ms` (unref'd), skipping a tick while the previous run is going. */
  #every(ms: number, fn: () => Promise<void>): void {
    const timer = setInterval(() => {
      if (!this.#closed) void fn();
    }, ms);
    timer.unref();
    this.#timers.push(timer);
  }

  /** The fallback wake-up: one quick read of the counter (no retries: the next tick is one). */
  async #poll(): Promise<void> {
    if (this.#polling) return;
    this.#polling = true;
    try {
      const [row] = await this.#pool.query<{ rev: number }>('poll', BACKGROUND, {
        name: this.#name('head'),
        text: this.#sql.head,
      });
      if (row) this.#advance(row.rev);
    } catch {
      // health() shows the outage; watchers retry on their own
    } finally {
      this.#polling = false;
    }
  }

  /** The reaper and compaction job. */
  async #maintain(): Promise<void> {
    if (this.#maintaining) return;
    this.#maintaining = true;
    try {
      await this.#reap(false, BACKGROUND);
      const [row] = await this.#pool.query<{ rev: number; compacted: number }>(
        'compaction check',
        BACKGROUND,
        { name: this.#name('heads'), text: this.#sql.heads },
      );
      this.#sawCompacted(row?.compacted);
      if (row) await this.#compactIfDue(row.rev, row.compacted);
    } catch (err) {
      if (!this.#closed) this.#logger?.debug({ err }, 'PostgreSQL backend: reaping failed; will retry');
    } finally {
      this.#maintaining = false;
    }
  }

  /**
   * Waits while the LISTEN connection is up, pinging it every LISTEN_PING_MS: a connection a
   * firewall dropped silently would otherwise leave this replica on the poll for good.
   */
  async #heldUntilLost(client: pg.Client, lost: Promise<unknown>): Promise<unknown> {
    const LOST = Symbol('lost');
    const wrapped = lost.then((err) => ({ [LOST]: err }));
    for (;;) {
      const tick = sleep(LISTEN_PING_MS, undefined, { signal: this.#stop.signal, ref: false }).catch(
        () => 'closed',
      );
      const first = await Promise.race([wrapped, tick]);
      if (first === 'closed') return undefined;
      if (typeof first === 'object' && first !== null && LOST in first) return first[LOST];
      const ping = client.query('SELECT 1');
      ping.catch(() => undefined);
      const answered = await Promise.race([
        ping.then(
          () => true,
          () => false,
        ),
        sleep(this.#pool.queryTimeoutMs, false, { ref: false }),
        wrapped.then(() => false),
      ]);
      if (!answered) return new Error('the LISTEN connection stopped answering');
    }
  }

  /** Starts the LISTEN loop; resolves after the first attempt (connected or not). */
  #startListening(): Promise<void> {
    return new Promise((firstAttempt) => {
      void this.#listenLoop(firstAttempt);
    });
  }

  async #listenLoop(firstAttempt: () => void): Promise<void> {
    const channel = this.#names.eventChannel;
    for (let failures = 0; !this.#closed; ) {
      const client = this.#pool.newClient('listen');
      const lost = new Promise<unknown>((resolve) => {
        client.on('error', resolve);
        client.on('end', () => resolve(undefined));
      });
      client.on('notification', (msg) => {
        if (msg.channel !== channel) return;
        this.#pool.contact();
        this.#notified(msg.payload);
      });
      try {
        await client.connect();
        await client.query(`LISTEN "${channel}"`);
        if (this.#closed) {
          await client.end().catch(() => undefined);
          break;
        }
        this.#listener = client;
        this.#listening = true;
        failures = 0;
        firstAttempt();
        // Anything committed while nobody listened: let every watcher look.
        this.#watchers.wakeAll();
        const err = await this.#heldUntilLost(client, lost);
        if (!this.#closed)
          this.#logger?.warn({ err }, 'PostgreSQL backend: LISTEN connection lost; reconnecting');
      } catch (err) {
        firstAttempt();
        if (!this.#closed && failures % 20 === 0) {
          this.#logger?.warn({ err }, 'PostgreSQL backend: cannot LISTEN; polling until it can');
        }
      }
      this.#listening = false;
      if (this.#listener === client) this.#listener = undefined;
      client.end().catch(() => undefined);
      if (this.#closed) break;
      failures++;
      try {
        await sleep(Math.min(2000, 50 * 2 ** Math.min(failures, 6)), undefined, {
          signal: this.#stop.signal,
          ref: false,
        });
      } catch {
        break;
      }
    }
  }
}
