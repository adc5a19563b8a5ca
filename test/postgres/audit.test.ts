/**
 * The audit log suite against a real PostgreSQL (a fresh schema per log), plus what only a
 * shared database has: replicas writing and searching one log, and the table refusing
 * changes.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, describe, test } from 'node:test';
import { type AuditEvent, isWardenError } from '@warden/api';
import { FakeClock, PostgresAuditLog } from '@warden/server';
import { requirePostgres, startPostgres } from '@warden/testkit';
import { runAuditLogConformance, statementFixture, written } from '../support/audit-conformance';

const check = requirePostgres();

describe('postgres audit log', { skip: check.skip }, async () => {
  if (!check.ok) return;
  const server = await startPostgres();
  after(() => server.stop());
  let n = 0;
  runAuditLogConformance('postgres', ({ clock }) =>
    PostgresAuditLog.open({ connString: server.connString, schema: `audit_${++n}`, clock }),
  );

  test('replicas share one log: emitted through one, found through the other', async (t) => {
    const schema = `audit_${++n}`;
    const clock = new FakeClock();
    const [a, b] = await Promise.all([
      PostgresAuditLog.open({ connString: server.connString, schema, clock }),
      PostgresAuditLog.open({ connString: server.connString, schema, clock }),
    ]);
    t.after(() => Promise.all([a.close(), b.close()]));
    const login = await a.emit({ type: 'user.login', user: 'alice', method: 'local' });
    clock.advance(1000);
    const lock = await b.emit({ type: 'lock.created', user: 'admin', name: 'l1', target: { user: 'alice' } });
    clock.advance(1000);
    const enroll = await a.emit({ type: 'device.enroll', user: 'bob', device_id: 'dev-9', asset_tag: 'A9' });
    assert.deepEqual(await b.search({ order: 'asc' }), [login, lock, enroll]);
    assert.deepEqual(await a.search({ user: 'alice' }), [login]);
    assert.deepEqual(await b.search({ device: 'dev-9' }), [enroll]);
    assert.deepEqual(await a.search({ types: ['lock.created'] }), [lock]);
  });

  test('a NUL in a user name is stored and searchable', async (t) => {
    const audit = await PostgresAuditLog.open({ connString: server.connString, schema: `audit_${++n}` });
    t.after(() => audit.close());
    const event = await audit.emit({
      type: 'user.login',
      success: false,
      user: 'mallory\0root',
      error: 'no',
    });
    assert.deepEqual(await audit.search({ user: 'mallory\0root' }), [event]);
    assert.equal((await audit.search())[0]?.user, 'mallory\0root');
  });

  test('the events table refuses UPDATE, DELETE and TRUNCATE', async (t) => {
    const schema = `audit_${++n}`;
    const audit = await PostgresAuditLog.open({ connString: server.connString, schema });
    t.after(() => audit.close());
    await audit.emit({ type: 'role.created', name: 'dev' });
    for (const sql of [
      `UPDATE "${schema}".audit_events SET user_name = 'mallory'`,
      `DELETE FROM "${schema}".audit_events`,
      `TRUNCATE "${schema}".audit_events`,
    ]) {
      assert.throws(() => server.psql(sql), /append-only/);
    }
    assert.equal((await audit.search()).length, 1);
  });

  test('an audit schema from a newer warden is refused', async () => {
    const schema = `audit_${++n}`;
    await (await PostgresAuditLog.open({ connString: server.connString, schema })).close();
    server.psql(`UPDATE "${schema}".audit_meta SET value = 9 WHERE name = 'schema_version'`);
    await assert.rejects(PostgresAuditLog.open({ connString: server.connString, schema }), (e: unknown) =>
      isWardenError(e, 'WARDEN_ERR_BAD_CONFIG'),
    );
  });

  test('concurrent events are written in batches (one transaction each), in emission order', async (t) => {
    const schema = `audit_${++n}`;
    const audit = await PostgresAuditLog.open({ connString: server.connString, schema });
    t.after(() => audit.close());
    const emitted = await Promise.all(
      Array.from({ length: 300 }, (_, i) =>
        audit.emit({ type: 'user.login', user: `u${i}`, method: 'local' }),
      ),
    );
    const found = await audit.search({ order: 'asc', limit: 1000 });
    assert.deepEqual(
      found.map((e) => e.user),
      emitted.map((e) => e.user),
    );
    const transactions = Number(
      server.psql(`SELECT count(DISTINCT xmin::text) FROM "${schema}".audit_events`),
    );
    assert.ok(transactions < 30, `300 events in ${transactions} transactions`);
  });

  test('a row the table refuses fails only its own writer; the rest of its batch is written, in order', async (t) => {
    const schema = `audit_${++n}`;
    const audit = await PostgresAuditLog.open({ connString: server.connString, schema });
    t.after(() => audit.close());
    // Two real refusals: a CHECK constraint (SQLSTATE 23514), and a user name whose index entry
    // exceeds btree's limit (54000; 4,096 incompressible characters, the audit string bound).
    server.psql(
      `ALTER TABLE "${schema}".audit_events ADD CONSTRAINT no_mallory CHECK (user_name IS DISTINCT FROM 'mallory')`,
    );
    const huge = randomBytes(3072).toString('base64');
    const users = Array.from({ length: 40 }, (_, i) => (i === 7 ? 'mallory' : i === 30 ? huge : `u${i}`));
    const results = await Promise.allSettled(
      users.map((user) => audit.emit({ type: 'user.login', user, method: 'local' })),
    );
    const refused = results.flatMap((r, i) => (r.status === 'rejected' ? [i] : []));
    assert.deepEqual(refused, [7, 30], 'only the two refused rows fail');
    for (const i of refused) {
      const reason = (results[i] as PromiseRejectedResult).reason;
      assert.ok(isWardenError(reason, 'WARDEN_ERR_INTERNAL'), String(reason));
      assert.match(String(reason.message), i === 7 ? /SQLSTATE 23514/ : /SQLSTATE 54000/);
    }
    const found = await audit.search({ order: 'asc', limit: 100 });
    assert.deepEqual(
      found.map((e) => e.user),
      users.filter((_, i) => i !== 7 && i !== 30),
    );
    // A writer alone with a bad row fails as before; the log goes on.
    await assert.rejects(
      audit.emit({ type: 'user.login', user: 'mallory', method: 'local' }),
      /SQLSTATE 23514/,
    );
    const ok = await audit.emit({ type: 'user.login', user: 'alice', method: 'local' });
    assert.deepEqual((await audit.search({ user: 'alice' }))[0], ok);
  });

  test('a failure of the whole store still fails the whole batch (no row by row retry)', async (t) => {
    const schema = `audit_${++n}`;
    const audit = await PostgresAuditLog.open({ connString: server.connString, schema });
    t.after(() => audit.close());
    server.psql(`
      CREATE FUNCTION "${schema}".full_disk() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF NEW.user_name = 'u3' THEN RAISE EXCEPTION 'No space left on device' USING ERRCODE = 'disk_full'; END IF;
        RETURN NEW;
      END $$;
      CREATE TRIGGER full_disk BEFORE INSERT ON "${schema}".audit_events
        FOR EACH ROW EXECUTE FUNCTION "${schema}".full_disk();
    `);
    const results = await Promise.allSettled(
      Array.from({ length: 6 }, (_, i) => audit.emit({ type: 'user.login', user: `u${i}`, method: 'local' })),
    );
    assert.deepEqual(
      results.map((r) => r.status),
      Array(6).fill('rejected'),
      'disk_full (class 53) is not about one row: the batch fails',
    );
    assert.deepEqual(await audit.search(), []);
  });

  test('a session statement writer stores what emit stores, in batches, and falls back for unusual statements', async (t) => {
    const schema = `audit_${++n}`;
    const clock = new FakeClock();
    const audit = await PostgresAuditLog.open({ connString: server.connString, schema, clock });
    t.after(() => audit.close());
    const { base, pem, statements } = statementFixture('alice\0x', 'a"b\0');
    const writer = audit.statements(base);
    assert.ok(writer, 'a usual base gets a writer');
    // Written together: one commit (bulk events gather), not one per statement.
    await Promise.all(statements.map((s) => written(writer, s)));
    for (const s of statements) await audit.emit({ ...base, ...s });
    const events = await audit.search({ order: 'asc', device: 'dev-1' });
    assert.equal(events.length, 6, 'found by the device index');
    const strip = ({ id, time, ...rest }: AuditEvent) => {
      assert.match(String(id), /^[0-9a-f-]{36}$/);
      assert.equal(time, new Date(clock.now()).toISOString());
      return rest;
    };
    for (let i = 0; i < 3; i++) assert.deepEqual(strip(events[i]!), strip(events[i + 3]!), `statement ${i}`);
    assert.deepEqual(events[2]!.redacted, ['parameters[0]'], 'a private key is redacted by the general path');
    const rows = server
      .psql(
        `SELECT type || '|' || code || '|' || success || '|' || user_name || '|' || device || '|' || coalesce(subject_device, '-') || '|' || xmin::text FROM "${schema}".audit_events ORDER BY seq`,
      )
      .trim()
      .split('\n');
    const columns = rows.map((r) => r.split('|'));
    for (const c of columns.slice(0, 3))
      assert.deepEqual(c.slice(0, 6), columns[3]!.slice(0, 6), 'the same index columns as emit');
    assert.equal(columns[0]![3], 'alice\uFFFDx', 'a NUL in the user is indexed as U+FFFD, as emit does');
    assert.equal(
      new Set(columns.slice(0, 2).map((c) => c[6])).size,
      1,
      'the two fast statements share a transaction',
    );
    assert.equal((await audit.search({ user: 'alice\0x' })).length, 6, 'found by the user index');
    assert.equal((await audit.search({ types: ['db.query'] })).length, 6, 'found by the type index');
    await assert.rejects(
      written(writer, { query: `INSERT ${pem}` }),
      (e: unknown) => isWardenError(e, 'WARDEN_ERR_BAD_PARAMETER'),
      'as emit refuses it (the session then ends)',
    );
    await audit.close();
    await assert.rejects(written(writer, { query: 'SELECT 2' }), (e: unknown) =>
      isWardenError(e, 'WARDEN_ERR_CLOSED'),
    );
  });
});
