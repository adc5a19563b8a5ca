import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { describe, test } from 'node:test';
import { cn, ecKey, makeCert, rsaKey } from '../../../../test/support/ek-test-certs';
import { Rng } from '../../../../test/support/tpm-random';
import { TPM_ALG, TPMA_OBJECT } from '../constants';
import { isTpmError } from '../errors';
import type { TpmtPublic } from '../marshal';
import { concatBytes } from '../marshal';
import { derOid, derSeq, derTlv, TAG } from './der';
import {
  checkEkCertificateChain,
  checkEkMatchesCertificate,
  OID,
  parseCertificate,
  parseEkCertificate,
  verifyEkCertificate,
} from './ek-cert';

const NOW = new Date('2026-06-01T00:00:00Z');
const TPM = { manufacturer: 'id:00001014', model: 'swtpm', version: 'id:20191023' };

const rootKey = rsaKey();
const interKey = ecKey();
const otherRootKey = rsaKey();
const ekKey = rsaKey();
const ROOT = makeCert({
  subject: cn('Test TPM Root'),
  issuer: cn('Test TPM Root'),
  publicKey: rootKey.publicKey,
  signer: rootKey.privateKey,
  ca: true,
});
/** The issuing CA's certificate (its key, signed by the root's key), with `o` changed. */
const intermediate = (o: Partial<Parameters<typeof makeCert>[0]> = {}) =>
  makeCert({
    subject: cn('Test TPM Issuing CA'),
    issuer: cn('Test TPM Root'),
    publicKey: interKey.publicKey,
    signer: rootKey.privateKey,
    ca: true,
    ...o,
  });
const INTER = intermediate({ serial: 2 });
const OTHER_ROOT = makeCert({
  subject: cn('Test TPM Root'),
  issuer: cn('Test TPM Root'),
  publicKey: otherRootKey.publicKey,
  signer: otherRootKey.privateKey,
  ca: true,
});
// An EK certificate the way TPM vendors write them: empty subject, critical SAN, OAEP key.
const EK_CERT = makeCert({
  subject: derSeq(),
  issuer: cn('Test TPM Issuing CA'),
  publicKey: ekKey.publicKey,
  signer: interKey.privateKey,
  ca: false,
  oaep: true,
  eku: [OID.ekCertificateEku],
  tpm: TPM,
  serial: 7,
});

const spkiCert = {
  subject: cn('k'),
  issuer: cn('k'),
  publicKey: ekKey.publicKey,
  signer: rootKey.privateKey,
};

function ekPublicOf(key = ekKey.publicKey): TpmtPublic {
  const jwk = key.export({ format: 'jwk' });
  return {
    type: TPM_ALG.RSA,
    nameAlg: TPM_ALG.SHA256,
    objectAttributes: 0x000300b2,
    authPolicy: new Uint8Array(32),
    parameters: {
      symmetric: { algorithm: TPM_ALG.AES, keyBits: 128, mode: TPM_ALG.CFB },
      scheme: { scheme: TPM_ALG.NULL },
      keyBits: 2048,
      exponent: 0,
    },
    unique: new Uint8Array(Buffer.from(jwk.n!, 'base64url')),
  };
}

