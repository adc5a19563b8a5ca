import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { isWardenError } from '@warden/api';
import Database from 'better-sqlite3';
import { runBackendConformance, testReaperTimer } from '../../../../test/support/backend-conformance';
import { FakeClock } from '../clock';
import { SQLITE_SCHEMA_VERSION, SqliteBackend } from './sqlite';

const dir = mkdtempSync(join(tmpdir(), 'warden-sqlite-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const freshPath = () => join(dir, `db${++n}`, 'backend.sqlite');

runBackendConformance('sqlite', ({ clock, maxHistory }) =>
  SqliteBackend.open(
    maxHistory === undefined
      ? { path: freshPath(), clock, reapIntervalMs: 0 }
      : { path: freshPath(), clock, maxHistory, reapIntervalMs: 0 },
  ),
);

test('sqlite: data, revisions, TTLs and compaction survive reopening', async () => {
  const path = freshPath();
  const clock = new FakeClock();
  const a = await SqliteBackend.open({ path, clock, reapIntervalMs: 0 });
  await a.put('/users/alice', '{"n":1}');
  const bob = await a.create('/users/bob', '{"n":2}', { ttlMs: 1000 });
  await a.put('/users/alice', '{"n":3}');
  await a.compact(1);
  await a.close();

  const b = await SqliteBackend.open({ path, clock, reapIntervalMs: 0 });
  try {
    assert.equal(await b.currentRev(), 3);
    assert.deepEqual(await b.get('/users/alice'), {
      key: '/users/alice',
      value: '{"n":3}',
      createRev: 1,
      modRev: 3,
    });
    assert.deepEqual(await b.get('/users/bob'), bob);
    const w = b.watch('/users/', { sinceRev: 1 });
    const it = w[Symbol.asyncIterator]();
    assert.equal((await it.next()).value?.rev, 2);
    assert.equal((await it.next()).value?.rev, 3);
    w.close();
    await assert.rejects(b.watch('', { sinceRev: 0 })[Symbol.asyncIterator]().next(), (e: unknown) =>
      isWardenError(e, 'WARDEN_ERR_COMPACTED'),
    );
    clock.advance(1000);
    assert.equal(await b.get('/users/bob'), undefined);
    assert.equal((await b.put('/x', 'y')).modRev, 5, 'the expiry took revision 4');
  } finally {
    await b.close();
  }
});

test('sqlite: the file is created with mode 0600 and uses WAL', async () => {
  const path = freshPath();
  const backend = await SqliteBackend.open({ path, reapIntervalMs: 0 });
  await backend.put('/k', 'v');
  assert.equal(statSync(path).mode & 0o777, 0o600);
  assert.equal(statSync(`${path}-wal`).mode & 0o777, 0o600);
  await backend.close();
  const db = new Database(path, { readonly: true });
  try {
    assert.equal(db.pragma('journal_mode', { simple: true }), 'wal');
    assert.equal(db.pragma('integrity_check', { simple: true }), 'ok');
    assert.deepEqual(db.prepare('SELECT name, value FROM meta ORDER BY name').all(), [
      { name: 'compacted_rev', value: 0 },
      { name: 'rev', value: 1 },
      { name: 'schema_version', value: SQLITE_SCHEMA_VERSION },
    ]);
  } finally {
    db.close();
  }
});

test('sqlite: a second open of a file in use fails with BAD_CONFIG', async () => {
  const path = freshPath();
  const first = await SqliteBackend.open({ path, reapIntervalMs: 0 });
  try {
    await assert.rejects(SqliteBackend.open({ path, reapIntervalMs: 0 }), (e: unknown) => {
      assert.ok(isWardenError(e, 'WARDEN_ERR_BAD_CONFIG'), String(e));
      assert.match((e as Error).message, /in use by another process/);
      return true;
    });
    await first.put('/k', 'still works');
  } finally {
    await first.close();
  }
});

test('sqlite: a file that is not a database, or from a newer warden, is refused', async () => {
  const junk = join(dir, 'junk.sqlite');
  writeFileSync(junk, 'x'.repeat(4096));
  await assert.rejects(SqliteBackend.open({ path: junk }), (e: unknown) =>
    isWardenError(e, 'WARDEN_ERR_BAD_CONFIG'),
  );

  const path = freshPath();
  await (await SqliteBackend.open({ path, reapIntervalMs: 0 })).close();
  const db = new Database(path);
  db.prepare("UPDATE meta SET value = ? WHERE name = 'schema_version'").run(SQLITE_SCHEMA_VERSION + 1);
  db.close();
  await assert.rejects(SqliteBackend.open({ path }), (e: unknown) => {
    assert.ok(isWardenError(e, 'WARDEN_ERR_BAD_CONFIG'));
    assert.match((e as Error).message, /newer than this warden supports/);
    return true;
  });
});

test('sqlite: bad options are rejected', async () => {
  await assert.rejects(SqliteBackend.open({ path: '' }), (e: unknown) =>
    isWardenError(e, 'WARDEN_ERR_BAD_PARAMETER'),
  );
  await assert.rejects(SqliteBackend.open({ path: freshPath(), maxHistory: 0 }), /maxHistory/);
});

testReaperTimer('sqlite', (clock) => SqliteBackend.open({ path: freshPath(), clock, reapIntervalMs: 5 }));

test('sqlite: writes asked for in one tick share one commit; a failing one undoes only itself', async () => {
  const path = freshPath();
  const clock = new FakeClock();
  const backend = await SqliteBackend.open({ path, clock, reapIntervalMs: 0 });
  try {
    const a = await backend.create('/a', '1');
    await backend.put('/gone', 'soon', { ttlMs: 10 });
    clock.advance(10);
    const watcher = backend.watch('/', { sinceRev: 2 });
    const batchesBefore = backend.batches;
    const results = await Promise.allSettled([
      backend.put('/b', '2'),
      backend.create('/a', 'again'), // exists: refused
      backend.compareAndSwap('/a', a.modRev, '3'),
      backend.compareAndSwap('/a', a.modRev, 'lost'), // the one before changed it: refused
      backend.delete('/missing'),
      backend.put('/c', '4'),
      backend.reapExpired(),
    ]);
    assert.equal(backend.batches, batchesBefore + 1, 'one transaction for the whole tick');
    const [b, again, cas, lost, missing, c, reaped] = results;
    // The expired key was deleted first (rev 3), then the writes took 4, 5, 6 in call order.
    assert.deepEqual(b, { status: 'fulfilled', value: { key: '/b', value: '2', createRev: 4, modRev: 4 } });
    assert.ok(again?.status === 'rejected' && isWardenError(again.reason, 'WARDEN_ERR_ALREADY_EXISTS'));
    assert.deepEqual(cas, { status: 'fulfilled', value: { key: '/a', value: '3', createRev: 1, modRev: 5 } });
    assert.ok(lost?.status === 'rejected' && isWardenError(lost.reason, 'WARDEN_ERR_COMPARE_FAILED'));
    assert.deepEqual(missing, { status: 'fulfilled', value: false });
    assert.deepEqual(c, { status: 'fulfilled', value: { key: '/c', value: '4', createRev: 6, modRev: 6 } });
    assert.deepEqual(reaped, { status: 'fulfilled', value: 1 });
    assert.equal(await backend.currentRev(), 6, 'the refused writes took no revision');
    const it = watcher[Symbol.asyncIterator]();
    const seen: string[] = [];
    for (let i = 0; i < 4; i++) {
      const e = (await it.next()).value!;
      seen.push(`${e.rev} ${e.type} ${e.type === 'put' ? `${e.item.key}=${e.item.value}` : e.key}`);
    }
    assert.deepEqual(seen, ['3 delete /gone', '4 put /b=2', '5 put /a=3', '6 put /c=4']);
    watcher.close();
  } finally {
    await backend.close();
  }
  // All of it is in the file, gap-free.
  const db = new Database(path, { readonly: true });
  try {
    assert.deepEqual(db.prepare('SELECT rev, type, key FROM events ORDER BY rev').all(), [
      { rev: 1, type: 'put', key: '/a' },
      { rev: 2, type: 'put', key: '/gone' },
      { rev: 3, type: 'delete', key: '/gone' },
      { rev: 4, type: 'put', key: '/b' },
      { rev: 5, type: 'put', key: '/a' },
      { rev: 6, type: 'put', key: '/c' },
    ]);
    assert.deepEqual(db.prepare("SELECT value FROM items WHERE key = '/a'").get(), { value: '3' });
  } finally {
    db.close();
  }
});

test('sqlite: close() commits the writes already asked for', async () => {
  const path = freshPath();
  const backend = await SqliteBackend.open({ path, reapIntervalMs: 0 });
  const written = backend.put('/k', 'v');
  await backend.close();
  assert.equal((await written).modRev, 1);
  await assert.rejects(backend.put('/k', 'w'), (e: unknown) => isWardenError(e, 'WARDEN_ERR_CLOSED'));
  const again = await SqliteBackend.open({ path, reapIntervalMs: 0 });
  try {
    assert.equal((await again.get('/k'))?.value, 'v');
  } finally {
    await again.close();
  }
});

test("sqlite: a write's watchers wake after the writer went on, and after what it queued for the next macrotask", async () => {
  // The lock API: its write of a lock is followed by its audit event, whose commit starts on a
  // setImmediate; the lock view's watcher ends the lock's sessions, whose audit events must
  // not be queued ahead of it.
  const b = await SqliteBackend.open({ path: freshPath(), clock: new FakeClock(), reapIntervalMs: 0 });
  const order: string[] = [];
  const w = b.watch('/locks/', { sinceRev: 0 });
  try {
    const it = w[Symbol.asyncIterator]();
    const seen = it.next().then((r) => order.push(`watcher saw ${r.value?.rev}`));
    await new Promise((r) => setImmediate(r)); // the watcher has read the empty log and sleeps
    const item = await b.put('/locks/a', '{}');
    order.push(`writer got ${item.modRev}`);
    for (let i = 0; i < 10; i++) await Promise.resolve();
    setImmediate(() => order.push('writer immediate'));
    await seen;
    assert.deepEqual(order, ['writer got 1', 'writer immediate', 'watcher saw 1']);
  } finally {
    w.close();
    await b.close();
  }
});
