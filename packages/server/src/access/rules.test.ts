import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isWardenError, presetRoles, type RoleResource } from '@warden/api';
import { checkVerb, hasVerb } from './rules';

const presets = Object.fromEntries(presetRoles().map((r) => [r.metadata.name, r]));
const { access, editor, auditor } = presets as Record<string, RoleResource>;

function role(
  name: string,
  allow: RoleResource['spec']['allow'],
  deny: RoleResource['spec']['deny'] = {},
): RoleResource {
  return { kind: 'role', version: 'v7', metadata: { name }, spec: { options: {}, allow, deny } };
}

test('editor manages users, roles, locks, cap, devices, tokens; reads CAs and events', () => {
  const info = { user: 'admin', roles: [editor!], traits: {} };
  for (const kind of ['user', 'role', 'lock', 'cluster_auth_preference', 'device', 'token']) {
    for (const verb of ['list', 'read', 'create', 'update', 'delete'])
      assert.ok(hasVerb(info, kind, verb), `${verb} ${kind}`);
  }
  assert.ok(hasVerb(info, 'cert_authority', 'read'));
  assert.ok(!hasVerb(info, 'cert_authority', 'update'));
  assert.ok(hasVerb(info, 'event', 'list'));
  assert.ok(!hasVerb(info, 'event', 'delete'));
  assert.ok(!hasVerb(info, 'session', 'read'));
});

test('auditor reads events and sessions only', () => {
  const info = { user: 'aud', roles: [auditor!], traits: {} };
  assert.ok(hasVerb(info, 'session', 'list'));
  assert.ok(hasVerb(info, 'event', 'read'));
  assert.ok(!hasVerb(info, 'role', 'read'));
});

test('checkVerb names the missing permission', () => {
  assert.throws(
    () => checkVerb({ user: 'bob', roles: [access!], traits: {} }, 'role', 'create'),
    (e) => {
      assert.ok(isWardenError(e, 'WARDEN_ERR_ACCESS_DENIED'));
      assert.equal(
        e.message,
        'access denied: user "bob" lacks permission "create" on "role" (roles: access)',
      );
      return true;
    },
  );
  assert.throws(
    () => checkVerb({ user: 'bob', roles: [], traits: {} }, 'role', 'list'),
    /lacks permission "list" on "role" \(roles: none\)/,
  );
  checkVerb({ user: 'admin', roles: [access!, editor!], traits: {} }, 'role', 'create');
});

test('wildcards for resources and verbs', () => {
  const root = role('root', { rules: [{ resources: ['*'], verbs: ['*'] }] });
  const reader = role('reader', { rules: [{ resources: ['*'], verbs: ['list', 'read'] }] });
  assert.ok(hasVerb({ user: 'r', roles: [root], traits: {} }, 'anything', 'delete'));
  assert.ok(hasVerb({ user: 'r', roles: [reader], traits: {} }, 'user', 'read'));
  assert.ok(!hasVerb({ user: 'r', roles: [reader], traits: {} }, 'user', 'create'));
});

test('deny rules win over allow rules, also with wildcards', () => {
  const noLocks = role('no-locks', {}, { rules: [{ resources: ['lock'], verbs: ['delete'] }] });
  const readOnly = role(
    'read-only',
    {},
    { rules: [{ resources: ['*'], verbs: ['create', 'update', 'delete'] }] },
  );
  const info = { user: 'carol', roles: [editor!, noLocks], traits: {} };
  assert.ok(hasVerb(info, 'lock', 'create'));
  assert.ok(!hasVerb(info, 'lock', 'delete'));
  assert.throws(
    () => checkVerb(info, 'lock', 'delete'),
    /^WardenError: access denied: user "carol" is denied permission "delete" on "lock" by role "no-locks"$/,
  );
  assert.ok(!hasVerb({ user: 'c', roles: [editor!, readOnly], traits: {} }, 'role', 'update'));
  assert.ok(hasVerb({ user: 'c', roles: [editor!, readOnly], traits: {} }, 'role', 'read'));
});

test('set_address is granted only by name: the preset editor and "*" verbs lack it; a deny "*" removes it', () => {
  const editorInfo = { user: 'ed', roles: [editor!], traits: {} };
  for (const kind of ['node', 'db', 'app']) {
    assert.ok(hasVerb(editorInfo, kind, 'create'), kind);
    assert.ok(!hasVerb(editorInfo, kind, 'set_address'), kind);
  }
  const everything = role('everything', { rules: [{ resources: ['*'], verbs: ['*'] }] });
  assert.ok(!hasVerb({ user: 'x', roles: [everything], traits: {} }, 'node', 'set_address'));
  const addresses = role('addresses', { rules: [{ resources: ['node', 'db'], verbs: ['set_address'] }] });
  const info = { user: 'net', roles: [editor!, addresses], traits: {} };
  assert.ok(hasVerb(info, 'node', 'set_address'));
  assert.ok(hasVerb(info, 'db', 'set_address'));
  assert.ok(!hasVerb(info, 'app', 'set_address'));
  const denyAll = role('no-writes', {}, { rules: [{ resources: ['node'], verbs: ['*'] }] });
  assert.ok(!hasVerb({ user: 'net', roles: [addresses, denyAll], traits: {} }, 'node', 'set_address'));
  assert.throws(
    () => checkVerb(editorInfo, 'node', 'set_address'),
    (e) =>
      isWardenError(e, 'WARDEN_ERR_ACCESS_DENIED') &&
      /lacks permission "set_address" on "node"/.test(e.message),
  );
});
