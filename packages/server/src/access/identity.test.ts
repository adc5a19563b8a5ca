import assert from 'node:assert/strict';
import { test } from 'node:test';
import { presetRoles, type RoleResource } from '@warden/api';
import { allowedLogins, makeIdentity, maxSessionTtl, routeCertIdentity } from './identity';

function role(
  name: string,
  spec: { allow?: RoleResource['spec']['allow']; deny?: RoleResource['spec']['deny']; ttl?: string },
): RoleResource {
  return {
    kind: 'role',
    version: 'v7',
    metadata: { name },
    spec: {
      options: spec.ttl ? { max_session_ttl: spec.ttl } : {},
      allow: spec.allow ?? {},
      deny: spec.deny ?? {},
    },
  };
}

const access = presetRoles().find((r) => r.metadata.name === 'access')!;

test('allowedLogins expands traits from the preset access role', () => {
  assert.deepEqual(
    allowedLogins({ user: 'alice', roles: [access], traits: { logins: ['alice', 'ubuntu'] } }),
    ['alice', 'ubuntu'],
  );
});

test('a template with a missing trait grants nothing', () => {
  assert.deepEqual(allowedLogins({ user: 'alice', roles: [access], traits: {} }), []);
});

test('union of roles, minus denied logins (also templated)', () => {
  const roles = [
    role('a', { allow: { logins: ['root', 'admin'] } }),
    role('b', { allow: { logins: ['{{internal.logins}}', 'admin'] } }),
    role('c', { deny: { logins: ['root', '{{internal.banned}}'] } }),
  ];
  assert.deepEqual(
    allowedLogins({ user: 'alice', roles, traits: { logins: ['alice', 'bob'], banned: ['bob'] } }),
    ['admin', 'alice'],
  );
});

test("deny '*' denies every login; allow '*' grants none", () => {
  assert.deepEqual(
    allowedLogins({
      user: 'a',
      roles: [role('a', { allow: { logins: ['root'] } }), role('d', { deny: { logins: ['*'] } })],
      traits: {},
    }),
    [],
  );
  assert.deepEqual(
    allowedLogins({ user: 'a', roles: [role('a', { allow: { logins: ['*', 'ok'] } })], traits: {} }),
    ['ok'],
  );
});

test('no roles, no logins', () => {
  assert.deepEqual(allowedLogins({ user: 'a', roles: [], traits: { logins: ['a'] } }), []);
});

test('maxSessionTtl is the minimum over roles that set one', () => {
  assert.equal(
    maxSessionTtl([role('a', { ttl: '8h' }), role('b', { ttl: '1h30m' }), role('c', {})]),
    5_400_000,
  );
  assert.equal(maxSessionTtl([role('a', { ttl: '30m' })]), 1_800_000);
  assert.equal(maxSessionTtl([role('c', {})]), undefined);
  assert.equal(maxSessionTtl([]), undefined);
});

test('an unreadable stored TTL does not lengthen sessions', () => {
  assert.equal(maxSessionTtl([role('a', { ttl: '8h' }), role('b', { ttl: 'forever' })]), 0);
});

test('a route certificate carries who the caller is, no SSH logins, bot and device when present', () => {
  const device = { deviceId: 'd-1', assetTag: 'A1', credentialId: 'c-1' };
  const traits = { team: ['db'] };
  const bot = makeIdentity({ user: 'bot-ci', kind: 'bot', roles: ['r'], logins: ['root'], traits, device });
  const id = routeCertIdentity(bot);
  assert.deepEqual(id, {
    user: 'bot-ci',
    roles: ['r'],
    logins: [],
    traits: { team: ['db'] },
    kind: 'bot',
    device,
  });
  assert.notEqual(id.traits.team, traits.team, 'trait values are copied, not shared');
  const human = routeCertIdentity(makeIdentity({ user: 'alice', logins: ['root'] }));
  assert.deepEqual(human, { user: 'alice', roles: [], logins: [], traits: {} });
});
