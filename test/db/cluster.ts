/**
 * An in-process Warden for the database tests, composed as `bin/start.ts` composes it plus
 * `bin/db.ts` (test/support/in-process.ts's proxy with db_service: its ALPN route, the front
 * door that sends PostgreSQL's SSLRequest to the direct path, and the MySQL listener), on
 * 127.0.0.1 port 0, with the admin identity file `wctl` reads. The CLIs run as real processes
 * (bundled from source for this run), as a user would run them.
 */
import { spawn } from 'node:child_process';
import type { Server as NetServer } from 'node:net';
import type { TLSSocket, TlsOptions } from 'node:tls';
import { type AuthPreferenceResource, DB_ALPN } from '@warden/api';
import type { AuthServer, CertAuthorities, DbServiceConfig, MemoryAuditLog, Services } from '@warden/server';
import { collectProcess, waitForText } from '@warden/testkit';
import { type DbAccessComposition, startDbAccess } from '../../packages/server/src/bin';
import { mysqlDirectListener, POSTGRES_ALPN, proxyFrontDoor } from '../../packages/server/src/proxy';
import {
  PASSWORD,
  protocolDeps,
  proxyTlsOptions,
  quietLogger,
  startProxyCluster,
} from '../support/in-process';
import { type CliResult, sourceClis } from '../support/source-clis';

export type { CliResult };

export { PASSWORD };

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
  let db: DbAccessComposition | undefined;
  // Native clients straight at the proxy (PostgreSQL) or at the MySQL listener.
  const direct = {
    handle: (socket: TLSSocket, protocol: 'postgres' | 'mysql', greeted?: { connectionId: number }) =>
      db ? db.direct.handle(socket, protocol, greeted) : socket.destroy(),
    cancel: (key: { processId: number; secretKey: number }, clientAddr: string) =>
      db?.direct.cancel(key, clientAddr),
  };
  let directTls: TlsOptions = {};
  let mysql: NetServer | undefined;
  const p = await startProxyCluster({
    tag: 'db',
    clis,
    tls: { ALPNProtocols: ['http/1.1', DB_ALPN, POSTGRES_ALPN] },
    // The proxy port as bin/start.ts composes it: PostgreSQL's SSLRequest goes to the direct path.
    async listener(tls, core) {
      directTls = await proxyTlsOptions(core.cas);
      return proxyFrontDoor({
        tls,
        postgres: { direct, tls: directTls },
        timeoutMs: 10_000,
        logger: quietLogger,
      });
    },
    async protocols() {
      // The MySQL listener (`proxy_service.mysql_listen_addr`) for native MySQL clients.
      const listener = mysqlDirectListener({
        direct,
        tls: directTls,
        timeoutMs: 10_000,
        logger: quietLogger,
      });
      mysql = listener;
      await new Promise<void>((r) => listener.listen(0, '127.0.0.1', () => r()));
      return {
        routes: {
          listDbs: async (identity) => (db ? db.listDbs(identity) : []),
          dbLogin: async (identity, req) => {
            if (!db) throw new Error('no db_service yet');
            return db.direct.login(identity, req);
          },
        },
        take(socket) {
          // libpq 17's direct TLS (no SSLRequest) with a database certificate.
          if (socket.alpnProtocol === POSTGRES_ALPN) {
            direct.handle(socket, 'postgres');
            return true;
          }
          if (socket.alpnProtocol !== DB_ALPN) return false;
          if (db) db.tunnels.handle(socket);
          else socket.destroy();
          return true;
        },
        close() {
          db?.close();
          listener.close();
        },
      };
    },
  });
  const { core, live, auth } = p;
  const mysqlPort = (mysql!.address() as { port: number }).port;
  return {
    dir: p.dir,
    proxy: p.proxy,
    mysqlDirect: `127.0.0.1:${mysqlPort}`,
    caPin: p.caPin,
    services: core.services,
    audit: core.audit,
    auth,
    cas: core.cas,
    adminEnv: p.adminEnv,
    async startDb(config) {
      db = await startDbAccess({
        ...protocolDeps(core, live),
        config,
        identify: (der) => auth.identify(der),
        identifyDb: (der) => auth.identifyDb(der),
        endpoints: () => ({
          postgres: { host: '127.0.0.1', port: p.port },
          mysql: { host: '127.0.0.1', port: mysqlPort },
        }),
      });
    },
    addUser: (name, roles, traits) => p.addUser(name, roles, { traits }),
    setAuthPreference: core.setAuthPreference,
    stop: p.stop,
  };
}
