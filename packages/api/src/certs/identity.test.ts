import 'reflect-metadata';
import assert from 'node:assert/strict';
import { sign, webcrypto } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { test } from 'node:test';
import * as x509 from '@peculiar/x509';
import { p256KeyPair } from '../../../../test/support/p256-keys';
import { needs, run, tempDir } from '../../../../test/support/system-tools';
import { Oids } from '../constants';
import { isWardenError } from '../errors';
import {
  type CertIdentity,
  derUtf8String,
  encodeIdentityExtension,
  identityExtensions,
  identitySubject,
  parseIdentityFromCertificate,
  readDerUtf8String,
} from './identity';
import { addCertificateExtensions, type CertificateExtension, readCertificateExtensions } from './x509-der';

const openssl = needs('openssl');
const ecdsa = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

const alice: CertIdentity = {
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

/** A self-signed certificate built by @peculiar/x509, with Warden extensions added by us. */
async function makeCert(opts: {
  subject?: Record<string, string[]>[];
  extensions?: CertificateExtension[];
}): Promise<string> {
  const { pair, keys } = await p256KeyPair();
  const base = await x509.X509CertificateGenerator.createSelfSigned(
    {
      name: opts.subject ?? identitySubject(alice),
      keys,
      notBefore: new Date('2026-01-01T00:00:00Z'),
      notAfter: new Date('2026-01-01T08:00:00Z'),
      signingAlgorithm: ecdsa,
      extensions: [new x509.BasicConstraintsExtension(false, undefined, true)],
    },
    webcrypto as never,
  );
  const der = addCertificateExtensions(
    new Uint8Array(base.rawData),
    opts.extensions ?? identityExtensions(alice),
    (tbs) => sign('sha256', tbs, pair.privateKey),
  );
  return new x509.X509Certificate(der).toString('pem');
}

function rejects(fn: () => unknown, reason: RegExp): void {
  assert.throws(
    fn,
    (e) => isWardenError(e, 'WARDEN_ERR_BAD_CERTIFICATE') && reason.test((e as Error).message),
  );
}

async function rejectsCert(opts: Parameters<typeof makeCert>[0], reason: RegExp): Promise<void> {
  const pem = await makeCert(opts);
  rejects(() => parseIdentityFromCertificate(pem), reason);
}

test('an identity round-trips through a certificate (PEM and DER), with and without device', async () => {
  const pem = await makeCert({});
  assert.deepEqual(parseIdentityFromCertificate(pem), alice);
  const der = new x509.X509Certificate(pem).rawData;
  assert.deepEqual(parseIdentityFromCertificate(new Uint8Array(der)), alice);

  const withDevice = { ...alice, device };
  const pem2 = await makeCert({ extensions: identityExtensions(withDevice) });
  assert.deepEqual(parseIdentityFromCertificate(pem2), withDevice);
});

test('openssl shows the subject and the identity extension with its full OID', openssl, async () => {
  const tmp = tempDir();
  try {
    writeFileSync(
      tmp.path('c.pem'),
      await makeCert({ extensions: identityExtensions({ ...alice, device }) }),
    );
    const t = run('openssl', ['x509', '-noout', '-text', '-in', tmp.path('c.pem')]);
    assert.equal(t.status, 0, t.stderr);
    assert.match(t.stdout, /Subject: CN = alice, O = access, O = editor/);
    assert.match(t.stdout, /\{"user":"alice","roles":\["access","editor"\],"logins":\["root","alice"\]/);
    // `x509 -text` shortens big-arc OIDs to "2.25"; asn1parse prints them whole.
    const a = run('openssl', ['asn1parse', '-in', tmp.path('c.pem')]);
    assert.equal(a.status, 0, a.stderr);
    for (const oid of [Oids.identity, Oids.deviceId, Oids.deviceAssetTag, Oids.deviceCredentialId]) {
      assert.ok(a.stdout.includes(`OBJECT            :${oid}\n`), oid);
    }
    // The value inside the identity extension's OCTET STRING is a UTF8String.
    const at = new RegExp(`OBJECT +:${Oids.identity.replaceAll('.', '\\.')}\\n +(\\d+):`).exec(a.stdout);
    assert.ok(at, a.stdout);
    const inner = run('openssl', ['asn1parse', '-in', tmp.path('c.pem'), '-strparse', at[1]!]);
    assert.match(inner.stdout, /UTF8STRING +:\{"user":"alice"/);
  } finally {
    tmp.cleanup();
  }
});

test('our DER reader sees the extensions @peculiar/x509 would mangle', async () => {
  const der = new x509.X509Certificate(await makeCert({})).rawData;
  const exts = readCertificateExtensions(new Uint8Array(der));
  assert.deepEqual(
    exts.map((e) => [e.oid, e.critical]),
    [
      ['2.5.29.19', true],
      [Oids.identity, false],
    ],
  );
  assert.deepEqual(Buffer.from(exts[1]!.value), Buffer.from(encodeIdentityExtension(alice)));
});

test('the identity extension value is a DER UTF8String of the JSON identity', () => {
  const der = encodeIdentityExtension({ ...alice, device });
  assert.equal(der[0], 0x0c);
  assert.deepEqual(JSON.parse(readDerUtf8String(der, 'x')), alice);
  const long = 'x'.repeat(300);
  assert.equal(readDerUtf8String(derUtf8String(long), 'x'), long);
  for (const broken of [
    { ...alice, user: '' },
    { ...alice, roles: [''] },
    { ...alice, logins: [1 as never] },
    { ...alice, roles: [['admin']] as never },
  ]) {
    // Twice: an identity checked (and remembered) once is the same, a broken one refused each time.
    for (let i = 0; i < 2; i++) {
      assert.throws(
        () => encodeIdentityExtension(broken),
        (e) => isWardenError(e, 'WARDEN_ERR_BAD_PARAMETER'),
      );
    }
  }
  // A remembered encoding is handed out as a copy: changing one changes no later one.
  const first = encodeIdentityExtension(alice);
  first.fill(0);
  assert.deepEqual(JSON.parse(readDerUtf8String(encodeIdentityExtension(alice), 'x')), alice);
});

test('certificates whose identity is missing, malformed or contradicted are refused', async () => {
  rejects(() => parseIdentityFromCertificate('not a certificate'), /malformed certificate/);
  rejects(
    () => parseIdentityFromCertificate(new Uint8Array([0x30, 0x03, 0x02, 0x01])),
    /malformed certificate/,
  );
  await rejectsCert({ extensions: [] }, /no Warden identity/);
  await rejectsCert({ subject: identitySubject({ ...alice, user: 'mallory' }) }, /CN does not match/);
  await rejectsCert({ subject: identitySubject({ ...alice, roles: ['access'] }) }, /roles/);
  const ext = (value: Uint8Array) => [{ oid: Oids.identity, critical: false, value }];
  await rejectsCert({ extensions: ext(derUtf8String('{')) }, /not JSON/);
  await rejectsCert(
    { extensions: ext(derUtf8String(JSON.stringify({ ...alice, admin: true }))) },
    /wrong shape/,
  );
  await rejectsCert({ extensions: ext(new Uint8Array([0x04, 0x01, 0x41])) }, /not a UTF8String/);
  await rejectsCert({ extensions: ext(new Uint8Array([0x0c, 0x05, 0x41])) }, /bad length/);
  // A long-form length for a one-byte string is not DER.
  await rejectsCert({ extensions: ext(new Uint8Array([0x0c, 0x81, 0x01, 0x41])) }, /non-minimal/);
  await rejectsCert(
    { extensions: [...identityExtensions(alice), ...identityExtensions(alice)] },
    /appears twice/,
  );
  await rejectsCert(
    { extensions: identityExtensions(alice).map((e) => ({ ...e, critical: true })) },
    /must not be critical/,
  );
});

test('device extensions must be all three or none', async () => {
  const all = identityExtensions({ ...alice, device });
  for (let drop = 1; drop < all.length; drop++) {
    const some = all.filter((_, i) => i !== drop);
    await rejectsCert({ extensions: some }, /all three or none/);
  }
  const emptyDevice = [
    ...identityExtensions(alice),
    ...all.slice(1).map((e) => ({ ...e, value: derUtf8String('') })),
  ];
  await rejectsCert({ extensions: emptyDevice }, /empty device/);
  assert.throws(
    () => identityExtensions({ ...alice, device: { ...device, assetTag: '' } }),
    (e) => isWardenError(e, 'WARDEN_ERR_BAD_PARAMETER'),
  );
});

test('fuzz: mutated certificate DER gives an identity or a typed error, never a crash', async () => {
  const der = Buffer.from(
    new x509.X509Certificate(await makeCert({ extensions: identityExtensions({ ...alice, device }) }))
      .rawData,
  );
  let seed = 7;
  const rand = () => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed / 0x80000000;
  };
  for (let i = 0; i < 1500; i++) {
    const b = Buffer.from(der);
    const at = Math.floor(rand() * b.length);
    if (i % 3 === 0) b[at] = (b[at] ?? 0) ^ (1 << Math.floor(rand() * 8));
    else if (i % 3 === 1) b[at] = Math.floor(rand() * 256);
    const input = i % 3 === 2 ? b.subarray(0, at) : b;
    try {
      parseIdentityFromCertificate(input);
    } catch (e) {
      assert.ok(isWardenError(e, 'WARDEN_ERR_BAD_CERTIFICATE'), `round ${i}: ${String(e)}`);
    }
  }
});
