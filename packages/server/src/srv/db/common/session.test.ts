import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { test } from 'node:test';
import type { AuditEvent, AuditEventInput } from '@warden/api';
import { makeIdentity } from '../../../access';
import type { AuditLog } from '../../../audit';
import { FakeClock } from '../../../clock';
import { silentLogger } from '../../../log';
import { DbSession, MAX_UNWRITTEN_QUERIES } from './session';
import type { UpstreamCredentials } from './upstream';

/** Test double: an audit log whose writes complete only when the test says so. */
class SlowAuditLogDouble implements AuditLog {
  readonly pending: { event: AuditEventInput; done(): void }[] = [];
  emit(event: AuditEventInput): Promise<AuditEvent> {
    return new Promise((resolve) =>
      this.pending.push({ event, done: () => resolve(event as unknown as AuditEvent) }),
    );
  }
  async search(): Promise<AuditEvent[]> {
    return [];
  }
  async close(): Promise<void> {}
}

test('db session: past MAX_UNWRITTEN_QUERIES unwritten statements, the engine is told to wait', async () => {
  const audit = new SlowAuditLogDouble();
  const session = sessionWith(audit, { checkAccess: () => assert.fail('not asked in this test') });
  for (let i = 0; i < MAX_UNWRITTEN_QUERIES - 1; i++) session.query({ query: `select ${i}` });
  assert.equal(session.auditBacklog(), undefined, 'below the bound: no wait');
  session.query({ query: 'select last' });
  const wait = session.auditBacklog();
  assert.ok(wait, 'at the bound the engine must wait');
  assert.equal(session.auditBacklog(), wait, 'one promise for every asker');
  let resolved = false;
  void wait.then(() => {
    resolved = true;
  });
  await new Promise((r) => setImmediate(r));
  assert.equal(resolved, false);
  audit.pending[0]!.done();
  await wait;
  assert.equal(session.auditBacklog(), undefined);
  assert.equal(audit.pending.length, MAX_UNWRITTEN_QUERIES, 'every statement was handed to the log');
});

/** Test double: an audit log with a statement writer that records, or refuses, what it gets. */
class StatementAuditLogDouble extends SlowAuditLogDouble {
  readonly bases: unknown[] = [];
  readonly written: unknown[] = [];
  refuse = false;
  statements(base: unknown) {
    this.bases.push(base);
    return {
      write: (s: unknown, done: (e?: unknown) => void) => {
        if (this.refuse) return done(new Error('disk full'));
        this.written.push(s);
        done();
      },
    };
  }
}

/** A session of alice on db "orders" over a stream nothing reads (access allowed unless `checker` says). */
function sessionWith(
  audit: AuditLog,
  checker: { checkAccess(...args: unknown[]): unknown } = { checkAccess: () => ({ allowed: true }) },
): DbSession {
  const session = new DbSession(
    {
      stream: new PassThrough(),
      db: {
        kind: 'db',
        version: 'v3',
        metadata: { name: 'orders' },
        spec: { protocol: 'postgres', uri: '127.0.0.1:5432' },
      } as never,
      identity: makeIdentity({ user: 'alice', roles: ['dev'] }),
      clientAddr: '127.0.0.1',
    },
    {
      clock: new FakeClock(),
      audit,
      logger: silentLogger,
      checker: checker as never,
      credentials: {} as UpstreamCredentials,
    },
  );
  return session;
}

test('db session: statements go through the audit log’s session writer, asked once', async () => {
  const audit = new StatementAuditLogDouble();
  const session = sessionWith(audit);
  await session.authorize({ dbUser: 'alice', dbName: 'orders' });
  session.query({ query: 'select 1' });
  session.query({ query: 'select $1', parameters: ['x'], statement: 's' });
  await new Promise((r) => setImmediate(r));
  assert.equal(audit.bases.length, 1);
  assert.deepEqual(audit.bases[0], {
    type: 'db.query',
    success: true,
    user: 'alice',
    addr: '127.0.0.1',
    protocol: 'db',
    resource: { kind: 'db', name: 'orders' },
    db_user: 'alice',
    db_name: 'orders',
    session_id: session.id,
  });
  assert.deepEqual(audit.written, [
    { query: 'select 1' },
    { query: 'select $1', parameters: ['x'], statement: 's' },
  ]);
  assert.equal(audit.pending.length, 0, 'nothing through emit');
  assert.equal(session.auditBacklog(), undefined);
});

test('db session: a statement the audit log refuses ends the session (fail closed)', async () => {
  const audit = new StatementAuditLogDouble();
  audit.refuse = true;
  const session = sessionWith(audit);
  await session.authorize({ dbUser: 'alice', dbName: 'orders' });
  const ended: string[] = [];
  session.onTerminate((m) => ended.push(m));
  session.query({ query: 'select 1' });
  await new Promise((r) => setImmediate(r));
  assert.equal(ended.length, 1);
  assert.match(ended[0]!, /audit log could not record this \(db\.query\)/);
  assert.equal(session.auditBacklog(), undefined, 'the statement no longer counts as unwritten');
});
