/**
 * Login rate limiting: failed attempts are counted per (user, source address), per user
 * across all sources, and per source address; too many within `windowMs` lock that pair,
 * user or address out for `lockoutMs`.
 *
 *   (user, address)   maxFailures (5)                 the usual lockout: a guesser from one
 *                                                      place stops, the user elsewhere goes on
 *   user              maxFailuresPerUser (10 × 5)     the slower back-off for guessing from
 *                                                      many places at once
 *   address           maxFailuresPerAddress (4 × 5)   one place guessing at many users
 *
 * Locking out by user alone let anyone lock any account for 20 minutes with 5 bad passwords
 * (issue 15 item 13); the pair comes first, as mature login services do.
 *
 * How the login service uses it:
 *
 *   limiter.check(user, addr);            // 1. before any password work: throws RATE_LIMITED
 *   if (!ok) limiter.recordFailure(user, addr);   // 2a. also for unknown users (no enumeration)
 *   else limiter.recordSuccess(user, addr);       // 2b. clears the user's counts only
 *
 * A success does not clear the address's count: otherwise an attacker could guess at other
 * users' passwords and reset the counter by logging into their own account in between.
 * Memory is bounded: each table keeps at most `maxKeys` entries; when one is full, idle
 * entries go first, then the least recently failed unlocked ones, locked ones last.
 * State lives in this process only (each auth replica limits on its own).
 *
 * Who may import: `auth/` (login). Tested by `rate-limit.test.ts` with a FakeClock.
 */
import { WardenError } from '@warden/api';
import type { Clock } from '../clock';

export interface LoginRateLimiterOptions {
  clock: Clock;
  /** Failures per user within the window before that user is locked out (default 5). */
  maxFailures?: number;
  /** Failures per user from all sources before the user is locked out (default 10 × maxFailures). */
  maxFailuresPerUser?: number;
  /** Failures per source address before it is locked out (default 4 × maxFailures, for NAT). */
  maxFailuresPerAddress?: number;
  /** Window in which failures are counted, from the first one (default 30 min). */
  windowMs?: number;
  /** How long a lockout lasts (default 20 min). */
  lockoutMs?: number;
  /** Entries kept per table, users and addresses (default 10 000). */
  maxKeys?: number;
}

export const LOGIN_RATE_LIMIT_DEFAULTS = Object.freeze({
  maxFailures: 5,
  windowMs: 30 * 60_000,
  lockoutMs: 20 * 60_000,
  maxKeys: 10_000,
});

interface Entry {
  failures: number;
  windowStart: number;
  lockedUntil: number;
}

/** Whole seconds, minutes or hours, rounded up: `45s`, `4m`, `1h5m`. */
function retryText(ms: number): string {
  const seconds = Math.max(1, Math.ceil(ms / 1000));
  if (seconds < 60) return `${seconds}s`;
  const minutes = Math.ceil(seconds / 60);
  if (minutes < 60) return `${minutes}m`;
  const h = Math.floor(minutes / 60);
  const m = minutes % 60;
  return m === 0 ? `${h}h` : `${h}h${m}m`;
}

function positiveInteger(name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new WardenError('WARDEN_ERR_BAD_PARAMETER', `${name} must be a positive integer, got ${value}`);
  }
  return value;
}

function pairKey(user: string, addr: string): string {
  return `${addr}\u0000${user}`;
}

/** One table of counters with bounded size. */
class FailureTable {
  readonly #entries = new Map<string, Entry>();
  constructor(
    readonly limit: number,
    readonly windowMs: number,
    readonly lockoutMs: number,
    readonly maxKeys: number,
  ) {}

  get size(): number {
    return this.#entries.size;
  }

  /** Remaining lockout in ms, or 0. */
  lockedFor(key: string, now: number): number {
    const e = this.#entries.get(key);
    return e === undefined ? 0 : Math.max(0, e.lockedUntil - now);
  }

  fail(key: string, now: number): void {
    let e = this.#entries.get(key);
    if (e === undefined) {
      this.#makeRoom(now);
      e = { failures: 0, windowStart: now, lockedUntil: 0 };
    } else {
      this.#entries.delete(key); // re-inserted below: Map order is least recently failed first
    }
    if (now - e.windowStart >= this.windowMs) {
      e.failures = 0;
      e.windowStart = now;
    }
    e.failures++;
    if (e.failures >= this.limit) {
      e.lockedUntil = now + this.lockoutMs;
      e.failures = 0;
      e.windowStart = now;
    }
    this.#entries.set(key, e);
  }

