import assert from 'node:assert/strict';
import { constants, generateKeyPairSync, type KeyObject, sign } from 'node:crypto';
import { describe, test } from 'node:test';
import { tpmEccPoint } from '../../../../test/support/p256-keys';
import { AK_ATTRIBUTES, akTemplate } from '../commands/templates';
import { TPM_ALG, TPM_GENERATED_VALUE, TPM_ST, TPMA_OBJECT } from '../constants';
import { isTpmError, type TpmErrorCode } from '../errors';
import { hash } from '../hash';
import {
  encodeAttest,
  encodeCreationData,
  objectName,
  type PcrValue,
  type TpmsAttest,
  type TpmtPublic,
  type TpmtSignature,
} from '../marshal';
import { checkAkAttributes, pcrDigest, verifyCertifyCreation, verifyQuote } from './attest';

interface SoftAk {
  pub: TpmtPublic;
  priv: KeyObject;
  sign(data: Uint8Array): TpmtSignature;
}

function eccAk(): SoftAk {
  const k = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return {
    priv: k.privateKey,
    pub: { ...akTemplate('ecc'), unique: tpmEccPoint(k.publicKey) } as TpmtPublic,
    sign(data) {
      const rs = sign('sha256', data, { key: k.privateKey, dsaEncoding: 'ieee-p1363' });
      return { sigAlg: TPM_ALG.ECDSA, hash: TPM_ALG.SHA256, r: rs.subarray(0, 32), s: rs.subarray(32) };
    },
  };
}

function rsaAk(scheme: typeof TPM_ALG.RSASSA | typeof TPM_ALG.RSAPSS): SoftAk {
  const k = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return {
    priv: k.privateKey,
    pub: {
      type: TPM_ALG.RSA,
      nameAlg: TPM_ALG.SHA256,
      objectAttributes: AK_ATTRIBUTES,
      authPolicy: new Uint8Array(0),
      parameters: {
        symmetric: { algorithm: TPM_ALG.NULL },
        scheme: { scheme, hashAlg: TPM_ALG.SHA256 },
        keyBits: 2048,
        exponent: 0,
      },
      unique: new Uint8Array(Buffer.from(k.publicKey.export({ format: 'jwk' }).n!, 'base64url')),
    },
    sign(data) {
      const padding =
        scheme === TPM_ALG.RSAPSS ? constants.RSA_PKCS1_PSS_PADDING : constants.RSA_PKCS1_PADDING;
      return {
        sigAlg: scheme,
        hash: TPM_ALG.SHA256,
        signature: sign('sha256', data, { key: k.privateKey, padding, saltLength: 32 }),
      };
    },
  };
}

const NONCE = new Uint8Array(32).fill(0x42);
const SELECTION = [{ hash: TPM_ALG.SHA256, pcrs: [0, 1, 7] }];
const PCRS: PcrValue[] = [0, 1, 7].map((pcr) => ({
  hash: TPM_ALG.SHA256,
  pcr,
  digest: new Uint8Array(32).fill(pcr + 1),
}));

function quoteOf(
  ak: SoftAk,
  over: Partial<TpmsAttest> = {},
  pcrs = PCRS,
): { attest: Uint8Array; signature: TpmtSignature } {
  const attest = encodeAttest({
    magic: TPM_GENERATED_VALUE,
    type: TPM_ST.ATTEST_QUOTE,
    qualifiedSigner: objectName(ak.pub),
    extraData: NONCE,
    clockInfo: { clock: 1000n, resetCount: 0, restartCount: 0, safe: true },
    firmwareVersion: 1n,
    quote: { pcrSelect: SELECTION, pcrDigest: pcrDigest(TPM_ALG.SHA256, SELECTION, pcrs) },
    ...over,
  });
  return { attest, signature: ak.sign(attest) };
}

const rejects = (code: TpmErrorCode) => (e: unknown) => isTpmError(e, code);

