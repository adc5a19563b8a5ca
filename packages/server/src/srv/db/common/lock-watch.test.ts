import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { test } from 'node:test';
import type { DbResource, LockResource } from '@warden/api';
import { type Identity, makeIdentity } from '../../../access';
import { MemoryAuditLog } from '../../../audit';
import { FakeClock } from '../../../clock';
import { DbAccess } from './access';
import { LockWatch } from './lock-watch';
import { DbSession } from './session';
import { UpstreamCredentials } from './upstream';

const quiet = { debug() {}, info() {}, warn() {}, error() {} };
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

function setup(opts: { lockingMode?: string; stale?: number } = {}) {
  const clock = new FakeClock(Date.UTC(2026, 0, 1));
  let locks: LockResource[] = [];
  const listeners = new Set<() => void>();
  const access = new DbAccess({
    clock,
    roles: async () => [],
    clusterSettings: async () => ({ deviceTrustMode: 'off', lockingMode: opts.lockingMode ?? 'best_effort' }),
    locks: { values: () => locks, staleForMs: () => opts.stale ?? 0 },
  });
  const watch = new LockWatch({
    access,
    logger: quiet,
    onLocksChange: (fn) => {
      listeners.add(fn);
      return () => listeners.delete(fn);
    },
    intervalMs: 60_000,
  });
  const audit = new MemoryAuditLog({ clock });
  const session = (identity: Identity) => {
    const s = new DbSession(
      { stream: new PassThrough(), db, identity, clientAddr: '127.0.0.1' },
      {
        clock,
        audit,
        logger: quiet,
        access,
        credentials: new UpstreamCredentials({
          issuer: { issueClientCert: async () => ({ certPem: '', notAfter: new Date(0) }), caPems: () => [] },
          clock,
        }),
      },
    );
    const ended: string[] = [];
    s.onTerminate((reason) => ended.push(reason));
    watch.add(s);
    return { s, ended };
  };
  return {
    clock,
    watch,
    session,
    setLocks(l: LockResource[]) {
      locks = l;
      for (const fn of listeners) fn();
    },
  };
}

test('a lock on the user, a role or the device ends exactly the matching sessions', async () => {
  const t = setup();
  const alice = t.session(makeIdentity({ user: 'alice', roles: ['dev'], traits: {} }));
  const bob = t.session(
    makeIdentity({
      user: 'bob',
      roles: ['ops'],
      traits: {},
      device: { deviceId: 'd1', assetTag: 'a', credentialId: 'c' },
    }),
  );
  const carol = t.session(makeIdentity({ user: 'carol', roles: ['ops'], traits: {} }));
  t.setLocks([lock('00000000-0000-4000-8000-000000000001', { user: 'alice' })]);
  await t.watch.check();
  assert.deepEqual(alice.ended, ['lock targeting User:"alice" is in force: incident']);
  assert.deepEqual(bob.ended, []);
  t.setLocks([lock('00000000-0000-4000-8000-000000000002', { device: 'd1' })]);
  await t.watch.check();
  assert.deepEqual(bob.ended, ['lock targeting Device:"d1" is in force: incident']);
  assert.deepEqual(carol.ended, []);
  assert.equal(t.watch.size, 1);
  t.watch.close();
});

test('an expired lock ends nothing; strict mode with a stale view ends everything', async () => {
  const t = setup();
  const a = t.session(makeIdentity({ user: 'alice', roles: [], traits: {} }));
  t.setLocks([lock('00000000-0000-4000-8000-000000000003', { user: 'alice' }, '2025-01-01T00:00:00Z')]);
  await t.watch.check();
  assert.deepEqual(a.ended, []);
  t.watch.close();

  const strict = setup({ lockingMode: 'strict', stale: 10 * 60_000 });
  const b = strict.session(makeIdentity({ user: 'bob', roles: [], traits: {} }));
  await strict.watch.check();
  assert.match(b.ended[0] ?? '', /lock view is stale and locking_mode is strict/);
  strict.watch.close();
});
