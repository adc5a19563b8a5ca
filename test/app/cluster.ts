/**
 * An in-process Warden for the app-access tests, composed as `bin/start.ts` composes it plus
 * `bin/app.ts` (auth, the proxy's HTTPS API, ALPN and SNI routing, app_service), on 127.0.0.1
 * port 0 with public address `localhost:<port>` (so apps live at `<app>.localhost:<port>`), and
 * the admin identity file `wctl` reads. The CLIs run as real processes (bundled from source for
 * this run), as a user would run them.
 */
import { X509Certificate } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer as createTlsServer, type Server, type TLSSocket } from 'node:tls';
import { APP_ALPN, AUTH_PREFERENCE_NAME, type AuthPreferenceResource } from '@warden/api';
import {
  type AuthServer,
  CertAuthorities,
  createAuthServer,
  createServices,
  liveAccessChecker,
  liveSessionMonitor,
  MemoryAuditLog,
  MemoryBackend,
  type Services,
  systemClock,
} from '@warden/server';
import { type AppAccessComposition, startAppAccess } from '../../packages/server/src/bin/app';
import type { AppServiceConfig } from '../../packages/server/src/config';
import { apiRoutes, createRequestHandler } from '../../packages/server/src/proxy';
import { sourceClis } from '../support/source-clis';

export type { CliResult } from '../support/source-clis';

export const PASSWORD = 'correct horse battery staple';
const quiet = { debug() {}, info() {}, warn() {}, error() {} };

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
  o: { idleMs?: number } = {},
): Promise<AppCluster> {
  await buildClis();
  const dir = mkdtempSync(join(tmpdir(), 'warden-app-test-'));
  const dataDir = join(dir, 'data');
  const clock = systemClock;
  const backend = new MemoryBackend({ clock });
  const audit = new MemoryAuditLog({ clock });
  const services = createServices({ backend, clock });
  await services.ensurePresets();
  const cas = await CertAuthorities.init({ backend, clusterName: 'app-test', clock });
  const setAuthPreference = async (spec: Partial<AuthPreferenceResource['spec']>) => {
    const current = await services.authPreference.get();
    await services.authPreference.upsert({
      ...current,
      metadata: { name: AUTH_PREFERENCE_NAME },
      spec: { ...current.spec, ...spec },
    });
  };
  await setAuthPreference({ second_factor: 'off' });
  // As `warden start`: the live views, one access checker and one session monitor over them.
  const views = services.accessViews({ logger: quiet });
  await views.start();
  const checker = liveAccessChecker(views, { clock });
  const monitor = liveSessionMonitor(views, { checker, clock, logger: quiet });

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
    monitor,
    onRolesChange: (l) => views.roles.onChange(() => l()),
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
  const tls = await cas.issueHostTlsCert({ dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
  const server: Server = createTlsServer(
    {
      key: tls.privateKey!.toPkcs8Pem(),
      cert: [tls.certPem, ...cas.tlsCertPems('host')].join('\n'),
      ca: cas.tlsCertPems('user'),
      requestCert: true,
      rejectUnauthorized: false,
      minVersion: 'TLSv1.2',
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

  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const admin = await auth.issueAdminIdentity();
  writeFileSync(
    join(dataDir, 'admin-identity.json'),
    JSON.stringify({
      proxy,
      cluster: 'app-test',
      cert_pem: admin.certPem,
      key_pem: admin.keyPem,
      host_ca_pems: cas.tlsCertPems('host'),
      expires: admin.expires.toISOString(),
    }),
    { mode: 0o600 },
  );
  const adminCaller = {
    ...(await auth.identify(new X509Certificate(admin.certPem).raw)),
    clientAddr: '127.0.0.1',
  };

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
      await auth.signupFinish({ token: invite.token, password: PASSWORD }, '127.0.0.1');
      const home = { ...env, WARDEN_HOME: join(dir, `home-${name}`) };
      const res = await cli(
        'wsh',
        ['login', `--proxy=${proxy}`, `--user=${name}`, `--ca-pin=${cas.caPin('host')}`],
        {
          env: home,
          input: `${PASSWORD}\n`,
        },
      );
      if (res.code !== 0) throw new Error(`wsh login failed: ${res.stderr}`);
      return home;
    },
    setAuthPreference,
    async stop() {
      apps.close();
      monitor.close();
      views.close();
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
