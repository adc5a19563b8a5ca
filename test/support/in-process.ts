/**
 * Test-only: the parts of an in-process Warden as `bin/start.ts` composes them, for the fixtures
 * that run a proxy or a service in the test process (test/app/cluster.ts, test/db/cluster.ts,
 * test/support/auth-cluster.ts, test/ssh-node/node-fixture.ts): a MemoryBackend, a memory audit
 * log, the services with the preset roles and the CAs; optionally the live views with one
 * access checker and one session monitor over them; the auth service; the proxy's TLS options;
 * the admin identity file `wctl` reads; a user invited, signed up and logged in with `wsh
 * login`; and all of it as one proxy on 127.0.0.1 port 0 (`startProxyCluster`) that the
 * app and db fixtures add their protocols to.
 * Who may import: `*.test.ts` files and the fixtures named above.
 */
import { X509Certificate } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import type { Server as NetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  createServer as createTlsServer,
  type TLSSocket,
  type TlsOptions,
  type Server as TlsServer,
} from 'node:tls';
import { AUTH_PREFERENCE_NAME, type AuthPreferenceResource } from '@warden/api';
import {
  type AccessChecker,
  type AuditLog,
  type AuthServer,
  type Backend,
  CertAuthorities,
  type Clock,
  createAuthServer,
  createServices,
  type Identity,
  type Logger,
  liveAccessChecker,
  liveSessionMonitor,
  MemoryAuditLog,
  MemoryBackend,
  proxyServerTls,
  type Services,
  type SessionMonitor,
  systemClock,
} from '@warden/server';
import { type ApiDeps, apiRoutes, createRequestHandler } from '../../packages/server/src/proxy';
import type { SourceClis } from './source-clis';

/** Passes the password policy (12+ characters). */
export const PASSWORD = 'correct horse battery staple';
export const quietLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };

export interface Core<C extends Clock = Clock> {
  clock: C;
  backend: MemoryBackend;
  audit: MemoryAuditLog;
  services: Services;
  cas: CertAuthorities;
  /** Merges `spec` into the stored cluster_auth_preference. */
  setAuthPreference(spec: Partial<AuthPreferenceResource['spec']>): Promise<void>;
}

/**
 * Backend, audit log, services with the preset roles, and the cluster's CAs. `reapIntervalMs`:
 * the backend's (0: expired keys are not reaped on a timer).
 */
export async function startCore<C extends Clock>(
  clusterName: string,
  clock: C,
  o: { reapIntervalMs?: number } = {},
): Promise<Core<C>> {
  const backend = new MemoryBackend({ clock, ...o });
  const audit = new MemoryAuditLog({ clock });
  const services = createServices({ backend, clock });
  await services.ensurePresets();
  const cas = await CertAuthorities.init({ backend, clusterName, clock });
  return {
    clock,
    backend,
    audit,
    services,
    cas,
    async setAuthPreference(spec) {
      const current = await services.authPreference.get();
      await services.authPreference.upsert({
        ...current,
        metadata: { name: AUTH_PREFERENCE_NAME },
        spec: { ...current.spec, ...spec },
      });
    },
  };
}

export interface LiveAccess {
  checker: AccessChecker;
  monitor: SessionMonitor;
  close(): void;
}

/** As `warden start`: the live views, one access checker and one session monitor over them. */
export async function startLiveAccess(
  core: Pick<Core, 'clock' | 'services'>,
  logger: Logger = quietLogger,
): Promise<LiveAccess & { views: ReturnType<Services['accessViews']> }> {
  const views = core.services.accessViews({ logger });
  await views.start();
  const checker = liveAccessChecker(views, { clock: core.clock });
  const monitor = liveSessionMonitor(views, { checker, clock: core.clock, logger });
  return {
    views,
    checker,
    monitor,
    close() {
      monitor.close();
      views.close();
    },
  };
}

/**
 * What `bin/start.ts` hands each protocol's composition (`startDbAccess`, `startAppAccess`):
 * the core's stores and clock, the quiet logger, and the one live checker and session monitor.
 */
