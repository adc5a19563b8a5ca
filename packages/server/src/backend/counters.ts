/**
 * Rate counters: short-lived counts shared by every replica that shares the backend, for the
 * rate limits of unauthenticated routes and logins (issue 15 items 4 and 13). A counter lives
 * in a fixed window: the first `add` starts it, later ones count up, and it is gone when the
 * window ends. Times come from the store's clock (PostgreSQL's `now()` for a shared store),
 * so replicas with skewed clocks agree; callers get the time left (`resetInMs`), never an
 * instant. Counters are not part of the key space: no revisions, no watch events, no fsync.
 *
 * Implementations: `MemoryRateCounters` (one process: the memory backend, and SQLite, whose
 * file one process owns, so its counters are the whole cluster's), `PostgresRateCounters`
 * (an UNLOGGED table next to the backend's). Tested through the limiters: auth's
 * `rate-limit.test.ts` (memory, FakeClock) and test/ha/rate-limits.e2e.test.ts (PostgreSQL,
 * two replicas).
 *
 * @example
 *   const [n] = await counters.add(['unauth:203.0.113.7'], 60_000);
 *   if (n.count > 120) throw new WardenError('WARDEN_ERR_RATE_LIMITED', '…', { retryAfterMs: n.resetInMs });
 */
import { WardenError } from '@warden/api';
import { type Clock, systemClock } from '../clock';

/** One counter: its count and the time left in its window, in ms (at least 1). */
export interface RateCount {
  count: number;
  resetInMs: number;
}

export interface RateCounters {
  /**
   * Adds one to each counter (one that is absent or past its window starts a new window of
   * `windowMs` at 1) and returns them after the add, in the order of `keys` (duplicates count once).
   */
  add(keys: readonly string[], windowMs: number): Promise<RateCount[]>;
  /** The live counters, undefined where absent or past their window. */
  get(keys: readonly string[]): Promise<(RateCount | undefined)[]>;
  /** Sets a counter to `count` for `ttlMs` from now (a lockout), whatever it was. */
  set(key: string, count: number, ttlMs: number): Promise<void>;
  delete(keys: readonly string[]): Promise<void>;
  close(): Promise<void>;
}

export interface MemoryRateCountersOptions {
  clock?: Clock;
  /** Counters kept at most; when full, expired ones go first, then the oldest, lockouts last (default 100 000). */
  maxKeys?: number;
}

interface Slot {
  count: number;
  expires: number;
  /** Set by `set` (a lockout): evicted after every plain counter. */
  held: boolean;
}

export function checkWindow(name: string, ms: number): number {
  if (!Number.isSafeInteger(ms) || ms < 1)
    throw new WardenError(
      'WARDEN_ERR_BAD_PARAMETER',
      `${name} must be a positive whole number of ms, got ${ms}`,
    );
  return ms;
}

/** Counters in this process's memory, bounded. */
export class MemoryRateCounters implements RateCounters {
  readonly #clock: Clock;
  readonly #maxKeys: number;
  /** In order of the last add or set: the first entries are the oldest. */
  readonly #slots = new Map<string, Slot>();

  constructor(o: MemoryRateCountersOptions = {}) {
    this.#clock = o.clock ?? systemClock;
    this.#maxKeys = checkWindow('maxKeys', o.maxKeys ?? 100_000);
  }

  get size(): number {
    return this.#slots.size;
  }

  async add(keys: readonly string[], windowMs: number): Promise<RateCount[]> {
    checkWindow('windowMs', windowMs);
    const now = this.#clock.now();
    const seen = new Map<string, RateCount>();
    for (const key of keys) {
      if (seen.has(key)) continue;
      let s = this.#slots.get(key);
      if (s === undefined || s.expires <= now) s = { count: 0, expires: now + windowMs, held: false };
      s.count++;
      this.#store(key, s, now);
      seen.set(key, { count: s.count, resetInMs: Math.max(1, s.expires - now) });
    }
    return keys.map((k) => seen.get(k)!);
  }

  async get(keys: readonly string[]): Promise<(RateCount | undefined)[]> {
    const now = this.#clock.now();
    return keys.map((k) => {
      const s = this.#slots.get(k);
      return s && s.expires > now ? { count: s.count, resetInMs: s.expires - now } : undefined;
    });
  }

  async set(key: string, count: number, ttlMs: number): Promise<void> {
    checkWindow('ttlMs', ttlMs);
    const now = this.#clock.now();
    this.#store(key, { count, expires: now + ttlMs, held: true }, now);
  }

  async delete(keys: readonly string[]): Promise<void> {
    for (const k of keys) this.#slots.delete(k);
  }

  async close(): Promise<void> {
    this.#slots.clear();
  }

  #store(key: string, slot: Slot, now: number): void {
    this.#slots.delete(key);
    if (this.#slots.size >= this.#maxKeys) {
      // Down to 90 %, so a flood of new keys costs one sweep per tenth of the table.
      const target = Math.floor(this.#maxKeys * 0.9);
      for (const [k, s] of this.#slots) if (s.expires <= now) this.#slots.delete(k);
      for (const [k, s] of this.#slots) {
        if (this.#slots.size <= target) break;
        if (!s.held) this.#slots.delete(k);
      }
      for (const k of this.#slots.keys()) {
        if (this.#slots.size <= target) break;
        this.#slots.delete(k);
      }
    }
    this.#slots.set(key, slot);
  }
}
