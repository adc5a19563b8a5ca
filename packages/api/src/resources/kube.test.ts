import assert from 'node:assert/strict';
import { test } from 'node:test';
import { validateResource } from './validate';

const base = { kind: 'kube_cluster', version: 'v3', metadata: { name: 'prod', labels: { env: 'prod' } } };

test('kube_cluster: a kubeconfig path, or a server with a token or a client certificate', () => {
  assert.equal(validateResource({ ...base, spec: { kubeconfig_path: '/etc/k.yaml' } }).kind, 'kube_cluster');
  validateResource({ ...base, spec: { server: 'https://10.0.0.1:6443', ca_file: '/ca', token_file: '/t' } });
  validateResource({ ...base, spec: { server: 'https://k:6443', cert_file: '/c', key_file: '/k' } });
  validateResource({ ...base, spec: {} });
});

test('kube_cluster: names are DNS labels; credentials must not mix; http and userinfo refused', () => {
  for (const spec of [
    { kubeconfig_path: '/k', token_file: '/t' },
    { server: 'https://k', cert_file: '/c' },
    { server: 'https://k', token_file: '/t', cert_file: '/c', key_file: '/k' },
    { server: 'http://k:6443' },
    { server: 'https://u:p@k:6443' },
    { extra: 1 },
  ]) {
    assert.throws(
      () => validateResource({ ...base, spec }),
      /WARDEN_ERR|spec|expected|must|use/,
      JSON.stringify(spec),
    );
  }
  assert.throws(() => validateResource({ ...base, metadata: { name: 'Prod_1' }, spec: {} }), /DNS label/);
});

test('role: kubernetes_users and kubernetes_resources', () => {
  const role = validateResource({
    kind: 'role',
    version: 'v7',
    metadata: { name: 'kube-dev' },
    spec: {
      allow: {
        kubernetes_labels: { env: 'dev' },
        kubernetes_groups: ['developers'],
        kubernetes_users: ['{{internal.kubernetes_users}}'],
        kubernetes_resources: [{ kind: 'pod', namespace: 'dev-*', name: '*', verbs: ['get', 'exec'] }],
      },
    },
  });
  assert.equal(role.kind, 'role');
  assert.throws(() =>
    validateResource({
      kind: 'role',
      version: 'v7',
      metadata: { name: 'bad' },
      spec: { allow: { kubernetes_resources: [{ kind: 'pod', colour: 'red' }] } },
    }),
  );
});
