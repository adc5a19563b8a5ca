/**
 * Group commit for the audit stores: events handed in during one tick, or while the previous
 * batch is still being made durable, or within `intervalMs` of its start, are written together, in one transaction and one
 * fsync, and each caller's promise resolves only after that batch is durable. Nothing is
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
 * @example
 *   const group = new GroupCommit<Row>({ commit: (rows) => insertAllAndSync(rows) });
 *   await group.add(row); // durable now
 */
import { WardenError } from '@warden/api';

export interface GroupCommitOptions<T> {
  /** Writes `batch` durably (one transaction, one sync); throws to fail the whole batch. */
  commit(batch: readonly T[]): Promise<void> | void;
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
}

interface Pending<T> {
  item: T;
  resolve(): void;
  reject(e: unknown): void;
}

export const DEFAULT_MAX_BATCH = 512;
export const DEFAULT_MAX_QUEUED = 8192;
export const DEFAULT_INTERVAL_MS = 2;

export class GroupCommit<T> {
  readonly #commit: (batch: readonly T[]) => Promise<void> | void;
  readonly #maxBatch: number;
  readonly #maxQueued: number;
  readonly #intervalMs: number;
  /** When the last batch started (performance.now()). */
  #lastStart = Number.NEGATIVE_INFINITY;
  #queue: Pending<T>[] = [];
  /** Callers waiting for room in a full queue, in arrival order. */
  #waiting: (() => void)[] = [];
  /** Callers let in from `#waiting` who have not pushed yet. */
  #reserved = 0;
  #scheduled = false;
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

  /** Resolves once `item` is durable; rejects when its batch failed or the writer is closed. */
  async add(item: T): Promise<void> {
    if (this.#closed) throw new WardenError('WARDEN_ERR_CLOSED', 'the audit log is closed');
    if (this.full) {
      await new Promise<void>((resolve) => this.#waiting.push(resolve));
      this.#reserved--;
    }
    return new Promise<void>((resolve, reject) => {
      this.#queue.push({ item, resolve, reject });
      this.#schedule();
    });
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
    if (this.#scheduled || this.#draining) return;
    this.#scheduled = true;
    const run = () => {
      this.#scheduled = false;
      if (!this.#draining) void this.#start();
    };
    // The rest of this tick's events join the batch, and those of the interval's rest.
    const wait = this.#lastStart + this.#intervalMs - performance.now();
    if (wait >= 1) setTimeout(run, wait);
    else setImmediate(run);
  }

  #start(): Promise<void> {
    this.#current = this.#drain();
    return this.#current;
  }

  /** Commits batches until the queue is empty (events that arrive meanwhile form the next). */
  async #drain(): Promise<void> {
    this.#draining = true;
    try {
      while (this.#queue.length > 0) {
        const wait = this.#lastStart + this.#intervalMs - performance.now();
        if (wait >= 1 && this.#queue.length < this.#maxBatch && !this.#closed) {
          await new Promise((r) => setTimeout(r, wait));
        }
        this.#lastStart = performance.now();
        const batch = this.#queue.splice(0, this.#maxBatch);
        this.#admit();
        try {
          await this.#commit(batch.map((p) => p.item));
          this.#batches++;
          for (const p of batch) p.resolve();
        } catch (e) {
          for (const p of batch) p.reject(e);
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
