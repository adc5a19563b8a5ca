/**
 * Databases from the client side: dialing one through the proxy (`warden-db/1`), a local
 * plain tunnel any client can use, the remembered `wsh db login` choices, and the command
 * line of the database's own client. Who may import: the CLIs, through `@warden/client`.
 */
export {
  clientCommand,
  type DirectEndpoint,
  type LocalEndpoint,
  type MysqlFlavor,
  mysqlArgs,
  mysqlDirectArgs,
  mysqlFlavor,
  POSTGRES_DEFAULT_PORT,
  postgresConnString,
  postgresDirectConnString,
  tunnelSocketPath,
} from './clients';
export { type DbInfo, type DbRoute, dialDb } from './dial';
export { type DbLogin, dbCertPath, loadDbLogins, removeDbLogins, saveDbCert, saveDbLogin } from './logins';
export { type DbTunnel, type DbTunnelOptions, startDbTunnel } from './tunnel';
