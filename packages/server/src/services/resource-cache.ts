/**
 * A live view of every item under a backend prefix: list, then watch from the list's
 * revision (no event missed or repeated), re-list when the watch reports
 * WARDEN_ERR_COMPACTED, retry after other failures. Exposes the current values, `healthy`
 * and `lastSyncAt`, so a strict locking mode can deny while the view is stale; a view is never
 * fresher than its backend, so `staleForMs` also counts the time the backend itself has been
 * cut off from a shared store (`Backend.staleForMs`: PostgreSQL's watchers wait out an outage
 * without failing). Proxies and agents keep roles, locks and cluster config this way (DESIGN §3).
 * Internal to `services/`; the public surface is `services/index.ts`.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { isWardenError } from '@warden/api';
import type { Backend, BackendEvent, Item, Watcher } from '../backend';
import type { Clock } from '../clock';
import type { Logger } from '../log';

export interface ResourceCacheOptions<T> {
  backend: Backend;
  clock: Clock;
  /** Key prefix to mirror, e.g. `/locks/`. */
  prefix: string;
  /** Turns an item into a value; a throw marks the item invalid and the cache unhealthy. */
  decode: (item: Item) => T;
  logger?: Logger;
  /** Wait before re-listing after a failure other than compaction (default 1000 ms). */
  retryDelayMs?: number;
}

export type CacheChange<T> =
  | { type: 'put'; key: string; value: T }
  | { type: 'delete'; key: string }
  /** The whole view was replaced by a (re-)list. */
  | { type: 'reset' };

export const DEFAULT_CACHE_RETRY_DELAY_MS = 1000;

/**
 * @example
 *   const locks = new ResourceCache({ backend, clock, prefix: '/locks/', decode: (i) => services.locks.decode(i) });
 *   await locks.start();
 *   locks.values(); // every lock, kept current by the watch
 *   locks.close();
 */
export class ResourceCache<T> {
  readonly prefix: string;
  readonly #opts: ResourceCacheOptions<T>;
  readonly #values = new Map<string, T>();
  /** `values()` in key order, until the next change. */
  #sorted: T[] | undefined;
  /** Keys whose stored value failed to decode; while any exist the view is unhealthy. */
  readonly #invalid = new Set<string>();
  readonly #listeners = new Set<(change: CacheChange<T>) => void>();
  readonly #revWaiters = new Set<{ rev: number; resolve: () => void }>();
  readonly #abort = new AbortController();
  #watcher: Watcher | undefined;
  #watching = false;
  #rev = 0;
  #lastSyncAt: number | undefined;
  #started: Promise<void> | undefined;
  #closed = false;

  constructor(opts: ResourceCacheOptions<T>) {
    this.prefix = opts.prefix;
    this.#opts = opts;
  }

