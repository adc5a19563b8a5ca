import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  type AuditEventInput,
  AuditEventSchema,
  auditCode,
  auditEventCatalogue,
  auditEventTypes,
  isAuditEventType,
  isSecretFieldName,
  retiredAuditCodes,
} from './events';

test('audit codes are well formed, unique, never a retired code, and I/W match the outcome', () => {
  const seen = new Set<string>();
  for (const info of auditEventTypes) {
    assert.ok(info.code !== undefined || info.failureCode !== undefined, `${info.type} has a code`);
    if (info.code !== undefined) assert.match(info.code, /^W\d{4}I$/, info.type);
    if (info.failureCode !== undefined) assert.match(info.failureCode, /^W\d{4}W$/, info.type);
    for (const code of [info.code, info.failureCode]) {
      if (code === undefined) continue;
      assert.ok(!seen.has(code), `code ${code} used twice`);
      assert.ok(!retiredAuditCodes.includes(code), `code ${code} is retired`);
      seen.add(code);
    }
    if (info.code && info.failureCode) assert.equal(info.code.slice(0, 5), info.failureCode.slice(0, 5));
    assert.match(info.type, /^[a-z_]+(\.[a-z_]+)+$/);
    assert.ok(info.summary.length > 0);
    for (const f of info.fields) assert.ok(!isSecretFieldName(f), `${info.type}.${f} is named like a secret`);
  }
  assert.equal(auditEventTypes.length, Object.keys(auditEventCatalogue).length);
});

test('the codes the brief fixed stay fixed', () => {
  assert.equal(auditCode('user.login', true), 'W1000I');
  assert.equal(auditCode('user.login', false), 'W1000W');
  assert.equal(auditCode('access.denied', false), 'W4001W');
  assert.equal(auditCode('access.denied', true), undefined);
  assert.equal(auditCode('role.created', false), undefined);
});

test('device inventory events keep their codes (issue 5)', () => {
  assert.equal(auditCode('device.create', true), 'W5000I');
  assert.equal(auditCode('device.delete', true), 'W5001I');
  assert.equal(auditCode('device.token.create', true), 'W5002I');
  assert.equal(auditCode('device.update', true), 'W5005I');
  assert.equal(auditCode('device.token.spent', true), 'W5006I');
  assert.equal(auditCode('device.token.spent', false), 'W5006W');
});

test('isAuditEventType accepts catalogue types only', () => {
  assert.ok(isAuditEventType('user.login'));
  assert.ok(!isAuditEventType('user.logon'));
  assert.ok(!isAuditEventType('toString'));
  assert.ok(!isAuditEventType(42));
});

test('secret-looking field names are recognised in every spelling', () => {
  for (const name of [
    'password',
    'Password',
    'new_password',
    'passwd',
    'token',
    'tokenName',
    'join-token',
    'otp',
    'totp_code',
    'secret',
    'client_secret',
    'private_key',
    'privateKey',
    'privatekey',
    'ssh.private.key',
    'api_key',
    'apiKey',
    'passphrase',
  ]) {
    assert.ok(isSecretFieldName(name), name);
  }
  for (const name of [
    'user',
    'credential_id',
    'asset_tag',
    'device_id',
    'public_key',
    'key',
    'hotplug',
    'notes',
  ]) {
    assert.ok(!isSecretFieldName(name), name);
  }
});

test('the stored-event schema keeps type-specific fields and requires the envelope', () => {
  const event = {
    id: 'e1',
    code: 'W1000I',
    type: 'user.login',
    time: '2026-01-01T00:00:00.000Z',
    success: true,
    user: 'alice',
    method: 'local',
  };
  assert.deepEqual(AuditEventSchema.parse(event), event);
  assert.equal(AuditEventSchema.safeParse({ ...event, success: 'yes' }).success, false);
  const { id: _id, ...noId } = event;
  assert.equal(AuditEventSchema.safeParse(noId).success, false);
});

test('type-specific field schemas validate input', () => {
  const ok: AuditEventInput = {
    type: 'access.denied',
    success: false,
    user: 'bob',
    protocol: 'ssh',
    resource: { kind: 'node', name: 'web1' },
    login: 'root',
  };
  assert.equal(auditEventCatalogue['access.denied'].fields.safeParse(ok).success, true);
  assert.equal(
    auditEventCatalogue['access.denied'].fields.safeParse({ ...ok, protocol: 'telnet' }).success,
    false,
  );
  assert.equal(auditEventCatalogue['role.created'].fields.safeParse({}).success, false);
});

test('AuditEventInput is typed per event type', () => {
  const fine: AuditEventInput = { type: 'role.created', name: 'auditor', user: 'admin' };
  // @ts-expect-error: role.created needs its name
  const missing: AuditEventInput = { type: 'role.created' };
  const wrong: AuditEventInput = {
    type: 'session.start',
    // @ts-expect-error: protocol must be one of the catalogue's protocols
    protocol: 'telnet',
    session_id: 's',
    resource: fine as never,
  };
  assert.ok(fine && missing && wrong);
});