export function protocolDeps(core: Core, live: LiveAccess) {
  return {
    services: core.services,
    cas: core.cas,
    audit: core.audit,
    clock: core.clock,
    logger: quietLogger,
    checker: live.checker,
    monitor: live.monitor,
  };
}

/**
 * The proxy's TLS server options: a host certificate for localhost and 127.0.0.1 with its CA
 * chain, and client certificates asked for (checked by `identify`, not by TLS).
 */
export async function proxyTlsOptions(cas: CertAuthorities): Promise<TlsOptions> {
  const tls = await cas.issueHostTlsCert({ dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
  return proxyServerTls(cas, tls);
}

/**
 * Writes `<dataDir>/admin-identity.json` (what `wctl` reads with WARDEN_DATA_DIR) and returns
 * the admin as the API sees it.
 */
export async function writeAdminIdentity(
  auth: AuthServer,
  cas: CertAuthorities,
  o: { dataDir: string; proxy: string; cluster: string },
): Promise<Identity> {
  mkdirSync(o.dataDir, { recursive: true, mode: 0o700 });
  const admin = await auth.issueAdminIdentity();
  writeFileSync(
    join(o.dataDir, 'admin-identity.json'),
    JSON.stringify({
      proxy: o.proxy,
      cluster: o.cluster,
      cert_pem: admin.certPem,
      key_pem: admin.keyPem,
      host_ca_pems: cas.tlsCertPems('host'),
      expires: admin.expires.toISOString(),
    }),
    { mode: 0o600 },
  );
  return { ...(await auth.identify(new X509Certificate(admin.certPem).raw)), clientAddr: '127.0.0.1' };
}

/**
 * Signs up an invited user (password only: the cluster's second factor is off) and logs them in
 * with `wsh login` (the CLIs bundled from source), in `env` (which carries their WARDEN_HOME).
 */
export async function signUpAndLogin(
  auth: AuthServer,
  clis: SourceClis,
  o: { name: string; token: string; proxy: string; caPin: string; env: NodeJS.ProcessEnv },
): Promise<void> {
  await auth.signupFinish({ token: o.token, password: PASSWORD }, '127.0.0.1');
  const res = await clis.run(
    'wsh',
    ['login', `--proxy=${o.proxy}`, `--user=${o.name}`, `--ca-pin=${o.caPin}`],
    { env: o.env, input: `${PASSWORD}\n` },
  );
  if (res.code !== 0) throw new Error(`wsh login failed: ${res.stderr}`);
}

/**
 * The auth service over `core` as `warden start` composes it (`access`: identify() asks the
 * process's access checker, as there). Any backend and audit log: a test of the SQLite
 * composition hands its own.
 */
export function authServerOf(
  core: Pick<Core, 'clock' | 'services' | 'cas'> & { backend: Backend; audit: AuditLog },
  o: { clusterName: string; proxy: string; logger?: Logger; access?: AccessChecker },
): AuthServer {
  return createAuthServer({
    clock: core.clock,
    backend: core.backend,
    services: core.services,
    cas: core.cas,
    audit: core.audit,
    logger: o.logger ?? quietLogger,
    ...(o.access ? { access: o.access } : {}),
    clusterName: o.clusterName,
    proxyPublicAddr: o.proxy,
    serverVersion: '0.0.0-test',
  });
}

/** What a fixture adds to the proxy of `startProxyCluster` once its port is known. */
export interface ProxyProtocols {
  /** Served by the HTTPS API beside auth's (no SSH nodes unless given). */
  routes?: Partial<ApiDeps>;
  /** Takes a TLS connection that is not for the HTTPS API (by ALPN or server name): true if it did. */
  take(socket: TLSSocket): boolean;
  close(): void;
}

export interface ProxyCluster {
  dir: string;
  /** `host:port` as clients dial it. */
  proxy: string;
  port: number;
  caPin: string;
  core: Core;
  live: Awaited<ReturnType<typeof startLiveAccess>>;
  auth: AuthServer;
  /** Env for wctl (admin identity in the data dir). */
  adminEnv: NodeJS.ProcessEnv;
  /**
   * Invites a user with roles (and traits), signs them up, and logs them in with `wsh login`;
   * returns their env (`env` and their own WARDEN_HOME).
   */
  addUser(
    name: string,
    roles: string[],
    o?: { env?: NodeJS.ProcessEnv; traits?: Record<string, string[]> },
  ): Promise<NodeJS.ProcessEnv>;
  stop(): Promise<void>;
}

/**
 * An in-process Warden proxy as `bin/start.ts` composes one, on 127.0.0.1 port 0: cluster
 * `<tag>-test` with the live access checker and session monitor, auth (its identify() asking
 * the checker), the HTTPS API, the admin identity file `wctl` reads, second factor off. The
 * CLIs (`clis`, bundled from source) run as real processes, as a user runs them. `tls` adds
 * to the proxy's TLS options (ALPN); `protocols` composes the rest once the port is known
 * (`publicHost`: the host of the proxy's public address, 127.0.0.1 by default).
 */
export async function startProxyCluster(o: {
  tag: string;
  clis: SourceClis;
  publicHost?: string;
  tls: Partial<TlsOptions>;
  /**
   * What listens on the proxy port and hands TLS connections to `tls` (the db fixture's front
   * door, as `bin/start.ts` puts one before the TLS server); by default the TLS server itself.
   */
  listener?(tls: TlsServer, core: Core): Promise<NetServer>;
  protocols(p: { core: Core; live: ProxyCluster['live']; port: number }): Promise<ProxyProtocols>;
}): Promise<ProxyCluster> {
  await o.clis.build();
  const cluster = `${o.tag}-test`;
  const dir = mkdtempSync(join(tmpdir(), `warden-${cluster}-`));
  const dataDir = join(dir, 'data');
  const core = await startCore(cluster, systemClock);
  const live = await startLiveAccess(core);
  let handle: (socket: TLSSocket) => void = (socket) => socket.destroy();
  const server = createTlsServer({ ...(await proxyTlsOptions(core.cas)), ...o.tls }, (socket) =>
    handle(socket),
  );
  server.on('tlsClientError', () => undefined);
  const listener = o.listener ? await o.listener(server, core) : server;
  await new Promise<void>((r) => listener.listen(0, '127.0.0.1', () => r()));
  const port = (listener.address() as { port: number }).port;
  const proxy = `127.0.0.1:${port}`;
  const auth = authServerOf(core, {
    clusterName: cluster,
    proxy: `${o.publicHost ?? '127.0.0.1'}:${port}`,
    access: live.checker,
  });
  const protocols = await o.protocols({ core, live, port });
  const http = createHttpServer(
    createRequestHandler({
      routes: apiRoutes(auth, { listNodes: async () => [], ...protocols.routes }),
      logger: quietLogger,
      identify: (der) => auth.identify(der),
    }),
  );
  handle = (socket) => {
    if (!protocols.take(socket)) http.emit('connection', socket);
  };
  const admin = await writeAdminIdentity(auth, core.cas, { dataDir, proxy, cluster });
  await core.setAuthPreference({ second_factor: 'off' });
  const caPin = core.cas.caPin('host');

  return {
    dir,
    proxy,
    port,
    caPin,
    core,
    live,
    auth,
    adminEnv: { WARDEN_DATA_DIR: dataDir, WARDEN_HOME: join(dir, 'home-admin') },
    async addUser(name, roles, { env = {}, traits } = {}) {
      const invite = await auth.addUser(admin, { name, roles, logins: [] });
      if (traits) {
        const user = (await core.services.users.get(name))!;
        await core.services.users.upsert({ ...user, spec: { ...user.spec, traits } });
      }
      const home = { ...env, WARDEN_HOME: join(dir, `home-${name}`) };
      await signUpAndLogin(auth, o.clis, { name, token: invite.token, proxy, caPin, env: home });
      return home;
    },
    async stop() {
      protocols.close();
      live.close();
      await new Promise<void>((r) => {
        listener.close(() => r());
        http.closeAllConnections();
      });
      await core.backend.close();
      rmSync(dir, { recursive: true, force: true });
      o.clis.remove();
    },
  };
}
