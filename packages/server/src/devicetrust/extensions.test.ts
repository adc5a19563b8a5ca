/**
 * Device extensions are all three or none, and only from the CA: certificates signed by the
 * user CA with one or two of them, and augmented certificates altered afterwards, are refused
 * on both paths — the proxy's mTLS identity (TLS certificate) and the node's SSH login (SSH
 * certificate) — or grant no device trust.
 */
import assert from 'node:assert/strict';
import { createPrivateKey, generateKeyPairSync, sign, X509Certificate } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import {
  addCertificateExtensions,
  decodeSshCertificate,
  encodeDeviceExtensions,
  formatSshCertificate,
  isWardenError,
  parseSshCertificate,
  type RoleResource,
  SshDeviceExtensions,
  SshIdentityExtensions,
  signSshCertificate,
} from '@warden/api';
import { decideAccess } from '../access';
import { MemoryAuditLog } from '../audit';
import type { AuthServer } from '../auth';
import { MemoryBackend } from '../backend';
import { createAuthServer } from '../bin';
import { AUTHORITIES_PREFIX, CertAuthorities } from '../ca';
import { FakeClock } from '../clock';
import { silentLogger } from '../log';
import { createServices, type Services } from '../services';
import { verifyUserCertificate } from '../srv/ssh';

const DEVICE = {
  deviceId: '9cdfc0ad-64b7-4d9c-8e1e-0f0a0b0c0d0e',
  assetTag: 'C00AA0AAAA0A',
  credentialId: '6c9f0a1e-0000-4000-8000-000000000001',
};

