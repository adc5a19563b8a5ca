/**
 * The bundle of typed services the auth server works with: users, roles, locks, nodes, dbs, devices and
 * the cluster auth preference, plus preset roles at first start.
 * Internal to `services/`; the public surface is `services/index.ts`.
 *
 *   /users/<name>                               user
 *   /roles/<name>                               role
 *   /locks/<uuid>                               lock (TTL = spec.expires)
 *   /nodes/<host id>                            node (TTL = metadata.expires: the heartbeat)
 *   /dbs/<name>                                 db (TTL = metadata.expires: the heartbeat)
 *   /apps/<name>                                app (TTL = metadata.expires: the heartbeat)
 *   /kube_clusters/<name>                       kube_cluster (TTL = metadata.expires: the heartbeat)
 *   /devices/<uuid>                             device (the trusted-device inventory)
 *   /cluster_config/cluster-auth-preference     cluster_auth_preference
 */
import {
  AUTH_PREFERENCE_NAME,
  type AuthPreferenceResource,
  type DbResource,
  isWardenError,
  type LockResource,
  type NodeResource,
  presetRoles,
  type RoleResource,
  validateResourceOfKind,
} from '@warden/api';
import type { Backend, Item } from '../backend';
import type { Clock } from '../clock';
import type { AuthenticationConfig } from '../config';
import type { Logger } from '../log';
import { ResourceCache } from './resource-cache';
import { ResourceService } from './resource-service';

export const ResourcePrefixes = {
  user: '/users/',
  role: '/roles/',
  lock: '/locks/',
  node: '/nodes/',
  db: '/dbs/',
  app: '/apps/',
  kube_cluster: '/kube_clusters/',
  device: '/devices/',
  cluster_auth_preference: '/cluster_config/',
} as const;

/**
 * The label on the stored cluster auth preference that says where its values came from:
 *
 *   - `config-file`: `warden start` applied the config file's `auth_service.authentication`.
 *     The file wins: it is applied again at every start, replacing changes made with
 *     `wctl create -f cap.yaml` or `wctl edit cluster_auth_preference` meanwhile.
 *   - `dynamic`: set with `wctl create -f` / `wctl edit`; kept across restarts as long as the
 *     config file does not set `auth_service.authentication`.
 *   - `default`: Warden's defaults (no config file setting, no dynamic change yet).
 *
 * `wctl get cluster_auth_preference` shows it under `metadata.labels`.
 */
export const AUTH_PREFERENCE_ORIGIN_LABEL = 'warden.dev/origin';
export type AuthPreferenceOrigin = 'config-file' | 'dynamic' | 'default';

/** The preference with its origin label set (other labels kept). */
export function withOrigin(
  cap: AuthPreferenceResource,
  origin: AuthPreferenceOrigin,
): AuthPreferenceResource {
  return {
    ...cap,
    metadata: { ...cap.metadata, labels: { ...cap.metadata.labels, [AUTH_PREFERENCE_ORIGIN_LABEL]: origin } },
  };
}

/**
 * The cluster auth preference used while none is stored: device trust `optional` (device
 * authentication and device-aware audit, nothing required: the default for a new cluster),
 * OTP second factor.
 */
export function defaultAuthPreference(): AuthPreferenceResource {
  return validateResourceOfKind('cluster_auth_preference', {
    kind: 'cluster_auth_preference',
    version: 'v2',
    metadata: { name: AUTH_PREFERENCE_NAME, labels: { [AUTH_PREFERENCE_ORIGIN_LABEL]: 'default' } },
    spec: { type: 'local', second_factor: 'otp', device_trust: { mode: 'optional' } },
  });
}

/** The earlier of a lock's `spec.expires` and `metadata.expires`. */
export function lockExpiry(lock: LockResource): string | undefined {
  const times = [lock.spec.expires, lock.metadata.expires].filter((t): t is string => t !== undefined);
  if (times.length === 0) return undefined;
  return times.reduce((a, b) => (Date.parse(a) <= Date.parse(b) ? a : b));
}

/** The singleton cluster auth preference; reads fall back to `defaultAuthPreference()`. */
export class AuthPreferenceService {
  readonly store: ResourceService<'cluster_auth_preference'>;

  constructor(store: ResourceService<'cluster_auth_preference'>) {
    this.store = store;
  }

  /** The stored preference, or the default (without a revision) when none is stored. */
  async get(): Promise<AuthPreferenceResource> {
    return (await this.store.find(AUTH_PREFERENCE_NAME)) ?? defaultAuthPreference();
  }

  /** Stores the preference, replacing any other. */
  upsert(cap: AuthPreferenceResource): Promise<AuthPreferenceResource> {
    return this.store.upsert(cap);
  }

  /**
   * Compare-and-swap on `metadata.revision`; a preference read as the default (no revision)
   * is created, and fails with ALREADY_EXISTS if someone stored one meanwhile.
   */
  update(cap: AuthPreferenceResource): Promise<AuthPreferenceResource> {
    return cap.metadata.revision === undefined ? this.store.create(cap) : this.store.update(cap);
  }

