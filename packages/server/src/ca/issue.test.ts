import 'reflect-metadata';
import assert from 'node:assert/strict';
import { generateKeyPairSync, type KeyObject, X509Certificate } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import * as tls from 'node:tls';
import * as x509 from '@peculiar/x509';
import {
  formatAuthorizedKey,
  identityExtensions,
  isWardenError,
  Oids,
  parseIdentityFromCertificate,
  parseSshCertificate,
  SshDeviceExtensions,
  SshIdentityExtensions,
  sshFingerprint,
  verifySshCertificate,
} from '@warden/api';
import { needs, run, tempDir } from '../../../../test/support/system-tools';
import { MemoryBackend } from '../backend';
import { FakeClock } from '../clock';
import { CertAuthorities } from './authorities';
import { PrivateKey } from './private-key';
import { createCaCertificate, issueLeafCertificate } from './x509';

const sshKeygen = needs('ssh-keygen');
const openssl = needs('openssl');

const T0 = Date.UTC(2026, 0, 1); // 2026-01-01T00:00:00Z
const HOUR = 3_600_000;
const attime = (ms: number) => String(Math.floor(ms / 1000));

const alice = {
  user: 'alice',
  roles: ['access', 'editor'],
  logins: ['root', 'alice'],
  traits: { logins: ['root'], db_users: ['postgres'] },
};
const device = {
  deviceId: '4bb8a5b7-50e5-4a0c-9d8e-1f44d02d3e1a',
  assetTag: 'C02XYZ',
  credentialId: 'cred-1',
};

async function setup(clusterName = 'example') {
  const clock = new FakeClock(T0);
  const backend = new MemoryBackend({ clock, reapIntervalMs: 0 });
  const cas = await CertAuthorities.init({ backend, clusterName, clock });
  return { clock, backend, cas };
}

function bad(reason: RegExp) {
  return (e: unknown) => isWardenError(e, 'WARDEN_ERR_BAD_CERTIFICATE') && reason.test((e as Error).message);
}

test('user certificates: ssh-keygen -L shows what was issued', sshKeygen, async () => {
  const { backend, cas } = await setup();
  const tmp = tempDir();
  try {
    const user = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const { sshCert, notAfter } = await cas.issueUserCertificates({
      ...alice,
      publicKey: user.publicKey,
      ttlMs: 8 * HOUR,
    });
    assert.equal(notAfter.toISOString(), '2026-01-01T08:00:00.000Z');
    writeFileSync(tmp.path('id-cert.pub'), `${sshCert}\n`);
    const res = run('ssh-keygen', ['-L', '-f', tmp.path('id-cert.pub')]);
    assert.equal(res.status, 0, res.stderr);
    const out = res.stdout;
    assert.match(out, /Type: ecdsa-sha2-nistp256-cert-v01@openssh\.com user certificate/);
    assert.ok(out.includes(`Public key: ECDSA-CERT ${sshFingerprint(user.publicKey)}`), out);
    assert.ok(
      out.includes(
        `Signing CA: ED25519 ${sshFingerprint(cas.sshPublicKeys('user')[0]!)} (using ssh-ed25519)`,
      ),
    );
    assert.match(out, /Key ID: "alice"/);
    assert.match(out, /Valid: from 2025-12-31T23:59:00 to 2026-01-01T08:00:00/);
    assert.match(out, /Principals: \n {16}root\n {16}alice\n/);
    assert.match(out, /Critical Options: \(none\)/);
    const exts = out
      .slice(out.indexOf('Extensions:'))
      .split('\n')
      .slice(1)
      .map((l) => l.trim().split(' ')[0]);
    // No agent or X11 forwarding unless a role permits it, and never permit-user-rc.
    assert.deepEqual(exts.filter(Boolean), [
      'permit-port-forwarding',
      'permit-pty',
      SshIdentityExtensions.roles,
      SshIdentityExtensions.traits,
    ]);
    const parsed = parseSshCertificate(sshCert);
    assert.equal(parsed.extensions[SshIdentityExtensions.roles], '["access","editor"]');
    assert.deepEqual(JSON.parse(parsed.extensions[SshIdentityExtensions.traits]!), alice.traits);
  } finally {
    tmp.cleanup();
    await backend.close();
  }
});