  /** Starts listing and watching; resolves after the first successful list. Idempotent. */
  start(): Promise<void> {
    this.#started ??= new Promise<void>((resolve, reject) => {
      void this.#run(resolve, reject);
    });
    // Callers that never await start() must not see an unhandled rejection on close().
    this.#started.catch(() => undefined);
    return this.#started;
  }

  /** True while the watch is running and every stored item decoded. */
  get healthy(): boolean {
    return this.#watching && this.#invalid.size === 0;
  }

  /** When the view was last known current (list, event, or the moment the watch broke). */
  get lastSyncAt(): number | undefined {
    return this.#lastSyncAt;
  }

  /**
   * How long the view has been stale at `now` (0 while healthy and the backend in contact;
   * Infinity before the first list): the longer of the watch's outage and the backend's.
   */
  staleForMs(now: number): number {
    const backend = this.#opts.backend.staleForMs?.(now) ?? 0;
    if (this.healthy) return backend;
    const own =
      this.#lastSyncAt === undefined ? Number.POSITIVE_INFINITY : Math.max(0, now - this.#lastSyncAt);
    return Math.max(own, backend);
  }

  /** The backend revision the view reflects. */
  get rev(): number {
    return this.#rev;
  }

  /**
   * Current values in key order (a copy). The order is sorted once per change, not per call:
   * the access checker reads the lock view on every app request.
   */
  values(): T[] {
    this.#sorted ??= [...this.#values.entries()]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([, v]) => v);
    return this.#sorted.slice();
  }

  /** The value stored at prefix + `name`. */
  get(name: string): T | undefined {
    return this.#values.get(this.prefix + name);
  }

  /** Calls `listener` after every change; returns the unsubscribe function. */
  onChange(listener: (change: CacheChange<T>) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Resolves once the view reflects backend revision `rev` of this prefix (or the cache closes). */
  waitForRev(rev: number): Promise<void> {
    if (this.#rev >= rev || this.#closed) return Promise.resolve();
    return new Promise((resolve) => this.#revWaiters.add({ rev, resolve }));
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    const watcher = this.#watcher;
    this.#broke();
    this.#abort.abort();
    watcher?.close();
    for (const w of this.#revWaiters) w.resolve();
    this.#revWaiters.clear();
  }

  async #run(resolve: () => void, reject: (e: unknown) => void): Promise<void> {
    const { backend, prefix, logger } = this.#opts;
    while (!this.#closed) {
      try {
        const { items, rev } = await backend.range(prefix);
        if (this.#closed) break;
        this.#reset(items, rev);
        resolve();
        const watcher = backend.watch(prefix, { sinceRev: rev });
        this.#watcher = watcher;
        this.#watching = true;
        for await (const event of watcher) {
          if (this.#closed) break;
          this.#apply(event);
        }
        this.#broke();
      } catch (e) {
        this.#broke();
        if (this.#closed) break;
        if (isWardenError(e, 'WARDEN_ERR_COMPACTED')) {
          logger?.info({ prefix }, 'watch compacted; re-listing');
          continue;
        }
        if (isWardenError(e, 'WARDEN_ERR_CLOSED')) {
          logger?.warn({ prefix }, 'backend closed; cache stopped');
          this.close();
          break;
        }
        logger?.warn({ prefix, err: e }, 'cache watch failed; retrying');
        try {
          await sleep(this.#opts.retryDelayMs ?? DEFAULT_CACHE_RETRY_DELAY_MS, undefined, {
            signal: this.#abort.signal,
          });
        } catch {
          break;
        }
      }
    }
    reject(new Error('cache closed before its first list'));
  }

  #broke(): void {
    if (this.#watching) this.#lastSyncAt = this.#opts.clock.now();
    this.#watching = false;
    this.#watcher = undefined;
  }

  #decode(item: Item): { ok: true; value: T } | { ok: false } {
    try {
      return { ok: true, value: this.#opts.decode(item) };
    } catch (e) {
      this.#opts.logger?.error({ key: item.key, err: e }, 'cached item is invalid; view is unhealthy');
      return { ok: false };
    }
  }

  #reset(items: Item[], rev: number): void {
    this.#sorted = undefined;
    this.#values.clear();
    this.#invalid.clear();
    for (const item of items) {
      const res = this.#decode(item);
      if (res.ok) this.#values.set(item.key, res.value);
      else this.#invalid.add(item.key);
    }
    this.#synced(rev);
    this.#emit({ type: 'reset' });
  }

  #apply(event: BackendEvent): void {
    this.#sorted = undefined;
    if (event.type === 'put') {
      const res = this.#decode(event.item);
      if (res.ok) {
        this.#invalid.delete(event.item.key);
        this.#values.set(event.item.key, res.value);
        this.#synced(event.rev);
        this.#emit({ type: 'put', key: event.item.key, value: res.value });
      } else {
        this.#invalid.add(event.item.key);
        this.#values.delete(event.item.key);
        this.#synced(event.rev);
        this.#emit({ type: 'delete', key: event.item.key });
      }
    } else {
      this.#invalid.delete(event.key);
      this.#values.delete(event.key);
      this.#synced(event.rev);
      this.#emit({ type: 'delete', key: event.key });
    }
  }

  #synced(rev: number): void {
    this.#rev = rev;
    this.#lastSyncAt = this.#opts.clock.now();
    for (const w of this.#revWaiters) {
      if (w.rev <= rev) {
        this.#revWaiters.delete(w);
        w.resolve();
      }
    }
  }

  #emit(change: CacheChange<T>): void {
    for (const listener of this.#listeners) {
      try {
        listener(change);
      } catch (e) {
        this.#opts.logger?.error({ prefix: this.prefix, err: e }, 'cache listener failed');
      }
    }
  }
}
