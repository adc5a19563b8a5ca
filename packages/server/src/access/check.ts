/**
 * The access checker every protocol uses (DESIGN §5). Order, failing closed at each step:
 *
 *   1. Locks: a lock in force on the user, a role, the login, the node (by ID or hostname) or
 *      the device (or, in `locking_mode: strict`, a lock view stale for too long) → deny.
 *   2. RBAC: deny rules win; an allow rule must match the resource's labels and the request
 *      (login, db user and name…). A role of the certificate that no longer exists grants
 *      nothing (the decision lists it in `missingRoles`, audit events in `missing_roles`).
 *   3. Device trust: the strictest of the cluster mode and the `device_trust_mode` of every
 *      role whose allow labels match this resource; `required` without verified device
 *      extensions → deny `unauthorized device`.
 *
 * `decideAccess` is pure; `AccessChecker` binds it to live state (the watch-fed lock, role
 * and cluster-settings views: no backend read per decision).
 *
 * Databases (step 2): `deny.db_users` / `deny.db_names` (trait templates expanded, `*` and
 * globs allowed) refuse everywhere when the role has no `deny.db_labels`, else where those
 * labels match; a role whose `deny.db_labels` match and that lists neither refuses the
 * database outright. An allow rule must match `db_labels`, the db user and the database
 * name in the same role. Device trust counts the roles whose `allow.db_labels` match.
 *
 * Adding a kind of resource (apps, Kubernetes clusters…): the checker's steps do not change.
 *   1. Declare its target (`{ kind: 'app'; name; labels }`) and request types.
 *   2. Add `app: { target: AppTarget; request: AppAccessRequest }` to `AccessKinds`.
 *   3. Add a `KindRule<'app'>` to `KIND_RULES`: `labelField` (the role field whose allow
 *      labels select it, e.g. `app_labels`: device trust reads it), `validate` (a request of
 *      the wrong shape is denied), `rbac` (deny rules, then allow rules → matched roles) and,
 *      if the access has lock targets of its own, `lockTargets`. Keep the rule in its own
 *      file (`check-app.ts`) when it is more than a few lines.
 * Internal to `access/`; the public surface is `access/index.ts`.
 */
import {
  AUTH_PREFERENCE_NAME,
  type AuthPreferenceResource,
  type DeviceTrustMode,
  type ErrorCode,
  type LockingMode,
  type LockResource,
  type RoleResource,
  WardenError,
} from '@warden/api';
import type { Clock } from '../clock';
import { type AppAccessRequest, type AppTarget, appRule } from './check-app';
import { type KubeAccessRequest, type KubeTarget, kubeRbac } from './check-kube';
import {
  type DeviceExtensions,
  deviceDemanded,
  hasDeviceExtensions,
  strictestDeviceTrustMode,
} from './device-trust';
import {
  type AccessInfo,
  type Identity,
  type IdentityKind,
  lockTargets,
  nodeLockTargets,
  roleNames,
} from './identity';
import { type LabelSelector, type Labels, matchLabels } from './labels';
import { findLockInForce, type LockTargets, lockMessage } from './locks';
import { expandValues } from './traits';

/** An SSH node (Warden or agentless OpenSSH) as the checker sees it. */
export interface NodeTarget {
  kind: 'node';
  /** The node resource's name (its UUID). */
  id: string;
  /** What users type and read: messages name the node by it. */
  hostname: string;
  labels: Labels;
}

/** A database (PostgreSQL, MySQL) as the checker sees it. */
export interface DbTarget {
  kind: 'db';
  name: string;
  labels: Labels;
}

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

/**
 * Every kind of resource the checker decides on: its target and its request. A new kind
 * adds a line here and a rule in `KIND_RULES` (see the header).
 */
