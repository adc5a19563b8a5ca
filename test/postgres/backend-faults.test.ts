/**
 * Faults for the PostgreSQL backend as several replicas (issue 7 point 7), against a real
 * server: racing migrations, concurrent compare-and-swap writers on several replicas, slow
 * transactions under watchers, a server restart, a connection cut mid-write, a SIGKILLed
 * replica, and replicas with skewed clocks. Each replica is its own `PostgresBackend`
 * (separate pools and LISTEN connections); the killed and skewed ones are child processes.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { isWardenError } from '@warden/api';
import {
  type Backend,
  type BackendEvent,
  POSTGRES_SCHEMA_VERSION,
  PostgresBackend,
  type PostgresBackendOptions,
} from '@warden/server';
import { requirePostgres, startPostgres } from '@warden/testkit';
import pg from 'pg';
import {
  assertContiguous,
  brief,
  closeAll,
  keyOf,
  readUntil,
  startChild,
  startProxy,
  waitFor,
} from './helpers';

const check = requirePostgres();
const TEST = { timeout: 60_000 };

describe('postgres backend faults', { skip: check.skip }, async () => {
  if (!check.ok) return;
  const server = await startPostgres();
  after(() => server.stop());
  let schemas = 0;
  const freshSchema = () => `faults_${++schemas}`;

  type Ctx = { after(fn: () => unknown): void };
  async function replicas(
    t: Ctx,
    n: number,
    opts: Partial<PostgresBackendOptions> & { schema: string },
  ): Promise<PostgresBackend[]> {
    const backends = await Promise.all(
      Array.from({ length: n }, (_, i) =>
        PostgresBackend.open({
          connString: server.connString,
          applicationName: `warden-${opts.schema}-${i}`,
          pollIntervalMs: 200,
          reapIntervalMs: 0,
          ...opts,
        }),
      ),
    );
    t.after(() => closeAll(backends));
    return backends;
  }

  test('replicas starting at once on an empty database migrate once, without racing', TEST, async (t) => {
    const schema = freshSchema();
    const [a, b, c, d] = await replicas(t, 4, { schema });
    assert.equal(
      server.psql(`SELECT name || '=' || value FROM "${schema}".meta ORDER BY name`),
      `compacted_rev=0\nrev=0\nschema_version=${POSTGRES_SCHEMA_VERSION}\n`,
    );
    await a!.put('/x', '1');
    assert.equal((await d!.get('/x'))?.value, '1');
    assert.equal(await b!.currentRev(), 1);
    assert.equal(await c!.currentRev(), 1);
  });

  test('a schema written by a newer warden is refused', TEST, async (t) => {
    const schema = freshSchema();
    await closeAll(await replicas(t, 1, { schema }));
    server.psql(
      `UPDATE "${schema}".meta SET value = ${POSTGRES_SCHEMA_VERSION + 1} WHERE name = 'schema_version'`,
    );
    await assert.rejects(PostgresBackend.open({ connString: server.connString, schema }), (e: unknown) => {
      assert.ok(isWardenError(e, 'WARDEN_ERR_BAD_CONFIG'), String(e));
      assert.match((e as Error).message, /newer than this warden supports/);
      return true;
    });
  });

  test(
    'N concurrent CAS writers on one key from several replicas: exactly one wins per revision',
    TEST,
    async (t) => {
      const backends = await replicas(t, 3, { schema: freshSchema() });
      const a = backends[0]!;
      const b = backends[1]!;
      const start = await a.create('/counter', '0');
      const watcher = b.watch('/counter', { sinceRev: start.modRev });
      t.after(() => watcher.close());
      const WORKERS_PER_REPLICA = 4;
      const WINS_EACH = 12;
      let conflicts = 0;
      const worker = async (backend: Backend): Promise<number[]> => {
        const won: number[] = [];
        while (won.length < WINS_EACH) {
          const cur = await backend.get('/counter');
          assert.ok(cur);
          try {
            won.push(
              (await backend.compareAndSwap('/counter', cur.modRev, String(Number(cur.value) + 1))).modRev,
            );
          } catch (e) {
            if (!isWardenError(e, 'WARDEN_ERR_COMPARE_FAILED')) throw e;
            conflicts++;
          }
        }
        return won;
      };
      const results = await Promise.all(
        backends.flatMap((backend) => Array.from({ length: WORKERS_PER_REPLICA }, () => worker(backend))),
      );
      const total = backends.length * WORKERS_PER_REPLICA * WINS_EACH;
      const events = await readUntil(watcher, (_e, all) => all.length === total);
      assertContiguous(events, start.modRev + 1);
      // Every revision's value is its predecessor's plus one: no two writers won from one read.
      events.forEach((e, i) => {
        assert.ok(e.type === 'put');
        assert.equal(e.item.value, String(i + 1), brief(e));
      });
      const wonRevs = results.flat().sort((x, y) => x - y);
      assert.deepEqual(
        wonRevs,
        events.map((e) => e.rev),
        'each acknowledged CAS is exactly one revision',
      );
      assert.equal((await a.get('/counter'))?.value, String(total));
      t.diagnostic(`${conflicts} compare failures`);
    },
  );

  test('slow concurrent transactions never make a watcher skip or repeat a revision', TEST, async (t) => {
    const schema = freshSchema();
    const backends = await replicas(t, 3, { schema });
    // Writes to /slow/ sleep inside their transaction, holding their revision before commit.
    server.psql(`
      CREATE FUNCTION "${schema}".slow_down() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF NEW.key LIKE '/slow/%' THEN PERFORM pg_sleep(0.005 + random() * 0.03); END IF;
        RETURN NEW;
      END $$;
      CREATE TRIGGER slow_down BEFORE INSERT ON "${schema}".events
        FOR EACH ROW EXECUTE FUNCTION "${schema}".slow_down();`);
    const watchers = backends.map((b) => b.watch('', { sinceRev: 0 }));
    t.after(() => {
      for (const w of watchers) w.close();
    });
    // Raw sessions that take a revision and then dawdle before COMMIT.
    const raw = new pg.Client({ connectionString: server.connString });
    await raw.connect();
    t.after(() => raw.end());
    const dawdler = (async () => {
      for (let i = 0; i < 5; i++) {
        await raw.query('BEGIN');
        await raw.query(
          `SELECT * FROM "${schema}".write('put', '/raw/' || $1::text, 'x', NULL, NULL, NULL, NULL, 10)`,
          [String(i)],
        );
        await raw.query('SELECT pg_sleep(0.1)');
        await raw.query('COMMIT');
      }
    })();
    const writers = backends.flatMap((b, r) =>
      Array.from({ length: 3 }, async (_, w) => {
        for (let i = 0; i < 15; i++) {
          await b.put(i % 2 === 0 ? `/slow/${r}-${w}` : `/fast/${r}-${w}`, String(i));
        }
      }),
    );
    await Promise.all([...writers, dawdler]);
    const total = 5 + backends.length * 3 * 15;
    const seen = await Promise.all(watchers.map((w) => readUntil(w, (_e, all) => all.length === total)));
    for (const events of seen) assertContiguous(events, 1);
    assert.deepEqual(seen[1]?.map(brief), seen[0]?.map(brief), 'every replica sees the same history');
    assert.deepEqual(seen[2]?.map(brief), seen[0]?.map(brief));
    assert.equal(await backends[0]!.currentRev(), total);
  });

  test(
    'PostgreSQL restarted while replicas run: they reconnect and watchers catch up without loss',
    TEST,
    async (t) => {
      const [a, b] = (await replicas(t, 2, { schema: freshSchema() })) as [PostgresBackend, PostgresBackend];
      const watchA = a.watch('/r/', { sinceRev: 0 });
      const watchB = b.watch('/r/', { sinceRev: 0 });
      t.after(() => {
        watchA.close();
        watchB.close();
      });
      for (let i = 0; i < 5; i++) await a.put(`/r/${i}`, 'before');
      await waitFor('B to see the first writes', async () => (await b.currentRev()) === 5);

      await server.halt();
      await waitFor('B to notice the outage', () => !b.health().connected);
      assert.ok(b.staleForMs(Date.now()) >= 0);
      // Writes issued during the outage wait for the database (nothing was sent, so even a
      // create is safe to retry).
      const during = a.put('/r/during', 'outage');
      const created = b.create('/r/created', 'outage');
      await new Promise((r) => setTimeout(r, 500));
      await server.start();
      await Promise.all([during, created]);
      for (let i = 0; i < 5; i++) await b.put(`/r/${i}`, 'after');
      await a.put('/r/end', 'x');

      for (const w of [watchA, watchB]) {
        const events = await readUntil(w, (e) => keyOf(e) === '/r/end');
        assertContiguous(events, 1);
        assert.equal(events.length, 13);
      }
      await waitFor(
        'B to be connected and listening again',
        () => b.health().connected && b.health().listening,
      );
      assert.equal(b.staleForMs(Date.now()), 0);
    },
  );

  test(
    'notifications are only a hint: with every NOTIFY lost, other replicas catch up by polling',
    TEST,
    async (t) => {
      const schema = freshSchema();
      const [a, b] = (await replicas(t, 2, { schema })) as [PostgresBackend, PostgresBackend];
      // The same function without its pg_notify: commits now wake nobody in other processes.
      server.psql(`
      CREATE OR REPLACE FUNCTION "${schema}".set_rev(p_start bigint, p_rev bigint) RETURNS void
      LANGUAGE plpgsql AS $$
      BEGIN
        IF p_rev <> p_start THEN UPDATE "${schema}".meta SET value = p_rev WHERE name = 'rev'; END IF;
      END $$;`);
      const watcher = b.watch('/p/', { sinceRev: 0 });
      t.after(() => watcher.close());
      const first = readUntil(watcher, (e) => keyOf(e) === '/p/1');
      await a.put('/p/1', 'x');
      await first;
      await a.put('/p/2', 'x');
      await a.delete('/p/1');
      const events = await readUntil(watcher, (e) => e.type === 'delete');
      assert.deepEqual(events.map(brief), ['2 put /p/2=x', '3 delete /p/1']);
    },
  );

  test(
    'serialization failures and deadlocks roll back and are retried, even for create and CAS',
    TEST,
    async (t) => {
      const schema = freshSchema();
      const [a] = (await replicas(t, 1, { schema })) as [PostgresBackend];
      // Two of every three writes to /flaky/ fail as PostgreSQL would under contention (a
      // sequence, because it is not rolled back with the failed attempt).
      server.psql(`
      CREATE SEQUENCE "${schema}".attempts;
      CREATE FUNCTION "${schema}".flaky() RETURNS trigger LANGUAGE plpgsql AS $$
      DECLARE n bigint := nextval('"${schema}".attempts');
      BEGIN
        IF NEW.key LIKE '/flaky/%' AND n % 3 = 1 THEN RAISE EXCEPTION 'conflict' USING ERRCODE = '40001'; END IF;
        IF NEW.key LIKE '/flaky/%' AND n % 3 = 2 THEN RAISE EXCEPTION 'deadlock' USING ERRCODE = '40P01'; END IF;
        RETURN NEW;
      END $$;
      CREATE TRIGGER flaky BEFORE INSERT ON "${schema}".events FOR EACH ROW EXECUTE FUNCTION "${schema}".flaky();`);
      const created = await a.create('/flaky/a', '1');
      const swapped = await a.compareAndSwap('/flaky/a', created.modRev, '2');
      assert.equal(await a.delete('/flaky/a', { expectedModRev: swapped.modRev }), true);
      assert.deepEqual([created.modRev, swapped.modRev, await a.currentRev()], [1, 2, 3]);
      assert.equal(
        server.psql(`SELECT last_value FROM "${schema}".attempts`).trim(),
        '9',
        'three tries each',
      );
    },
  );

  test('a write cut mid-flight is retried only if idempotent', TEST, async (t) => {
    const schema = freshSchema();
    const [a] = (await replicas(t, 1, { schema, applicationName: `warden-cut-${schema}` })) as [
      PostgresBackend,
    ];
    server.psql(`
      CREATE FUNCTION "${schema}".hold() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF NEW.key LIKE '/cut/%' THEN PERFORM pg_sleep(2.5); END IF;
        RETURN NEW;
      END $$;
      CREATE TRIGGER hold BEFORE INSERT ON "${schema}".events FOR EACH ROW EXECUTE FUNCTION "${schema}".hold();`);
    // The trigger holds a write long enough for a psql to find it on a loaded machine.
    const inTrigger = (app: string) =>
      waitFor('the write to be running', () =>
        server
          .psql(
            `SELECT count(*) FROM pg_stat_activity WHERE application_name = '${app}' AND wait_event = 'PgSleep'`,
          )
          .startsWith('1'),
      );
    const cut = async () => {
      await inTrigger(`warden-cut-${schema}`);
      server.psql(
        `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'warden-cut-${schema}' AND wait_event = 'PgSleep'`,
      );
    };
    const [created] = await Promise.allSettled([a.create('/cut/a', 'x'), cut()]);
    assert.equal(created.status, 'rejected');
    assert.ok(isWardenError(created.reason, 'WARDEN_ERR_CONNECTION'), String(created.reason));
    assert.match((created.reason as Error).message, /may or may not have been applied/);

    const [put] = await Promise.allSettled([a.put('/cut/b', 'y'), cut()]);
    assert.equal(put.status, 'fulfilled', String((put as PromiseRejectedResult).reason));
    assert.equal((await a.get('/cut/b'))?.value, 'y');
    assert.equal(await a.get('/cut/a'), undefined, 'the cut create was rolled back');

    // The network itself fails (connections reset, no goodbye from the server).
    const proxy = await startProxy(server.port);
    t.after(() => proxy.close());
    const viaProxy = await PostgresBackend.open({
      connString: `postgres://warden@127.0.0.1:${proxy.port}/postgres`,
      schema,
      reapIntervalMs: 0,
      applicationName: `warden-cut-proxy-${schema}`,
    });
    t.after(() => viaProxy.close());
    const reset = async () => {
      await inTrigger(`warden-cut-proxy-${schema}`);
      proxy.cutAll();
    };
    const b = (await viaProxy.get('/cut/b'))!;
    const [cas] = await Promise.allSettled([viaProxy.compareAndSwap('/cut/b', b.modRev, 'z'), reset()]);
    assert.equal(cas.status, 'rejected');
    assert.ok(isWardenError(cas.reason, 'WARDEN_ERR_CONNECTION'), String(cas.reason));
    const [again] = await Promise.allSettled([viaProxy.put('/cut/c', 'w'), reset()]);
    assert.equal(again.status, 'fulfilled', String((again as PromiseRejectedResult).reason));
    assert.equal((await a.get('/cut/c'))?.value, 'w');
  });

  test(
    'a silent network partition: health turns red, writes give up, watchers resume after',
    TEST,
    async (t) => {
      const schema = freshSchema();
      const [a] = (await replicas(t, 1, { schema })) as [PostgresBackend];
      const proxy = await startProxy(server.port);
      t.after(() => proxy.close());
      const b = await PostgresBackend.open({
        connString: `postgres://warden@127.0.0.1:${proxy.port}/postgres`,
        schema,
        reapIntervalMs: 0,
        pollIntervalMs: 100,
        queryTimeoutMs: 500,
        connectTimeoutMs: 500,
        retryTimeoutMs: 1500,
      });
      t.after(() => b.close());
      const watcher = b.watch('/net/', { sinceRev: 0 });
      t.after(() => watcher.close());
      await a.put('/net/1', 'x');
      await readUntil(watcher, (e) => keyOf(e) === '/net/1');

      proxy.freeze();
      await waitFor('B to see that the database stopped answering', () => !b.health().connected);
      await assert.rejects(b.create('/net/lost', 'x'), (e: unknown) =>
        isWardenError(e, 'WARDEN_ERR_CONNECTION'),
      );
      await assert.rejects(b.get('/net/1'), (e: unknown) => isWardenError(e, 'WARDEN_ERR_CONNECTION'));
      await a.put('/net/2', 'x'); // the rest of the cluster goes on
      await a.put('/net/end', 'x');
      proxy.thaw();
      const events = await readUntil(watcher, (e) => keyOf(e) === '/net/end');
      assert.deepEqual(
        events.map((e) => keyOf(e)),
        ['/net/2', '/net/end'],
        'the same watcher resumes from its cursor',
      );
      await waitFor('B to be healthy again', () => b.health().connected);
    },
  );

  test('a replica killed with SIGKILL: the others keep serving and its TTL keys expire', TEST, async (t) => {
    const schema = freshSchema();
    const [a, b] = (await replicas(t, 2, { schema, reapIntervalMs: 100 })) as [
      PostgresBackend,
      PostgresBackend,
    ];
    const replica = startChild({
      WARDEN_PG_CONN: server.connString,
      WARDEN_PG_SCHEMA: schema,
      WARDEN_NAME: 'doomed',
      WARDEN_MODE: 'heartbeat',
      WARDEN_TTL_MS: '1500',
    });
    t.after(() => replica.child.kill('SIGKILL'));
    const ready = await replica.message('ready');
    const since = (ready.item as { modRev: number }).modRev;
    assert.equal((await a.get('/hb/doomed'))?.value, '0');
    const watcher = b.watch('/hb/', { sinceRev: since });
    t.after(() => watcher.close());

    replica.child.kill('SIGKILL');
    assert.equal(await replica.exited, 'SIGKILL');
    await a.put('/still/a', 'serving');
    await b.create('/still/b', 'serving');
    const events = await readUntil(watcher, (e) => e.type === 'delete');
    assert.equal(brief(events.at(-1)!).replace(/^\d+ /, ''), 'delete /hb/doomed');
    assert.equal(await a.get('/hb/doomed'), undefined);
    assert.equal((await b.get('/still/a'))?.value, 'serving');
    await waitFor('the killed replica to hold no sessions (nor their locks)', () =>
      server
        .psql(`SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'warden-doomed%'`)
        .startsWith('0'),
    );
  });

  test('replica clocks skewed by minutes: TTLs still follow the database clock', TEST, async (t) => {
    const schema = freshSchema();
    const ahead = { now: () => Date.now() + 10 * 60_000 };
    const behind = { now: () => Date.now() - 10 * 60_000 };
    const [a, b] = (await Promise.all([
      PostgresBackend.open({ connString: server.connString, schema, clock: ahead, reapIntervalMs: 100 }),
      PostgresBackend.open({ connString: server.connString, schema, clock: behind, reapIntervalMs: 100 }),
    ])) as [PostgresBackend, PostgresBackend];
    t.after(() => closeAll([a, b]));
    // The database runs on this host, so its clock is ours (Date.now) here.
    const lease = await b.create('/lease/b', 'held', { ttlMs: 2000 });
    assert.ok(
      Math.abs(lease.expires! - (Date.now() + 2000)) < 5000,
      `expires ${lease.expires} is on the database clock`,
    );
    assert.equal(
      (await a.get('/lease/b'))?.value,
      'held',
      'a replica ahead by 10 min does not see it expired',
    );

    // Child processes whose system clock (Date.now) is 10 minutes off.
    const lease_ = async (name: string, skewMs: number, ttlMs: number) => {
      const child = startChild({
        WARDEN_PG_CONN: server.connString,
        WARDEN_PG_SCHEMA: schema,
        WARDEN_NAME: name,
        WARDEN_MODE: 'lease',
        WARDEN_TTL_MS: String(ttlMs),
        WARDEN_SKEW_MS: String(skewMs),
      });
      t.after(() => child.child.kill('SIGKILL'));
      const msg = await child.message('lease');
      assert.ok(Math.abs((msg.now as number) - skewMs - Date.now()) < 60_000, 'the child clock is skewed');
      return msg.item as { modRev: number; expires: number };
    };
    const [slow] = await Promise.all([
      lease_('slow-clock', -10 * 60_000, 60_000),
      lease_('fast-clock', 10 * 60_000, 1000),
    ]);
    assert.ok(Math.abs(slow.expires - (Date.now() + 60_000)) < 5000, 'the lease is on the database clock');
    assert.equal((await a.get('/lease/slow-clock'))?.value, 'held', 'not born expired');
    const watcher = a.watch('/lease/', { sinceRev: lease.modRev });
    t.after(() => watcher.close());
    // Both the in-process lease (2 s) and the fast-clock child's (1 s) expire in seconds, not minutes.
    const deleted = new Set<string>();
    await readUntil(watcher, (e: BackendEvent) => {
      if (e.type === 'delete') deleted.add(e.key);
      return deleted.has('/lease/b') && deleted.has('/lease/fast-clock');
    });
    assert.ok(!deleted.has('/lease/slow-clock'), 'the 60 s lease is still held');
    assert.equal((await b.get('/lease/slow-clock'))?.value, 'held');
  });
});
