/**
 * Role rules over resource kinds (`rules: [{ resources: [role], verbs: [create] }]`), used by
 * the admin API (`wctl`). Deny rules win; `'*'` matches every kind or verb.
 * Internal to `access/`; the public surface is `access/index.ts`.
 */
import { EXPLICIT_VERBS, type Rule, WardenError } from '@warden/api';
import { type AccessInfo, roleNames } from './identity';

const WILDCARD = '*';

/**
 * True when the rule covers `verb` on `kind`. An allow rule's `'*'` verb leaves out the
 * explicit verbs (`set_address`): those are granted only by name. A deny rule's `'*'` covers
 * everything (fail closed).
 */
export function ruleMatches(
  rule: Rule,
  kind: string,
  verb: string,
  side: 'allow' | 'deny' = 'allow',
): boolean {
  const anyVerb = rule.verbs.includes(WILDCARD) && (side === 'deny' || !EXPLICIT_VERBS.includes(verb));
  return (
    (rule.resources.includes(kind) || rule.resources.includes(WILDCARD)) &&
    (rule.verbs.includes(verb) || anyVerb)
  );
}

type VerbDecision = { allowed: true } | { allowed: false; deniedBy?: string };

function decideVerb(info: AccessInfo, kind: string, verb: string): VerbDecision {
  for (const role of info.roles) {
    if ((role.spec.deny.rules ?? []).some((r) => ruleMatches(r, kind, verb, 'deny'))) {
      return { allowed: false, deniedBy: role.metadata.name };
    }
  }
  const allowed = info.roles.some((role) =>
    (role.spec.allow.rules ?? []).some((r) => ruleMatches(r, kind, verb)),
  );
  return allowed ? { allowed: true } : { allowed: false };
}

/** True when the user's roles allow `verb` on `kind` and no deny rule forbids it. */
export function hasVerb(info: AccessInfo, kind: string, verb: string): boolean {
  return decideVerb(info, kind, verb).allowed;
}

/**
 * Returns when allowed; otherwise throws WARDEN_ERR_ACCESS_DENIED naming the permission:
 * `access denied: user "bob" lacks permission "create" on "role" (roles: access)`.
 *
 * @example
 *   checkVerb(info, 'role', Verbs.create);
 */
export function checkVerb(info: AccessInfo, kind: string, verb: string): void {
  const d = decideVerb(info, kind, verb);
  if (d.allowed) return;
  const message = d.deniedBy
    ? `access denied: user ${JSON.stringify(info.user)} is denied permission ${JSON.stringify(verb)} on ${JSON.stringify(kind)} by role ${JSON.stringify(d.deniedBy)}`
    : `access denied: user ${JSON.stringify(info.user)} lacks permission ${JSON.stringify(verb)} on ${JSON.stringify(kind)} (roles: ${roleNames(info)})`;
  throw new WardenError('WARDEN_ERR_ACCESS_DENIED', message, { kind, verb });
}
