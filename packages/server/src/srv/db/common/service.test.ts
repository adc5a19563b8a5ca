/**
 * db_service and the process's SessionMonitor: every served session registers, a lock event
 * ends exactly the matching sessions (synchronously, in the delivery of the change: there is
 * no other trigger here), a session ending on its own leaves the monitor, strict mode with a
 * stale view ends everything. The engines' own messages (FATAL, ERR 1927) are tested against
 * PostgreSQL and MariaDB in test/db/.
 */
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { test } from 'node:test';
import type { DbResource, LockResource } from '@warden/api';
import { manualChanges } from '../../../../../../test/support/manual-changes';
import { AccessChecker, type Identity, makeIdentity, SessionMonitor } from '../../../access';
import { MemoryAuditLog } from '../../../audit';
import { FakeClock } from '../../../clock';
import { silentLogger } from '../../../log';
import { DbService } from './service';
import type { DbEngine } from './types';

const db: DbResource = {
  kind: 'db',
  version: 'v3',
  metadata: { name: 'orders' },
  spec: { protocol: 'postgres', uri: '127.0.0.1:5432' },
};

function lock(name: string, target: LockResource['spec']['target'], expires?: string): LockResource {
  return {
    kind: 'lock',
    version: 'v2',
    metadata: { name },
    spec: { target, message: 'incident', ...(expires ? { expires } : {}) },
  };
}

/**
 * Test double for an engine: holds each session open until the service ends it (its
 * `onTerminate`) or the client stream closes, recording the message it would send.
 */
class HoldingEngineDouble implements DbEngine {
  readonly protocol = 'postgres' as const;
  /** user → the message the session was ended with. */
  readonly ended = new Map<string, string>();
  async serve(stream: PassThrough, session: Parameters<DbEngine['serve']>[1]): Promise<void> {
    await new Promise<void>((resolve) => {
      session.onTerminate((reason) => {
        this.ended.set(session.identity.user, reason);
        resolve();
      });
      stream.once('close', () => resolve());
    });
  }
  async refuse(): Promise<void> {}
}

function setup(opts: { lockingMode?: string; stale?: number } = {}) {
  const clock = new FakeClock(Date.UTC(2026, 0, 1));
  let locks: LockResource[] = [];
  const changes = manualChanges();
  const checker = new AccessChecker({
    clock,
    locks: { values: () => locks, staleForMs: () => opts.stale ?? 0 },
    role: () => undefined,
    clusterSettings: () => ({ deviceTrustMode: 'off', lockingMode: opts.lockingMode ?? 'best_effort' }),
    lockMaxStalenessMs: 60_000,
  });
  // The only trigger: the test delivers the lock view's change.
  const monitor = new SessionMonitor({
    checker,
    clock,
    logger: silentLogger,
    changes: [changes.source],
  });
  const engine = new HoldingEngineDouble();
  const service = new DbService({
    clock,
    logger: silentLogger,
    audit: new MemoryAuditLog({ clock }),
    checker,
    monitor,
    issuer: { issueClientCert: async () => ({ certPem: '', notAfter: new Date(0) }), caPems: () => [] },
    engines: [engine],
    listDbs: async () => [db],
  });
  const serve = (identity: Identity) => {
    const stream = new PassThrough();
    service.serve({ stream, db, identity, clientAddr: '127.0.0.1' });
    return stream;
  };
  return {
    monitor,
    engine,
    service,
    serve,
    /** Replaces the lock view and delivers its change, as the watch does. */
    setLocks(l: LockResource[]) {
      locks = l;
      changes.deliver('the monitor subscribed');
    },
    close() {
      service.close();
      monitor.close();
    },
  };
}

/** Lets the monitor's registration check and the service's clean-up run. */
const settle = () => new Promise((r) => setImmediate(r));

test('a lock event ends exactly the matching db sessions, at its delivery', async () => {
  const t = setup();
  t.serve(makeIdentity({ user: 'alice', roles: ['dev'] }));
  t.serve(
    makeIdentity({
      user: 'bob',
      roles: ['ops'],
      device: { deviceId: 'd1', assetTag: 'a', credentialId: 'c' },
    }),
  );
  t.serve(makeIdentity({ user: 'carol', roles: ['ops'] }));
  await settle();
  assert.equal(t.monitor.size, 3, 'every served session is registered');

  t.setLocks([lock('00000000-0000-4000-8000-000000000001', { user: 'alice' })]);
  assert.deepEqual([...t.engine.ended], [['alice', 'lock targeting User:"alice" is in force: incident']]);
  assert.equal(t.monitor.size, 2);

  t.setLocks([lock('00000000-0000-4000-8000-000000000002', { device: 'd1' })]);
  assert.equal(t.engine.ended.get('bob'), 'lock targeting Device:"d1" is in force: incident');
  t.setLocks([lock('00000000-0000-4000-8000-000000000003', { role: 'ops' })]);
  assert.equal(t.engine.ended.get('carol'), 'lock targeting Role:"ops" is in force: incident');
  assert.equal(t.monitor.size, 0);
  await settle();
  assert.equal(t.service.liveSessions, 0);
  t.close();
});

test('a session that ends on its own leaves the monitor; one locked when it arrives is ended', async () => {
  const t = setup();
  const stream = t.serve(makeIdentity({ user: 'dave' }));
  await settle();
  assert.equal(t.monitor.size, 1);
  stream.destroy();
  await settle();
  assert.equal(t.monitor.size, 0, 'unregistered when the engine finished');
  assert.equal(t.engine.ended.size, 0);

  t.setLocks([lock('00000000-0000-4000-8000-000000000004', { user: 'erin' })]);
  t.serve(makeIdentity({ user: 'erin' }));
  await settle();
  assert.equal(t.engine.ended.get('erin'), 'lock targeting User:"erin" is in force: incident');
  t.close();
});

test('an expired lock ends nothing; strict mode with a stale view ends everything', async () => {
  const t = setup();
  t.serve(makeIdentity({ user: 'alice' }));
  await settle();
  t.setLocks([lock('00000000-0000-4000-8000-000000000005', { user: 'alice' }, '2025-01-01T00:00:00Z')]);
  assert.equal(t.engine.ended.size, 0);
  assert.equal(t.monitor.size, 1);
  t.close();

  const strict = setup({ lockingMode: 'strict', stale: 10 * 60_000 });
  strict.serve(makeIdentity({ user: 'bob' }));
  await settle();
  assert.match(strict.engine.ended.get('bob') ?? '', /lock view is stale and locking_mode is strict/);
  strict.close();
});
