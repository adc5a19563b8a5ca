/**
 * The apps an app_service serves from its config, published as `app` resources with
 * `metadata.expires` = now + TTL at every beat, so they drop out within one TTL of the
 * service stopping (as for databases). A failed beat is logged and retried.
 * Internal to `srv/app`; the public surface is `index.ts`. Tested by `heartbeat.test.ts`.
 */
import { type AppResource, validateResourceOfKind } from '@warden/api';
import type { Clock } from '../../clock';
import type { AppConfig } from '../../config';
import type { Logger } from '../../log';

export const APP_HEARTBEAT_TTL_MS = 90_000;
export const APP_HEARTBEAT_INTERVAL_MS = 30_000;

/** An `app` resource (validated) from an `app_service.apps` entry. */
export function appResourceFromConfig(a: AppConfig): AppResource {
  return validateResourceOfKind('app', {
    kind: 'app',
    version: 'v3',
    metadata: {
      name: a.name,
      ...(a.description ? { description: a.description } : {}),
      ...(Object.keys(a.labels).length ? { labels: { ...a.labels } } : {}),
    },
    spec: {
      uri: a.uri,
      ...(a.publicAddr ? { public_addr: a.publicAddr } : {}),
      ...(a.rewriteHeaders.length ? { rewrite: { headers: a.rewriteHeaders.map((h) => ({ ...h })) } } : {}),
      ...(a.insecureSkipVerify ? { insecure_skip_verify: true } : {}),
      ...(a.auditRequests ? { audit_requests: true } : {}),
    },
  });
}

export interface AppHeartbeatOptions {
  /** Where `app` resources are stored (`services.apps`). */
  store: { upsert(app: AppResource): Promise<AppResource> };
  clock: Clock;
  logger: Logger;
  apps: readonly AppResource[];
  ttlMs?: number;
  intervalMs?: number;
}

export class AppHeartbeat {
  readonly #o: AppHeartbeatOptions;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(o: AppHeartbeatOptions) {
    this.#o = o;
  }

  /** Publishes every app once (errors propagate). */
  async beat(): Promise<void> {
    const expires = new Date(this.#o.clock.now() + (this.#o.ttlMs ?? APP_HEARTBEAT_TTL_MS)).toISOString();
    for (const app of this.#o.apps) {
      await this.#o.store.upsert({ ...app, metadata: { ...app.metadata, expires } });
    }
  }

  /** First beat now, then one per interval until `close()`. */
  async start(): Promise<void> {
    await this.beat();
    this.#timer = setInterval(() => {
      if (this.#closed) return;
      this.beat().catch((e) => this.#o.logger.warn({ err: e }, 'app heartbeat failed; retrying'));
    }, this.#o.intervalMs ?? APP_HEARTBEAT_INTERVAL_MS);
    this.#timer.unref();
  }

  close(): void {
    this.#closed = true;
    if (this.#timer) clearInterval(this.#timer);
  }
}
