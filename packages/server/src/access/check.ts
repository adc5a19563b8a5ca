/**
 * The access checker every protocol uses (DESIGN §5). Order, failing closed at each step:
 *
 *   1. Locks: a lock in force on the user, a role, the login, the node or the device
 *      (or, in `locking_mode: strict`, a lock view stale for too long) → deny.
 *   2. RBAC: deny rules win; an allow rule must match the resource's labels and the login.
 *   3. Device trust: the strictest of the cluster mode and the `device_trust_mode` of every
 *      role whose allow labels match this resource; `required` without verified device
 *      extensions → deny `unauthorized device`.
 *
 * Nodes (SSH) and databases are implemented; apps and Kubernetes extend `AccessTarget` and
 * `AccessRequest` with their own step 2. Internal to `access/`; public surface `access/index.ts`.
 *
 * Databases (step 2): `deny.db_users` / `deny.db_names` (trait templates expanded, `*` and
 * globs allowed) refuse everywhere when the role has no `deny.db_labels`, else where those
 * labels match; a role whose `deny.db_labels` match and that lists neither refuses the
 * database outright. An allow rule must match `db_labels`, the db user and the database
 * name in the same role. Device trust counts the roles whose `allow.db_labels` match.
 */
import {
  type DeviceTrustMode,
  type ErrorCode,
  type LockingMode,
  type LockResource,
  type RoleResource,
  WardenError,
} from '@warden/api';
import type { Clock } from '../clock';
import { hasDeviceExtensions, strictestDeviceTrustMode } from './device-trust';
import { type AccessIdentity, roleNames } from './identity';
import { type Labels, matchLabels } from './labels';
import { findLockInForce, lockMessage } from './locks';
import { expandValues } from './traits';

/** An SSH node as the checker sees it. */
export interface NodeTarget {
  kind: 'node';
  name: string;
  labels: Labels;
}

/** A database (PostgreSQL, MySQL) as the checker sees it. */
export interface DbTarget {
  kind: 'db';
  name: string;
  labels: Labels;
}

/** What is being accessed. Apps and Kubernetes clusters join later. */
export type AccessTarget = NodeTarget | DbTarget;

/** Logging in to a node as `login`. */
export interface NodeAccessRequest {
  login: string;
}

/** Connecting to a database as `dbUser`, to the database `dbName`. */
export interface DbAccessRequest {
  dbUser: string;
  /**
   * The database (schema) asked for. Undefined only for protocols that may connect without
   * one (MySQL with no default database): then `db_names` is not consulted.
   */
  dbName: string | undefined;
}

export type AccessRequest = NodeAccessRequest | DbAccessRequest;

/** The cluster-wide settings and lock view a decision is made against. */
export interface AccessPolicy {
  /** Locks currently known (expired ones are ignored). */
  locks: Iterable<LockResource>;
  /** How long the lock view has been stale (0 when current). */
  lockViewStaleForMs: number;
  /** `strict`: deny everything once the lock view is stale for longer than `lockMaxStalenessMs`. */
  lockingMode: LockingMode | string | undefined;
  lockMaxStalenessMs: number;
  /** `cluster_auth_preference.spec.device_trust.mode`. */
  clusterDeviceTrustMode: string | undefined;
  now: number;
}

export type AccessStep = 'lock' | 'rbac' | 'device_trust';

export type AccessDecision =
  | {
      allowed: true;
      /** The effective device trust mode for this access. */
      deviceTrustMode: DeviceTrustMode;
      /** Roles whose allow rules granted it. */
      matchedRoles: string[];
    }
  | {
      allowed: false;
      step: AccessStep;
      code: Extract<ErrorCode, 'WARDEN_ERR_LOCKED' | 'WARDEN_ERR_ACCESS_DENIED'>;
      /** What the user reads, e.g. `lock targeting Device:"…" is in force`, `unauthorized device`. */
      reason: string;
      /** The lock in force, when step is `lock`. */
      lock?: LockResource;
    };

/** Locks older than this view are not trusted in strict locking mode (Teleport's default). */
export const DEFAULT_LOCK_MAX_STALENESS_MS = 5 * 60 * 1000;

/** What users see when device trust is required and their certificate has no device. */
export const UNAUTHORIZED_DEVICE = 'unauthorized device';

function deny(step: AccessStep, reason: string, lock?: LockResource): AccessDecision {
  const code = step === 'lock' ? 'WARDEN_ERR_LOCKED' : 'WARDEN_ERR_ACCESS_DENIED';
  return lock ? { allowed: false, step, code, reason, lock } : { allowed: false, step, code, reason };
}

