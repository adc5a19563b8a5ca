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
 *   await limiter.check(user, addr);            // 1. before any password work: throws RATE_LIMITED
 *   if (!ok) await limiter.recordFailure(user, addr);   // 2a. also for unknown users (no enumeration)
 *   else await limiter.recordSuccess(user, addr);       // 2b. clears the user's counts only
 *
 * A success does not clear the address's count: otherwise an attacker could guess at other
 * users' passwords and reset the counter by logging into their own account in between.
 * The counts live in the backend's rate counters (`RateCounters`), so every replica sharing
 * a backend counts together; keys are hashes of the user and address (bounded size).
 * `SourceRateLimits` below limits every unauthenticated route by source address the same way.
 *
 * Who may import: `auth/` (login), the proxy and the Web UI (through `auth/index.ts`). Tested
 * by `rate-limit.test.ts` with a FakeClock, and against real replicas in test/hardening/.
 */
import { createHash } from 'node:crypto';
import { isWardenError, WardenError } from '@warden/api';
import { MemoryRateCounters, type RateCounters } from '../backend';
import type { Clock } from '../clock';

export interface LoginRateLimiterOptions {
  /** Where failures are counted (the backend's, shared by replicas); default: this process's memory. */
  counters?: RateCounters;
  /** The clock of the default in-memory counters. */
  clock?: Clock;
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
  /** Counters kept by the default in-memory store (default 10 000). */
  maxKeys?: number;
}

export const LOGIN_RATE_LIMIT_DEFAULTS = Object.freeze({
  maxFailures: 5,
  windowMs: 30 * 60_000,
  lockoutMs: 20 * 60_000,
  maxKeys: 10_000,
});

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

/** A counter key: the kind, then a hash (user names and addresses are the client's; keys stay short). */
function counterKey(kind: string, ...parts: string[]): string {
  return `${kind}:${createHash('sha256').update(parts.join('\u0000')).digest('base64url').slice(0, 32)}`;
}

/**
 * Counts failed logins per (user, address), user and address in the shared rate counters,
 * and refuses further attempts while any of them is locked out.
 *
 * @example
 *   const limiter = new LoginRateLimiter({ counters, maxFailures: 5, windowMs: 30 * 60_000, lockoutMs: 20 * 60_000 });
 *   await limiter.check('alice', '203.0.113.7'); // throws WARDEN_ERR_RATE_LIMITED while locked out
 */
export class LoginRateLimiter {
  readonly #counters: RateCounters;
  readonly #limits: { pair: number; user: number; addr: number };
  readonly #windowMs: number;
  readonly #lockoutMs: number;

  constructor(options: LoginRateLimiterOptions) {
    const d = LOGIN_RATE_LIMIT_DEFAULTS;
    const maxFailures = positiveInteger('maxFailures', options.maxFailures ?? d.maxFailures);
    this.#limits = {
      pair: maxFailures,
      user: positiveInteger('maxFailuresPerUser', options.maxFailuresPerUser ?? maxFailures * 10),
      addr: positiveInteger('maxFailuresPerAddress', options.maxFailuresPerAddress ?? maxFailures * 4),
    };
    this.#windowMs = positiveInteger('windowMs', options.windowMs ?? d.windowMs);
    this.#lockoutMs = positiveInteger('lockoutMs', options.lockoutMs ?? d.lockoutMs);
    this.#counters =
      options.counters ??
      new MemoryRateCounters({
        ...(options.clock ? { clock: options.clock } : {}),
        maxKeys: positiveInteger('maxKeys', options.maxKeys ?? d.maxKeys),
      });
  }

  #keys(user: string, addr: string) {
    return {
      pair: counterKey('login-pair', addr, user),
      user: counterKey('login-user', user),
      addr: counterKey('login-addr', addr),
    };
  }

  /**
   * Throws if the pair, the user or the address is locked out. Call before checking credentials.
   *
   * @throws WardenError WARDEN_ERR_RATE_LIMITED with `details.retryAfterMs`.
   */
  async check(user: string, addr: string): Promise<void> {
    const k = this.#keys(user, addr);
    const [pair, byUser, byAddr] = await this.#counters.get([
      `${k.pair}:lock`,
      `${k.user}:lock`,
      `${k.addr}:lock`,
    ]);
    if (pair) {
      throw new WardenError(
        'WARDEN_ERR_RATE_LIMITED',
        `too many failed login attempts for user ${JSON.stringify(user)} from ${addr}; try again in ${retryText(pair.resetInMs)}`,
        { retryAfterMs: pair.resetInMs },
      );
    }
    if (byUser) {
      throw new WardenError(
        'WARDEN_ERR_RATE_LIMITED',
        `too many failed login attempts for user ${JSON.stringify(user)}; try again in ${retryText(byUser.resetInMs)}`,
        { retryAfterMs: byUser.resetInMs },
      );
    }
    if (byAddr) {
      throw new WardenError(
        'WARDEN_ERR_RATE_LIMITED',
        `too many failed login attempts from ${addr}; try again in ${retryText(byAddr.resetInMs)}`,
        { retryAfterMs: byAddr.resetInMs },
      );
    }
  }

  /** Counts a failed attempt against the pair, the user and the address; locks out each at its limit. */
  async recordFailure(user: string, addr: string): Promise<void> {
    const k = this.#keys(user, addr);
    const names = ['pair', 'user', 'addr'] as const;
    const counts = await this.#counters.add(
      names.map((n) => k[n]),
      this.#windowMs,
    );
    for (const [i, n] of names.entries()) {
      if (counts[i]!.count < this.#limits[n]) continue;
      await this.#counters.set(`${k[n]}:lock`, 1, this.#lockoutMs);
      await this.#counters.delete([k[n]]);
    }
  }

  /** Forgets the user's failures after a successful login (the address's count stays). */
  async recordSuccess(user: string, addr: string): Promise<void> {
    const k = this.#keys(user, addr);
    await this.#counters.delete([k.pair, k.user]);
  }
}

