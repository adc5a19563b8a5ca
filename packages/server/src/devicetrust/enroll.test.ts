import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { afterEach, beforeEach, describe, test } from 'node:test';
import {
  AUTH_PREFERENCE_NAME,
  type AuthPreferenceResource,
  type DeviceResource,
  type ErrorCode,
  type rpc,
} from '@warden/api';
import { AK_ATTRIBUTES, publicKeyFromTpmt, TPMA_OBJECT } from '@warden/tpm';
import { createTestEkCa, SoftTpm, type TestEkCa } from '../../../../test/support/soft-tpm';
import { refusedWith as refused } from '../../../../test/support/warden-errors';
import {
  AccessChecker,
  type Identity,
  liveAccessChecker,
  makeIdentity,
  NO_CLUSTER_SETTINGS,
} from '../access';
import { MemoryAuditLog } from '../audit';
import { MemoryBackend } from '../backend';
import { FakeClock } from '../clock';
import { silentLogger } from '../log';
import { type AccessViews, createServices, type Services } from '../services';
import { DEVICE_PCR_SELECTION } from './ceremony';
import { DeviceEnrollment, EnrollErrors } from './enroll';
import { DeviceInventory } from './inventory';

const admin = { user: 'admin' };
const ASSET_TAG = 'C00AA0AAAA0A';

const refusedWith = (message: string | RegExp, code: ErrorCode = 'WARDEN_ERR_DEVICE_ATTESTATION_FAILED') =>
  refused(message, code);

