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
import { OneTimeTokens } from '../tokens';

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
  readonly #invites: OneTimeTokens<{ user: string; totp_secret?: string }>;

  constructor(backend: Backend, clock: Clock) {
    this.#backend = backend;
    this.#invites = new OneTimeTokens(backend, clock, INVITES);
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
  createInvite(
    user: string,
    ttlMs: number,
    totpSecret?: string,
  ): Promise<{ token: string; expires: string }> {
    return this.#invites.create({ user, ...(totpSecret ? { totp_secret: totpSecret } : {}) }, ttlMs);
  }

  /** The invite for a token; INVALID_TOKEN when unknown, used or expired. */
  async getInvite(token: string): Promise<Invite> {
    const found = await this.#invites.find(token);
    if (!found) {
      throw new WardenError(
        'WARDEN_ERR_INVALID_TOKEN',
        'invalid or expired invite token; ask an administrator for a new one (`wctl users reset NAME`)',
      );
    }
    return { ...found.value, modRev: found.modRev, key: found.key };
  }

  /** Spends an invite: succeeds for exactly one caller. */
  async consumeInvite(invite: Invite): Promise<void> {
    const { modRev, key, ...value } = invite;
    if (!(await this.#invites.spend({ key, modRev, value }))) {
      throw new WardenError(
        'WARDEN_ERR_INVALID_TOKEN',
        'this invite token was already used; ask an administrator for a new one',
      );
    }
  }

  /** Removes every open invite of `user` (on reset and delete). */
  deleteInvitesOf(user: string): Promise<void> {
    return this.#invites.deleteWhere((v) => v.user === user);
  }
}
