import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type DbResource, presetRoles, type RoleResource } from '@warden/api';
import { AccessChecker, makeIdentity } from '../../../access';
import { FakeClock } from '../../../clock';
import { dbTarget, reachableDbs } from './access';

const dbOf = (name: string, labels: Record<string, string>): DbResource => ({
  kind: 'db',
  version: 'v3',
  metadata: { name, labels },
  spec: { protocol: 'postgres', uri: 'h:5432' },
});
const role = (name: string, spec: Partial<RoleResource['spec']>): RoleResource => ({
  kind: 'role',
  version: 'v7',
  metadata: { name },
  spec: { options: {}, allow: {}, deny: {}, ...spec },
});

/** The process's checker over a fixed role set, no locks, and the given cluster mode. */
function checker(roles: RoleResource[], deviceTrustMode = 'off') {
  return new AccessChecker({
    clock: new FakeClock(Date.UTC(2026, 0, 1)),
    locks: { values: () => [], staleForMs: () => 0 },
    role: (name) => roles.find((r) => r.metadata.name === name),
    clusterSettings: () => ({ deviceTrustMode, lockingMode: 'best_effort' }),
  });
}

test('reachableDbs lists the databases some role allows, with expanded db users and names', () => {
  const a = checker([
    ...presetRoles(),
    role('no-billing', { deny: { db_labels: { team: 'billing' } } }),
    role('reader', { allow: { db_labels: { env: 'prod' }, db_users: ['reader'], db_names: ['*'] } }),
  ]);
  const dbs = [
    dbOf('orders', { env: 'prod' }),
    dbOf('billing', { team: 'billing' }),
    dbOf('dev', { env: 'dev' }),
  ];
  const identity = makeIdentity({ user: 'alice', roles: ['reader', 'no-billing'] });
  assert.deepEqual(reachableDbs(a.resolve(identity), dbs), [
    { name: 'orders', protocol: 'postgres', labels: { env: 'prod' }, db_users: ['reader'], db_names: ['*'] },
  ]);
  const withAccess = makeIdentity({
    user: 'alice',
    roles: ['access'],
    traits: { db_users: ['alice'], db_names: ['app'] },
  });
  const listed = reachableDbs(a.resolve(withAccess), dbs);
  assert.deepEqual(
    listed.map((d) => [d.name, d.db_users, d.db_names]),
    [
      ['billing', ['alice'], ['app']],
      ['dev', ['alice'], ['app']],
      ['orders', ['alice'], ['app']],
    ],
  );
  // A role deleted since the certificate was issued grants nothing.
  assert.deepEqual(reachableDbs(a.resolve(makeIdentity({ user: 'x', roles: ['missing'] })), dbs), []);
});

test('the checker decides on dbTarget(db) with the cluster mode and the identity’s device', () => {
  const a = checker(presetRoles(), 'required');
  const identity = makeIdentity({
    user: 'alice',
    roles: ['access'],
    traits: { db_users: ['alice'], db_names: ['orders'] },
  });
  const db = dbOf('orders', {});
  const denied = a.checkAccess<'db'>(identity, dbTarget(db), { dbUser: 'alice', dbName: 'orders' });
  assert.equal(denied.allowed, false);
  assert.equal(!denied.allowed && denied.reason, 'unauthorized device');
  const device = { deviceId: 'd', assetTag: 'a', credentialId: 'c' };
  assert.equal(
    a.checkAccess<'db'>({ ...identity, device }, dbTarget(db), { dbUser: 'alice', dbName: 'orders' }).allowed,
    true,
  );
});
