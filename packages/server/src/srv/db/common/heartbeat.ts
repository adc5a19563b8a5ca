/**
 * The databases a db_service serves from its config, published as `db` resources with
 * `metadata.expires` = now + TTL at every beat, so they drop out within one TTL of the
 * service stopping. A failed beat is logged and retried; the TTL spans three beats.
 * Internal to `srv/db`; the public surface is `common/index.ts`. Tested by `heartbeat.test.ts`.
 */
import { type DbProtocol, type DbResource, validateResourceOfKind } from '@warden/api';
import type { Clock } from '../../../clock';
import type { Logger } from '../../../log';

export const DB_HEARTBEAT_TTL_MS = 90_000;
export const DB_HEARTBEAT_INTERVAL_MS = 30_000;

/** A `db` resource (validated) from the plain fields of a `db_service.databases` entry. */
export function dbResourceFromConfig(d: {
  name: string;
  protocol: DbProtocol;
  /** `host:port`. */
  uri: string;
  labels?: Readonly<Record<string, string>>;
  /** CA certificates (PEM) of the database's server certificate. */
  caCertPems?: readonly string[];
}): DbResource {
  return validateResourceOfKind('db', {
    kind: 'db',
    version: 'v3',
    metadata: {
      name: d.name,
      ...(d.labels && Object.keys(d.labels).length ? { labels: { ...d.labels } } : {}),
    },
    spec: {
      protocol: d.protocol,
      uri: d.uri,
      ...(d.caCertPems?.length ? { ca_cert: d.caCertPems.join('') } : {}),
    },
  });
}

export interface DbHeartbeatOptions {
  /** Where `db` resources are stored (`services.dbs`). */
  dbs: { upsert(db: DbResource): Promise<DbResource> };
  clock: Clock;
  logger: Logger;
  databases: readonly DbResource[];
  ttlMs?: number;
  intervalMs?: number;
}

export class DbHeartbeat {
  readonly #o: DbHeartbeatOptions;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(o: DbHeartbeatOptions) {
    this.#o = o;
  }

  /** Publishes every database once (errors propagate). */
  async beat(): Promise<void> {
    const expires = new Date(this.#o.clock.now() + (this.#o.ttlMs ?? DB_HEARTBEAT_TTL_MS)).toISOString();
    for (const db of this.#o.databases) {
      await this.#o.dbs.upsert({ ...db, metadata: { ...db.metadata, expires } });
    }
  }

  /** First beat now, then one per interval until `close()`. */
  async start(): Promise<void> {
    await this.beat();
    this.#timer = setInterval(() => {
      if (this.#closed) return;
      this.beat().catch((e) => this.#o.logger.warn({ err: e }, 'database heartbeat failed; retrying'));
    }, this.#o.intervalMs ?? DB_HEARTBEAT_INTERVAL_MS);
    this.#timer.unref();
  }

  close(): void {
    this.#closed = true;
    if (this.#timer) clearInterval(this.#timer);
  }
}
