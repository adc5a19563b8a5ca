import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { assertBadResource } from '../../../../test/support/resources';
import { presetRoles } from './presets';
import { validateResourceOfKind } from './validate';

const CERT_PEM = `-----BEGIN CERTIFICATE-----
MIIBszCCAVmgAwIBAgIUQ2FyZWZ1bGx5IG1hZGUgdXAgY2VydGlmaWNhdGUwCgYI
KoZIzj0EAwIwDzENMAsGA1UEAwwEdGVzdDAeFw0yNjAxMDEwMDAwMDBaFw0zNjAx
-----END CERTIFICATE-----
`;

const lock = (spec: Record<string, unknown>, name = '5444970a-39a0-4814-968d-e58b4a8fa686') => ({
  kind: 'lock',
  version: 'v2',
  metadata: { name },
  spec,
});

describe('lock', () => {
  test('the guide lock', () => {
    const l = validateResourceOfKind(
      'lock',
      lock({
        target: { device: '9cdfc0ad-64b7-4d9c-this-is-an-example' },
        expires: '2026-01-01T12:00:00Z',
        created_at: '2026-01-01T00:00:00Z',
        created_by: 'admin',
      }),
    );
    assert.equal(l.spec.target.device, '9cdfc0ad-64b7-4d9c-this-is-an-example');
  });

  test('bad locks', () => {
    assertBadResource(
      lock({ target: { device: 'd' }, expires: 'tomorrow' }),
      'lock "5444970a-39a0-4814-968d-e58b4a8fa686": spec.expires: expected an RFC 3339 time like "2026-01-01T12:00:00Z"',
    );
    assertBadResource(lock({ target: { host: 'x' } }), /spec\.target\.host: unknown field/);
    assertBadResource(lock({ target: { user: '' } }), /spec\.target\.user: must not be empty/);
    assertBadResource(lock({}), /spec\.target: required/);
    assertBadResource(lock({ target: { user: 'a' } }, 'lock-1'), /metadata\.name: expected a UUID/);
  });
});

describe('cert_authority: public parts only', () => {
  const ca = (spec: Record<string, unknown>) => ({
    kind: 'cert_authority',
    version: 'v2',
    metadata: { name: 'user' },
    spec,
  });

  test('accepts public keys and certificates', () => {
    const res = validateResourceOfKind(
      'cert_authority',
      ca({
        type: 'user',
        cluster: 'warden',
        ssh_public_keys: ['ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIx0 warden user CA'],
        tls_certs: [CERT_PEM],
      }),
    );
    assert.equal(res.spec.ssh_public_keys.length, 1);
  });

  test('refuses private keys in any field', () => {
    assertBadResource(
      ca({ type: 'user', cluster: 'w', private_key: 'x' }),
      /spec\.private_key: unknown field/,
    );
    assertBadResource(
      ca({ type: 'user', cluster: 'w', ssh_public_keys: ['-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n'] }),
      /spec\.ssh_public_keys\[0\]: expected an SSH public key/,
    );
    assertBadResource(
      ca({
        type: 'user',
        cluster: 'w',
        tls_certs: ['-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n'],
      }),
      /spec\.tls_certs\[0\]: expected one PEM certificate/,
    );
    assertBadResource(
      ca({ type: 'root', cluster: 'w' }),
      /spec\.type: expected one of "user", "host", "db", "openssh"/,
    );
  });
});

describe('cluster_auth_preference', () => {
  test('defaults', () => {
    const cap = validateResourceOfKind('cluster_auth_preference', {
      kind: 'cluster_auth_preference',
      version: 'v2',
      metadata: { name: 'cluster-auth-preference' },
      spec: {},
    });
    assert.deepEqual(cap.spec, {
      type: 'local',
      second_factor: 'otp',
      device_trust: { mode: 'off', auto_enroll: false },
      locking_mode: 'best_effort',
    });
  });

  test('bad values', () => {
    const cap = (spec: Record<string, unknown>) => ({
      kind: 'cluster_auth_preference',
      version: 'v2',
      metadata: { name: 'cluster-auth-preference' },
      spec,
    });
    assertBadResource(
      cap({ second_factor: true }),
      /spec\.second_factor: expected one of "on", "otp", "off"/,
    );
    assertBadResource(
      cap({ device_trust: { auto_enroll: 'yes' } }),
      /spec\.device_trust\.auto_enroll: expected true or false, got a string/,
    );
    assertBadResource(
      cap({ device_trust: { ekcert_allowed_cas: ['not pem'] } }),
      /ekcert_allowed_cas\[0\]: expected one PEM certificate/,
    );
    assertBadResource(cap({ type: 'saml' }), /spec\.type: expected "local"/);
  });
});

describe('validateResourceOfKind', () => {
  test('refuses another kind', () => {
    const user = { kind: 'user', version: 'v2', metadata: { name: 'a' }, spec: {} };
    assert.throws(() => validateResourceOfKind('role', user), /user "a": kind: expected "role", got "user"/);
  });
});

describe('preset roles', () => {
  test('are valid roles with the expected grants', () => {
    const presets = presetRoles();
    assert.deepEqual(
      presets.map((r) => r.metadata.name),
      ['access', 'editor', 'auditor', 'require-trusted-device'],
    );
    for (const role of presets) assert.deepEqual(validateResourceOfKind('role', role), role);
    const [access, editor, auditor, rtd] = presets;
    assert.deepEqual(access?.spec.allow.logins, ['{{internal.logins}}']);
    assert.deepEqual(access?.spec.allow.db_users, ['{{internal.db_users}}']);
    assert.deepEqual(access?.spec.allow.node_labels, { '*': '*' });
    assert.ok(editor?.spec.allow.rules?.some((r) => r.resources.includes('role') && r.verbs.includes('*')));
    assert.ok(auditor?.spec.allow.rules?.some((r) => r.resources.includes('session')));
    assert.equal(rtd?.spec.options.device_trust_mode, 'required');
  });

  test('are fresh copies', () => {
    const a = presetRoles();
    a[0]!.spec.allow.logins!.push('root');
    assert.deepEqual(presetRoles()[0]?.spec.allow.logins, ['{{internal.logins}}']);
  });
});
