/**
 * What the access checker knows about a user: name, resolved roles and traits; the logins
 * they may use and the longest certificate lifetime their roles allow.
 * Internal to `access/`; the public surface is `access/index.ts`.
 */
import { type RoleResource, tryParseDuration } from '@warden/api';
import type { DeviceExtensions } from './device-trust';
import { expandValues, type Traits } from './traits';

/** A user with their roles resolved to resources. */
export interface AccessInfo {
  user: string;
  roles: readonly RoleResource[];
  traits: Traits;
}

/** An authenticated caller: AccessInfo plus the verified device extensions, if any. */
export interface AccessIdentity extends AccessInfo {
  device?: DeviceExtensions;
}

const WILDCARD = '*';

/** Role names, for messages: `access, editor` (or `none`). */
export function roleNames(info: Pick<AccessInfo, 'roles'>): string {
  return info.roles.length === 0 ? 'none' : info.roles.map((r) => r.metadata.name).join(', ');
}

/** Logins denied by any role (after trait expansion); includes `'*'` when a role denies all. */
export function deniedLogins(info: AccessInfo): Set<string> {
  const out = new Set<string>();
  for (const role of info.roles) for (const l of expandValues(role.spec.deny.logins, info.traits)) out.add(l);
  return out;
}

/**
 * The logins the user may use: the union of every role's `allow.logins` with
 * `{{internal.X}}`/`{{external.X}}` expanded from traits, minus every `deny.logins`
 * (`'*'` there denies all). `'*'` in allow grants nothing (no wildcard logins).
 *
 * @example
 *   allowedLogins({ user: 'alice', roles: [access], traits: { logins: ['alice'] } }); // ['alice']
 */
export function allowedLogins(info: AccessInfo): string[] {
  const denied = deniedLogins(info);
  if (denied.has(WILDCARD)) return [];
  const out = new Set<string>();
  for (const role of info.roles) {
    for (const login of expandValues(role.spec.allow.logins, info.traits)) {
      if (login !== WILDCARD && !denied.has(login)) out.add(login);
    }
  }
  return [...out];
}

/**
 * The shortest `max_session_ttl` among the roles, in milliseconds; undefined when no role
 * sets one (the global 12 h certificate cap applies either way, in the CA).
 */
export function maxSessionTtl(roles: readonly RoleResource[]): number | undefined {
  let min: number | undefined;
  for (const role of roles) {
    const text = role.spec.options.max_session_ttl;
    if (text === undefined) continue;
    const ms = tryParseDuration(text);
    // A stored value we cannot read must not lengthen sessions: treat it as the shortest.
    const value = ms ?? 0;
    min = min === undefined ? value : Math.min(min, value);
  }
  return min;
}
