import assert from 'node:assert/strict';
import { afterEach, describe, test } from 'node:test';
import {
  isWardenError,
  type LockResource,
  parseResources,
  presetRoles,
  type RoleResource,
} from '@warden/api';
import { NOW, policy, role } from '../../../../test/support/access-decisions';
import { MemoryBackend } from '../backend';
import { FakeClock } from '../clock';
import { createServices } from '../services';
import {
  AccessChecker,
  accessDeniedError,
  decideAccess,
  liveAccessChecker,
  type NodeTarget,
  type ResolvedIdentity,
} from './check';
import { makeIdentity, nodeLockTargets } from './identity';

const presets = Object.fromEntries(presetRoles().map((r) => [r.metadata.name, r])) as Record<
  string,
  RoleResource
>;
const access = presets.access!;
const rtdPreset = presets['require-trusted-device']!;

// The guide's roles, in full form.
const [guideRtd, rtdApps] = parseResources(`kind: role
version: v7
metadata:
  name: require-trusted-device
spec:
  options:
    device_trust_mode: "required"
  allow:
    logins: ['admin']
    kubernetes_groups: ['edit']
    node_labels:
      '*': '*'
---
kind: role
version: v7
metadata:
  name: require-trusted-device-apps
spec:
  options:
    device_trust_mode: "required"
  allow:
    app_labels:
      env: production
`) as [RoleResource, RoleResource];

const DEVICE = {
  deviceId: '9cdfc0ad-64b7-4d9c-this-is-an-example',
  assetTag: 'C00AA0AAAA0A',
  credentialId: 'cred-1',
};
const node: NodeTarget = {
  kind: 'node',
  id: '6a3c2f7e-1c7a-4c1b-9d1e-2b2f0c8f1a11',
  hostname: 'ip-172-31-35-170',
  labels: { env: 'production' },
};

function alice(roles: RoleResource[], device?: typeof DEVICE): ResolvedIdentity {
  const id: ResolvedIdentity = { user: 'alice', roles, traits: { logins: ['alice', 'ubuntu'] } };
  if (device) id.device = device;
  return id;
}

let lockSeq = 0;
function lock(
  target: LockResource['spec']['target'],
  extra: Partial<LockResource['spec']> = {},
): LockResource {
  lockSeq++;
  return {
    kind: 'lock',
    version: 'v2',
    metadata: { name: `00000000-0000-4000-8000-${String(lockSeq).padStart(12, '0')}` },
    spec: { target, ...extra },
  };
}

function denied(d: ReturnType<typeof decideAccess>) {
  assert.equal(d.allowed, false, 'expected a denial');
  return d as Extract<typeof d, { allowed: false }>;
}

