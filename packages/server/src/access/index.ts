/**
 * The shared access checker (DESIGN §5) and its parts: lock matching, trait templates,
 * label selectors, allowed logins and session TTL, rules over resource kinds (admin API),
 * device trust modes, and `checkAccess` (locks → RBAC → device trust), implemented for
 * SSH nodes and databases. Everything here is pure given its inputs and fails closed.
 * Who may import: server modules (auth, proxy, agents). Tested by the colocated `*.test.ts`.
 */
export {
  AccessChecker,
  type AccessCheckerDeps,
  type AccessDecision,
  type AccessPolicy,
  type AccessRequest,
  type AccessStep,
  type AccessTarget,
  accessDeniedError,
  type DbAccessRequest,
  type DbTarget,
  DEFAULT_LOCK_MAX_STALENESS_MS,
  decideAccess,
  type LockView,
  type NodeAccessRequest,
  type NodeTarget,
  UNAUTHORIZED_DEVICE,
} from './check';
export {
  type DeviceExtensions,
  deviceTrustRank,
  hasDeviceExtensions,
  strictestDeviceTrustMode,
} from './device-trust';
export {
  type AccessIdentity,
  type AccessInfo,
  allowedLogins,
  deniedLogins,
  maxSessionTtl,
  roleNames,
} from './identity';
export { type LabelSelector, type Labels, matchLabels } from './labels';
export { findLockInForce, isLockInForce, type LockTargets, lockMatches, lockMessage } from './locks';
export { checkVerb, hasVerb, ruleMatches } from './rules';
export { expandTemplate, expandValues, type Traits } from './traits';
