/**
 * TPM enrollment and device authentication against a real warden, with swtpm as the TPM:
 * the three attestation types (an EK certificate from swtpm-localca with and without that CA
 * in `ekcert_allowed_cas`, and an EK without a certificate), and the refusals of issue 5 —
 * tokens reused, expired or foreign; an EK certificate missing or from another CA; an AK that
 * isn't fixedTPM; activation on another TPM; a replayed device authentication.
 * The CLI shows the messages users read; in-process ceremonies (@warden/client) drive the
 * attacks a CLI can't express.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { isWardenError, type rpc } from '@warden/api';
import {
  ApiClient,
  AuthnCeremony,
  EnrollCeremony,
  establishTrust,
  login,
  type NativeDevice,
  openNativeDevice,
  ProfileStore,
  UserKey,
} from '@warden/client';
import {
  flipNvBit,
  inviteAndSignUp,
  requireSwtpm,
  runCli,
  type SwtpmProcess,
  setDeviceTrust,
  startSwtpm,
  startWarden,
  type WardenProcess,
} from '@warden/testkit';
import {
  AK_ATTRIBUTES,
  akTemplate,
  createSrk,
  EK_CERT_NV_INDEX,
  flushTransientObjects,
  TPMA_OBJECT,
  Tpm,
} from '@warden/tpm';

const PASSWORD = 'correct horse battery staple';
// tpm2-tools writes the local CA's chain into the TPM's EK certificate chain NV indices.
const setup = requireSwtpm({ chain: true });
const b64 = (b: Uint8Array) => Buffer.from(b).toString('base64');

interface Machine {
  tpm: SwtpmProcess;
  env: NodeJS.ProcessEnv;
  tag: string;
}

describe('TPM enrollment against a real warden', { skip: setup.skip }, () => {
  let w: WardenProcess;
  let hostCaPems: string[];
  let api: ApiClient;
  const tpms: SwtpmProcess[] = [];
  let n = 0;

  const wctl = (args: string[]) => runCli('wctl', args, { env: w.env });
  const wsh = (m: Machine, args: string[]) => runCli('wsh', args, { env: m.env });

  /**
   * A machine with its own swtpm; `dmiTag` is the DMI chassis asset tag it reports. With an
   * EK certificate the TPM holds its issuers too (EK certificate chain NV) unless `chain` is false.
   */
  async function machine(
    ekCert: boolean,
    dmiTag?: string,
    tpm?: SwtpmProcess,
    chain = true,
  ): Promise<Machine> {
    if (!tpm) {
      tpm = await startSwtpm({ ekCert, ekCertChain: ekCert && chain });
      tpms.push(tpm);
    }
    const name = `m${n++}`;
    const dmi = join(w.dir, `dmi-${name}`);
    mkdirSync(dmi);
    if (dmiTag !== undefined) writeFileSync(join(dmi, 'chassis_asset_tag'), `${dmiTag}\n`);
    const env = {
      ...w.env,
      WARDEN_HOME: join(w.dir, `home-${name}`),
      WARDEN_TPM: tpm.address,
      WARDEN_DEVICE_CACHE: join(w.dir, `cache-${name}`),
      WARDEN_DEVICE_DMI_DIR: dmi,
    };
    const dev = await openNativeDevice(env);
    try {
      return { tpm, env, tag: await dev.assetTag() };
    } finally {
      await dev.close();
    }
  }

  /** Registers the machine and returns an enrollment token for it. */
  async function token(m: Machine, ttl?: string): Promise<string> {
    const list = JSON.parse((await wctl(['devices', 'ls', '--format=json'])).stdout) as {
      spec: { asset_tag: string };
    }[];
    const res = list.some((d) => d.spec.asset_tag === m.tag)
      ? await wctl(['devices', 'enroll', `--asset-tag=${m.tag}`, ...(ttl ? [`--ttl=${ttl}`] : [])])
      : await wctl([
          'devices',
          'add',
          '--os=linux',
          `--asset-tag=${m.tag}`,
          '--enroll',
          ...(ttl ? [`--enroll-ttl=${ttl}`] : []),
        ]);
    assert.equal(res.code, 0, res.stderr);
    return /--token=(\S+)/.exec(res.stdout)![1]!;
  }

  /** `wsh device enroll --token=…` on machine `m` with a fresh token for it. */
  const enrollCli = async (m: Machine) =>
    wsh(m, ['device', 'enroll', `--token=${await token(m)}`, `--ca-pin=${w.caPin}`]);

  async function enrollInProcess(m: Machine, t: string): Promise<rpc.DeviceSummary> {
    const { device } = await new EnrollCeremony({ env: m.env }).run(api, {
      token: t,
      cluster: 'warden',
      proxy: w.proxy,
    });
    return device;
  }

  async function setCap(ekcertAllowedCas: string[]): Promise<void> {
    const cas = ekcertAllowedCas.length
      ? `    ekcert_allowed_cas:\n${ekcertAllowedCas.map((p) => `      - |\n${p.trim().replace(/^/gm, '        ')}\n`).join('')}`
      : '';
    await setDeviceTrust(w, 'optional', { deviceTrustYaml: cas });
  }

  before(async () => {
    w = await startWarden();
    await setCap([]);
    const trust = await establishTrust({ proxy: w.proxy, caPin: w.caPin });
    hostCaPems = trust.hostCaPems;
    api = new ApiClient({ proxy: w.proxy, caPems: hostCaPems });
  });
  after(async () => {
    for (const t of tpms) await t.stop();
    await w?.stop();
  });

  test('an EK certificate, no allowed CAs: tpm_ekcert; a bare EK: tpm_ekpub (both with the CLI)', async () => {
    const withCert = await machine(true);
    const enroll = await enrollCli(withCert);
    assert.equal(enroll.code, 0, enroll.stderr);
    assert.equal(enroll.stdout.split('\n')[0], `Device "${withCert.tag}"/Linux enrolled`);
    assert.match(enroll.stdout, /Log in again to use it as a trusted device/);
    const bare = await machine(false);
    const e2 = await wsh(bare, ['device', 'enroll', `--token=${await token(bare)}`, `--ca-pin=${w.caPin}`]);
    assert.equal(e2.code, 0, e2.stderr);
    const list = JSON.parse((await wctl(['devices', 'ls', '--format=json'])).stdout) as {
      spec: {
        asset_tag: string;
        credential?: {
          attestation_type: string;
          ek_cert_serial?: string;
          ek_cert_verified?: string;
          ek_cert_issuers?: string[];
        };
      };
    }[];
    const byTag = new Map(list.map((d) => [d.spec.asset_tag, d.spec.credential]));
    assert.equal(byTag.get(withCert.tag)?.attestation_type, 'tpm_ekcert');
    assert.ok(byTag.get(withCert.tag)?.ek_cert_serial);
    assert.equal(byTag.get(withCert.tag)?.ek_cert_verified, 'tpm_root');
    assert.deepEqual(byTag.get(withCert.tag)?.ek_cert_issuers, [
      'CN=swtpm-localca',
      'CN=swtpm-localca-rootca',
    ]);
    assert.equal(byTag.get(bare.tag)?.attestation_type, 'tpm_ekpub');
    // What the device says about itself, and its credential: the one the inventory holds.
    const collect = JSON.parse((await wsh(withCert, ['device', 'collect'])).stdout) as rpc.DeviceData;
    assert.equal(collect.os_type, 'linux');
    assert.equal(collect.serial_number, withCert.tag);
    const keyget = JSON.parse((await wsh(withCert, ['device', 'keyget'])).stdout) as {
      credential_id: string;
      public_key_der: string;
      enrollments: { device_id: string }[];
    };
    const full = JSON.parse((await wctl(['devices', 'ls', '--format=json'])).stdout) as {
      metadata: { name: string };
      spec: { asset_tag: string; credential?: { id: string; public_key_der: string } };
    }[];
    const stored = full.find((d) => d.spec.asset_tag === withCert.tag)!;
    assert.equal(keyget.credential_id, stored.spec.credential?.id);
    assert.equal(keyget.public_key_der, stored.spec.credential?.public_key_der);
    assert.deepEqual(
      keyget.enrollments.map((e) => e.device_id),
      [stored.metadata.name],
    );
  });

  test('regression: a bit-flipped EK certificate is refused when the TPM holds its issuer, and never labelled an EK certificate when not', async () => {
    // The TPM holds swtpm-localca's chain; one bit of its EK certificate (in the signature) flipped.
    const tampered = await machine(true);
    await flipNvBit(tampered.tpm, EK_CERT_NV_INDEX.rsa2048);
    const refused = await enrollCli(tampered);
    assert.equal(refused.code, 1, refused.stdout);
    assert.match(
      refused.stderr,
      /^ERROR: presented EKCert failed verification: the EK certificate is not signed by its issuer CN=swtpm-localca \(the signature does not verify with that certificate's key\): it was altered or forged$/m,
    );
    // The same tampering on a TPM without its chain: nothing to check the signature with, so
    // the device enrolls on its bare EK and the certificate is shown as unverified.
    const bare = await machine(true, undefined, undefined, false);
    await flipNvBit(bare.tpm, EK_CERT_NV_INDEX.rsa2048);
    const e = await wsh(bare, ['device', 'enroll', `--token=${await token(bare)}`, `--ca-pin=${w.caPin}`]);
    assert.equal(e.code, 0, e.stderr);
    const list = JSON.parse((await wctl(['devices', 'ls', '--format=json'])).stdout) as {
      spec: {
        asset_tag: string;
        credential?: { attestation_type: string; ek_cert_serial?: string; ek_cert_verified?: string };
      };
    }[];
    const cred = list.find((d) => d.spec.asset_tag === bare.tag)?.spec.credential;
    assert.equal(cred?.attestation_type, 'tpm_ekpub');
    assert.equal(cred?.ek_cert_verified, 'unchecked');
    assert.equal(cred?.ek_cert_serial, undefined);
    const ls = (await wctl(['devices', 'ls'])).stdout;
    assert.ok(
      ls.split('\n').some((r) => r.startsWith(bare.tag) && / unverified +tpm_ekpub +asset tag: EK$/.test(r)),
      ls,
    );
    const audit = JSON.parse(
      (await wctl(['audit', 'search', '--type=device.enroll', '--format=json'])).stdout,
    ) as { success: boolean; asset_tag?: string; error?: string; ek_cert_verified?: string }[];
    assert.ok(
      audit.some(
        (a) => !a.success && a.asset_tag === tampered.tag && /not signed by its issuer/.test(a.error ?? ''),
      ),
    );
    assert.ok(audit.some((a) => a.success && a.asset_tag === bare.tag && a.ek_cert_verified === 'unchecked'));
  });

  test('an administrator enrolls the device they are logged in on with --current-device', async () => {
    const m = await machine(true);
    await inviteAndSignUp(w, 'dave', {
      roles: 'access,editor',
      logins: 'root',
      password: PASSWORD,
      env: m.env,
    });
    const notLoggedIn = await wsh({ ...m, env: { ...m.env, WARDEN_HOME: join(w.dir, 'nobody') } }, [
      'device',
      'enroll',
      '--current-device',
      `--ca-pin=${w.caPin}`,
    ]);
    assert.equal(notLoggedIn.code, 1);
    assert.match(notLoggedIn.stderr, /log in first/);
    const l = await runCli('wsh', ['login', `--proxy=${w.proxy}`, '--user=dave'], {
      env: m.env,
      input: `${PASSWORD}\n`,
    });
    assert.equal(l.code, 0, l.stderr);
    const enroll = await wsh(m, ['device', 'enroll', '--current-device']);
    assert.equal(enroll.code, 0, enroll.stderr);
    assert.deepEqual(enroll.stdout.split('\n').slice(0, 3), [
      `Device "${m.tag}"/Linux added to the inventory`,
      `Device "${m.tag}"/Linux enrolled`,
      `Your certificates for ${w.proxy} now carry the trusted device (wsh status).`,
    ]);
    const status = JSON.parse((await wsh(m, ['status', '--format=json'])).stdout) as { extensions: string[] };
    assert.ok(status.extensions.includes('warden-device-id'));
  });

  test("with swtpm-localca in ekcert_allowed_cas: tpm_ekcert_trusted; a bare EK or another CA's EK refused", async () => {
    const trusted = await machine(true);
    const other = await machine(true); // its own swtpm-localca: another CA with the same name
    const bare = await machine(false);
    await setCap([trusted.tpm.issuerCertPem!, trusted.tpm.rootCertPem!]);
    try {
      assert.equal(
        (await enrollInProcess(trusted, await token(trusted))).attestation_type,
        'tpm_ekcert_trusted',
      );
      const noCert = await enrollCli(bare);
      assert.equal(noCert.code, 1);
      assert.equal(
        noCert.stderr.trim(),
        'ERROR: tpm device did not submit an ek_cert and ekcert_allowed_cas is configured',
      );
      const foreign = await enrollCli(other);
      assert.equal(foreign.code, 1);
      assert.match(
        foreign.stderr.trim(),
        /^ERROR: presented EKCert failed verification: the EK certificate .*does not chain to an allowed CA$/,
      );
      // Only the root allowed: the TPM's chain NV supplies the issuing CA in between.
      const viaChain = await machine(true);
      await setCap([viaChain.tpm.rootCertPem!]);
      assert.equal(
        (await enrollInProcess(viaChain, await token(viaChain))).attestation_type,
        'tpm_ekcert_trusted',
      );
      const list = JSON.parse((await wctl(['devices', 'ls', '--format=json'])).stdout) as {
        spec: { asset_tag: string; credential?: { ek_cert_verified?: string } };
      }[];
      assert.equal(
        list.find((d) => d.spec.asset_tag === viaChain.tag)?.spec.credential?.ek_cert_verified,
        'allowed_ca',
      );
    } finally {
      await setCap([]);
    }
  });

  test("regression: a token is used from another TPM that reports the device's asset tag", async () => {
    // Device X has an EK-derived asset tag; the attacker's machine (another swtpm) reports
    // X's tag as its DMI chassis asset tag and enrolls with X's token.
    const victim = await machine(false);
    assert.match(victim.tag, /^ek:/);
    const t = await token(victim);
    const attacker = await machine(false, victim.tag);
    assert.equal(attacker.tag, victim.tag);
    const stolen = await wsh(attacker, ['device', 'enroll', `--token=${t}`, `--ca-pin=${w.caPin}`]);
    assert.equal(stolen.code, 1, stolen.stdout);
    assert.match(
      stolen.stderr.trim(),
      /^ERROR: this enrollment token is for device ek:[\w-]+\/Linux, whose asset tag names another TPM \(this TPM's asset tag is "ek:[\w-]+"\)$/,
    );
    const list = JSON.parse((await wctl(['devices', 'ls', '--format=json'])).stdout) as {
      spec: { asset_tag: string; enroll_status: string };
    }[];
    assert.equal(list.find((d) => d.spec.asset_tag === victim.tag)?.spec.enroll_status, 'not_enrolled');
    // The real device still enrolls (with a new token: the first one was spent), and the
    // table says its asset tag was checked against its EK.
    const ok = await enrollCli(victim);
    assert.equal(ok.code, 0, ok.stderr);
    const ls = (await wctl(['devices', 'ls'])).stdout;
    assert.ok(
      ls.split('\n').some((r) => r.startsWith(victim.tag) && / tpm_ekpub +asset tag: EK$/.test(r)),
      ls,
    );
  });

  test('regression: one TPM backs at most one device; a DMI asset tag is shown as reported', async () => {
    // The same TPM first enrolls as a DMI-tagged device, then (its device cache wiped, so with
    // a new credential) tries to enroll as a second device with another DMI tag.
    const first = await machine(false, `DMI-${randomUUID().slice(0, 8)}`);
    const firstDevice = await enrollInProcess(first, await token(first));
    const again = await machine(false, `DMI-${randomUUID().slice(0, 8)}`, first.tpm);
    const second = await enrollCli(again);
    assert.equal(second.code, 1, second.stdout);
    assert.equal(
      second.stderr.trim(),
      `ERROR: this TPM already backs device ${first.tag}/Linux (device ID ${firstDevice.id}); ` +
        'one TPM can back only one device: unenroll or remove that device first',
    );
    const ls = (await wctl(['devices', 'ls'])).stdout;
    assert.ok(
      ls.split('\n').some((r) => r.startsWith(first.tag) && / tpm_ekpub +asset tag: reported$/.test(r)),
      ls,
    );
    const audit = JSON.parse(
      (await wctl(['audit', 'search', '--type=device.enroll', '--format=json'])).stdout,
    ) as { success: boolean; error?: string; asset_tag?: string }[];
    assert.ok(
      audit.some((e) => !e.success && e.asset_tag === again.tag && /already backs/.test(e.error ?? '')),
    );
  });

  test('tokens: reused, expired and foreign tokens are refused', async () => {
    const m = await machine(false);
    const t = await token(m);
    const first = await wsh(m, ['device', 'enroll', `--token=${t}`, `--ca-pin=${w.caPin}`]);
    assert.equal(first.code, 0, first.stderr);
    const reused = await wsh(m, ['device', 'enroll', `--token=${t}`, `--ca-pin=${w.caPin}`]);
    assert.equal(reused.stderr.trim(), 'ERROR: invalid device enrollment token');
    const m2 = await machine(false);
    const short = await token(m2, '1s');
    await new Promise((r) => setTimeout(r, 1500));
    const expired = await wsh(m2, ['device', 'enroll', `--token=${short}`, `--ca-pin=${w.caPin}`]);
    assert.equal(expired.stderr.trim(), 'ERROR: invalid device enrollment token');
    // A token of another cluster.
    const w2 = await startWarden();
    try {
      const add = await runCli(
        'wctl',
        ['devices', 'add', '--os=linux', `--asset-tag=${m2.tag}`, '--enroll'],
        { env: w2.env },
      );
      const foreignToken = /--token=(\S+)/.exec(add.stdout)![1]!;
      const foreign = await wsh(m2, ['device', 'enroll', `--token=${foreignToken}`, `--ca-pin=${w.caPin}`]);
      assert.equal(foreign.stderr.trim(), 'ERROR: invalid device enrollment token');
    } finally {
      await w2.stop();
    }
    const audit = await wctl(['audit', 'search', '--type=device.enroll', '--format=json']);
    const failures = (JSON.parse(audit.stdout) as { success: boolean; error?: string }[]).filter(
      (e) => !e.success,
    );
    assert.ok(failures.filter((e) => e.error === 'invalid device enrollment token').length >= 3);
  });

  /** `dev` with some steps replaced (NativeDevice methods live on the prototype: no spread). */
  function withSteps(dev: NativeDevice, steps: Partial<NativeDevice>): NativeDevice {
    return {
      osType: dev.osType,
      assetTag: () => dev.assetTag(),
      collectDeviceData: () => dev.collectDeviceData(),
      credential: (o) => dev.credential(o),
      enrollInit: (c) => dev.enrollInit(c),
      activate: (c, b, s) => dev.activate(c, b, s),
      quote: (c, n, sel) => dev.quote(c, n, sel),
      recordEnrollment: (e) => dev.recordEnrollment(e),
      close: () => dev.close(),
      ...steps,
    };
  }

  /** A NativeDevice whose EK, AK and activation come from different places (attacks). */
  function mixedDevice(parts: { ek: NativeDevice; ak: NativeDevice }): NativeDevice {
    return {
      osType: 'linux',
      assetTag: () => parts.ek.assetTag(),
      collectDeviceData: () => parts.ek.collectDeviceData(),
      credential: (o) => parts.ak.credential(o),
      enrollInit: async (cred) => ({
        ek: (await parts.ek.enrollInit((await parts.ek.credential({ create: true }))!)).ek,
        ak: (await parts.ak.enrollInit(cred)).ak,
      }),
      activate: (cred, blob, secret) => parts.ak.activate(cred, blob, secret),
      quote: (cred, nonce, sel) => parts.ak.quote(cred, nonce, sel),
      recordEnrollment: () => {},
      close: async () => {
        await parts.ek.close();
        await parts.ak.close();
      },
    };
  }

  test("activation on another TPM: the other TPM can't release the credential, a made-up answer is refused", async () => {
    const victim = await machine(true); // its EK (and certificate) are presented
    const attacker = await machine(true); // its AK and TPM answer the challenge
    const c = new EnrollCeremony({ env: victim.env });
    c.openDevice = async () =>
      mixedDevice({ ek: await openNativeDevice(victim.env), ak: await openNativeDevice(attacker.env) });
    await assert.rejects(
      c.run(api, { token: await token(victim), cluster: 'warden', proxy: w.proxy }),
      /answering the enrollment challenge/,
    );
    // The same attack with a guessed solution reaches the server, which refuses it.
    let begin: rpc.DeviceEnrollBeginResponse | undefined;
    const spy = {
      deviceEnrollBegin: async (req: rpc.DeviceEnrollBeginRequest) => {
        begin = await api.deviceEnrollBegin(req);
        return begin;
      },
      deviceEnrollFinish: (req: rpc.DeviceEnrollFinishRequest) => api.deviceEnrollFinish(req),
    };
    const attackerDev = await openNativeDevice(attacker.env);
    const c2 = new EnrollCeremony({ env: victim.env });
    c2.openDevice = async () => {
      const mixed = mixedDevice({ ek: await openNativeDevice(victim.env), ak: attackerDev });
      return { ...mixed, activate: async () => new Uint8Array(32).fill(1) };
    };
    await assert.rejects(
      c2.run(spy, { token: await token(victim), cluster: 'warden', proxy: w.proxy }),
      (e) =>
        isWardenError(e, 'WARDEN_ERR_DEVICE_ATTESTATION_FAILED') &&
        e.message === 'credential activation verification failed',
    );
    assert.ok(begin);
  });

  test("an AK that isn't fixedTPM is refused", async () => {
    const m = await machine(false);
    // The EK as the client presents it (the native device closes its TPM connection: swtpm
    // serves one connection at a time).
    const dev = await openNativeDevice(m.env);
    let ek: { public: Uint8Array };
    try {
      ek = (await dev.enrollInit((await dev.credential({ create: true }))!)).ek;
    } finally {
      await dev.close();
    }
    const tpm = await Tpm.open({ address: m.tpm.address });
    let req: rpc.DeviceEnrollBeginRequest;
    try {
      await flushTransientObjects(tpm);
      const srk = await createSrk(tpm);
      const template = {
        ...akTemplate('ecc'),
        objectAttributes: AK_ATTRIBUTES & ~TPMA_OBJECT.fixedTPM & ~TPMA_OBJECT.fixedParent,
      };
      const ak = await tpm.create({ parent: srk.handle, template });
      const loaded = await tpm.load({ parent: srk.handle, private: ak.private, public: ak.public });
      const creation = await tpm.certifyCreation({
        signHandle: loaded.handle,
        objectHandle: loaded.handle,
        qualifyingData: new Uint8Array(0),
        creationHash: ak.creationHash,
        creationTicket: ak.creationTicket,
      });
      req = {
        token: await token(m),
        credential_id: randomUUID(),
        device_data: { collect_time: new Date().toISOString(), os_type: 'linux', serial_number: m.tag },
        ek: { public: b64(ek.public) },
        ak: {
          public: b64(ak.publicBytes),
          creation_data: b64(ak.creationDataBytes),
          creation_attest: b64(creation.attest),
          creation_signature: b64(creation.signatureBytes),
        },
      };
    } finally {
      await flushTransientObjects(tpm);
      await tpm.close();
    }
    await assert.rejects(
      api.deviceEnrollBegin(req),
      (e) =>
        isWardenError(e, 'WARDEN_ERR_DEVICE_ATTESTATION_FAILED') &&
        /^invalid attestation key: the AK lacks fixedTPM/.test(e.message),
    );
  });

  test('regression: ceremony sessions of one kind are not spent by the other; open device authentications are capped per user', async () => {
    const m = await machine(false);
    await inviteAndSignUp(w, 'erin', { roles: 'access', logins: 'root', password: PASSWORD, env: m.env });
    const profile = await login(
      new ProfileStore(m.env.WARDEN_HOME),
      { proxy: w.proxy, user: 'erin' },
      { password: async () => PASSWORD, otp: async () => '' },
    );
    const userApi = new ApiClient({
      proxy: w.proxy,
      caPems: hostCaPems,
      identity: { certPem: profile.tlsCert, keyPem: profile.keyPem },
    });
    // Presenting an enrollment session's ID to device authentication must not spend it.
    const spy = {
      deviceEnrollBegin: (req: rpc.DeviceEnrollBeginRequest) => api.deviceEnrollBegin(req),
      deviceEnrollFinish: async (req: rpc.DeviceEnrollFinishRequest) => {
        await assert.rejects(
          userApi.deviceAuthnFinish({
            session_id: req.session_id,
            quote: req.quote,
            ssh_signature: b64(new Uint8Array(64)),
          }),
          (e) => isWardenError(e) && e.message === 'device authentication failed',
        );
        return api.deviceEnrollFinish(req);
      },
    };
    const { device } = await new EnrollCeremony({ env: m.env }).run(spy, {
      token: await token(m),
      cluster: 'warden',
      proxy: w.proxy,
    });
    assert.equal(device.enroll_status, 'enrolled');
    // Begun and never finished: at most 8 per user, then 429 with the reason.
    const begin = () =>
      userApi.deviceAuthnBegin({
        credential_id: device.credential_id!,
        device_data: { collect_time: new Date().toISOString(), os_type: 'linux', serial_number: m.tag },
      });
    for (let i = 0; i < 8; i++) await begin();
    await assert.rejects(
      begin(),
      (e) =>
        isWardenError(e, 'WARDEN_ERR_RATE_LIMITED') &&
        /^too many device ceremonies in progress for user "erin" \(at most 8\)/.test(e.message),
    );
  });

  test('device authentication: a replayed finish and a quote by another TPM are refused', async () => {
    const m = await machine(true);
    await enrollInProcess(m, await token(m));
    // A user who logs in on this machine (in-process, no second factor).
    await inviteAndSignUp(w, 'carol', { roles: 'access', logins: 'root', password: PASSWORD, env: m.env });
    const store = new ProfileStore(m.env.WARDEN_HOME);
    const profile = await login(
      store,
      { proxy: w.proxy, user: 'carol' },
      { password: async () => PASSWORD, otp: async () => '' },
    );
    const userApi = new ApiClient({
      proxy: w.proxy,
      caPems: hostCaPems,
      identity: { certPem: profile.tlsCert, keyPem: profile.keyPem },
    });
    let finishReq: rpc.DeviceAuthnFinishRequest | undefined;
    const recorder = {
      deviceAuthnBegin: (r: rpc.DeviceAuthnBeginRequest) => userApi.deviceAuthnBegin(r),
      deviceAuthnFinish: (r: rpc.DeviceAuthnFinishRequest) => {
        finishReq = r;
        return userApi.deviceAuthnFinish(r);
      },
    };
    const ceremony = new AuthnCeremony({ userKey: UserKey.fromPem(profile.keyPem), env: m.env });
    const { result } = await ceremony.run(recorder);
    assert.equal(result.expires, profile.expires);
    assert.match(result.ssh_cert, /cert-v01@openssh.com/);
    // Replayed: the same finish again.
    await assert.rejects(
      userApi.deviceAuthnFinish(finishReq!),
      (e) => isWardenError(e) && e.message === 'device authentication failed',
    );
    // The old quote (old nonce) in a new session.
    const other = await machine(true);
    const replay = new AuthnCeremony({ userKey: UserKey.fromPem(profile.keyPem), env: m.env });
    const orig = replay.openDevice;
    replay.openDevice = async () =>
      withSteps(await orig(), {
        quote: async () => ({
          attest: Buffer.from(finishReq!.quote.attest, 'base64'),
          signature: Buffer.from(finishReq!.quote.signature, 'base64'),
          pcrs: finishReq!.quote.pcrs.map((p) => ({
            hash: p.hash,
            pcr: p.pcr,
            digest: Buffer.from(p.digest, 'base64'),
          })),
        }),
      });
    await assert.rejects(
      replay.run(userApi),
      (e) => isWardenError(e) && e.message === 'device authentication failed',
    );
    // A quote by another TPM's AK, with this machine's credential ID.
    const impostor = new AuthnCeremony({ userKey: UserKey.fromPem(profile.keyPem), env: m.env });
    impostor.openDevice = async () => {
      const mine = await openNativeDevice(m.env);
      const theirs = await openNativeDevice(other.env);
      const theirCred = (await theirs.credential({ create: true }))!;
      return withSteps(mine, {
        quote: (_c, nonce, sel) => theirs.quote(theirCred, nonce, sel),
        close: async () => {
          await mine.close();
          await theirs.close();
        },
      });
    };
    await assert.rejects(
      impostor.run(userApi),
      (e) => isWardenError(e) && e.message === 'device authentication failed',
    );
  });
});
