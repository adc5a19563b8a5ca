/**
 * An in-process Warden for the database tests, composed as `bin/start.ts` composes it plus
 * `bin/db.ts` (auth, the proxy's HTTPS API and ALPN routes, db_service with the PostgreSQL
 * engine), on 127.0.0.1 port 0, with the admin identity file `wctl` reads. The CLIs run as
 * real processes (bundled from source for this run), as a user would run them.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer as createTlsServer, type Server, type TLSSocket } from 'node:tls';
import { type AuthPreferenceResource, DB_ALPN } from '@warden/api';
import {
  type AuthServer,
  type CertAuthorities,
  createAuthServer,
  type DbServiceConfig,
  type MemoryAuditLog,
  type Services,
  systemClock,
} from '@warden/server';
import { collectProcess, waitForText } from '@warden/testkit';
import { startDbAccess } from '../../packages/server/src/bin/db';
import {
  apiRoutes,
  createRequestHandler,
  mysqlDirectListener,
  proxyFrontDoor,
} from '../../packages/server/src/proxy';
import {
  PASSWORD,
  proxyTlsOptions,
  quietLogger,
  signUpAndLogin,
  startCore,
  startLiveAccess,
  writeAdminIdentity,
} from '../support/in-process';
import { type CliResult, sourceClis } from '../support/source-clis';

export type { CliResult };

export { PASSWORD };

const quiet = quietLogger;

export interface Cluster {
  dir: string;
  proxy: string;
  /** The MySQL listener for native clients with a database certificate (host:port). */
  mysqlDirect: string;
  caPin: string;
  services: Services;
  audit: MemoryAuditLog;
  auth: AuthServer;
  /** The CAs (tests issue expired and odd database certificates with them). */
  cas: CertAuthorities;
  /** Env for wctl (admin identity in the data dir). */
  adminEnv: NodeJS.ProcessEnv;
  /** Starts db_service with these databases (once PostgreSQL is up). */
  startDb(config: DbServiceConfig): Promise<void>;
  /** Adds a user with roles and traits, signs them up, and logs them in with `wsh login`. */
  addUser(name: string, roles: string[], traits: Record<string, string[]>): Promise<NodeJS.ProcessEnv>;
  setAuthPreference(spec: Partial<AuthPreferenceResource['spec']>): Promise<void>;
  stop(): Promise<void>;
}

/** Until a text (a process's output) matches. */
export { waitForText as waitFor };

const clis = sourceClis('db');
/** The CLIs bundled from source (test/support/source-clis.ts). */
export const buildClis = clis.build;
export const spawnCli = clis.spawn;
/** Runs `wsh` or `wctl` from source. */
export const cli = clis.run;

/** Runs a database client (psql, mysql) to the end; killed after `timeoutMs` (20 s). */
export function runClient(
  command: string,
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<CliResult> {
  return collectProcess(spawn(command, args, opts.env ? { env: opts.env } : {}), {
    timeout: 'kill',
    timeoutMs: opts.timeoutMs ?? 20_000,
  });
}

export async function startCluster(): Promise<Cluster> {
  await buildClis();
  const dir = mkdtempSync(join(tmpdir(), 'warden-db-test-'));
  const dataDir = join(dir, 'data');
  const core = await startCore('db-test', systemClock);
  const { clock, backend, audit, services, cas, setAuthPreference } = core;
  const live = await startLiveAccess(core);
  const { checker, monitor } = live;

  let db: Awaited<ReturnType<typeof startDbAccess>> | undefined;
  const routesFor = (a: AuthServer) =>
    apiRoutes(a, {
      listNodes: async () => [],
      listDbs: async (identity) => (db ? db.listDbs(identity) : []),
      dbLogin: async (identity, req) => {
        if (!db) throw new Error('no db_service yet');
        return db.direct.login(identity, req);
      },
    });
  let http: ReturnType<typeof createHttpServer> | undefined;
  const server: Server = createTlsServer(
    {
      ...(await proxyTlsOptions(cas)),
      ALPNProtocols: ['http/1.1', DB_ALPN],
    },
    (socket: TLSSocket) => {
      if (socket.alpnProtocol === DB_ALPN) {
        if (db) db.tunnels.handle(socket);
        else socket.destroy();
      } else http?.emit('connection', socket);
    },
  );
  server.on('tlsClientError', () => undefined);
  // The proxy port as bin/start.ts composes it: PostgreSQL's SSLRequest goes to the direct path.
  const directTls = await proxyTlsOptions(cas);
  const direct = {
    handle: (socket: TLSSocket, protocol: 'postgres' | 'mysql', greeted?: { connectionId: number }) =>
      db ? db.direct.handle(socket, protocol, greeted) : socket.destroy(),
  };
  const front = proxyFrontDoor({
    tls: server,
    postgres: { direct, tls: directTls },
    timeoutMs: 10_000,
    logger: quiet,
  });
  await new Promise<void>((r) => front.listen(0, '127.0.0.1', () => r()));
  const proxy = `127.0.0.1:${(front.address() as { port: number }).port}`;
  // The MySQL listener (`proxy_service.mysql_listen_addr`) for native MySQL clients.
  const mysql = mysqlDirectListener({ direct, tls: directTls, timeoutMs: 10_000, logger: quiet });
  await new Promise<void>((r) => mysql.listen(0, '127.0.0.1', () => r()));
  const mysqlPort = (mysql.address() as { port: number }).port;
  const a = createAuthServer({
    clock,
    backend,
    services,
    cas,
    audit,
    logger: quiet,
    clusterName: 'db-test',
    proxyPublicAddr: proxy,
    serverVersion: '0.0.0-test',
  });
  http = createHttpServer(
    createRequestHandler({ routes: routesFor(a), logger: quiet, identify: (der) => a.identify(der) }),
  );

  const adminCaller = await writeAdminIdentity(a, cas, { dataDir, proxy, cluster: 'db-test' });
  await setAuthPreference({ second_factor: 'off' });

  return {
    dir,
    proxy,
    mysqlDirect: `127.0.0.1:${mysqlPort}`,
    caPin: cas.caPin('host'),
    services,
    audit,
    auth: a,
    cas,
    adminEnv: { WARDEN_DATA_DIR: dataDir, WARDEN_HOME: join(dir, 'home-admin') },
    async startDb(config) {
      db = await startDbAccess({
        config,
        services,
        cas,
        audit,
        clock,
        logger: quiet,
        checker,
        monitor,
        identify: (der) => a.identify(der),
        identifyDb: (der) => a.identifyDb(der),
        endpoints: () => ({
          postgres: { host: '127.0.0.1', port: Number(proxy.split(':')[1]) },
          mysql: { host: '127.0.0.1', port: mysqlPort },
        }),
      });
    },
    async addUser(name, roles, traits) {
      const invite = await a.addUser(adminCaller, { name, roles, logins: [] });
      const user = (await services.users.get(name))!;
      await services.users.upsert({ ...user, spec: { ...user.spec, traits } });
      const env = { WARDEN_HOME: join(dir, `home-${name}`) };
      await signUpAndLogin(a, clis, { name, token: invite.token, proxy, caPin: cas.caPin('host'), env });
      return env;
    },
    setAuthPreference,
    async stop() {
      db?.close();
      live.close();
      await new Promise<void>((r) => {
        front.close(() => r());
        mysql.close();
        http?.closeAllConnections();
      });
      await backend.close();
      rmSync(dir, { recursive: true, force: true });
      clis.remove();
    },
  };
}