/** Limits on the unauthenticated routes, per source address (see `SourceRateLimits`). */
export interface SourceRateLimitOptions {
  counters: RateCounters;
  /** Requests to unauthenticated routes per source address per minute (default 300). */
  requestsPerMinute?: number;
  /** Failed attempts (invalid tokens, passwords, OTP codes) per source address per window (default 10). */
  failedAttempts?: number;
  /** The window of `failedAttempts` (default 10 min); once over, refused until it ends. */
  failedWindowMs?: number;
}

export const SOURCE_RATE_LIMIT_DEFAULTS = Object.freeze({
  requestsPerMinute: 300,
  failedAttempts: 10,
  failedWindowMs: 10 * 60_000,
});

/**
 * Rate limits for everything a client can send before it is authenticated (issue 15 item 4):
 * invite and enrollment tokens, logins, sign-up, the Web UI's sign-in.
 * Counted per source address in the shared rate counters, so every replica on one backend
 * sees the same counts:
 *
 *   requests   every request to an unauthenticated route     requestsPerMinute / 1 min
 *   failures   each invalid token, password or OTP code       failedAttempts / failedWindowMs
 *
 * Over either limit, the address gets WARDEN_ERR_RATE_LIMITED (429, `Retry-After`) until the
 * window ends; other addresses are unaffected.
 *
 * @example
 *   await limits.admit(addr);                  // before the handler: throws RATE_LIMITED
 *   try { … } catch (e) { if (isGuess(e)) await limits.failed(addr); throw e; }
 */
export class SourceRateLimits {
  readonly #counters: RateCounters;
  readonly #requests: number;
  readonly #failures: number;
  readonly #failedWindowMs: number;

  constructor(o: SourceRateLimitOptions) {
    const d = SOURCE_RATE_LIMIT_DEFAULTS;
    this.#counters = o.counters;
    this.#requests = positiveInteger('requestsPerMinute', o.requestsPerMinute ?? d.requestsPerMinute);
    this.#failures = positiveInteger('failedAttempts', o.failedAttempts ?? d.failedAttempts);
    this.#failedWindowMs = positiveInteger('failedWindowMs', o.failedWindowMs ?? d.failedWindowMs);
  }

  /**
   * Counts a request from `addr` to an unauthenticated route; throws RATE_LIMITED when the
   * address is over its request or failure budget.
   */
  async admit(addr: string): Promise<void> {
    const [failures] = await this.#counters.get([counterKey('src-fail', addr)]);
    if (failures && failures.count >= this.#failures) {
      throw new WardenError(
        'WARDEN_ERR_RATE_LIMITED',
        `too many failed attempts (invalid tokens or passwords) from ${addr}; try again in ${retryText(failures.resetInMs)}`,
        { retryAfterMs: failures.resetInMs },
      );
    }
    const [requests] = await this.#counters.add([counterKey('src-req', addr)], 60_000);
    if (requests!.count > this.#requests) {
      throw new WardenError(
        'WARDEN_ERR_RATE_LIMITED',
        `too many unauthenticated requests from ${addr}; try again in ${retryText(requests!.resetInMs)}`,
        { retryAfterMs: requests!.resetInMs },
      );
    }
  }

  /** Counts a refused token or password from `addr` (`isRefusedCredential`). */
  async failed(addr: string): Promise<void> {
    await this.#counters.add([counterKey('src-fail', addr)], this.#failedWindowMs);
  }
}

/**
 * True when an error refuses a guessable secret: an invalid invite or enrollment token, a
 * wrong password or OTP code. (Not every 401/403: a refused lock or device check is no guess.)
 */
export function isRefusedCredential(e: unknown): boolean {
  return isWardenError(e, 'WARDEN_ERR_INVALID_TOKEN') || isWardenError(e, 'WARDEN_ERR_LOGIN_FAILED');
}