export interface AccessKinds {
  node: { target: NodeTarget; request: NodeAccessRequest };
  db: { target: DbTarget; request: DbAccessRequest };
  app: { target: AppTarget; request: AppAccessRequest };
  kube_cluster: { target: KubeTarget; request: KubeAccessRequest };
}
export type AccessKind = keyof AccessKinds;
/** What is being accessed: a discriminated union on `kind`. */
export type AccessTarget = AccessKinds[AccessKind]['target'];
export type AccessRequest = AccessKinds[AccessKind]['request'];

/**
 * An identity with its role names resolved against the role view (what decisions read).
 * `resolveIdentity` makes one from an `Identity`.
 */
export interface ResolvedIdentity extends AccessInfo {
  /** `bot` for machine identities (exempt from `required-for-humans`); default `human`. */
  kind?: IdentityKind;
  device?: DeviceExtensions;
  /** Every role name of the certificate, for lock matching (default: the resolved roles' names). */
  roleNames?: readonly string[];
  /** Roles of the certificate that no longer exist: they grant nothing. */
  missingRoles?: readonly string[];
}

/** Resolves an identity's roles; a name the lookup does not know is a role deleted since. */
export function resolveIdentity(
  identity: Identity,
  role: (name: string) => RoleResource | undefined,
): ResolvedIdentity {
  const roles: RoleResource[] = [];
  const missing: string[] = [];
  for (const name of identity.roles) {
    const r = role(name);
    if (r) roles.push(r);
    else missing.push(name);
  }
  return {
    user: identity.user,
    roles,
    traits: identity.traits,
    roleNames: identity.roles,
    ...(identity.kind === 'bot' ? { kind: 'bot' as const } : {}),
    ...(missing.length > 0 ? { missingRoles: missing } : {}),
    ...(identity.device ? { device: identity.device } : {}),
  };
}

type RbacResult = { ok: true; matched: RoleResource[] } | { ok: false; reason: string };

/** What the checker needs to know about one kind of resource (see the header). */
export interface KindRule<K extends AccessKind> {
  /** The role field whose allow labels select this kind (device trust, step 3). */
  labelField: Extract<keyof RoleResource['spec']['allow'], `${string}_labels`>;
  /** False when the cluster-wide device trust mode does not apply (apps: role-based only). */
  clusterDeviceTrust?: boolean;
  /** Why a request of this shape cannot be decided (denied at RBAC), or undefined. */
  validate(request: AccessKinds[K]['request']): string | undefined;
  rbac(
    identity: ResolvedIdentity,
    target: AccessKinds[K]['target'],
    request: AccessKinds[K]['request'],
  ): RbacResult;
  /** Lock targets the access adds to the identity's (user, roles, device). */
  lockTargets?(
    target: AccessKinds[K]['target'],
    request: AccessKinds[K]['request'],
  ): Omit<LockTargets, 'user' | 'roles' | 'device'>;
}

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
      /** `bot`: the mode was `required-for-humans` and a bot without a device was let in. */
      deviceExemption?: 'bot';
      /** Roles of the certificate that no longer exist (they granted nothing). */
      missingRoles?: string[];
    }
  | {
      allowed: false;
      step: AccessStep;
      code: DenialCode;
      /** What the user reads, e.g. `lock targeting Device:"…" is in force`, `unauthorized device`. */
      reason: string;
      /** The lock in force, when step is `lock`. */
      lock?: LockResource;
      /** Roles of the certificate that no longer exist (they granted nothing). */
      missingRoles?: string[];
    };

/** Locks older than this view are not trusted in strict locking mode (Teleport's default). */
export const DEFAULT_LOCK_MAX_STALENESS_MS = 5 * 60 * 1000;

/** What users see when device trust is required and their certificate has no device. */
export const UNAUTHORIZED_DEVICE = 'unauthorized device';

/** What users see while strict locking mode cannot trust the lock view. */
export const STALE_LOCK_VIEW =
  'the lock view is stale and locking_mode is strict; access is denied until it recovers';

/** What users see while the role view is too stale to decide a permission (fail closed). */
export const ROLE_VIEW_STALE =
  "this service's view of roles is out of date, so it cannot check your permissions; try again shortly";

