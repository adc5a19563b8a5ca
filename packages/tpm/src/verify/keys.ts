/**
 * TPM public areas as node:crypto keys, and signature verification for TPMT_SIGNATURE
 * (RSASSA, RSAPSS, ECDSA).
 */
import { constants, createPublicKey, type KeyObject, verify } from 'node:crypto';
import { TPM_ALG, TPM_ECC } from '../constants';
import { TpmError } from '../errors';
import { hashName } from '../hash';
import type { TpmtPublic, TpmtSignature } from '../marshal';

export const CURVES: Record<number, { jwk: string; size: number }> = {
  [TPM_ECC.NIST_P256]: { jwk: 'P-256', size: 32 },
  [TPM_ECC.NIST_P384]: { jwk: 'P-384', size: 48 },
  [TPM_ECC.NIST_P521]: { jwk: 'P-521', size: 66 },
};

const b64u = (b: Uint8Array) => Buffer.from(b).toString('base64url');

function pad(b: Uint8Array, size: number): Uint8Array {
  if (b.length >= size) return b;
  const out = new Uint8Array(size);
  out.set(b, size - b.length);
  return out;
}

export function curveOf(pub: TpmtPublic): { jwk: string; size: number } {
  if (pub.type !== TPM_ALG.ECC) throw new TpmError('TPM_ERR_BAD_ARGUMENT', 'not an ECC key');
  const c = CURVES[pub.parameters.curveId];
  if (!c) throw new TpmError('TPM_ERR_UNSUPPORTED', `ECC curve 0x${pub.parameters.curveId.toString(16)}`);
  return c;
}

/**
 * The public key of a TPMT_PUBLIC as a node:crypto KeyObject (built once per public-area
 * object; decoded public areas are never changed afterwards).
 *
 * @example
 *   publicKeyFromTpmt(ek.public).export({ format: 'der', type: 'spki' })
 */
export function publicKeyFromTpmt(pub: TpmtPublic): KeyObject {
  let key = keyObjects.get(pub);
  if (!key) {
    key = keyFromTpmt(pub);
    keyObjects.set(pub, key);
  }
  return key;
}

/**
 * Key objects already built, by public area (object identity): a verifier that keeps an
 * enrolled AK's decoded public area pays the key import once, not at every quote.
 */
const keyObjects = new WeakMap<TpmtPublic, KeyObject>();

function keyFromTpmt(pub: TpmtPublic): KeyObject {
  try {
    if (pub.type === TPM_ALG.RSA) {
      const e = pub.parameters.exponent === 0 ? 65537 : pub.parameters.exponent;
      const eb = Buffer.alloc(4);
      eb.writeUInt32BE(e);
      const firstNonZero = eb.findIndex((x) => x !== 0);
      if (pub.unique.length === 0) throw new Error('empty modulus');
      return createPublicKey({
        key: { kty: 'RSA', n: b64u(pub.unique), e: b64u(eb.subarray(firstNonZero)) },
        format: 'jwk',
      });
    }
    const c = curveOf(pub);
    return createPublicKey({
      key: { kty: 'EC', crv: c.jwk, x: b64u(pad(pub.unique.x, c.size)), y: b64u(pad(pub.unique.y, c.size)) },
      format: 'jwk',
    });
  } catch (e) {
    if (e instanceof TpmError) throw e;
    throw new TpmError('TPM_ERR_BAD_ARGUMENT', `the public area is not a valid key: ${(e as Error).message}`);
  }
}

/**
 * True when `signature` is `key`'s signature over `data`. The signature's scheme and hash
 * must be the key's own when the key fixes one (restricted signing keys do).
 */
export function verifyTpmSignature(pub: TpmtPublic, data: Uint8Array, signature: TpmtSignature): boolean {
  if (signature.sigAlg === TPM_ALG.NULL) return false;
  const fixed = pub.parameters.scheme;
  if (
    fixed.scheme !== TPM_ALG.NULL &&
    (fixed.scheme !== signature.sigAlg || fixed.hashAlg !== signature.hash)
  ) {
    return false;
  }
  const key = publicKeyFromTpmt(pub);
  const algorithm = hashName(signature.hash);
  if ('signature' in signature) {
    if (pub.type !== TPM_ALG.RSA) return false;
    const padding =
      signature.sigAlg === TPM_ALG.RSAPSS ? constants.RSA_PKCS1_PSS_PADDING : constants.RSA_PKCS1_PADDING;
    return verify(
      algorithm,
      data,
      { key, padding, saltLength: constants.RSA_PSS_SALTLEN_AUTO },
      signature.signature,
    );
  }
  if (pub.type !== TPM_ALG.ECC || signature.sigAlg !== TPM_ALG.ECDSA) return false;
  const { size } = curveOf(pub);
  if (signature.r.length > size || signature.s.length > size) return false;
  const rs = Buffer.concat([pad(signature.r, size), pad(signature.s, size)]);
  return verify(algorithm, data, { key, dsaEncoding: 'ieee-p1363' }, rs);
}