/** RBAC for a node: deny rules first, then an allow rule matching labels and login. */
function nodeRbac(
  identity: AccessIdentity,
  node: NodeTarget,
  login: string,
): { ok: true; matched: RoleResource[] } | { ok: false; reason: string } {
  const who = `user ${JSON.stringify(identity.user)}`;
  const what = `log in as ${JSON.stringify(login)} on node ${JSON.stringify(node.name)}`;
  for (const role of identity.roles) {
    const d = role.spec.deny;
    const logins = expandValues(d.logins, identity.traits);
    // A denied login is denied everywhere; a deny label match without logins denies the node.
    const denied =
      logins.includes(login) ||
      logins.includes('*') ||
      (logins.length === 0 && matchLabels(d.node_labels, node.labels));
    if (denied)
      return {
        ok: false,
        reason: `access denied: ${who} may not ${what} (denied by role ${JSON.stringify(role.metadata.name)})`,
      };
  }
  const matched = identity.roles.filter(
    (role) =>
      matchLabels(role.spec.allow.node_labels, node.labels) &&
      login !== '*' &&
      expandValues(role.spec.allow.logins, identity.traits).includes(login),
  );
  if (matched.length === 0)
    return { ok: false, reason: `access denied: ${who} may not ${what} (roles: ${roleNames(identity)})` };
  return { ok: true, matched };
}

