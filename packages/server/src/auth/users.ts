/**
 * Users as the admin API manages them: `wctl users add` (the user resource and an invite),
 * `wctl users reset` (a new invite, old secrets gone), and forgetting a deleted user's
 * secrets and invites. Permissions are checked by the caller (`AuthServer`), not here.
 * Internal to `auth/`; the public surface is `auth/index.ts`.
 */
import { INVITE_TOKEN_TTL_MS, type rpc, type UserResource, validateResource, WardenError } from '@warden/api';
import type { z } from 'zod';
import type { Actor } from '../access';
import { undoUnless } from '../audit';
import { type AuthDeps, auditWith } from './deps';
import type { LocalAuthStore } from './local-auth';
import { generateTotpSecret } from './totp';

export interface UserAdminOptions extends AuthDeps {
  local: LocalAuthStore;
}

/** User names starting with `@` belong to Warden (the admin identity is `@admin`). */
export function checkUserName(name: string): void {
  if (name.startsWith('@')) {
    throw new WardenError(
      'WARDEN_ERR_BAD_PARAMETER',
      `user names starting with "@" are reserved for Warden ("${name}")`,
    );
  }
}

/**
 * The user resource `wctl users add` (and, with `bot`, `wctl bots add`) creates: a reserved
 * name or a role that does not exist is refused; `created_by` says who made it and when.
 */
export async function newUser(
  o: Pick<AuthDeps, 'services' | 'clock'>,
  actor: Actor,
  req: { name: string; roles: string[]; logins: string[] },
  bot?: { ttl: string },
): Promise<UserResource> {
  checkUserName(req.name);
  for (const r of req.roles) {
    if (!(await o.services.roles.find(r))) {
      throw new WardenError(
        'WARDEN_ERR_NOT_FOUND',
        `role "${r}" does not exist; create it first or pick another`,
      );
    }
  }
  return validateResource({
    kind: 'user',
    version: 'v2',
    metadata: { name: req.name },
    spec: {
      roles: req.roles,
      traits: req.logins.length ? { logins: req.logins } : {},
      ...(bot ? { bot } : {}),
      created_by: { user: actor.user, time: new Date(o.clock.now()).toISOString() },
    },
  }) as UserResource;
}

export class UserAdmin {
  readonly #o: UserAdminOptions;
  readonly #audit: ReturnType<typeof auditWith>;

  constructor(o: UserAdminOptions) {
    this.#o = o;
    this.#audit = auditWith(o);
  }

  #invite(user: string, token: string, expires: string): rpc.InviteResponse {
    const pin = this.#o.cas.caPin('host');
    return {
      user,
      token,
      expires,
      signup_command: `wsh signup --proxy=${this.#o.proxyPublicAddr} --token=${token} --ca-pin=${pin}`,
      // The token goes in the fragment: browsers never send it to a server or in a Referer.
      signup_url: `https://${this.#o.proxyPublicAddr}/web/signup#token=${encodeURIComponent(token)}`,
    };
  }

  async #newInvite(user: string): Promise<{ token: string; expires: string }> {
    const cap = await this.#o.services.authPreference.get();
    const totp = cap.spec.second_factor === 'off' ? undefined : generateTotpSecret();
    return this.#o.local.createInvite(user, INVITE_TOKEN_TTL_MS, totp);
  }

  async add(actor: Actor, req: z.infer<typeof rpc.AddUserRequest>): Promise<rpc.InviteResponse> {
    const stored = await this.#o.services.users.create(await newUser(this.#o, actor, req));
    // Not unaudited (issue 15 item 5): a user the audit log did not record is taken back,
    // and gets an invite only once recorded.
    await undoUnless(
      this.#o.logger,
      this.#audit({
        type: 'user.create',
        success: true,
        user: actor.user,
        addr: actor.addr,
        name: req.name,
        roles: req.roles,
      }),
      () => this.#o.services.users.undo({ written: stored }),
      'user create',
    );
    const { token, expires } = await this.#newInvite(req.name);
    return this.#invite(req.name, token, expires);
  }

  async reset(actor: Actor, name: string): Promise<rpc.InviteResponse> {
    const user = await this.#o.services.users.get(name);
    if (user.spec.bot)
      throw new WardenError(
        'WARDEN_ERR_BAD_PARAMETER',
        `"${name}" is a bot: bots have no password; \`wctl bots rm ${name}\` and \`wctl bots add\` give it a new join token`,
      );
    // Recorded first (a reset drops secrets, which cannot be put back): a reset the audit log
    // refuses changes nothing (issue 15 item 5).
    await this.#audit({
      type: 'user.password_reset',
      success: true,
      user: actor.user,
      addr: actor.addr,
      name,
    });
    await this.forget(name);
    const { token, expires } = await this.#newInvite(name);
    return this.#invite(name, token, expires);
  }

  /** Removes a user's open invites and secrets (on reset and delete). */
  async forget(name: string): Promise<void> {
    await this.#o.local.deleteInvitesOf(name);
    await this.#o.local.deleteSecrets(name);
  }
}
