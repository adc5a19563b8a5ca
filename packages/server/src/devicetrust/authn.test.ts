import assert from 'node:assert/strict';
import { generateKeyPairSync, randomUUID, X509Certificate } from 'node:crypto';
import { afterEach, beforeEach, describe, test } from 'node:test';
import {
  AUTH_PREFERENCE_NAME,
  type DeviceResource,
  type DeviceTrustMode,
  type ErrorCode,
  parseIdentityFromCertificate,
  parseSshCertificate,
  type rpc,
  SshDeviceExtensions,
} from '@warden/api';
import { ASSET_TAG, ADMIN as admin, startEnrolledDevice } from '../../../../test/support/enrolled-device';
import { callerOf as callerAt, loggedIn } from '../../../../test/support/logged-in';
import { SoftTpm } from '../../../../test/support/soft-tpm';
import { refusedWith as refused } from '../../../../test/support/warden-errors';
import type { Identity } from '../access';
import type { MemoryAuditLog } from '../audit';
import type { CertAuthorities } from '../ca';
import type { FakeClock } from '../clock';
import type { AccessViews, Services } from '../services';
import { AuthnErrorCodes, AuthnErrors, DeviceAuthentication } from './authn';
import type { DeviceInventory } from './inventory';

const refusedWith = (message: string | RegExp, code: ErrorCode = 'WARDEN_ERR_ACCESS_DENIED') =>
  refused(message, code);

