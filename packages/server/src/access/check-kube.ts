/**
 * The access rule for Kubernetes clusters (`kind: kube_cluster`), step 2 of the checker:
 *
 *   - deny: a role whose `deny.kubernetes_labels` match the cluster refuses it outright when it
 *     lists no `deny.kubernetes_resources`, else refuses the requests those entries match;
 *     `deny.kubernetes_resources` without labels refuse on every cluster;
 *   - allow: roles whose `allow.kubernetes_labels` match the cluster and whose
 *     `allow.kubernetes_resources` (absent = everything) match the request;
 *   - the matched roles must grant someone to impersonate: `kubernetes_users` (trait templates
 *     expanded; none listed = the Warden user name, as the seed product does) and
 *     `kubernetes_groups`, minus the deny lists. A client's own `Impersonate-User` /
 *     `Impersonate-Group` (`kubectl --as`, `--as-group`) must name a subset of those.
 *
 * `kubernetes_resources` entries: `kind` (`pod`/`pods`/`Pod`, `*`), `namespace`, `name` (`*` and
 * globs; omitted = `*`), `verbs` (omitted = `*`). Requests without a name (list, watch, create)
 * need an entry whose name is `*`; cluster-wide requests one whose namespace is `*`. Discovery,
 * `/version` and the self-reviews (`auth can-i`, `auth whoami`) need only the cluster.
 * Internal to `access/`; the public surface is `access/index.ts`. Tested by `check-kube.test.ts`.
 */
import type { KubernetesResource, RoleResource } from '@warden/api';
import type { ResolvedIdentity } from './check';
import { type Labels, matchLabels } from './labels';
import { expandValues } from './traits';

/** A Kubernetes cluster as the checker sees it. */
export interface KubeTarget {
  kind: 'kube_cluster';
  name: string;
  labels: Labels;
}

/** One Kubernetes API request (or the opening of an exec/port-forward stream). */
export interface KubeAccessRequest {
  /** `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection`, `exec`, `portforward`. */
  verb: string;
  /** The API resource (`pods`), absent for discovery and other non-resource paths. */
  resource?: string;
  /** The API group (`''` for core). */
  group?: string;
  subresource?: string;
  namespace?: string;
  name?: string;
  /** What the client asked to impersonate (`Impersonate-User`), if anything. */
  asUser?: string;
  /** What the client asked to impersonate (`Impersonate-Group`), if anything. */
  asGroups?: readonly string[];
}

/** Who Warden impersonates for an allowed request. */
export interface KubePrincipals {
  user: string;
  groups: string[];
}

