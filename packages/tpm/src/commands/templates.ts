/**
 * Key templates: the EKs of the TCG EK Credential Profile (RSA-2048 template L-1, ECC P-256
 * template L-2), the storage root key (TCG Provisioning Guidance) and Warden's attestation
 * key (a restricted signing key that never leaves the TPM).
 */
import { TPM_ALG, TPM_ECC, TPMA_OBJECT } from '../constants';
import { fromHex, type TpmtPublic } from '../marshal';

/** PolicySecret(TPM_RH_ENDORSEMENT) with SHA-256: the EK's authPolicy (PolicyA). */
export const EK_POLICY_SHA256 = fromHex('837197674484b3f81a90cc8d46a5d724fd52d76e06520b64f2a1da1b331469aa');

const EK_ATTRIBUTES =
  TPMA_OBJECT.fixedTPM |
  TPMA_OBJECT.fixedParent |
  TPMA_OBJECT.sensitiveDataOrigin |
  TPMA_OBJECT.adminWithPolicy |
  TPMA_OBJECT.restricted |
  TPMA_OBJECT.decrypt;

const SRK_ATTRIBUTES =
  TPMA_OBJECT.fixedTPM |
  TPMA_OBJECT.fixedParent |
  TPMA_OBJECT.sensitiveDataOrigin |
  TPMA_OBJECT.userWithAuth |
  TPMA_OBJECT.noDA |
  TPMA_OBJECT.restricted |
  TPMA_OBJECT.decrypt;

/** What an AK must have (and `decrypt` it must not): see verify/ak.ts. */
export const AK_ATTRIBUTES =
  TPMA_OBJECT.fixedTPM |
  TPMA_OBJECT.fixedParent |
  TPMA_OBJECT.sensitiveDataOrigin |
  TPMA_OBJECT.userWithAuth |
  TPMA_OBJECT.restricted |
  TPMA_OBJECT.sign;

const AES128_CFB = { algorithm: TPM_ALG.AES, keyBits: 128, mode: TPM_ALG.CFB };

export type KeyKind = 'rsa' | 'ecc';

/** The TCG EK template (L-1 RSA-2048 or L-2 ECC P-256), as `tpm2_createek` uses it. */
export function ekTemplate(kind: KeyKind): TpmtPublic {
  const base = { nameAlg: TPM_ALG.SHA256, objectAttributes: EK_ATTRIBUTES, authPolicy: EK_POLICY_SHA256 };
  if (kind === 'rsa') {
    return {
      ...base,
      type: TPM_ALG.RSA,
      parameters: { symmetric: AES128_CFB, scheme: { scheme: TPM_ALG.NULL }, keyBits: 2048, exponent: 0 },
      unique: new Uint8Array(256),
    };
  }
  return {
    ...base,
    type: TPM_ALG.ECC,
    parameters: {
      symmetric: AES128_CFB,
      scheme: { scheme: TPM_ALG.NULL },
      curveId: TPM_ECC.NIST_P256,
      kdf: { scheme: TPM_ALG.NULL },
    },
    unique: { x: new Uint8Array(32), y: new Uint8Array(32) },
  };
}

/** The storage root key template (ECC P-256 by default: created in ~1 ms, RSA in ~40 ms). */
export function srkTemplate(kind: KeyKind = 'ecc'): TpmtPublic {
  const base = { nameAlg: TPM_ALG.SHA256, objectAttributes: SRK_ATTRIBUTES, authPolicy: new Uint8Array(0) };
  if (kind === 'rsa') {
    return {
      ...base,
      type: TPM_ALG.RSA,
      parameters: { symmetric: AES128_CFB, scheme: { scheme: TPM_ALG.NULL }, keyBits: 2048, exponent: 0 },
      unique: new Uint8Array(256),
    };
  }
  return {
    ...base,
    type: TPM_ALG.ECC,
    parameters: {
      symmetric: AES128_CFB,
      scheme: { scheme: TPM_ALG.NULL },
      curveId: TPM_ECC.NIST_P256,
      kdf: { scheme: TPM_ALG.NULL },
    },
    unique: { x: new Uint8Array(32), y: new Uint8Array(32) },
  };
}

/** The attestation key: restricted signing, ECDSA P-256/SHA-256 or RSASSA-2048/SHA-256. */
export function akTemplate(kind: KeyKind = 'ecc'): TpmtPublic {
  const base = { nameAlg: TPM_ALG.SHA256, objectAttributes: AK_ATTRIBUTES, authPolicy: new Uint8Array(0) };
  const symmetric = { algorithm: TPM_ALG.NULL };
  if (kind === 'rsa') {
    return {
      ...base,
      type: TPM_ALG.RSA,
      parameters: {
        symmetric,
        scheme: { scheme: TPM_ALG.RSASSA, hashAlg: TPM_ALG.SHA256 },
        keyBits: 2048,
        exponent: 0,
      },
      unique: new Uint8Array(0),
    };
  }
  return {
    ...base,
    type: TPM_ALG.ECC,
    parameters: {
      symmetric,
      scheme: { scheme: TPM_ALG.ECDSA, hashAlg: TPM_ALG.SHA256 },
      curveId: TPM_ECC.NIST_P256,
      kdf: { scheme: TPM_ALG.NULL },
    },
    unique: { x: new Uint8Array(0), y: new Uint8Array(0) },
  };
}
