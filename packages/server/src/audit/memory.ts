/**
 * The in-memory audit log, for unit tests. Same behaviour as the SQLite one (both run the
 * suite in `test/support/audit-conformance.ts`), nothing persisted.
 *
 * @example
 *   const audit = new MemoryAuditLog({ clock: new FakeClock() });
 *   await audit.emit({ type: 'user.login', user: 'alice', method: 'local' });
 */
import { type AuditEvent, type AuditEventInput, WardenError } from '@warden/api';
import { type Clock, systemClock } from '../clock';
import { deviceIdsOf, normalizeQuery, prepareAuditEvent } from './prepare';
import type { AuditLog, AuditQuery } from './types';

interface Stored {
  seq: number;
  timeMs: number;
  event: AuditEvent;
}

export class MemoryAuditLog implements AuditLog {
  readonly #clock: Clock;
  readonly #events: Stored[] = [];
  #closed = false;

  constructor(opts: { clock?: Clock } = {}) {
    this.#clock = opts.clock ?? systemClock;
  }

  async emit(input: AuditEventInput): Promise<AuditEvent> {
    this.#assertOpen();
    const { event, timeMs } = prepareAuditEvent(input, this.#clock.now());
    this.#events.push({ seq: this.#events.length, timeMs, event: structuredClone(event) });
    return event;
  }

  async search(query?: AuditQuery): Promise<AuditEvent[]> {
    this.#assertOpen();
    const q = normalizeQuery(query);
    const hits = this.#events.filter(({ timeMs, event }) => {
      if (q.fromMs !== undefined && timeMs < q.fromMs) return false;
      if (q.toMs !== undefined && timeMs >= q.toMs) return false;
      if (q.types && !q.types.includes(event.type as never)) return false;
      if (q.user !== undefined && event.user !== q.user) return false;
      if (q.device !== undefined) {
        const ids = deviceIdsOf(event);
        if (ids.device !== q.device && ids.subjectDevice !== q.device) return false;
      }
      return true;
    });
    const dir = q.order === 'asc' ? 1 : -1;
    hits.sort((a, b) => dir * (a.timeMs - b.timeMs || a.seq - b.seq));
    return hits.slice(0, q.limit).map((s) => structuredClone(s.event));
  }

  async close(): Promise<void> {
    this.#closed = true;
  }

  #assertOpen(): void {
    if (this.#closed) throw new WardenError('WARDEN_ERR_CLOSED', 'the audit log is closed');
  }
}
