/**
 * The backend conformance suite (DESIGN §3): one set of node:test tests that every Backend
 * implementation must pass. Call `runBackendConformance` from the implementation's test file;
 * the factory gets the suite's FakeClock (TTL time) and, for the bounded-history test, a
 * `maxHistory`. Factories should disable any reaper timer so expiry happens only when the
 * suite calls `reapExpired()` or writes. Who may import: backend test files only (packages/server/src/backend/*.test.ts, test/postgres/).
 *
 * @example
 *   runBackendConformance('memory', async ({ clock, maxHistory }) =>
 *     new MemoryBackend({ clock, maxHistory, reapIntervalMs: 0 }));
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type ErrorCode, isWardenError } from '@warden/api';
import {
  type Backend,
  type BackendEvent,
  type Item,
  MAX_TXN_OPS,
  type TxnOp,
  type Watcher,
} from '../../packages/server/src/backend';
import { FakeClock } from '../../packages/server/src/clock';

export interface ConformanceFactoryOptions {
  clock: FakeClock;
  /** When set, the backend must keep at most about this many events (automatic compaction). */
  maxHistory?: number;
}

export type BackendFactory = (opts: ConformanceFactoryOptions) => Promise<Backend>;

/** Per-test safety net so a broken watcher fails the test instead of hanging the run. */
const TEST_OPTS = { timeout: 30_000 };
/** For the tests that make thousands of writes: on a shared backend each is a commit. */
const MANY_WRITES_OPTS = { timeout: 120_000 };

function keyOf(e: BackendEvent): string {
  return e.type === 'put' ? e.item.key : e.key;
}

function brief(e: BackendEvent): string {
  return e.type === 'put' ? `${e.rev} put ${e.item.key}=${e.item.value}` : `${e.rev} delete ${e.key}`;
}

async function rejectsWith(p: Promise<unknown>, code: ErrorCode): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(isWardenError(err, code), `expected ${code}, got ${String(err)}`);
    return true;
  });
}

function throwsWith(fn: () => unknown, code: ErrorCode): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(isWardenError(err, code), `expected ${code}, got ${String(err)}`);
    return true;
  });
}

/** Reads events until one for `key` arrives (inclusive); fails if the watcher ends first. */
async function readUntil(it: AsyncIterator<BackendEvent>, key: string): Promise<BackendEvent[]> {
  const out: BackendEvent[] = [];
  for (;;) {
    const r = await it.next();
    if (r.done) assert.fail(`watcher ended before an event for ${key}; got ${out.map(brief).join(', ')}`);
    out.push(r.value);
    if (keyOf(r.value) === key) return out;
  }
}

async function readN(it: AsyncIterator<BackendEvent>, n: number): Promise<BackendEvent[]> {
  const out: BackendEvent[] = [];
  while (out.length < n) {
    const r = await it.next();
    if (r.done) assert.fail(`watcher ended after ${out.length} of ${n} events`);
    out.push(r.value);
  }
  return out;
}

function iter(w: Watcher): AsyncIterator<BackendEvent> {
  return w[Symbol.asyncIterator]();
}

