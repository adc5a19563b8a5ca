/**
 * Resources an agent serves from its config (apps, databases), published to their store with
 * `metadata.expires` = now + TTL at every beat, so they drop out within one TTL of the
 * service stopping. A failed beat is logged and retried; the TTL spans three beats.
 * Composed in `bin/` (the agents themselves never write to stores). Tested by `heartbeat.test.ts`.
 */
import type { Clock } from '../clock';
import type { Logger } from '../log';

export const HEARTBEAT_TTL_MS = 90_000;
export const HEARTBEAT_INTERVAL_MS = 30_000;

export interface ResourceHeartbeatOptions<R extends { metadata: { expires?: string } }> {
  /** Where the resources are stored (`services.apps`, `services.dbs`). */
  store: { upsert(resource: R): Promise<R> };
  resources: readonly R[];
  /** What they are, for the log line of a failed beat (`app`, `database`). */
  what: string;
  clock: Clock;
  logger: Logger;
  ttlMs?: number;
  intervalMs?: number;
}

export class ResourceHeartbeat<R extends { metadata: { expires?: string } }> {
  readonly #o: ResourceHeartbeatOptions<R>;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(o: ResourceHeartbeatOptions<R>) {
    this.#o = o;
  }

  /** Publishes every resource once (errors propagate). */
  async beat(): Promise<void> {
    const expires = new Date(this.#o.clock.now() + (this.#o.ttlMs ?? HEARTBEAT_TTL_MS)).toISOString();
    for (const r of this.#o.resources) {
      await this.#o.store.upsert({ ...r, metadata: { ...r.metadata, expires } });
    }
  }

  /** First beat now, then one per interval until `close()`. */
  async start(): Promise<void> {
    await this.beat();
    this.#timer = setInterval(() => {
      if (this.#closed) return;
      this.beat().catch((e) => this.#o.logger.warn({ err: e }, `${this.#o.what} heartbeat failed; retrying`));
    }, this.#o.intervalMs ?? HEARTBEAT_INTERVAL_MS);
    this.#timer.unref();
  }

  close(): void {
    this.#closed = true;
    if (this.#timer) clearInterval(this.#timer);
  }
}
