/**
 * How `wsh db connect` starts a database's own client against a local tunnel: `psql` for
 * PostgreSQL (plain TCP to 127.0.0.1, `sslmode=disable`: the tunnel to the proxy is TLS), and
 * the connection settings `wsh db config` prints for other clients and drivers.
 */
import { WardenError } from '@warden/api';

export interface LocalEndpoint {
  host: string;
  port: number;
  dbUser?: string;
  dbName?: string;
}

/** libpq connection string for a tunnel endpoint. */
export function postgresConnString(e: LocalEndpoint): string {
  const q = (v: string) => (/^[^\s'\\]+$/.test(v) ? v : `'${v.replace(/[\\']/g, '\\$&')}'`);
  return [
    `host=${e.host}`,
    `port=${e.port}`,
    ...(e.dbUser ? [`user=${q(e.dbUser)}`] : []),
    ...(e.dbName ? [`dbname=${q(e.dbName)}`] : []),
    'sslmode=disable',
  ].join(' ');
}

/** The command line of the database's client for `protocol`, connected to `e`. */
export function clientCommand(protocol: string, e: LocalEndpoint, extra: readonly string[] = []): string[] {
  if (protocol === 'postgres') return ['psql', postgresConnString(e), ...extra];
  throw new WardenError(
    'WARDEN_ERR_NOT_IMPLEMENTED',
    `\`wsh db connect\` does not know a client for ${protocol} databases yet; use \`wsh proxy db --tunnel\``,
  );
}