describe('RBAC for nodes', () => {
  test('the access preset allows the user’s own logins on any node', () => {
    const d = decideAccess(policy(), alice([access]), node, { login: 'alice' });
    assert.deepEqual(d, { allowed: true, deviceTrustMode: 'off', matchedRoles: ['access'] });
    assert.equal(decideAccess(policy(), alice([access]), node, { login: 'ubuntu' }).allowed, true);
  });

  test('a login not granted is denied with the roles named', () => {
    const d = denied(decideAccess(policy(), alice([access]), node, { login: 'root' }));
    assert.equal(d.step, 'rbac');
    assert.equal(d.code, 'WARDEN_ERR_ACCESS_DENIED');
    assert.equal(
      d.reason,
      'access denied: user "alice" may not log in as "root" on node "ip-172-31-35-170" (roles: access)',
    );
  });

  test('labels must match', () => {
    const staging = role('staging', { allow: { logins: ['alice'], node_labels: { env: 'staging' } } });
    assert.equal(decideAccess(policy(), alice([staging]), node, { login: 'alice' }).allowed, false);
    const prod = role('prod', { allow: { logins: ['alice'], node_labels: { env: ['production'] } } });
    assert.equal(decideAccess(policy(), alice([prod]), node, { login: 'alice' }).allowed, true);
  });

  test('login and labels must come from the same role', () => {
    const loginsOnly = role('l', { allow: { logins: ['root'] } });
    const labelsOnly = role('n', { allow: { logins: ['alice'], node_labels: { '*': '*' } } });
    assert.equal(
      decideAccess(policy(), alice([loginsOnly, labelsOnly]), node, { login: 'root' }).allowed,
      false,
    );
  });

  test('no roles, empty login, wildcard login: denied', () => {
    assert.equal(decideAccess(policy(), alice([]), node, { login: 'alice' }).allowed, false);
    assert.equal(decideAccess(policy(), alice([access]), node, { login: '' }).allowed, false);
    const star = role('star', { allow: { logins: ['*'], node_labels: { '*': '*' } } });
    assert.equal(decideAccess(policy(), alice([star]), node, { login: '*' }).allowed, false);
  });

  test('deny rules win: denied logins, and labels-only denies', () => {
    const noRoot = role('no-ubuntu', { deny: { logins: ['ubuntu'] } });
    const d = denied(decideAccess(policy(), alice([access, noRoot]), node, { login: 'ubuntu' }));
    assert.match(d.reason, /may not log in as "ubuntu" .*\(denied by role "no-ubuntu"\)$/);
    assert.equal(decideAccess(policy(), alice([access, noRoot]), node, { login: 'alice' }).allowed, true);

    const noProd = role('no-prod', { deny: { node_labels: { env: 'production' } } });
    assert.equal(decideAccess(policy(), alice([access, noProd]), node, { login: 'alice' }).allowed, false);
    assert.equal(
      decideAccess(policy(), alice([access, noProd]), { ...node, labels: { env: 'dev' } }, { login: 'alice' })
        .allowed,
      true,
    );

    const templated = role('t', { deny: { logins: ['{{internal.logins}}'] } });
    assert.equal(decideAccess(policy(), alice([access, templated]), node, { login: 'alice' }).allowed, false);
  });
});

