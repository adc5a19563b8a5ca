/**
 * The in-memory backend: the reference implementation of the contract in `types.ts`, for
 * unit tests. Nothing survives `close()`. Time for TTLs comes from the clock passed in.
 * Tested by the conformance suite (`memory.test.ts`).
 *
 * @example
 *   const clock = new FakeClock();
 *   const backend = new MemoryBackend({ clock });
 *   await backend.create('/users/alice', '{}', { ttlMs: 60_000 });
 *   clock.advance(60_000);
 *   await backend.reapExpired(); // emits the delete event
 */
import { WardenError } from '@warden/api';
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
  compareKeys,
  DEFAULT_REAP_INTERVAL_MS,
  expiresAt,
  integerOption,
  isExpired,
  keyError,
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

export interface MemoryBackendOptions {
  /** Time source for TTLs (default: the system clock). */
  clock?: Clock;
  /** Events kept for watchers; older ones are compacted automatically (default 10 000). */
  maxHistory?: number;
  /** How often the reaper deletes expired keys, in ms; 0 disables the timer (default 1000). */
  reapIntervalMs?: number;
}

export const MEMORY_DEFAULT_MAX_HISTORY = 10_000;

function copyItem(item: Item): Item {
  return item.expires === undefined
    ? { key: item.key, value: item.value, createRev: item.createRev, modRev: item.modRev }
    : {
        key: item.key,
        value: item.value,
        createRev: item.createRev,
        modRev: item.modRev,
        expires: item.expires,
      };
}

function copyEvent(event: BackendEvent): BackendEvent {
  return event.type === 'put' ? { type: 'put', rev: event.rev, item: copyItem(event.item) } : { ...event };
}

export class MemoryBackend implements Backend, EventLog {
  readonly #clock: Clock;
  readonly #maxHistory: number;
  readonly #items = new Map<string, Item>();
  /** Events with revisions compactedRev+1 .. rev, in order (the log is gap-free). */
  #history: BackendEvent[] = [];
  #rev = 0;
  #compactedRev = 0;
  #closed = false;
  readonly #watchers = new Watchers(this);
  readonly #timer: NodeJS.Timeout | undefined;

