/**
 * Lock matching: which lock, if any, is in force for a user, their roles, a login, a node
 * or a device, and the message users see (`lock targeting Device:"…" is in force`).
 * Internal to `access/`; the public surface is `access/index.ts`.
 */
import { LOCK_TARGET_FIELDS, type LockResource, type LockTargetField } from '@warden/api';

/** What an access attempt touches; a lock matches when every field it sets matches here. */
export interface LockTargets {
  user?: string;
  roles?: readonly string[];
  login?: string;
  /** A node by every name it has (ID and hostname): a lock naming any of them matches. */
  node?: string | readonly string[];
  device?: string;
}

const TARGET_NAMES: Record<LockTargetField, string> = {
  user: 'User',
  role: 'Role',
  login: 'Login',
  node: 'Node',
  device: 'Device',
};

/**
 * True unless the lock has expired at `now` (either `spec.expires` or `metadata.expires`).
 * An expiry that cannot be parsed keeps the lock in force (fail closed).
 */
export function isLockInForce(lock: LockResource, now: number): boolean {
  for (const expires of [lock.spec.expires, lock.metadata.expires]) {
    if (expires === undefined) continue;
    const at = Date.parse(expires);
    if (!Number.isNaN(at) && at <= now) return false;
  }
  return true;
}

/** True when every target field the lock sets matches `targets` (a lock with none matches nothing). */
export function lockMatches(lock: LockResource, targets: LockTargets): boolean {
  const t = lock.spec.target;
  let any = false;
  for (const field of LOCK_TARGET_FIELDS) {
    const want = t[field];
    if (want === undefined) continue;
    any = true;
    const ok =
      field === 'role'
        ? (targets.roles ?? []).includes(want)
        : field === 'node'
          ? typeof targets.node === 'string'
            ? targets.node === want
            : (targets.node ?? []).includes(want)
          : targets[field] === want;
    if (!ok) return false;
  }
  return any;
}

/**
 * The first lock in force at `now` that matches the targets, or undefined.
 *
 * @example
 *   const lock = findLockInForce(locks.values(), { user: 'alice', roles: ['access'], device: id }, clock.now());
 *   if (lock) throw new WardenError('WARDEN_ERR_LOCKED', lockMessage(lock));
 */
export function findLockInForce(
  locks: Iterable<LockResource>,
  targets: LockTargets,
  now: number,
): LockResource | undefined {
  for (const lock of locks) {
    if (isLockInForce(lock, now) && lockMatches(lock, targets)) return lock;
  }
  return undefined;
}

/**
 * What a locked-out user reads: `lock targeting User:"alice", Role:"dev" is in force`,
 * followed by `: <message>` when the lock has one.
 */
export function lockMessage(lock: LockResource): string {
  const targets = LOCK_TARGET_FIELDS.flatMap((field) => {
    const value = lock.spec.target[field];
    return value === undefined ? [] : [`${TARGET_NAMES[field]}:${JSON.stringify(value)}`];
  });
  const base = `lock targeting ${targets.join(', ')} is in force`;
  return lock.spec.message ? `${base}: ${lock.spec.message}` : base;
}
