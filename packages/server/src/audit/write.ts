/**
 * The one way services record an audit event: `writeAuditEvent`. Today a write that fails is
 * logged and the caller goes on (the event is lost, the request is not); changing that policy
 * (for example to fail closed) is a change to this one function.
 */
import type { AuditEventInput } from '@warden/api';
import type { Logger } from '../log';
import type { AuditLog } from './types';

/**
 * Writes `event` to `audit`; a failure is logged with `context` (never the event's fields,
 * which may name users or hosts) and not thrown.
 *
 * @example await writeAuditEvent(this.#o.audit, this.#o.logger, { type: 'lock.created', … });
 */
export async function writeAuditEvent(
  audit: AuditLog,
  logger: Logger,
  event: AuditEventInput,
  context: Record<string, unknown> = {},
): Promise<void> {
  try {
    await audit.emit(event);
  } catch (e) {
    logger.error({ err: e, type: event.type, ...context }, 'failed to write audit event');
  }
}
