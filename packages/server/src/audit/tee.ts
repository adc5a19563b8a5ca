/**
 * Composition: an AuditLog that stores in a primary log and copies each stored event to
 * sinks. Searches go to the primary.
 */
import { type AuditEvent, type AuditEventInput, WardenError } from '@warden/api';
import type { AuditLog, AuditQuery, AuditSink } from './types';

/**
 * Emits to `primary`, then writes the stored event (with its id and time) to every sink. If a
 * sink fails, the event is already in the primary, the other sinks still get it, and emit
 * rejects with WARDEN_ERR_INTERNAL so the caller knows the copy is incomplete (fail loudly,
 * never silently lose audit lines). `close()` closes the primary and every sink.
 *
 * @example
 *   const audit = teeAuditLog(await SqliteAuditLog.open({ path }), await JsonlAuditSink.open({ path: jsonl }));
 */
export function teeAuditLog(primary: AuditLog, ...sinks: AuditSink[]): AuditLog {
  return {
    async emit(input: AuditEventInput): Promise<AuditEvent> {
      const event = await primary.emit(input);
      const results = await Promise.allSettled(sinks.map((s) => s.write(event)));
      const failed = results.filter((r) => r.status === 'rejected');
      if (failed.length > 0) {
        throw new WardenError(
          'WARDEN_ERR_INTERNAL',
          `audit event ${event.id} was stored but ${failed.length} audit sink(s) failed to write it`,
          { eventId: event.id },
        );
      }
      return event;
    },
    search(query?: AuditQuery): Promise<AuditEvent[]> {
      return primary.search(query);
    },
    async close(): Promise<void> {
      const results = await Promise.allSettled([primary.close(), ...sinks.map((s) => s.close())]);
      const failed = results.find((r) => r.status === 'rejected');
      if (failed) throw failed.reason;
    },
  };
}
