import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
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

  test('the TPM gets ready while begin is on its way and is closed while finish is', async () => {
    const events: string[] = [];
    const dev: FakeDevice & { prepare?: () => Promise<void> } = new FakeDevice({ withCredential: true });
    let beginAnswered!: () => void;
    const answered = new Promise<void>((r) => {
      beginAnswered = r;
    });
    dev.prepare = async () => {
      events.push('prepare');
      beginAnswered();
    };
    const close = dev.close.bind(dev);
    dev.close = async () => {
      events.push('close');
      await close();
    };
    const c = new AuthnCeremony({ userKey: UserKey.generate() });
    c.openDevice = async () => dev;
    const { api } = fakeApi();
    const result = await c.run({
      // begin answers only once prepare ran: both were under way at once.
      deviceAuthnBegin: async (req) => {
        events.push('begin');
        await answered;
        return api.deviceAuthnBegin(req);
      },
      deviceAuthnFinish: async (req) => {
        events.push('finish');
        await new Promise((r) => setTimeout(r, 5));
        events.push('finished');
        return api.deviceAuthnFinish(req);
      },
    });
    assert.deepEqual(events, ['prepare', 'begin', 'close', 'finish', 'finished']);
    assert.ok(dev.closed);
    // Only the quote (and the start) waited for the device alone; the RPCs overlapped the rest.
    const t = result.timings;
    assert.ok(t.serverMs >= 5 && t.deviceOnlyMs <= t.deviceMs, JSON.stringify(t));
  });

  test("begin's refusal wins over a TPM failure, and the device is closed after it settled", async () => {
    const dev: FakeDevice & { prepare?: () => Promise<void> } = new FakeDevice({ withCredential: true });
    let settled = false;
    dev.prepare = async () => {
      await new Promise((r) => setTimeout(r, 5));
      settled = true;
      throw new WardenError('WARDEN_ERR_CONNECTION', 'cannot talk to the TPM');
    };
    let closedAfter: boolean | undefined;
    dev.close = async () => {
      closedAfter = settled;
    };
    const c = new AuthnCeremony({ userKey: UserKey.generate() });
    c.openDevice = async () => dev;
    const off = fakeApi({ failBegin: new WardenError(DEVICE_TRUST_DISABLED, 'off') });
    await assert.rejects(c.run(off.api), (e: Error) => (e as WardenError).code === DEVICE_TRUST_DISABLED);
    assert.equal(closedAfter, true);
    // With begin answered, the TPM's failure is the ceremony's: no finish is sent.
    const { api, sent } = fakeApi();
    await assert.rejects(c.run(api), /cannot talk to the TPM/);
    assert.equal(sent.length, 1);
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
    assert.deepEqual({ ...saved, sshCert: '', tlsCert: '' }, { ...profile, sshCert: '', tlsCert: '' });
    assert.equal(r.outcome === 'authenticated' && r.profile.tlsCert, saved.tlsCert);
  });

  test('success writes only the certificates (and profile.json when the expiry changed)', async () => {
    enrolledHere();
    const kubeExec = join(profile.dir, 'kube', 'exec');
    mkdirSync(kubeExec, { recursive: true });
    writeFileSync(join(kubeExec, 'c.cred'), '{}');
    const before = new Map(readdirSync(profile.dir).map((f) => [f, statSync(join(profile.dir, f)).mtimeMs]));
    await new Promise((r) => setTimeout(r, 20));
    const { api } = fakeApi();
    await authenticateDevice(store, profile, { env, ceremony: ceremony(), api });
    const changed = readdirSync(profile.dir).filter(
      (f) => statSync(join(profile.dir, f)).mtimeMs !== before.get(f),
    );
    assert.deepEqual(changed.sort(), ['key-cert.pub', 'kube', 'tls.pem']);
    // The kube exec plugin's cached credentials stood for the plain certificates.
    assert.equal(existsSync(kubeExec), false);
    const later = fakeApi();
    const finish = later.api.deviceAuthnFinish;
    later.api.deviceAuthnFinish = async (req) => ({
      ...(await finish(req)),
      expires: '2026-01-01T09:00:00.000Z',
    });
    await authenticateDevice(store, profile, { env, ceremony: ceremony(), api: later.api });
    assert.equal(store.require().expires, '2026-01-01T09:00:00.000Z');
    assert.equal(store.require().user, 'alice');
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
