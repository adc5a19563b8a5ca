/**
 * The MySQL engine of db_service, for MariaDB and MySQL (see `engine.ts` for the sequence
 * diagram): greets inside the proxy's tunnel as the server, checks access after the
 * HandshakeResponse41, refuses with ERR 1045 / 28000 and the reason, logs in to the database
 * with a db-CA client certificate and no password, relays and audits COM_QUERY and prepared
 * statements, refuses COM_CHANGE_USER, maps `KILL QUERY` to the database's thread, and ends
 * sessions with an ERR packet when a lock comes into force.
 * Who may import: `bin/` (composition) and tests. Tested by the colocated `*.test.ts` and
 * end to end in `test/db/` with a real MariaDB.
 */

export { type MySqlGreeted, mysqlTlsOpening } from './direct';
export { ConnectionIds, DEFAULT_SERVER_VERSION, MySqlEngine, type MySqlEngineOptions } from './engine';
export { MySqlProtocolError } from './protocol';
