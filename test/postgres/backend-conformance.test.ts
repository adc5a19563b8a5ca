/**
 * The backend conformance suite against a real PostgreSQL (one server for the file, a fresh
 * schema per backend), plus what is particular to this backend: values of any kind round-trip,
 * data and revisions survive reopening, the reaper timer works on the database clock, options
 * are checked. TTL time for the suite comes from its FakeClock through `ttlClock`; the
 * database clock across replicas is covered by `backend-faults.test.ts`.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { isWardenError } from '@warden/api';
import { PostgresBackend } from '@warden/server';
import { requirePostgres, startPostgres } from '@warden/testkit';
import { runBackendConformance } from '../support/backend-conformance';
import { readUntil } from './helpers';

const check = requirePostgres();

describe('postgres backend', { skip: check.skip }, async () => {
  if (!check.ok) return;
  const server = await startPostgres();
  after(() => server.stop());
  let n = 0;
  runBackendConformance('postgres', ({ clock, maxHistory }) =>
    PostgresBackend.open({
      connString: server.connString,
      schema: `conformance_${++n}`,
      ttlClock: clock,
      reapIntervalMs: 0,
      ...(maxHistory === undefined ? {} : { maxHistory }),
    }),
  );

  test('postgres: any string value round-trips (NUL, control and astral characters, 1 MB)', async (t) => {
    const backend = await PostgresBackend.open({ connString: server.connString, schema: `extra_${++n}` });
    t.after(() => backend.close());
    const values = [
      '',
      'a\0b',
      '\u0001\u001f\u007f',
      '😀 é \uFFFD \u2028',
      'x'.repeat(1 << 20),
      '{"json":true}',
    ];
    for (const [i, value] of values.entries()) {
      assert.equal((await backend.put(`/v/${i}`, value)).value, value);
      assert.equal((await backend.get(`/v/${i}`))?.value, value);
    }
    const w = backend.watch('/v/', { sinceRev: 0 });
    t.after(() => w.close());
    const events = await readUntil(w, (_e, all) => all.length === values.length);
    assert.deepEqual(
      events.map((e) => (e.type === 'put' ? e.item.value : undefined)),
      values,
    );
  });

  test('postgres: data, revisions, TTLs and compaction survive reopening', async () => {
    const schema = `extra_${++n}`;
    const opts = { connString: server.connString, schema, reapIntervalMs: 0 };
    const a = await PostgresBackend.open(opts);
    await a.put('/users/alice', '1');
    const bob = await a.create('/users/bob', '2', { ttlMs: 3_600_000 });
    await a.put('/users/alice', '3');
    await a.compact(1);
    await a.close();
    const b = await PostgresBackend.open(opts);
    try {
      assert.equal(await b.currentRev(), 3);
      assert.deepEqual(await b.get('/users/bob'), bob);
      assert.deepEqual(await b.get('/users/alice'), {
        key: '/users/alice',
        value: '3',
        createRev: 1,
        modRev: 3,
      });
      await assert.rejects(b.watch('', { sinceRev: 0 })[Symbol.asyncIterator]().next(), (e: unknown) =>
        isWardenError(e, 'WARDEN_ERR_COMPACTED'),
      );
      assert.equal((await b.put('/x', 'y')).modRev, 4);
    } finally {
      await b.close();
    }
  });

  test('postgres: the reaper timer deletes expired keys (database clock) with a delete event', async (t) => {
    const backend = await PostgresBackend.open({
      connString: server.connString,
      schema: `extra_${++n}`,
      reapIntervalMs: 50,
    });
    t.after(() => backend.close());
    const item = await backend.create('/hb/a', 'up', { ttlMs: 300 });
    const w = backend.watch('/hb/', { sinceRev: item.modRev });
    t.after(() => w.close());
    const [event] = await readUntil(w, () => true);
    assert.deepEqual(event, { type: 'delete', rev: item.modRev + 1, key: '/hb/a' });
    assert.equal(await backend.get('/hb/a'), undefined);
  });

  test('postgres: bad options are rejected before connecting', async () => {
    const conn = server.connString;
    for (const schema of ['', 'Warden', 'pg_x', 'a-b', 'x'.repeat(49), '1abc']) {
      await assert.rejects(PostgresBackend.open({ connString: conn, schema }), (e: unknown) =>
        isWardenError(e, 'WARDEN_ERR_BAD_CONFIG'),
      );
    }
    await assert.rejects(PostgresBackend.open({ connString: conn, maxHistory: 0 }), /maxHistory/);
    await assert.rejects(PostgresBackend.open({ connString: conn, pollIntervalMs: 0 }), /pollIntervalMs/);
    await assert.rejects(PostgresBackend.open({ connString: conn, reapBatchSize: 1.5 }), /reapBatchSize/);
    await assert.rejects(PostgresBackend.open({ connString: conn, reapIntervalMs: -1 }), /reapIntervalMs/);
    await assert.rejects(PostgresBackend.open(undefined as never), (e: unknown) =>
      isWardenError(e, 'WARDEN_ERR_BAD_PARAMETER'),
    );
  });
});
