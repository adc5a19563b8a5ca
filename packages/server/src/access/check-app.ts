/**
 * The access rule for web apps (DESIGN §5, §7): `deny.app_labels` matching the app refuses
 * it; an allow rule must match `app_labels`. No login or user of its own: an app is reached
 * as a whole. Device trust is role-based only for apps — the `device_trust_mode` of the roles
 * whose `allow.app_labels` match; the cluster-wide mode does not apply (as in the guide:
 * "Apps may enforce trusted devices using role-based enforcement").
 * Internal to `access/`; the public surface is `access/index.ts`. Tested by `check-app.test.ts`.
 */
import type { RoleResource } from '@warden/api';
import type { KindRule, ResolvedIdentity } from './check';
import { roleNames } from './identity';
import { type Labels, matchLabels } from './labels';

/** A web app as the checker sees it. */
export interface AppTarget {
  kind: 'app';
  name: string;
  labels: Labels;
}

/** Reaching an app: nothing to choose beyond the app itself. */
export type AppAccessRequest = Record<string, never>;

function missing(identity: ResolvedIdentity): string {
  const m = identity.missingRoles ?? [];
  if (m.length === 0) return '';
  const names = m.map((n) => JSON.stringify(n)).join(', ');
  return m.length === 1 ? `; role ${names} no longer exists` : `; roles ${names} no longer exist`;
}

export const appRule: KindRule<'app'> = {
  labelField: 'app_labels',
  clusterDeviceTrust: false,
  validate: () => undefined,
  rbac(identity, app) {
    const who = `user ${JSON.stringify(identity.user)}`;
    const what = `access app ${JSON.stringify(app.name)}`;
    const denying = identity.roles.find((role: RoleResource) =>
      matchLabels(role.spec.deny.app_labels, app.labels),
    );
    if (denying)
      return {
        ok: false,
        reason: `access denied: ${who} may not ${what} (denied by role ${JSON.stringify(denying.metadata.name)})`,
      };
    const matched = identity.roles.filter((role) => matchLabels(role.spec.allow.app_labels, app.labels));
    if (matched.length === 0)
      return {
        ok: false,
        reason: `access denied: ${who} may not ${what} (roles: ${roleNames(identity)}${missing(identity)})`,
      };
    return { ok: true, matched };
  },
};
