/**
 * Events carried by notifications (backend schema version 2), against a real server: a
 * replica whose watchers follow another replica's writes takes each event from the
 * notification instead of reading it back from the events table (the read was a round trip
 * between a lock's commit and the sessions it ends), and gets exactly what the table holds;
 * where a notification cannot carry the event (a large value, several events in one
 * transaction) or this replica knows of a compaction past the cursor, it reads as before.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { isWardenError } from '@warden/api';
import { type BackendEvent, PostgresBackend } from '@warden/server';
import { requirePostgres, startPostgres } from '@warden/testkit';
import { assertContiguous, closeAll, readUntil, waitFor } from './helpers';

const check = requirePostgres();
const TEST = { timeout: 60_000 };

describe('postgres backend: events carried by notifications', { skip: check.skip }, async () => {
  if (!check.ok) return;
  const server = await startPostgres();
  after(() => server.stop());
  let schemas = 0;

  /** Replica A writes, B watches; no poll or reaper to wake B's watchers behind our back. */
  async function pair(t: { after(fn: () => unknown): void }): Promise<[PostgresBackend, PostgresBackend]> {
    const schema = `notify_${++schemas}`;
    const open = (name: string) =>
      PostgresBackend.open({
        connString: server.connString,
        schema,
        applicationName: `warden-${schema}-${name}`,
        pollIntervalMs: 3_600_000,
        reapIntervalMs: 0,
      });
    const a = await open('a');
    const b = await open('b');
    t.after(() => closeAll([a, b]));
    return [a, b];
  }

  /** What the events table holds after `sinceRev` for `prefix`, read by a fresh replica. */
  async function fromTable(prefix: string, sinceRev: number, n: number) {
    const fresh = await PostgresBackend.open({
      connString: server.connString,
      schema: `notify_${schemas}`,
      pollIntervalMs: 3_600_000,
      reapIntervalMs: 0,
    });
    try {
      const w = fresh.watch(prefix, { sinceRev });
      const events = await readUntil(w, (_e, all) => all.length === n);
      w.close();
      assert.equal(fresh.watchStats().pagesFromNotifications, 0, 'the fresh replica read the table');
      return events;
    } finally {
      await fresh.close();
    }
  }

  test("a watcher on another replica takes the writes' events from the notifications", TEST, async (t) => {
    const [a, b] = await pair(t);
    const start = await b.currentRev();
    const w = b.watch('/locks/', { sinceRev: start });
    t.after(() => w.close());
    const it = w[Symbol.asyncIterator]();
    const next = () => it.next().then((r) => r.value as BackendEvent);
    // The watcher's first look is a read (nothing was notified yet); wait until it is done.
    const first = next();
    await waitFor('the first read', () => b.watchStats().pagesRead === 1);
    const before = b.watchStats();

    const values = ['{"kind":"lock"}', 'a\0b', '😀 é \uFFFD \u2028', 'x'.repeat(3000)];
    const got: BackendEvent[] = [];
    for (const [i, value] of values.entries()) {
      const written = await a.put(`/locks/${i}`, value, i === 1 ? { ttlMs: 3_600_000 } : undefined);
      const event = i === 0 ? await first : await next();
      assert.deepEqual(event, { type: 'put', rev: written.modRev, item: written });
      got.push(event);
    }
    await a.put('/nodes/n1', 'other prefix');
    assert.equal(await a.delete('/locks/0'), true);
    const deleted = await next();
    assert.deepEqual(deleted, { type: 'delete', rev: start + values.length + 2, key: '/locks/0' });
    got.push(deleted);

    const after = b.watchStats();
    assert.equal(after.pagesRead, before.pagesRead, 'no read of the events table after a notification');
    assert.ok(after.pagesFromNotifications >= got.length, JSON.stringify(after));
    // Exactly what the table holds.
    assert.deepEqual(got, await fromTable('/locks/', start, got.length));
  });

  test("a replica's watchers take its own writes' events without reading the table", TEST, async (t) => {
    // The writer's watchers wake on the write's answer, before its notification arrives: each
    // read the table then (a pool connection each; on the replica that writes a lock).
    const [a] = await pair(t);
    const start = await a.currentRev();
    const w = a.watch('/locks/', { sinceRev: start });
    t.after(() => w.close());
    const it = w[Symbol.asyncIterator]();
    const next = () => it.next().then((r) => r.value as BackendEvent);
    const first = next();
    await waitFor('the first read', () => a.watchStats().pagesRead === 1);
    const before = a.watchStats();
    const got: BackendEvent[] = [];
    for (let i = 0; i < 6; i++) {
      const written = await a.put(
        `/locks/${i}`,
        `lock ${i} a\0b 😀`,
        i % 2 ? { ttlMs: 3_600_000 } : undefined,
      );
      const event = i === 0 ? await first : await next();
      assert.deepEqual(event, { type: 'put', rev: written.modRev, item: written });
      got.push(event);
    }
    assert.equal(await a.delete('/locks/0'), true);
    got.push(await next());
    assert.deepEqual(got.at(-1), { type: 'delete', rev: start + 7, key: '/locks/0' });
    assert.equal(a.watchStats().pagesRead, before.pagesRead, 'a table read after an own write');
    assert.deepEqual(got, await fromTable('/locks/', start, got.length));
  });

  test('what a notification cannot carry is read from the table, in order', TEST, async (t) => {
    const [a, b] = await pair(t);
    const start = await b.currentRev();
    const w = b.watch('/big/', { sinceRev: start });
    t.after(() => w.close());
    const reads = b.watchStats().pagesRead;
    // Too large for a notification (PostgreSQL's limit is 8000 bytes).
    const big = await a.put('/big/1', 'y'.repeat(20_000));
    // Several events in one transaction: a delete of a whole range.
    await a.put('/big/2', 'two');
    await a.put('/big/3', 'three');
    assert.equal(await a.deleteRange('/big/'), 3);
    const events = await readUntil(w, (_e, all) => all.length === 6);
    assertContiguous(events, start + 1);
    assert.deepEqual(events[0], { type: 'put', rev: big.modRev, item: big });
    assert.deepEqual(
      events.slice(3).map((e) => e.type),
      ['delete', 'delete', 'delete'],
    );
    assert.ok(b.watchStats().pagesRead > reads, 'the large value and the range delete were read');
    assert.deepEqual(events, await fromTable('/big/', start, 6));
  });

  test('a watcher below a compaction this replica made still gets COMPACTED', TEST, async (t) => {
    const [a, b] = await pair(t);
    const start = await b.currentRev();
    const live = b.watch('/c/', { sinceRev: start });
    t.after(() => live.close());
    await a.put('/c/1', '1');
    await a.put('/c/2', '2');
    // B has both events from the notifications …
    await readUntil(live, (_e, all) => all.length === 2);
    await b.compact(start + 1);
    // … but a watcher from before the compaction must re-list, as on every backend.
    await assert.rejects(b.watch('/c/', { sinceRev: start })[Symbol.asyncIterator]().next(), (e: unknown) =>
      isWardenError(e, 'WARDEN_ERR_COMPACTED'),
    );
  });
});