describe('EK certificate parsing', () => {
  test('reads the TCG fields: SAN TPM attributes, EKU, the OAEP-labelled RSA key', () => {
    const c = parseEkCertificate(EK_CERT);
    assert.equal(c.tpmManufacturer, 'id:00001014');
    assert.equal(c.tpmModel, 'swtpm');
    assert.equal(c.tpmVersion, 'id:20191023');
    assert.deepEqual(c.extKeyUsage, [OID.ekCertificateEku]);
    assert.equal(c.keyAlgorithm, OID.rsaesOaep);
    assert.equal(c.subjectText, '');
    assert.equal(c.issuerText, 'CN=Test TPM Issuing CA');
    assert.equal(c.serialNumber, '07');
    assert.ok(c.extensions.find((e) => e.oid === OID.subjectAltName)?.critical);
    checkEkMatchesCertificate(ekPublicOf(), c);
  });

  test('agrees with node:crypto X509Certificate on an ordinary certificate', () => {
    const ours = parseCertificate(INTER);
    const node = new X509Certificate(INTER);
    assert.equal(ours.serialNumber.toUpperCase(), node.serialNumber);
    assert.equal(ours.subjectText, node.subject.replace(/\n/g, ', '));
    assert.equal(ours.notAfter.getTime(), new Date(node.validTo).getTime());
    assert.equal(ours.isCa, node.ca);
    assert.ok(node.verify(parseCertificate(ROOT).publicKey));
  });

  test('the certificate’s key: RSA (also OAEP-labelled) and EC keys are the keys certified', () => {
    const ec = ecKey('P-384');
    for (const [key, oaep] of [
      [ekKey, false],
      [ekKey, true],
      [rsaKey(1024), false],
      [ec, false],
    ] as const) {
      const der = makeCert({
        subject: cn('k'),
        issuer: cn('k'),
        publicKey: key.publicKey,
        signer: rootKey.privateKey,
        oaep,
      });
      const c = parseCertificate(der);
      assert.ok(c.publicKey.equals(key.publicKey));
      if (!oaep) assert.ok(c.publicKey.equals(new X509Certificate(der).publicKey));
    }
  });

  test('an RSA key that is not one RSAPublicKey is refused as malformed', () => {
    const good = new Uint8Array(ekKey.publicKey.export({ format: 'der', type: 'pkcs1' }));
    const alg = derSeq(derOid('1.2.840.113549.1.1.1'), derTlv(TAG.NULL));
    const spkiOf = (key: Uint8Array) =>
      derSeq(alg, derTlv(TAG.BIT_STRING, concatBytes(Uint8Array.of(0), key)));
    for (const key of [
      concatBytes(good, Uint8Array.of(0)), // trailing data
      good.subarray(0, good.length - 1), // truncated
      derSeq(derTlv(TAG.INTEGER, Uint8Array.of(0))), // not an RSA key
    ]) {
      const der = makeCert({ ...spkiCert, spki: spkiOf(key) });
      assert.throws(
        () => parseCertificate(der),
        (e) => isTpmError(e, 'TPM_ERR_EK_CERT_MALFORMED'),
      );
    }
    assert.ok(
      parseCertificate(makeCert({ ...spkiCert, spki: spkiOf(good) })).publicKey.equals(ekKey.publicKey),
    );
  });

  test('accepts PEM', () => {
    const pem = `-----BEGIN CERTIFICATE-----\n${Buffer.from(EK_CERT).toString('base64')}\n-----END CERTIFICATE-----\n`;
    assert.equal(parseEkCertificate(pem).serialNumber, '07');
  });

  test('a key other than the EK is refused', () => {
    assert.throws(
      () => checkEkMatchesCertificate(ekPublicOf(rsaKey().publicKey), parseEkCertificate(EK_CERT)),
      (e) => isTpmError(e, 'TPM_ERR_EK_MISMATCH'),
    );
  });

  test('profile violations: CA flag, EKU without the EK purpose, unknown critical extension', () => {
    const base = {
      subject: derSeq(),
      issuer: cn('Test TPM Issuing CA'),
      publicKey: ekKey.publicKey,
      signer: interKey.privateKey,
    };
    const bad = [
      makeCert({ ...base, ca: true }),
      makeCert({ ...base, eku: ['1.3.6.1.5.5.7.3.2'] }),
      makeCert({ ...base, extraExtensions: [{ oid: '1.2.3.4', critical: true, value: derSeq() }] }),
    ];
    for (const der of bad)
      assert.throws(
        () => parseEkCertificate(der),
        (e) => isTpmError(e, 'TPM_ERR_EK_CERT_PROFILE'),
      );
    // The same unknown extension, not critical, is fine.
    parseEkCertificate(
      makeCert({ ...base, extraExtensions: [{ oid: '1.2.3.4', critical: false, value: derOid('1.2') }] }),
    );
  });
});

