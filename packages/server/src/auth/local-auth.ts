/**
 * Local authentication state kept apart from the `user` resource so no listing ever carries
 * a secret: the password hash and TOTP secret per user, and invite tokens (stored under the
 * SHA-256 of the token, with a TTL, so the backend never holds a usable token).
 *
 *   /local_auth/secrets/<user>   { password_hash, totp_secret?, totp_last_step? }
 *   /local_auth/invites/<sha256> { user, totp_secret?, expires }   (TTL = token lifetime)
 */
import { WardenError } from '@warden/api';
import type { Backend } from '../backend';
import type { Clock } from '../clock';
import { generateToken, hashToken } from '../tokens';

const SECRETS = '/local_auth/secrets/';
/** Backend prefix of invite tokens (keyed by the token's SHA-256). */
export const INVITES = '/local_auth/invites/';

export interface LocalSecrets {
  password_hash: string;
  totp_secret?: string;
  /** The last TOTP time step accepted; codes from it or earlier are refused (no replay). */
  totp_last_step?: number;
}

export interface Invite {
  user: string;
  totp_secret?: string;
  expires: string;
  /** Backend revision, for the single-use delete. */
  modRev: number;
  key: string;
}

export class LocalAuthStore {
  readonly #backend: Backend;
  readonly #clock: Clock;

  constructor(backend: Backend, clock: Clock) {
    this.#backend = backend;
    this.#clock = clock;
  }

  async getSecrets(user: string): Promise<(LocalSecrets & { modRev: number }) | undefined> {
    const item = await this.#backend.get(SECRETS + user);
    return item ? { ...(JSON.parse(item.value) as LocalSecrets), modRev: item.modRev } : undefined;
  }

  async putSecrets(user: string, secrets: LocalSecrets): Promise<void> {
    await this.#backend.put(SECRETS + user, JSON.stringify(secrets));
  }

  /**
   * Records the TOTP step just used, only if nothing changed since `modRev` was read: of two
   * logins racing with the same code, exactly one gets past this.
   */
  async markTotpStep(user: string, secrets: LocalSecrets, step: number, modRev: number): Promise<void> {
    const { password_hash, totp_secret } = secrets;
    await this.#backend.compareAndSwap(
      SECRETS + user,
      modRev,
      JSON.stringify({ password_hash, totp_secret, totp_last_step: step }),
    );
  }

  async deleteSecrets(user: string): Promise<void> {
    await this.#backend.delete(SECRETS + user);
  }

  /** A new invite for `user`; returns the token (shown once) and its expiry. */
  async createInvite(
    user: string,
    ttlMs: number,
    totpSecret?: string,
  ): Promise<{ token: string; expires: string }> {
    const token = generateToken();
    const expires = new Date(this.#clock.now() + ttlMs).toISOString();
    const value: Omit<Invite, 'modRev' | 'key'> = {
      user,
      expires,
      ...(totpSecret ? { totp_secret: totpSecret } : {}),
    };
    await this.#backend.create(INVITES + hashToken(token), JSON.stringify(value), { ttlMs });
    return { token, expires };
  }

  /** The invite for a token; INVALID_TOKEN when unknown, used or expired. */
  async getInvite(token: string): Promise<Invite> {
    const key = INVITES + hashToken(token);
    const item = /^[A-Za-z0-9_-]{16,200}$/.test(token) ? await this.#backend.get(key) : undefined;
    if (!item) {
      throw new WardenError(
        'WARDEN_ERR_INVALID_TOKEN',
        'invalid or expired invite token; ask an administrator for a new one (`wctl users reset NAME`)',
      );
    }
    return { ...(JSON.parse(item.value) as Omit<Invite, 'modRev' | 'key'>), modRev: item.modRev, key };
  }

  /** Spends an invite: succeeds for exactly one caller. */
  async consumeInvite(invite: Invite): Promise<void> {
    try {
      const deleted = await this.#backend.delete(invite.key, { expectedModRev: invite.modRev });
      if (!deleted) throw new Error('gone');
    } catch {
      throw new WardenError(
        'WARDEN_ERR_INVALID_TOKEN',
        'this invite token was already used; ask an administrator for a new one',
      );
    }
  }

  /** Removes every open invite of `user` (on reset and delete). */
  async deleteInvitesOf(user: string): Promise<void> {
    const { items } = await this.#backend.range(INVITES);
    for (const item of items) {
      if ((JSON.parse(item.value) as { user?: string }).user === user) await this.#backend.delete(item.key);
    }
  }
}
