import assert from 'node:assert/strict';
import {
  constants,
  createDecipheriv,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  type KeyObject,
  privateDecrypt,
} from 'node:crypto';
import { describe, test } from 'node:test';
import { tpmEccPoint } from '../../../../test/support/p256-keys';
import { TPM_ALG, TPM_ECC } from '../constants';
import { isTpmError } from '../errors';
import { hmac } from '../hash';
import { bytesEqual, concatBytes, decode, Reader, readEccPoint, type TpmtPublic } from '../marshal';
import {
  decodeCredentialFile,
  encodeCredentialFile,
  type MadeCredential,
  makeCredential,
} from './credential';
import { kdfa, kdfe } from './kdf';

const EK_ATTRS = 0x000300b2;
const AES128 = { algorithm: TPM_ALG.AES, keyBits: 128, mode: TPM_ALG.CFB };

function rsaEk(): { pub: TpmtPublic; priv: KeyObject } {
  const k = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const n = new Uint8Array(Buffer.from(k.publicKey.export({ format: 'jwk' }).n!, 'base64url'));
  return {
    priv: k.privateKey,
    pub: {
      type: TPM_ALG.RSA,
      nameAlg: TPM_ALG.SHA256,
      objectAttributes: EK_ATTRS,
      authPolicy: new Uint8Array(32),
      parameters: { symmetric: AES128, scheme: { scheme: TPM_ALG.NULL }, keyBits: 2048, exponent: 0 },
      unique: n,
    },
  };
}

function eccEk(): { pub: TpmtPublic; priv: KeyObject } {
  const k = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return {
    priv: k.privateKey,
    pub: {
      type: TPM_ALG.ECC,
      nameAlg: TPM_ALG.SHA256,
      objectAttributes: EK_ATTRS,
      authPolicy: new Uint8Array(32),
      parameters: {
        symmetric: AES128,
        scheme: { scheme: TPM_ALG.NULL },
        curveId: TPM_ECC.NIST_P256,
        kdf: { scheme: TPM_ALG.NULL },
      },
      unique: tpmEccPoint(k.publicKey),
    },
  };
}

/** What TPM2_ActivateCredential does, written out independently for the tests. */
function softwareActivate(
  ek: { pub: TpmtPublic; priv: KeyObject },
  name: Uint8Array,
  made: MadeCredential,
): Uint8Array {
  let seed: Uint8Array;
  if (ek.pub.type === TPM_ALG.RSA) {
    seed = new Uint8Array(
      privateDecrypt(
        {
          key: ek.priv,
          padding: constants.RSA_PKCS1_OAEP_PADDING,
          oaepHash: 'sha256',
          oaepLabel: Buffer.from('IDENTITY\0'),
        },
        made.secret,
      ),
    );
  } else {
    const point = decode(made.secret, readEccPoint, 'point');
    const eph = createPublicKey({
      key: {
        kty: 'EC',
        crv: 'P-256',
        x: Buffer.from(point.x).toString('base64url'),
        y: Buffer.from(point.y).toString('base64url'),
      },
      format: 'jwk',
    });
    const z = new Uint8Array(diffieHellman({ privateKey: ek.priv, publicKey: eph }));
    seed = kdfe(TPM_ALG.SHA256, z, 'IDENTITY', point.x, ek.pub.unique.x, 256);
  }
  const hmacKey = kdfa(TPM_ALG.SHA256, seed, 'INTEGRITY', new Uint8Array(0), new Uint8Array(0), 256);
  const expected = hmac(TPM_ALG.SHA256, hmacKey, concatBytes(made.credentialBlob.encIdentity, name));
  if (!bytesEqual(expected, made.credentialBlob.integrityHmac)) throw new Error('integrity');
  const symKey = kdfa(TPM_ALG.SHA256, seed, 'STORAGE', name, new Uint8Array(0), 128);
  const d = createDecipheriv('aes-128-cfb', symKey, Buffer.alloc(16));
  const plain = new Uint8Array(Buffer.concat([d.update(made.credentialBlob.encIdentity), d.final()]));
  return new Reader(plain).tpm2b();
}

const AK_NAME = new Uint8Array([0, 0x0b, ...new Uint8Array(32).fill(0xaa)]);
const OTHER_NAME = new Uint8Array([0, 0x0b, ...new Uint8Array(32).fill(0xbb)]);

describe('makeCredential', () => {
  for (const [kind, make] of [
    ['RSA', rsaEk],
    ['ECC', eccEk],
  ] as const) {
    test(`${kind} EK: only the holder of the EK key, for the same Name, recovers the credential`, () => {
      const ek = make();
      const secret = new Uint8Array(32).fill(5);
      const made = makeCredential({ ekPublic: ek.pub, objectName: AK_NAME, credential: secret });
      assert.deepEqual(softwareActivate(ek, AK_NAME, made), secret);
      assert.throws(() => softwareActivate(ek, OTHER_NAME, made), /integrity/);
      assert.throws(() => softwareActivate(make(), AK_NAME, made));
      // Each call uses a fresh seed.
      const again = makeCredential({ ekPublic: ek.pub, objectName: AK_NAME, credential: secret });
      assert.notDeepEqual(again.secret, made.secret);
    });
  }

  test('refuses a credential longer than a digest, and keys that are not EKs', () => {
    const ek = rsaEk();
    assert.throws(
      () => makeCredential({ ekPublic: ek.pub, objectName: AK_NAME, credential: new Uint8Array(33) }),
      (e) => isTpmError(e, 'TPM_ERR_BAD_ARGUMENT'),
    );
    assert.throws(
      () =>
        makeCredential({
          ekPublic: { ...ek.pub, objectAttributes: 0x00050072 },
          objectName: AK_NAME,
          credential: new Uint8Array(8),
        }),
      (e) => isTpmError(e, 'TPM_ERR_BAD_ARGUMENT'),
    );
  });

  test('the tpm2-tools credential file round-trips and refuses a bad magic', () => {
    const made = makeCredential({
      ekPublic: rsaEk().pub,
      objectName: AK_NAME,
      credential: new Uint8Array(16),
    });
    const file = encodeCredentialFile(made);
    assert.equal(Buffer.from(file.subarray(0, 8)).toString('hex'), 'badcc0de00000001');
    assert.deepEqual(decodeCredentialFile(file), made);
    const bad = file.slice();
    bad[0] = 0;
    assert.throws(
      () => decodeCredentialFile(bad),
      (e) => isTpmError(e, 'TPM_ERR_MARSHAL'),
    );
  });
});

describe('KDFa / KDFe', () => {
  test('length, bit masking and the label terminator', () => {
    const key = new Uint8Array(32).fill(1);
    const a = kdfa(TPM_ALG.SHA256, key, 'STORAGE', new Uint8Array(2), new Uint8Array(0), 128);
    assert.equal(a.length, 16);
    assert.deepEqual(kdfa(TPM_ALG.SHA256, key, 'STORAGE\0', new Uint8Array(2), new Uint8Array(0), 128), a);
    const long = kdfa(TPM_ALG.SHA256, key, 'X', new Uint8Array(0), new Uint8Array(0), 520);
    assert.equal(long.length, 65);
    const odd = kdfa(TPM_ALG.SHA256, key, 'X', new Uint8Array(0), new Uint8Array(0), 12);
    assert.ok(odd[0]! < 16);
    const e = kdfe(TPM_ALG.SHA384, key, 'IDENTITY', new Uint8Array(0), new Uint8Array(0), 384 + 8);
    assert.equal(e.length, 49);
  });
});