describe('verifyQuote', () => {
  const ak = eccAk();

  test('accepts a quote over the nonce and the supplied PCRs (ECDSA, RSASSA, RSAPSS)', () => {
    for (const k of [ak, rsaAk(TPM_ALG.RSASSA), rsaAk(TPM_ALG.RSAPSS)]) {
      const q = quoteOf(k);
      const out = verifyQuote({
        akPublic: k.pub,
        ...q,
        nonce: NONCE,
        pcrs: PCRS,
        expectedSelection: SELECTION,
      });
      assert.deepEqual(out.pcrs, PCRS);
    }
  });

  test('wrong nonce', () => {
    const q = quoteOf(ak);
    assert.throws(
      () => verifyQuote({ akPublic: ak.pub, ...q, nonce: new Uint8Array(32), pcrs: PCRS }),
      rejects('TPM_ERR_NONCE_MISMATCH'),
    );
  });

  test('PCR values that do not match the digest', () => {
    const q = quoteOf(ak);
    const lied = PCRS.map((v) => (v.pcr === 7 ? { ...v, digest: new Uint8Array(32) } : v));
    assert.throws(
      () => verifyQuote({ akPublic: ak.pub, ...q, nonce: NONCE, pcrs: lied }),
      rejects('TPM_ERR_PCR_MISMATCH'),
    );
  });

  test('PCRs missing, added, or another selection than asked', () => {
    const q = quoteOf(ak);
    assert.throws(
      () => verifyQuote({ akPublic: ak.pub, ...q, nonce: NONCE, pcrs: PCRS.slice(1) }),
      rejects('TPM_ERR_PCR_SELECTION'),
    );
    const extra = [...PCRS, { hash: TPM_ALG.SHA256, pcr: 9, digest: new Uint8Array(32) }];
    assert.throws(
      () => verifyQuote({ akPublic: ak.pub, ...q, nonce: NONCE, pcrs: extra }),
      rejects('TPM_ERR_PCR_SELECTION'),
    );
    // Indexes and banks no selection can hold are never taken for a quoted PCR.
    for (const [hash, pcr] of [
      [TPM_ALG.SHA256, -1],
      [TPM_ALG.SHA256, 1.5],
      [TPM_ALG.SHA256, 2048 + 7],
      [TPM_ALG.SHA256 + 0x10000, 7],
    ] as const) {
      const odd = [...PCRS, { hash, pcr, digest: new Uint8Array(32) }];
      assert.throws(
        () => verifyQuote({ akPublic: ak.pub, ...q, nonce: NONCE, pcrs: odd }),
        rejects('TPM_ERR_PCR_SELECTION'),
        `${hash}:${pcr}`,
      );
    }
    assert.throws(
      () =>
        verifyQuote({
          akPublic: ak.pub,
          ...q,
          nonce: NONCE,
          pcrs: PCRS,
          expectedSelection: [{ hash: TPM_ALG.SHA256, pcrs: [0] }],
        }),
      rejects('TPM_ERR_PCR_SELECTION'),
    );
  });

  test('a quote signed by another key, or with a tampered body', () => {
    const q = quoteOf(eccAk());
    assert.throws(
      () => verifyQuote({ akPublic: ak.pub, ...q, nonce: NONCE, pcrs: PCRS }),
      rejects('TPM_ERR_BAD_SIGNATURE'),
    );
    const good = quoteOf(ak);
    const tampered = good.attest.slice();
    tampered[tampered.length - 1]! ^= 1;
    assert.throws(
      () =>
        verifyQuote({
          akPublic: ak.pub,
          attest: tampered,
          signature: good.signature,
          nonce: NONCE,
          pcrs: PCRS,
        }),
      rejects('TPM_ERR_BAD_SIGNATURE'),
    );
    // An RSA signature presented for an ECC AK.
    const rsa = quoteOf(rsaAk(TPM_ALG.RSASSA));
    assert.throws(
      () => verifyQuote({ akPublic: ak.pub, ...rsa, nonce: NONCE, pcrs: PCRS }),
      rejects('TPM_ERR_BAD_SIGNATURE'),
    );
  });

  test('not made by a TPM, or not a quote', () => {
    const notTpm = quoteOf(ak, { magic: 0x12345678 });
    assert.throws(
      () => verifyQuote({ akPublic: ak.pub, ...notTpm, nonce: NONCE, pcrs: PCRS }),
      rejects('TPM_ERR_ATTEST_MAGIC'),
    );
    const certify = quoteOf(ak, {
      type: TPM_ST.ATTEST_CERTIFY,
      quote: undefined,
      certify: { name: new Uint8Array(34), qualifiedName: new Uint8Array(34) },
    });
    assert.throws(
      () => verifyQuote({ akPublic: ak.pub, ...certify, nonce: NONCE, pcrs: PCRS }),
      rejects('TPM_ERR_ATTEST_TYPE'),
    );
  });
});

