/**
 * The node's heartbeat: upserts its `node` resource with `metadata.expires` = now + TTL every
 * interval, so the backend drops a node that stops (crash, shutdown, lost network) within
 * one TTL. A failed beat is logged and retried at the next tick; the TTL is three intervals,
 * so one lost beat does not make the node vanish.
 * Who may import: this folder. Tested by `heartbeat.test.ts` (FakeClock, MemoryBackend).
 */
import type { NodeResource } from '@warden/api';
import type { Clock } from '../../clock';
import type { Logger } from '../../log';
import type { Services } from '../../services';

export const DEFAULT_HEARTBEAT_TTL_MS = 60_000;
export const DEFAULT_HEARTBEAT_INTERVAL_MS = 20_000;

export interface HeartbeatOptions {
  nodes: Services['nodes'];
  clock: Clock;
  logger: Logger;
  /** The resource to publish, without `metadata.expires` (called at every beat). */
  resource: () => NodeResource;
  ttlMs?: number;
  intervalMs?: number;
  /** Called after every beat (the service renews its host certificate there). */
  onBeat?: () => void;
}

/**
 * @example
 *   const hb = new NodeHeartbeat({ nodes: services.nodes, clock, logger, resource: () => node });
 *   await hb.start(); // first beat done: the node is listed
 *   hb.close();       // the resource expires one TTL later
 */
export class NodeHeartbeat {
  readonly #o: HeartbeatOptions;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(o: HeartbeatOptions) {
    this.#o = o;
  }

  get ttlMs(): number {
    return this.#o.ttlMs ?? DEFAULT_HEARTBEAT_TTL_MS;
  }

  /** Publishes the resource once now (errors propagate: a node that can't register fails to start). */
  async beat(): Promise<NodeResource> {
    const r = this.#o.resource();
    const expires = new Date(this.#o.clock.now() + this.ttlMs).toISOString();
    const stored = await this.#o.nodes.upsert({ ...r, metadata: { ...r.metadata, expires } });
    this.#o.onBeat?.();
    return stored;
  }

  /** First beat, then one every interval until `close()`. */
  async start(): Promise<NodeResource> {
    const first = await this.beat();
    const interval = this.#o.intervalMs ?? DEFAULT_HEARTBEAT_INTERVAL_MS;
    this.#timer = setInterval(() => {
      if (this.#closed) return;
      this.beat().catch((e) => this.#o.logger.warn({ err: e }, 'node heartbeat failed; retrying'));
    }, interval);
    this.#timer.unref();
    return first;
  }

  /** Stops beating; the resource expires by itself one TTL after the last beat. */
  close(): void {
    this.#closed = true;
    if (this.#timer) clearInterval(this.#timer);
  }
}
