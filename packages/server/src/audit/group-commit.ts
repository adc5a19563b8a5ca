/**
 * Group commit for the audit stores: events handed in during one tick, or while the previous
 * batch is still being made durable, or within `intervalMs` of its start (`bulkIntervalMs`
 * when only bulk events wait), are written together, in one transaction and one fsync, and
 * each caller's promise resolves only after that batch is durable. Nothing is
 * acknowledged before it is on disk, and nothing is dropped: when `maxQueued` events already
 * wait, `add` waits for room (back-pressure reaches the caller, e.g. a database session
 * stops reading its client). One batch at a time, at most `maxBatch` events, so a store that
 * writes synchronously never holds the event loop for longer than one bounded batch.
 * Internal to `audit/`; tested by `group-commit.test.ts` and the crash test in
 * `test/audit/`.
 *
 *   emit ─┐                 tick ends            batch durable
 *   emit ─┼─▶ queue ──────────▶ commit(batch) ─────────▶ resolve each emit
 *   emit ─┘  (bounded)          (one tx, one fsync)       (or reject each on failure)
 *
 * A store that can tell which events of a batch it could not write (the PostgreSQL log: a row
 * its table refuses) returns those as `CommitFailures`: only their callers are rejected, the
 * rest of the batch is durable and resolves.
 *
 * @example
 *   const group = new GroupCommit<Row>({ commit: (rows) => insertAllAndSync(rows) });
 *   await group.add(row); // durable now
 */
import { WardenError } from '@warden/api';

/** The events of a batch that were not written, by their index in the batch, with why. */
export type CommitFailures = ReadonlyMap<number, unknown>;

export interface GroupCommitOptions<T> {
  /**
   * Writes `batch` durably (one transaction, one sync); throws to fail the whole batch, or
   * returns the events it could not write while the others are durable.
   */
  // biome-ignore lint/suspicious/noConfusingVoidType: a writer that fails only whole batches returns nothing
  commit(batch: readonly T[]): Promise<CommitFailures | void> | CommitFailures | void;
  /** Most events per batch (default 512). */
  maxBatch?: number;
  /** Most events waiting for a batch before `add` waits for room (default 8192). */
  maxQueued?: number;
  /**
   * Least time from the start of one batch to the start of the next (default 2 ms), unless a
   * full batch is waiting: under load, batches get bigger instead of more frequent (a
   * commit's fixed cost is paid once for many events). An idle writer commits at once.
   */
  intervalMs?: number;
  /**
   * The same for a batch of bulk events only (`add(item, { bulk: true })`: events nobody
   * waits for before going on, such as a database session's statements), default 20 ms: they
   * gather into fewer, larger commits (a commit rewrites each index's last page and syncs
   * once, whatever its size). Any other event arriving, or `bulkBatch` bulk events waiting,
   * brings the commit forward to `intervalMs`.
   */
  bulkIntervalMs?: number;
  /** Bulk events enough for a commit not to wait for `bulkIntervalMs` (default 128, at most `maxBatch`). */
  bulkBatch?: number;
}

/**
 * How a queued event learns its fate: `error` undefined once it is durable, else why it was
 * not written (never undefined then).
 */
export type CommitDone = (error?: unknown) => void;

interface Pending<T> {
  item: T;
  bulk: boolean;
  done: CommitDone;
}

export const DEFAULT_MAX_BATCH = 512;
export const DEFAULT_MAX_QUEUED = 8192;
export const DEFAULT_INTERVAL_MS = 2;
export const DEFAULT_BULK_INTERVAL_MS = 20;
export const DEFAULT_BULK_BATCH = 128;

/** A failure to report through a `CommitDone` (which takes undefined for success). */
const failure = (e: unknown): unknown => e ?? new Error('the audit batch failed');