/** What users see while a service does not know the cluster settings (fail closed). */
export const NO_CLUSTER_SETTINGS =
  'the cluster settings (cluster_auth_preference) are not known here yet; access is denied until they are';

/** The catalogue code of each kind of denial: clients decide by it, never by the message. */
export type DenialCode = Extract<
  ErrorCode,
  | 'WARDEN_ERR_LOCKED'
  | 'WARDEN_ERR_LOCK_VIEW_STALE'
  | 'WARDEN_ERR_DEVICE_UNAUTHORIZED'
  | 'WARDEN_ERR_ACCESS_DENIED'
>;

function denialCode(step: AccessStep, reason: string): DenialCode {
  if (step === 'device_trust') return 'WARDEN_ERR_DEVICE_UNAUTHORIZED';
  if (reason === STALE_LOCK_VIEW) return 'WARDEN_ERR_LOCK_VIEW_STALE';
  return step === 'lock' ? 'WARDEN_ERR_LOCKED' : 'WARDEN_ERR_ACCESS_DENIED';
}

function deny(
  step: AccessStep,
  reason: string,
  lock?: LockResource,
): Extract<AccessDecision, { allowed: false }> {
  const code = denialCode(step, reason);
  return lock ? { allowed: false, step, code, reason, lock } : { allowed: false, step, code, reason };
}

/** `; role "gone" no longer exists`, for denial messages, or nothing. */
function missingNote(identity: ResolvedIdentity): string {
  const missing = identity.missingRoles ?? [];
  if (missing.length === 0) return '';
  const names = missing.map((n) => JSON.stringify(n)).join(', ');
  return missing.length === 1 ? `; role ${names} no longer exists` : `; roles ${names} no longer exist`;
}

/** RBAC for a node: deny rules first, then an allow rule matching labels and login. */
const nodeRule: KindRule<'node'> = {
  labelField: 'node_labels',
  validate: (req) =>
    typeof req?.login !== 'string' || req.login.length === 0 ? 'access denied: no login given' : undefined,
  lockTargets: (node, req) => ({ login: req.login, ...nodeLockTargets(node) }),
  rbac(identity, node, { login }) {
    const who = `user ${JSON.stringify(identity.user)}`;
    const what = `log in as ${JSON.stringify(login)} on node ${JSON.stringify(node.hostname)}`;
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
      return {
        ok: false,
        reason: `access denied: ${who} may not ${what} (roles: ${roleNames(identity)}${missingNote(identity)})`,
      };
    return { ok: true, matched };
  },
};

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
const dbRule: KindRule<'db'> = {
  labelField: 'db_labels',
  validate(req) {
    if (typeof req?.dbUser !== 'string' || req.dbUser.length === 0)
      return 'access to db denied: no database user given';
    if (req.dbName !== undefined && (typeof req.dbName !== 'string' || req.dbName.length === 0))
      return 'access to db denied: no database name given';
    return undefined;
  },
  rbac(identity, db, req) {
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
        reason: `access to db denied: ${who} may not ${what} (roles: ${roleNames(identity)}${missingNote(identity)})`,
      };
    return { ok: true, matched };
  },
};

/** One rule per kind of resource (see the header for adding one). */
/** RBAC for a Kubernetes cluster (check-kube.ts). */
const kubeRule: KindRule<'kube_cluster'> = {
  labelField: 'kubernetes_labels',
  validate: (req) =>
    typeof req?.verb !== 'string' || req.verb.length === 0
      ? 'access to kube_cluster denied: no verb'
      : undefined,
  rbac: kubeRbac,
};

const KIND_RULES: { [K in AccessKind]: KindRule<K> } = {
  node: nodeRule,
  db: dbRule,
  app: appRule,
  kube_cluster: kubeRule,
};