function glob(pattern: string | undefined, value: string): boolean {
  if (pattern === undefined || pattern === '*') return true;
  if (!pattern.includes('*')) return pattern === value;
  const parts = pattern.split('*').map((p) => p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
  return new RegExp(`^${parts.join('.*')}$`, 'su').test(value);
}

function kindMatches(kind: string, resource: string): boolean {
  const k = kind.toLowerCase();
  if (k === '*') return true;
  return k === resource || `${k}s` === resource || `${k}es` === resource || k === resource.replace(/s$/, '');
}

/** Requests that only need the cluster itself (no object). */
function needsOnlyCluster(req: KubeAccessRequest): boolean {
  return (
    req.resource === undefined ||
    (req.group === 'authorization.k8s.io' && req.resource.startsWith('selfsubject')) ||
    (req.group === 'authentication.k8s.io' && req.resource === 'selfsubjectreviews')
  );
}

function entryMatches(e: KubernetesResource, req: KubeAccessRequest): boolean {
  if (req.resource === undefined) return true;
  if (!kindMatches(e.kind, req.resource)) return false;
  if (req.namespace === undefined) {
    if (e.namespace !== undefined && e.namespace !== '*' && req.resource !== 'namespaces') return false;
  } else if (!glob(e.namespace, req.namespace)) return false;
  if (req.resource === 'namespaces' && req.name !== undefined && e.namespace !== undefined) {
    if (!glob(e.namespace, req.name)) return false;
  }
  if (req.name === undefined) {
    if (e.name !== undefined && e.name !== '*') return false;
  } else if (!glob(e.name, req.name)) return false;
  const verbs = e.verbs ?? ['*'];
  return verbs.includes('*') || verbs.includes(req.verb);
}

/** What the request asks for, in messages: `get pods "web" in namespace "dev"`. */
export function describeKubeRequest(req: KubeAccessRequest): string {
  if (req.resource === undefined) return `${req.verb} the API`;
  const res = req.subresource ? `${req.resource}/${req.subresource}` : req.resource;
  return (
    `${req.verb} ${res}` +
    (req.name ? ` ${JSON.stringify(req.name)}` : '') +
    (req.namespace ? ` in namespace ${JSON.stringify(req.namespace)}` : '')
  );
}

/**
 * The user and groups to impersonate from the matched roles, or why there are none (a
 * client's `--as`/`--as-group` outside them, or roles granting no one).
 */
export function kubePrincipals(
  identity: ResolvedIdentity,
  matched: readonly RoleResource[],
  req: Pick<KubeAccessRequest, 'asUser' | 'asGroups'>,
): { ok: true; principals: KubePrincipals } | { ok: false; reason: string } {
  const deniedUsers = new Set(
    identity.roles.flatMap((r) => expandValues(r.spec.deny.kubernetes_users, identity.traits)),
  );
  const deniedGroups = new Set(
    identity.roles.flatMap((r) => expandValues(r.spec.deny.kubernetes_groups, identity.traits)),
  );
  const groups = [
    ...new Set(matched.flatMap((r) => expandValues(r.spec.allow.kubernetes_groups, identity.traits))),
  ].filter((g) => !deniedGroups.has(g) && g !== '*');
  let users = [
    ...new Set(matched.flatMap((r) => expandValues(r.spec.allow.kubernetes_users, identity.traits))),
  ].filter((u) => !deniedUsers.has(u) && u !== '*');
  if (users.length === 0 && groups.length > 0 && !deniedUsers.has(identity.user)) users = [identity.user];
  if (users.length === 0 && groups.length === 0) {
    return {
      ok: false,
      reason: `access to kube_cluster denied: the roles of user ${JSON.stringify(identity.user)} grant no kubernetes_users or kubernetes_groups`,
    };
  }
  let user: string;
  if (req.asUser !== undefined) {
    if (!users.includes(req.asUser)) {
      return {
        ok: false,
        reason: `impersonation denied: user ${JSON.stringify(identity.user)} may not impersonate Kubernetes user ${JSON.stringify(req.asUser)} (allowed: ${users.join(', ') || 'none'})`,
      };
    }
    user = req.asUser;
  } else if (users.length === 1) user = users[0]!;
  else {
    // Several users allowed and none chosen: the Warden user name when it is one of them, else refuse (ambiguous).
    if (!users.includes(identity.user)) {
      return {
        ok: false,
        reason: `your roles allow several Kubernetes users (${users.join(', ')}); choose one with \`kubectl --as=USER\``,
      };
    }
    user = identity.user;
  }
  let chosenGroups = groups;
  if (req.asGroups && req.asGroups.length > 0) {
    const bad = req.asGroups.filter((g) => !groups.includes(g));
    if (bad.length > 0) {
      return {
        ok: false,
        reason: `impersonation denied: user ${JSON.stringify(identity.user)} may not impersonate Kubernetes group(s) ${bad.map((g) => JSON.stringify(g)).join(', ')} (allowed: ${groups.join(', ') || 'none'})`,
      };
    }
    chosenGroups = [...new Set(req.asGroups)];
  }
  return { ok: true, principals: { user, groups: chosenGroups } };
}

type RbacResult = { ok: true; matched: RoleResource[] } | { ok: false; reason: string };

/** Step 2 for a Kubernetes request (see the header). */
export function kubeRbac(
  identity: ResolvedIdentity,
  cluster: KubeTarget,
  req: KubeAccessRequest,
): RbacResult {
  const who = `user ${JSON.stringify(identity.user)}`;
  const what = `${describeKubeRequest(req)} on kube_cluster ${JSON.stringify(cluster.name)}`;
  for (const role of identity.roles) {
    const d = role.spec.deny;
    const labelsMatch = d.kubernetes_labels !== undefined && matchLabels(d.kubernetes_labels, cluster.labels);
    const entries = d.kubernetes_resources ?? [];
    const denied =
      (labelsMatch && entries.length === 0 && !d.kubernetes_users && !d.kubernetes_groups) ||
      ((labelsMatch || d.kubernetes_labels === undefined) &&
        !needsOnlyCluster(req) &&
        entries.some((e) => entryMatches(e, req)));
    if (denied)
      return {
        ok: false,
        reason: `access to kube_cluster denied: ${who} may not ${what} (denied by role ${JSON.stringify(role.metadata.name)})`,
      };
  }
  const onCluster = identity.roles.filter((role) =>
    matchLabels(role.spec.allow.kubernetes_labels, cluster.labels),
  );
  const matched = needsOnlyCluster(req)
    ? onCluster
    : onCluster.filter((role) => {
        const entries = role.spec.allow.kubernetes_resources;
        return entries === undefined || entries.some((e) => entryMatches(e, req));
      });
  if (matched.length === 0) {
    const roles = identity.roles.map((r) => r.metadata.name).join(', ') || 'none';
    return {
      ok: false,
      reason:
        onCluster.length === 0
          ? `access to kube_cluster denied: ${who} may not reach kube_cluster ${JSON.stringify(cluster.name)} (roles: ${roles})`
          : `access to kube_cluster denied: ${who} may not ${what} (kubernetes_resources of roles: ${roles})`,
    };
  }
  const p = kubePrincipals(identity, matched, req);
  if (!p.ok) return p;
  return { ok: true, matched };
}
