/**
 * The device inventory as the auth service serves it (issue 5): `addDevice`, enrollment
 * tokens, resources (`get`/`put`/`delete` of kind device, by ID or asset tag), permissions,
 * device locks with their warnings, and the cluster auth preference's origin label.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { AUTH_PREFERENCE_NAME, type DeviceResource } from '@warden/api';
import { CLIENT_ADDR, startTestCluster, type TestCluster } from '../../../../test/support/auth-cluster';
import { akCredentialKeys } from '../../../../test/support/soft-tpm';
import { rejectsWith } from '../../../../test/support/warden-errors';

const credential = {
  id: '6c9f0a1e-0000-4000-8000-000000000001',
  ...akCredentialKeys(),
  attestation_type: 'tpm_ekpub' as const,
};

async function userCaller(c: TestCluster, name: string, roles: string[]) {
  const { totpSecret } = await c.signUp(name, roles, ['root']);
  const login = await c.auth.login(c.loginRequest(name, c.nextOtp(totpSecret!)), CLIENT_ADDR);
  return c.callerOf(login);
}

async function setMode(c: TestCluster, mode: 'off' | 'optional' | 'required'): Promise<void> {
  await c.auth.putResource(
    c.admin,
    {
      kind: 'cluster_auth_preference',
      version: 'v2',
      metadata: { name: AUTH_PREFERENCE_NAME },
      spec: { type: 'local', second_factor: 'otp', device_trust: { mode } },
    },
    { force: true },
  );
}

describe('devices through the auth service', () => {
  test('addDevice with enroll returns the device and a token with the wsh command', async () => {
    const c = await startTestCluster();
    const res = await c.auth.addDevice(c.admin, {
      os_type: 'linux',
      asset_tag: 'C00AA0AAAA0A',
      enroll: true,
    });
    const device = res.device as unknown as DeviceResource;
    assert.equal(device.spec.asset_tag, 'C00AA0AAAA0A');
    const t = res.enroll_token!;
    assert.equal(t.device_id, device.metadata.name);
    assert.equal(t.enroll_command, `wsh device enroll --token=${t.token}`);
    assert.equal(Date.parse(t.expires) - c.clock.now(), 60 * 60 * 1000);
    assert.equal((await c.auth.devices.spendEnrollToken(t.token)).metadata.name, device.metadata.name);
    // A bad token lifetime leaves nothing behind.
    await rejectsWith(
      c.auth.addDevice(c.admin, {
        os_type: 'linux',
        asset_tag: 'X1',
        enroll: true,
        enroll_ttl_ms: 48 * 3_600_000,
      }),
      'WARDEN_ERR_BAD_PARAMETER',
      /at most 24h/,
    );
    assert.equal((await c.auth.listResources(c.admin, 'device')).length, 1);
    // Without enroll: no token.
    const plain = await c.auth.addDevice(c.admin, { os_type: 'macos', asset_tag: 'MAC1', enroll: false });
    assert.equal(plain.enroll_token, undefined);
    // A new token by asset tag, with a TTL.
    const again = await c.auth.createDeviceEnrollToken(c.admin, { device: 'MAC1', ttl_ms: 10 * 60 * 1000 });
    assert.equal(again.os_type, 'macos');
    assert.equal(Date.parse(again.expires) - c.clock.now(), 10 * 60 * 1000);
  });

  test('resources: list, get and delete by ID or asset tag; ambiguity asks for the ID', async () => {
    const c = await startTestCluster();
    const a = (await c.auth.addDevice(c.admin, { os_type: 'linux', asset_tag: 'T1', enroll: false })).device;
    await c.auth.addDevice(c.admin, { os_type: 'windows', asset_tag: 'T2', enroll: false });
    assert.equal((await c.auth.listResources(c.admin, 'device')).length, 2);
    const byTag = await c.auth.getResource(c.admin, 'device', 'T1');
    assert.equal(byTag.metadata.name, (a as { metadata: { name: string } }).metadata.name);
    await c.auth.addDevice(c.admin, { os_type: 'macos', asset_tag: 'T1', enroll: false });
    await rejectsWith(
      c.auth.getResource(c.admin, 'device', 'T1'),
      'WARDEN_ERR_BAD_PARAMETER',
      /use the device ID/,
    );
    await rejectsWith(
      c.auth.deleteResource(c.admin, 'device', 'T1'),
      'WARDEN_ERR_BAD_PARAMETER',
      /use the device ID/,
    );
    await c.auth.deleteResource(c.admin, 'device', 'T2');
    await rejectsWith(
      c.auth.getResource(c.admin, 'device', 'T2'),
      'WARDEN_ERR_NOT_FOUND',
      /^device "T2" not found$/,
    );
    const types = (await c.audit.search({ types: ['device.delete'] })).map((e) => e.code);
    assert.deepEqual(types, ['W5001I']);
  });

  test('edit with enroll_status not_enrolled unenrolls; create refuses enrolled devices', async () => {
    const c = await startTestCluster();
    const added = (await c.auth.addDevice(c.admin, { os_type: 'linux', asset_tag: 'E1', enroll: false }))
      .device as unknown as DeviceResource;
    await c.auth.devices.enroll(added.metadata.name, credential, {
      collect_time: new Date(c.clock.now()).toISOString(),
      os_type: 'linux',
    });
    const current = (await c.auth.getResource(c.admin, 'device', 'E1')) as DeviceResource;
    assert.equal(current.spec.enroll_status, 'enrolled');
    const out = await c.auth.putResource(
      c.admin,
      { ...current, spec: { ...current.spec, enroll_status: 'not_enrolled' } },
      { force: true, expectedRevision: current.metadata.revision! },
    );
    assert.equal(out.outcome, 'updated');
    const after = (await c.auth.getResource(c.admin, 'device', 'E1')) as DeviceResource;
    assert.equal(after.spec.enroll_status, 'not_enrolled');
    assert.equal(after.spec.credential, undefined);
    await rejectsWith(
      c.auth.putResource(
        c.admin,
        {
          kind: 'device',
          version: 'v1',
          metadata: { name: '11111111-2222-4333-8444-555555555555' },
          spec: { os_type: 'linux', asset_tag: 'E2', enroll_status: 'enrolled', credential },
        },
        { force: false },
      ),
      'WARDEN_ERR_BAD_PARAMETER',
      /cannot be enrolled/,
    );
    const made = await c.auth.putResource(
      c.admin,
      {
        kind: 'device',
        version: 'v1',
        metadata: { name: '11111111-2222-4333-8444-555555555555' },
        spec: { os_type: 'linux', asset_tag: 'E2' },
      },
      { force: false },
    );
    assert.equal(made.outcome, 'created');
  });

  test('permissions: the device kind (editor yes, access no)', async () => {
    const c = await startTestCluster();
    const editor = await userCaller(c, 'ed', ['editor']);
    const access = await userCaller(c, 'al', ['access']);
    await c.auth.addDevice(editor, { os_type: 'linux', asset_tag: 'P1', enroll: true });
    await c.auth.createDeviceEnrollToken(editor, { device: 'P1' });
    assert.equal((await c.auth.listResources(editor, 'device')).length, 1);
    await rejectsWith(
      c.auth.addDevice(access, { os_type: 'linux', asset_tag: 'P2', enroll: false }),
      'WARDEN_ERR_ACCESS_DENIED',
    );
    await rejectsWith(c.auth.createDeviceEnrollToken(access, { device: 'P1' }), 'WARDEN_ERR_ACCESS_DENIED');
    await rejectsWith(c.auth.listResources(access, 'device'), 'WARDEN_ERR_ACCESS_DENIED');
    await rejectsWith(c.auth.deleteResource(access, 'device', 'P1'), 'WARDEN_ERR_ACCESS_DENIED');
    await c.auth.deleteResource(editor, 'device', 'P1');
  });

  test('a device lock is created, with warnings when it has no effect', async () => {
    const c = await startTestCluster();
    const dev = (await c.auth.addDevice(c.admin, { os_type: 'linux', asset_tag: 'L1', enroll: false }))
      .device as unknown as DeviceResource;
    const id = dev.metadata.name;
    // Not enrolled (mode optional by default): one warning.
    const a = await c.auth.createLock(c.admin, { target: { device: id }, ttl_ms: 3_600_000 });
    assert.deepEqual(a.warnings, ['device L1/Linux is not enrolled: the lock has no effect until it is']);
    assert.ok(await c.services.locks.find(a.name));
    // Enrolled, device trust on: no warning.
    await c.auth.devices.enroll(id, credential, {
      collect_time: new Date(c.clock.now()).toISOString(),
      os_type: 'linux',
    });
    const b = await c.auth.createLock(c.admin, { target: { device: id } });
    assert.equal(b.warnings, undefined);
    // Device trust off: warned.
    await setMode(c, 'off');
    const off = await c.auth.createLock(c.admin, { target: { device: id } });
    assert.equal(off.warnings?.length, 1);
    assert.match(off.warnings![0]!, /device trust is off .*the lock has no effect/);
    // An asset tag or an unknown ID instead of a device ID: warned, lock still made.
    await setMode(c, 'optional');
    const tag = await c.auth.createLock(c.admin, { target: { device: 'L1' } });
    assert.match(tag.warnings![0]!, new RegExp(`"L1" is an asset tag, not a device ID.*${id}`));
    const unknown = await c.auth.createLock(c.admin, { target: { device: 'nope' } });
    assert.deepEqual(unknown.warnings, [
      'no device with ID "nope" is in the inventory: the lock has no effect',
    ]);
    // Locks on users carry no warnings.
    assert.equal((await c.auth.createLock(c.admin, { target: { user: 'bob' } })).warnings, undefined);
  });

  test('the cluster auth preference says where it came from', async () => {
    const c = await startTestCluster();
    const def = await c.auth.getResource(c.admin, 'cluster_auth_preference', AUTH_PREFERENCE_NAME);
    assert.deepEqual(def.metadata.labels, { 'warden.dev/origin': 'default' });
    await setMode(c, 'required');
    const dyn = await c.auth.getResource(c.admin, 'cluster_auth_preference', AUTH_PREFERENCE_NAME);
    assert.deepEqual(dyn.metadata.labels, { 'warden.dev/origin': 'dynamic' });
  });
});