function ruleFor(target: AccessTarget): KindRule<AccessKind> | undefined {
  const kind = (target as { kind?: unknown } | undefined)?.kind;
  if (typeof kind !== 'string' || !Object.hasOwn(KIND_RULES, kind)) return undefined;
  return KIND_RULES[kind as AccessKind] as unknown as KindRule<AccessKind>;
}

/** The role names an identity presents to locks (every name of its certificate). */
function lockRoleNames(identity: ResolvedIdentity): readonly string[] {
  return identity.roleNames ?? identity.roles.map((r) => r.metadata.name);
}

/**
 * Step 1 alone: why the identity is locked out now (a lock in force on it or on what it
 * touches, or a stale lock view in strict mode), or undefined. Live sessions are re-checked
 * with this.
 */
export function lockDenial(
  policy: Omit<AccessPolicy, 'clusterDeviceTrustMode'>,
  targets: LockTargets,
): Extract<AccessDecision, { allowed: false }> | undefined {
  if (policy.lockingMode === 'strict' && !(policy.lockViewStaleForMs <= policy.lockMaxStalenessMs)) {
    return deny('lock', STALE_LOCK_VIEW);
  }
  const lock = findLockInForce(policy.locks, targets, policy.now);
  return lock ? deny('lock', lockMessage(lock), lock) : undefined;
}

/**
 * Decides one access. Pure: everything it depends on is in the arguments. A request that
 * does not fit the target's kind (a login for a database…) is denied.
 *
 * @example
 *   const d = decideAccess(policy, identity, { kind: 'node', id, hostname: 'web-1', labels: { env: 'prod' } }, { login: 'alice' });
 *   const e = decideAccess(policy, identity, { kind: 'db', name: 'orders', labels: {} }, { dbUser: 'alice', dbName: 'orders' });
 *   if (!d.allowed) reject(d.reason);
 */
export function decideAccess<K extends AccessKind>(
  policy: AccessPolicy,
  identity: ResolvedIdentity,
  target: AccessKinds[K]['target'],
  request: AccessKinds[K]['request'],
): AccessDecision {
  const decision = decideAccessUnnoted(policy, identity, target, request);
  const missing = identity.missingRoles ?? [];
  return missing.length > 0 ? { ...decision, missingRoles: [...missing] } : decision;
}

function decideAccessUnnoted(
  policy: AccessPolicy,
  identity: ResolvedIdentity,
  target: AccessTarget,
  request: AccessRequest,
): AccessDecision {
  const rule = ruleFor(target);
  const reason = rule?.validate(request as never);

  // 1. Locks.
  const locked = lockDenial(policy, {
    user: identity.user,
    roles: lockRoleNames(identity),
    ...(identity.device?.deviceId ? { device: identity.device.deviceId } : {}),
    ...(rule && reason === undefined ? rule.lockTargets?.(target as never, request as never) : {}),
  });
  if (locked) return locked;

  // 2. RBAC.
  if (!rule)
    return deny(
      'rbac',
      `access denied: unsupported resource kind ${JSON.stringify((target as { kind?: unknown } | undefined)?.kind)}`,
    );
  if (reason !== undefined) return deny('rbac', reason);
  const rbac = rule.rbac(identity, target as never, request as never);
  if (!rbac.ok) return deny('rbac', rbac.reason);

  // 3. Device trust: roles whose allow labels match this resource, whatever the request.
  const labelled = identity.roles.filter((role) =>
    matchLabels(role.spec.allow[rule.labelField] as LabelSelector | undefined, target.labels),
  );
  const mode = strictestDeviceTrustMode([
    ...(rule.clusterDeviceTrust === false ? [] : [policy.clusterDeviceTrustMode]),
    ...labelled.map((role) => role.spec.options.device_trust_mode),
  ]);
  const hasDevice = hasDeviceExtensions(identity.device);
  const kind = identity.kind ?? 'human';
  if (deviceDemanded(mode, kind) && !hasDevice) return deny('device_trust', UNAUTHORIZED_DEVICE);

  const matchedRoles = rbac.matched.map((r) => r.metadata.name);
  return mode === 'required-for-humans' && kind === 'bot' && !hasDevice
    ? { allowed: true, deviceTrustMode: mode, matchedRoles, deviceExemption: 'bot' }
    : { allowed: true, deviceTrustMode: mode, matchedRoles };
}

