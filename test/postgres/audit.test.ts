/**
 * The audit log suite against a real PostgreSQL (a fresh schema per log), plus what only a
 * shared database has: replicas writing and searching one log, and the table refusing
 * changes.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { isWardenError } from '@warden/api';
import { FakeClock, PostgresAuditLog } from '@warden/server';
import { requirePostgres, startPostgres } from '@warden/testkit';
import { runAuditLogConformance } from '../../packages/server/src/audit/conformance';

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
});
