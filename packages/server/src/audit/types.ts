/**
 * The audit store contract (DESIGN §3): an append-only log of the events in the catalogue
 * (`@warden/api` events.ts), searchable by time, type, user and device.
 */
import type { AuditEvent, AuditEventInput } from '@warden/api';

export interface AuditQuery {
  /** Events at or after this time (RFC 3339 string or Date). */
  from?: string | Date;
  /** Events strictly before this time (RFC 3339 string or Date). */
  to?: string | Date;
  /** Only these event types (catalogue names; an unknown name is BAD_PARAMETER). */
  types?: readonly string[];
  /** Only events whose acting `user` is this name. */
  user?: string;
  /** Only events from this device (`device.id`) or about it (`device_id`). */
  device?: string;
  /** At most this many events, 1..10 000 (default 1000). */
  limit?: number;
  /** By time, then by order of emission: 'desc' (newest first, the default) or 'asc'. */
  order?: 'asc' | 'desc';
}

export interface AuditLog {
  /**
   * Validates the event against the catalogue, drops fields named like secrets (anywhere in
   * the event; listed in `redacted`) and fields the type does not define, fills in `id`,
   * `code`, `time` (from the log's clock) and `success`, stores it and returns the stored
   * event. Unknown type, missing or mistyped fields, or an outcome the type cannot have
   * (e.g. a failed `role.created`) are BAD_PARAMETER and store nothing.
   */
  emit(event: AuditEventInput): Promise<AuditEvent>;
  /**
   * Optional fast path for the `db.query` events of one database session: `base` is the event
   * without its statement (`query`, `parameters`, `statement`), checked once; each `write`
   * adds one statement and resolves once it is durable, like `emit`. Undefined when the log
   * has no such path or `base` needs the general one: the caller emits instead.
   */
  statements?(base: AuditStatementBase): AuditStatementWriter | undefined;
  search(query?: AuditQuery): Promise<AuditEvent[]>;
  close(): Promise<void>;
}

/** Somewhere stored events are copied to (a JSON-lines file, a log shipper…). */
export interface AuditSink {
  write(event: AuditEvent): Promise<void>;
  close(): Promise<void>;
}

/** What a database statement adds to its session's `db.query` event. */
export interface AuditStatement {
  query: string;
  parameters?: readonly (string | null)[];
  statement?: string;
}

/** A `db.query` event without its statement: what every event of one session shares. */
export type AuditStatementBase = Omit<Extract<AuditEventInput, { type: 'db.query' }>, keyof AuditStatement>;

/**
 * Why the log did not take a statement, or undefined once it is durable (`AuditStatementWriter`).
 * Must not throw.
 */
export type AuditStatementDone = (error?: unknown) => void;

/**
 * Writes the `db.query` events of one session (`AuditLog.statements`). A callback, not a
 * promise, per statement: a busy session writes thousands per second.
 */
export interface AuditStatementWriter {
  /**
   * Queues one statement; never throws. `done()` once the event is durable, `done(error)`
   * when the log did not take it (as `emit` rejecting).
   */
  write(statement: AuditStatement, done: AuditStatementDone): void;
}
