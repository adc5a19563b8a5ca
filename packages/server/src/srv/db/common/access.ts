/**
 * db_service's view of authorization: the shared access checker (DESIGN §5) applied to a
 * `db` resource, the lock check that live sessions are re-checked with, and the list of
 * databases a user may reach (with the db users and names their roles allow).
 * Internal to `srv/db`; the public surface is `common/index.ts`. Tested by `access.test.ts`.
 */
import type { DbResource, LockResource, RoleResource } from '@warden/api';
import type { Identity } from '../../../access';
import {
  type AccessDecision,
  DEFAULT_LOCK_MAX_STALENESS_MS,
  decideAccess,
  expandValues,
  findLockInForce,
  type LockView,
  lockMessage,
  matchLabels,
  type ResolvedIdentity,
} from '../../../access';
import type { Clock } from '../../../clock';

/** Where the checker's inputs come from (services and caches in process; RPC later). */
export interface DbAccessDeps {
  clock: Clock;
  /** Roles by name; a missing role grants nothing. */
  roles(names: readonly string[]): Promise<RoleResource[]>;
  /** `cluster_auth_preference`: device trust mode and locking mode. */
  clusterSettings(): Promise<{ deviceTrustMode: string | undefined; lockingMode: string | undefined }>;
  /** The live lock view. */
  locks: LockView;
  lockMaxStalenessMs?: number;
}

/** A database as `wsh db ls` shows it. */
export interface DbInfo {
  name: string;
  protocol: string;
  labels: Record<string, string>;
  /** Db users the caller's roles allow here (trait templates expanded; may hold `*`). */
  db_users: string[];
  db_names: string[];
}

export function dbTarget(db: DbResource) {
  return { kind: 'db' as const, name: db.metadata.name, labels: { ...(db.metadata.labels ?? {}) } };
}

export class DbAccess {
  readonly #d: DbAccessDeps;

  constructor(deps: DbAccessDeps) {
    this.#d = deps;
  }

  async #identity(id: Identity): Promise<ResolvedIdentity> {
    return {
      user: id.user,
      roles: await this.#d.roles(id.roles),
      traits: id.traits,
      ...(id.device ? { device: id.device } : {}),
    };
  }

  /**
   * Locks, RBAC (db_labels, db_users, db_names, deny rules) and device trust for one
   * connection.
   *
   * @example
   *   const d = await access.decide(identity, db, { dbUser: 'alice', dbName: 'orders' });
   */
  async decide(
    identity: Identity,
    db: DbResource,
    req: { dbUser: string; dbName: string | undefined },
  ): Promise<AccessDecision> {
    const settings = await this.#d.clusterSettings();
    const now = this.#d.clock.now();
    return decideAccess(
      {
        locks: this.#d.locks.values(),
        lockViewStaleForMs: this.#d.locks.staleForMs(now),
        lockingMode: settings.lockingMode,
        lockMaxStalenessMs: this.#d.lockMaxStalenessMs ?? DEFAULT_LOCK_MAX_STALENESS_MS,
        clusterDeviceTrustMode: settings.deviceTrustMode,
        now,
      },
      await this.#identity(identity),
      dbTarget(db),
      req,
    );
  }

  /**
   * Why a live session must end now, or undefined: a lock in force on its user, one of its
   * roles or its device, or (in `locking_mode: strict`) a lock view stale for too long.
   */
  lockReason(identity: Identity, lockingMode: string | undefined): string | undefined {
    const now = this.#d.clock.now();
    const max = this.#d.lockMaxStalenessMs ?? DEFAULT_LOCK_MAX_STALENESS_MS;
    if (lockingMode === 'strict' && !(this.#d.locks.staleForMs(now) <= max))
      return 'the lock view is stale and locking_mode is strict; access is denied until it recovers';
    const lock: LockResource | undefined = findLockInForce(
      this.#d.locks.values(),
      {
        user: identity.user,
        roles: identity.roles,
        ...(identity.device?.deviceId ? { device: identity.device.deviceId } : {}),
      },
      now,
    );
    return lock ? lockMessage(lock) : undefined;
  }

  async clusterSettings() {
    return this.#d.clusterSettings();
  }

  /**
   * The databases whose labels some role of the caller allows and no role denies outright,
   * with the db users and names those roles allow.
   */
  async reachable(identity: Identity, dbs: readonly DbResource[]): Promise<DbInfo[]> {
    const id = await this.#identity(identity);
    const out: DbInfo[] = [];
    for (const db of dbs) {
      const labels = { ...(db.metadata.labels ?? {}) };
      const deniedOutright = id.roles.some((r) => {
        const d = r.spec.deny;
        return (
          d.db_labels !== undefined &&
          matchLabels(d.db_labels, labels) &&
          (d.db_users ?? []).length === 0 &&
          (d.db_names ?? []).length === 0
        );
      });
      if (deniedOutright) continue;
      const allowing = id.roles.filter((r) => matchLabels(r.spec.allow.db_labels, labels));
      if (allowing.length === 0) continue;
      const users = new Set<string>();
      const names = new Set<string>();
      for (const r of allowing) {
        for (const u of expandValues(r.spec.allow.db_users, id.traits)) users.add(u);
        for (const n of expandValues(r.spec.allow.db_names, id.traits)) names.add(n);
      }
      out.push({
        name: db.metadata.name,
        protocol: db.spec.protocol,
        labels,
        db_users: [...users],
        db_names: [...names],
      });
    }
    return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }
}
