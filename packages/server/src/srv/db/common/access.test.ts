import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type DbResource, presetRoles, type RoleResource } from '@warden/api';
import { makeIdentity } from '../../../access';
import { FakeClock } from '../../../clock';
import { DbAccess } from './access';

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

function access(roles: RoleResource[], deviceTrustMode = 'off') {
  return new DbAccess({
    clock: new FakeClock(Date.UTC(2026, 0, 1)),
    roles: async (names) => roles.filter((r) => names.includes(r.metadata.name)),
    clusterSettings: async () => ({ deviceTrustMode, lockingMode: 'best_effort' }),
    locks: { values: () => [], staleForMs: () => 0 },
  });
}

test('reachable lists the databases some role allows, with expanded db users and names', async () => {
  const a = access([
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
  assert.deepEqual(await a.reachable(identity, dbs), [
    { name: 'orders', protocol: 'postgres', labels: { env: 'prod' }, db_users: ['reader'], db_names: ['*'] },
  ]);
  const withAccess = makeIdentity({
    user: 'alice',
    roles: ['access'],
    traits: { db_users: ['alice'], db_names: ['app'] },
  });
  const listed = await a.reachable(withAccess, dbs);
  assert.deepEqual(
    listed.map((d) => [d.name, d.db_users, d.db_names]),
    [
      ['billing', ['alice'], ['app']],
      ['dev', ['alice'], ['app']],
      ['orders', ['alice'], ['app']],
    ],
  );
  assert.deepEqual(await a.reachable(makeIdentity({ user: 'x', roles: ['missing'] }), dbs), []);
});

test('decide runs the shared checker with the cluster mode and the identity’s device', async () => {
  const a = access(presetRoles(), 'required');
  const identity = makeIdentity({
    user: 'alice',
    roles: ['access'],
    traits: { db_users: ['alice'], db_names: ['orders'] },
  });
  const db = dbOf('orders', {});
  const denied = await a.decide(identity, db, { dbUser: 'alice', dbName: 'orders' });
  assert.equal(denied.allowed, false);
  assert.equal(!denied.allowed && denied.reason, 'unauthorized device');
  const device = { deviceId: 'd', assetTag: 'a', credentialId: 'c' };
  assert.equal(
    (await a.decide({ ...identity, device }, db, { dbUser: 'alice', dbName: 'orders' })).allowed,
    true,
  );
});
