import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type LockResource, presetRoles, type RoleResource } from '@warden/api';
import { policy, role } from '../../../../test/support/access-decisions';
import { type DbTarget, decideAccess, type ResolvedIdentity } from './check';

const access = presetRoles().find((r) => r.metadata.name === 'access')!;
const rtd = presetRoles().find((r) => r.metadata.name === 'require-trusted-device')!;

const DEVICE = { deviceId: 'd-1', assetTag: 'A1', credentialId: 'c-1' };
const orders: DbTarget = { kind: 'db', name: 'orders', labels: { env: 'prod' } };

function alice(roles: RoleResource[], device?: typeof DEVICE): ResolvedIdentity {
  const id: ResolvedIdentity = {
    user: 'alice',
    roles,
    traits: { logins: ['alice'], db_users: ['alice', 'reader'], db_names: ['orders'] },
  };
  if (device) id.device = device;
  return id;
}

function denied(d: ReturnType<typeof decideAccess>) {
  assert.equal(d.allowed, false, 'expected a denial');
  return d as Extract<typeof d, { allowed: false }>;
}

describe('RBAC for databases', () => {
  test('the access preset allows the db users and names of the user’s traits', () => {
    assert.deepEqual(
      decideAccess(policy(), alice([access]), orders, { dbUser: 'reader', dbName: 'orders' }),
      {
        allowed: true,
        deviceTrustMode: 'off',
        matchedRoles: ['access'],
      },
    );
  });

  test('a db user or name not granted is denied with the reason psql shows', () => {
    const d = denied(
      decideAccess(policy(), alice([access]), orders, { dbUser: 'postgres', dbName: 'orders' }),
    );
    assert.equal(d.step, 'rbac');
    assert.equal(d.code, 'WARDEN_ERR_ACCESS_DENIED');
    assert.equal(
      d.reason,
      'access to db denied: user "alice" may not connect to db "orders" as db user "postgres" (database "orders") (roles: access)',
    );
    assert.equal(
      decideAccess(policy(), alice([access]), orders, { dbUser: 'alice', dbName: 'postgres' }).allowed,
      false,
    );
  });

  test('labels, user and name must match in the same role; wildcards and globs', () => {
    const staging = role('staging', {
      allow: { db_labels: { env: 'staging' }, db_users: ['*'], db_names: ['*'] },
    });
    assert.equal(
      decideAccess(policy(), alice([staging]), orders, { dbUser: 'x', dbName: 'y' }).allowed,
      false,
    );
    const prod = role('prod', {
      allow: { db_labels: { env: 'prod' }, db_users: ['app_*'], db_names: ['*'] },
    });
    assert.equal(
      decideAccess(policy(), alice([prod]), orders, { dbUser: 'app_ro', dbName: 'y' }).allowed,
      true,
    );
    assert.equal(
      decideAccess(policy(), alice([prod]), orders, { dbUser: 'xapp_ro', dbName: 'y' }).allowed,
      false,
    );
    const usersOnly = role('u', { allow: { db_labels: { '*': '*' }, db_users: ['root'] } });
    const namesOnly = role('n', { allow: { db_labels: { '*': '*' }, db_users: ['alice'], db_names: ['*'] } });
    assert.equal(
      decideAccess(policy(), alice([usersOnly, namesOnly]), orders, { dbUser: 'root', dbName: 'orders' })
        .allowed,
      false,
    );
    const noLabels = role('nl', { allow: { db_users: ['*'], db_names: ['*'] } });
    assert.equal(
      decideAccess(policy(), alice([noLabels]), orders, { dbUser: 'a', dbName: 'b' }).allowed,
      false,
    );
  });

  test('an empty db user or name is denied; an absent name (MySQL) skips db_names', () => {
    assert.equal(
      decideAccess(policy(), alice([access]), orders, { dbUser: '', dbName: 'orders' }).allowed,
      false,
    );
    assert.equal(
      decideAccess(policy(), alice([access]), orders, { dbUser: 'alice', dbName: '' }).allowed,
      false,
    );
    assert.equal(
      decideAccess(policy(), alice([access]), orders, { dbUser: 'alice', dbName: undefined }).allowed,
      true,
    );
  });

  test('deny rules win: users and names everywhere, or under deny labels; labels alone deny the db', () => {
    const noReader = role('no-reader', { deny: { db_users: ['reader'] } });
    const d = denied(
      decideAccess(policy(), alice([access, noReader]), orders, { dbUser: 'reader', dbName: 'orders' }),
    );
    assert.match(d.reason, /^access to db denied: .*\(denied by role "no-reader"\)$/);
    assert.equal(
      decideAccess(policy(), alice([access, noReader]), orders, { dbUser: 'alice', dbName: 'orders' })
        .allowed,
      true,
    );
    const noOrdersDb = role('no-orders', { deny: { db_names: ['{{internal.db_names}}'] } });
    assert.equal(
      decideAccess(policy(), alice([access, noOrdersDb]), orders, { dbUser: 'alice', dbName: 'orders' })
        .allowed,
      false,
    );
    const noProd = role('no-prod', { deny: { db_labels: { env: 'prod' } } });
    assert.equal(
      decideAccess(policy(), alice([access, noProd]), orders, { dbUser: 'alice', dbName: 'orders' }).allowed,
      false,
    );
    const dev = { ...orders, labels: { env: 'dev' } };
    assert.equal(
      decideAccess(policy(), alice([access, noProd]), dev, { dbUser: 'alice', dbName: 'orders' }).allowed,
      true,
    );
    const noProdReader = role('npr', { deny: { db_labels: { env: 'prod' }, db_users: ['*'] } });
    assert.equal(
      decideAccess(policy(), alice([access, noProdReader]), dev, { dbUser: 'alice', dbName: 'orders' })
        .allowed,
      true,
    );
  });

  test('a request that does not fit the target is denied', () => {
    assert.equal(decideAccess(policy(), alice([access]), orders, { login: 'alice' } as never).allowed, false);
    assert.equal(
      decideAccess(policy(), alice([access]), { kind: 'node', id: 'n', hostname: 'n', labels: {} }, {
        dbUser: 'alice',
        dbName: 'orders',
      } as never).allowed,
      false,
    );
  });
});

