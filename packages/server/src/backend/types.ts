/**
 * The backend contract (DESIGN §3): an ordered key-value store with etcd's semantics.
 *
 * - One revision counter for the whole store, gap-free, in commit order. Every write
 *   (create, put, CAS, delete, TTL expiry) takes exactly one new revision.
 * - Every item carries `createRev` and `modRev`.
 * - `range` returns the items and the revision it was read at, so a reader can list and then
 *   `watch(prefix, rev)` without missing or repeating an event.
 * - Expired items are invisible to reads at once; their removal is a `delete` event like any
 *   other (emitted by the implementation's reaper, or lazily before the next write).
 * - Old events are compacted; `watch` from a revision below the compacted one fails with
 *   `WARDEN_ERR_COMPACTED` and the reader re-lists.
 *
 * Keys are `/`-separated strings (`/users/alice`); values are strings (JSON by convention).
 * Errors are WardenErrors: ALREADY_EXISTS (create), COMPARE_FAILED (CAS), NOT_FOUND,
 * COMPACTED (watch), CLOSED (after close()). A key's error carries `details.key`.
 */

export interface Item {
  key: string;
  value: string;
  createRev: number;
  modRev: number;
  /** Expiry time in ms since the epoch (backend clock), if the item has a TTL. */
  expires?: number;
}

export interface RangeResult {
  items: Item[];
  /** The store revision the range was read at. */
  rev: number;
}

export interface WriteOptions {
  /** Time to live in milliseconds; the item is deleted (with a delete event) when it passes. */
  ttlMs?: number;
}

/** One operation of `Backend.txn`: the single-key write of the same name, as a part of it. */
export type TxnOp =
  | { type: 'create'; key: string; value: string; opts?: WriteOptions }
  | { type: 'put'; key: string; value: string; opts?: WriteOptions }
  | { type: 'cas'; key: string; expectedModRev: number; value: string; opts?: WriteOptions }
  | { type: 'delete'; key: string; expectedModRev?: number };

export type BackendEvent =
  | { type: 'put'; rev: number; item: Item }
  | { type: 'delete'; rev: number; key: string };

export interface WatchOptions {
  /** Deliver events with revision strictly greater than this. */
  sinceRev: number;
}

/**
 * A stream of events for a prefix. Iterate with `for await`. The iterator throws
 * WARDEN_ERR_COMPACTED if `sinceRev` is below the compacted revision (also later, if a slow
 * reader falls behind compaction) and WARDEN_ERR_CLOSED if the backend was already closed;
 * it ends when `close()` is called (or the loop breaks) or the backend closes. A pending
 * watcher does not keep the Node.js event loop alive.
 */
export interface Watcher extends AsyncIterable<BackendEvent> {
  close(): void;
}

export interface Backend {
  get(key: string): Promise<Item | undefined>;
  /** All live items whose key starts with `prefix`, in key order. */
  range(prefix: string): Promise<RangeResult>;
  /** Creates the key if absent (an expired key counts as absent); else ALREADY_EXISTS. */
  create(key: string, value: string, opts?: WriteOptions): Promise<Item>;
  /** Creates or overwrites. */
  put(key: string, value: string, opts?: WriteOptions): Promise<Item>;
  /** Writes only if the item's current modRev equals `expectedModRev`; else COMPARE_FAILED (NOT_FOUND if absent). */
  compareAndSwap(key: string, expectedModRev: number, value: string, opts?: WriteOptions): Promise<Item>;
  /**
   * Deletes the key; false if it did not exist (with or without `expectedModRev`). With
   * `expectedModRev`, only if unchanged (else COMPARE_FAILED).
   */
  delete(key: string, opts?: { expectedModRev?: number }): Promise<boolean>;
  /**
   * Several writes to distinct keys, all or none (etcd's transaction with conditions): every
   * operation's condition (`create`: the key is absent; `cas`: its modRev is the one expected;
   * `delete` with `expectedModRev`: absent or unchanged) is checked against the store as it is
   * when the transaction runs, and if one fails nothing is written and its error is thrown
   * (ALREADY_EXISTS, NOT_FOUND or COMPARE_FAILED, as the single write gives, `details.key`
   * naming the key). Otherwise every operation is applied, in order, each taking one revision
   * (a delete of an absent key takes none and answers false). Answers, per operation, the
   * item written or whether the key was deleted. BAD_PARAMETER (at once) for no operations,
   * more than `MAX_TXN_OPS` (rules.ts), a key named twice, or a bad argument of any operation.
   */
  txn(ops: readonly TxnOp[]): Promise<(Item | boolean)[]>;
  /** Deletes every key with the prefix (one revision per deleted key); returns how many. */
  deleteRange(prefix: string): Promise<number>;
  /** Bad arguments throw BAD_PARAMETER at once; other errors come from the iterator. */
  watch(prefix: string, opts: WatchOptions): Watcher;
  /** The latest revision. */
  currentRev(): Promise<number>;
  /** Drops events with revision <= rev from the history. */
  compact(rev: number): Promise<void>;
  /**
   * Deletes every expired key now, one delete event each, and returns how many. Optional:
   * implementations also reap on their own timer; tests call this to make expiry deterministic.
   */
  reapExpired?(): Promise<number>;
  /**
   * How long this process has been cut off from the store at `now` (its own clock), in ms: 0
   * while in contact. Only a shared store implements it (PostgreSQL: its watchers wait out an
   * outage silently, so a view fed by them cannot tell it is stale); views built on `watch`
   * (`ResourceCache`) count it in their own staleness, so `locking_mode: strict` sees it.
   */
  staleForMs?(now: number): number;
  close(): Promise<void>;
}
