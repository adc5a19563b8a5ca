/**
 * The audit log suite: node:test tests every AuditLog implementation must pass (emit fills
 * and validates, secrets never stored, search filters, order and limits, close). Call
 * `runAuditLogConformance` from the implementation's test. Who may import: audit tests only.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type AuditEventInput, type ErrorCode, isWardenError } from '@warden/api';
import {
  type AuditLog,
  type AuditStatement,
  type AuditStatementWriter,
  MAX_AUDIT_STRING,
} from '../../packages/server/src/audit';
import { FakeClock } from '../../packages/server/src/clock';

export type AuditLogFactory = (opts: { clock: FakeClock }) => Promise<AuditLog>;

const T0 = Date.UTC(2026, 0, 1);

async function rejectsWith(p: Promise<unknown>, code: ErrorCode, pattern?: RegExp): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(isWardenError(err, code), `expected ${code}, got ${String(err)}`);
    if (pattern) assert.match((err as Error).message, pattern);
    return true;
  });
}

/** A statement writer's callback as a promise. */
export function written(writer: AuditStatementWriter, s: AuditStatement): Promise<void> {
  return new Promise((resolve, reject) => writer.write(s, (e) => (e === undefined ? resolve() : reject(e))));
}

/**
 * A database session's `db.query` base (user `user`, device dev-1) and three statements for a
 * store's statement writer: a plain one, one with parameters (`odd`, a string the store must
 * escape) and one whose parameter is a private key, which the general path redacts.
 */
export function statementFixture(user: string, odd: string) {
  const base = {
    type: 'db.query' as const,
    success: true,
    user,
    addr: '10.0.0.7',
    device: { id: 'dev-1', os_type: 'linux' as const },
    protocol: 'db' as const,
    resource: { kind: 'db', name: 'orders', labels: { env: 'prod' } },
    db_user: 'alice',
    db_name: 'orders',
    session_id: 'sess-1',
  };
  const pem = '-----BEGIN PRIVATE KEY-----\nMIGH\n-----END PRIVATE KEY-----';
  const statements = [
    { query: 'SELECT 1' },
    { query: 'SELECT $1, $2', parameters: [odd, null], statement: 's1' },
    { query: 'INSERT $1', parameters: [pem, 'x'] },
  ];
  return { base, pem, statements };
}

