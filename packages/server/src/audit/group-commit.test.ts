import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isWardenError } from '@warden/api';
import { GroupCommit, type GroupCommitOptions } from './group-commit';

/** A commit function whose calls wait until released, recording every batch. */
function gatedStore() {
  const batches: number[][] = [];
  const gates: (() => void)[] = [];
  let open = false;
  return {
    batches,
    commit: async (batch: readonly number[]) => {
      batches.push([...batch]);
      if (!open) await new Promise<void>((r) => gates.push(r));
    },
    releaseAll() {
      open = true;
      for (const g of gates.splice(0)) g();
    },
    releaseOne() {
      gates.shift()?.();
    },
    get waiting() {
      return gates.length;
    },
  };
}

const tick = () => new Promise((r) => setImmediate(r));

/** A group whose commits resolve at once, recording every batch. */
function recordingGroup(o: Omit<GroupCommitOptions<number>, 'commit'>) {
  const batches: number[][] = [];
  const group = new GroupCommit<number>({
    ...o,
    commit: (b) => {
      batches.push([...b]);
    },
  });
  return { group, batches };
}

test('group commit: one tick of events is one batch, acknowledged only after the commit', async () => {
  const store = gatedStore();
  const group = new GroupCommit<number>({ commit: store.commit });
  const acked: number[] = [];
  const all = [1, 2, 3, 4, 5].map((n) => group.add(n).then(() => acked.push(n)));
  await tick();
  await tick();
  assert.deepEqual(store.batches, [[1, 2, 3, 4, 5]]);
  assert.deepEqual(acked, [], 'nothing is acknowledged while its batch is not durable');
  store.releaseAll();
  await Promise.all(all);
  assert.deepEqual(acked, [1, 2, 3, 4, 5]);
  assert.equal(group.batches, 1);
});

test('group commit: events arriving during a commit form the next batch; batches are bounded', async () => {
  const store = gatedStore();
  const group = new GroupCommit<number>({ commit: store.commit, maxBatch: 3, maxQueued: 100 });
  const first = group.add(0);
  await tick();
  assert.deepEqual(store.batches, [[0]]);
  const later = Array.from({ length: 7 }, (_, i) => group.add(i + 1));
  await tick();
  assert.equal(store.batches.length, 1, 'one batch at a time');
  store.releaseAll();
  await Promise.all([first, ...later]);
  assert.deepEqual(store.batches, [[0], [1, 2, 3], [4, 5, 6], [7]]);
});

test('group commit: a failed batch rejects each of its events, and the next batch goes on', async () => {
  let fail = true;
  const group = new GroupCommit<string>({
    commit: () => {
      if (fail) throw new Error('disk full');
    },
  });
  const doomed = [group.add('a'), group.add('b')];
  for (const p of doomed) await assert.rejects(p, /disk full/);
  fail = false;
  await group.add('c');
  assert.equal(group.batches, 1);
});

test('group commit: a store that reports refused events fails only their callers', async () => {
  const written: string[] = [];
  const group = new GroupCommit<string>({
    commit: (batch) => {
      const failures = new Map<number, unknown>();
      batch.forEach((item, i) => {
        if (item.startsWith('bad')) failures.set(i, new Error(`refused ${item}`));
        else written.push(item);
      });
      return failures;
    },
  });
  const results = await Promise.allSettled(['a', 'bad1', 'b', 'bad2', 'c'].map((x) => group.add(x)));
  assert.deepEqual(
    results.map((r) => r.status),
    ['fulfilled', 'rejected', 'fulfilled', 'rejected', 'fulfilled'],
  );
  assert.match(String((results[1] as PromiseRejectedResult).reason), /refused bad1/);
  assert.match(String((results[3] as PromiseRejectedResult).reason), /refused bad2/);
  assert.deepEqual(written, ['a', 'b', 'c']);
  assert.equal(group.batches, 1, 'one batch');
});

test('group commit: a full queue makes callers wait (back-pressure); nothing is dropped, order kept', async () => {
  const store = gatedStore();
  const group = new GroupCommit<number>({ commit: store.commit, maxBatch: 2, maxQueued: 4 });
  let maxQueued = 0;
  const done: number[] = [];
  const adds = Array.from({ length: 20 }, (_, i) =>
    group.add(i).then(() => {
      done.push(i);
    }),
  );
  await tick();
  await tick();
  assert.equal(group.queued, 4, 'four accepted, sixteen callers wait');
  assert.ok(group.full, 'the queue reports itself full');
  assert.equal(done.length, 0);
  for (let i = 0; i < 200 && done.length < 20; i++) {
    store.releaseOne();
    await tick();
    maxQueued = Math.max(maxQueued, group.queued);
    assert.ok(group.queued <= 4, `queue bounded (${group.queued})`);
  }
  await Promise.all(adds);
  assert.equal(maxQueued, 4);
  assert.deepEqual(
    store.batches.flat(),
    Array.from({ length: 20 }, (_, i) => i),
    'all, once, in order',
  );
  assert.ok(store.batches.every((b) => b.length <= 2));
  assert.deepEqual(done, store.batches.flat());
});

test('group commit: close writes everything accepted, waiting callers included; later adds are refused', async () => {
  const store = gatedStore();
  const group = new GroupCommit<number>({ commit: store.commit, maxBatch: 1, maxQueued: 1 });
  const adds = [1, 2, 3].map((n) => group.add(n));
  await tick();
  const closed = group.close();
  await assert.rejects(group.add(4), (e: unknown) => isWardenError(e, 'WARDEN_ERR_CLOSED'));
  store.releaseAll();
  await closed;
  await Promise.all(adds);
  assert.deepEqual(store.batches.flat(), [1, 2, 3]);
});