/** Calls `done`; one that throws (a bug) surfaces as an uncaught error, after the rest of its batch is settled. */
function settle(done: CommitDone, error: unknown): void {
  try {
    done(error);
  } catch (e) {
    queueMicrotask(() => {
      throw e;
    });
  }
}

export class GroupCommit<T> {
  readonly #commit: GroupCommitOptions<T>['commit'];
  readonly #maxBatch: number;
  readonly #maxQueued: number;
  readonly #intervalMs: number;
  readonly #bulkIntervalMs: number;
  readonly #bulkBatch: number;
  /** Queued events that are not bulk. */
  #urgent = 0;
  /** When the scheduled start is due (performance.now()), and how to cancel it. */
  #due = Number.POSITIVE_INFINITY;
  #cancel: (() => void) | undefined;
  /** Cuts short the wait of a running drain (an urgent event arrived). */
  #wake: (() => void) | undefined;
  /** When the last batch started (performance.now()). */
  #lastStart = Number.NEGATIVE_INFINITY;
  #queue: Pending<T>[] = [];
  /** Callers waiting for room in a full queue, in arrival order. */
  #waiting: (() => void)[] = [];
  /** Callers let in from `#waiting` who have not pushed yet. */
  #reserved = 0;
  /** Set synchronously while `#drain` runs (a commit may finish without ever awaiting). */
  #draining = false;
  #current: Promise<void> = Promise.resolve();
  #closed = false;
  #batches = 0;

