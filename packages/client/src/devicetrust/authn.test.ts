import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, test } from 'node:test';
import { rpc, WardenError } from '@warden/api';
import { FakeDevice } from '../../../../test/support/fake-device';
import { UserKey } from '../keys';
import { type LoadedProfile, ProfileStore } from '../profile';
import { type AuthnApi, AuthnCeremony, authenticateDevice, DEVICE_TRUST_DISABLED } from './authn';
import { DeviceCache } from './cache';

const b64 = (a: number[] | Uint8Array) => Buffer.from(a).toString('base64');

function fakeApi(opts: { failBegin?: Error; failFinish?: Error } = {}) {
  const sent: unknown[] = [];
  const api: AuthnApi = {
    async deviceAuthnBegin(req) {
      sent.push(req);
      if (opts.failBegin) throw opts.failBegin;
      return { session_id: 'sess-9', nonce: b64([5, 6]), pcr_selection: [{ hash: 11, pcrs: [0] }] };
    },
    async deviceAuthnFinish(req) {
      sent.push(req);
      if (opts.failFinish) throw opts.failFinish;
      return {
        ssh_cert: 'ecdsa-sha2-nistp256-cert-v01@openssh.com AUGMENTED',
        tls_cert: '-----BEGIN CERTIFICATE-----\nAUGMENTED\n-----END CERTIFICATE-----\n',
        expires: '2026-01-01T08:00:00.000Z',
        device: { id: 'dev-1', os_type: 'linux', asset_tag: 'TAG1', enroll_status: 'enrolled' },
      };
    },
  };
  return { api, sent };
}

describe('AuthnCeremony (client)', () => {
  test('1. credential + data → begin, 2. quote + user-key signature → finish', async () => {
    const key = UserKey.generate();
    const dev = new FakeDevice({ withCredential: true });
    const c = new AuthnCeremony({ userKey: key });
    c.openDevice = async () => dev;
    const { api, sent } = fakeApi();
    const { result } = await c.run(api);
    assert.equal(result.device.id, 'dev-1');
    assert.deepEqual(dev.calls, [
      'credential(load)',
      'collectDeviceData',
      'quote(5,6,[{"hash":11,"pcrs":[0]}])',
    ]);
    assert.deepEqual(sent[0], {
      credential_id: FakeDevice.credential().id,
      device_data: { collect_time: '2026-01-01T00:00:00.000Z', os_type: 'linux', serial_number: 'TAG1' },
    });
    const finish = sent[1] as rpc.DeviceAuthnFinishRequest;
    assert.equal(finish.session_id, 'sess-9');
    // The signature is by the user's key over the domain-separated nonce and session ID.
    const { verify } = await import('node:crypto');
    const data = rpc.deviceAuthnSignedData(new Uint8Array([5, 6]), 'sess-9');
    assert.ok(verify('sha256', data, key.publicKey, Buffer.from(finish.ssh_signature, 'base64')));
    assert.ok(
      !verify(
        'sha256',
        rpc.deviceAuthnSignedData(new Uint8Array([5, 6]), 'other'),
        key.publicKey,
        Buffer.from(finish.ssh_signature, 'base64'),
      ),
    );
    assert.ok(dev.closed);
  });

  test('no credential on this machine: refused before asking the server', async () => {
    const c = new AuthnCeremony({ userKey: UserKey.generate() });
    const dev = new FakeDevice();
    c.openDevice = async () => dev;
    const { api, sent } = fakeApi();
    await assert.rejects(c.run(api), /no device credential; enroll it with `wsh device enroll/);
    assert.equal(sent.length, 0);
  });
});

describe('authenticateDevice (inside wsh login)', () => {
  let root: string;
  let store: ProfileStore;
  let profile: LoadedProfile;
  let env: NodeJS.ProcessEnv;
  const key = UserKey.generate();

  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'warden-authn-'));
    store = new ProfileStore(join(root, 'home'));
    env = { WARDEN_DEVICE_CACHE: join(root, 'device') };
    profile = store.save(
      {
        proxy: '127.0.0.1:3080',
        cluster: 'warden',
        user: 'alice',
        roles: ['access'],
        logins: ['alice'],
        expires: '2026-01-01T08:00:00.000Z',
        insecure: false,
      },
      {
        keyPem: key.privatePem(),
        sshPublicKey: key.sshPublicKey(),
        sshCert: 'ecdsa-sha2-nistp256-cert-v01@openssh.com PLAIN',
        tlsCert: '-----BEGIN CERTIFICATE-----\nPLAIN\n-----END CERTIFICATE-----\n',
        userCaPems: [],
        hostCaPems: [],
        knownHosts: '@cert-authority * x',
      },
    );
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  const enrolledHere = () => {
    const cache = new DeviceCache(env.WARDEN_DEVICE_CACHE!);
    cache.save(FakeDevice.credential());
    cache.recordEnrollment({
      cluster: 'warden',
      proxy: '127.0.0.1:3080',
      deviceId: 'dev-1',
      assetTag: 'TAG1',
      time: 't',
    });
  };
  const ceremony = () => {
    const c = new AuthnCeremony({ userKey: key, env });
    c.openDevice = async () => new FakeDevice({ withCredential: true });
    return c;
  };

  test('skipped when this machine is not enrolled in the cluster', async () => {
    const r = await authenticateDevice(store, profile, { env });
    assert.equal(r.outcome, 'skipped');
    assert.equal(store.require().sshCert, profile.sshCert);
  });

  test('success stores the augmented certificates in the profile', async () => {
    enrolledHere();
    const { api } = fakeApi();
    const r = await authenticateDevice(store, profile, { env, ceremony: ceremony(), api });
    assert.equal(r.outcome, 'authenticated');
    const saved = store.require();
    assert.match(saved.sshCert, /AUGMENTED/);
    assert.match(saved.tlsCert, /AUGMENTED/);
    assert.equal(saved.keyPem, profile.keyPem);
  });

  test('a refusal leaves the plain certificates; DEVICE_TRUST_DISABLED (the code) is a quiet skip', async () => {
    enrolledHere();
    const refused = fakeApi({
      failFinish: new WardenError('WARDEN_ERR_DEVICE_AUTHN_FAILED', 'device authentication failed'),
    });
    const r = await authenticateDevice(store, profile, { env, ceremony: ceremony(), api: refused.api });
    assert.equal(r.outcome, 'failed');
    assert.equal(r.outcome === 'failed' && r.error.message, 'device authentication failed');
    assert.match(store.require().sshCert, /PLAIN/);
    const text = 'device trust disabled by cluster settings';
    const off = fakeApi({ failBegin: new WardenError(DEVICE_TRUST_DISABLED, text) });
    const s = await authenticateDevice(store, profile, { env, ceremony: ceremony(), api: off.api });
    assert.deepEqual(s, { outcome: 'skipped', reason: text });
    // The decision is the code's, not the text's: the same words under another code are a failure.
    const lookalike = fakeApi({ failBegin: new WardenError('WARDEN_ERR_ACCESS_DENIED', text) });
    const f = await authenticateDevice(store, profile, { env, ceremony: ceremony(), api: lookalike.api });
    assert.equal(f.outcome, 'failed');
  });
});
