/**
 * The PostgreSQL engine of db_service (see `engine.ts` for the sequence diagram): answers
 * SSLRequest inside the proxy's tunnel, checks access after the StartupMessage, refuses with
 * ErrorResponse 28000 and the reason, logs in to the database with a db-CA client
 * certificate, relays and audits simple and extended queries, maps CancelRequests, and
 * ends sessions with a protocol error when a lock comes into force.
 * Who may import: `bin/` (composition) and tests. Tested by the colocated `*.test.ts` and
 * end to end in `test/db/` with a real PostgreSQL 15.
 */
export { CancelKeys, PostgresEngine, type PostgresEngineOptions } from './engine';
export {
  errorResponse,
  PgProtocolError,
  parseErrorFields,
  parseStartupPacket,
  SqlState,
  startupMessage,
} from './protocol';