/** Registers the conformance tests for one implementation. */
export function runBackendConformance(name: string, factory: BackendFactory): void {
  describe(`backend conformance: ${name}`, () => {
    type Ctx = { after(fn: () => unknown): void };
    async function open(t: Ctx, maxHistory?: number): Promise<{ backend: Backend; clock: FakeClock }> {
      const clock = new FakeClock();
      const backend = await factory(maxHistory === undefined ? { clock } : { clock, maxHistory });
      t.after(() => backend.close());
      return { backend, clock };
    }

    test(
      'get of a missing key is undefined; create returns createRev = modRev = the new revision',
      TEST_OPTS,
      async (t) => {
        const { backend } = await open(t);
        assert.equal(await backend.currentRev(), 0);
        assert.equal(await backend.get('/users/alice'), undefined);
        const item = await backend.create('/users/alice', '{"a":1}');
        assert.deepEqual(item, { key: '/users/alice', value: '{"a":1}', createRev: 1, modRev: 1 });
        assert.deepEqual(await backend.get('/users/alice'), item);
        assert.equal(await backend.currentRev(), 1);
      },
    );

    test(
      'create of an existing key fails with ALREADY_EXISTS and takes no revision',
      TEST_OPTS,
      async (t) => {
        const { backend } = await open(t);
        await backend.create('/k', 'v1');
        await rejectsWith(backend.create('/k', 'v2'), 'WARDEN_ERR_ALREADY_EXISTS');
        assert.equal((await backend.get('/k'))?.value, 'v1');
        assert.equal(await backend.currentRev(), 1);
      },
    );

    test('put creates, then overwrites keeping createRev and taking a new modRev', TEST_OPTS, async (t) => {
      const { backend } = await open(t);
      await backend.put('/other', 'x');
      const first = await backend.put('/k', 'v1');
      assert.deepEqual(first, { key: '/k', value: 'v1', createRev: 2, modRev: 2 });
      const second = await backend.put('/k', 'v2');
      assert.deepEqual(second, { key: '/k', value: 'v2', createRev: 2, modRev: 3 });
      assert.deepEqual(await backend.get('/k'), second);
    });

    test('compareAndSwap writes only when modRev matches', TEST_OPTS, async (t) => {
      const { backend } = await open(t);
      const a = await backend.create('/k', 'v1');
      const b = await backend.compareAndSwap('/k', a.modRev, 'v2');
      assert.deepEqual(b, { key: '/k', value: 'v2', createRev: 1, modRev: 2 });
      await rejectsWith(backend.compareAndSwap('/k', a.modRev, 'v3'), 'WARDEN_ERR_COMPARE_FAILED');
      await rejectsWith(backend.compareAndSwap('/missing', 1, 'v'), 'WARDEN_ERR_NOT_FOUND');
      assert.equal((await backend.get('/k'))?.value, 'v2');
      assert.equal(await backend.currentRev(), 2);
    });

    test('delete reports whether the key existed and honours expectedModRev', TEST_OPTS, async (t) => {
      const { backend } = await open(t);
      const a = await backend.create('/k', 'v1');
      await backend.put('/k', 'v2');
      assert.equal(await backend.delete('/missing'), false);
      assert.equal(await backend.delete('/missing', { expectedModRev: 1 }), false);
      await rejectsWith(backend.delete('/k', { expectedModRev: a.modRev }), 'WARDEN_ERR_COMPARE_FAILED');
      assert.equal(await backend.currentRev(), 2);
      assert.equal(await backend.delete('/k', { expectedModRev: 2 }), true);
      assert.equal(await backend.get('/k'), undefined);
      assert.equal(await backend.currentRev(), 3);
      assert.equal(await backend.delete('/k'), false);
      const again = await backend.create('/k', 'v3');
      assert.equal(again.createRev, 4, 'a re-created key gets a new createRev');
    });

    test(
      'deleteRange deletes only keys with the prefix, one revision each, in key order',
      TEST_OPTS,
      async (t) => {
        const { backend } = await open(t);
        for (const k of ['/a/2', '/a/1', '/ab', '/a', '/b/1']) await backend.put(k, 'v');
        const w = backend.watch('/', { sinceRev: 5 });
        assert.equal(await backend.deleteRange('/a/'), 2);
        assert.equal(await backend.currentRev(), 7);
        assert.deepEqual(
          (await backend.range('')).items.map((i) => i.key),
          ['/a', '/ab', '/b/1'],
        );
        assert.deepEqual((await readN(iter(w), 2)).map(brief), ['6 delete /a/1', '7 delete /a/2']);
        w.close();
        assert.equal(await backend.deleteRange('/nothing/'), 0);
        assert.equal(await backend.currentRev(), 7);
      },
    );

    test(
      'range returns live items in code point order with the revision it was read at',
      TEST_OPTS,
      async (t) => {
        const { backend } = await open(t);
        const keys = ['/u/z', '/u/😀', '/u/a', '/u/\uFFFD', '/u/é', '/u', '/v/a', '/p%/1', '/pX/1'];
        for (const k of keys) await backend.put(k, `v${k}`);
        const r = await backend.range('/u/');
        assert.deepEqual(
          r.items.map((i) => i.key),
          ['/u/a', '/u/z', '/u/é', '/u/\uFFFD', '/u/😀'],
        );
        assert.equal(r.rev, keys.length);
        assert.equal(r.items[0]?.value, 'v/u/a');
        assert.deepEqual(
          (await backend.range('/p%/')).items.map((i) => i.key),
          ['/p%/1'],
          'SQL wildcards in a prefix are literal',
        );
        assert.equal((await backend.range('')).items.length, keys.length);
        assert.deepEqual((await backend.range('/nothing')).items, []);
      },
    );

    test('revisions are gap-free and in commit order across every kind of write', TEST_OPTS, async (t) => {
      const { backend, clock } = await open(t);
      const w = backend.watch('', { sinceRev: 0 });
      const a = await backend.create('/a', '1');
      await backend.put('/b', '1', { ttlMs: 1000 });
      await backend.compareAndSwap('/a', a.modRev, '2');
      await rejectsWith(backend.compareAndSwap('/a', a.modRev, '3'), 'WARDEN_ERR_COMPARE_FAILED');
      await rejectsWith(backend.create('/a', 'x'), 'WARDEN_ERR_ALREADY_EXISTS');
      await backend.put('/c/1', '1');
      await backend.put('/c/2', '1');
      await backend.deleteRange('/c/');
      clock.advance(1000);
      await backend.delete('/a');
      await backend.put('/end', '1');
      const events = await readUntil(iter(w), '/end');
      assert.deepEqual(events.map(brief), [
        '1 put /a=1',
        '2 put /b=1',
        '3 put /a=2',
        '4 put /c/1=1',
        '5 put /c/2=1',
        '6 delete /c/1',
        '7 delete /c/2',
        '8 delete /b',
        '9 delete /a',
        '10 put /end=1',
      ]);
      assert.equal(await backend.currentRev(), 10);
      const cas = events[2];
      assert.ok(cas?.type === 'put');
      assert.equal(cas.item.createRev, 1);
      assert.equal(cas.item.modRev, 3);
    });

    test(
      'a watcher from a range revision misses and repeats nothing while writes race it',
      TEST_OPTS,
      async (t) => {
        const { backend } = await open(t);
        for (let i = 0; i < 50; i++) await backend.put(`/r/${i}`, 'old');
        const listed = await backend.range('/r/');
        assert.equal(listed.items.length, 50);
        const w = backend.watch('/r/', { sinceRev: listed.rev });
        const it = iter(w);
        const writes = (async () => {
          for (let i = 0; i < 200; i++) {
            await backend.put(`/r/${i % 60}`, `new${i}`);
            if (i % 7 === 0) await new Promise<void>((r) => setImmediate(r));
          }
          await backend.put('/r/end', 'x');
        })();
        const [events] = await Promise.all([readUntil(it, '/r/end'), writes]);
        w.close();
        assert.equal(events.length, 201);
        events.forEach((e, i) => {
          assert.equal(e.rev, listed.rev + 1 + i);
        });
        assert.equal(events[0]?.type === 'put' && events[0].item.value, 'new0');
      },
    );

    test(
      'a watcher replaying stored history while writes race it misses and repeats nothing',
      MANY_WRITES_OPTS,
      async (t) => {
        const { backend } = await open(t);
        for (let i = 0; i < 1500; i++) await backend.put(`/h/${i % 100}`, `a${i}`);
        const w = backend.watch('/h/', { sinceRev: 0 });
        const it = iter(w);
        const writes = (async () => {
          for (let i = 0; i < 1500; i++) {
            await backend.put(`/h/${i % 100}`, `b${i}`);
            if (i % 13 === 0) await new Promise<void>((r) => setImmediate(r));
          }
          await backend.put('/h/end', 'x');
        })();
        const [events] = await Promise.all([readUntil(it, '/h/end'), writes]);
        w.close();
        assert.equal(events.length, 3001);
        events.forEach((e, i) => {
          assert.equal(e.rev, i + 1);
        });
      },
    );

    test('a watcher only delivers events under its prefix', TEST_OPTS, async (t) => {
      const { backend } = await open(t);
      const w = backend.watch('/roles/', { sinceRev: 0 });
      await backend.put('/roles', 'no');
      await backend.put('/rolesx/a', 'no');
      await backend.put('/roles/admin', 'yes');
      await backend.put('/users/alice', 'no');
      await backend.delete('/roles/admin');
      await backend.put('/roles/end', 'yes');
      const events = await readUntil(iter(w), '/roles/end');
      assert.deepEqual(events.map(brief), [
        '3 put /roles/admin=yes',
        '5 delete /roles/admin',
        '6 put /roles/end=yes',
      ]);
      w.close();
    });

    test('a watcher from a future revision delivers only later events', TEST_OPTS, async (t) => {
      const { backend } = await open(t);
      await backend.put('/a', '1');
      const w = backend.watch('', { sinceRev: 3 });
      await backend.put('/a', '2');
      await backend.put('/a', '3');
      await backend.put('/a', '4');
      assert.deepEqual((await readN(iter(w), 1)).map(brief), ['4 put /a=4']);
      w.close();
    });

    test('concurrent CAS writers from the same read: exactly one wins', TEST_OPTS, async (t) => {
      const { backend } = await open(t);
      const read = await backend.create('/counter', '0');
      const results = await Promise.allSettled(
        Array.from({ length: 20 }, (_, i) => backend.compareAndSwap('/counter', read.modRev, `writer${i}`)),
      );
      const won = results.filter((r) => r.status === 'fulfilled');
      assert.equal(won.length, 1);
      for (const r of results) {
        if (r.status === 'rejected')
          assert.ok(isWardenError(r.reason, 'WARDEN_ERR_COMPARE_FAILED'), String(r.reason));
      }
      const winner = won[0]?.status === 'fulfilled' ? won[0].value : undefined;
      assert.deepEqual(await backend.get('/counter'), winner);
      assert.equal(await backend.currentRev(), 2);
    });

    test('concurrent creates of one key: exactly one wins', TEST_OPTS, async (t) => {
      const { backend } = await open(t);
      const results = await Promise.allSettled(
        Array.from({ length: 20 }, (_, i) => backend.create('/lock', `owner${i}`)),
      );
      assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
      for (const r of results) {
        if (r.status === 'rejected')
          assert.ok(isWardenError(r.reason, 'WARDEN_ERR_ALREADY_EXISTS'), String(r.reason));
      }
      assert.equal(await backend.currentRev(), 1);
    });

    test(
      'an expired key is absent to reads at once and its reaping is a delete event',
      TEST_OPTS,
      async (t) => {
        const { backend, clock } = await open(t);
        assert.ok(backend.reapExpired, 'the implementation must offer reapExpired()');
        const w = backend.watch('', { sinceRev: 0 });
        const item = await backend.create('/hb/node1', 'up', { ttlMs: 5000 });
        assert.equal(item.expires, clock.now() + 5000);
        await backend.put('/hb/node2', 'up', { ttlMs: 10_000 });
        clock.advance(4999);
        assert.equal((await backend.get('/hb/node1'))?.value, 'up');
        assert.equal(await backend.reapExpired(), 0);
        clock.advance(1);
        assert.equal(await backend.get('/hb/node1'), undefined);
        assert.deepEqual(
          (await backend.range('/hb/')).items.map((i) => i.key),
          ['/hb/node2'],
        );
        assert.equal(await backend.currentRev(), 2, 'reads alone write nothing');
        assert.equal(await backend.reapExpired(), 1);
        assert.equal(await backend.currentRev(), 3);
        assert.deepEqual((await readN(iter(w), 3)).map(brief), [
          '1 put /hb/node1=up',
          '2 put /hb/node2=up',
          '3 delete /hb/node1',
        ]);
        w.close();
        assert.equal(await backend.reapExpired(), 0);
      },
    );

    test('txn applies every operation in order, one revision each', TEST_OPTS, async (t) => {
      const { backend } = await open(t);
      const c = await backend.create('/c', 'c1');
      await backend.create('/d', 'd1');
      const w = backend.watch('', { sinceRev: 2 });
      const out = await backend.txn([
        { type: 'create', key: '/a', value: 'a1' },
        { type: 'put', key: '/b', value: 'b1', opts: { ttlMs: 60_000 } },
        { type: 'cas', key: '/c', expectedModRev: c.modRev, value: 'c2' },
        { type: 'delete', key: '/d' },
        { type: 'delete', key: '/e', expectedModRev: 9 },
      ]);
      assert.deepEqual(out[0], { key: '/a', value: 'a1', createRev: 3, modRev: 3 });
      const b = out[1] as Item;
      assert.deepEqual(
        { ...b, expires: undefined },
        { key: '/b', value: 'b1', createRev: 4, modRev: 4, expires: undefined },
      );
      assert.equal(typeof b.expires, 'number');
      assert.deepEqual(out.slice(2), [{ key: '/c', value: 'c2', createRev: 1, modRev: 5 }, true, false]);
      assert.equal(await backend.currentRev(), 6);
      assert.deepEqual(await backend.get('/c'), out[2]);
      assert.equal(await backend.get('/d'), undefined);
      assert.deepEqual((await readN(iter(w), 4)).map(brief), [
        '3 put /a=a1',
        '4 put /b=b1',
        '5 put /c=c2',
        '6 delete /d',
      ]);
      w.close();
    });

    test('txn: one failed condition writes nothing and its error names the key', TEST_OPTS, async (t) => {
      const { backend } = await open(t);
      const k = await backend.create('/k', 'v1');
      const failing: [TxnOp, ErrorCode][] = [
        [{ type: 'create', key: '/k', value: 'v2' }, 'WARDEN_ERR_ALREADY_EXISTS'],
        [{ type: 'cas', key: '/k', expectedModRev: k.modRev + 1, value: 'v2' }, 'WARDEN_ERR_COMPARE_FAILED'],
        [{ type: 'cas', key: '/gone', expectedModRev: 1, value: 'v2' }, 'WARDEN_ERR_NOT_FOUND'],
        [{ type: 'delete', key: '/k', expectedModRev: k.modRev + 1 }, 'WARDEN_ERR_COMPARE_FAILED'],
      ];
      for (const [op, code] of failing) {
        // The failing operation last, first and in the middle: nothing before or after it stands.
        for (const at of [0, 1, 2]) {
          const ops: TxnOp[] = [
            { type: 'create', key: '/new1', value: 'x' },
            { type: 'put', key: '/new2', value: 'x' },
          ];
          ops.splice(at, 0, op);
          await assert.rejects(backend.txn(ops), (err: unknown) => {
            assert.ok(isWardenError(err, code), `expected ${code}, got ${String(err)}`);
            assert.equal((err as { details?: { key?: string } }).details?.key, op.key);
            return true;
          });
        }
      }
      assert.equal(await backend.currentRev(), 1);
      assert.deepEqual(
        (await backend.range('')).items.map((i) => `${i.key}=${i.value}`),
        ['/k=v1'],
      );
    });

    test('concurrent txns creating one key: exactly one writes all of its keys', TEST_OPTS, async (t) => {
      const { backend } = await open(t);
      const results = await Promise.allSettled(
        Array.from({ length: 20 }, (_, i) =>
          backend.txn([
            { type: 'create', key: `/devices/${String(i).padStart(2, '0')}`, value: 'enrolled' },
            { type: 'create', key: '/index/ek', value: String(i) },
          ]),
        ),
      );
      assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
      for (const r of results) {
        if (r.status === 'rejected')
          assert.ok(isWardenError(r.reason, 'WARDEN_ERR_ALREADY_EXISTS'), String(r.reason));
      }
      const winner = (await backend.get('/index/ek'))!.value;
      assert.deepEqual(
        (await backend.range('/devices/')).items.map((i) => i.key),
        [`/devices/${winner.padStart(2, '0')}`],
      );
      assert.equal(await backend.currentRev(), 2);
    });

    test('txn treats an expired key as absent; bad operations are BAD_PARAMETER', TEST_OPTS, async (t) => {
      const { backend, clock } = await open(t);
      await backend.create('/k', 'v1', { ttlMs: 100 });
      clock.advance(100);
      const [again] = await backend.txn([{ type: 'create', key: '/k', value: 'v2' }]);
      assert.equal((again as Item).value, 'v2');
      const rev = await backend.currentRev();
      const bad = (ops: unknown) => backend.txn(ops as TxnOp[]);
      await rejectsWith(bad([]), 'WARDEN_ERR_BAD_PARAMETER');
      await rejectsWith(bad(undefined), 'WARDEN_ERR_BAD_PARAMETER');
      await rejectsWith(
        bad(Array.from({ length: MAX_TXN_OPS + 1 }, (_, i) => ({ type: 'put', key: `/m/${i}`, value: 'v' }))),
        'WARDEN_ERR_BAD_PARAMETER',
      );
      await rejectsWith(
        bad([
          { type: 'put', key: '/a', value: 'v' },
          { type: 'delete', key: '/a' },
        ]),
        'WARDEN_ERR_BAD_PARAMETER',
      );
      await rejectsWith(bad([{ type: 'upsert', key: '/a', value: 'v' }]), 'WARDEN_ERR_BAD_PARAMETER');
      await rejectsWith(bad([{ type: 'put', key: '', value: 'v' }]), 'WARDEN_ERR_BAD_PARAMETER');
      await rejectsWith(bad([{ type: 'cas', key: '/a', value: 'v' }]), 'WARDEN_ERR_BAD_PARAMETER');
      await rejectsWith(bad([{ type: 'put', key: '/a', value: 1 }]), 'WARDEN_ERR_BAD_PARAMETER');
      assert.equal(await backend.currentRev(), rev);
    });

    test('writes treat an expired key as absent, after its delete event', TEST_OPTS, async (t) => {
      const { backend, clock } = await open(t);
      const w = backend.watch('', { sinceRev: 0 });
      const first = await backend.create('/k', 'v1', { ttlMs: 100 });
      await backend.put('/c', 'v1', { ttlMs: 100 });
      await backend.put('/d', 'v1', { ttlMs: 100 });
      clock.advance(100);
      await rejectsWith(backend.compareAndSwap('/c', 2, 'v2'), 'WARDEN_ERR_NOT_FOUND');
      assert.equal(await backend.delete('/d'), false);
      const again = await backend.create('/k', 'v2');
      assert.notEqual(again.createRev, first.createRev);
      assert.equal(again.expires, undefined);
      const events = await readN(iter(w), 7);
      // The three expired keys are deleted (in some order) before the first write that follows.
      assert.deepEqual(
        events
          .slice(3, 6)
          .map((e) => `${e.type} ${keyOf(e)}`)
          .sort(),
        ['delete /c', 'delete /d', 'delete /k'],
      );
      assert.deepEqual(
        events.map((e) => e.rev),
        [1, 2, 3, 4, 5, 6, 7],
      );
      assert.equal(brief(events[6]!), '7 put /k=v2');
      w.close();
    });

    test('put without a TTL clears an earlier expiry; put with one sets it', TEST_OPTS, async (t) => {
      const { backend, clock } = await open(t);
      await backend.put('/k', 'v1', { ttlMs: 100 });
      const cleared = await backend.put('/k', 'v2');
      assert.equal(cleared.expires, undefined);
      clock.advance(1000);
      assert.equal((await backend.get('/k'))?.value, 'v2');
      const renewed = await backend.compareAndSwap('/k', cleared.modRev, 'v3', { ttlMs: 50 });
      assert.equal(renewed.expires, clock.now() + 50);
      assert.equal((await backend.get('/k'))?.expires, clock.now() + 50);
    });

    test(
      'a watcher closed and resumed from its last seen revision gets exactly the missed events',
      TEST_OPTS,
      async (t) => {
        const { backend } = await open(t);
        const w1 = backend.watch('/w/', { sinceRev: 0 });
        let lastSeen = 0;
        await backend.put('/w/1', 'a');
        await backend.put('/w/2', 'a');
        for await (const e of w1) {
          lastSeen = e.rev;
          if (e.rev === 2) break; // break closes the watcher
        }
        const ended = await iter(w1).next();
        assert.equal(ended.done, true, 'a closed watcher ends');
        await backend.put('/w/1', 'b');
        await backend.put('/x/1', 'b');
        await backend.delete('/w/2');
        const w2 = backend.watch('/w/', { sinceRev: lastSeen });
        await backend.put('/w/end', 'c');
        assert.deepEqual((await readUntil(iter(w2), '/w/end')).map(brief), [
          '3 put /w/1=b',
          '5 delete /w/2',
          '6 put /w/end=c',
        ]);
        w2.close();
      },
    );

    test('close() ends a watcher that is waiting for events', TEST_OPTS, async (t) => {
      const { backend } = await open(t);
      const w = backend.watch('', { sinceRev: 0 });
      const pending = iter(w).next();
      w.close();
      assert.equal((await pending).done, true);
    });

    test('watch from below the compacted revision throws COMPACTED; from it works', TEST_OPTS, async (t) => {
      const { backend } = await open(t);
      for (let i = 1; i <= 10; i++) await backend.put('/k', `${i}`);
      await backend.compact(6);
      await backend.compact(3); // compacting to an older revision is a no-op
      await rejectsWith(iter(backend.watch('', { sinceRev: 5 })).next(), 'WARDEN_ERR_COMPACTED');
      await rejectsWith(iter(backend.watch('', { sinceRev: 0 })).next(), 'WARDEN_ERR_COMPACTED');
      const w = backend.watch('', { sinceRev: 6 });
      assert.deepEqual(
        (await readN(iter(w), 4)).map((e) => e.rev),
        [7, 8, 9, 10],
      );
      w.close();
      await rejectsWith(backend.compact(11), 'WARDEN_ERR_BAD_PARAMETER');
      assert.equal((await backend.get('/k'))?.value, '10', 'compaction keeps items');
    });

    test('a watcher that falls behind compaction throws COMPACTED', MANY_WRITES_OPTS, async (t) => {
      const { backend } = await open(t);
      const w = backend.watch('', { sinceRev: 0 });
      const it = iter(w);
      await backend.put('/k', '1');
      await readN(it, 1);
      for (let i = 2; i <= 3000; i++) await backend.put('/k', `${i}`);
      await backend.compact(2500);
      let seen = 1;
      await assert.rejects(
        (async () => {
          for (;;) {
            const r = await it.next();
            if (r.done) return;
            assert.equal(r.value.rev, seen + 1);
            seen = r.value.rev;
          }
        })(),
        (err: unknown) => isWardenError(err, 'WARDEN_ERR_COMPACTED'),
      );
      assert.ok(seen < 2500);
      assert.equal((await it.next()).done, true, 'the watcher ends after the error');
    });

    test('history is bounded: old events are compacted automatically', TEST_OPTS, async (t) => {
      const { backend } = await open(t, 10);
      for (let i = 0; i < 100; i++) await backend.put(`/k/${i % 3}`, `${i}`);
      await rejectsWith(iter(backend.watch('', { sinceRev: 0 })).next(), 'WARDEN_ERR_COMPACTED');
      const w = backend.watch('', { sinceRev: 90 });
      assert.deepEqual(
        (await readN(iter(w), 10)).map((e) => e.rev),
        [91, 92, 93, 94, 95, 96, 97, 98, 99, 100],
      );
      w.close();
      assert.equal((await backend.range('/k/')).items.length, 3);
    });

    test('items returned are copies: changing them changes nothing stored', TEST_OPTS, async (t) => {
      const { backend } = await open(t);
      const created = await backend.create('/k', 'v');
      created.value = 'changed';
      const got = await backend.get('/k');
      assert.ok(got);
      got.value = 'changed';
      const listed = await backend.range('/');
      assert.ok(listed.items[0]);
      listed.items[0].value = 'changed';
      assert.equal((await backend.get('/k'))?.value, 'v');
    });

    test('bad input is rejected with BAD_PARAMETER and takes no revision', TEST_OPTS, async (t) => {
      const { backend } = await open(t);
      await backend.put('/k', 'v');
      const bad = backend as unknown as Record<string, (...args: unknown[]) => Promise<unknown>>;
      await rejectsWith(backend.get(''), 'WARDEN_ERR_BAD_PARAMETER');
      await rejectsWith(backend.put('', 'v'), 'WARDEN_ERR_BAD_PARAMETER');
      await rejectsWith(backend.put('/a\0b', 'v'), 'WARDEN_ERR_BAD_PARAMETER');
      await rejectsWith(backend.put('/a\uD800', 'v'), 'WARDEN_ERR_BAD_PARAMETER');
      await rejectsWith(backend.put('/x'.repeat(5000), 'v'), 'WARDEN_ERR_BAD_PARAMETER');
      await rejectsWith(bad.put!.call(backend, '/a', 42), 'WARDEN_ERR_BAD_PARAMETER');
      await rejectsWith(bad.create!.call(backend, 7, 'v'), 'WARDEN_ERR_BAD_PARAMETER');
      await rejectsWith(backend.put('/a', 'v', { ttlMs: 0 }), 'WARDEN_ERR_BAD_PARAMETER');
      await rejectsWith(backend.put('/a', 'v', { ttlMs: -5 }), 'WARDEN_ERR_BAD_PARAMETER');
      await rejectsWith(backend.put('/a', 'v', { ttlMs: Number.NaN }), 'WARDEN_ERR_BAD_PARAMETER');
      await rejectsWith(
        backend.create('/a', 'v', { ttlMs: Number.POSITIVE_INFINITY }),
        'WARDEN_ERR_BAD_PARAMETER',
      );
      await rejectsWith(backend.compareAndSwap('/k', -1, 'v'), 'WARDEN_ERR_BAD_PARAMETER');
      await rejectsWith(backend.compareAndSwap('/k', 1.5, 'v'), 'WARDEN_ERR_BAD_PARAMETER');
      await rejectsWith(backend.delete('/k', { expectedModRev: -1 }), 'WARDEN_ERR_BAD_PARAMETER');
      await rejectsWith(backend.compact(-1), 'WARDEN_ERR_BAD_PARAMETER');
      await rejectsWith(bad.range!.call(backend, undefined), 'WARDEN_ERR_BAD_PARAMETER');
      throwsWith(() => backend.watch('', { sinceRev: -1 }), 'WARDEN_ERR_BAD_PARAMETER');
      throwsWith(() => backend.watch('', {} as { sinceRev: number }), 'WARDEN_ERR_BAD_PARAMETER');
      assert.equal(await backend.currentRev(), 1);
      assert.deepEqual(
        (await backend.range('')).items.map((i) => i.key),
        ['/k'],
      );
    });

    test('after close() every call fails with CLOSED and open watchers end', TEST_OPTS, async (t) => {
      const { backend } = await open(t);
      await backend.put('/k', 'v');
      const w = backend.watch('', { sinceRev: 1 });
      const pending = iter(w).next();
      await backend.close();
      assert.equal((await pending).done, true);
      await rejectsWith(backend.get('/k'), 'WARDEN_ERR_CLOSED');
      await rejectsWith(backend.range(''), 'WARDEN_ERR_CLOSED');
      await rejectsWith(backend.create('/x', 'v'), 'WARDEN_ERR_CLOSED');
      await rejectsWith(backend.put('/k', 'v'), 'WARDEN_ERR_CLOSED');
      await rejectsWith(backend.compareAndSwap('/k', 1, 'v'), 'WARDEN_ERR_CLOSED');
      await rejectsWith(backend.delete('/k'), 'WARDEN_ERR_CLOSED');
      await rejectsWith(backend.deleteRange(''), 'WARDEN_ERR_CLOSED');
      await rejectsWith(backend.currentRev(), 'WARDEN_ERR_CLOSED');
      await rejectsWith(backend.compact(0), 'WARDEN_ERR_CLOSED');
      if (backend.reapExpired) await rejectsWith(backend.reapExpired(), 'WARDEN_ERR_CLOSED');
      await rejectsWith(iter(backend.watch('', { sinceRev: 0 })).next(), 'WARDEN_ERR_CLOSED');
      await backend.close(); // idempotent
    });
  });
}

/**
 * For the backends with a reaper timer (memory, SQLite): opened with `reapIntervalMs: 5` on
 * this fake clock, a key whose TTL ran out is deleted by the timer, with a delete event.
 */
export function testReaperTimer(name: string, open: (clock: FakeClock) => Promise<Backend>): void {
  test(`${name}: the reaper timer deletes expired keys with a delete event`, async () => {
    const clock = new FakeClock();
    const backend = await open(clock);
    let keepAlive: NodeJS.Timeout | undefined;
    try {
      await backend.create('/hb/a', 'up', { ttlMs: 10 });
      const w = backend.watch('/hb/', { sinceRev: 1 });
      clock.advance(10);
      // The reaper's timer is unref'd; keep the event loop alive while waiting for it.
      keepAlive = setInterval(() => undefined, 1000);
      for await (const e of w) {
        assert.deepEqual(e, { type: 'delete', rev: 2, key: '/hb/a' });
        break;
      }
    } finally {
      clearInterval(keepAlive);
      await backend.close();
    }
  });
}
