import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { TPM_ALG, TPM_ST, TPMA_OBJECT } from '../constants';
import { isTpmError } from '../errors';
import {
  decodeAttest,
  decodePcrSelections,
  decodePublic2b,
  decodeSignature,
  encodeAttest,
  encodePcrSelections,
  encodePublic2b,
  fromHex,
  handleName,
  nvName,
  objectName,
  toHex,
} from '.';

// TPM2B_PUBLIC of the RSA-2048 EK as `tpm2_createek -G rsa -u` wrote it on swtpm, and the Name
// `tpm2_readpublic` printed for it.
const RSA_EK_2B =
  '013a0001000b000300b20020837197674484b3f81a90cc8d46a5d724fd52d76e06520b64f2a1da1b331469aa00060080004300100800000000000100c8752a4747e4702d316bedbf5c8992f4325e534f9fbc29aba1daebbdcf6291f6995418578a14d1641b3d3e2ffd34e4aebc240728a90a1b623e7419d0c570e6ab26568754cbe1f7741af6aeb803b0f62f39c31edb8aa574bef9e487bfdef8968e003417045edcdf0fd038fd871b7e69f9cb97fc4e78aa71508c7c399f0cf46557846b574b95356e93d1989bba02d8f7e7004e58c31aa95d0e07370e76462fa5422381c2a5fdd50cf508ad2d933df982caae040e515a7359bd0cf23eda5023ab0146a6b92b0c98c18d4545afd2717d568693a3e04b108d5e3f00ce1411ddb22894d64432b77f009276e8054d09633983e646e6f0826edaa5eac0f363115ebf4869';
const RSA_EK_NAME = '000b913d21c571f546ab8fbfb0253da35f81b5575fea6c692cc1f2b6704092c8d57f';
// The same for `tpm2_createek -G ecc`.
const ECC_EK_2B =
  '007a0023000b000300b20020837197674484b3f81a90cc8d46a5d724fd52d76e06520b64f2a1da1b331469aa00060080004300100003001000205674967a4be20097aa4b5250908b7af05487014198ae2478b7df7217c6822994002046623ca543572a0fe2fb5d5332c9453a84b80f9561b7e2abeb01104e8d2c41c4';
const ECC_EK_NAME = '000bfa5bb87a1bb8848970c492f7f214abe9d8259137e97ce71c08da6775bd75174c';

describe('TPMT_PUBLIC', () => {
  test('decodes the RSA EK written by tpm2_createek and computes the Name tpm2_readpublic prints', () => {
    const pub = decodePublic2b(fromHex(RSA_EK_2B));
    assert.equal(pub.type, TPM_ALG.RSA);
    assert.equal(pub.nameAlg, TPM_ALG.SHA256);
    assert.equal(pub.objectAttributes, 0x000300b2);
    assert.ok(pub.objectAttributes & TPMA_OBJECT.restricted);
    if (pub.type !== TPM_ALG.RSA) throw new Error('unreachable');
    assert.equal(pub.parameters.keyBits, 2048);
    assert.equal(pub.parameters.exponent, 0);
    assert.deepEqual(pub.parameters.symmetric, { algorithm: TPM_ALG.AES, keyBits: 128, mode: TPM_ALG.CFB });
    assert.equal(pub.unique.length, 256);
    assert.equal(toHex(objectName(pub)), RSA_EK_NAME);
    assert.equal(toHex(encodePublic2b(pub)), RSA_EK_2B);
  });

  test('decodes the ECC P-256 EK and computes its Name', () => {
    const pub = decodePublic2b(fromHex(ECC_EK_2B));
    assert.equal(pub.type, TPM_ALG.ECC);
    if (pub.type !== TPM_ALG.ECC) throw new Error('unreachable');
    assert.equal(pub.parameters.curveId, 0x0003);
    assert.equal(pub.unique.x.length, 32);
    assert.equal(toHex(objectName(pub)), ECC_EK_NAME);
    assert.equal(toHex(encodePublic2b(pub)), ECC_EK_2B);
  });

  test('a changed attribute changes the Name', () => {
    const pub = decodePublic2b(fromHex(RSA_EK_2B));
    const other = { ...pub, objectAttributes: pub.objectAttributes & ~TPMA_OBJECT.fixedTPM };
    assert.notEqual(toHex(objectName(other)), RSA_EK_NAME);
  });

  test('refuses trailing bytes, truncation and unsupported key types with typed errors', () => {
    const good = fromHex(RSA_EK_2B);
    assert.throws(
      () => decodePublic2b(good.subarray(0, good.length - 1)),
      (e) => isTpmError(e, 'TPM_ERR_MARSHAL'),
    );
    const extra = new Uint8Array(good.length + 1);
    extra.set(good);
    assert.throws(
      () => decodePublic2b(extra),
      (e) => isTpmError(e, 'TPM_ERR_MARSHAL'),
    );
    const keyedHash = good.slice();
    keyedHash[3] = 0x08; // type KEYEDHASH
    assert.throws(
      () => decodePublic2b(keyedHash),
      (e) => isTpmError(e, 'TPM_ERR_UNSUPPORTED'),
    );
  });
});

