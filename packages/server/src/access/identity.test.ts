import assert from 'node:assert/strict';
import { test } from 'node:test';
import { presetRoles, type RoleResource } from '@warden/api';
import {
  allowedLogins,
  makeIdentity,
  maxSessionTtl,
  routeCertAuditEvent,
  routeCertIdentity,
} from './identity';

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

test('a route certificate request is audited as cert.create when issued, access.denied when refused', () => {
  const device = { deviceId: 'd-1', assetTag: 'A1', credentialId: 'c-1' };
  const alice = makeIdentity({ user: 'alice', roles: ['access'], clientAddr: '10.0.0.7', device });
  const resource = { kind: 'db', name: 'orders', labels: { env: 'prod' } };
  const expires = new Date('2026-01-02T03:04:05.000Z');
  const who = {
    user: 'alice',
    addr: '10.0.0.7',
    device: { id: 'd-1', asset_tag: 'A1', credential_id: 'c-1' },
    roles: ['access'],
  };
  assert.deepEqual(
    routeCertAuditEvent(alice, { type: 'db', resource, asked: { db_user: 'app' } }, { expires }),
    {
      type: 'cert.create',
      success: true,
      ...who,
      cert_type: 'db',
      db: 'orders',
      expires: '2026-01-02T03:04:05.000Z',
      device_extensions: true,
    },
  );
  assert.deepEqual(
    routeCertAuditEvent(
      alice,
      { type: 'db', resource, asked: { db_user: 'app' } },
      { error: 'no role allows' },
    ),
    {
      type: 'access.denied',
      success: false,
      ...who,
      error: 'no role allows',
      protocol: 'db',
      resource,
      db_user: 'app',
    },
  );
  const app = { kind: 'app', name: 'grafana' };
  assert.deepEqual(routeCertAuditEvent(makeIdentity({ user: 'bob' }), { type: 'app', resource: app }, {}), {
    type: 'cert.create',
    success: true,
    user: 'bob',
    roles: [],
    cert_type: 'app',
    app: 'grafana',
    device_extensions: false,
  });
});
