/**
 * Composition of database access for `warden start`: db_service (engines over the process's
 * access checker and session monitor, heartbeat of the configured databases) and the proxy's
 * `warden-db/1` route. `start.ts` calls `startDbAccess` and adds three things (see the
 * example); tests compose it the same way.
 *
 * @example
 *   const db = await startDbAccess({ config: config.dbService, services, cas, audit, clock, logger,
 *     checker, monitor, identify: (der) => auth.identify(der) });
 *   apiRoutes(auth, { listNodes, listDbs: db.listDbs });            // GET /v1/dbs
 *   ALPNProtocols: ['http/1.1', SSH_ALPN, DB_ALPN];                  // and in the connection handler:
 *   if (socket.alpnProtocol === DB_ALPN) db.tunnels.handle(socket);
 *   // on close: db.close();
 */
import type { DbProtocol, DbResource } from '@warden/api';
import type { Identity } from '../access';
import { type DbServiceConfig, formatHostPort } from '../config';
import { DbDirect, type DbDirectOptions, type DbTunnelOptions, DbTunnels, DbView } from '../proxy';
import { ResourceHeartbeat } from '../services';
import { DbService, dbCertIssuer, dbResourceFromConfig, MySqlEngine, PostgresEngine } from '../srv/db';
import type { ProtocolDeps } from './protocol-deps';

export interface DbAccessDeps extends ProtocolDeps {
  config: DbServiceConfig;
  identify: DbTunnelOptions['identify'];
  /** Database certificates of native clients straight at the proxy (`AuthServer.identifyDb`). */
  identifyDb: DbDirectOptions['identifyDb'];
  /**
   * Where native clients connect with their database certificate, per protocol (PostgreSQL:
   * the proxy port; MySQL: `proxy_service.mysql_listen_addr`). Read at each `wsh db login`.
   */
  endpoints: () => Partial<Record<DbProtocol, { host: string; port: number }>>;
}

export interface DbAccessComposition {
  /** undefined when `db_service.enabled` is false. */
  service: DbService | undefined;
  tunnels: DbTunnels;
  /** Native clients with a database certificate (`wsh db login`) straight at the proxy. */
  direct: DbDirect;
  /** For `apiRoutes(…, { listDbs })`. */
  listDbs(identity: Identity): Promise<unknown[]>;
  close(): void;
}

export async function startDbAccess(d: DbAccessDeps): Promise<DbAccessComposition> {
  let service: DbService | undefined;
  let heartbeat: ResourceHeartbeat<DbResource> | undefined;
  if (d.config.enabled) {
    service = new DbService({
      clock: d.clock,
      logger: d.logger,
      audit: d.audit,
      checker: d.checker,
      monitor: d.monitor,
      issuer: dbCertIssuer(d.cas),
      engines: [new PostgresEngine({ logger: d.logger }), new MySqlEngine({ logger: d.logger })],
      listDbs: () => d.services.dbs.list(),
    });
    const databases = d.config.databases.map((db) =>
      dbResourceFromConfig({
        name: db.name,
        protocol: db.protocol,
        uri: formatHostPort(db.uri),
        labels: db.staticLabels,
        ...(db.caCert ? { caCertPems: db.caCert.certificates } : {}),
      }),
    );
    if (databases.length > 0) {
      heartbeat = new ResourceHeartbeat({
        store: d.services.dbs,
        resources: databases,
        what: 'database',
        clock: d.clock,
        logger: d.logger,
      });
      await heartbeat.start();
    }
  }
  // The database of each connection from a watch-fed view (no backend read per connection).
  const dbView = new DbView({
    cache: d.services.dbCache({ logger: d.logger }),
    clock: d.clock,
    dbs: d.services.dbs,
  });
  await dbView.start();
  const tunnels = new DbTunnels({
    identify: d.identify,
    findDb: (name) => dbView.find(name),
    handoff: service,
    logger: d.logger,
  });
  const direct = new DbDirect({
    identifyDb: d.identifyDb,
    findDb: (name) => dbView.find(name),
    handoff: service,
    checker: d.checker,
    issueDbCert: (req) => d.cas.issueDbCert(req),
    audit: d.audit,
    logger: d.logger,
    get endpoints() {
      return d.endpoints();
    },
  });
  return {
    service,
    tunnels,
    direct,
    listDbs: async (identity) => (service ? service.listFor(identity) : []),
    close() {
      dbView.close();
      heartbeat?.close();
      service?.close();
    },
  };
}