describe('EK certificate chain', () => {
  test('chains through an intermediate to an allowed root, or to the allowed intermediate itself', () => {
    const { chain, certificate } = verifyEkCertificate(EK_CERT, {
      roots: [ROOT],
      intermediates: [INTER],
      now: NOW,
    });
    assert.deepEqual(
      chain.map((c) => c.subjectText),
      ['', 'CN=Test TPM Issuing CA', 'CN=Test TPM Root'],
    );
    assert.equal(certificate.tpmModel, 'swtpm');
    assert.equal(verifyEkCertificate(EK_CERT, { roots: [INTER], now: NOW }).chain.length, 2);
  });

  test('an EK certificate from an unlisted CA is refused', () => {
    // Same root name, other key: the signature check, not the name, decides.
    for (const roots of [[OTHER_ROOT], [ROOT]]) {
      assert.throws(
        () =>
          verifyEkCertificate(EK_CERT, { roots, intermediates: roots[0] === ROOT ? [] : [INTER], now: NOW }),
        (e) => isTpmError(e, 'TPM_ERR_EK_CERT_UNTRUSTED'),
      );
    }
    assert.throws(
      () => verifyEkCertificate(EK_CERT, { roots: [], now: NOW }),
      (e) => isTpmError(e, 'TPM_ERR_EK_CERT_UNTRUSTED'),
    );
  });

  test('a non-CA certificate cannot issue', () => {
    const notCaKey = rsaKey();
    const notCa = makeCert({
      subject: cn('Leaf'),
      issuer: cn('Leaf'),
      publicKey: notCaKey.publicKey,
      signer: notCaKey.privateKey,
      ca: false,
    });
    const ek = makeCert({
      subject: derSeq(),
      issuer: cn('Leaf'),
      publicKey: ekKey.publicKey,
      signer: notCaKey.privateKey,
      eku: [OID.ekCertificateEku],
    });
    assert.throws(
      () => verifyEkCertificate(ek, { roots: [notCa], now: NOW }),
      (e) => isTpmError(e, 'TPM_ERR_EK_CERT_UNTRUSTED'),
    );
  });

  test('expired or not yet valid certificates are refused', () => {
    const expired = makeCert({
      subject: derSeq(),
      issuer: cn('Test TPM Issuing CA'),
      publicKey: ekKey.publicKey,
      signer: interKey.privateKey,
      notAfter: new Date('2025-01-01T00:00:00Z'),
    });
    assert.throws(
      () => verifyEkCertificate(expired, { roots: [INTER], now: NOW }),
      (e) => isTpmError(e, 'TPM_ERR_EK_CERT_EXPIRED'),
    );
    assert.throws(
      () => verifyEkCertificate(EK_CERT, { roots: [INTER], now: new Date('2020-01-01T00:00:00Z') }),
      (e) => isTpmError(e, 'TPM_ERR_EK_CERT_EXPIRED'),
    );
  });
});

