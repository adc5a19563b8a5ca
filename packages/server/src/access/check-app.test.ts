import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type LockResource, presetRoles, type RoleResource } from '@warden/api';
import { policy, role } from '../../../../test/support/access-decisions';
import { decideAccess, type ResolvedIdentity } from './check';
import type { AppTarget } from './check-app';

const access = presetRoles().find((r) => r.metadata.name === 'access')!;
const DEVICE = { deviceId: 'd-1', assetTag: 'A1', credentialId: 'c-1' };
const grafana: AppTarget = { kind: 'app', name: 'grafana', labels: { env: 'prod' } };
const wiki: AppTarget = { kind: 'app', name: 'wiki', labels: { env: 'dev' } };

/** The guide's role: device trust required for env:production apps. */
const rtdApps = role('require-trusted-device-apps', {
  options: { device_trust_mode: 'required' },
  allow: { app_labels: { env: 'prod' } },
});

function alice(roles: RoleResource[], device?: typeof DEVICE): ResolvedIdentity {
  return { user: 'alice', roles, traits: {}, ...(device ? { device } : {}) };
}

const app = (id: ResolvedIdentity, target: AppTarget, p = policy()) => decideAccess<'app'>(p, id, target, {});

describe('RBAC and device trust for apps', () => {
  test('app_labels allow; deny app_labels win; no matching role is refused', () => {
    assert.deepEqual(app(alice([access]), grafana), {
      allowed: true,
      deviceTrustMode: 'off',
      matchedRoles: ['access'],
    });
    const devOnly = role('dev-apps', { allow: { app_labels: { env: 'dev' } } });
    const d = app(alice([devOnly]), grafana);
    assert.equal(d.allowed, false);
    assert.match(!d.allowed ? d.reason : '', /user "alice" may not access app "grafana" \(roles: dev-apps\)/);
    const noProd = role('no-prod', { deny: { app_labels: { env: 'prod' } } });
    const e = app(alice([access, noProd]), grafana);
    assert.equal(!e.allowed && e.step, 'rbac');
    assert.match(!e.allowed ? e.reason : '', /denied by role "no-prod"/);
    assert.equal(app(alice([access, noProd]), wiki).allowed, true);
    assert.equal(app(alice([role('nodes', { allow: { node_labels: { '*': '*' } } })]), wiki).allowed, false);
  });

  test('device trust per role: required for env:prod apps only, met by a trusted device', () => {
    const d = app(alice([access, rtdApps]), grafana);
    assert.equal(!d.allowed && d.step, 'device_trust');
    assert.equal(!d.allowed && d.reason, 'unauthorized device');
    assert.deepEqual(app(alice([access, rtdApps], DEVICE), grafana), {
      allowed: true,
      deviceTrustMode: 'required',
      matchedRoles: ['access', 'require-trusted-device-apps'],
    });
    assert.equal(app(alice([access, rtdApps]), wiki).allowed, true, 'the role does not match dev apps');
  });

  test('the cluster-wide mode does not apply to apps (role-based only), unlike databases', () => {
    const d = app(alice([access]), grafana, policy({ clusterDeviceTrustMode: 'required' }));
    assert.deepEqual(d, { allowed: true, deviceTrustMode: 'off', matchedRoles: ['access'] });
    const db = decideAccess<'db'>(
      policy({ clusterDeviceTrustMode: 'required' }),
      { ...alice([access]), traits: { db_users: ['a'], db_names: ['b'] } },
      { kind: 'db', name: 'orders', labels: {} },
      { dbUser: 'a', dbName: 'b' },
    );
    assert.equal(!db.allowed && db.step, 'device_trust');
  });

  test('locks on the user, a role or the device deny first', () => {
    const lock = (target: LockResource['spec']['target']): LockResource => ({
      kind: 'lock',
      version: 'v2',
      metadata: { name: '6f1e8f3e-3c55-4a8e-9b1a-0d6c3a1b2c3d' },
      spec: { target, message: 'security review' },
    });
    for (const target of [{ user: 'alice' }, { role: 'access' }, { device: 'd-1' }]) {
      const d = app(alice([access], DEVICE), grafana, policy({ locks: [lock(target)] }));
      assert.equal(!d.allowed && d.step, 'lock', JSON.stringify(target));
      assert.match(!d.allowed ? d.reason : '', /^lock targeting .* is in force: security review$/);
    }
    const strict = app(
      alice([access]),
      grafana,
      policy({ lockingMode: 'strict', lockViewStaleForMs: 400_000 }),
    );
    assert.equal(!strict.allowed && strict.step, 'lock');
  });
});
