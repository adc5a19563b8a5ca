/**
 * The proxy's view of the `db` resources, for finding the database of each connection without
 * reading the backend: a watch-fed `ResourceCache` of `/dbs/`. Before, every database
 * connection (tunnel or direct) read and schema-checked its `db` resource in the backend
 * (`services.dbs.find`): a read per connection, and a network round trip with the PostgreSQL
 * backend. A heartbeat now costs one decode when it arrives, and a lookup one map read.
 *
 * Freshness: a database found in the view is used as the view has it; a delete, like a lock,
 * arrives through the watch (for the SQLite backend, before the write that removed it is
 * acknowledged: the watchers are woken at its commit). A name the view does not know, and any
 * lookup while the view cannot be trusted (watch broken, an item that does not decode, the
 * backend out of contact with its store), is answered from the backend, so a database added a
 * moment ago is found and an outage of the watch costs speed, not answers. Expired databases
 * (heartbeat TTL passed, delete event not yet delivered) are hidden at once, as the backend's
 * reads hide them. Internal to `proxy/`; tested by `db-view.test.ts`.
 *
 * @example
 *   const view = new DbView({ cache: services.dbCache({ logger }), clock, dbs: services.dbs });
 *   await view.start();
 *   const db = await view.find('orders'); // or undefined
 */
import type { DbResource } from '@warden/api';
import type { Clock } from '../clock';
import type { CachedDb, ResourceCache, Services } from '../services';

export interface DbViewOptions {
  /** The watch-fed db cache (`services.dbCache()`, not started yet); the view owns it. */
  cache: ResourceCache<CachedDb>;
  clock: Clock;
  /** The db store, asked for names the view does not know and while the view is stale. */
  dbs: Pick<Services['dbs'], 'find'>;
}

export class DbView {
  readonly #cache: ResourceCache<CachedDb>;
  readonly #clock: Clock;
  readonly #dbs: DbViewOptions['dbs'];

  constructor(o: DbViewOptions) {
    this.#cache = o.cache;
    this.#clock = o.clock;
    this.#dbs = o.dbs;
  }

  /** Lists and starts watching; resolves after the first list. */
  start(): Promise<void> {
    return this.#cache.start();
  }

  close(): void {
    this.#cache.close();
  }

  /** The database named `name`, or undefined (after asking the backend). */
  async find(name: string): Promise<DbResource | undefined> {
    const now = this.#clock.now();
    if (this.#cache.healthy && this.#cache.staleForMs(now) === 0) {
      const e = this.#cache.get(name);
      if (e !== undefined && (e.expires === undefined || e.expires > now)) return e.db;
    }
    return this.#dbs.find(name);
  }
}