describe('DeviceAuthentication', () => {
  let clock: FakeClock;
  let audit: MemoryAuditLog;
  let services: Services;
  let cas: CertAuthorities;
  let inventory: DeviceInventory;
  let authn: DeviceAuthentication;
  let device: DeviceResource;
  let tpm: SoftTpm;
  let credentialId: string;
  /** The live views behind the ceremony's access checker (as in `warden start`). */
  let views: AccessViews;

  /** Until the live views show `done` (a write reaches them through the watch). */
  const synced = async (done: () => boolean) => {
    for (let i = 0; !done(); i++) {
      if (i > 1000) assert.fail('the live views did not catch up');
      await new Promise((r) => setImmediate(r));
    }
  };
  const setMode = async (mode: DeviceTrustMode) => {
    const cap = await services.authPreference.get();
    await services.authPreference.upsert({
      ...cap,
      metadata: { name: AUTH_PREFERENCE_NAME },
      spec: { ...cap.spec, device_trust: { ...cap.spec.device_trust, mode } },
    });
    await synced(() => views.preference.get(AUTH_PREFERENCE_NAME)?.spec.device_trust.mode === mode);
  };

  let close: () => Promise<void>;

  beforeEach(async () => {
    // An enrolled device, cluster device trust optional (test/support/enrolled-device.ts).
    const f = await startEnrolledDevice({ mode: 'optional', deviceData: { hostname: 'laptop' } });
    ({ clock, audit, services, cas, inventory, views, device, tpm, credentialId, close } = f);
    authn = new DeviceAuthentication({ ...f.deps, cas, checker: f.checker });
  });
  afterEach(() => close());

  function data(over: Partial<rpc.DeviceData> = {}): rpc.DeviceData {
    return {
      collect_time: new Date(clock.now()).toISOString(),
      os_type: 'linux',
      serial_number: ASSET_TAG,
      hostname: 'laptop',
      ...over,
    };
  }

  /** alice logged in (test/support/logged-in.ts): key, certificates, the caller the proxy sees. */
  const login = (opts: { roles?: string[] } = {}) => loggedIn(cas, clock.now(), opts);
  /** What AuthServer.identify makes of a certificate. */
  const callerOf = (tlsCert: string) => callerAt(cas, tlsCert, clock.now());

  type Login = Awaited<ReturnType<typeof login>>;
  const finishReq = (
    u: Login,
    begin: rpc.DeviceAuthnBeginResponse,
    over: { quote?: rpc.TpmQuote; signer?: Login['key']['privateKey'] } = {},
  ): rpc.DeviceAuthnFinishRequest => ({
    ...tpm.authnFinishRequest(begin, over.signer ?? u.key.privateKey),
    ...(over.quote ? { quote: over.quote } : {}),
  });

  test('augments the certificates: same NotAfter, the three extensions, audited', async () => {
    const u = await login();
    const begin = await authn.begin(u.caller, { credential_id: credentialId, device_data: data() });
    const res = await authn.finish(u.caller, finishReq(u, begin));
    assert.equal(res.expires, u.issued.notAfter.toISOString());
    const ssh = parseSshCertificate(res.ssh_cert);
    assert.equal(Number(ssh.validBefore) * 1000, u.issued.notAfter.getTime());
    assert.equal(ssh.extensions[SshDeviceExtensions.deviceId], device.metadata.name);
    assert.equal(ssh.extensions[SshDeviceExtensions.assetTag], ASSET_TAG);
    assert.equal(ssh.extensions[SshDeviceExtensions.credentialId], credentialId);
    assert.deepEqual(ssh.validPrincipals, ['alice']);
    const tls = parseIdentityFromCertificate(res.tls_cert);
    assert.deepEqual(tls.device, { deviceId: device.metadata.name, assetTag: ASSET_TAG, credentialId });
    assert.equal(new X509Certificate(res.tls_cert).validTo, new X509Certificate(u.issued.tlsCert).validTo);
    const events = await audit.search({ order: 'asc', types: ['device.authenticate', 'cert.create'] });
    assert.deepEqual(
      events.map((e) => [e.type, e.success, e.device?.id]),
      [
        ['device.authenticate', true, device.metadata.name],
        ['cert.create', true, device.metadata.name],
      ],
    );
    assert.equal((await inventory.get(device.metadata.name)).spec.collected_data?.length, 2);
    // A certificate that already carries the device is never augmented again.
    await assert.rejects(
      authn.begin(callerOf(res.tls_cert), { credential_id: credentialId, device_data: data() }),
      refusedWith(AuthnErrors.alreadyAugmented, AuthnErrorCodes.alreadyAugmented),
    );
  });

  test('mode off refuses; a role that requires a device turns it on for its holders', async () => {
    await setMode('off');
    const u = await login();
    await assert.rejects(
      authn.begin(u.caller, { credential_id: credentialId, device_data: data() }),
      refusedWith(AuthnErrors.disabled, AuthnErrorCodes.disabled),
    );
    const r = await login({ roles: ['access', 'require-trusted-device'] });
    const begin = await authn.begin(r.caller, { credential_id: credentialId, device_data: data() });
    await authn.finish(r.caller, finishReq(r, begin));
  });

  test('unknown, unenrolled and deleted devices, and unknown credentials, are refused', async () => {
    const u = await login();
    const begin = (credential_id: string, d = data()) =>
      authn.begin(u.caller, { credential_id, device_data: d });
    await assert.rejects(
      begin(randomUUID(), data({ serial_number: 'NOT-IN-INVENTORY' })),
      refusedWith(AuthnErrors.notFound, AuthnErrorCodes.notFound),
    );
    await assert.rejects(
      begin(randomUUID()),
      refusedWith(AuthnErrors.unknownCredential, AuthnErrorCodes.unknownCredential),
    );
    const other = await inventory.add(admin, { osType: 'linux', assetTag: 'OTHER' });
    await assert.rejects(
      begin(randomUUID(), data({ serial_number: other.spec.asset_tag })),
      refusedWith(AuthnErrors.notEnrolled, AuthnErrorCodes.notEnrolled),
    );
    // Unenrolled by an admin.
    const stored = await inventory.get(device.metadata.name);
    await inventory.update(admin, { ...stored, spec: { ...stored.spec, enroll_status: 'not_enrolled' } });
    await assert.rejects(
      begin(credentialId),
      refusedWith(AuthnErrors.notEnrolled, AuthnErrorCodes.notEnrolled),
    );
    // Deleted.
    await inventory.remove(admin, device.metadata.name);
    await assert.rejects(begin(credentialId), refusedWith(AuthnErrors.notFound, AuthnErrorCodes.notFound));
    const failures = await audit.search({ order: 'asc', types: ['device.authenticate'] });
    assert.equal(failures.length, 5);
    assert.ok(failures.every((e) => e.success === false && e.code === 'W5004W'));
  });

  test('a device deleted or unenrolled between begin and finish is refused at finish', async () => {
    const u = await login();
    const begin = await authn.begin(u.caller, { credential_id: credentialId, device_data: data() });
    await inventory.remove(admin, device.metadata.name);
    await assert.rejects(
      authn.finish(u.caller, finishReq(u, begin)),
      refusedWith(AuthnErrors.notFound, AuthnErrorCodes.notFound),
    );
  });

  test('a lock on the device refuses begin and finish with the lock message', async () => {
    const u = await login();
    const begin = await authn.begin(u.caller, { credential_id: credentialId, device_data: data() });
    const lock = await services.locks.create({
      kind: 'lock',
      version: 'v2',
      metadata: { name: randomUUID() },
      spec: { target: { device: device.metadata.name } },
    });
    await synced(() => views.locks.get(lock.metadata.name) !== undefined);
    const message = `lock targeting Device:"${device.metadata.name}" is in force`;
    await assert.rejects(
      authn.finish(u.caller, finishReq(u, begin)),
      refusedWith(message, 'WARDEN_ERR_LOCKED'),
    );
    await assert.rejects(
      authn.begin(u.caller, { credential_id: credentialId, device_data: data() }),
      refusedWith(message, 'WARDEN_ERR_LOCKED'),
    );
  });

  test('replayed nonces and quotes, quotes by another AK and signatures by another key are refused', async () => {
    const u = await login();
    const begin = await authn.begin(u.caller, { credential_id: credentialId, device_data: data() });
    const good = finishReq(u, begin);
    await authn.finish(u.caller, good);
    // The same finish again: the session is spent.
    await assert.rejects(
      authn.finish(u.caller, good),
      refusedWith(AuthnErrors.failed, AuthnErrorCodes.failed),
    );
    // A new session, answered with the old quote (over the old nonce).
    const again = await authn.begin(u.caller, { credential_id: credentialId, device_data: data() });
    await assert.rejects(
      authn.finish(u.caller, finishReq(u, again, { quote: good.quote })),
      refusedWith(AuthnErrors.failed, AuthnErrorCodes.failed),
    );
    // A quote by another AK.
    const third = await authn.begin(u.caller, { credential_id: credentialId, device_data: data() });
    const otherAk = new SoftTpm().quote(Buffer.from(third.nonce, 'base64'), third.pcr_selection);
    await assert.rejects(
      authn.finish(u.caller, finishReq(u, third, { quote: otherAk })),
      refusedWith(AuthnErrors.failed, AuthnErrorCodes.failed),
    );
    // The user's key did not sign (another key did).
    const fourth = await authn.begin(u.caller, { credential_id: credentialId, device_data: data() });
    const stranger = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
    await assert.rejects(
      authn.finish(u.caller, finishReq(u, fourth, { signer: stranger })),
      refusedWith(AuthnErrors.failed, AuthnErrorCodes.failed),
    );
    // Begun by one certificate, finished with another (another login of the same user).
    const fifth = await authn.begin(u.caller, { credential_id: credentialId, device_data: data() });
    const v = await login();
    await assert.rejects(
      authn.finish(v.caller, finishReq(v, fifth)),
      refusedWith(AuthnErrors.failed, AuthnErrorCodes.failed),
    );
    const reasons = (await audit.search({ order: 'asc', types: ['device.authenticate'] }))
      .filter((e) => !e.success)
      .map((e) => e.error);
    assert.equal(reasons.length, 5);
    assert.match(reasons[1]!, /^device authentication failed: quote: .*nonce/);
    assert.match(reasons[2]!, /^device authentication failed: quote: .*not signed by the expected key/);
    assert.match(reasons[3]!, /signature by the user's key/);
    assert.match(reasons[4]!, /another certificate/);
  });

  test('identities as identify shares them (frozen, reused): a session finishes only with the certificate that began it', async () => {
    const frozen = (c: Identity): Identity => Object.freeze({ ...c, cert: Object.freeze({ ...c.cert! }) });
    const [u, v] = [await login(), await login()];
    const [a, b] = [frozen(u.caller), frozen(v.caller)];
    // Each certificate begins once first (its key hash is then remembered).
    for (const [who, caller] of [
      [u, a],
      [v, b],
    ] as const) {
      const begin = await authn.begin(caller, { credential_id: credentialId, device_data: data() });
      await authn.finish(caller, finishReq(who, begin));
    }
    const begun = await authn.begin(a, { credential_id: credentialId, device_data: data() });
    await assert.rejects(
      authn.finish(b, finishReq(v, begun)),
      refusedWith(AuthnErrors.failed, AuthnErrorCodes.failed),
    );
    const again = await authn.begin(b, { credential_id: credentialId, device_data: data() });
    const res = await authn.finish(b, finishReq(v, again));
    assert.equal(parseIdentityFromCertificate(res.tls_cert).device?.deviceId, device.metadata.name);
    const reasons = (await audit.search({ order: 'asc', types: ['device.authenticate'] }))
      .filter((e) => !e.success)
      .map((e) => e.error);
    assert.deepEqual(reasons, [
      'device authentication failed: the session was begun with another certificate',
    ]);
  });

  test('the device data must name the enrolled device; an expired session is refused', async () => {
    const u = await login();
    await assert.rejects(
      authn.begin(u.caller, {
        credential_id: credentialId,
        device_data: data({ serial_number: 'ELSEWHERE' }),
      }),
      refusedWith(AuthnErrors.failed, AuthnErrorCodes.failed),
    );
    const begin = await authn.begin(u.caller, { credential_id: credentialId, device_data: data() });
    clock.advance(6 * 60 * 1000);
    await assert.rejects(
      authn.finish(u.caller, finishReq(u, begin)),
      refusedWith(AuthnErrors.failed, AuthnErrorCodes.failed),
    );
  });
});
