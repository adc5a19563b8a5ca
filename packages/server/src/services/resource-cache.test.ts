import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, test } from 'node:test';
import { type LockResource, WardenError } from '@warden/api';
import { type Backend, type BackendEvent, MemoryBackend, type RangeResult, type Watcher } from '../backend';
import { FakeClock } from '../clock';
import type { CacheChange, ResourceCache } from './resource-cache';
import { createServices, type Services } from './services';

const lockId = (n: number) => `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`;
const lock = (n: number, target: LockResource['spec']['target'], expires?: string): LockResource => ({
  kind: 'lock',
  version: 'v2',
  metadata: { name: lockId(n) },
  spec: { target, ...(expires ? { expires } : {}) },
});

/** A backend whose range and watch calls can be held or made to fail, delegating to memory. */
class ControlledBackend implements Backend {
  readonly inner: MemoryBackend;
  rangeCalls = 0;
  watchCalls = 0;
  watchesClosed = 0;
  /** Called before each range(); may return a promise to hold it. */
  beforeRange: ((call: number) => Promise<void> | undefined) | undefined;
  /** Called before each watch iteration starts; may return a promise to hold it, or throw. */
  beforeWatch: ((call: number) => Promise<void> | undefined) | undefined;

  constructor(inner: MemoryBackend) {
    this.inner = inner;
  }
  get = (k: string) => this.inner.get(k);
  create: Backend['create'] = (...args) => this.inner.create(...args);
  put: Backend['put'] = (...args) => this.inner.put(...args);
  compareAndSwap: Backend['compareAndSwap'] = (...args) => this.inner.compareAndSwap(...args);
  delete: Backend['delete'] = (...args) => this.inner.delete(...args);
  txn: Backend['txn'] = (ops) => this.inner.txn(ops);
  deleteRange = (p: string) => this.inner.deleteRange(p);
  currentRev = () => this.inner.currentRev();
  compact = (r: number) => this.inner.compact(r);
  close = () => this.inner.close();
  staleForMs: ((now: number) => number) | undefined;
  async range(prefix: string): Promise<RangeResult> {
    const call = ++this.rangeCalls;
    await this.beforeRange?.(call);
    return this.inner.range(prefix);
  }
  watch(prefix: string, opts: { sinceRev: number }): Watcher {
    const call = ++this.watchCalls;
    const hold = this.beforeWatch;
    const inner = this.inner;
    let real: Watcher | undefined;
    let closed = false;
    const onClose = () => this.watchesClosed++;
    return {
      close() {
        if (!closed) onClose();
        closed = true;
        real?.close();
      },
      async *[Symbol.asyncIterator](): AsyncGenerator<BackendEvent> {
        await hold?.(call);
        if (closed) return;
        real = inner.watch(prefix, opts);
        yield* real;
      },
    };
  }
}

function gate(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((r) => {
    open = r;
  });
  return { promise, open };
}

let clock: FakeClock;
let memory: MemoryBackend;
let backend: ControlledBackend;
let services: Services;
let cache: ResourceCache<LockResource> | undefined;

beforeEach(() => {
  clock = new FakeClock(Date.UTC(2026, 0, 1));
  memory = new MemoryBackend({ clock, reapIntervalMs: 0 });
  backend = new ControlledBackend(memory);
  services = createServices({ backend, clock });
});
afterEach(async () => {
  cache?.close();
  cache = undefined;
  await memory.close();
});

const names = (c: ResourceCache<LockResource>) => c.values().map((l) => l.metadata.name);
const revOf = (l: LockResource) => Number(l.metadata.revision);