describe('TPML_PCR_SELECTION', () => {
  test('encodes PCRs 0–7 of sha256 as one 3-byte bitmap', () => {
    const b = encodePcrSelections([{ hash: TPM_ALG.SHA256, pcrs: [0, 1, 2, 3, 4, 5, 6, 7] }]);
    assert.equal(toHex(b), '00000001000b03ff0000');
    assert.deepEqual(decodePcrSelections(b), [{ hash: TPM_ALG.SHA256, pcrs: [0, 1, 2, 3, 4, 5, 6, 7] }]);
  });

  test('PCR 23 and a wider bitmap round-trip', () => {
    const b = encodePcrSelections([
      { hash: TPM_ALG.SHA1, pcrs: [23] },
      { hash: TPM_ALG.SHA256, pcrs: [30] },
    ]);
    assert.equal(toHex(b), '000000020004030000800' + '00b0400000040');
    const back = decodePcrSelections(b);
    assert.deepEqual(back[1], { hash: TPM_ALG.SHA256, pcrs: [30], sizeofSelect: 4 });
    assert.equal(toHex(encodePcrSelections(back)), toHex(b));
  });

  test('a count larger than the input is refused before reading', () => {
    assert.throws(
      () => decodePcrSelections(fromHex('ffffffff')),
      (e) => isTpmError(e, 'TPM_ERR_MARSHAL'),
    );
    assert.throws(
      () => decodePcrSelections(fromHex('0000000a000b03ff0000')),
      (e) => isTpmError(e, 'TPM_ERR_MARSHAL'),
    );
  });
});

describe('TPMS_ATTEST and TPMT_SIGNATURE', () => {
  test('a quote round-trips and keeps its fields', () => {
    const attest = {
      magic: 0xff544347,
      type: TPM_ST.ATTEST_QUOTE,
      qualifiedSigner: fromHex(`000b${'11'.repeat(32)}`),
      extraData: fromHex('0102030405'),
      clockInfo: { clock: 123456789n, resetCount: 1, restartCount: 2, safe: true },
      firmwareVersion: 0x2019102300163636n,
      quote: { pcrSelect: [{ hash: TPM_ALG.SHA256, pcrs: [0, 7] }], pcrDigest: new Uint8Array(32).fill(9) },
    };
    const bytes = encodeAttest(attest);
    assert.equal(toHex(bytes.subarray(0, 6)), 'ff5443478018');
    assert.deepEqual(decodeAttest(bytes), attest);
  });

  test('clockInfo.safe must be 0 or 1', () => {
    const bytes = encodeAttest({
      magic: 0xff544347,
      type: TPM_ST.ATTEST_CERTIFY,
      qualifiedSigner: new Uint8Array(0),
      extraData: new Uint8Array(0),
      clockInfo: { clock: 0n, resetCount: 0, restartCount: 0, safe: false },
      firmwareVersion: 0n,
      certify: { name: new Uint8Array(34), qualifiedName: new Uint8Array(34) },
    });
    bytes[4 + 2 + 2 + 2 + 8 + 4 + 4] = 2;
    assert.throws(
      () => decodeAttest(bytes),
      (e) => isTpmError(e, 'TPM_ERR_MARSHAL'),
    );
  });

  test('ECDSA and RSASSA signatures decode; an unknown algorithm is unsupported', () => {
    const ecdsa = decodeSignature(fromHex(`0018000b0002aabb0001cc`));
    assert.deepEqual(ecdsa, {
      sigAlg: TPM_ALG.ECDSA,
      hash: TPM_ALG.SHA256,
      r: fromHex('aabb'),
      s: fromHex('cc'),
    });
    const rsa = decodeSignature(fromHex('0014000b000101'));
    assert.deepEqual(rsa, { sigAlg: TPM_ALG.RSASSA, hash: TPM_ALG.SHA256, signature: fromHex('01') });
    assert.throws(
      () => decodeSignature(fromHex('0005000b')),
      (e) => isTpmError(e, 'TPM_ERR_UNSUPPORTED'),
    );
  });
});

describe('Names', () => {
  test('a permanent handle is its own Name', () => {
    assert.equal(toHex(handleName(0x4000000b)), '4000000b');
  });

  test('the Name of the swtpm RSA EK certificate NV index matches tpm2_nvreadpublic', () => {
    // tpm2_nvreadpublic on swtpm: 0x1c00002, sha256, attributes 0x62072001, size 1016.
    const name = nvName({
      nvIndex: 0x01c00002,
      nameAlg: TPM_ALG.SHA256,
      attributes: 0x62072001,
      authPolicy: new Uint8Array(0),
      dataSize: 1016,
    });
    assert.equal(toHex(name), '000b03f3ac4467316d2d26a0ac4bbaf1236a9cae50fb1f70cf2e42e422cd2108b5d2');
  });
});