  /**
   * What `warden start` does with the config file's `auth_service.authentication`: when the
   * file sets it, it is applied at every start (labelled `config-file`), replacing what
   * `wctl create -f cap.yaml` / `wctl edit` stored; without it, the stored preference
   * (labelled `dynamic`) stays, and a new cluster gets the defaults (labelled `default`).
   * Fields the config cannot express (other labels, other device-trust settings) are kept.
   */
  async applyAtStart(a: AuthenticationConfig): Promise<void> {
    const existing = await this.get();
    if (!a.setInFile && existing.metadata.revision !== undefined) return;
    await this.upsert(
      validateResourceOfKind('cluster_auth_preference', {
        kind: 'cluster_auth_preference',
        version: 'v2',
        metadata: {
          name: AUTH_PREFERENCE_NAME,
          labels: {
            ...existing.metadata.labels,
            [AUTH_PREFERENCE_ORIGIN_LABEL]: a.setInFile ? 'config-file' : 'default',
          },
        },
        spec: {
          ...existing.spec,
          type: a.type,
          second_factor: a.secondFactor,
          device_trust: {
            ...existing.spec.device_trust,
            mode: a.deviceTrust.mode,
            auto_enroll: a.deviceTrust.autoEnroll,
            bind_owner: a.deviceTrust.bindOwner,
            ekcert_allowed_cas: a.deviceTrust.ekcertAllowedCas.flatMap((f) => [...f.certificates]),
          },
        },
      }),
    );
  }

  /** Removes the stored preference (reads return the default again). */
  async reset(): Promise<void> {
    try {
      await this.store.delete(AUTH_PREFERENCE_NAME);
    } catch (e) {
      if (!isWardenError(e, 'WARDEN_ERR_NOT_FOUND')) throw e;
    }
  }
}

/** A node as the node cache holds it: the resource and its backend item's expiry (ms), if any. */
export interface CachedNode {
  node: NodeResource;
  expires: number | undefined;
}

/** A database as the db cache holds it: the resource and its backend item's expiry (ms), if any. */
export interface CachedDb {
  db: DbResource;
  expires: number | undefined;
}

export interface Services {
  users: ResourceService<'user'>;
  roles: ResourceService<'role'>;
  locks: ResourceService<'lock'>;
  /** SSH nodes: heartbeated by ssh_service (with a TTL), or agentless ones created by an admin. */
  nodes: ResourceService<'node'>;
  /** Databases: heartbeated by db_service (with a TTL), or created by an admin. */
  dbs: ResourceService<'db'>;
  /** Web apps: heartbeated by app_service (with a TTL), or created by an admin. */
  apps: ResourceService<'app'>;
  /** Kubernetes clusters: heartbeated by kube_service (with a TTL), or created by an admin. */
  kubeClusters: ResourceService<'kube_cluster'>;
  /** The trusted-device inventory (raw store; `devicetrust/DeviceInventory` adds the rules). */
  devices: ResourceService<'device'>;
  authPreference: AuthPreferenceService;
  /** Creates missing preset roles; never overwrites existing ones. Returns the names created. */
  ensurePresets(): Promise<string[]>;
  /** A live view of every lock (start it, and close it when done). */
  lockCache(opts?: { logger?: Logger; retryDelayMs?: number }): ResourceCache<LockResource>;
  /** A live view of every role (start it, and close it when done). */
  roleCache(opts?: { logger?: Logger; retryDelayMs?: number }): ResourceCache<RoleResource>;
  /** A live view of every node with its item's expiry (the proxy's `NodeView` indexes it). */
  nodeCache(opts?: { logger?: Logger; retryDelayMs?: number }): ResourceCache<CachedNode>;
  /** A live view of every database with its item's expiry (the proxy's `DbView` reads it). */
  dbCache(opts?: { logger?: Logger; retryDelayMs?: number }): ResourceCache<CachedDb>;
  /**
   * A live view of the stored cluster_auth_preference (`get(AUTH_PREFERENCE_NAME)`; undefined
   * while none is stored — callers fail closed, they do not assume the defaults).
   */
  authPreferenceCache(opts?: {
    logger?: Logger;
    retryDelayMs?: number;
  }): ResourceCache<AuthPreferenceResource>;
  /**
   * The three views an access checker reads (locks, roles, cluster settings), started
   * together: `await views.start()`, `views.close()`.
   */
  accessViews(opts?: { logger?: Logger; retryDelayMs?: number }): AccessViews;
}

/** The live views behind an `AccessChecker` (see `access/check.ts`, `liveAccessChecker`). */
export interface AccessViews {
  locks: ResourceCache<LockResource>;
  roles: ResourceCache<RoleResource>;
  preference: ResourceCache<AuthPreferenceResource>;
  /** Resolves once all three listed; closes them all if one fails. */
  start(): Promise<void>;
  close(): void;
}

