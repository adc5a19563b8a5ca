/**
 * The audit log (DESIGN §3, §5): an append-only store of the events in the catalogue
 * (`@warden/api` events.ts), searchable by time, type, user and device; implementations in
 * memory, SQLite and PostgreSQL, a JSON-lines sink, and `teeAuditLog` to combine them. Who
 * may import: server modules (services emit, the RPC layer searches; composition in `bin/`).
 * Tested by the shared suite in `test/support/audit-conformance.ts` (memory and SQLite here, PostgreSQL in
 * `test/postgres/`) and the sink/tee tests.
 */
export { type DeviceOsTypeLookup, withDeviceOsType } from './device-os';
export { JsonlAuditSink } from './jsonl';
export { MemoryAuditLog } from './memory';
export { POSTGRES_AUDIT_SCHEMA_VERSION, PostgresAuditLog, type PostgresAuditLogOptions } from './postgres';
export { MAX_AUDIT_STRING, prepareAuditEvent, primeSessionEndAudit, SESSION_END_PRIMING } from './prepare';
export { AUDIT_SCHEMA_VERSION, SqliteAuditLog } from './sqlite';
export { teeAuditLog } from './tee';
export type {
  AuditLog,
  AuditQuery,
  AuditSink,
  AuditStatement,
  AuditStatementBase,
  AuditStatementWriter,
} from './types';
export { auditUnavailable, undoUnless, writeAuditEvent } from './write';
