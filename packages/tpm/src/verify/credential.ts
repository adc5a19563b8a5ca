/**
 * MakeCredential done by the server, without a TPM (Library Part 1 §24, credential
 * protection): a seed shared with the EK (RSA: OAEP with label "IDENTITY"; ECC: ephemeral
 * ECDH + KDFe), a storage key KDFa(seed, "STORAGE", AK Name), an integrity key
 * KDFa(seed, "INTEGRITY"), the credential AES-CFB encrypted (zero IV) and an outer HMAC
 * over the ciphertext and the AK Name. Only the TPM holding that EK, with an object of that
 * Name loaded, can recover the credential (ActivateCredential).
 * Also reads and writes the credential file format of tpm2_makecredential.
 */
import {
  constants,
  createCipheriv,
  diffieHellman,
  generateKeyPairSync,
  publicEncrypt,
  randomBytes,
} from 'node:crypto';
import { TPM_ALG, TPMA_OBJECT } from '../constants';
import { TpmError } from '../errors';
import { digestSize, hashName, hmac } from '../hash';
import {
  concatBytes,
  decode,
  encode,
  type IdObject,
  type Reader,
  readIdObject,
  type TpmtPublic,
  Writer,
  writeEccPoint,
  writeIdObject,
} from '../marshal';
import { kdfa, kdfe } from './kdf';
import { curveOf, publicKeyFromTpmt } from './keys';

export interface MadeCredential {
  /** TPM2B_ID_OBJECT contents: pass to ActivateCredential as `credentialBlob`. */
  credentialBlob: IdObject;
  /** TPM2B_ENCRYPTED_SECRET contents: the seed encrypted to the EK. */
  secret: Uint8Array;
}

const IDENTITY = 'IDENTITY';

/**
 * Protects `credential` (at most the size of the EK's nameAlg digest) so that only the TPM
 * with `ekPublic` can release it, and only to the object called `objectName` (the AK's Name).
 *
 * @example
 *   const challenge = randomBytes(32);
 *   const { credentialBlob, secret } = makeCredential({ ekPublic, objectName: objectName(akPublic), credential: challenge });
 */
export function makeCredential(opts: {
  ekPublic: TpmtPublic;
  objectName: Uint8Array;
  credential: Uint8Array;
}): MadeCredential {
  const { ekPublic: ek, objectName: name, credential } = opts;
  const nameAlg = ek.nameAlg;
  const size = digestSize(nameAlg);
  const need = TPMA_OBJECT.restricted | TPMA_OBJECT.decrypt;
  if ((ek.objectAttributes & need) !== need || ek.objectAttributes & TPMA_OBJECT.sign) {
    throw new TpmError('TPM_ERR_BAD_ARGUMENT', 'MakeCredential needs a restricted decryption key (an EK)');
  }
  if (credential.length === 0 || credential.length > size) {
    throw new TpmError('TPM_ERR_BAD_ARGUMENT', `the credential must be 1–${size} bytes`);
  }
  if (name.length < 2) throw new TpmError('TPM_ERR_BAD_ARGUMENT', 'objectName is not a Name');
  const sym = ek.parameters.symmetric;
  if (sym.algorithm !== TPM_ALG.AES || sym.mode !== TPM_ALG.CFB || !sym.keyBits) {
    throw new TpmError('TPM_ERR_UNSUPPORTED', 'the EK must use AES-CFB as its symmetric algorithm');
  }

  // 1. The seed, and how the EK gets it.
  let seed: Uint8Array;
  let secret: Uint8Array;
  if (ek.type === TPM_ALG.RSA) {
    seed = new Uint8Array(randomBytes(size));
    secret = new Uint8Array(
      publicEncrypt(
        {
          key: publicKeyFromTpmt(ek),
          padding: constants.RSA_PKCS1_OAEP_PADDING,
          oaepHash: hashName(nameAlg),
          oaepLabel: Buffer.from(`${IDENTITY}\0`),
        },
        seed,
      ),
    );
  } else {
    const curve = curveOf(ek);
    const eph = generateKeyPairSync('ec', { namedCurve: curve.jwk });
    const ephJwk = eph.publicKey.export({ format: 'jwk' });
    const ephX = new Uint8Array(Buffer.from(ephJwk.x!, 'base64url'));
    const ephY = new Uint8Array(Buffer.from(ephJwk.y!, 'base64url'));
    const z = new Uint8Array(diffieHellman({ privateKey: eph.privateKey, publicKey: publicKeyFromTpmt(ek) }));
    seed = kdfe(nameAlg, z, IDENTITY, ephX, ek.unique.x, size * 8);
    secret = encode(writeEccPoint, { x: ephX, y: ephY });
  }

  // 2. Encrypt the credential (as a TPM2B_DIGEST) with the storage key bound to the Name.
  const symKey = kdfa(nameAlg, seed, 'STORAGE', name, new Uint8Array(0), sym.keyBits);
  const cipher = createCipheriv(`aes-${sym.keyBits}-cfb`, symKey, Buffer.alloc(16));
  const plain = new Writer().tpm2b(credential).finish();
  const encIdentity = new Uint8Array(Buffer.concat([cipher.update(plain), cipher.final()]));

  // 3. The outer HMAC over the ciphertext and the Name.
  const hmacKey = kdfa(nameAlg, seed, 'INTEGRITY', new Uint8Array(0), new Uint8Array(0), size * 8);
  const integrityHmac = hmac(nameAlg, hmacKey, concatBytes(encIdentity, name));
  return { credentialBlob: { integrityHmac, encIdentity }, secret };
}

const CREDENTIAL_FILE_MAGIC = 0xbadcc0de;

/** The file `tpm2_makecredential -o` writes and `tpm2_activatecredential -i` reads. */
export function encodeCredentialFile(c: MadeCredential): Uint8Array {
  const w = new Writer().u32(CREDENTIAL_FILE_MAGIC).u32(1);
  writeIdObject(w, c.credentialBlob);
  return w.tpm2b(c.secret).finish();
}

export function decodeCredentialFile(bytes: Uint8Array): MadeCredential {
  return decode(
    bytes,
    (r: Reader) => {
      if (r.u32() !== CREDENTIAL_FILE_MAGIC) r.fail('not a tpm2-tools credential file (bad magic)');
      if (r.u32() !== 1) r.fail('unsupported credential file version');
      const credentialBlob = readIdObject(r);
      return { credentialBlob, secret: r.tpm2b(0xffff, 'secret') };
    },
    'credential file',
  );
}