/**
 * A stored lock with every field set, as the lock view decodes one. A new lock view decodes it
 * once (per process): the first decode of a lock compiles zod's checks of the lock schema
 * (3.5–4 ms of CPU, seen on replica B's first lock in `bench:locks`), which then happens at
 * start-up instead of between a lock's arrival and the sessions it ends.
 */
export const PRIMING_LOCK: LockResource = {
  kind: 'lock',
  version: 'v2',
  metadata: {
    name: '00000000-0000-4000-8000-000000000000',
    labels: { priming: 'true' },
    expires: '2000-01-01T00:00:00.000Z',
  },
  spec: {
    target: { user: 'u', role: 'r', login: 'l', node: 'n', device: 'd' },
    message: 'priming',
    expires: '2000-01-01T00:00:00.000Z',
    created_at: '2000-01-01T00:00:00.000Z',
    created_by: 'u',
  },
};

let lockDecodingPrimed = false;

function primeLockDecoding(locks: ResourceService<'lock'>): void {
  if (lockDecodingPrimed) return;
  lockDecodingPrimed = true;
  const name = PRIMING_LOCK.metadata.name;
  locks.decode({ key: locks.prefix + name, value: JSON.stringify(PRIMING_LOCK), createRev: 1, modRev: 1 });
}

/**
 * @example
 *   const services = createServices({ backend, clock });
 *   await services.ensurePresets();
 *   const alice = await services.users.get('alice');
 */
export function createServices(deps: { backend: Backend; clock: Clock }): Services {
  const { backend, clock } = deps;
  const users = new ResourceService({ backend, clock, kind: 'user', prefix: ResourcePrefixes.user });
  const roles = new ResourceService({ backend, clock, kind: 'role', prefix: ResourcePrefixes.role });
  const locks = new ResourceService({
    backend,
    clock,
    kind: 'lock',
    prefix: ResourcePrefixes.lock,
    expiresOf: lockExpiry,
    prepare: (lock, now) =>
      lock.spec.created_at
        ? lock
        : { ...lock, spec: { ...lock.spec, created_at: new Date(now).toISOString() } },
  });
  const nodes = new ResourceService({ backend, clock, kind: 'node', prefix: ResourcePrefixes.node });
  const dbs = new ResourceService({ backend, clock, kind: 'db', prefix: ResourcePrefixes.db });
  const apps = new ResourceService({ backend, clock, kind: 'app', prefix: ResourcePrefixes.app });
  const kubeClusters = new ResourceService({
    backend,
    clock,
    kind: 'kube_cluster',
    prefix: ResourcePrefixes.kube_cluster,
  });
  const devices = new ResourceService({ backend, clock, kind: 'device', prefix: ResourcePrefixes.device });
  const authPreference = new AuthPreferenceService(
    new ResourceService({
      backend,
      clock,
      kind: 'cluster_auth_preference',
      prefix: ResourcePrefixes.cluster_auth_preference,
    }),
  );
  type CacheOpts = { logger?: Logger; retryDelayMs?: number };
  /** A factory of watch-fed caches of one prefix, each decoding an item with `decode`. */
  const cacheOf =
    <T>(prefix: string, decode: (item: Item) => T) =>
    (opts: CacheOpts = {}) =>
      new ResourceCache<T>({ backend, clock, prefix, decode, ...opts });
  const lockCacheOf = cacheOf(locks.prefix, (item) => locks.decode(item));
  const lockCache = (opts: CacheOpts = {}) => {
    primeLockDecoding(locks);
    return lockCacheOf(opts);
  };
  const roleCache = cacheOf(roles.prefix, (item) => roles.decode(item));
  const authPreferenceCache = cacheOf(ResourcePrefixes.cluster_auth_preference, (item) =>
    authPreference.store.decode(item),
  );
  const nodeCache = cacheOf<CachedNode>(nodes.prefix, (item) => ({
    node: nodes.decode(item),
    expires: item.expires,
  }));
  const dbCache = cacheOf<CachedDb>(dbs.prefix, (item) => ({ db: dbs.decode(item), expires: item.expires }));
  return {
    users,
    roles,
    locks,
    nodes,
    dbs,
    apps,
    kubeClusters,
    devices,
    authPreference,
    async ensurePresets() {
      const created: string[] = [];
      for (const role of presetRoles()) {
        try {
          await roles.create(role);
          created.push(role.metadata.name);
        } catch (e) {
          if (!isWardenError(e, 'WARDEN_ERR_ALREADY_EXISTS')) throw e;
        }
      }
      return created;
    },
    lockCache,
    roleCache,
    nodeCache,
    dbCache,
    authPreferenceCache,
    accessViews(opts = {}) {
      const views = {
        locks: lockCache(opts),
        roles: roleCache(opts),
        preference: authPreferenceCache(opts),
      };
      const close = () => {
        views.locks.close();
        views.roles.close();
        views.preference.close();
      };
      return {
        ...views,
        async start() {
          try {
            await Promise.all([views.locks.start(), views.roles.start(), views.preference.start()]);
          } catch (e) {
            close();
            throw e;
          }
        },
        close,
      };
    },
  };
}