  clear(key: string): void {
    this.#entries.delete(key);
  }

  #idle(e: Entry, now: number): boolean {
    return e.lockedUntil <= now && now - e.windowStart >= this.windowMs;
  }

  #makeRoom(now: number): void {
    if (this.#entries.size < this.maxKeys) return;
    // Evict down to 90 % so a flood of new keys costs one sweep per tenth of the table.
    const target = Math.floor(this.maxKeys * 0.9);
    for (const [k, e] of this.#entries) if (this.#idle(e, now)) this.#entries.delete(k);
    for (const [k, e] of this.#entries) {
      if (this.#entries.size <= target) return;
      if (e.lockedUntil <= now) this.#entries.delete(k);
    }
    for (const k of this.#entries.keys()) {
      if (this.#entries.size <= target) return;
      this.#entries.delete(k);
    }
  }
}

/**
 * Counts failed logins per user and per source address and refuses further attempts while
 * either is locked out.
 *
 * @example
 *   const limiter = new LoginRateLimiter({ clock, maxFailures: 5, windowMs: 30 * 60_000, lockoutMs: 20 * 60_000 });
 *   limiter.check('alice', '203.0.113.7'); // throws WARDEN_ERR_RATE_LIMITED while locked out
 */
export class LoginRateLimiter {
  readonly #clock: Clock;
  readonly #pairs: FailureTable;
  readonly #users: FailureTable;
  readonly #addrs: FailureTable;

  constructor(options: LoginRateLimiterOptions) {
    const d = LOGIN_RATE_LIMIT_DEFAULTS;
    const maxFailures = positiveInteger('maxFailures', options.maxFailures ?? d.maxFailures);
    const perAddr = positiveInteger(
      'maxFailuresPerAddress',
      options.maxFailuresPerAddress ?? maxFailures * 4,
    );
    const windowMs = positiveInteger('windowMs', options.windowMs ?? d.windowMs);
    const lockoutMs = positiveInteger('lockoutMs', options.lockoutMs ?? d.lockoutMs);
    const maxKeys = positiveInteger('maxKeys', options.maxKeys ?? d.maxKeys);
    const perUser = positiveInteger('maxFailuresPerUser', options.maxFailuresPerUser ?? maxFailures * 10);
    this.#clock = options.clock;
    this.#pairs = new FailureTable(maxFailures, windowMs, lockoutMs, maxKeys);
    this.#users = new FailureTable(perUser, windowMs, lockoutMs, maxKeys);
    this.#addrs = new FailureTable(perAddr, windowMs, lockoutMs, maxKeys);
  }

  /**
   * Throws if the user or the address is locked out. Call before checking credentials.
   *
   * @throws WardenError WARDEN_ERR_RATE_LIMITED with `details.retryAfterMs`.
   */
  check(user: string, addr: string): void {
    const now = this.#clock.now();
    const pairWait = this.#pairs.lockedFor(pairKey(user, addr), now);
    if (pairWait > 0) {
      throw new WardenError(
        'WARDEN_ERR_RATE_LIMITED',
        `too many failed login attempts for user ${JSON.stringify(user)} from ${addr}; try again in ${retryText(pairWait)}`,
        { retryAfterMs: pairWait },
      );
    }
    const userWait = this.#users.lockedFor(user, now);
    if (userWait > 0) {
      throw new WardenError(
        'WARDEN_ERR_RATE_LIMITED',
        `too many failed login attempts for user ${JSON.stringify(user)}; try again in ${retryText(userWait)}`,
        { retryAfterMs: userWait },
      );
    }
    const addrWait = this.#addrs.lockedFor(addr, now);
    if (addrWait > 0) {
      throw new WardenError(
        'WARDEN_ERR_RATE_LIMITED',
        `too many failed login attempts from ${addr}; try again in ${retryText(addrWait)}`,
        { retryAfterMs: addrWait },
      );
    }
  }

  /** Counts a failed attempt against the pair, the user and the address. */
  recordFailure(user: string, addr: string): void {
    const now = this.#clock.now();
    this.#pairs.fail(pairKey(user, addr), now);
    this.#users.fail(user, now);
    this.#addrs.fail(addr, now);
  }

  /** Forgets the user's failures after a successful login (the address's count stays). */
  recordSuccess(user: string, addr: string): void {
    this.#pairs.clear(pairKey(user, addr));
    this.#users.clear(user);
  }

  /** Entries currently kept (pairs + users + addresses); for tests and metrics. */
  get trackedKeys(): number {
    return this.#pairs.size + this.#users.size + this.#addrs.size;
  }
}