describe('ResourceCache', () => {
  test('lists, then follows puts and deletes', async () => {
    await services.locks.create(lock(1, { user: 'alice' }));
    cache = services.lockCache();
    const changes: CacheChange<LockResource>[] = [];
    cache.onChange((c) => changes.push(c));
    assert.equal(cache.healthy, false, 'not healthy before start');
    await cache.start();
    assert.equal(cache.healthy, true);
    assert.equal(cache.lastSyncAt, clock.now());
    assert.deepEqual(names(cache), [lockId(1)]);
    assert.equal(cache.get(lockId(1))?.spec.target.user, 'alice');

    const two = await services.locks.create(lock(2, { device: 'd-1' }));
    await cache.waitForRev(revOf(two));
    assert.deepEqual(names(cache), [lockId(1), lockId(2)]);
    assert.equal(cache.get(lockId(2))?.metadata.revision, two.metadata.revision, 'values carry revisions');

    await services.locks.delete(lockId(1));
    await cache.waitForRev(await memory.currentRev());
    assert.deepEqual(names(cache), [lockId(2)]);
    // values() is sorted once per change and handed out as a copy.
    cache.values().pop();
    assert.deepEqual(names(cache), [lockId(2)], 'a caller changing its array changes nothing');
    assert.deepEqual(
      changes.map((c) => c.type),
      ['reset', 'put', 'delete'],
    );
  });

  test('expiry is a delete like any other', async () => {
    cache = services.lockCache();
    await cache.start();
    await services.locks.create(lock(1, { user: 'bob' }, new Date(clock.now() + 1000).toISOString()));
    await cache.waitForRev(await memory.currentRev());
    assert.equal(names(cache).length, 1);
    clock.advance(1000);
    assert.equal(await memory.reapExpired(), 1);
    await cache.waitForRev(await memory.currentRev());
    assert.deepEqual(names(cache), []);
  });

  test('re-lists when the watch was compacted, and misses nothing', { timeout: 10_000 }, async () => {
    const held = gate();
    backend.beforeWatch = (call) => (call === 1 ? held.promise : undefined);
    const logged: string[] = [];
    const logger = {
      debug() {},
      info: (_o: object, m?: string) => logged.push(m ?? ''),
      warn() {},
      error() {},
    };
    // A long retry delay: only the immediate re-list for compaction lets this test finish.
    cache = services.lockCache({ logger, retryDelayMs: 3_600_000 });
    await cache.start();
    assert.equal(backend.rangeCalls, 1);
    // While the first watch has not read anything, write and compact past its start revision.
    await services.locks.create(lock(1, { role: 'dev' }));
    await memory.compact(await memory.currentRev());
    held.open();
    await cache.waitForRev(await memory.currentRev());
    assert.equal(backend.rangeCalls, 2, 're-listed once');
    assert.deepEqual(logged, ['watch compacted; re-listing']);
    assert.deepEqual(names(cache), [lockId(1)]);
    assert.equal(cache.healthy, true);
    // And it keeps following after the re-list.
    const two = await services.locks.create(lock(2, { login: 'root' }));
    await cache.waitForRev(revOf(two));
    assert.deepEqual(names(cache), [lockId(1), lockId(2)]);
  });

  test('other failures: unhealthy and stale until a retry succeeds', async () => {
    const relist = gate();
    const relistStarted = gate();
    backend.beforeWatch = (call) => {
      if (call === 1) throw new WardenError('WARDEN_ERR_CONNECTION', 'database went away');
      return undefined;
    };
    backend.beforeRange = (call) => {
      if (call !== 2) return undefined;
      relistStarted.open();
      return relist.promise;
    };
    cache = services.lockCache({ retryDelayMs: 1 });
    await cache.start();
    await relistStarted.promise;
    assert.equal(cache.healthy, false);
    const brokeAt = cache.lastSyncAt;
    assert.ok(brokeAt !== undefined);
    clock.advance(5000);
    assert.equal(cache.staleForMs(clock.now()), 5000);
    await services.locks.create(lock(3, { node: 'web-1' }));
    relist.open();
    await cache.waitForRev(await memory.currentRev());
    assert.equal(cache.healthy, true);
    assert.equal(cache.staleForMs(clock.now()), 0);
    assert.deepEqual(names(cache), [lockId(3)]);
  });

  test('a backend cut off from its shared store makes the view stale though the watch runs (regression: strict locking saw PostgreSQL outages as fresh)', async () => {
    let cutOffSince: number | undefined;
    backend.staleForMs = (now) => (cutOffSince === undefined ? 0 : now - cutOffSince);
    cache = services.lockCache();
    await cache.start();
    assert.equal(cache.staleForMs(clock.now()), 0);
    cutOffSince = clock.now();
    clock.advance(7000);
    assert.equal(cache.healthy, true, 'the watch itself is still running');
    assert.equal(cache.staleForMs(clock.now()), 7000);
    cutOffSince = undefined;
    assert.equal(cache.staleForMs(clock.now()), 0);
    // Both stale: the longer outage counts.
    cutOffSince = clock.now() - 100;
    cache.close();
    clock.advance(300);
    assert.equal(cache.staleForMs(clock.now()), 400);
    cutOffSince = clock.now() - 50;
    assert.equal(cache.staleForMs(clock.now()), 300);
  });

  test('an undecodable item makes the view unhealthy until it is fixed', async () => {
    cache = services.lockCache();
    await cache.start();
    await memory.put(
      `/locks/${lockId(9)}`,
      JSON.stringify({ kind: 'lock', version: 'v2', metadata: { name: lockId(9) }, spec: {} }),
    );
    await cache.waitForRev(await memory.currentRev());
    assert.equal(cache.healthy, false, 'a lock we cannot read may be one we must enforce');
    assert.deepEqual(names(cache), []);
    await memory.delete(`/locks/${lockId(9)}`);
    await cache.waitForRev(await memory.currentRev());
    assert.equal(cache.healthy, true);
  });

  test('an undecodable item found by the list also counts', async () => {
    await memory.put(`/locks/${lockId(9)}`, 'garbage');
    cache = services.lockCache();
    await cache.start();
    assert.equal(cache.healthy, false);
  });

  test('stops when the backend closes', { timeout: 10_000 }, async () => {
    cache = services.lockCache();
    await cache.start();
    await memory.close();
    await cache.waitForRev(Number.MAX_SAFE_INTEGER);
    assert.equal(cache.healthy, false);
  });

  test('close() closes the running watch and marks the view stale from then', async () => {
    cache = services.lockCache();
    await cache.start();
    clock.advance(1000);
    cache.close();
    assert.equal(backend.watchesClosed, 1);
    assert.equal(cache.healthy, false);
    assert.equal(cache.lastSyncAt, clock.now());
    clock.advance(250);
    assert.equal(cache.staleForMs(clock.now()), 250);
  });

  test('close before the first list rejects start()', async () => {
    const held = gate();
    backend.beforeRange = () => held.promise;
    cache = services.lockCache();
    const started = cache.start();
    cache.close();
    held.open();
    await assert.rejects(started, /closed before its first list/);
  });
});