describe('device trust', () => {
  test('cluster mode required: no device → unauthorized device; with device → allowed', () => {
    const p = policy({ clusterDeviceTrustMode: 'required' });
    const d = denied(decideAccess(p, alice([access]), node, { login: 'alice' }));
    assert.equal(d.step, 'device_trust');
    assert.equal(d.reason, 'unauthorized device');
    assert.deepEqual(decideAccess(p, alice([access], DEVICE), node, { login: 'alice' }), {
      allowed: true,
      deviceTrustMode: 'required',
      matchedRoles: ['access'],
    });
  });

  test('required-for-humans: a person needs a device, a bot is let in without one (and the exemption is said)', () => {
    const p = policy({ clusterDeviceTrustMode: 'required-for-humans' });
    const person = denied(decideAccess(p, alice([access]), node, { login: 'alice' }));
    assert.equal(person.step, 'device_trust');
    assert.equal(person.reason, 'unauthorized device');
    const bot: ResolvedIdentity = { ...alice([access]), kind: 'bot' };
    assert.deepEqual(decideAccess(p, bot, node, { login: 'alice' }), {
      allowed: true,
      deviceTrustMode: 'required-for-humans',
      matchedRoles: ['access'],
      deviceExemption: 'bot',
    });
    // A bot that has a device needs no exemption; a person with one is simply allowed.
    assert.equal(decideAccess(p, { ...bot, device: DEVICE }, node, { login: 'alice' }).allowed, true);
    assert.equal(
      (decideAccess(p, { ...bot, device: DEVICE }, node, { login: 'alice' }) as { deviceExemption?: string })
        .deviceExemption,
      undefined,
    );
    assert.equal(decideAccess(p, alice([access], DEVICE), node, { login: 'alice' }).allowed, true);
  });

  test('required still applies to bots, and beats required-for-humans from a role', () => {
    const bot: ResolvedIdentity = { ...alice([access]), kind: 'bot' };
    const d = denied(
      decideAccess(policy({ clusterDeviceTrustMode: 'required' }), bot, node, { login: 'alice' }),
    );
    assert.equal(d.code, 'WARDEN_ERR_DEVICE_UNAUTHORIZED');
    const strictRole = role('strict', {
      options: { device_trust_mode: 'required' },
      allow: { node_labels: { '*': '*' } },
    });
    const p = policy({ clusterDeviceTrustMode: 'required-for-humans' });
    assert.equal(
      decideAccess(p, { ...bot, roles: [access, strictRole] }, node, { login: 'alice' }).allowed,
      false,
    );
    const humansRole = role('humans', {
      options: { device_trust_mode: 'required-for-humans' },
      allow: { node_labels: { '*': '*' } },
    });
    const q = policy({ clusterDeviceTrustMode: 'optional' });
    assert.equal(
      decideAccess(q, { ...bot, roles: [access, humansRole] }, node, { login: 'alice' }).allowed,
      true,
    );
    assert.equal(decideAccess(q, alice([access, humansRole]), node, { login: 'alice' }).allowed, false);
  });

  test('optional allows either way', () => {
    const p = policy({ clusterDeviceTrustMode: 'optional' });
    const d = decideAccess(p, alice([access]), node, { login: 'alice' });
    assert.equal(d.allowed && d.deviceTrustMode, 'optional');
  });

  test('unknown or missing-extension cases fail closed', () => {
    assert.equal(
      decideAccess(policy({ clusterDeviceTrustMode: 'sometimes' }), alice([access]), node, { login: 'alice' })
        .allowed,
      false,
    );
    const partial = { ...alice([access]), device: { ...DEVICE, credentialId: '' } };
    assert.equal(
      decideAccess(policy({ clusterDeviceTrustMode: 'required' }), partial, node, { login: 'alice' }).allowed,
      false,
    );
    const weird = role('weird', {
      options: { device_trust_mode: 'always' as 'required' },
      allow: { node_labels: { '*': '*' } },
    });
    const d = denied(decideAccess(policy(), alice([access, weird]), node, { login: 'alice' }));
    assert.equal(d.reason, 'unauthorized device');
  });

  test('the preset require-trusted-device role makes every node need a device', () => {
    assert.equal(
      denied(decideAccess(policy(), alice([access, rtdPreset]), node, { login: 'alice' })).reason,
      'unauthorized device',
    );
    assert.equal(
      decideAccess(policy(), alice([access, rtdPreset], DEVICE), node, { login: 'alice' }).allowed,
      true,
    );
  });

  test('the guide’s require-trusted-device role: its labels match, so any login needs a device', () => {
    assert.equal(decideAccess(policy(), alice([access, guideRtd]), node, { login: 'alice' }).allowed, false);
    assert.equal(
      decideAccess(policy(), alice([access, guideRtd], DEVICE), node, { login: 'admin' }).allowed,
      true,
    );
  });

  test('require-trusted-device-apps does not touch nodes', () => {
    const d = decideAccess(policy(), alice([access, rtdApps]), node, { login: 'alice' });
    assert.equal(d.allowed && d.deviceTrustMode, 'off');
  });

  test('a required role whose labels do not match this node does not count', () => {
    const stagingOnly = role('staging', {
      options: { device_trust_mode: 'required' },
      allow: { node_labels: { env: 'staging' } },
    });
    assert.equal(
      decideAccess(policy(), alice([access, stagingOnly]), node, { login: 'alice' }).allowed,
      true,
    );
    assert.equal(
      decideAccess(
        policy(),
        alice([access, stagingOnly]),
        { ...node, labels: { env: 'staging' } },
        { login: 'alice' },
      ).allowed,
      false,
    );
  });

  test('RBAC is checked before device trust', () => {
    const d = denied(
      decideAccess(policy({ clusterDeviceTrustMode: 'required' }), alice([access]), node, { login: 'root' }),
    );
    assert.equal(d.step, 'rbac');
  });
});

