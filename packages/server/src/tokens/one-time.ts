/**
 * One-time tokens kept in the backend under the SHA-256 of the token (never the token): made
 * with a TTL, found (a malformed token is simply not found; one past its stored expiry
 * neither, before the backend's sweep removes it), spent once (compare-and-swap delete: of
 * two racing spenders exactly one wins). Invites (auth) and bot join tokens use it.
 * Internal to `tokens/`; the public surface is `tokens/index.ts`. Tested by `one-time.test.ts`.
 */
import type { Backend } from '../backend';
import type { Clock } from '../clock';
import { generateToken, hashToken } from './tokens';

/** What the store keeps for a token: the caller's fields plus its expiry. */
export type TokenRecord<T> = T & { expires: string };

/** A token found by `find`, to `spend` (the revision it was read at) or read. */
export interface FoundToken<T> {
  key: string;
  modRev: number;
  value: TokenRecord<T>;
}

/** The shape of the tokens this module makes (base64url); anything else is not one of ours. */
const TOKEN_SHAPE = /^[A-Za-z0-9_-]{16,200}$/;

export class OneTimeTokens<T extends object> {
  readonly prefix: string;
  readonly #backend: Backend;
  readonly #clock: Clock;

  /** `prefix` is the backend folder, ending in `/` (e.g. `/local_auth/invites/`). */
  constructor(backend: Backend, clock: Clock, prefix: string) {
    this.#backend = backend;
    this.#clock = clock;
    this.prefix = prefix;
  }

  /** A new token for `value`, valid `ttlMs`; returns the token (shown once) and its expiry. */
  async create(value: T, ttlMs: number): Promise<{ token: string; expires: string }> {
    const token = generateToken();
    const expires = new Date(this.#clock.now() + ttlMs).toISOString();
    const stored: TokenRecord<T> = { ...value, expires };
    await this.#backend.create(this.prefix + hashToken(token), JSON.stringify(stored), { ttlMs });
    return { token, expires };
  }

  /** The unspent, unexpired record of `token`, or undefined. */
  async find(token: string): Promise<FoundToken<T> | undefined> {
    if (!TOKEN_SHAPE.test(token)) return undefined;
    const key = this.prefix + hashToken(token);
    const item = await this.#backend.get(key);
    if (!item) return undefined;
    const value = JSON.parse(item.value) as TokenRecord<T>;
    if (Date.parse(value.expires) <= this.#clock.now()) return undefined;
    return { key, modRev: item.modRev, value };
  }

  /** Spends a found token: true for exactly one caller, false when it was spent meanwhile. */
  async spend(found: FoundToken<T>): Promise<boolean> {
    try {
      return await this.#backend.delete(found.key, { expectedModRev: found.modRev });
    } catch {
      return false;
    }
  }

  /** Removes every open token whose record matches (on reset and delete of what they are for). */
  async deleteWhere(match: (value: TokenRecord<T>) => boolean): Promise<void> {
    const { items } = await this.#backend.range(this.prefix);
    for (const item of items) {
      if (match(JSON.parse(item.value) as TokenRecord<T>)) await this.#backend.delete(item.key);
    }
  }
}