describe('DeviceEnrollment', () => {
  let clock: FakeClock;
  let backend: MemoryBackend;
  let audit: MemoryAuditLog;
  let services: Services;
  let inventory: DeviceInventory;
  let enrollment: DeviceEnrollment;
  let views: AccessViews;
  let device: DeviceResource;
  let ca: TestEkCa;

  beforeEach(async () => {
    clock = new FakeClock(Date.now());
    backend = new MemoryBackend({ clock, reapIntervalMs: 0 });
    audit = new MemoryAuditLog({ clock });
    services = createServices({ backend, clock });
    inventory = new DeviceInventory({ services, backend, clock, audit, logger: silentLogger });
    // As `warden start`: the stored cluster settings, read through the live checker.
    await services.authPreference.upsert(await services.authPreference.get());
    views = services.accessViews({ logger: silentLogger });
    await views.start();
    const checker = liveAccessChecker(views, { clock });
    enrollment = new DeviceEnrollment({ inventory, checker, backend, clock, audit, logger: silentLogger });
    device = await inventory.add(admin, { osType: 'linux', assetTag: ASSET_TAG });
    ca ??= await createTestEkCa();
  });
  afterEach(async () => {
    views.close();
    await backend.close();
  });

  const token = async (id = device.metadata.name) => (await inventory.createEnrollToken(admin, id)).token;
  const data = (over: Partial<rpc.DeviceData> = {}): rpc.DeviceData => ({
    collect_time: new Date(clock.now()).toISOString(),
    os_type: 'linux',
    serial_number: ASSET_TAG,
    os_version: 'Test OS 1',
    os_username: 'alice',
    hostname: 'laptop',
    ...over,
  });
  const request = async (
    tpm: SoftTpm,
    over: Partial<rpc.DeviceEnrollBeginRequest> & {
      certDer?: Uint8Array;
      chainDer?: Uint8Array[];
      deviceId?: string;
    } = {},
  ): Promise<rpc.DeviceEnrollBeginRequest> => {
    const { certDer, chainDer, deviceId, ...rest } = over;
    return {
      token: await token(deviceId),
      credential_id: randomUUID(),
      device_data: data(),
      ...tpm.enrollInit({ ...(certDer ? { certDer } : {}), ...(chainDer ? { chainDer } : {}) }),
      ...rest,
    };
  };
  /** Stores device_trust settings and waits until the checker's live view has them. */
  const setDeviceTrust = async (over: Partial<AuthPreferenceResource['spec']['device_trust']>) => {
    const cap = await services.authPreference.get();
    const stored = await services.authPreference.upsert({
      ...cap,
      metadata: { name: AUTH_PREFERENCE_NAME },
      spec: { ...cap.spec, device_trust: { ...cap.spec.device_trust, ...over } },
    });
    for (
      let i = 0;
      views.preference.get(AUTH_PREFERENCE_NAME)?.metadata.revision !== stored.metadata.revision;
      i++
    ) {
      if (i > 1000) assert.fail('the live view did not catch up');
      await new Promise((r) => setImmediate(r));
    }
  };
  const setAllowedCas = (pems: string[]) => setDeviceTrust({ ekcert_allowed_cas: pems });
  /** The whole ceremony with a well-behaved device; returns the enrolled device. */
  const enroll = async (
    tpm: SoftTpm,
    req: rpc.DeviceEnrollBeginRequest,
    caller: Identity | { clientAddr?: string } = {},
  ) => {
    const begin = await enrollment.begin(req, caller);
    return enrollment.finish(tpm.finishRequest(begin), caller);
  };
  const enrollEvents = async () =>
    (await audit.search({ order: 'asc', types: ['device.enroll'] })).map((e) => ({
      success: e.success,
      error: e.error,
      attestation_type: (e as { attestation_type?: string }).attestation_type,
    }));

  test('a bare EK enrolls as tpm_ekpub; the device holds the AK as its credential', async () => {
    const tpm = new SoftTpm();
    const req = await request(tpm);
    const res = await enroll(tpm, req, { ...makeIdentity({ user: 'alice' }), clientAddr: '10.0.0.9' });
    assert.deepEqual(res.device, {
      id: device.metadata.name,
      os_type: 'linux',
      asset_tag: ASSET_TAG,
      enroll_status: 'enrolled',
      credential_id: req.credential_id,
      attestation_type: 'tpm_ekpub',
      owner: 'alice',
    });
    const stored = await inventory.get(device.metadata.name);
    assert.equal(stored.spec.credential?.ak_public, req.ak.public);
    // The credential's public key is the AK's, derived by the server (the client sends none).
    assert.equal(
      stored.spec.credential?.public_key_der,
      publicKeyFromTpmt(tpm.ak.public).export({ type: 'spki', format: 'der' }).toString('base64'),
    );
    assert.equal(stored.spec.credential?.ek_cert_serial, undefined);
    assert.equal(stored.spec.collected_data?.at(-1)?.hostname, 'laptop');
    assert.deepEqual(await enrollEvents(), [
      { success: true, error: undefined, attestation_type: 'tpm_ekpub' },
    ]);
    // The caller's identity and address are who and where the event names.
    const [event] = await audit.search({ types: ['device.enroll'] });
    assert.deepEqual([event?.user, event?.addr], ['alice', '10.0.0.9']);
  });

  test('an EK certificate without allowed CAs is tpm_ekcert; with its CA allowed, tpm_ekcert_trusted', async () => {
    const a = new SoftTpm();
    const certA = await ca.issue(a.ek.key);
    // The TPM holds its issuer (EK certificate chain NV): the signature is checked.
    const res = await enroll(a, await request(a, { certDer: certA, chainDer: [ca.der] }));
    assert.equal(res.device.attestation_type, 'tpm_ekcert');
    const cred = (await inventory.get(device.metadata.name)).spec.credential;
    assert.match(cred?.ek_cert_serial ?? '', /^[0-9a-f]+$/);
    assert.equal(cred?.ek_cert_verified, 'tpm_root');
    assert.deepEqual(cred?.ek_cert_issuers, ['CN=Test TPM Manufacturer CA']);

    const second = await inventory.add(admin, { osType: 'linux', assetTag: 'SECOND' });
    await setAllowedCas([ca.pem]);
    const b = new SoftTpm();
    const req = await request(b, {
      certDer: await ca.issue(b.ek.key),
      device_data: data({ serial_number: 'SECOND' }),
      deviceId: second.metadata.name,
    });
    const trusted = await enroll(b, req);
    assert.equal(trusted.device.attestation_type, 'tpm_ekcert_trusted');
  });

  test('regression: a bit-flipped EK certificate, no allowed CAs: refused when the TPM holds its issuer, else not an EK certificate', async () => {
    const tpm = new SoftTpm();
    const good = await ca.issue(tpm.ek.key);
    const flipped = good.slice();
    flipped[flipped.length - 3]! ^= 0x01; // inside the signature: parsing still works
    await assert.rejects(
      enrollment.begin(await request(tpm, { certDer: flipped, chainDer: [ca.der] })),
      refusedWith(
        /^presented EKCert failed verification: the EK certificate is not signed by its issuer CN=Test TPM Manufacturer CA/,
      ),
    );
    // An issuer of the same name with another key is no better.
    const impostor = await createTestEkCa();
    await assert.rejects(
      enrollment.begin(await request(tpm, { certDer: good, chainDer: [impostor.der] })),
      refusedWith(/^presented EKCert failed verification: the EK certificate is not signed by its issuer/),
    );
    // Expired, no allowed CAs: refused too.
    const expired = await ca.issue(tpm.ek.key, { notAfter: new Date(clock.now() - 60_000) });
    await assert.rejects(
      enrollment.begin(await request(tpm, { certDer: expired })),
      refusedWith(/^presented EKCert failed verification: the EK certificate .* is valid from .*, not now$/),
    );
    // No issuer to check it with: enrolled on the bare EK, the certificate recorded as unchecked
    // and its serial not recorded.
    const res = await enroll(tpm, await request(tpm, { certDer: flipped }));
    assert.equal(res.device.attestation_type, 'tpm_ekpub');
    const cred = (await inventory.get(device.metadata.name)).spec.credential;
    assert.equal(cred?.ek_cert_verified, 'unchecked');
    assert.equal(cred?.ek_cert_serial, undefined);
    assert.equal(cred?.ek_cert_issuers, undefined);
    const events = await audit.search({ order: 'asc', types: ['device.enroll'] });
    assert.equal((events.at(-1) as { ek_cert_verified?: string }).ek_cert_verified, 'unchecked');
    assert.equal(events.filter((e) => !e.success).length, 3);
  });

  test('with allowed CAs: no EK certificate, or one from another CA, is refused with the exact message', async () => {
    await setAllowedCas([ca.pem]);
    const tpm = new SoftTpm();
    await assert.rejects(
      enrollment.begin(await request(tpm)),
      refusedWith(EnrollErrors.missingEkCert, 'WARDEN_ERR_DEVICE_ATTESTATION_FAILED'),
    );
    const other = await createTestEkCa('Some Other CA');
    await assert.rejects(
      enrollment.begin(await request(tpm, { certDer: await other.issue(tpm.ek.key) })),
      refusedWith(
        /^presented EKCert failed verification: the EK certificate .* does not chain to an allowed CA$/,
      ),
    );
    // A certificate of the allowed CA for another TPM's EK.
    const stranger = new SoftTpm();
    await assert.rejects(
      enrollment.begin(await request(tpm, { certDer: await ca.issue(stranger.ek.key) })),
      refusedWith(
        /^presented EKCert failed verification: the EK public key is not the key of the EK certificate$/,
      ),
    );
    const expired = await ca.issue(tpm.ek.key, { notAfter: new Date(clock.now() - 60_000) });
    await assert.rejects(
      enrollment.begin(await request(tpm, { certDer: expired })),
      refusedWith(/^presented EKCert failed verification: /),
    );
    const events = await enrollEvents();
    assert.equal(events.length, 4);
    assert.ok(events.every((e) => !e.success && e.error?.length));
  });

  test('auto_enroll and allowed CAs come from the live checker; while the settings are unknown nothing enrolls and no token is spent', async () => {
    const tpm = new SoftTpm();
    const auto = (): rpc.DeviceEnrollBeginRequest => ({
      credential_id: randomUUID(),
      device_data: data(),
      ...tpm.enrollInit(),
    });
    await assert.rejects(
      enrollment.begin(auto(), makeIdentity({ user: 'alice' })),
      refused(/auto-enrollment is off/, 'WARDEN_ERR_INVALID_TOKEN'),
    );
    await setDeviceTrust({ auto_enroll: true });
    const res = await enroll(tpm, auto(), makeIdentity({ user: 'alice' }));
    assert.equal(res.device.enroll_status, 'enrolled');
    assert.equal(res.device.owner, 'alice');

    // A checker that does not know the cluster settings (its view not loaded yet).
    const blind = new DeviceEnrollment({
      inventory,
      checker: new AccessChecker({
        clock,
        locks: { values: () => [], staleForMs: () => 0 },
        role: () => undefined,
        clusterSettings: () => undefined,
      }),
      backend,
      clock,
      audit,
      logger: silentLogger,
    });
    const other = await inventory.add(admin, { osType: 'linux', assetTag: 'BLIND' });
    const b = new SoftTpm();
    const req = await request(b, {
      device_data: data({ serial_number: 'BLIND' }),
      deviceId: other.metadata.name,
    });
    await assert.rejects(blind.begin(req), refused(NO_CLUSTER_SETTINGS, 'WARDEN_ERR_ACCESS_DENIED'));
    // The token was not spent: the same request enrolls once the settings are known.
    const enrolled = await enroll(b, req);
    assert.equal(enrolled.device.id, other.metadata.name);
  });

  test('the token is single use, spent at begin even when the rest fails; expired and foreign tokens fail', async () => {
    const tpm = new SoftTpm();
    const req = await request(tpm, { device_data: data({ serial_number: 'WRONG-TAG' }) });
    await assert.rejects(
      enrollment.begin(req),
      refusedWith(/asset tag is "WRONG-TAG"/, 'WARDEN_ERR_DEVICE_MISMATCH'),
    );
    // The same token again, now with the right data: spent.
    await assert.rejects(
      enrollment.begin({ ...req, device_data: data() }),
      refusedWith('invalid device enrollment token', 'WARDEN_ERR_INVALID_TOKEN'),
    );
    // Expired.
    const late = await request(tpm);
    clock.advance(61 * 60 * 1000);
    await assert.rejects(
      enrollment.begin(late),
      refusedWith('invalid device enrollment token', 'WARDEN_ERR_INVALID_TOKEN'),
    );
    // Foreign: a token this cluster never issued.
    await assert.rejects(
      enrollment.begin({ ...(await request(tpm)), token: 'a'.repeat(64) }),
      refusedWith('invalid device enrollment token', 'WARDEN_ERR_INVALID_TOKEN'),
    );
    // The wrong OS.
    await assert.rejects(
      enrollment.begin(await request(tpm, { device_data: data({ os_type: 'macos' }) })),
      refusedWith(/but this device runs macos/, 'WARDEN_ERR_DEVICE_MISMATCH'),
    );
  });

  test('an AK without fixedTPM (or that is not restricted, or whose creation is not its own) is refused', async () => {
    const notFixed = new SoftTpm({ akAttributes: AK_ATTRIBUTES & ~TPMA_OBJECT.fixedTPM });
    await assert.rejects(
      enrollment.begin(await request(notFixed)),
      refusedWith(/^invalid attestation key: the AK lacks fixedTPM/),
    );
    const unrestricted = new SoftTpm({ akAttributes: AK_ATTRIBUTES & ~TPMA_OBJECT.restricted });
    await assert.rejects(enrollment.begin(await request(unrestricted)), refusedWith(/lacks restricted/));
    // Creation data that the attestation does not cover.
    const tpm = new SoftTpm();
    const req = await request(tpm);
    req.ak.creation_data = Buffer.from([...Buffer.from(req.ak.creation_data, 'base64'), 0]).toString(
      'base64',
    );
    await assert.rejects(enrollment.begin(req), refusedWith(/^invalid attestation key: the creation data/));
    // Another TPM's AK with this TPM's creation attestation.
    const other = new SoftTpm();
    const mixed = await request(tpm);
    mixed.ak.public = other.enrollInit().ak.public;
    await assert.rejects(enrollment.begin(mixed), refusedWith(/^invalid attestation key: /));
  });

  test('activation on another TPM (or for another AK) fails verification', async () => {
    const tpm = new SoftTpm();
    const begin = await enrollment.begin(await request(tpm));
    // Another TPM cannot decrypt the seed: it has no answer; a made-up answer is refused.
    assert.throws(() => new SoftTpm().activate(begin.challenge));
    const quote = tpm.quote(Buffer.from(begin.nonce, 'base64'), begin.pcr_selection);
    await assert.rejects(
      enrollment.finish({
        session_id: begin.session_id,
        solution: Buffer.alloc(32, 7).toString('base64'),
        quote,
      }),
      refusedWith(EnrollErrors.activation, 'WARDEN_ERR_DEVICE_ATTESTATION_FAILED'),
    );
    // The session is gone after one finish: retrying with the right answer does not work.
    await assert.rejects(
      enrollment.finish({
        session_id: begin.session_id,
        solution: Buffer.from(tpm.activate(begin.challenge)).toString('base64'),
        quote,
      }),
      refusedWith(EnrollErrors.session, 'WARDEN_ERR_DEVICE_CEREMONY_EXPIRED'),
    );
    // The TPM refuses to release a credential for another object name.
    const again = await enrollment.begin(await request(tpm));
    assert.throws(() => tpm.activate(again.challenge, new Uint8Array(34)), /INTEGRITY/);
    assert.equal((await inventory.get(device.metadata.name)).spec.enroll_status, 'not_enrolled');
  });

  test('a quote by another AK, over another nonce, or over other PCRs is refused', async () => {
    const tpm = new SoftTpm();
    const other = new SoftTpm();
    const cases: [string, (nonce: Buffer, sel: rpc.PcrSelection) => rpc.TpmQuote][] = [
      ['another AK', (n, sel) => other.quote(n, sel)],
      ['another nonce (replayed quote)', (_n, sel) => tpm.quote(Buffer.alloc(32, 1), sel)],
      ['other PCRs', (n) => tpm.quote(n, [{ hash: 0x0b, pcrs: [0, 1] }])],
      [
        'altered PCR values',
        (n, sel) => {
          const q = tpm.quote(n, sel);
          q.pcrs[0]!.digest = Buffer.alloc(32, 0xee).toString('base64');
          return q;
        },
      ],
    ];
    for (const [what, quote] of cases) {
      const begin = await enrollment.begin(await request(tpm));
      await assert.rejects(
        enrollment.finish({
          session_id: begin.session_id,
          solution: Buffer.from(tpm.activate(begin.challenge)).toString('base64'),
          quote: quote(Buffer.from(begin.nonce, 'base64'), begin.pcr_selection),
        }),
        refusedWith(EnrollErrors.attestation, 'WARDEN_ERR_DEVICE_ATTESTATION_FAILED'),
        what,
      );
    }
    assert.deepEqual(
      (await enrollEvents()).map((e) => e.error),
      cases.map(() => EnrollErrors.attestation),
    );
  });

  test('the challenge covers the standard PCR selection; malformed keys are bad parameters', async () => {
    const tpm = new SoftTpm();
    const begin = await enrollment.begin(await request(tpm));
    assert.deepEqual(begin.pcr_selection, DEVICE_PCR_SELECTION);
    const bad = await request(tpm);
    bad.ak.public = Buffer.from('nonsense').toString('base64');
    await assert.rejects(
      enrollment.begin(bad),
      refusedWith('invalid AK public area', 'WARDEN_ERR_BAD_PARAMETER'),
    );
    const badEk = await request(tpm);
    badEk.ek.public = badEk.ak.public; // a signing key is not an EK
    await assert.rejects(enrollment.begin(badEk), refusedWith(/is not an endorsement key/));
  });

  test('a credential ID already enrolled for another device is refused', async () => {
    const tpm = new SoftTpm();
    const req = await request(tpm);
    await enroll(tpm, req);
    const second = await inventory.add(admin, { osType: 'linux', assetTag: 'SECOND' });
    const again = await request(new SoftTpm(), {
      device_data: data({ serial_number: 'SECOND' }),
      deviceId: second.metadata.name,
    });
    again.credential_id = req.credential_id;
    await assert.rejects(
      enrollment.begin(again),
      refusedWith(/already enrolled/, 'WARDEN_ERR_ALREADY_EXISTS'),
    );
  });

  test('one EK backs at most one device: the second device is refused, naming the first', async () => {
    const tpm = new SoftTpm();
    await enroll(tpm, await request(tpm));
    const second = await inventory.add(admin, { osType: 'linux', assetTag: 'SECOND' });
    await assert.rejects(
      enrollment.begin(
        await request(tpm, {
          device_data: data({ serial_number: 'SECOND' }),
          deviceId: second.metadata.name,
        }),
      ),
      refusedWith(
        new RegExp(
          `^this TPM already backs device ${ASSET_TAG}/Linux \\(device ID ${device.metadata.name}\\)`,
        ),
        'WARDEN_ERR_ALREADY_EXISTS',
      ),
    );
    assert.equal((await inventory.get(second.metadata.name)).spec.enroll_status, 'not_enrolled');
  });
});
