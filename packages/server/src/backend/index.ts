/**
 * Storage backends (DESIGN §3). Who may import: server modules (`audit/` also uses the
 * PostgreSQL connection pool and migration runner). Tested by the conformance suite in
 * `test/support/backend-conformance.ts` (test-only, imported by each implementation's test),
 * run against every implementation, plus a SIGKILL test for SQLite and the
 * PostgreSQL fault tests in `test/postgres/`.
 */

export {
  MemoryRateCounters,
  type MemoryRateCountersOptions,
  type RateCount,
  type RateCounters,
} from './counters';
export { MemoryBackend, type MemoryBackendOptions } from './memory';
export {
  POSTGRES_DEFAULT_SCHEMA,
  PostgresBackend,
  type PostgresBackendHealth,
  type PostgresBackendOptions,
} from './postgres';
export {
  type PostgresConnectionOptions,
  PostgresPool,
  type PostgresTlsMode,
  type PostgresTlsOptions,
  resolveConnection,
  sqlState,
} from './postgres-connection';
export { PostgresRateCounters, type PostgresRateCountersOptions } from './postgres-counters';
export { migrateSchema, POSTGRES_SCHEMA_VERSION } from './postgres-schema';
export { MAX_TXN_OPS } from './rules';
export { SqliteBackend, type SqliteBackendOptions } from './sqlite';
export type {
  Backend,
  BackendEvent,
  Item,
  RangeResult,
  TxnOp,
  Watcher,
  WatchOptions,
  WriteOptions,
} from './types';
