/**
 * Web sessions under the process's one SessionMonitor (access/session-monitor.ts): every web
 * session this proxy sees live (sign-in, a request, device trust proven) is registered with its
 * identity — user, roles, and its trusted device once it has one — so a lock on any of them
 * ends the session at once, not at the browser's next request:
 *
 *   lock written ─▶ lock view ─▶ monitor.check() ─▶ end(message)
 *       ─▶ WebSessions.markLocked (the record says why) ─▶ web.session.end (reason "locked: …")
 *       the browser's next request: 403 with the lock's message; its app sessions end with it
 *       (they are registered with the same monitor under the same identity)
 *
 * Sessions live in the backend, shared by replicas: each replica registers the sessions it
 * sees, and whichever monitor fires first marks the record (compare-and-swap; one audit
 * event). A session whose device becomes trusted is registered again with the device (a
 * device lock then ends it). Internal to `web/`.
 */
import type { Registration, SessionMonitor } from '../access';
import { type AuditLog, writeAuditEvent } from '../audit';
import type { Logger } from '../log';
import {
  type LoadedWebSession,
  sessionIdentity,
  type WebSessionObserver,
  type WebSessions,
  webSessionEndEvent,
} from './sessions';

export interface WebSessionWatchOptions {
  monitor: Pick<SessionMonitor, 'register'>;
  sessions: WebSessions;
  audit: AuditLog;
  logger: Logger;
}

export class WebSessionWatch implements WebSessionObserver {
  readonly #o: WebSessionWatchOptions;
  /** Registrations by session ID, with the device they were made for. */
  readonly #live = new Map<string, { device: string | undefined; reg: Registration }>();

  constructor(o: WebSessionWatchOptions) {
    this.#o = o;
    o.sessions.observe(this);
  }

  /** Sessions registered now (for tests and metrics). */
  get size(): number {
    return this.#live.size;
  }

  live(s: LoadedWebSession): void {
    if (s.data.locked !== undefined) return;
    const device = s.data.device?.id;
    const cur = this.#live.get(s.id);
    if (cur && cur.device === device) return;
    cur?.reg.unregister();
    const identity = sessionIdentity(s, s.data.addr);
    const entry = {
      device,
      reg: this.#o.monitor.register({
        identity,
        protocol: 'web',
        end: (message, why) => {
          if (this.#live.get(s.id) === entry) this.#live.delete(s.id);
          // Expiry: the session is past its end; its next request finds it expired.
          if (why.kind === 'lock')
            this.#lock(s.id, message).catch((e) =>
              this.#o.logger.error({ err: e }, 'could not end a locked web session'),
            );
        },
      }),
    };
    this.#live.set(s.id, entry);
  }

  ended(id: string): void {
    this.#live.get(id)?.reg.unregister();
    this.#live.delete(id);
  }

  async #lock(id: string, message: string): Promise<void> {
    const s = await this.#o.sessions.markLocked(id, message);
    if (!s) return;
    // The session is over either way: a lost event is logged, not thrown.
    await writeAuditEvent(
      this.#o.audit,
      this.#o.logger,
      webSessionEndEvent(s, s.data.addr, `locked: ${message}`),
      {},
      {
        onLost: () => undefined,
      },
    );
  }

  /** Stops watching every session (shutdown). */
  close(): void {
    for (const { reg } of this.#live.values()) reg.unregister();
    this.#live.clear();
  }
}
