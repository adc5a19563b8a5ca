import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { RoleResource } from '@warden/api';
import { policy, role } from '../../../../test/support/access-decisions';
import { decideAccess, type ResolvedIdentity } from './check';
import { type KubeTarget, kubePrincipals } from './check-kube';

const prod: KubeTarget = { kind: 'kube_cluster', name: 'prod', labels: { env: 'prod' } };
const dev = role('kube-dev', {
  allow: {
    kubernetes_labels: { env: '*' },
    kubernetes_groups: ['developers', '{{internal.kube_groups}}'],
    kubernetes_resources: [{ kind: 'pod', namespace: 'dev-*', verbs: ['get', 'list', 'watch', 'exec'] }],
  },
});
const alice = (roles: RoleResource[], device = false): ResolvedIdentity => ({
  user: 'alice',
  roles,
  traits: { kube_groups: ['oncall'] },
  ...(device ? { device: { deviceId: 'd', assetTag: 'a', credentialId: 'c' } } : {}),
});

describe('kube_cluster access', () => {
  test('kubernetes_resources: kind, namespace glob, verbs; lists need name "*"', () => {
    const ok = decideAccess(policy(), alice([dev]), prod, {
      verb: 'list',
      resource: 'pods',
      namespace: 'dev-a',
    });
    assert.equal(ok.allowed, true);
    assert.equal(
      decideAccess(policy(), alice([dev]), prod, {
        verb: 'exec',
        resource: 'pods',
        subresource: 'exec',
        namespace: 'dev-a',
        name: 'web',
      }).allowed,
      true,
    );
    const wrongNs = decideAccess(policy(), alice([dev]), prod, {
      verb: 'list',
      resource: 'pods',
      namespace: 'kube-system',
    });
    assert.equal(wrongNs.allowed, false);
    const wrongVerb = decideAccess(policy(), alice([dev]), prod, {
      verb: 'delete',
      resource: 'pods',
      namespace: 'dev-a',
      name: 'x',
    });
    assert.equal(wrongVerb.allowed, false);
    const wrongKind = decideAccess(policy(), alice([dev]), prod, {
      verb: 'get',
      resource: 'secrets',
      namespace: 'dev-a',
      name: 'x',
    });
    assert.equal(wrongKind.allowed, false);
    // discovery and self-reviews need only the cluster
    assert.equal(decideAccess(policy(), alice([dev]), prod, { verb: 'get' }).allowed, true);
    assert.equal(
      decideAccess(policy(), alice([dev]), prod, {
        verb: 'create',
        resource: 'selfsubjectaccessreviews',
        group: 'authorization.k8s.io',
      }).allowed,
      true,
    );
  });

  test('labels: no matching role, deny labels, device trust of matching roles', () => {
    const other = role('other', { allow: { kubernetes_labels: { env: 'dev' }, kubernetes_groups: ['x'] } });
    const d = decideAccess(policy(), alice([other]), prod, { verb: 'get' });
    assert.equal(d.allowed, false);
    const denyProd = role('deny-prod', { deny: { kubernetes_labels: { env: 'prod' } } });
    const d2 = decideAccess(policy(), alice([dev, denyProd]), prod, { verb: 'get' });
    assert.ok(!d2.allowed && /denied by role "deny-prod"/.test(d2.reason));
    const strict = role('strict', { ...dev.spec, options: { device_trust_mode: 'required' } });
    const d3 = decideAccess(policy(), alice([strict]), prod, { verb: 'get' });
    assert.ok(!d3.allowed && d3.reason === 'unauthorized device');
    assert.equal(decideAccess(policy(), alice([strict], true), prod, { verb: 'get' }).allowed, true);
    const d4 = decideAccess(policy({ clusterDeviceTrustMode: 'required' }), alice([dev]), prod, {
      verb: 'get',
    });
    assert.ok(!d4.allowed && d4.reason === 'unauthorized device');
  });

  test('principals: traits expanded, default user, --as and --as-group must be a subset', () => {
    const id = alice([dev]);
    assert.deepEqual(kubePrincipals(id, [dev], {}), {
      ok: true,
      principals: { user: 'alice', groups: ['developers', 'oncall'] },
    });
    assert.deepEqual(kubePrincipals(id, [dev], { asGroups: ['oncall'] }), {
      ok: true,
      principals: { user: 'alice', groups: ['oncall'] },
    });
    assert.equal(kubePrincipals(id, [dev], { asGroups: ['system:masters'] }).ok, false);
    assert.equal(kubePrincipals(id, [dev], { asUser: 'admin' }).ok, false);
    const none = role('none', { allow: { kubernetes_labels: { '*': '*' } } });
    const d = decideAccess(policy(), alice([none]), prod, { verb: 'get' });
    assert.ok(!d.allowed && /grant no kubernetes_users or kubernetes_groups/.test(d.reason));
    const refused = decideAccess(policy(), alice([dev]), prod, { verb: 'get', asUser: 'root' });
    assert.ok(!refused.allowed && /may not impersonate Kubernetes user "root"/.test(refused.reason));
  });
});