  constructor(opts: MemoryBackendOptions = {}) {
    this.#clock = opts.clock ?? systemClock;
    this.#maxHistory = integerOption(opts.maxHistory, MEMORY_DEFAULT_MAX_HISTORY, 'maxHistory', 1);
    const interval = integerOption(opts.reapIntervalMs, DEFAULT_REAP_INTERVAL_MS, 'reapIntervalMs', 0);
    if (interval > 0) {
      this.#timer = setInterval(() => {
        if (!this.#closed) this.#write(() => undefined);
      }, interval);
      this.#timer.unref();
    }
  }

  async get(key: string): Promise<Item | undefined> {
    this.#assertOpen();
    checkKey(key);
    const item = this.#live(key, this.#clock.now());
    return item && copyItem(item);
  }

  async range(prefix: string): Promise<RangeResult> {
    this.#assertOpen();
    checkPrefix(prefix);
    const now = this.#clock.now();
    const items: Item[] = [];
    for (const item of this.#items.values()) {
      if (item.key.startsWith(prefix) && !isExpired(item.expires, now)) items.push(copyItem(item));
    }
    items.sort((a, b) => compareKeys(a.key, b.key));
    return { items, rev: this.#rev };
  }

  async create(key: string, value: string, opts?: WriteOptions): Promise<Item> {
    this.#assertOpen();
    checkWrite(key, value, opts);
    return this.#write((now) => {
      if (this.#items.has(key)) throw keyError.exists(key);
      return this.#putItem(key, value, undefined, expiresAt(now, opts));
    });
  }

  async put(key: string, value: string, opts?: WriteOptions): Promise<Item> {
    this.#assertOpen();
    checkWrite(key, value, opts);
    return this.#write((now) => this.#putItem(key, value, this.#items.get(key), expiresAt(now, opts)));
  }

  async compareAndSwap(
    key: string,
    expectedModRev: number,
    value: string,
    opts?: WriteOptions,
  ): Promise<Item> {
    this.#assertOpen();
    checkSwap(key, expectedModRev, value, opts);
    return this.#write((now) => {
      const prev = this.#items.get(key);
      if (!prev) throw keyError.missing(key);
      if (prev.modRev !== expectedModRev) {
        throw keyError.changed(key);
      }
      return this.#putItem(key, value, prev, expiresAt(now, opts));
    });
  }

  async delete(key: string, opts?: { expectedModRev?: number }): Promise<boolean> {
    this.#assertOpen();
    const expected = checkDelete(key, opts);
    return this.#write(() => {
      const prev = this.#items.get(key);
      if (!prev) return false;
      if (expected !== undefined && prev.modRev !== expected) {
        throw keyError.changed(key);
      }
      this.#deleteItem(key);
      return true;
    });
  }

  async txn(ops: readonly TxnOp[]): Promise<(Item | boolean)[]> {
    this.#assertOpen();
    checkTxn(ops);
    return this.#write((now) => {
      // Every condition first: a failed one leaves the store as it was.
      for (const op of ops) {
        const prev = this.#items.get(op.key);
        checkTxnCondition(op, prev?.modRev);
      }
      return ops.map((op) => {
        const prev = this.#items.get(op.key);
        if (op.type !== 'delete') return this.#putItem(op.key, op.value, prev, expiresAt(now, op.opts));
        if (!prev) return false;
        this.#deleteItem(op.key);
        return true;
      });
    });
  }

  async deleteRange(prefix: string): Promise<number> {
    this.#assertOpen();
    checkPrefix(prefix);
    return this.#write(() => {
      const keys = [...this.#items.keys()].filter((k) => k.startsWith(prefix)).sort(compareKeys);
      for (const key of keys) this.#deleteItem(key);
      return keys.length;
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
    this.#compactTo(rev);
  }

  /** Deletes every expired key now (one delete event each); returns how many. */
  async reapExpired(): Promise<number> {
    this.#assertOpen();
    const before = this.#rev;
    this.#write(() => undefined);
    return this.#rev - before;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#timer) clearInterval(this.#timer);
    this.#watchers.closeAll();
    this.#items.clear();
    this.#history = [];
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
    const events: BackendEvent[] = [];
    for (let rev = afterRev + 1; rev <= through; rev++) {
      const event = this.#history[rev - this.#compactedRev - 1]!;
      const key = event.type === 'put' ? event.item.key : event.key;
      if (key.startsWith(prefix)) events.push(copyEvent(event));
    }
    return { events, scannedThrough: through, head: this.#rev };
  }

  #assertOpen(): void {
    if (this.#closed) throw new WardenError('WARDEN_ERR_CLOSED', 'the backend is closed');
  }

  #live(key: string, now: number): Item | undefined {
    const item = this.#items.get(key);
    return item && !isExpired(item.expires, now) ? item : undefined;
  }

  /**
   * Runs one write: first deletes expired keys (so the write sees them as absent and their
   * delete events come first), then `fn`; afterwards trims the history and wakes watchers.
   */
  #write<R>(fn: (now: number) => R): R {
    this.#assertOpen();
    const before = this.#rev;
    const now = this.#clock.now();
    try {
      const expired = [...this.#items.values()].filter((i) => isExpired(i.expires, now)).map((i) => i.key);
      for (const key of expired.sort(compareKeys)) this.#deleteItem(key);
      return fn(now);
    } finally {
      if (this.#rev !== before) {
        const slack = Math.max(1, Math.ceil(this.#maxHistory / 8));
        if (this.#rev - this.#compactedRev >= this.#maxHistory + slack)
          this.#compactTo(this.#rev - this.#maxHistory);
        this.#watchers.wakeAll();
      }
    }
  }

  #putItem(key: string, value: string, prev: Item | undefined, expires: number | undefined): Item {
    const rev = this.#rev + 1;
    const item: Item = { key, value, createRev: prev?.createRev ?? rev, modRev: rev };
    if (expires !== undefined) item.expires = expires;
    this.#items.set(key, item);
    this.#append({ type: 'put', rev, item });
    return copyItem(item);
  }

  #deleteItem(key: string): void {
    this.#items.delete(key);
    this.#append({ type: 'delete', rev: this.#rev + 1, key });
  }

  #append(event: BackendEvent): void {
    this.#rev = event.rev;
    this.#history.push(event);
  }

  #compactTo(rev: number): void {
    if (rev <= this.#compactedRev) return;
    this.#history.splice(0, rev - this.#compactedRev);
    this.#compactedRev = rev;
  }
}