test('user certificates carry agent and X11 forwarding only when permitted', async () => {
  const { backend, cas } = await setup();
  try {
    const user = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const exts = async (permit?: { agentForwarding?: boolean; x11Forwarding?: boolean }) =>
      Object.keys(
        parseSshCertificate(
          (
            await cas.issueUserCertificates({
              ...alice,
              publicKey: user.publicKey,
              ttlMs: HOUR,
              ...(permit && { permit }),
            })
          ).sshCert,
        ).extensions,
      ).filter((e) => e.startsWith('permit-'));
    assert.deepEqual(await exts(), ['permit-port-forwarding', 'permit-pty']);
    assert.deepEqual(await exts({ agentForwarding: false, x11Forwarding: false }), [
      'permit-port-forwarding',
      'permit-pty',
    ]);
    assert.deepEqual(await exts({ agentForwarding: true }), [
      'permit-agent-forwarding',
      'permit-port-forwarding',
      'permit-pty',
    ]);
    assert.deepEqual(await exts({ agentForwarding: true, x11Forwarding: true }), [
      'permit-X11-forwarding',
      'permit-agent-forwarding',
      'permit-port-forwarding',
      'permit-pty',
    ]);
  } finally {
    await backend.close();
  }
});

test('user certificates: openssl verifies the X.509 one against the user CA only', openssl, async () => {
  const { backend, cas } = await setup();
  const tmp = tempDir();
  try {
    const user = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const { tlsCert } = await cas.issueUserCertificates({
      ...alice,
      publicKey: user.publicKey,
      ttlMs: 8 * HOUR,
    });
    writeFileSync(tmp.path('user-ca.pem'), cas.tlsCertPems('user')[0]!);
    writeFileSync(tmp.path('host-ca.pem'), cas.tlsCertPems('host')[0]!);
    writeFileSync(tmp.path('alice.pem'), tlsCert);
    const verify = (ca: string, at: number, purpose = 'sslclient') =>
      run('openssl', [
        'verify',
        '-attime',
        attime(at),
        '-purpose',
        purpose,
        '-CAfile',
        tmp.path(ca),
        tmp.path('alice.pem'),
      ]);
    assert.equal(verify('user-ca.pem', T0 + HOUR).stdout.trim(), `${tmp.path('alice.pem')}: OK`);
    assert.notEqual(verify('host-ca.pem', T0 + HOUR).status, 0);
    assert.match(
      verify('user-ca.pem', T0 + 9 * HOUR).stdout + verify('user-ca.pem', T0 + 9 * HOUR).stderr,
      /expired/,
    );
    assert.notEqual(verify('user-ca.pem', T0 + HOUR, 'sslserver').status, 0);

    const text = run('openssl', ['x509', '-noout', '-text', '-in', tmp.path('alice.pem')]).stdout;
    assert.match(text, /Subject: CN = alice, O = access, O = editor/);
    assert.match(text, /Issuer: CN = example, O = example, OU = warden user CA/);
    assert.match(text, /Not After : Jan {2}1 08:00:00 2026 GMT/);
    assert.match(text, /TLS Web Client Authentication/);
    assert.match(text, /CA:FALSE/);
    assert.match(text, /\{"user":"alice","roles":\["access","editor"\],"logins":\["root","alice"\]/);
    // The identity extension carries Warden's full OID (openssl's -text shortens it; asn1parse doesn't).
    assert.ok(
      run('openssl', ['asn1parse', '-in', tmp.path('alice.pem')]).stdout.includes(`:${Oids.identity}\n`),
    );
  } finally {
    tmp.cleanup();
    await backend.close();
  }
});

test('user certificates: same key, same NotAfter, identity round-trips; Ed25519 and key formats work', async () => {
  const { backend, cas } = await setup();
  try {
    const ed = generateKeyPairSync('ed25519');
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const inputs: [string, KeyObject | string, KeyObject][] = [
      ['ed25519 KeyObject', ed.publicKey, ed.publicKey],
      ['ecdsa SPKI PEM', ec.publicKey.export({ type: 'spki', format: 'pem' }).toString(), ec.publicKey],
      ['ecdsa OpenSSH line', formatAuthorizedKey(ec.publicKey), ec.publicKey],
      ['ecdsa private KeyObject', ec.privateKey, ec.publicKey],
    ];
    for (const [what, publicKey, expected] of inputs) {
      const out = await cas.issueUserCertificates({ ...alice, publicKey, ttlMs: 2 * HOUR });
      const ssh = parseSshCertificate(out.sshCert);
      const x = new X509Certificate(out.tlsCert);
      const spki = (k: KeyObject) => k.export({ type: 'spki', format: 'der' });
      assert.deepEqual(spki(ssh.publicKey), spki(expected), what);
      assert.deepEqual(spki(x.publicKey), spki(expected), what);
      assert.equal(Number(ssh.validBefore) * 1000, out.notAfter.getTime(), what);
      assert.equal(new Date(x.validTo).getTime(), out.notAfter.getTime(), what);
      assert.deepEqual(cas.verifyUserTlsCert(out.tlsCert), alice, what);
      assert.equal(cas.verifyUserSshCert(out.sshCert, { principal: 'root' }).keyId, 'alice', what);
    }
  } finally {
    await backend.close();
  }
});

test('user certificates with a device carry the three extensions; augmentation keeps NotAfter', async () => {
  const { clock, backend, cas } = await setup();
  try {
    const key = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey;
    const plain = await cas.issueUserCertificates({ ...alice, publicKey: key, ttlMs: 8 * HOUR });
    clock.advance(10 * 60_000);
    const augmented = await cas.issueUserCertificates({
      ...alice,
      publicKey: key,
      notAfter: plain.notAfter,
      device,
    });
    assert.equal(augmented.notAfter.getTime(), plain.notAfter.getTime());
    const ssh = cas.verifyUserSshCert(augmented.sshCert);
    assert.equal(ssh.validBefore, parseSshCertificate(plain.sshCert).validBefore);
    assert.equal(ssh.extensions[SshDeviceExtensions.deviceId], device.deviceId);
    assert.equal(ssh.extensions[SshDeviceExtensions.assetTag], device.assetTag);
    assert.equal(ssh.extensions[SshDeviceExtensions.credentialId], device.credentialId);
    assert.deepEqual(cas.verifyUserTlsCert(augmented.tlsCert), { ...alice, device });
    assert.equal(parseIdentityFromCertificate(plain.tlsCert).device, undefined);

    await assert.rejects(
      cas.issueUserCertificates({
        ...alice,
        publicKey: key,
        ttlMs: HOUR,
        device: { ...device, credentialId: '' },
      }),
      (e) => isWardenError(e, 'WARDEN_ERR_BAD_PARAMETER'),
    );
  } finally {
    await backend.close();
  }
});

test('the same identity certified again: new serials, nonce, key and times; every identity field still counts', async () => {
  const { clock, backend, cas } = await setup();
  try {
    const k1 = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey;
    const k2 = generateKeyPairSync('ed25519').publicKey;
    const a = await cas.issueUserCertificates({ ...alice, publicKey: k1, ttlMs: HOUR, device });
    clock.advance(5_000);
    const b = await cas.issueUserCertificates({ ...alice, publicKey: k2, ttlMs: 2 * HOUR, device });
    const [sa, sb] = [cas.verifyUserSshCert(a.sshCert), cas.verifyUserSshCert(b.sshCert)];
    const [xa, xb] = [new X509Certificate(a.tlsCert), new X509Certificate(b.tlsCert)];
    assert.notEqual(sa.serial, sb.serial);
    assert.notDeepEqual(sa.nonce, sb.nonce);
    assert.notEqual(xa.serialNumber, xb.serialNumber);
    assert.equal(sb.keyType, 'ssh-ed25519');
    assert.equal(xb.publicKey.asymmetricKeyType, 'ed25519');
    assert.equal(Number(sb.validAfter) - Number(sa.validAfter), 5);
    assert.equal(new Date(xb.validTo).getTime(), b.notAfter.getTime());
    assert.deepEqual(cas.verifyUserTlsCert(b.tlsCert), { ...alice, device });
    // Each field of the identity, the device and the permits changes what is issued.
    const variants: [string, Parameters<typeof cas.issueUserCertificates>[0]][] = [
      ['roles', { ...alice, roles: ['access'], publicKey: k1, ttlMs: HOUR, device }],
      ['logins', { ...alice, logins: ['alice'], publicKey: k1, ttlMs: HOUR, device }],
      ['traits', { ...alice, traits: { logins: ['bob'] }, publicKey: k1, ttlMs: HOUR, device }],
      ['device', { ...alice, publicKey: k1, ttlMs: HOUR, device: { ...device, deviceId: 'other-id' } }],
      ['no device', { ...alice, publicKey: k1, ttlMs: HOUR }],
      ['bot', { ...alice, kind: 'bot', publicKey: k1, ttlMs: HOUR, device }],
    ];
    for (const [what, req] of variants) {
      const out = await cas.issueUserCertificates(req);
      const expected = {
        user: req.user,
        roles: [...req.roles],
        logins: [...req.logins],
        traits: req.traits,
        ...(req.kind ? { kind: req.kind } : {}),
        ...(req.device ? { device: req.device } : {}),
      };
      assert.deepEqual(cas.verifyUserTlsCert(out.tlsCert), expected, what);
      const ssh = cas.verifyUserSshCert(out.sshCert);
      assert.deepEqual(ssh.validPrincipals, req.logins, what);
      assert.equal(ssh.extensions[SshDeviceExtensions.deviceId], req.device?.deviceId, what);
      assert.equal(ssh.extensions[SshIdentityExtensions.traits], JSON.stringify(req.traits), what);
    }
    const agent = await cas.issueUserCertificates({
      ...alice,
      publicKey: k1,
      ttlMs: HOUR,
      device,
      permit: { agentForwarding: true },
    });
    assert.equal(cas.verifyUserSshCert(agent.sshCert).extensions['permit-agent-forwarding'], '');
    assert.equal(sa.extensions['permit-agent-forwarding'], undefined);
  } finally {
    await backend.close();
  }
});

test('a user without logins gets one unmatchable principal, never an empty list', async () => {
  const { backend, cas } = await setup();
  try {
    const key = generateKeyPairSync('ed25519').publicKey;
    const a = await cas.issueUserCertificates({ ...alice, logins: [], publicKey: key, ttlMs: HOUR });
    const b = await cas.issueUserCertificates({ ...alice, logins: [], publicKey: key, ttlMs: HOUR });
    const [pa] = parseSshCertificate(a.sshCert).validPrincipals;
    const [pb] = parseSshCertificate(b.sshCert).validPrincipals;
    assert.match(pa!, /^-warden-nologin-[0-9a-f-]{36}$/);
    assert.notEqual(pa, pb);
    assert.equal(parseSshCertificate(a.sshCert).validPrincipals.length, 1);
    assert.throws(() => cas.verifyUserSshCert(a.sshCert, { principal: 'root' }), bad(/principal "root"/));
    assert.deepEqual(cas.verifyUserTlsCert(a.tlsCert).logins, []);
  } finally {
    await backend.close();
  }
});

test('user certificate requests with bad keys or lifetimes are refused', async () => {
  const { backend, cas } = await setup();
  try {
    const key = generateKeyPairSync('ed25519').publicKey;
    const refused = [
      { ...alice, publicKey: generateKeyPairSync('ec', { namedCurve: 'P-384' }).publicKey, ttlMs: HOUR },
      { ...alice, publicKey: generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey, ttlMs: HOUR },
      { ...alice, publicKey: 'ssh-ed25519 AAAA', ttlMs: HOUR },
      { ...alice, publicKey: key, ttlMs: 0 },
      { ...alice, publicKey: key, ttlMs: -HOUR },
      { ...alice, publicKey: key, ttlMs: Number.NaN },
      { ...alice, publicKey: key, ttlMs: 8 * 24 * HOUR },
      { ...alice, publicKey: key },
      { ...alice, publicKey: key, ttlMs: HOUR, notAfter: new Date(T0 + HOUR) },
      { ...alice, publicKey: key, notAfter: new Date(T0 - 1) },
      { ...alice, user: '', publicKey: key, ttlMs: HOUR },
    ];
    for (const req of refused) {
      await assert.rejects(cas.issueUserCertificates(req), (e) =>
        isWardenError(e, 'WARDEN_ERR_BAD_PARAMETER'),
      );
    }
  } finally {
    await backend.close();
  }
});

test('verifyUserTlsCert refuses tampered, expired, early, foreign and CA certificates', async () => {
  const { clock, backend, cas } = await setup();
  const other = await setup();
  try {
    const key = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey;
    const { tlsCert } = await cas.issueUserCertificates({ ...alice, publicKey: key, ttlMs: 8 * HOUR });
    assert.deepEqual(cas.verifyUserTlsCert(tlsCert), alice);

    // Tamper with the signed part: change "alice" in the identity JSON to "alicf".
    const der = new X509Certificate(tlsCert).raw;
    const at = der.indexOf(Buffer.from('"user":"alice"')) + 12;
    const tampered = Buffer.from(der);
    tampered[at] = 'f'.charCodeAt(0);
    assert.throws(() => cas.verifyUserTlsCert(tampered), bad(/not signed by the user CA/));

    assert.throws(() => cas.verifyUserTlsCert(tlsCert, T0 + 8 * HOUR + 1000), bad(/expired/));
    assert.throws(() => cas.verifyUserTlsCert(tlsCert, T0 - 2 * 60_000), bad(/not yet valid/));
    clock.advance(9 * HOUR);
    assert.throws(() => cas.verifyUserTlsCert(tlsCert), bad(/expired/));
    clock.set(T0);

    const foreign = await other.cas.issueUserCertificates({ ...alice, publicKey: key, ttlMs: HOUR });
    assert.throws(() => cas.verifyUserTlsCert(foreign.tlsCert), bad(/not signed by the user CA/));
    const hostCert = await cas.issueHostTlsCert({ dnsNames: ['alice'] });
    assert.throws(() => cas.verifyUserTlsCert(hostCert.certPem), bad(/not signed by the user CA/));
    assert.throws(() => cas.verifyUserTlsCert(cas.tlsCertPems('user')[0]!), bad(/CA certificate/));
    assert.throws(() => cas.verifyUserTlsCert('garbage'), bad(/not an X.509/));
  } finally {
    await backend.close();
    await other.backend.close();
  }
});

test('verifyUserTlsCert wants clientAuth and a Warden identity, even from the right CA', async () => {
  // A user CA whose private key the test holds, stored the way CertAuthorities stores CAs.
  const clock = new FakeClock(T0);
  const backend = new MemoryBackend({ clock, reapIntervalMs: 0 });
  try {
    const caKey = PrivateKey.generate('ecdsa-p256');
    const caPem = await createCaCertificate({
      key: caKey,
      subject: [{ CN: ['example'] }],
      notBefore: new Date(T0 - HOUR),
      notAfter: new Date(T0 + 24 * HOUR),
    });
    await backend.create(
      '/authorities/user',
      JSON.stringify({
        type: 'user',
        cluster_name: 'example',
        ssh: { private_key: PrivateKey.generate('ed25519').toPkcs8Pem() },
        tls: { private_key: caKey.toPkcs8Pem(), cert: caPem },
      }),
    );
    const cas = await CertAuthorities.init({ backend, clusterName: 'example', clock });
    const signer = {
      key: caKey,
      webKey: await caKey.toWebCryptoSigningKey(),
      cert: new x509.X509Certificate(caPem),
    };
    const leaf = (usages: ('clientAuth' | 'serverAuth')[], withIdentity: boolean) =>
      issueLeafCertificate({
        ca: signer,
        subject: [{ CN: ['alice'] }, { O: ['access'] }, { O: ['editor'] }],
        publicKey: generateKeyPairSync('ed25519').publicKey,
        notBefore: new Date(T0 - HOUR),
        notAfter: new Date(T0 + HOUR),
        usages,
        wardenExtensions: withIdentity ? identityExtensions(alice) : [],
      });
    assert.deepEqual(cas.verifyUserTlsCert(await leaf(['clientAuth'], true)), alice);
    const serverOnly = await leaf(['serverAuth'], true);
    assert.throws(() => cas.verifyUserTlsCert(serverOnly), bad(/clientAuth/));
    const noIdentity = await leaf(['clientAuth'], false);
    assert.throws(() => cas.verifyUserTlsCert(noIdentity), bad(/no Warden identity/));
  } finally {
    await backend.close();
  }
});

test('host TLS certificates: openssl verifies them as server certificates', openssl, async () => {
  const { backend, cas } = await setup();
  const tmp = tempDir();
  try {
    const host = await cas.issueHostTlsCert({
      dnsNames: ['localhost', 'proxy.example'],
      ipAddresses: ['127.0.0.1'],
    });
    assert.ok(host.privateKey);
    assert.deepEqual(host.caPems, cas.tlsCertPems('host'));
    writeFileSync(tmp.path('host.pem'), host.certPem);
    writeFileSync(tmp.path('host-ca.pem'), cas.tlsCertPems('host')[0]!);
    const now = attime(T0 + HOUR);
    const v = run('openssl', [
      'verify',
      '-attime',
      now,
      '-purpose',
      'sslserver',
      '-CAfile',
      tmp.path('host-ca.pem'),
      tmp.path('host.pem'),
    ]);
    assert.equal(v.stdout.trim(), `${tmp.path('host.pem')}: OK`, v.stderr);
    const text = run('openssl', ['x509', '-noout', '-text', '-in', tmp.path('host.pem')]).stdout;
    assert.match(text, /DNS:localhost, DNS:proxy\.example, IP Address:127\.0\.0\.1/);
    assert.match(text, /TLS Web Server Authentication, TLS Web Client Authentication/);
  } finally {
    tmp.cleanup();
    await backend.close();
  }
});

test('a real TLS handshake: host certificate for the server, user certificate for mTLS', async () => {
  // Node's TLS stack checks validity against the system clock, so this test uses real time.
  const backend = new MemoryBackend({ reapIntervalMs: 0 });
  try {
    const cas = await CertAuthorities.init({ backend, clusterName: 'example' });
    const host = await cas.issueHostTlsCert({ dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
    const userKey = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const user = await cas.issueUserCertificates({ ...alice, publicKey: userKey.publicKey, ttlMs: HOUR });
    const server = tls.createServer({
      cert: host.certPem,
      key: host.privateKey!.toPkcs8Pem(),
      ca: cas.tlsCertPems('user'),
      requestCert: true,
      rejectUnauthorized: true,
    });
    const seen = new Promise<unknown>((resolve) => {
      server.on('secureConnection', (socket) => {
        resolve(cas.verifyUserTlsCert(socket.getPeerX509Certificate()!.raw));
        socket.end();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = server.address() as AddressInfo;
      for (const servername of ['localhost', undefined]) {
        await new Promise<void>((resolve, reject) => {
          const socket = tls.connect({
            host: '127.0.0.1',
            port,
            ...(servername && { servername }),
            ca: host.caPems,
            cert: user.tlsCert,
            key: userKey.privateKey.export({ type: 'pkcs8', format: 'pem' }),
          });
          socket.on('secureConnect', () => {
            assert.ok(socket.authorized, String(socket.authorizationError));
            socket.end();
            resolve();
          });
          socket.on('error', reject);
          socket.resume();
        });
      }
      assert.deepEqual(await seen, alice);
      // A client that trusts only the user CA refuses the server.
      await new Promise<void>((resolve) => {
        const socket = tls.connect({
          host: '127.0.0.1',
          port,
          servername: 'localhost',
          ca: cas.tlsCertPems('user'),
        });
        socket.on('error', (e) => {
          assert.match(String(e), /self[- ]signed|unable to verify|certificate/i);
          resolve();
        });
      });
    } finally {
      server.close();
    }
  } finally {
    await backend.close();
  }
});

test('host TLS certificates for a given key, and refusals', async () => {
  const { backend, cas } = await setup();
  try {
    const key = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const out = await cas.issueHostTlsCert({ dnsNames: ['node1'], publicKey: key.publicKey, ttlMs: HOUR });
    assert.equal(out.privateKey, undefined);
    assert.equal(out.notAfter.getTime(), T0 + HOUR);
    const x = new X509Certificate(out.certPem);
    assert.ok(x.publicKey.equals(key.publicKey));
    assert.ok(x.checkIssued(new X509Certificate(cas.tlsCertPems('host')[0]!)));
    await assert.rejects(cas.issueHostTlsCert({}), (e) => isWardenError(e, 'WARDEN_ERR_BAD_PARAMETER'));
    await assert.rejects(cas.issueHostTlsCert({ dnsNames: ['x'], ttlMs: 0 }), (e) =>
      isWardenError(e, 'WARDEN_ERR_BAD_PARAMETER'),
    );
  } finally {
    await backend.close();
  }
});

test(
  'host SSH certificates: ssh-keygen -L, principals under the cluster, and not usable as user certs',
  sshKeygen,
  async () => {
    const { backend, cas } = await setup('example.com');
    const tmp = tempDir();
    try {
      const hostKey = generateKeyPairSync('ed25519').publicKey;
      const line = cas.issueHostSshCert({
        publicKey: hostKey,
        hostId: 'b1c2',
        hostnames: ['node1'],
        ttlMs: 24 * HOUR,
      });
      writeFileSync(tmp.path('host-cert.pub'), `${line}\n`);
      const out = run('ssh-keygen', ['-L', '-f', tmp.path('host-cert.pub')]).stdout;
      assert.match(out, /Type: ssh-ed25519-cert-v01@openssh\.com host certificate/);
      assert.match(out, /Key ID: "b1c2"/);
      assert.match(
        out,
        /Principals: \n {16}b1c2\n {16}b1c2\.example\.com\n {16}node1\n {16}node1\.example\.com\n/,
      );
      assert.match(out, /Valid: from 2025-12-31T23:59:00 to 2026-01-02T00:00:00/);
      assert.ok(out.includes(`Signing CA: ED25519 ${sshFingerprint(cas.sshPublicKeys('host')[0]!)}`));
      const hostCaLine = cas.exportHostLine().split(' ').slice(2).join(' ');
      verifySshCertificate(line, [hostCaLine], { now: T0, type: 'host', principal: 'node1.example.com' });
      assert.throws(
        () => verifySshCertificate(line, cas.sshPublicKeys('host'), { now: T0, type: 'user' }),
        bad(/host certificate used as a user/),
      );
      assert.throws(() => cas.verifyUserSshCert(line), bad(/not signed by a trusted/));
    } finally {
      tmp.cleanup();
      await backend.close();
    }
  },
);

test(
  'leaf certificates: names are written as given (quotes, #, non-ASCII), dates after 2049 as GeneralizedTime',
  openssl,
  async () => {
    const { cas } = await setup();
    const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const odd = { user: 'x"quoted"y', roles: ['#616263', 'rôle, with comma'], logins: [], traits: {} };
    const { tlsCert } = await cas.issueUserCertificates({ ...odd, publicKey, ttlMs: HOUR });
    const identity = parseIdentityFromCertificate(tlsCert);
    assert.equal(identity.user, odd.user);
    assert.deepEqual(identity.roles, odd.roles);
    const parsed = new x509.X509Certificate(tlsCert);
    assert.equal(parsed.subjectName.getField('CN')[0], odd.user);
    assert.deepEqual(parsed.subjectName.getField('O'), odd.roles);

    const ca = PrivateKey.generate('ecdsa-p256');
    const caPem = await createCaCertificate({
      key: ca,
      subject: [{ CN: ['far future CA'] }],
      notBefore: new Date(T0),
      notAfter: new Date(Date.UTC(2070, 0, 1)),
    });
    const leaf = await issueLeafCertificate({
      ca: { key: ca, webKey: await ca.toWebCryptoSigningKey(), cert: new x509.X509Certificate(caPem) },
      subject: [{ CN: ['late'] }],
      publicKey,
      notBefore: new Date(Date.UTC(2049, 11, 31, 23, 59, 59)),
      notAfter: new Date(Date.UTC(2050, 0, 1, 0, 0, 1)),
      usages: ['serverAuth'],
      ipAddresses: ['::ffff:10.1.2.3'],
    });
    const node = new X509Certificate(leaf);
    assert.equal(new Date(node.validFrom).toISOString(), '2049-12-31T23:59:59.000Z');
    assert.equal(new Date(node.validTo).toISOString(), '2050-01-01T00:00:01.000Z');
    assert.ok(node.verify(new X509Certificate(caPem).publicKey), 'signed by the CA');
    assert.match(node.subjectAltName ?? '', /IP Address:(::ffff:10\.1\.2\.3|0:0:0:0:0:FFFF:A01:203)/i);
    const tmp = tempDir();
    try {
      writeFileSync(tmp.path('leaf.pem'), leaf);
      const asn1 = run('openssl', ['asn1parse', '-in', tmp.path('leaf.pem')]).stdout;
      assert.match(asn1, /UTCTIME\s+:491231235959Z/);
      assert.match(asn1, /GENERALIZEDTIME\s+:20500101000001Z/);
    } finally {
      tmp.cleanup();
    }
  },
);
