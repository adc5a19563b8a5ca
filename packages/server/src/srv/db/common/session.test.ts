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
      checker: { checkAccess: () => assert.fail('not asked in this test') },
      credentials: {} as UpstreamCredentials,
    },
  );
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