/** The current lock view, as `ResourceCache<LockResource>` provides it. */
export interface LockView {
  values(): readonly LockResource[];
  staleForMs(now: number): number;
}

/** The cluster settings a decision reads (from `cluster_auth_preference`). */
export interface ClusterSettings {
  deviceTrustMode: string | undefined;
  lockingMode: LockingMode | string | undefined;
  /** `device_trust.bind_owner`: a device authenticates only for its owner. */
  bindDeviceOwner?: boolean;
  /** `device_trust.auto_enroll` and `ekcert_allowed_cas`: what device enrollment reads. */
  autoEnroll?: boolean;
  ekCertAllowedCas?: readonly string[];
}

/** The settings of a cluster_auth_preference resource. */
export function clusterSettingsOf(cap: AuthPreferenceResource): ClusterSettings {
  return {
    deviceTrustMode: cap.spec.device_trust?.mode,
    lockingMode: cap.spec.locking_mode,
    ...(cap.spec.device_trust?.bind_owner ? { bindDeviceOwner: true } : {}),
    ...(cap.spec.device_trust?.auto_enroll ? { autoEnroll: true } : {}),
    ...(cap.spec.device_trust?.ekcert_allowed_cas?.length
      ? { ekCertAllowedCas: cap.spec.device_trust.ekcert_allowed_cas }
      : {}),
  };
}

export interface AccessCheckerDeps {
  clock: Clock;
  /** The live lock view (a started `ResourceCache<LockResource>`). */
  locks: LockView;
  /**
   * Roles by name, from a live view (`ResourceCache<RoleResource>.get`); a name it does not
   * know is a role deleted since the certificate was issued and grants nothing.
   */
  role(name: string): RoleResource | undefined;
  /**
   * The current cluster settings (from a cached cluster_auth_preference); undefined while
   * they are not known, and then every access is denied (fail closed).
   */
  clusterSettings(): ClusterSettings | undefined;
  /**
   * How long the role view has been stale at `now` (`ResourceCache.staleForMs`; Infinity
   * before its first list). Absent: the role lookup is always current (a fixed table).
   */
  roleViewStaleForMs?(now: number): number;
  /** How stale the lock view may be in strict locking mode, and the role view for `liveRoles`. */
  lockMaxStalenessMs?: number;
}

/** Why a live session must end, as `AccessChecker.lockReason` reports it. */
export interface LockReason {
  /**
   * The catalogue code: `WARDEN_ERR_LOCKED` for a lock in force (and unknown cluster
   * settings), `WARDEN_ERR_LOCK_VIEW_STALE` for a stale view in strict mode.
   */
  code: DenialCode;
  reason: string;
  /** The lock in force (absent for a stale view or unknown settings). */
  lock?: LockResource;
}

function lockReasonOf(d: Extract<AccessDecision, { allowed: false }> | undefined): LockReason | undefined {
  if (!d) return undefined;
  return d.lock ? { code: d.code, reason: d.reason, lock: d.lock } : { code: d.code, reason: d.reason };
}

/** Unknown cluster settings stand in the way like a lock (fail closed), as in `checkAccess`. */
function noSettingsReason(): LockReason {
  return { code: denialCode('lock', NO_CLUSTER_SETTINGS), reason: NO_CLUSTER_SETTINGS };
}

/** The WardenError a lock reason refuses a request with (its catalogue code, message = reason). */
export function lockedError(why: LockReason): WardenError {
  return new WardenError(why.code, why.reason);
}

