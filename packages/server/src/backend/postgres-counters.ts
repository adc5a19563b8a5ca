/**
 * Rate counters in PostgreSQL (see `counters.ts`), shared by every replica on the database:
 * an UNLOGGED table (no WAL: counters are cheap to lose in a crash, and costly to make
 * durable) in the backend's schema, times from the database's `now()`. Each call is one
 * statement; expired rows are swept once a minute. Tested by test/ha/rate-limits.e2e.test.ts.
 */
import { WardenError } from '@warden/api';
import type { Logger } from '../log';
import { checkWindow, type RateCount, type RateCounters } from './counters';
import { POSTGRES_DEFAULT_SCHEMA } from './postgres';
import { type PostgresConnectionOptions, PostgresPool, resolveConnection } from './postgres-connection';
import { migrateSchema } from './postgres-schema';

export interface PostgresRateCountersOptions extends PostgresConnectionOptions {
  /** The schema holding the table (default `warden`, as the backend's). */
  schema?: string;
  logger?: Logger;
}

const SWEEP_MS = 60_000;

function countersV1(q: string): string {
  return `
CREATE UNLOGGED TABLE ${q}.rate_counters (
  key text PRIMARY KEY,
  count integer NOT NULL,
  expires timestamptz NOT NULL
);
CREATE INDEX rate_counters_expires ON ${q}.rate_counters (expires);
`;
}

interface Row {
  key: string;
  count: number;
  reset_in_ms: string | number;
}

const RESET = `greatest(1, ceil(extract(epoch FROM (expires - now())) * 1000))::bigint AS reset_in_ms`;

export class PostgresRateCounters implements RateCounters {
  readonly #pool: PostgresPool;
  readonly #q: string;
  readonly #sweep: NodeJS.Timeout;
  readonly #logger: Logger | undefined;

  private constructor(pool: PostgresPool, q: string, logger: Logger | undefined) {
    this.#pool = pool;
    this.#q = q;
    this.#logger = logger;
    this.#sweep = setInterval(() => {
      this.#pool
        .query(
          'rate counters sweep',
          { idempotent: true },
          {
            text: `DELETE FROM ${this.#q}.rate_counters WHERE expires <= now()`,
          },
        )
        .catch((err) => this.#logger?.warn({ err }, 'could not sweep expired rate counters'));
    }, SWEEP_MS);
    this.#sweep.unref();
  }

  /** Connects and creates the table if missing (under the migration's advisory lock). */
  static async open(opts: PostgresRateCountersOptions): Promise<PostgresRateCounters> {
    if (opts === null || typeof opts !== 'object')
      throw new WardenError('WARDEN_ERR_BAD_PARAMETER', 'PostgreSQL rate counter options are required');
    const schema = opts.schema ?? POSTGRES_DEFAULT_SCHEMA;
    const pool = await PostgresPool.create(resolveConnection({ ...opts, poolSize: opts.poolSize ?? 4 }), {
      ...(opts.logger ? { logger: opts.logger } : {}),
      what: 'PostgreSQL rate counters',
    });
    try {
      await migrateSchema(pool, {
        schema,
        metaTable: 'rate_counters_meta',
        versionName: 'schema_version',
        what: 'rate counters',
        steps: [countersV1(`"${schema}"`)],
      });
    } catch (err) {
      await pool.close();
      throw err;
    }
    return new PostgresRateCounters(pool, `"${schema}"`, opts.logger);
  }

  async add(keys: readonly string[], windowMs: number): Promise<RateCount[]> {
    checkWindow('windowMs', windowMs);
    const unique = [...new Set(keys)];
    if (unique.length === 0) return [];
    const rows = await this.#pool.query<Row>(
      'rate counters add',
      { idempotent: false },
      {
        name: `warden-${this.#q}-rate-add`,
        text: `INSERT INTO ${this.#q}.rate_counters AS c (key, count, expires)
               SELECT k, 1, now() + $2::bigint * interval '1 millisecond' FROM unnest($1::text[]) AS k
             ON CONFLICT (key) DO UPDATE SET
               count = CASE WHEN c.expires <= now() THEN 1 ELSE c.count + 1 END,
               expires = CASE WHEN c.expires <= now() THEN EXCLUDED.expires ELSE c.expires END
             RETURNING key, count, ${RESET}`,
        values: [unique, windowMs],
      },
    );
    const by = new Map(rows.map((r) => [r.key, { count: r.count, resetInMs: Number(r.reset_in_ms) }]));
    return keys.map((k) => by.get(k)!);
  }

  async get(keys: readonly string[]): Promise<(RateCount | undefined)[]> {
    if (keys.length === 0) return [];
    const rows = await this.#pool.query<Row>(
      'rate counters get',
      { idempotent: true },
      {
        name: `warden-${this.#q}-rate-get`,
        text: `SELECT key, count, ${RESET} FROM ${this.#q}.rate_counters WHERE key = ANY($1::text[]) AND expires > now()`,
        values: [[...new Set(keys)]],
      },
    );
    const by = new Map(rows.map((r) => [r.key, { count: r.count, resetInMs: Number(r.reset_in_ms) }]));
    return keys.map((k) => by.get(k));
  }

  async set(key: string, count: number, ttlMs: number): Promise<void> {
    checkWindow('ttlMs', ttlMs);
    await this.#pool.query(
      'rate counters set',
      { idempotent: true },
      {
        name: `warden-${this.#q}-rate-set`,
        text: `INSERT INTO ${this.#q}.rate_counters (key, count, expires)
               VALUES ($1, $2, now() + $3::bigint * interval '1 millisecond')
             ON CONFLICT (key) DO UPDATE SET count = EXCLUDED.count, expires = EXCLUDED.expires`,
        values: [key, count, ttlMs],
      },
    );
  }

  async delete(keys: readonly string[]): Promise<void> {
    if (keys.length === 0) return;
    await this.#pool.query(
      'rate counters delete',
      { idempotent: true },
      {
        name: `warden-${this.#q}-rate-delete`,
        text: `DELETE FROM ${this.#q}.rate_counters WHERE key = ANY($1::text[])`,
        values: [[...new Set(keys)]],
      },
    );
  }

  async close(): Promise<void> {
    clearInterval(this.#sweep);
    await this.#pool.close();
  }
}