  constructor(o: GroupCommitOptions<T>) {
    this.#commit = o.commit;
    this.#maxBatch = o.maxBatch ?? DEFAULT_MAX_BATCH;
    this.#maxQueued = o.maxQueued ?? DEFAULT_MAX_QUEUED;
    this.#intervalMs = o.intervalMs ?? DEFAULT_INTERVAL_MS;
    this.#bulkIntervalMs = Math.max(this.#intervalMs, o.bulkIntervalMs ?? DEFAULT_BULK_INTERVAL_MS);
    this.#bulkBatch = Math.max(1, Math.min(this.#maxBatch, o.bulkBatch ?? DEFAULT_BULK_BATCH));
    if (!(this.#maxBatch >= 1 && this.#maxQueued >= this.#maxBatch)) {
      throw new WardenError('WARDEN_ERR_BAD_PARAMETER', 'group commit needs 1 ≤ maxBatch ≤ maxQueued');
    }
  }

  /** Events accepted and not yet durable (for tests and metrics). */
  get queued(): number {
    return this.#queue.length;
  }

  /** Batches committed so far (for tests and metrics). */
  get batches(): number {
    return this.#batches;
  }

  /** True when the next `add` would wait for room. */
  get full(): boolean {
    return this.#queue.length + this.#reserved >= this.#maxQueued || this.#waiting.length > 0;
  }

  /**
   * Resolves once `item` is durable; rejects when its batch failed or the writer is closed.
   * `bulk`: nobody waits for this one to go on (see `bulkIntervalMs`).
   */
  async add(item: T, opts?: { bulk?: boolean }): Promise<void> {
    if (this.#closed) throw new WardenError('WARDEN_ERR_CLOSED', 'the audit log is closed');
    if (this.full) {
      await new Promise<void>((resolve) => this.#waiting.push(resolve));
      this.#reserved--;
    }
    const bulk = opts?.bulk === true;
    return new Promise<void>((resolve, reject) => {
      this.#enqueue(item, bulk, (e) => (e === undefined ? resolve() : reject(e)));
    });
  }

  /**
   * As `add`, without a promise per event (a database session's statements: thousands per
   * second): `done` (which must not throw) is called once `item` is durable, or with why it
   * was not written. When
   * the queue is full it waits for room as `add` does; a closed writer calls `done` with the
   * error at once.
   */
  push(item: T, bulk: boolean, done: CommitDone): void {
    if (this.#closed) {
      done(new WardenError('WARDEN_ERR_CLOSED', 'the audit log is closed'));
      return;
    }
    if (this.full) {
      this.add(item, { bulk }).then(
        () => done(),
        (e: unknown) => done(failure(e)),
      );
      return;
    }
    this.#enqueue(item, bulk, done);
  }

  #enqueue(item: T, bulk: boolean, done: CommitDone): void {
    this.#queue.push({ item, bulk, done });
    if (!bulk) this.#urgent++;
    this.#schedule();
  }

  /** How long after the last batch's start the next may start, given what waits. */
  #gap(): number {
    return this.#urgent > 0 || this.#queue.length >= this.#bulkBatch
      ? this.#intervalMs
      : this.#bulkIntervalMs;
  }

  /** Stops accepting events and resolves once everything accepted is durable (or failed). */
  async close(): Promise<void> {
    this.#closed = true;
    // Callers already waiting for room were accepted before the close: they are written too.
    for (const wake of this.#waiting.splice(0)) {
      this.#reserved++;
      wake();
    }
    while (this.#draining || this.#queue.length > 0 || this.#reserved > 0) {
      if (this.#draining) await this.#current;
      else if (this.#queue.length > 0) await this.#start();
      else await new Promise((r) => setImmediate(r));
    }
  }

  #schedule(): void {
    if (this.#draining) {
      // The drain loop takes it; an urgent event cuts a bulk wait short.
      if (this.#urgent > 0 || this.#queue.length >= this.#bulkBatch) this.#wake?.();
      return;
    }
    // The rest of this tick's events join the batch, and those of the interval's rest.
    const due = this.#lastStart + this.#gap();
    if (this.#cancel && due >= this.#due) return;
    this.#cancel?.();
    this.#due = due;
    const run = () => {
      this.#cancel = undefined;
      if (!this.#draining) void this.#start();
    };
    const wait = due - performance.now();
    if (wait >= 1) {
      const t = setTimeout(run, wait);
      this.#cancel = () => clearTimeout(t);
    } else {
      const i = setImmediate(run);
      this.#cancel = () => clearImmediate(i);
    }
  }

  #start(): Promise<void> {
    // A drain takes everything queued: a start still scheduled is moot.
    this.#cancel?.();
    this.#cancel = undefined;
    this.#due = Number.POSITIVE_INFINITY;
    this.#current = this.#drain();
    return this.#current;
  }

  /** Commits batches until the queue is empty (events that arrive meanwhile form the next). */
  async #drain(): Promise<void> {
    this.#draining = true;
    try {
      while (this.#queue.length > 0) {
        for (;;) {
          const wait = this.#lastStart + this.#gap() - performance.now();
          if (wait < 1 || this.#closed || this.#queue.length >= this.#bulkBatch) break;
          await new Promise<void>((r) => {
            const t = setTimeout(r, wait);
            this.#wake = () => {
              clearTimeout(t);
              r();
            };
          });
          this.#wake = undefined;
        }
        this.#lastStart = performance.now();
        const batch = this.#queue.splice(0, this.#maxBatch);
        for (const p of batch) if (!p.bulk) this.#urgent--;
        this.#admit();
        let failures: CommitFailures | undefined;
        let failed: { error: unknown } | undefined;
        try {
          failures = (await this.#commit(batch.map((p) => p.item))) ?? undefined;
          this.#batches++;
        } catch (e) {
          failed = { error: failure(e) };
        }
        for (let i = 0; i < batch.length; i++) {
          const error = failed ? failed.error : failures?.has(i) ? failure(failures.get(i)) : undefined;
          settle(batch[i]!.done, error);
        }
      }
    } finally {
      this.#draining = false;
    }
  }

  /** Lets waiting callers in while there is room. */
  #admit(): void {
    // A woken caller pushes only when its await resumes: count its place now.
    while (this.#waiting.length > 0 && this.#queue.length + this.#reserved < this.#maxQueued) {
      this.#reserved++;
      this.#waiting.shift()!();
    }
  }
}