describe('EK certificate chain without an allowed CA (issue 15 item 8)', () => {
  /** The DER with one bit flipped at `offset` from the end (inside the signature). */
  const flipped = (der: Uint8Array, fromEnd = 5) => {
    const b = der.slice();
    b[b.length - fromEnd]! ^= 0x01;
    return b;
  };

  test('verified up to a self-signed root, through the issuers the TPM holds (any order)', () => {
    const r = checkEkCertificateChain(EK_CERT, { issuers: [ROOT, INTER], now: NOW });
    assert.equal(r.reach, 'root');
    assert.deepEqual(
      r.chain.map((c) => c.subjectText),
      ['', 'CN=Test TPM Issuing CA', 'CN=Test TPM Root'],
    );
    const partial = checkEkCertificateChain(EK_CERT, { issuers: [INTER], now: NOW });
    assert.equal(partial.reach, 'issuer');
    assert.equal(partial.chain.length, 2);
    assert.equal(checkEkCertificateChain(EK_CERT, { now: NOW }).reach, 'none');
  });

  test('a bit-flipped EK certificate is refused when its issuer is at hand, unchecked when not', () => {
    const bad = flipped(EK_CERT);
    assert.equal(parseEkCertificate(bad).serialNumber, parseEkCertificate(EK_CERT).serialNumber);
    assert.throws(
      () => checkEkCertificateChain(bad, { issuers: [INTER, ROOT], now: NOW }),
      (e) =>
        isTpmError(e, 'TPM_ERR_EK_CERT_SIGNATURE') &&
        /^the EK certificate is not signed by its issuer CN=Test TPM Issuing CA/.test(e.message),
    );
    // No issuer: nothing to check the signature with — the caller must not call it verified.
    assert.equal(checkEkCertificateChain(bad, { issuers: [], now: NOW }).reach, 'none');
    // An altered issuer or root is refused too.
    assert.throws(
      () => checkEkCertificateChain(EK_CERT, { issuers: [flipped(INTER), ROOT], now: NOW }),
      (e) =>
        isTpmError(e, 'TPM_ERR_EK_CERT_SIGNATURE') && /CA certificate CN=Test TPM Issuing CA/.test(e.message),
    );
    assert.throws(
      () => checkEkCertificateChain(EK_CERT, { issuers: [INTER, flipped(ROOT)], now: NOW }),
      (e) => isTpmError(e, 'TPM_ERR_EK_CERT_SIGNATURE'),
    );
    // Same issuer name, another key: the signature decides, not the name.
    const impostorKey = ecKey();
    const impostor = intermediate({ publicKey: impostorKey.publicKey });
    assert.throws(
      () => checkEkCertificateChain(EK_CERT, { issuers: [impostor], now: NOW }),
      (e) => isTpmError(e, 'TPM_ERR_EK_CERT_SIGNATURE'),
    );
  });

  test('validity dates of the EK certificate and of its issuers; a non-CA issuer', () => {
    assert.throws(
      () => checkEkCertificateChain(EK_CERT, { now: new Date('2020-01-01T00:00:00Z') }),
      (e) => isTpmError(e, 'TPM_ERR_EK_CERT_EXPIRED'),
    );
    const oldInter = intermediate({ notAfter: new Date('2025-01-01T00:00:00Z') });
    assert.throws(
      () => checkEkCertificateChain(EK_CERT, { issuers: [oldInter], now: NOW }),
      (e) => isTpmError(e, 'TPM_ERR_EK_CERT_EXPIRED'),
    );
    const notCa = intermediate({ ca: false });
    assert.throws(
      () => checkEkCertificateChain(EK_CERT, { issuers: [notCa], now: NOW }),
      (e) => isTpmError(e, 'TPM_ERR_EK_CERT_SIGNATURE') && /not a CA/.test(e.message),
    );
  });
});

describe('EK certificate fuzz', () => {
  test('random, truncated and bit-flipped certificates give TPM_ERR_EK_CERT_* errors only', () => {
    const rng = new Rng(42);
    const inputs: Uint8Array[] = [];
    for (let n = 0; n < EK_CERT.length; n += 7) inputs.push(EK_CERT.subarray(0, n));
    for (let i = 0; i < 400; i++) {
      const b = EK_CERT.slice();
      for (let k = 0; k <= rng.int(3); k++) b[rng.int(b.length)]! ^= 1 << rng.int(8);
      inputs.push(b);
      inputs.push(rng.bytes(rng.int(300)));
    }
    inputs.push(Uint8Array.of(0x30, 0x84, 0xff, 0xff, 0xff, 0xff));
    for (const input of inputs) {
      try {
        verifyEkCertificate(input, { roots: [INTER], now: NOW });
      } catch (e) {
        assert.ok(
          isTpmError(e) && e.code.startsWith('TPM_ERR_EK_'),
          `unexpected ${String(e)} for ${Buffer.from(input).toString('hex')}`,
        );
      }
    }
  });
});

test('the EK attributes used in these tests are the TCG ones', () => {
  assert.ok(ekPublicOf().objectAttributes & TPMA_OBJECT.restricted);
});
