/**
 * How `wsh db connect` starts a database's own client against a local tunnel: `psql` for
 * PostgreSQL and `mysql` for MySQL/MariaDB (plain TCP to 127.0.0.1 without TLS: the tunnel to
 * the proxy is TLS), and the connection settings `wsh db config` prints for other clients and
 * drivers.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { WardenError } from '@warden/api';

export interface LocalEndpoint {
  /** For PostgreSQL over a Unix socket: the socket's directory (libpq's `host=/dir`). */
  host: string;
  port: number;
  /** MySQL over a Unix socket: the socket file (`mysql --socket`). */
  socket?: string;
  dbUser?: string;
  dbName?: string;
}

/** libpq's default port, which also names its socket file (`.s.PGSQL.5432`). */
export const POSTGRES_DEFAULT_PORT = 5432;

/**
 * The socket file a tunnel listens on for `wsh proxy db --tunnel --socket=PATH`, where
 * clients look for it: for PostgreSQL PATH is a directory (`psql -h PATH -p PORT` opens
 * `PATH/.s.PGSQL.PORT`, PORT 5432 unless given); for MySQL (and anything else) PATH is the
 * socket file itself (`mysql --socket=PATH`).
 *
 * @example
 *   tunnelSocketPath('postgres', '/run/user/1000/orders', 0) // '/run/user/1000/orders/.s.PGSQL.5432'
 */
export function tunnelSocketPath(protocol: string, path: string, port: number): string {
  return protocol === 'postgres' ? join(path, `.s.PGSQL.${port || POSTGRES_DEFAULT_PORT}`) : path;
}

/** A libpq connection-string value, quoted when libpq needs it quoted. */
function q(v: string): string {
  return /^[^\s'\\]+$/.test(v) ? v : `'${v.replace(/[\\']/g, '\\$&')}'`;
}

/** libpq connection string for a tunnel endpoint. */
export function postgresConnString(e: LocalEndpoint): string {
  return [
    `host=${q(e.host)}`,
    `port=${e.port}`,
    ...(e.dbUser ? [`user=${q(e.dbUser)}`] : []),
    ...(e.dbName ? [`dbname=${q(e.dbName)}`] : []),
    'sslmode=disable',
  ].join(' ');
}

/** A native client straight at the proxy with its database certificate (`wsh db login`). */
export interface DirectEndpoint {
  host: string;
  port: number;
  dbUser?: string;
  dbName?: string;
  /** The proxy's CA certificates (the profile's host-cas.pem). */
  caPath: string;
  /** The database certificate (`dbCertPath`) and the profile's key. */
  certPath: string;
  keyPath: string;
}

/** libpq connection string straight to the proxy: TLS verified both ways with the database certificate. */
export function postgresDirectConnString(e: DirectEndpoint): string {
  return [
    `host=${q(e.host)}`,
    `port=${e.port}`,
    'sslmode=verify-full',
    `sslrootcert=${q(e.caPath)}`,
    `sslcert=${q(e.certPath)}`,
    `sslkey=${q(e.keyPath)}`,
    ...(e.dbUser ? [`user=${q(e.dbUser)}`] : []),
    ...(e.dbName ? [`dbname=${q(e.dbName)}`] : []),
  ].join(' ');
}

/** `mysql` options straight to the proxy's MySQL listener with the database certificate. */
export function mysqlDirectArgs(e: DirectEndpoint, flavor: MysqlFlavor = 'mariadb'): string[] {
  return [
    '--protocol=TCP',
    `--host=${e.host}`,
    `--port=${e.port}`,
    `--ssl-ca=${e.caPath}`,
    `--ssl-cert=${e.certPath}`,
    `--ssl-key=${e.keyPath}`,
    flavor === 'mysql' ? '--ssl-mode=VERIFY_IDENTITY' : '--ssl-verify-server-cert',
    ...(e.dbUser ? [`--user=${e.dbUser}`] : []),
    ...(e.dbName ? [`--database=${e.dbName}`] : []),
  ];
}

/** Which `mysql` client is installed: MariaDB's and Oracle's spell "no TLS" differently. */
export type MysqlFlavor = 'mariadb' | 'mysql';

/** `mysql --version` says whose client it is (MariaDB's when it cannot tell). */
export function mysqlFlavor(command = 'mysql'): MysqlFlavor {
  const res = spawnSync(command, ['--version'], { encoding: 'utf8', timeout: 5000 });
  return res.status === 0 && !/mariadb/i.test(res.stdout) ? 'mysql' : 'mariadb';
}

/**
 * `mysql` options for a tunnel endpoint: TCP (never the server's own local socket), or the
 * tunnel's socket when it listens on one; no TLS.
 */
export function mysqlArgs(e: LocalEndpoint, flavor: MysqlFlavor = 'mariadb'): string[] {
  return [
    ...(e.socket !== undefined
      ? ['--protocol=SOCKET', `--socket=${e.socket}`]
      : ['--protocol=TCP', `--host=${e.host}`, `--port=${e.port}`]),
    ...(e.dbUser ? [`--user=${e.dbUser}`] : []),
    ...(e.dbName ? [`--database=${e.dbName}`] : []),
    flavor === 'mysql' ? '--ssl-mode=DISABLED' : '--skip-ssl',
  ];
}

/** The command line of the database's client for `protocol`, connected to `e`. */
export function clientCommand(
  protocol: string,
  e: LocalEndpoint,
  extra: readonly string[] = [],
  flavor: () => MysqlFlavor = mysqlFlavor,
): string[] {
  if (protocol === 'postgres') return ['psql', postgresConnString(e), ...extra];
  if (protocol === 'mysql') return ['mysql', ...mysqlArgs(e, flavor()), ...extra];
  throw new WardenError(
    'WARDEN_ERR_NOT_IMPLEMENTED',
    `\`wsh db connect\` does not know a client for ${protocol} databases yet; use \`wsh proxy db --tunnel\``,
  );
}
