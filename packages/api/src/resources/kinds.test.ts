import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isWardenError } from '../errors';
import { currentVersion, isResourceKind, parseResourceRef, RESOURCE_KINDS, resolveKind } from './kind-names';

test('CLI aliases resolve to kinds', () => {
  const cases: Record<string, string> = {
    roles: 'role',
    role: 'role',
    users: 'user',
    user: 'user',
    cluster_auth_preference: 'cluster_auth_preference',
    cap: 'cluster_auth_preference',
    locks: 'lock',
    lock: 'lock',
    cert_authorities: 'cert_authority',
    cert_authority: 'cert_authority',
    cas: 'cert_authority',
    node: 'node',
    nodes: 'node',
    dbs: 'db',
    databases: 'db',
    apps: 'app',
    Roles: 'role',
  };
  for (const [word, kind] of Object.entries(cases)) assert.equal(resolveKind(word), kind, word);
  assert.equal(resolveKind('rolez'), undefined);
  assert.equal(resolveKind('constructor'), undefined);
});

test('isResourceKind accepts kinds only, not aliases or prototype names', () => {
  assert.ok(isResourceKind('role'));
  assert.ok(!isResourceKind('roles'));
  assert.ok(!isResourceKind('toString'));
  assert.ok(!isResourceKind(7));
});

test('current versions', () => {
  assert.deepEqual(
    RESOURCE_KINDS.map((k) => `${k}/${currentVersion(k)}`),
    [
      'role/v7',
      'user/v2',
      'cluster_auth_preference/v2',
      'lock/v2',
      'cert_authority/v2',
      'node/v2',
      'db/v3',
      'device/v1',
      'app/v3',
      'kube_cluster/v3',
    ],
  );
});

test('parseResourceRef', () => {
  assert.deepEqual(parseResourceRef('users/alice'), { kind: 'user', name: 'alice' });
  assert.deepEqual(parseResourceRef('cap'), { kind: 'cluster_auth_preference' });
  assert.deepEqual(parseResourceRef('cas/user'), { kind: 'cert_authority', name: 'user' });
  for (const bad of ['widgets/x', 'users/', 'users/a/b', '']) {
    assert.throws(
      () => parseResourceRef(bad),
      (e) => isWardenError(e, 'WARDEN_ERR_BAD_PARAMETER'),
      bad,
    );
  }
  assert.throws(
    () => parseResourceRef('widgets'),
    /unknown resource kind "widgets" \(expected one of: role, roles, user/,
  );
});