describe('device extensions: all three or none, signed by the CA', () => {
  let clock: FakeClock;
  let backend: MemoryBackend;
  let services: Services;
  let cas: CertAuthorities;
  let auth: AuthServer;
  let caTls: ReturnType<typeof createPrivateKey>;
  let caSsh: ReturnType<typeof createPrivateKey>;
  let roles: RoleResource[];
  const user = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });

  before(async () => {
    clock = new FakeClock(Date.now());
    backend = new MemoryBackend({ clock, reapIntervalMs: 0 });
    services = createServices({ backend, clock });
    await services.ensurePresets();
    cas = await CertAuthorities.init({ backend, clusterName: 'test', clock });
    auth = createAuthServer({
      clock,
      backend,
      services,
      cas,
      audit: new MemoryAuditLog({ clock }),
      logger: silentLogger,
      clusterName: 'test',
      proxyPublicAddr: 'proxy.test:3080',
      serverVersion: 'test',
    });
    const stored = JSON.parse((await backend.get(`${AUTHORITIES_PREFIX}user`))!.value) as {
      ssh: { private_key: string };
      tls: { private_key: string };
    };
    caTls = createPrivateKey(stored.tls.private_key);
    caSsh = createPrivateKey(stored.ssh.private_key);
    roles = [(await services.roles.find('access'))!];
  });
  after(async () => {
    await backend.close();
  });

  const issue = (device?: typeof DEVICE) =>
    cas.issueUserCertificates({
      user: 'alice',
      roles: ['access'],
      logins: ['root'],
      traits: { logins: ['root'] },
      publicKey: user.publicKey,
      ttlMs: 3600_000,
      now: clock.now(),
      ...(device ? { device } : {}),
    });

  /** A node access under `required`, as the SSH node and the proxy decide it. */
  const decide = (device: Partial<typeof DEVICE> | undefined) =>
    decideAccess(
      {
        locks: [],
        lockViewStaleForMs: 0,
        lockingMode: 'best_effort',
        lockMaxStalenessMs: 60_000,
        clusterDeviceTrustMode: 'required',
        now: clock.now(),
      },
      {
        user: 'alice',
        roles,
        traits: { logins: ['root'] },
        ...(device ? { device: device as typeof DEVICE } : {}),
      },
      { kind: 'node', id: 'node-1', hostname: 'node-1', labels: {} },
      { login: 'root' },
    );

  test('TLS: the CA-issued augmented certificate carries the device; identify passes it on', async () => {
    const id = await auth.identify(new X509Certificate((await issue(DEVICE)).tlsCert).raw);
    assert.deepEqual(id.device, DEVICE);
    assert.equal(decide(id.device).allowed, true);
    const plain = await auth.identify(new X509Certificate((await issue()).tlsCert).raw);
    assert.equal(plain.device, undefined);
    assert.deepEqual(decide(plain.device), {
      allowed: false,
      step: 'device_trust',
      code: 'WARDEN_ERR_DEVICE_UNAUTHORIZED',
      reason: 'unauthorized device',
    });
  });

  test('TLS: one or two device extensions, even signed by the user CA, are refused', async () => {
    const plainDer = new X509Certificate((await issue()).tlsCert).raw;
    const all = encodeDeviceExtensions(DEVICE);
    for (const some of [all.slice(0, 1), all.slice(1, 2), all.slice(0, 2), all.slice(1)]) {
      const forged = addCertificateExtensions(plainDer, some, (tbs) => sign('sha256', tbs, caTls));
      assert.ok(
        new X509Certificate(forged).verify(new X509Certificate(cas.tlsCertPems('user')[0]!).publicKey),
      );
      await assert.rejects(
        auth.identify(forged),
        (e) => isWardenError(e, 'WARDEN_ERR_BAD_CERTIFICATE') && /all three or none/.test(e.message),
      );
    }
  });

  test('TLS: an augmented certificate altered afterwards is refused', async () => {
    const der = Buffer.from(new X509Certificate((await issue(DEVICE)).tlsCert).raw);
    const at = der.indexOf(Buffer.from(DEVICE.deviceId));
    assert.ok(at > 0);
    const tampered = Buffer.from(der);
    tampered.write('0', at); // another device ID, same length
    await assert.rejects(
      auth.identify(tampered),
      (e) => isWardenError(e, 'WARDEN_ERR_BAD_CERTIFICATE') && /not signed by the user CA/.test(e.message),
    );
  });

  test('SSH: one or two device extensions (signed by the CA) grant no device trust', async () => {
    const plain = parseSshCertificate((await issue()).sshCert);
    const all = {
      [SshDeviceExtensions.deviceId]: DEVICE.deviceId,
      [SshDeviceExtensions.assetTag]: DEVICE.assetTag,
      [SshDeviceExtensions.credentialId]: DEVICE.credentialId,
    };
    const names = Object.keys(all);
    for (const keep of [[names[0]!], [names[1]!], [names[0]!, names[2]!], [names[1]!, names[2]!]]) {
      const cert = signSshCertificate(
        {
          publicKey: plain.publicKey,
          type: 'user',
          keyId: 'alice',
          validPrincipals: ['root'],
          validAfter: plain.validAfter,
          validBefore: plain.validBefore,
          extensions: {
            ...plain.extensions,
            ...Object.fromEntries(keep.map((k) => [k, all[k as keyof typeof all]])),
          },
        },
        caSsh,
      );
      const { holder } = verifyUserCertificate(cas, cert.algorithm, cert.blob, clock.now());
      assert.ok(holder.device, 'partial extensions stay visible (a device lock still matches)');
      assert.equal(decide(holder.device).allowed, false, keep.join('+'));
    }
    // All three, from the CA: trusted.
    const full = parseSshCertificate((await issue(DEVICE)).sshCert);
    const { holder } = verifyUserCertificate(cas, full.algorithm, full.blob, clock.now());
    assert.equal(decide(holder.device).allowed, true);
    assert.ok(holder.extensions[SshIdentityExtensions.roles]);
  });

  test('SSH: an augmented certificate altered afterwards is refused', async () => {
    const full = parseSshCertificate((await issue(DEVICE)).sshCert);
    const blob = Buffer.from(full.blob);
    const at = blob.indexOf(Buffer.from(DEVICE.assetTag));
    assert.ok(at > 0);
    blob.write('X', at);
    const altered = decodeSshCertificate(blob);
    assert.equal(altered.extensions[SshDeviceExtensions.assetTag], `X${DEVICE.assetTag.slice(1)}`);
    assert.throws(
      () => verifyUserCertificate(cas, altered.algorithm, blob, clock.now()),
      (e) => isWardenError(e, 'WARDEN_ERR_BAD_CERTIFICATE'),
    );
    assert.ok(formatSshCertificate(altered));
  });
});