describe('locks come first', () => {
  test('a device lock denies with the guide message, even when everything else allows', () => {
    const l = lock({ device: DEVICE.deviceId });
    const d = denied(decideAccess(policy({ locks: [l] }), alice([access], DEVICE), node, { login: 'alice' }));
    assert.equal(d.step, 'lock');
    assert.equal(d.code, 'WARDEN_ERR_LOCKED');
    assert.equal(d.reason, 'lock targeting Device:"9cdfc0ad-64b7-4d9c-this-is-an-example" is in force');
    assert.equal(d.lock, l);
  });

  test('user, role, login and node locks; lock beats an RBAC denial', () => {
    for (const target of [
      { user: 'alice' },
      { role: 'access' },
      { login: 'alice' },
      { node: node.hostname },
      { node: node.id },
    ]) {
      const d = denied(
        decideAccess(policy({ locks: [lock(target)] }), alice([access]), node, { login: 'alice' }),
      );
      assert.equal(d.step, 'lock', JSON.stringify(target));
    }
    const d = denied(
      decideAccess(
        policy({ locks: [lock({ user: 'alice' }, { message: 'offboarding' })] }),
        alice([]),
        node,
        { login: 'x' },
      ),
    );
    assert.equal(d.reason, 'lock targeting User:"alice" is in force: offboarding');
  });

  test('expired and unrelated locks do not deny', () => {
    const locks = [
      lock({ user: 'alice' }, { expires: new Date(NOW - 1).toISOString() }),
      lock({ user: 'bob' }),
      lock({ device: 'other' }),
    ];
    assert.equal(
      decideAccess(policy({ locks }), alice([access], DEVICE), node, { login: 'alice' }).allowed,
      true,
    );
  });

  test('strict locking mode denies when the lock view is too stale', () => {
    const stale = policy({ lockingMode: 'strict', lockViewStaleForMs: 300_001 });
    const d = denied(decideAccess(stale, alice([access]), node, { login: 'alice' }));
    assert.equal(d.step, 'lock');
    assert.match(d.reason, /lock view is stale/);
    assert.equal(
      decideAccess(policy({ lockingMode: 'strict', lockViewStaleForMs: 300_000 }), alice([access]), node, {
        login: 'alice',
      }).allowed,
      true,
    );
    assert.equal(
      decideAccess(
        policy({ lockingMode: 'strict', lockViewStaleForMs: Number.POSITIVE_INFINITY }),
        alice([access]),
        node,
        { login: 'alice' },
      ).allowed,
      false,
    );
    assert.equal(
      decideAccess(policy({ lockViewStaleForMs: 10_000_000 }), alice([access]), node, { login: 'alice' })
        .allowed,
      true,
      'best effort',
    );
  });
});

