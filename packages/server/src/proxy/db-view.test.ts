import assert from 'node:assert/strict';
import { afterEach, beforeEach, test } from 'node:test';
import type { DbResource } from '@warden/api';
import { type Item, MemoryBackend } from '../backend';
import { FakeClock } from '../clock';
import { createServices, type Services } from '../services';
import { DbView } from './db-view';

const db = (name: string, expires?: number): DbResource => ({
  kind: 'db',
  version: 'v3',
  metadata: { name, ...(expires ? { expires: new Date(expires).toISOString() } : {}) },
  spec: { protocol: 'mysql', uri: '127.0.0.1:3306' },
});

/** A memory backend that counts reads of single /dbs/ items. */
class CountingBackend extends MemoryBackend {
  dbGets = 0;
  override async get(key: string): Promise<Item | undefined> {
    if (key.startsWith('/dbs/')) this.dbGets++;
    return super.get(key);
  }
}

let clock: FakeClock;
let backend: CountingBackend;
let services: Services;
let view: DbView;

beforeEach(() => {
  clock = new FakeClock(Date.UTC(2026, 0, 1));
  backend = new CountingBackend({ clock, reapIntervalMs: 0 });
  services = createServices({ backend, clock });
  view = new DbView({ cache: services.dbCache(), clock, dbs: services.dbs });
});
afterEach(async () => {
  view.close();
  await backend.close();
});

/** One turn of the event loop: what a client's next connection is at least behind a write. */
const nextTurn = () => new Promise((r) => setImmediate(r));

test('db view: finds databases without a backend read per connection', async () => {
  await services.dbs.create(db('orders'));
  await view.start();
  const reads = backend.dbGets;
  for (let i = 0; i < 50; i++) assert.equal((await view.find('orders'))?.spec.protocol, 'mysql');
  assert.equal(backend.dbGets, reads, 'no backend read for a database the view holds');
});

test('db view: a removed database is refused at once; an updated one is used as it is now', async () => {
  await services.dbs.create(db('orders'));
  await view.start();
  assert.ok(await view.find('orders'));
  await services.dbs.upsert({ ...db('orders'), spec: { protocol: 'mysql', uri: '127.0.0.1:3307' } });
  await nextTurn();
  assert.equal((await view.find('orders'))?.spec.uri, '127.0.0.1:3307');
  await services.dbs.delete('orders');
  await nextTurn();
  assert.equal(await view.find('orders'), undefined);
});

test('db view: a database added a moment ago is found (in the backend until the watch delivers it)', async () => {
  await view.start();
  await services.dbs.create(db('fresh'));
  assert.equal((await view.find('fresh'))?.metadata.name, 'fresh');
  assert.equal(await view.find('never-was'), undefined);
});

test('db view: a database whose heartbeat TTL passed is hidden at once, before its delete arrives', async () => {
  await services.dbs.create(db('beating', clock.now() + 10_000));
  await view.start();
  assert.ok(await view.find('beating'));
  clock.advance(10_000);
  assert.equal(await view.find('beating'), undefined);
});

test('db view: while the watch is broken every lookup reads the backend (stale answers never)', async () => {
  await services.dbs.create(db('orders'));
  await view.start();
  const reads = backend.dbGets;
  view.close(); // the watch is gone: the view is not healthy any more
  await services.dbs.delete('orders');
  assert.equal(await view.find('orders'), undefined);
  assert.equal(backend.dbGets, reads + 1);
});