/**
 * `decideAccess` bound to live state: locks, roles and cluster settings come from watch-fed
 * views, so a decision reads memory only and is synchronous. Every protocol (the proxy's
 * API and tunnels, ssh_service, db_service) and the device ceremonies use one of these.
 *
 * @example
 *   const checker = new AccessChecker({ clock, locks: lockCache, role: (n) => roleCache.get(n),
 *     clusterSettings: () => { const cap = capCache.get(AUTH_PREFERENCE_NAME); return cap && clusterSettingsOf(cap); } });
 *   const decision = checker.checkAccess(identity, node, { login: 'alice' });
 */
export class AccessChecker {
  readonly #deps: AccessCheckerDeps;

  constructor(deps: AccessCheckerDeps) {
    this.#deps = deps;
  }

  get lockMaxStalenessMs(): number {
    return this.#deps.lockMaxStalenessMs ?? DEFAULT_LOCK_MAX_STALENESS_MS;
  }

  /** The cluster settings, or undefined while unknown. */
  settings(): ClusterSettings | undefined {
    return this.#deps.clusterSettings();
  }

  /** The identity with its roles resolved against the live role view. */
  resolve(identity: Identity): ResolvedIdentity {
    return resolveIdentity(identity, (name) => this.#deps.role(name));
  }

  /**
   * The roles of these names from the live role view (a name it does not know is a role
   * deleted since, and grants nothing), for the admin API's permission checks; undefined while
   * the view cannot be trusted — never listed, or stale for longer than `lockMaxStalenessMs`
   * (fail closed: the caller refuses).
   *
   * @example
   *   const roles = checker.liveRoles(caller.roles);
   *   if (!roles) throw new WardenError('WARDEN_ERR_ROLE_VIEW_STALE', ROLE_VIEW_STALE);
   */
  liveRoles(names: readonly string[]): RoleResource[] | undefined {
    const stale = this.#deps.roleViewStaleForMs?.(this.#deps.clock.now()) ?? 0;
    if (!(stale <= this.lockMaxStalenessMs)) return undefined;
    const roles: RoleResource[] = [];
    for (const name of names) {
      const role = this.#deps.role(name);
      if (role) roles.push(role);
    }
    return roles;
  }

  /** Locks, RBAC and device trust for one access, against the live views. */
  checkAccess<K extends AccessKind>(
    identity: Identity,
    target: AccessKinds[K]['target'],
    request: AccessKinds[K]['request'],
  ): AccessDecision {
    const settings = this.#deps.clusterSettings();
    const resolved = this.resolve(identity);
    if (!settings) {
      const d = deny('lock', NO_CLUSTER_SETTINGS);
      return resolved.missingRoles ? { ...d, missingRoles: [...resolved.missingRoles] } : d;
    }
    return decideAccess<K>(this.#policy(settings), resolved, target, request);
  }

  /**
   * Step 1 alone, for what is already open or for calls with no resource (the API): a lock in
   * force on the identity (and on `more`: a login, a node), a stale view in strict mode, or
   * unknown cluster settings. Undefined when nothing stands in the way.
   *
   * @example
   *   const why = checker.lockReason(identity, { login: 'root', ...nodeLockTargets(node) });
   */
  lockReason(
    identity: Identity,
    more: Omit<LockTargets, 'user' | 'roles' | 'device'> = {},
  ): LockReason | undefined {
    const settings = this.#deps.clusterSettings();
    if (!settings) return noSettingsReason();
    return lockReasonOf(lockDenial(this.#policy(settings), lockTargets(identity, more)));
  }

  /**
   * `lockReason` for many identities against one snapshot of the views (the session monitor
   * re-checks every live session with one of these per change).
   */
  lockSweep(): (
    identity: Identity,
    more?: Omit<LockTargets, 'user' | 'roles' | 'device'>,
  ) => LockReason | undefined {
    const settings = this.#deps.clusterSettings();
    if (!settings) return noSettingsReason;
    const policy = this.#policy(settings);
    const locks = [...policy.locks];
    const snapshot = { ...policy, locks };
    return (identity, more = {}) => lockReasonOf(lockDenial(snapshot, lockTargets(identity, more)));
  }

  /**
   * Whether a device authenticates only for its owner (`device_trust.bind_owner`); true while
   * the cluster settings are not known here (fail closed).
   */
  deviceOwnerBound(): boolean {
    const settings = this.#deps.clusterSettings();
    return settings ? settings.bindDeviceOwner === true : true;
  }

  /**
   * What device enrollment reads of the cluster settings: `auto_enroll` and the CAs an EK
   * certificate must chain to. Undefined while the settings are not known here (enrollment
   * is then refused: allowed CAs may be configured).
   */
  enrollmentSettings(): { autoEnroll: boolean; ekCertAllowedCas: readonly string[] } | undefined {
    const settings = this.#deps.clusterSettings();
    if (!settings) return undefined;
    return { autoEnroll: settings.autoEnroll === true, ekCertAllowedCas: settings.ekCertAllowedCas ?? [] };
  }

  /**
   * The strictest device trust mode that applies to the identity anywhere (the cluster's and
   * every existing role's): the device ceremonies refuse when it is `off`.
   */
  deviceTrustMode(identity: Identity): DeviceTrustMode {
    const settings = this.#deps.clusterSettings();
    return strictestDeviceTrustMode([
      // Unknown settings: fail closed to the strictest mode.
      settings ? settings.deviceTrustMode : 'required',
      ...this.resolve(identity).roles.map((r) => r.spec.options.device_trust_mode),
    ]);
  }

  /**
   * How the lock view stands for strict mode: whether it applies, how stale the view is and
   * the bound (the session monitor schedules its next staleness check from this).
   */
  staleness(): { strict: boolean; staleForMs: number; maxMs: number } {
    const settings = this.#deps.clusterSettings();
    return {
      strict: settings?.lockingMode === 'strict',
      staleForMs: this.#deps.locks.staleForMs(this.#deps.clock.now()),
      maxMs: this.lockMaxStalenessMs,
    };
  }

  #policy(settings: ClusterSettings): AccessPolicy {
    const now = this.#deps.clock.now();
    return {
      locks: this.#deps.locks.values(),
      lockViewStaleForMs: this.#deps.locks.staleForMs(now),
      lockingMode: settings.lockingMode,
      lockMaxStalenessMs: this.lockMaxStalenessMs,
      clusterDeviceTrustMode: settings.deviceTrustMode,
      now,
    };
  }
}

/**
 * An AccessChecker over live views shaped like `Services.accessViews()` (locks, roles and the
 * stored cluster_auth_preference). A missing preference is not replaced by the defaults:
 * every access is denied until one is stored (fail closed).
 *
 * @example
 *   const views = services.accessViews({ logger }); await views.start();
 *   const checker = liveAccessChecker(views, { clock });
 */
export function liveAccessChecker(
  views: {
    locks: LockView;
    roles: { get(name: string): RoleResource | undefined; staleForMs?(now: number): number };
    preference: { get(name: string): AuthPreferenceResource | undefined };
  },
  o: { clock: Clock; lockMaxStalenessMs?: number },
): AccessChecker {
  return new AccessChecker({
    clock: o.clock,
    locks: views.locks,
    role: (name) => views.roles.get(name),
    ...(views.roles.staleForMs ? { roleViewStaleForMs: (now: number) => views.roles.staleForMs!(now) } : {}),
    clusterSettings: () => {
      const cap = views.preference.get(AUTH_PREFERENCE_NAME);
      return cap ? clusterSettingsOf(cap) : undefined;
    },
    ...(o.lockMaxStalenessMs !== undefined ? { lockMaxStalenessMs: o.lockMaxStalenessMs } : {}),
  });
}

/** The WardenError for a denial (its `DenialCode`, message = reason). */
export function accessDeniedError(decision: Extract<AccessDecision, { allowed: false }>): WardenError {
  return new WardenError(decision.code, decision.reason, {
    step: decision.step,
    ...(decision.lock ? { lock: decision.lock.metadata.name } : {}),
  });
}