/** True when a role value (`*`, a glob like `app_*`, or a literal) covers `value`. */
function valueMatches(pattern: string, value: string): boolean {
  if (pattern === '*') return true;
  if (!pattern.includes('*')) return pattern === value;
  const parts = pattern.split('*').map((p) => p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
  return new RegExp(`^${parts.join('.*')}$`, 'su').test(value);
}

function anyMatches(patterns: readonly string[], value: string): boolean {
  return patterns.some((p) => valueMatches(p, value));
}

/** RBAC for a database: deny rules first, then an allow rule matching labels, db user and name. */
function dbRbac(
  identity: AccessIdentity,
  db: DbTarget,
  req: DbAccessRequest,
): { ok: true; matched: RoleResource[] } | { ok: false; reason: string } {
  const what =
    `connect to db ${JSON.stringify(db.name)} as db user ${JSON.stringify(req.dbUser)}` +
    (req.dbName === undefined ? '' : ` (database ${JSON.stringify(req.dbName)})`);
  const who = `user ${JSON.stringify(identity.user)}`;
  for (const role of identity.roles) {
    const d = role.spec.deny;
    if (d.db_labels !== undefined && !matchLabels(d.db_labels, db.labels)) continue;
    const users = expandValues(d.db_users, identity.traits);
    const names = expandValues(d.db_names, identity.traits);
    const denied =
      anyMatches(users, req.dbUser) ||
      (req.dbName !== undefined && anyMatches(names, req.dbName)) ||
      (d.db_labels !== undefined && users.length === 0 && names.length === 0);
    if (denied)
      return {
        ok: false,
        reason: `access to db denied: ${who} may not ${what} (denied by role ${JSON.stringify(role.metadata.name)})`,
      };
  }
  const matched = identity.roles.filter((role) => {
    const a = role.spec.allow;
    return (
      matchLabels(a.db_labels, db.labels) &&
      anyMatches(expandValues(a.db_users, identity.traits), req.dbUser) &&
      (req.dbName === undefined || anyMatches(expandValues(a.db_names, identity.traits), req.dbName))
    );
  });
  if (matched.length === 0)
    return {
      ok: false,
      reason: `access to db denied: ${who} may not ${what} (roles: ${roleNames(identity)})`,
    };
  return { ok: true, matched };
}

/** The label selector of a role's allow rules for the kind of `target` (device trust, step 3). */
function allowLabels(role: RoleResource, target: AccessTarget) {
  return target.kind === 'db' ? role.spec.allow.db_labels : role.spec.allow.node_labels;
}

/**
 * Decides one access. Pure: everything it depends on is in the arguments. A request that
 * does not fit the target's kind (a login for a database…) is denied.
 *
 * @example
 *   const d = decideAccess(policy, identity, { kind: 'node', name: 'web-1', labels: { env: 'prod' } }, { login: 'alice' });
 *   const e = decideAccess(policy, identity, { kind: 'db', name: 'orders', labels: {} }, { dbUser: 'alice', dbName: 'orders' });
 *   if (!d.allowed) reject(d.reason);
 */
export function decideAccess(
  policy: AccessPolicy,
  identity: AccessIdentity,
  target: NodeTarget,
  request: NodeAccessRequest,
): AccessDecision;
export function decideAccess(
  policy: AccessPolicy,
  identity: AccessIdentity,
  target: DbTarget,
  request: DbAccessRequest,
): AccessDecision;
export function decideAccess(
  policy: AccessPolicy,
  identity: AccessIdentity,
  target: AccessTarget,
  request: AccessRequest,
): AccessDecision;
export function decideAccess(
  policy: AccessPolicy,
  identity: AccessIdentity,
  target: AccessTarget,
  request: AccessRequest,
): AccessDecision {
  // 1. Locks.
  if (policy.lockingMode === 'strict' && !(policy.lockViewStaleForMs <= policy.lockMaxStalenessMs)) {
    return deny(
      'lock',
      'the lock view is stale and locking_mode is strict; access is denied until it recovers',
    );
  }
  const lock = findLockInForce(
    policy.locks,
    {
      user: identity.user,
      roles: identity.roles.map((r) => r.metadata.name),
      ...(target.kind === 'node' && 'login' in request ? { login: request.login, node: target.name } : {}),
      ...(identity.device?.deviceId ? { device: identity.device.deviceId } : {}),
    },
    policy.now,
  );
  if (lock) return deny('lock', lockMessage(lock), lock);

  // 2. RBAC.
  let rbac: ReturnType<typeof nodeRbac>;
  if (target.kind === 'node' && 'login' in request) {
    if (request.login.length === 0) return deny('rbac', 'access denied: no login given');
    rbac = nodeRbac(identity, target, request.login);
  } else if (target.kind === 'db' && 'dbUser' in request) {
    if (typeof request.dbUser !== 'string' || request.dbUser.length === 0)
      return deny('rbac', 'access to db denied: no database user given');
    if (request.dbName !== undefined && (typeof request.dbName !== 'string' || request.dbName.length === 0))
      return deny('rbac', 'access to db denied: no database name given');
    rbac = dbRbac(identity, target, request);
  } else {
    return deny(
      'rbac',
      `access denied: unsupported resource kind ${JSON.stringify((target as { kind: unknown }).kind)}`,
    );
  }
  if (!rbac.ok) return deny('rbac', rbac.reason);

  // 3. Device trust: roles whose allow labels match this resource, whatever the login.
  const labelled = identity.roles.filter((role) => matchLabels(allowLabels(role, target), target.labels));
  const mode = strictestDeviceTrustMode([
    policy.clusterDeviceTrustMode,
    ...labelled.map((role) => role.spec.options.device_trust_mode),
  ]);
  if (mode === 'required' && !hasDeviceExtensions(identity.device))
    return deny('device_trust', UNAUTHORIZED_DEVICE);

  return { allowed: true, deviceTrustMode: mode, matchedRoles: rbac.matched.map((r) => r.metadata.name) };
}

/** The current lock view, as `ResourceCache<LockResource>` provides it. */
export interface LockView {
  values(): readonly LockResource[];
  staleForMs(now: number): number;
}

export interface AccessCheckerDeps {
  clock: Clock;
  locks: LockView;
  /** The current cluster settings (from a cached cluster_auth_preference). */
  clusterSettings(): { deviceTrustMode: string | undefined; lockingMode: LockingMode | string | undefined };
  lockMaxStalenessMs?: number;
}

/**
 * `decideAccess` bound to live state.
 *
 * @example
 *   const checker = new AccessChecker({ clock, locks: lockCache, clusterSettings: () => ({ deviceTrustMode: 'off', lockingMode: 'best_effort' }) });
 *   const decision = checker.checkAccess(identity, node, { login: 'alice' });
 */
export class AccessChecker {
  readonly #deps: AccessCheckerDeps;

  constructor(deps: AccessCheckerDeps) {
    this.#deps = deps;
  }

  checkAccess(identity: AccessIdentity, target: AccessTarget, request: AccessRequest): AccessDecision {
    const now = this.#deps.clock.now();
    const settings = this.#deps.clusterSettings();
    return decideAccess(
      {
        locks: this.#deps.locks.values(),
        lockViewStaleForMs: this.#deps.locks.staleForMs(now),
        lockingMode: settings.lockingMode,
        lockMaxStalenessMs: this.#deps.lockMaxStalenessMs ?? DEFAULT_LOCK_MAX_STALENESS_MS,
        clusterDeviceTrustMode: settings.deviceTrustMode,
        now,
      },
      identity,
      target,
      request,
    );
  }
}

/** The WardenError for a denial (LOCKED or ACCESS_DENIED, message = reason). */
export function accessDeniedError(decision: Extract<AccessDecision, { allowed: false }>): WardenError {
  return new WardenError(decision.code, decision.reason, {
    step: decision.step,
    ...(decision.lock ? { lock: decision.lock.metadata.name } : {}),
  });
}
