import assert from 'node:assert/strict';
import { test } from 'node:test';
import { kubeRequestInfo } from './request-info';

const info = (method: string, url: string) => {
  const u = new URL(url, 'https://kube.invalid');
  return kubeRequestInfo(method, u.pathname, u.searchParams);
};

test('verbs from the method, the name and watch, as the API server reads them', () => {
  const pods = '/api/v1/namespaces/default/pods';
  assert.equal(info('GET', pods).verb, 'list');
  assert.equal(info('HEAD', pods).verb, 'list');
  assert.equal(info('GET', `${pods}/web`).verb, 'get');
  assert.equal(info('GET', `${pods}?watch=true`).verb, 'watch');
  assert.equal(info('GET', `${pods}?watch=1`).verb, 'watch');
  assert.equal(info('GET', `${pods}?watch=false`).verb, 'list');
  assert.equal(info('GET', '/api/v1/watch/namespaces/default/pods').verb, 'watch', 'legacy /watch/ prefix');
  assert.equal(info('POST', pods).verb, 'create');
  assert.equal(info('PUT', `${pods}/web`).verb, 'update');
  assert.equal(info('PATCH', `${pods}/web`).verb, 'patch');
  assert.equal(info('DELETE', `${pods}/web`).verb, 'delete');
  assert.equal(info('DELETE', pods).verb, 'deletecollection');
  assert.equal(info('OPTIONS', pods).verb, 'options');
});

test('resources, groups, names and namespaces', () => {
  assert.deepEqual(info('GET', '/api/v1/namespaces/kube-system/configmaps/cfg'), {
    verb: 'get',
    group: '',
    resource: 'configmaps',
    namespace: 'kube-system',
    name: 'cfg',
    streaming: false,
  });
  assert.deepEqual(info('GET', '/apis/apps/v1/namespaces/prod/deployments'), {
    verb: 'list',
    group: 'apps',
    resource: 'deployments',
    namespace: 'prod',
    streaming: false,
  });
  // Cluster-wide: no namespace.
  assert.deepEqual(info('GET', '/api/v1/pods'), {
    verb: 'list',
    group: '',
    resource: 'pods',
    streaming: false,
  });
  assert.deepEqual(info('GET', '/apis/rbac.authorization.k8s.io/v1/clusterroles/admin'), {
    verb: 'get',
    group: 'rbac.authorization.k8s.io',
    resource: 'clusterroles',
    name: 'admin',
    streaming: false,
  });
  assert.equal(
    info('POST', '/apis/authorization.k8s.io/v1/selfsubjectaccessreviews').resource,
    'selfsubjectaccessreviews',
  );
  // Percent-encoded segments are decoded; a malformed escape resolves to nothing rather than throwing.
  assert.equal(info('GET', '/api/v1/namespaces/default/configmaps/a%2Eb').name, 'a.b');
  assert.equal(info('GET', '/api/v1/namespaces/default/configmaps/%E0%A4%A').resource, undefined);
});

test('namespaces are their own namespace, also with their own subresources', () => {
  assert.deepEqual(info('GET', '/api/v1/namespaces'), {
    verb: 'list',
    group: '',
    resource: 'namespaces',
    streaming: false,
  });
  assert.deepEqual(info('DELETE', '/api/v1/namespaces/team-a'), {
    verb: 'delete',
    group: '',
    resource: 'namespaces',
    namespace: 'team-a',
    name: 'team-a',
    streaming: false,
  });
  for (const sub of ['status', 'finalize']) {
    assert.deepEqual(info('PUT', `/api/v1/namespaces/team-a/${sub}`), {
      verb: 'update',
      group: '',
      resource: 'namespaces',
      subresource: sub,
      namespace: 'team-a',
      name: 'team-a',
      streaming: false,
    });
  }
});

test('subresources: exec, attach and portforward get their own verbs; log -f and watch stream', () => {
  const pod = '/api/v1/namespaces/default/pods/web';
  assert.deepEqual(info('GET', `${pod}/exec?command=sh&stdin=true`), {
    verb: 'exec',
    group: '',
    resource: 'pods',
    subresource: 'exec',
    namespace: 'default',
    name: 'web',
    streaming: false,
  });
  assert.equal(info('POST', `${pod}/exec`).verb, 'exec');
  assert.equal(info('GET', `${pod}/attach`).verb, 'exec');
  assert.equal(info('GET', `${pod}/portforward?ports=80`).verb, 'portforward');
  const log = info('GET', `${pod}/log`);
  assert.equal(log.verb, 'get');
  assert.equal(log.subresource, 'log');
  assert.equal(log.streaming, false);
  assert.equal(info('GET', `${pod}/log?follow=true`).streaming, true);
  assert.equal(info('PATCH', `${pod}/status`).subresource, 'status');
  assert.equal(info('PATCH', `${pod}/status`).verb, 'patch');
  assert.equal(info('GET', '/apis/apps/v1/namespaces/default/deployments/api/scale').subresource, 'scale');
  assert.equal(info('GET', '/api/v1/namespaces/default/pods?watch=true').streaming, true);
  assert.equal(info('GET', '/api/v1/watch/pods').streaming, true);
  assert.equal(info('GET', '/api/v1/namespaces/default/pods').streaming, false);
});

test('a fieldSelector on metadata.name names the object (kubectl get pod web -w)', () => {
  const w = info('GET', '/api/v1/namespaces/default/pods?fieldSelector=metadata.name%3Dweb&watch=true');
  assert.equal(w.verb, 'watch');
  assert.equal(w.name, 'web');
  assert.equal(
    info('GET', '/api/v1/namespaces/default/pods?fieldSelector=metadata.name%3D%3Dweb').name,
    'web',
  );
  assert.equal(
    info('GET', '/api/v1/namespaces/default/pods?fieldSelector=status.phase%3DRunning').name,
    undefined,
  );
  assert.equal(
    info('GET', '/api/v1/namespaces/default/pods?fieldSelector=metadata.name!%3Dweb').name,
    undefined,
  );
  assert.equal(
    info('GET', '/api/v1/namespaces/default/pods?fieldSelector=metadata.name%3D..').name,
    undefined,
  );
  assert.equal(
    info('DELETE', '/api/v1/namespaces/default/pods?fieldSelector=metadata.name%3Dweb').verb,
    'deletecollection',
  );
  assert.equal(
    info('DELETE', '/api/v1/namespaces/default/pods?fieldSelector=metadata.name%3Dweb').name,
    undefined,
  );
});

test('discovery and other non-resource paths have no resource', () => {
  for (const path of [
    '/',
    '/api',
    '/api/v1',
    '/apis',
    '/apis/apps',
    '/apis/apps/v1',
    '/version',
    '/openapi/v3',
    '/openapi/v3/api/v1',
    '/healthz',
    '/livez',
  ]) {
    const r = info('GET', path);
    assert.equal(r.resource, undefined, path);
    assert.equal(r.verb, 'get', path);
    assert.equal(r.streaming, false, path);
    assert.equal(r.name, undefined, path);
    assert.equal(r.namespace, undefined, path);
  }
  assert.equal(info('POST', '/api').verb, 'post', 'non-resource verbs are the lower-case method');
});
