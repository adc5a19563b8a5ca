/**
 * Ends live database sessions when a lock comes into force on their user, a role or their
 * device (or when `locking_mode: strict` and the lock view is stale): on every change of
 * the lock view, and on a short tick (locks that start matching by time, a cluster switching
 * to strict), so a session ends within a second. Each session's engine decides how to say
 * so in its protocol (`DbSession.onTerminate`).
 * Internal to `srv/db`; the public surface is `common/index.ts`. Tested by `lock-watch.test.ts`.
 */
import type { Logger } from '../../../log';
import type { DbAccess } from './access';
import type { DbSession } from './session';

export const LOCK_CHECK_INTERVAL_MS = 500;

export interface LockWatchOptions {
  access: DbAccess;
  logger: Logger;
  /** Subscribes to lock view changes; returns the unsubscribe function. */
  onLocksChange(listener: () => void): () => void;
  intervalMs?: number;
}

export class LockWatch {
  readonly #o: LockWatchOptions;
  readonly #sessions = new Set<DbSession>();
  readonly #unsubscribe: () => void;
  readonly #timer: NodeJS.Timeout;
  #checking: Promise<void> | undefined;
  #again = false;

  constructor(o: LockWatchOptions) {
    this.#o = o;
    this.#unsubscribe = o.onLocksChange(() => void this.check());
    this.#timer = setInterval(() => void this.check(), o.intervalMs ?? LOCK_CHECK_INTERVAL_MS);
    this.#timer.unref();
  }

  add(session: DbSession): void {
    this.#sessions.add(session);
  }

  delete(session: DbSession): void {
    this.#sessions.delete(session);
  }

  get size(): number {
    return this.#sessions.size;
  }

  /** Re-checks every live session now (coalesced while a check runs). */
  check(): Promise<void> {
    if (this.#checking) {
      this.#again = true;
      return this.#checking;
    }
    this.#checking = (async () => {
      do {
        this.#again = false;
        if (this.#sessions.size === 0) break;
        let lockingMode: string | undefined;
        try {
          lockingMode = (await this.#o.access.clusterSettings()).lockingMode;
        } catch (e) {
          this.#o.logger.warn(
            { err: e },
            'cannot read the cluster settings; checking locks in best_effort mode',
          );
        }
        for (const s of this.#sessions) {
          const reason = this.#o.access.lockReason(s.identity, lockingMode);
          if (reason) {
            this.#o.logger.info(
              { session: s.id, user: s.identity.user },
              'ending a database session: lock in force',
            );
            this.#sessions.delete(s);
            s.terminate(reason);
          }
        }
      } while (this.#again);
    })().finally(() => {
      this.#checking = undefined;
    });
    return this.#checking;
  }

  close(): void {
    clearInterval(this.#timer);
    this.#unsubscribe();
    this.#sessions.clear();
  }
}
