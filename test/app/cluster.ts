/**
 * An in-process Warden for the app-access tests, composed as `bin/start.ts` composes it plus
 * `bin/app.ts` (auth, the proxy's HTTPS API, ALPN and SNI routing, app_service), on 127.0.0.1
 * port 0 with public address `localhost:<port>` (so apps live at `<app>.localhost:<port>`), and
 * the admin identity file `wctl` reads. The CLIs run as real processes (bundled from source for
 * this run), as a user would run them.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer as createTlsServer, type Server, type TLSSocket } from 'node:tls';
import { APP_ALPN, type AuthPreferenceResource } from '@warden/api';
import {
  type AuthServer,
  createAuthServer,
  type MemoryAuditLog,
  type Services,
  systemClock,
} from '@warden/server';
import {
  type AppAccessComposition,
  accessViewChanges,
  startAppAccess,
} from '../../packages/server/src/bin/app';
import type { AppServiceConfig } from '../../packages/server/src/config';
import { apiRoutes, createRequestHandler } from '../../packages/server/src/proxy';
import {
  PASSWORD,
  proxyTlsOptions,
  quietLogger,
  signUpAndLogin,
  startCore,
  startLiveAccess,
  writeAdminIdentity,
} from '../support/in-process';
import { sourceClis } from '../support/source-clis';

export type { CliResult } from '../support/source-clis';

export { PASSWORD };

const quiet = quietLogger;

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

export async function startAppCluster(
  config: AppServiceConfig,
  o: {
    idleMs?: number;
    /** A stand-in for the session monitor app sessions register with (default: the live one). */
    monitor?: Parameters<typeof startAppAccess>[0]['monitor'];
  } = {},
): Promise<AppCluster> {
  await buildClis();
  const dir = mkdtempSync(join(tmpdir(), 'warden-app-test-'));
  const dataDir = join(dir, 'data');
  const core = await startCore('app-test', systemClock);
  const { clock, backend, audit, services, cas, setAuthPreference } = core;
  await setAuthPreference({ second_factor: 'off' });
  const live = await startLiveAccess(core);
  const { views, checker, monitor } = live;

  // The port first: the public address (and so the app host names) carries it.
  const probe = createHttpServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', () => r()));
  const port = (probe.address() as { port: number }).port;
  await new Promise<void>((r) => probe.close(() => r()));
  const proxy = `127.0.0.1:${port}`;

  const apps = await startAppAccess({
    config,
    backend,
    services,
    cas,
    audit,
    clock,
    logger: quiet,
    checker,
    monitor: o.monitor ?? monitor,
    onRolesChange: (l) => views.roles.onChange(() => l()),
    onAccessChange: accessViewChanges(views),
    proxyPublicAddr: { host: 'localhost', port },
    ...(o.idleMs !== undefined ? { idleMs: o.idleMs } : {}),
  });
  const auth = createAuthServer({
    clock,
    backend,
    services,
    cas,
    audit,
    logger: quiet,
    // identify() asks the process's checker, as in `warden start`.
    access: checker,
    clusterName: 'app-test',
    proxyPublicAddr: `localhost:${port}`,
    serverVersion: '0.0.0-test',
  });
  const http = createHttpServer(
    createRequestHandler({
      routes: apiRoutes(auth, {
        listNodes: async () => [],
        ...(apps.service ? { apps: apps.api } : {}),
        jwks: apps.jwks,
      }),
      logger: quiet,
      identify: (der) => auth.identify(der),
    }),
  );
  const server: Server = createTlsServer(
    {
      ...(await proxyTlsOptions(cas)),
      ALPNCallback: apps.routing.alpnCallback([APP_ALPN]),
      SNICallback: apps.routing.sniCallback(),
    },
    (socket: TLSSocket) => {
      if (socket.alpnProtocol === APP_ALPN) apps.routing.handleTunnel(socket);
      else if (apps.routing.isAppHost(socket.servername)) apps.routing.handleHost(socket);
      else http.emit('connection', socket);
    },
  );
  server.on('tlsClientError', () => undefined);
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', () => r()));

  const adminCaller = await writeAdminIdentity(auth, cas, { dataDir, proxy, cluster: 'app-test' });

  return {
    dir,
    proxy,
    port,
    caPin: cas.caPin('host'),
    services,
    audit,
    auth,
    apps,
    adminEnv: { WARDEN_DATA_DIR: dataDir, WARDEN_HOME: join(dir, 'home-admin') },
    async addUser(name, roles, env = {}) {
      const invite = await auth.addUser(adminCaller, { name, roles, logins: [] });
      const home = { ...env, WARDEN_HOME: join(dir, `home-${name}`) };
      await signUpAndLogin(auth, clis, {
        name,
        token: invite.token,
        proxy,
        caPin: cas.caPin('host'),
        env: home,
      });
      return home;
    },
    setAuthPreference,
    async stop() {
      apps.close();
      live.close();
      await new Promise<void>((r) => {
        server.close(() => r());
        http.closeAllConnections();
      });
      await backend.close();
      rmSync(dir, { recursive: true, force: true });
      clis.remove();
    },
  };
}