describe('AccessChecker over live services', () => {
  let backend: MemoryBackend | undefined;
  afterEach(async () => {
    await backend?.close();
  });

  test('a lock created through the service ends access at once; deleting it restores it', async () => {
    const clock = new FakeClock(NOW);
    backend = new MemoryBackend({ clock, reapIntervalMs: 0 });
    const services = createServices({ backend, clock });
    const cache = services.lockCache();
    await cache.start();
    try {
      const checker = new AccessChecker({
        clock,
        locks: cache,
        role: (name) => presets[name],
        clusterSettings: () => ({ deviceTrustMode: 'off', lockingMode: 'strict' }),
      });
      const id = makeIdentity({
        user: 'alice',
        roles: ['access'],
        traits: { logins: ['alice'] },
        device: DEVICE,
      });
      assert.equal(checker.checkAccess(id, node, { login: 'alice' }).allowed, true);

      const l = await services.locks.create({
        kind: 'lock',
        version: 'v2',
        metadata: { name: '5444970a-39a0-4814-968d-e58b4a8fa686' },
        spec: { target: { device: DEVICE.deviceId }, expires: new Date(NOW + 12 * 3_600_000).toISOString() },
      });
      await cache.waitForRev(Number(l.metadata.revision));
      const d = checker.checkAccess(id, node, { login: 'alice' });
      assert.equal(d.allowed, false);
      const err = accessDeniedError(d as Extract<typeof d, { allowed: false }>);
      assert.ok(isWardenError(err, 'WARDEN_ERR_LOCKED'));
      assert.equal(err.message, 'lock targeting Device:"9cdfc0ad-64b7-4d9c-this-is-an-example" is in force');
      assert.equal(err.details?.lock, '5444970a-39a0-4814-968d-e58b4a8fa686');
      assert.equal(checker.lockReason(id)?.lock?.metadata.name, l.metadata.name);

      clock.advance(12 * 3_600_000);
      assert.equal(
        checker.checkAccess(id, node, { login: 'alice' }).allowed,
        true,
        'expired even before the reaper runs',
      );

      cache.close();
      clock.advance(300_001);
      assert.match(
        (checker.checkAccess(id, node, { login: 'alice' }) as { reason: string }).reason,
        /lock view is stale/,
      );
    } finally {
      cache.close();
    }
  });

  test('one rule for a role that no longer exists: it grants nothing, the decision names it', () => {
    const checker = new AccessChecker({
      clock: new FakeClock(NOW),
      locks: { values: () => [], staleForMs: () => 0 },
      role: (name) => presets[name],
      clusterSettings: () => ({ deviceTrustMode: 'off', lockingMode: 'best_effort' }),
    });
    const both = makeIdentity({ user: 'dave', roles: ['access', 'gone'], traits: { logins: ['root'] } });
    const d = checker.checkAccess(both, node, { login: 'root' });
    assert.deepEqual(d, {
      allowed: true,
      deviceTrustMode: 'off',
      matchedRoles: ['access'],
      missingRoles: ['gone'],
    });
    const onlyGone = makeIdentity({ user: 'dave', roles: ['gone'], traits: { logins: ['root'] } });
    const e = denied(checker.checkAccess(onlyGone, node, { login: 'root' }));
    assert.equal(e.step, 'rbac');
    assert.match(e.reason, /\(roles: none; role "gone" no longer exists\)$/);
    assert.deepEqual(e.missingRoles, ['gone']);
    // A lock on the deleted role still applies to the certificates that carry it.
    const locked = new AccessChecker({
      clock: new FakeClock(NOW),
      locks: { values: () => [lock({ role: 'gone' })], staleForMs: () => 0 },
      role: (name) => presets[name],
      clusterSettings: () => ({ deviceTrustMode: 'off', lockingMode: 'best_effort' }),
    });
    assert.equal(denied(locked.checkAccess(both, node, { login: 'root' })).step, 'lock');
  });

  test('liveRoles: the roles the live view knows, none for a deleted one; undefined once the view is stale beyond the bound', async () => {
    const clock = new FakeClock(NOW);
    backend = new MemoryBackend({ clock, reapIntervalMs: 0 });
    const services = createServices({ backend, clock });
    await services.ensurePresets();
    const views = services.accessViews({ retryDelayMs: 60_000 });
    await views.start();
    try {
      const checker = liveAccessChecker(views, { clock, lockMaxStalenessMs: 1000 });
      assert.deepEqual(
        checker.liveRoles(['access', 'gone', 'editor'])?.map((r) => r.metadata.name),
        ['access', 'editor'],
      );
      views.roles.close(); // the watch is gone: stale from now on
      clock.advance(1000);
      assert.deepEqual(checker.liveRoles(['access'])?.length, 1, 'within the bound');
      clock.advance(1);
      assert.equal(checker.liveRoles(['access']), undefined);
      // A fixed role table (no view staleness) is always current.
      const fixed = new AccessChecker({
        clock,
        locks: { values: () => [], staleForMs: () => 0 },
        role: (name) => presets[name],
        clusterSettings: () => undefined,
      });
      assert.equal(fixed.liveRoles(['access'])?.[0]?.metadata.name, 'access');
    } finally {
      views.close();
    }
  });

  test('unknown cluster settings deny everything (fail closed); a node lock matches ID or hostname', () => {
    let settings: { deviceTrustMode: string; lockingMode: string } | undefined;
    const locks: LockResource[] = [];
    const checker = new AccessChecker({
      clock: new FakeClock(NOW),
      locks: { values: () => locks, staleForMs: () => 0 },
      role: (name) => presets[name],
      clusterSettings: () => settings,
    });
    const id = makeIdentity({ user: 'alice', roles: ['access'], traits: { logins: ['alice'] } });
    const d = denied(checker.checkAccess(id, node, { login: 'alice' }));
    assert.match(d.reason, /cluster settings .* not known/);
    assert.match(checker.lockReason(id)?.reason ?? '', /not known/);
    assert.equal(checker.deviceTrustMode(id), 'required');
    settings = { deviceTrustMode: 'off', lockingMode: 'best_effort' };
    assert.equal(checker.checkAccess(id, node, { login: 'alice' }).allowed, true);
    assert.equal(checker.lockReason(id), undefined);
    for (const name of [node.id, node.hostname]) {
      locks.splice(0, locks.length, lock({ node: name }));
      assert.equal(denied(checker.checkAccess(id, node, { login: 'alice' })).step, 'lock', name);
      assert.ok(checker.lockReason(id, nodeLockTargets(node)), name);
      assert.equal(checker.lockReason(id), undefined, 'the identity alone is not locked');
    }
  });
});
