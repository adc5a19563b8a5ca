/**
 * Composition of the auth service: the stores, limiter and inventory it works over, the
 * implementation of each job, and the `AuthServer` wrapper that checks every caller. Used by
 * `warden start` (`start.ts`) and by tests and benchmarks that run an auth service in process.
 */
import type { AccessChecker } from '../access';
import {
  AuditSearch,
  type AuthDeps,
  AuthServer,
  BotService,
  DeviceAdmin,
  Identifier,
  LocalAuthStore,
  LockService,
  LoginRateLimiter,
  LoginService,
  ResourceAdmin,
  SigningService,
  TokenAdmin,
  UserAdmin,
} from '../auth';
import { DeviceInventory } from '../devicetrust';

export interface AuthServerOptions extends AuthDeps {
  serverVersion: string;
  /** Login rate limits; the defaults when absent. */
  limiter?: LoginRateLimiter;
  /**
   * The live access checker (the proxy's): when given, `identify` — called for every API
   * request and tunnel — asks it (locks from the watch-fed view; in `locking_mode: strict` a
   * view stale beyond the bound refuses too) instead of listing locks from the backend, and
   * the permission check of every API call reads the caller's roles from its live role view
   * (`liveRoles`, when it has one) instead of the backend. Login and certificate issuance
   * always read the backend, so a fresh lock is never missed.
   */
  access?: Pick<AccessChecker, 'lockReason'> & Partial<Pick<AccessChecker, 'liveRoles'>>;
  /** The device inventory; one over the same stores when absent. */
  inventory?: DeviceInventory;
  /** The config file sets `auth_service.authentication` (it wins at every start). */
  authenticationInFile?: boolean;
}

export function createAuthServer(o: AuthServerOptions): AuthServer {
  const deps: AuthDeps = {
    clock: o.clock,
    backend: o.backend,
    services: o.services,
    cas: o.cas,
    audit: o.audit,
    logger: o.logger,
    clusterName: o.clusterName,
    proxyPublicAddr: o.proxyPublicAddr,
  };
  const local = new LocalAuthStore(o.backend, o.clock);
  const limiter = o.limiter ?? new LoginRateLimiter({ clock: o.clock });
  const inventory =
    o.inventory ??
    new DeviceInventory({
      services: o.services,
      backend: o.backend,
      clock: o.clock,
      audit: o.audit,
      logger: o.logger,
    });
  const users = new UserAdmin({ ...deps, local });
  const locks = new LockService({ ...deps, inventory });
  const devices = new DeviceAdmin(inventory);
  return new AuthServer(
    deps,
    {
      login: new LoginService({ ...deps, local, limiter, serverVersion: o.serverVersion }),
      identity: new Identifier({ ...deps, ...(o.access ? { access: o.access } : {}) }),
      users,
      resources: new ResourceAdmin({
        ...deps,
        locks,
        devices,
        users,
        authenticationInFile: o.authenticationInFile ?? false,
      }),
      locks,
      devices,
      bots: new BotService(deps),
      tokens: new TokenAdmin(deps),
      signing: new SigningService(deps),
      auditSearch: new AuditSearch(o.audit),
      inventory,
    },
    o.access?.liveRoles ? { liveRoles: (names) => o.access!.liveRoles!(names) } : undefined,
  );
}
