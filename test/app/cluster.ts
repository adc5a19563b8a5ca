/**
 * An in-process Warden for the app-access tests, composed as `bin/start.ts` composes it plus
 * `bin/app.ts` (auth, the proxy's HTTPS API, ALPN and SNI routing, app_service), on 127.0.0.1
 * port 0 with public address `localhost:<port>` (so apps live at `<app>.localhost:<port>`), and
 * the admin identity file `wctl` reads. The CLIs run as real processes (bundled from source for
 * this run), as a user would run them.
 */
import assert from 'node:assert/strict';
import { APP_ALPN, type AuthPreferenceResource } from '@warden/api';
import type { AuthServer, MemoryAuditLog, Services } from '@warden/server';
import { type AppAccessComposition, accessViewChanges, startAppAccess } from '../../packages/server/src/bin';
import type { AppServiceConfig } from '../../packages/server/src/config';
import type { AppCertConfig } from '../support/curl';
import { PASSWORD, protocolDeps, startProxyCluster } from '../support/in-process';
import { sourceClis } from '../support/source-clis';

export type { CliResult } from '../support/source-clis';

export { PASSWORD };

export interface AppCluster {
  dir: string;
  proxy: string;
  port: number;
  caPin: string;
  services: Services;
  audit: MemoryAuditLog;
  auth: AuthServer;
  apps: AppAccessComposition;
  /** Env for wctl (admin identity in the data dir). */
  adminEnv: NodeJS.ProcessEnv;
  /** Adds a user with roles, signs them up, and logs them in with `wsh login` (extra env: a TPM). */
  addUser(name: string, roles: string[], env?: NodeJS.ProcessEnv): Promise<NodeJS.ProcessEnv>;
  setAuthPreference(spec: Partial<AuthPreferenceResource['spec']>): Promise<void>;
  stop(): Promise<void>;
}

const clis = sourceClis('app');
export const buildClis = clis.build;
export const spawnCli = clis.spawn;
export const cli = clis.run;

/** `wsh app config NAME --format=json` as `env`'s user (it must succeed). */
export async function appConfig(env: NodeJS.ProcessEnv, name: string): Promise<AppCertConfig> {
  const res = await cli('wsh', ['app', 'config', name, '--format=json'], { env });
  assert.equal(res.code, 0, res.stderr);
  return JSON.parse(res.stdout) as AppCertConfig;
}

export async function startAppCluster(
  config: AppServiceConfig,
  o: {
    idleMs?: number;
    /** A stand-in for the session monitor app sessions register with (default: the live one). */
    monitor?: Parameters<typeof startAppAccess>[0]['monitor'];
  } = {},
): Promise<AppCluster> {
  // The proxy listens first: the public address (and so the app host names) carries its port,
  // and app routing answers ALPN and SNI once app_service is composed with it.
  let apps: AppAccessComposition | undefined;
  let alpn: ReturnType<AppAccessComposition['routing']['alpnCallback']> | undefined;
  let sni: ReturnType<AppAccessComposition['routing']['sniCallback']> | undefined;
  const p = await startProxyCluster({
    tag: 'app',
    clis,
    publicHost: 'localhost',
    tls: {
      ALPNCallback: (info) => alpn?.(info),
      SNICallback: (name, cb) => (sni ? sni(name, cb) : cb(null, undefined)),
    },
    async protocols({ core, live, port }) {
      const a = await startAppAccess({
        ...protocolDeps(core, live),
        ...(o.monitor ? { monitor: o.monitor } : {}),
        config,
        backend: core.backend,
        onRolesChange: (l) => live.views.roles.onChange(() => l()),
        onAccessChange: accessViewChanges(live.views),
        proxyPublicAddr: { host: 'localhost', port },
        ...(o.idleMs !== undefined ? { idleMs: o.idleMs } : {}),
      });
      apps = a;
      alpn = a.routing.alpnCallback([APP_ALPN]);
      sni = a.routing.sniCallback();
      return {
        routes: { ...(a.service ? { apps: a.api } : {}), jwks: a.jwks },
        take(socket) {
          if (socket.alpnProtocol === APP_ALPN) a.routing.handleTunnel(socket);
          else if (a.routing.isAppHost(socket.servername)) a.routing.handleHost(socket);
          else return false;
          return true;
        },
        close: () => a.close(),
      };
    },
  });
  return {
    dir: p.dir,
    proxy: p.proxy,
    port: p.port,
    caPin: p.caPin,
    services: p.core.services,
    audit: p.core.audit,
    auth: p.auth,
    apps: apps!,
    adminEnv: p.adminEnv,
    addUser: (name, roles, env) => p.addUser(name, roles, { env: env ?? {} }),
    setAuthPreference: p.core.setAuthPreference,
    stop: p.stop,
  };
}
