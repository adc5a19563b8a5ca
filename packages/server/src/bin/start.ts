/**
 * `warden start|version|--help`, and the composition root of a running Warden.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { type AddressInfo, isIP, type Server as NetServer } from 'node:net';
import { dirname, join } from 'node:path';
import { createServer as createTlsServer, type Server, type TLSSocket } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import {
  APP_ALPN,
  DB_ALPN,
  isWardenError,
  kubeTlsServerName,
  type rpc,
  SSH_ALPN,
  WardenError,
  web,
} from '@warden/api';
import { type Identity, liveAccessChecker, liveSessionMonitor } from '../access';
import {
  type AuditLog,
  JsonlAuditSink,
  MemoryAuditLog,
  PostgresAuditLog,
  primeSessionEndAudit,
  SqliteAuditLog,
  teeAuditLog,
  withDeviceOsType,
} from '../audit';
import { type AuthServer, isRefusedCredential, LoginRateLimiter, SourceRateLimits } from '../auth';
import {
  type Backend,
  MemoryBackend,
  MemoryRateCounters,
  PostgresBackend,
  PostgresRateCounters,
  type RateCounters,
  SqliteBackend,
} from '../backend';
import { CertAuthorities, proxyServerTls } from '../ca';
import { type Clock, systemClock } from '../clock';
import {
  DEFAULT_PROXY_LIMITS,
  DEFAULT_PROXY_RATE_LIMITS,
  formatHostPort,
  loadConfig,
  type PostgresStorageConfig,
  parseHostPort,
  problemLines,
  type WardenConfig,
} from '../config';
import { DeviceAuthentication, DeviceEnrollment } from '../devicetrust';
import {
  createMetrics,
  instrumentAudit,
  instrumentBackend,
  type MetricsRegistry,
  watchEventLoopStalls,
  watchLockLag,
} from '../diag';
import { createLogger, type Logger } from '../log';
import {
  apiRoutes,
  createRequestHandler,
  mysqlDirectListener,
  NodeView,
  POSTGRES_ALPN,
  proxyFrontDoor,
  reachableNodes,
  SshTunnels,
} from '../proxy';
import { createServices } from '../services';
import { AgentlessForwarder, SshService } from '../srv/ssh';
import { WebApps, WebDeviceTrust, WebSessions, WebSessionWatch, WebUi, webDeviceRoutes } from '../web';
import { accessViewChanges, startAppAccess } from './app';
import { createAuthServer } from './auth';
import { startDbAccess } from './db';
import { kubeDnsNames, startKubeAccess } from './kube';
import { checkPortsFree, runConfigure, startDiag } from './ops';
import type { ProtocolDeps } from './protocol-deps';
import { closeWithDeadline, OpenConnections, SHUTDOWN_GRACE_MS } from './shutdown';

export const VERSION = '0.1.0';
export const ADMIN_IDENTITY_FILE = 'admin-identity.json';
const ADMIN_REFRESH_MS = 6 * 60 * 60 * 1000;

export interface Io {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  env: NodeJS.ProcessEnv;
}

const HELP = `Usage: warden COMMAND [FLAGS]

Warden: an access plane for SSH, databases, apps and Kubernetes with device trust.

Commands:
  start                Run Warden (auth and proxy; with no config: data in ./warden-data, proxy on 127.0.0.1:3080)
  configure --check FILE
                       Check a warden.yaml and report every problem in it; starts nothing
  version              Print the version

Flags of start:
  -c, --config=FILE    warden.yaml to read (default: built-in defaults)
  -d, --data-dir=DIR   data directory (overrides data_dir in the config)
      --diag-addr=HOST:PORT
                       diagnostics listener with /metrics, /healthz, /readyz (overrides
                       diag_addr; off by default, usually 127.0.0.1:3000)
      --debug          log at debug level (overrides log.severity)
  -h, --help           show this help

warden reads no environment variables of its own; storage.password_env names the one that
holds a PostgreSQL password.
`;

export async function runWarden(argv: string[], io: Io): Promise<number> {
  const [cmd, ...rest] = argv;
  if (!cmd || cmd === '--help' || cmd === '-h' || cmd === 'help') {
    io.stdout.write(HELP);
    return cmd ? 0 : 1;
  }
  if (cmd === 'version' || cmd === '--version') {
    io.stdout.write(`warden v${VERSION} node ${process.version}\n`);
    return 0;
  }
  if (cmd === 'configure') return runConfigure(rest, io);
  if (cmd !== 'start') {
    io.stderr.write(`ERROR: unknown command "${cmd}"; run \`warden --help\`\n`);
    return 1;
  }
  let values: { config?: string; 'data-dir'?: string; 'diag-addr'?: string; debug?: boolean; help?: boolean };
  try {
    ({ values } = parseArgs({
      args: rest,
      options: {
        config: { type: 'string', short: 'c' },
        'data-dir': { type: 'string', short: 'd' },
        'diag-addr': { type: 'string' },
        debug: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (e) {
    io.stderr.write(`ERROR: ${(e as Error).message}\n\n${HELP}`);
    return 1;
  }
  if (values.help) {
    io.stdout.write(HELP);
    return 0;
  }
  let config: WardenConfig;
  try {
    config = loadConfig({ path: values.config, dataDir: values['data-dir'] });
    if (values['diag-addr'] !== undefined) {
      const addr = parseHostPort(values['diag-addr']);
      if (typeof addr === 'string')
        throw new WardenError('WARDEN_ERR_BAD_CONFIG', `--diag-addr "${values['diag-addr']}": ${addr}`);
      config = { ...config, diagAddr: addr };
    }
  } catch (e) {
    const lines = isWardenError(e) ? problemLines(e) : [(e as Error).message];
    io.stderr.write(lines.map((l) => `ERROR: ${l}\n`).join(''));
    return 1;
  }
  const logger = createLogger({
    severity: values.debug ? 'debug' : config.log.severity,
    format: config.log.format,
  });
  let running: Running;
  try {
    running = await start(config, logger, io);
  } catch (e) {
    io.stderr.write(`ERROR: ${isWardenError(e) ? e.message : (e as Error).message}\n`);
    if (!isWardenError(e)) logger.error({ err: e }, 'warden failed to start');
    return 1;
  }
  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      logger.info({ signal }, 'shutting down');
      running.close().then(
        () => {
          logger.info({}, 'stopped');
          resolve(0);
        },
        (e) => {
          logger.error({ err: e }, 'error while shutting down');
          resolve(1);
        },
      );
    };
    // SIGHUP: a new admin identity now (e.g. after the file may have leaked); the old one stops working.
    const rotate = () => {
      running.rotateAdminIdentity().then(
        () => logger.info({}, 'admin identity rotated (SIGHUP)'),
        (e) => logger.error({ err: e }, 'failed to rotate the admin identity'),
      );
    };
    process.on('SIGHUP', rotate);
    for (const signal of ['SIGTERM', 'SIGINT'] as const)
      process.once(signal, () => {
        process.off('SIGHUP', rotate);
        stop(signal);
      });
    // Said once a signal stops it cleanly (before, SIGTERM would kill it without a shutdown).
    logger.info(
      { addr: formatHostPort(config.proxyService.listenAddr), cluster: config.authService.clusterName },
      'warden started',
    );
  });
}

export interface Running {
  auth: AuthServer;
  /** Issues a new admin identity into the data dir; the previous one stops working. */
  rotateAdminIdentity(): Promise<void>;
  server: Server;
  close(): Promise<void>;
}