describe('checkAkAttributes', () => {
  test('the AK template passes; each missing protection is named', () => {
    checkAkAttributes(eccAk().pub);
    checkAkAttributes(rsaAk(TPM_ALG.RSASSA).pub);
    const pub = eccAk().pub;
    for (const bit of ['fixedTPM', 'fixedParent', 'sensitiveDataOrigin', 'restricted', 'sign'] as const) {
      assert.throws(
        () => checkAkAttributes({ ...pub, objectAttributes: pub.objectAttributes & ~TPMA_OBJECT[bit] }),
        (e) => isTpmError(e, 'TPM_ERR_AK_ATTRIBUTES') && e.details?.attribute === bit,
        bit,
      );
    }
    assert.throws(
      () => checkAkAttributes({ ...pub, objectAttributes: pub.objectAttributes | TPMA_OBJECT.decrypt }),
      (e) => isTpmError(e, 'TPM_ERR_AK_ATTRIBUTES') && e.details?.attribute === 'decrypt',
    );
    assert.throws(
      () =>
        checkAkAttributes({
          ...pub,
          parameters: { ...pub.parameters, scheme: { scheme: TPM_ALG.NULL } },
        } as TpmtPublic),
      rejects('TPM_ERR_AK_ATTRIBUTES'),
    );
  });
});

describe('verifyCertifyCreation', () => {
  const ak = eccAk();
  const creationData = encodeCreationData({
    pcrSelect: [],
    pcrDigest: hash(TPM_ALG.SHA256),
    locality: 1,
    parentNameAlg: TPM_ALG.SHA256,
    parentName: new Uint8Array(34).fill(3),
    parentQualifiedName: new Uint8Array(34).fill(4),
    outsideInfo: new Uint8Array(0),
  });
  const attestFor = (name: Uint8Array, data: Uint8Array, signer = ak) => {
    const attest = encodeAttest({
      magic: TPM_GENERATED_VALUE,
      type: TPM_ST.ATTEST_CREATION,
      qualifiedSigner: objectName(signer.pub),
      extraData: NONCE,
      clockInfo: { clock: 1n, resetCount: 0, restartCount: 0, safe: true },
      firmwareVersion: 1n,
      creation: { objectName: name, creationHash: hash(TPM_ALG.SHA256, data) },
    });
    return { attest, signature: signer.sign(attest) };
  };

  test('accepts the AK certifying its own creation', () => {
    const a = attestFor(objectName(ak.pub), creationData);
    const out = verifyCertifyCreation({ akPublic: ak.pub, creationData, ...a, qualifyingData: NONCE });
    assert.equal(out.creationData.locality, 1);
  });

  test('refuses creation data or a key other than attested, and other signers', () => {
    const a = attestFor(objectName(ak.pub), creationData);
    const changed = creationData.slice();
    changed[changed.length - 1] = 1;
    assert.throws(
      () => verifyCertifyCreation({ akPublic: ak.pub, creationData: changed, ...a }),
      rejects('TPM_ERR_CREATION_MISMATCH'),
    );
    const other = eccAk();
    const b = attestFor(objectName(other.pub), creationData);
    assert.throws(
      () => verifyCertifyCreation({ akPublic: ak.pub, creationData, ...b }),
      rejects('TPM_ERR_CREATION_MISMATCH'),
    );
    const c = attestFor(objectName(ak.pub), creationData, other);
    assert.throws(
      () => verifyCertifyCreation({ akPublic: ak.pub, creationData, ...c }),
      rejects('TPM_ERR_BAD_SIGNATURE'),
    );
    assert.throws(
      () =>
        verifyCertifyCreation({ akPublic: ak.pub, creationData, ...a, qualifyingData: new Uint8Array(1) }),
      rejects('TPM_ERR_NONCE_MISMATCH'),
    );
  });
});