export function runAuditLogConformance(name: string, factory: AuditLogFactory): void {
  describe(`audit log conformance: ${name}`, () => {
    type Ctx = { after(fn: () => unknown): void };
    async function open(t: Ctx): Promise<{ audit: AuditLog; clock: FakeClock }> {
      const clock = new FakeClock(T0);
      const audit = await factory({ clock });
      t.after(() => audit.close());
      return { audit, clock };
    }

    /** Emits a fixed set of events one second apart; returns their ids in order. */
    async function seed(audit: AuditLog, clock: FakeClock): Promise<string[]> {
      const inputs: AuditEventInput[] = [
        { type: 'user.login', user: 'alice', addr: '10.0.0.1', method: 'local' },
        { type: 'user.login', success: false, user: 'bob', error: 'invalid credentials' },
        { type: 'role.created', user: 'alice', name: 'dev' },
        {
          type: 'access.denied',
          user: 'bob',
          protocol: 'ssh',
          resource: { kind: 'node', name: 'web1' },
          login: 'root',
          device: { id: 'dev-1', os_type: 'linux', asset_tag: 'A1', credential_id: 'c1' },
        },
        { type: 'device.enroll', user: 'carol', device_id: 'dev-2', asset_tag: 'A2' },
        { type: 'lock.created', user: 'alice', name: 'l1', target: { device: 'dev-2' } },
      ];
      const ids: string[] = [];
      for (const input of inputs) {
        ids.push((await audit.emit(input)).id);
        clock.advance(1000);
      }
      return ids;
    }

    test('emit fills id, code, time and success and returns what search returns', async (t) => {
      const { audit, clock } = await open(t);
      clock.advance(1234);
      const event = await audit.emit({
        type: 'user.login',
        user: 'alice',
        addr: '10.0.0.1',
        method: 'local',
      });
      assert.match(event.id, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
      assert.deepEqual(event, {
        id: event.id,
        code: 'W1000I',
        type: 'user.login',
        time: '2026-01-01T00:00:01.234Z',
        success: true,
        user: 'alice',
        addr: '10.0.0.1',
        method: 'local',
      });
      assert.deepEqual(await audit.search(), [event]);
      const failed = await audit.emit({
        type: 'user.login',
        success: false,
        user: 'alice',
        error: 'bad otp',
      });
      assert.equal(failed.code, 'W1000W');
      assert.equal(failed.success, false);
      assert.notEqual(failed.id, event.id);
      const denied = await audit.emit({ type: 'access.denied', protocol: 'app', user: 'bob' });
      assert.equal(denied.success, false, 'access.denied defaults to failure');
      assert.equal(denied.code, 'W4001W');
    });

    test('emit rejects unknown types, bad fields and impossible outcomes, storing nothing', async (t) => {
      const { audit } = await open(t);
      const bad = (e: unknown) => audit.emit(e as AuditEventInput);
      await rejectsWith(
        bad({ type: 'user.logon', user: 'a' }),
        'WARDEN_ERR_BAD_PARAMETER',
        /unknown audit event type/,
      );
      await rejectsWith(bad({ type: 'role.created', user: 'a' }), 'WARDEN_ERR_BAD_PARAMETER', /name/);
      await rejectsWith(bad({ type: 'role.created', name: 42 }), 'WARDEN_ERR_BAD_PARAMETER');
      await rejectsWith(bad({ type: 'user.login', success: 'yes' }), 'WARDEN_ERR_BAD_PARAMETER');
      await rejectsWith(bad({ type: 'access.allowed', protocol: 'telnet' }), 'WARDEN_ERR_BAD_PARAMETER');
      await rejectsWith(
        bad({ type: 'role.created', name: 'x', success: false }),
        'WARDEN_ERR_BAD_PARAMETER',
        /cannot fail/,
      );
      await rejectsWith(
        bad({ type: 'access.denied', protocol: 'ssh', success: true }),
        'WARDEN_ERR_BAD_PARAMETER',
      );
      await rejectsWith(bad(null), 'WARDEN_ERR_BAD_PARAMETER');
      await rejectsWith(bad('user.login'), 'WARDEN_ERR_BAD_PARAMETER');
      assert.deepEqual(await audit.search(), []);
    });

    test('emit never stores secret-named fields or private keys, at any depth', async (t) => {
      const { audit } = await open(t);
      const pem =
        '-----BEGIN OPENSSH PRIVATE KEY-----\nAAAAsecretkeymaterial\n-----END OPENSSH PRIVATE KEY-----';
      const event = await audit.emit({
        type: 'lock.created',
        user: 'alice',
        name: 'l1',
        message: pem,
        target: { user: 'bob', token: 'tok-SECRET-1', join_token: 'tok-SECRET-2' },
        password: 'hunter2-SECRET',
        otp: '123456',
        private_key: 'pk-SECRET',
        nested: { deeper: [{ apiKey: 'ak-SECRET' }] },
      } as AuditEventInput);
      const stored = await audit.search();
      for (const e of [event, ...stored]) {
        const json = JSON.stringify(e);
        for (const secret of ['SECRET', 'hunter2', '123456', 'secretkeymaterial', 'PRIVATE KEY']) {
          assert.ok(!json.includes(secret), `${secret} leaked: ${json}`);
        }
      }
      assert.deepEqual(stored[0]?.redacted?.slice().sort(), [
        'message',
        'nested.deeper[0].apiKey',
        'otp',
        'password',
        'private_key',
        'target.join_token',
        'target.token',
      ]);
      assert.deepEqual((stored[0] as Record<string, unknown>).target, { user: 'bob' });
      assert.equal(
        (stored[0] as Record<string, unknown>).nested,
        undefined,
        'fields outside the schema are dropped',
      );
    });

    test('emit drops fields the type does not define and ignores caller-supplied id, code and time', async (t) => {
      const { audit } = await open(t);
      const event = await audit.emit({
        type: 'role.deleted',
        name: 'dev',
        id: 'forged',
        code: 'W9999I',
        time: '1999-01-01T00:00:00.000Z',
        whatever: 1,
      } as AuditEventInput);
      assert.notEqual(event.id, 'forged');
      assert.equal(event.code, 'W3002I');
      assert.equal(event.time, '2026-01-01T00:00:00.000Z');
      assert.equal((event as Record<string, unknown>).whatever, undefined);
      assert.equal(event.redacted, undefined);
    });

    test('long strings are cut to a bounded length', async (t) => {
      const { audit } = await open(t);
      const event = await audit.emit({ type: 'user.login', success: false, user: 'x'.repeat(100_000) });
      const [stored] = await audit.search();
      assert.equal(stored?.user?.length, MAX_AUDIT_STRING + 1);
      assert.deepEqual(stored, event);
    });

    test('search filters by time range (from inclusive, to exclusive)', async (t) => {
      const { audit, clock } = await open(t);
      const ids = await seed(audit, clock);
      const asc = { order: 'asc' } as const;
      const at = (s: number) => new Date(T0 + s * 1000).toISOString();
      assert.deepEqual(
        (await audit.search({ ...asc, from: at(1), to: at(3) })).map((e) => e.id),
        ids.slice(1, 3),
      );
      assert.deepEqual(
        (await audit.search({ ...asc, from: new Date(T0 + 4000) })).map((e) => e.id),
        ids.slice(4),
      );
      assert.deepEqual(
        (await audit.search({ ...asc, to: at(1) })).map((e) => e.id),
        ids.slice(0, 1),
      );
      assert.deepEqual(await audit.search({ from: at(10) }), []);
      assert.deepEqual(
        (await audit.search({ ...asc, from: '2026-01-01T01:00:02+01:00' })).map((e) => e.id),
        ids.slice(2),
        'offsets are honoured',
      );
    });

    test('search filters by types, user and device, alone and combined', async (t) => {
      const { audit, clock } = await open(t);
      const ids = await seed(audit, clock);
      const q = async (query: Parameters<AuditLog['search']>[0]) =>
        (await audit.search({ order: 'asc', ...query })).map((e) => ids.indexOf(e.id));
      assert.deepEqual(await q({ types: ['user.login'] }), [0, 1]);
      assert.deepEqual(await q({ types: ['user.login', 'lock.created'] }), [0, 1, 5]);
      assert.deepEqual(await q({ types: [] }), [0, 1, 2, 3, 4, 5], 'an empty type list filters nothing');
      assert.deepEqual(await q({ user: 'alice' }), [0, 2, 5]);
      assert.deepEqual(await q({ user: 'nobody' }), []);
      assert.deepEqual(await q({ device: 'dev-1' }), [3], 'the device a user acted from');
      assert.deepEqual(await q({ device: 'dev-2' }), [4], 'the device an event is about');
      assert.deepEqual(await q({ user: 'bob', types: ['user.login'] }), [1]);
      assert.deepEqual(await q({ user: 'alice', from: new Date(T0 + 1000).toISOString() }), [2, 5]);
    });

    test('search orders by time then emission, newest first by default, and honours limit', async (t) => {
      const { audit, clock } = await open(t);
      const ids = await seed(audit, clock);
      clock.advance(-1000);
      const same = (await audit.emit({ type: 'role.updated', name: 'dev' })).id; // same time as ids[5]
      assert.deepEqual(
        (await audit.search()).map((e) => e.id),
        [same, ...ids.slice().reverse()],
      );
      assert.deepEqual(
        (await audit.search({ order: 'asc' })).map((e) => e.id),
        [...ids, same],
      );
      assert.deepEqual(
        (await audit.search({ limit: 2 })).map((e) => e.id),
        [same, ids[5]],
      );
      assert.deepEqual(
        (await audit.search({ limit: 2, order: 'asc' })).map((e) => e.id),
        ids.slice(0, 2),
      );
      clock.set(T0 - 60_000); // a clock that stepped back: ordered by time, not by emission
      const early = (await audit.emit({ type: 'role.updated', name: 'dev' })).id;
      assert.equal((await audit.search({ order: 'asc', limit: 1 }))[0]?.id, early);
    });

    test('search rejects bad queries', async (t) => {
      const { audit } = await open(t);
      await rejectsWith(audit.search({ limit: 0 }), 'WARDEN_ERR_BAD_PARAMETER');
      await rejectsWith(audit.search({ limit: 10_001 }), 'WARDEN_ERR_BAD_PARAMETER');
      await rejectsWith(audit.search({ limit: 1.5 }), 'WARDEN_ERR_BAD_PARAMETER');
      await rejectsWith(audit.search({ from: 'yesterday' }), 'WARDEN_ERR_BAD_PARAMETER');
      await rejectsWith(audit.search({ to: new Date(Number.NaN) }), 'WARDEN_ERR_BAD_PARAMETER');
      await rejectsWith(audit.search({ types: ['user.logon'] }), 'WARDEN_ERR_BAD_PARAMETER', /user\.logon/);
      await rejectsWith(audit.search({ order: 'sideways' as 'asc' }), 'WARDEN_ERR_BAD_PARAMETER');
      await rejectsWith(audit.search({ user: 7 as unknown as string }), 'WARDEN_ERR_BAD_PARAMETER');
    });

    test('search returns copies', async (t) => {
      const { audit } = await open(t);
      const event = await audit.emit({ type: 'role.created', name: 'dev' });
      event.user = 'mallory';
      const [first] = await audit.search();
      assert.ok(first);
      first.user = 'mallory';
      assert.equal((await audit.search())[0]?.user, undefined);
    });

    test('after close() emit and search fail with CLOSED', async (t) => {
      const { audit } = await open(t);
      await audit.close();
      await rejectsWith(audit.emit({ type: 'role.created', name: 'dev' }), 'WARDEN_ERR_CLOSED');
      await rejectsWith(audit.search(), 'WARDEN_ERR_CLOSED');
      await audit.close();
    });
  });
}
