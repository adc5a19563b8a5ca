/**
 * Typed services over the Backend (DESIGN §3): one generic `ResourceService` per kind
 * (validated reads and writes, compare-and-swap on `metadata.revision`, TTL from expiry),
 * the `Services` bundle (users, roles, locks, nodes, dbs, devices, cluster auth preference with
 * its origin label, preset roles),
 * `ResourceCache`, the list-then-watch view that proxies and agents keep, and
 * `ResourceHeartbeat`, which publishes an agent's configured resources with a TTL.
 * Who may import: server modules (auth, proxy, agents, bin). Tested by the colocated
 * `*.test.ts` against MemoryBackend.
 */

export {
  HEARTBEAT_INTERVAL_MS,
  HEARTBEAT_TTL_MS,
  ResourceHeartbeat,
  type ResourceHeartbeatOptions,
} from './heartbeat';
export {
  type CacheChange,
  DEFAULT_CACHE_RETRY_DELAY_MS,
  ResourceCache,
  type ResourceCacheOptions,
} from './resource-cache';
export { ResourceService, type ResourceServiceOptions } from './resource-service';
export {
  type AccessViews,
  AUTH_PREFERENCE_ORIGIN_LABEL,
  type AuthPreferenceOrigin,
  AuthPreferenceService,
  type CachedDb,
  type CachedNode,
  createServices,
  defaultAuthPreference,
  lockExpiry,
  ResourcePrefixes,
  type Services,
  withOrigin,
} from './services';
