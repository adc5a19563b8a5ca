/**
 * The one way services record an audit event: `writeAuditEvent`. Security events must not
 * succeed unaudited (issue 15 item 5), so the policy is fail closed:
 *
 *   event's outcome    the audit log refuses it
 *   success            the operation is refused: `writeAuditEvent` throws
 *                      WARDEN_ERR_AUDIT_UNAVAILABLE (or, for a data path that passes `onLost`,
 *                      calls it to end the session and resolves)
 *   failure, denial    the operation is refused anyway: logged, the caller's own error stands
 *
 * Callers write a success event *before* they answer (a login's certificates, a session's
 * first byte) or undo what they did when it throws (a lock, an enrollment). Every failed write
 * is counted in `warden_audit_write_failures_total` by `instrumentAudit` (diag/), which wraps
 * the store under every writer.
 */
import { type AuditEventInput, auditEventCatalogue, WardenError } from '@warden/api';
import type { Logger } from '../log';
import type { AuditLog } from './types';

export interface WriteAuditOptions {
  /**
   * Data paths (a session already under way): instead of throwing, end the session with this
   * message. Must not throw.
   */
  onLost?(message: string, error: WardenError): void;
}

/** True when the event records a refusal (its outcome is failure): losing it refuses nothing more. */
function isRefusal(event: AuditEventInput): boolean {
  if (event.success === false) return true;
  const entry = (auditEventCatalogue as Record<string, { code?: string }>)[event.type];
  return entry !== undefined && entry.code === undefined;
}

/** The error a success event the audit log did not take turns into. */
export function auditUnavailable(type: string): WardenError {
  return new WardenError(
    'WARDEN_ERR_AUDIT_UNAVAILABLE',
    `refused: the audit log could not record this (${type}), and Warden does not allow it unaudited; an administrator must repair the audit store`,
    { type },
  );
}

/**
 * Writes `event` to `audit`. A failure is logged with `context` (never the event's fields,
 * which may name users or hosts); then a success event throws WARDEN_ERR_AUDIT_UNAVAILABLE
 * (or calls `opts.onLost`), a failure event resolves (see the header).
 *
 * @example await writeAuditEvent(this.#o.audit, this.#o.logger, { type: 'lock.created', … });
 */
export async function writeAuditEvent(
  audit: AuditLog,
  logger: Logger,
  event: AuditEventInput,
  context: Record<string, unknown> = {},
  opts: WriteAuditOptions = {},
): Promise<void> {
  try {
    await audit.emit(event);
  } catch (e) {
    const refusal = isRefusal(event);
    logger.error(
      { err: e, type: event.type, ...context },
      refusal
        ? 'failed to write audit event (the operation was refused anyway)'
        : 'failed to write audit event: the operation is refused',
    );
    if (refusal) return;
    const err = auditUnavailable(event.type);
    if (opts.onLost) {
      opts.onLost(err.message, err);
      return;
    }
    throw err;
  }
}

/**
 * Awaits an audit write that records a change already stored; if the audit log refused it,
 * runs `undo` (best effort, logged with `what`) and rethrows WARDEN_ERR_AUDIT_UNAVAILABLE, so
 * no change stands unaudited (issue 15 item 5).
 *
 * @example
 *   await store.create(role);
 *   await undoUnless(logger, audit({ type: 'role.created', … }), () => store.delete(name), 'role create');
 */
export async function undoUnless(
  logger: Pick<Logger, 'error'>,
  audited: Promise<void>,
  undo: () => Promise<unknown>,
  what: string,
): Promise<void> {
  try {
    await audited;
  } catch (e) {
    await undo().catch((err) =>
      logger.error({ err, change: what }, 'could not undo a change the audit log did not record'),
    );
    throw e;
  }
}