/** The certificate (PEM) in the admin identity file a previous run left, if any. */
function previousAdminCert(file: string): string | undefined {
  try {
    const pem = (JSON.parse(readFileSync(file, 'utf8')) as { cert_pem?: unknown }).cert_pem;
    return typeof pem === 'string' ? pem : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Where the built Web UI is: WARDEN_WEB_DIR, else `web/` next to the bundle (dist/web, built
 * by `npm run build`), else the repository's dist/web when running from source.
 */
function webAssetsDir(env: NodeJS.ProcessEnv): string | undefined {
  const here = dirname(fileURLToPath(import.meta.url));
  const candidates = [
    env.WARDEN_WEB_DIR,
    join(here, 'web'),
    join(here, '..', 'web'),
    join(here, '..', '..', '..', '..', 'dist', 'web'),
  ];
  return candidates.find((d) => d && existsSync(join(d, 'index.html')));
}

/** The connection options of `storage: {type: postgres}` (the password stays in its file or variable). */
function postgresOptions(storage: PostgresStorageConfig, clock: Clock, logger: Logger) {
  const { type: _, ...connection } = storage;
  return { ...connection, clock, logger };
}

/**
 * The shared store. On PostgreSQL (several replicas, one cluster) every replica's view,
 * including the lock views of `locking_mode: strict`, also counts `backend.staleForMs`.
 */
async function openBackend(config: WardenConfig, clock: Clock, logger: Logger): Promise<Backend> {
  switch (config.storage.type) {
    case 'sqlite':
      return SqliteBackend.open({ path: config.storage.path });
    case 'postgres':
      return PostgresBackend.open(postgresOptions(config.storage, clock, logger));
    case 'memory':
      return new MemoryBackend();
  }
}

/** The audit log lives next to the backend: SQLite in the data dir, or the same PostgreSQL. */
async function openAudit(config: WardenConfig, clock: Clock, logger: Logger): Promise<AuditLog> {
  const s = config.storage;
  const primary: AuditLog =
    s.type === 'memory'
      ? new MemoryAuditLog({ clock })
      : s.type === 'postgres'
        ? await PostgresAuditLog.open(postgresOptions(s, clock, logger))
        : await SqliteAuditLog.open({ path: join(config.dataDir, 'audit.sqlite'), clock });
  if (!config.authService.audit.jsonlPath) return primary;
  return teeAuditLog(primary, await JsonlAuditSink.open({ path: config.authService.audit.jsonlPath }));
}

export async function start(config: WardenConfig, logger: Logger, io: Io): Promise<Running> {
  const clock = systemClock;
  // A port another process holds fails the start before anything is written (no new cluster
  // in an empty data dir).
  await checkPortsFree(config);
  const metrics = createMetrics();
  // A shared store is opened before anything is written: a wrong or unreachable PostgreSQL
  // leaves no data dir behind.
  const shared = config.storage.type === 'postgres';
  if (!shared) mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
  const backend = instrumentBackend(await openBackend(config, clock, logger), metrics);
  let audit: AuditLog | undefined;
  try {
    audit = instrumentAudit(await openAudit(config, clock, logger), metrics);
    if (shared) mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
    return await compose(config, logger, io, { clock, backend, audit, metrics });
  } catch (e) {
    // A failed start must still exit: PostgreSQL's connections would keep the process alive.
    await audit?.close().catch(() => undefined);
    await backend.close().catch(() => undefined);
    throw e;
  }
}

/** Everything above the store: services, CAs, auth, the proxy listener, the SSH node. */
async function compose(
  config: WardenConfig,
  logger: Logger,
  io: Io,
  {
    clock,
    backend,
    audit: store,
    metrics,
  }: { clock: Clock; backend: Backend; audit: AuditLog; metrics: MetricsRegistry },
): Promise<Running> {
  const services = createServices({ backend, clock });
  // Events name a trusted device by what its certificate carries; the OS comes from the inventory.
  const audit = withDeviceOsType(store, async (id) => (await services.devices.find(id))?.spec.os_type);
  const created = await services.ensurePresets();
  if (created.length) logger.info({ roles: created }, 'created preset roles');

  // The config file's auth_service.authentication against the stored preference (see applyAtStart).
  await services.authPreference.applyAtStart(config.authService.authentication);

  const cas = await CertAuthorities.init({ backend, clusterName: config.authService.clusterName, clock });
  const publicAddr = formatHostPort(config.proxyService.publicAddr);
  // The live views (locks, roles, cluster settings) behind the process's one AccessChecker,
  // shared by the auth service's per-request checks, the proxy's tunnels, ssh_service,
  // db_service, app_service, kube_service and the device ceremonies; and the process's one
  // SessionMonitor, with which all of them register live sessions (a lock arriving through
  // the watch ends them at once).
  const views = services.accessViews({ logger });
  await views.start();
  const lockCache = views.locks;
  const checker = liveAccessChecker(views, { clock });
  const monitor = liveSessionMonitor(views, { checker, clock, logger });
  // The first session a lock ends would compile the session.end event's checks.
  primeSessionEndAudit();
  watchLockLag(lockCache, metrics, () => clock.now());
  const stopStallWatch = watchEventLoopStalls(logger);
  // Rate limits count in the backend's rate counters: PostgreSQL's are shared by every replica;
  // a SQLite file has one owner, so that process's memory holds the cluster's counts.
  const counters: RateCounters =
    config.storage.type === 'postgres'
      ? await PostgresRateCounters.open({ ...postgresOptions(config.storage, clock, logger), poolSize: 4 })
      : new MemoryRateCounters({ clock });
  const rate = config.proxyService.rateLimits ?? DEFAULT_PROXY_RATE_LIMITS;
  const publicLimits = Object.assign(
    new SourceRateLimits({
      counters,
      requestsPerMinute: rate.requestsPerMinute,
      failedAttempts: rate.failedAttempts,
      failedWindowMs: rate.failedWindowMs,
    }),
    { isGuess: isRefusedCredential },
  );
  const auth = createAuthServer({
    limiter: new LoginRateLimiter({ counters }),
    clock,
    backend,
    services,
    cas,
    audit,
    logger,
    access: checker,
    clusterName: config.authService.clusterName,
    proxyPublicAddr: publicAddr,
    serverVersion: VERSION,
    authenticationInFile: config.authService.authentication.setInFile,
  });

  // The proxy's TLS certificate from the host CA, for every name clients may use.
  const listen = config.proxyService.listenAddr;
  const names = new Set(['localhost', listen.host, config.proxyService.publicAddr.host]);
  const dnsNames = [...names].filter((n) => n && !isIP(n) && n !== '0.0.0.0');
  const ipAddresses = [
    ...new Set(['127.0.0.1', '::1', ...[...names].filter((n) => isIP(n) && n !== '0.0.0.0' && n !== '::')]),
  ];
  // Kubernetes has its own names (`kube.<name>`, see bin/kube.ts) in the same certificate.
  const tls = await cas.issueHostTlsCert({
    dnsNames: [...dnsNames, ...(config.kubeService.enabled ? kubeDnsNames(dnsNames) : [])],
    ipAddresses,
    ttlMs: 365 * 24 * 3600 * 1000,
  });

  // One TLS port, routed by ALPN: `warden-ssh/1` carries SSH to nodes, everything else is the
  // HTTPS API (see proxy/ssh-tunnel.ts).
  // Device trust ceremonies (DESIGN §6), over the same inventory the admin API uses.
  const inventory = auth.devices;
  const deviceTrust = {
    enrollment: new DeviceEnrollment({ inventory, checker, backend, clock, audit, logger }),
    authentication: new DeviceAuthentication({ inventory, checker, cas, backend, clock, audit, logger }),
  };
  // The nodes SSH tunnels go to, from a watch-fed view (no backend read per tunnel).
  const nodeView = new NodeView({ cache: services.nodeCache({ logger }), clock, nodes: services.nodes });
  await nodeView.start();
  const tunnels = new SshTunnels({
    identify: (der, o) => auth.identify(der, o),
    nodes: nodeView,
    audit,
    clock,
    logger,
    checker,
    monitor,
    agentless: new AgentlessForwarder({ cas, audit, clock, logger }),
  });
  // What every protocol's composition (databases, Kubernetes, apps) is built from.
  const protocolDeps: ProtocolDeps = { services, cas, audit, clock, logger, checker, monitor };
  // Databases: `warden-db/1` tunnels handed to db_service (srv/db), which checks access itself;
  // and native clients with a database certificate straight at the proxy (proxy/db-direct.ts):
  // PostgreSQL on the proxy port, MySQL on `mysql_listen_addr` (bound below).
  let mysqlListener: NetServer | undefined;
  const db = await startDbAccess({
    ...protocolDeps,
    config: config.dbService,
    identify: (der) => auth.identify(der),
    identifyDb: (der) => auth.identifyDb(der),
    endpoints: () => {
      const host = config.proxyService.publicAddr.host;
      const mysql = mysqlListener?.address() as AddressInfo | null | undefined;
      return {
        postgres: { host, port: config.proxyService.publicAddr.port },
        ...(mysql ? { mysql: { host, port: mysql.port } } : {}),
      };
    },
  });
  // Timeouts (issue 15 item 3). This HTTP server is fed sockets by the TLS server and never
  // listen()s itself, and Node starts its header/request timeout checks on 'listening': emit
  // it once the server exists.
  const limits = config.proxyService.limits ?? DEFAULT_PROXY_LIMITS;
  const httpOptions = {
    headersTimeout: limits.headerTimeoutMs,
    requestTimeout: Math.max(limits.requestTimeoutMs, limits.headerTimeoutMs),
    connectionsCheckingInterval: Math.min(1000, limits.headerTimeoutMs),
    keepAliveTimeout: 5_000,
  };
  // Kubernetes: `/kube/<cluster>/…` under the TLS server name `kube.<proxy name>` on the proxy
  // port, served by kube_service (srv/kube) on its own HTTP server (bin/kube.ts).
  const kube = await startKubeAccess({
    proxyDnsNames: dnsNames,
    http: httpOptions,
    idleTimeoutMs: limits.idleTimeoutMs,
    ...protocolDeps,
    config: config.kubeService,
    backend,
    identify: (der) => auth.identify(der),
  });
  // Web UI sessions, and apps launched from the Web UI (their app cookie speaks for the session).
  const webSessions = new WebSessions({ backend, clock });
  // A lock ends a web session at once: the one monitor watches every web session seen here.
  const webWatch = new WebSessionWatch({ monitor, sessions: webSessions, audit, logger });
  const webApps = new WebApps({ backend, clock, sessions: webSessions, proxyPublicAddr: publicAddr });
  // Web apps: `<app>.<proxy host>` names and `warden-app/1` tunnels handed to app_service (srv/app).
  const apps = await startAppAccess({
    ...protocolDeps,
    config: config.appService,
    backend,
    onRolesChange: (l) => views.roles.onChange(() => l()),
    onAccessChange: accessViewChanges(views),
    proxyPublicAddr: config.proxyService.publicAddr,
    web: webApps,
    // `WARDEN_APP_LEAN_HTTP1=0`: node:http for every app request (bench:app compares the two).
    leanHttp1: io.env.WARDEN_APP_LEAN_HTTP1 !== '0',
  });
  const listNodes = (identity: Identity) => reachableNodes(services.nodes, tunnels, identity);
  // The Web UI (`/web`, `/v1/web`) and browser device trust (DESIGN §7).
  const webDevice = new WebDeviceTrust({
    backend,
    clock,
    audit,
    logger,
    sessions: webSessions,
    authentication: deviceTrust.authentication,
    inventory,
    proxyPublicAddr: publicAddr,
    checkAddress: config.proxyService.webDeviceAddressBinding !== 'off',
  });
  const webUi = new WebUi({
    auth,
    services,
    sessions: webSessions,
    device: webDevice,
    access: checker,
    listNodes,
    listDbs: db.listDbs,
    ...(apps.service
      ? {
          apps: {
            list: (identity: Identity) => apps.api.list(identity) as rpc.AppInfo[],
            uriOf: (publicAddr: string) =>
              `https://${publicAddr}${config.proxyService.publicAddr.port === 443 ? '' : `:${config.proxyService.publicAddr.port}`}`,
            launcher: webApps,
          },
        }
      : {}),
    assetsDir: webAssetsDir(io.env),
    clock,
    audit,
    logger,
    limits: publicLimits,
    proxyPublicAddr: publicAddr,
    helperPorts: web.webHelperPorts(io.env),
  });
  const api = createRequestHandler({
    routes: [
      ...apiRoutes(auth, {
        listNodes,
        deviceTrust,
        listDbs: db.listDbs,
        dbLogin: (identity, req) => db.direct.login(identity, req),
        ...(apps.service ? { apps: apps.api } : {}),
        listKubeClusters: kube.listKubeClusters,
        ...(kube.issueKubeCert ? { issueKubeCert: kube.issueKubeCert } : {}),
        jwks: apps.jwks,
      }),
      ...webDeviceRoutes(webDevice),
    ],
    logger,
    identify: (der) => auth.identify(der),
    limits: publicLimits,
  });
  const http = createHttpServer(httpOptions, (req, res) => {
    if (kube.service?.matches(req.url)) {
      kube.service.misdirected(req, res, kubeTlsServerName(config.proxyService.publicAddr.host));
      return;
    }
    webUi.handle(req, res).then(
      (handled) => (handled ? undefined : api(req, res)),
      (e) => {
        logger.error({ err: e, path: req.url }, 'unhandled error in the Web UI');
        if (!res.headersSent) res.writeHead(500);
        res.end();
      },
    );
  });
  http.timeout = limits.idleTimeoutMs;
  http.emit('listening');
  http.on('upgrade', (_req, socket) => socket.destroy());
  // `postgresql`: libpq 17's direct TLS (`sslnegotiation=direct`) with a database certificate.
  const appAlpn = apps.routing.alpnCallback([
    SSH_ALPN,
    DB_ALPN,
    APP_ALPN,
    ...(config.dbService.enabled ? [POSTGRES_ALPN] : []),
  ]);
  const appSni = apps.routing.sniCallback();
  const server = createTlsServer(
    {
      handshakeTimeout: limits.handshakeTimeoutMs,
      ...proxyServerTls(cas, tls),
      // ALPN picks the tunnel (SSH, databases, apps) or HTTP; app host names also get h2 (SNI).
      // Kubernetes names (`kube.<name>`) come first: the proxy's certificate, HTTP/1.1.
      ALPNCallback: (arg) =>
        kube.isKubeHost(arg.servername)
          ? arg.protocols.includes('http/1.1')
            ? 'http/1.1'
            : undefined
          : appAlpn(arg),
      SNICallback: (name, cb) => (kube.isKubeHost(name) ? cb(null, undefined) : appSni(name, cb)),
    },
    (socket: TLSSocket) => {
      if (socket.alpnProtocol === SSH_ALPN) tunnels.handle(socket);
      else if (socket.alpnProtocol === DB_ALPN) db.tunnels.handle(socket);
      else if (socket.alpnProtocol === POSTGRES_ALPN) db.direct.handle(socket, 'postgres');
      else if (socket.alpnProtocol === APP_ALPN) apps.routing.handleTunnel(socket);
      else if (kube.isKubeHost(socket.servername)) kube.handle(socket);
      else if (apps.routing.isAppHost(socket.servername)) apps.routing.handleHost(socket);
      else http.emit('connection', socket);
    },
  );
  // The proxy port's listener: TLS goes to `server`, PostgreSQL's SSLRequest to the direct
  // database path (its TLS with the same host certificate and user CA).
  const directTls = { ...proxyServerTls(cas, tls), handshakeTimeout: limits.handshakeTimeoutMs };
  const front = proxyFrontDoor({
    tls: server,
    ...(config.dbService.enabled ? { postgres: { direct: db.direct, tls: directTls } } : {}),
    timeoutMs: limits.handshakeTimeoutMs,
    logger,
  });
  // What is still open at the shutdown deadline is cut (bin/shutdown.ts).
  const open = new OpenConnections();
  open.track(front);
  // A failed or timed-out handshake ends the connection (Node leaves that to this handler).
  server.on('tlsClientError', (e, socket) => {
    logger.debug({ err: e, addr: socket.remoteAddress }, 'TLS handshake failed');
    socket.destroy();
  });
  const listenOn = (l: NetServer, addr: typeof listen, name: string) =>
    new Promise<void>((resolve, reject) => {
      l.once('error', (e: NodeJS.ErrnoException) =>
        reject(
          new WardenError(
            'WARDEN_ERR_BAD_CONFIG',
            e.code === 'EADDRINUSE'
              ? `${name} ${formatHostPort(addr)} is already in use (is another warden running?)`
              : `cannot listen on ${formatHostPort(addr)}: ${e.message}`,
          ),
        ),
      );
      l.listen(addr.port, addr.host, () => resolve());
    });
  await listenOn(front, listen, 'proxy_service.listen_addr');
  const mysqlAddr = config.proxyService.mysqlListenAddr;
  if (mysqlAddr && config.dbService.enabled) {
    const l = mysqlDirectListener({
      direct: db.direct,
      tls: directTls,
      timeoutMs: limits.handshakeTimeoutMs,
      logger,
    });
    open.track(l);
    await listenOn(l, mysqlAddr, 'proxy_service.mysql_listen_addr');
    mysqlListener = l;
  }

  // The SSH service of this host (on by default in a single-machine cluster).
  const ssh = config.sshService.enabled
    ? await SshService.start({
        config: config.sshService,
        dataDir: config.dataDir,
        backend,
        services,
        cas,
        audit,
        clock,
        logger,
        clusterName: config.authService.clusterName,
        access: { checker, monitor },
      })
    : undefined;
  // Tunnels to this host's own node skip the loopback TCP hop (proxy/ssh-tunnel.ts).
  if (ssh) open.track(ssh.listener);
  if (ssh) tunnels.serveLocally({ name: ssh.hostId, accept: (stream) => ssh.acceptStream(stream) });

  // The admin identity for wctl on this host, refreshed well before it expires (and on
  // SIGHUP). Each new one revokes the one it replaces, also the one a previous run left in the
  // file: only the current identity works.
  const adminFile = join(config.dataDir, ADMIN_IDENTITY_FILE);
  let adminCertPem = previousAdminCert(adminFile);
  const writeAdmin = async () => {
    const id = await auth.issueAdminIdentity(adminCertPem === undefined ? {} : { replaces: adminCertPem });
    const file = adminFile;
    const tmp = `${file}.tmp`;
    writeFileSync(
      tmp,
      JSON.stringify({
        proxy: publicAddr,
        cluster: config.authService.clusterName,
        cert_pem: id.certPem,
        key_pem: id.keyPem,
        host_ca_pems: cas.tlsCertPems('host'),
        expires: id.expires.toISOString(),
      }),
      { mode: 0o600 },
    );
    chmodSync(tmp, 0o600);
    renameSync(tmp, file);
    adminCertPem = id.certPem;
  };
  await writeAdmin();
  const refresh = setInterval(() => {
    writeAdmin().catch((e) => logger.error({ err: e }, 'failed to refresh the admin identity'));
  }, ADMIN_REFRESH_MS);
  refresh.unref();

  const pin = cas.caPin('host');
  const users = await services.users.list();
  io.stdout.write(
    `Warden v${VERSION} (cluster "${config.authService.clusterName}", data in ${config.dataDir})\n` +
      (backend instanceof PostgresBackend
        ? `Backend: PostgreSQL ${backend.target} (shared by every replica of the cluster)\n`
        : '') +
      `Proxy listening on https://${formatHostPort(listen)} (public address ${publicAddr})\n` +
      (mysqlListener
        ? `MySQL clients with a database certificate: ${formatHostPort({ host: mysqlAddr!.host, port: (mysqlListener.address() as AddressInfo).port })}\n`
        : '') +
      `Clients trust it with --ca-pin=${pin}\n`,
  );
  if (users.length === 0) {
    io.stdout.write(
      '\nNo users yet. Create the first one from this host (wctl uses the admin identity in the data dir):\n\n' +
        `  wctl users add alice --roles=access,editor --logins=root${config.dataDir === join(process.cwd(), 'warden-data') ? '' : ` --data-dir=${config.dataDir}`}\n\n` +
        'then follow the signup command it prints.\n',
    );
  }
  if (ssh) io.stdout.write(`SSH service listening on ${ssh.addr} as node "${config.sshService.hostname}"\n`);
  const diag =
    config.diagAddr && (await startDiag(config.diagAddr, { backend, lockCache, metrics, logger, clock }));
  if (diag)
    io.stdout.write(`Diagnostics on http://${formatHostPort(diag.address)} (/metrics, /healthz, /readyz)\n`);

  return {
    rotateAdminIdentity: writeAdmin,
    auth,
    server,
    async close() {
      clearInterval(refresh);
      stopStallWatch();
      // The proxy's listener first (no new connections), then every service ends its sessions;
      // what is still open after SHUTDOWN_GRACE_MS is cut.
      const proxyClosed = Promise.all([
        new Promise<void>((resolve) => front.close(() => resolve())),
        new Promise<void>((resolve) => (mysqlListener ? mysqlListener.close(() => resolve()) : resolve())),
      ]);
      await closeWithDeadline(
        async () => {
          await diag?.close();
          tunnels.close();
          nodeView.close();
          db.close();
          await kube.close();
          apps.close();
          await ssh?.close();
          webWatch.close();
          monitor.close();
          views.close();
          http.closeAllConnections();
          await proxyClosed;
        },
        { open, graceMs: SHUTDOWN_GRACE_MS, logger },
      );
      await counters.close();
      await audit.close();
      await backend.close();
    },
  };
}