test('group commit: an idle writer commits at once; the next batch waits for the interval and takes what came', async () => {
  const { group, batches } = recordingGroup({ intervalMs: 300 });
  await group.add(1);
  assert.deepEqual(batches, [[1]], 'the first event did not wait for the interval');
  const second = group.add(2);
  await tick();
  const third = group.add(3);
  await Promise.all([second, third]);
  assert.deepEqual(batches, [[1], [2, 3]]);
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('group commit: bulk events gather for bulkIntervalMs after the last batch began', async () => {
  const { group, batches } = recordingGroup({ intervalMs: 1, bulkIntervalMs: 300 });
  const bulk = { bulk: true };
  const acks = [group.add(0, bulk)];
  await tick();
  await tick();
  assert.deepEqual(batches, [[0]], 'an idle writer commits at once');
  for (let i = 1; i <= 3; i++) {
    await sleep(10);
    acks.push(group.add(i, bulk));
  }
  await sleep(20);
  assert.deepEqual(batches, [[0]], 'bulk events wait for the bulk interval');
  await Promise.all(acks);
  assert.deepEqual(batches, [[0], [1, 2, 3]]);
});

test('group commit: an urgent event brings a bulk batch forward, waiting or draining', async () => {
  const store = gatedStore();
  const group = new GroupCommit<number>({ commit: store.commit, intervalMs: 1, bulkIntervalMs: 60_000 });
  const bulk = { bulk: true };
  // Scheduled (not draining): a bulk event waits, an urgent one ends the wait.
  store.releaseAll();
  await group.add(0, bulk);
  const one = group.add(1, bulk);
  await sleep(30);
  assert.deepEqual(store.batches, [[0]]);
  await Promise.all([one, group.add(2)]);
  assert.deepEqual(store.batches, [[0], [1, 2]]);
  // Draining: the loop waits for the bulk interval after a commit; an urgent event wakes it.
  const store2 = gatedStore();
  const g2 = new GroupCommit<number>({ commit: store2.commit, intervalMs: 1, bulkIntervalMs: 60_000 });
  const first = g2.add(10, bulk);
  await tick();
  await tick();
  const second = g2.add(11, bulk); // arrives during the first commit
  store2.releaseAll();
  await first;
  await sleep(30);
  assert.deepEqual(store2.batches, [[10]]);
  await Promise.all([second, g2.add(12)]);
  assert.deepEqual(store2.batches, [[10], [11, 12]]);
});

test('group commit: a full batch of bulk events does not wait; close writes what waits at once', async () => {
  const { group, batches } = recordingGroup({
    maxBatch: 3,
    maxQueued: 30,
    intervalMs: 1,
    bulkIntervalMs: 60_000,
  });
  const bulk = { bulk: true };
  await group.add(0, bulk);
  const full = [1, 2, 3].map((n) => group.add(n, bulk));
  await Promise.all(full);
  assert.deepEqual(batches, [[0], [1, 2, 3]]);
  const waiting = group.add(4, bulk);
  await sleep(20);
  assert.deepEqual(batches.length, 2);
  await group.close();
  await waiting;
  assert.deepEqual(batches, [[0], [1, 2, 3], [4]]);
});

test('group commit: bulkBatch bulk events waiting bring the commit forward', async () => {
  const { group, batches } = recordingGroup({ intervalMs: 1, bulkIntervalMs: 60_000, bulkBatch: 4 });
  const bulk = { bulk: true };
  await group.add(0, bulk);
  const few = [1, 2, 3].map((n) => group.add(n, bulk));
  await sleep(30);
  assert.deepEqual(batches, [[0]], 'fewer than bulkBatch wait for the bulk interval');
  await Promise.all([...few, group.add(4, bulk)]);
  assert.deepEqual(batches, [[0], [1, 2, 3, 4]], 'the fourth makes the batch big enough');
});

test('group commit: push calls back once durable, with the error of a failed batch, without waiting for a promise', async () => {
  const store = gatedStore();
  const group = new GroupCommit<number>({ commit: store.commit, maxBatch: 2, maxQueued: 2 });
  const calls: [number, unknown][] = [];
  const done = (n: number) => (e?: unknown) => calls.push([n, e]);
  group.push(1, true, done(1));
  group.push(2, false, done(2));
  await tick();
  assert.deepEqual(store.batches, [[1, 2]]);
  assert.equal(calls.length, 0, 'nothing before its batch is durable');
  group.push(3, true, done(3));
  group.push(4, true, done(4));
  group.push(5, true, done(5)); // past maxQueued: waits for room, as add does
  assert.equal(group.queued, 2);
  store.releaseAll();
  while (calls.length < 5) await tick();
  assert.deepEqual(
    calls,
    [1, 2, 3, 4, 5].map((n) => [n, undefined]),
  );
  assert.deepEqual(store.batches, [[1, 2], [3, 4], [5]]);

  const failing = new GroupCommit<number>({
    commit: () => {
      throw undefined; // even a bare throw reaches the callback as an error
    },
  });
  const errors: unknown[] = [];
  failing.push(1, true, (e) => errors.push(e));
  while (errors.length < 1) await tick();
  assert.ok(errors[0] instanceof Error);
  await failing.close();
  failing.push(2, true, (e) => errors.push(e));
  assert.ok(isWardenError(errors[1], 'WARDEN_ERR_CLOSED'), 'a closed writer answers at once');
});
