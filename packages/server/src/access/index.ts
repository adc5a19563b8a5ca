/**
 * Who may do what, for every protocol (DESIGN §5): the one `Identity` type and its lock
 * targets; `AccessChecker` (locks → RBAC → device trust) bound to the live lock, role and
 * cluster-settings views, with `decideAccess` its pure core; the `SessionMonitor` that ends
 * live sessions when a lock arrives, a certificate expires or strict locking mode cannot
 * trust the lock view; and their parts: lock matching, trait templates, label selectors,
 * allowed logins and session TTL, rules over resource kinds (admin API), device trust modes.
 * Everything but the checker's views and the monitor's timers is pure; all of it fails closed.
 * Who may import: server modules (auth, proxy, agents, devicetrust). Tested by the colocated
 * `*.test.ts`.
 */
export {
  AccessChecker,
  type AccessCheckerDeps,
  type AccessDecision,
  type AccessKind,
  type AccessKinds,
  type AccessPolicy,
  type AccessRequest,
  type AccessStep,
  type AccessTarget,
  accessDeniedError,
  type ClusterSettings,
  clusterSettingsOf,
  type DbAccessRequest,
  type DbTarget,
  DEFAULT_LOCK_MAX_STALENESS_MS,
  type DenialCode,
  decideAccess,
  type KindRule,
  type LockReason,
  type LockView,
  liveAccessChecker,
  lockDenial,
  lockedError,
  NO_CLUSTER_SETTINGS,
  type NodeAccessRequest,
  type NodeTarget,
  type ResolvedIdentity,
  ROLE_VIEW_STALE,
  resolveIdentity,
  STALE_LOCK_VIEW,
  UNAUTHORIZED_DEVICE,
} from './check';
export type { AppAccessRequest, AppTarget } from './check-app';
export {
  describeKubeRequest,
  type KubeAccessRequest,
  type KubePrincipals,
  type KubeTarget,
  kubePrincipals,
} from './check-kube';
export {
  type DeviceExtensions,
  deviceDemanded,
  deviceTrustRank,
  hasDeviceExtensions,
  strictestDeviceTrustMode,
} from './device-trust';
export {
  type AccessInfo,
  type Actor,
  actorOf,
  allowedLogins,
  auditDevice,
  deniedLogins,
  type Identity,
  type IdentityKind,
  lockTargets,
  makeIdentity,
  maxSessionTtl,
  nodeLockTargets,
  roleNames,
  routeCertAuditEvent,
  routeCertIdentity,
  sshPermits,
} from './identity';
export { type LabelSelector, type Labels, matchLabels } from './labels';
export { findLockInForce, isLockInForce, type LockTargets, lockMatches, lockMessage } from './locks';
export { checkVerb, hasVerb, ruleMatches } from './rules';
export {
  type ChangeSource,
  certificateExpiredMessage,
  type LockChange,
  type LockChangeSource,
  liveSessionMonitor,
  type MonitoredSession,
  type Registration,
  type SessionEndReason,
  SessionMonitor,
  type SessionMonitorOptions,
} from './session-monitor';
export { expandTemplate, expandValues, type Traits } from './traits';