describe('locks and device trust for databases', () => {
  const lock = (target: LockResource['spec']['target'], message?: string): LockResource => ({
    kind: 'lock',
    version: 'v2',
    metadata: { name: '00000000-0000-4000-8000-000000000001' },
    spec: { target, ...(message ? { message } : {}) },
  });

  test('locks on the user, a role or the device deny with the lock message', () => {
    const p = policy({ locks: [lock({ user: 'alice' }, 'incident 7')] });
    const d = denied(decideAccess(p, alice([access]), orders, { dbUser: 'alice', dbName: 'orders' }));
    assert.equal(d.step, 'lock');
    assert.equal(d.reason, 'lock targeting User:"alice" is in force: incident 7');
    const byDevice = policy({ locks: [lock({ device: 'd-1' })] });
    assert.equal(
      decideAccess(byDevice, alice([access], DEVICE), orders, { dbUser: 'alice', dbName: 'orders' }).allowed,
      false,
    );
    assert.equal(
      decideAccess(byDevice, alice([access]), orders, { dbUser: 'alice', dbName: 'orders' }).allowed,
      true,
    );
    // A node lock with the db's name does not lock the db.
    const nodeLock = policy({ locks: [lock({ node: 'orders' })] });
    assert.equal(
      decideAccess(nodeLock, alice([access]), orders, { dbUser: 'alice', dbName: 'orders' }).allowed,
      true,
    );
  });

  test('cluster mode required: unauthorized device without extensions, allowed with them', () => {
    const p = policy({ clusterDeviceTrustMode: 'required' });
    const d = denied(decideAccess(p, alice([access]), orders, { dbUser: 'alice', dbName: 'orders' }));
    assert.equal(d.step, 'device_trust');
    assert.equal(d.reason, 'unauthorized device');
    assert.equal(
      decideAccess(p, alice([access], DEVICE), orders, { dbUser: 'alice', dbName: 'orders' }).allowed,
      true,
    );
  });

  test('role mode counts roles whose db_labels match this db', () => {
    const rtdDb = role('rtd-db', {
      options: { device_trust_mode: 'required' },
      allow: { db_labels: { env: 'prod' } },
    });
    assert.equal(
      decideAccess(policy(), alice([access, rtdDb]), orders, { dbUser: 'alice', dbName: 'orders' }).allowed,
      false,
    );
    const dev = { ...orders, labels: { env: 'dev' } };
    assert.equal(
      decideAccess(policy(), alice([access, rtdDb]), dev, { dbUser: 'alice', dbName: 'orders' }).allowed,
      true,
    );
    const rtdNodes = role('rtd-nodes', {
      options: { device_trust_mode: 'required' },
      allow: { node_labels: { '*': '*' } },
    });
    assert.equal(
      decideAccess(policy(), alice([access, rtdNodes]), orders, { dbUser: 'alice', dbName: 'orders' })
        .allowed,
      true,
    );
    const d = denied(
      decideAccess(policy(), alice([access, rtd]), orders, { dbUser: 'alice', dbName: 'orders' }),
    );
    assert.equal(d.reason, 'unauthorized device');
  });
});
