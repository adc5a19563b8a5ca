/**
 * Composition of web app access for `warden start`: app_service (over the process's access
 * checker and session monitor; the apps view; heartbeat of the configured apps) and the proxy's
 * app routing (SNI/host names and ALPN `warden-app/1`). `start.ts` calls `startAppAccess` and
 * wires four things (see the example); tests compose it the same way.
 *
 * @example
 *   const apps = await startAppAccess({ ...protocolDeps, config: config.appService, backend,
 *     onRolesChange: (l) => views.roles.onChange(() => l()),
 *     onAccessChange: accessViewChanges(views),
 *     proxyPublicAddr: config.proxyService.publicAddr });
 *   apiRoutes(auth, { …, apps: apps.api, jwks: apps.jwks });          // /v1/apps, /.well-known/jwks.json
 *   createTlsServer({ …, ALPNCallback: apps.routing.alpnCallback([SSH_ALPN, DB_ALPN, APP_ALPN]),
 *     SNICallback: apps.routing.sniCallback() });
 *   // in the connection handler: APP_ALPN → apps.routing.handleTunnel(socket);
 *   //   apps.routing.isAppHost(socket.servername) → apps.routing.handleHost(socket)
 *   // on close: apps.close();
 */
import { type AppResource, WardenError } from '@warden/api';
import type { Backend } from '../backend';
import type { AppServiceConfig, HostPort } from '../config';
import { type ApiDeps, AppRouting } from '../proxy';
import { ResourceCache, ResourceHeartbeat } from '../services';
import { AppService, appResourceFromConfig, type WebAppHooks } from '../srv/app';
import type { ProtocolDeps } from './protocol-deps';

export interface AppAccessDeps extends ProtocolDeps {
  config: AppServiceConfig;
  backend: Backend;
  /** Role changes re-check live app sessions (the process's role view). */
  onRolesChange(listener: () => void): () => void;
  /**
   * Changes of the lock, role and cluster-settings views (`AppServiceOptions.onAccessChange`):
   * without it every app request is decided in full.
   */
  onAccessChange?: (listener: () => void) => () => void;
  /** The proxy's public address: apps live at `<name>.<host>` (or `<name>.localhost` for an IP). */
  proxyPublicAddr: HostPort;
  /** Idle app sessions end after this long (default 5 min). */
  idleMs?: number;
  /** Apps launched from the Web UI (web/WebApps). */
  web?: WebAppHooks;
  /** The lean HTTP/1.1 path for app-certificate connections (default true; `AppServiceOptions.leanHttp1`). */
  leanHttp1?: boolean;
}

export interface AppAccessComposition {
  /** undefined when `app_service.enabled` is false. */
  service: AppService | undefined;
  routing: AppRouting;
  /** For `apiRoutes(…, { apps })`. */
  api: NonNullable<ApiDeps['apps']>;
  /** For `apiRoutes(…, { jwks })`. */
  jwks(): unknown;
  close(): void;
}

/** A view whose changes app access follows. */
interface WatchedView {
  onChange(listener: () => void): () => void;
}

/**
 * `onAccessChange` over the process's access views (`services.accessViews()`): one listener on
 * each of the lock, role and cluster-settings views.
 *
 * @example
 *   startAppAccess({ …, onAccessChange: accessViewChanges(views) });
 */
export function accessViewChanges(views: {
  locks: WatchedView;
  roles: WatchedView;
  preference: WatchedView;
}): (listener: () => void) => () => void {
  return (listener) => {
    const offs = [views.locks, views.roles, views.preference].map((v) => v.onChange(() => listener()));
    return () => {
      for (const off of offs) off();
    };
  };
}

export async function startAppAccess(d: AppAccessDeps): Promise<AppAccessComposition> {
  let service: AppService | undefined;
  let heartbeat: ResourceHeartbeat<AppResource> | undefined;
  const closers: (() => void)[] = [];
  if (d.config.enabled) {
    const apps = new ResourceCache<AppResource>({
      backend: d.backend,
      clock: d.clock,
      prefix: d.services.apps.prefix,
      decode: (item) => d.services.apps.decode(item),
      logger: d.logger,
    });
    await apps.start();
    service = new AppService({
      clock: d.clock,
      logger: d.logger,
      audit: d.audit,
      cas: d.cas,
      checker: d.checker,
      monitor: d.monitor,
      apps: { get: (n) => apps.get(n), values: () => apps.values(), onChange: (l) => apps.onChange(l) },
      onRolesChange: d.onRolesChange,
      ...(d.onAccessChange ? { onAccessChange: d.onAccessChange } : {}),
      proxyPublicAddr: d.proxyPublicAddr,
      ...(d.idleMs !== undefined ? { idleMs: d.idleMs } : {}),
      ...(d.web ? { web: d.web } : {}),
      ...(d.leanHttp1 !== undefined ? { leanHttp1: d.leanHttp1 } : {}),
    });
    if (d.config.apps.length > 0) {
      heartbeat = new ResourceHeartbeat({
        store: d.services.apps,
        resources: d.config.apps.map(appResourceFromConfig),
        what: 'app',
        clock: d.clock,
        logger: d.logger,
      });
      await heartbeat.start();
    }
    closers.push(
      () => heartbeat?.close(),
      () => service?.close(),
      () => apps.close(),
    );
  }
  const routing = new AppRouting({
    apps: service,
    issueCert: async (dnsNames) => {
      const c = await d.cas.issueHostTlsCert({ dnsNames, ttlMs: 365 * 24 * 3600 * 1000 });
      return { certPem: c.certPem, keyPem: c.privateKey!.toPkcs8Pem() };
    },
    clientCaPems: d.cas.tlsCertPems('user'),
    hostCaPems: d.cas.tlsCertPems('host'),
    logger: d.logger,
  });
  return {
    service,
    routing,
    api: {
      list: (identity) => (service ? service.list(identity) : []),
      login: async (identity, app) => {
        if (!service)
          throw new WardenError('WARDEN_ERR_NOT_IMPLEMENTED', 'no app_service runs behind this proxy');
        return service.login(identity, app);
      },
    },
    jwks: () => d.cas.jwks(),
    close() {
      for (const c of closers) c();
    },
  };
}
