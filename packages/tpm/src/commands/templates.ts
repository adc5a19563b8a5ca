/**
 * Key templates: the EKs of the TCG EK Credential Profile (RSA-2048 template L-1, ECC P-256
 * template L-2), the storage root key (TCG Provisioning Guidance) and Warden's attestation
 * key (a restricted signing key that never leaves the TPM).
 */
import { TPM_ALG, TPM_ECC, TPMA_OBJECT } from '../constants';
import { fromHex, type TpmtPublic } from '../marshal';

/** PolicySecret(TPM_RH_ENDORSEMENT) with SHA-256: the low-range EKs' authPolicy (PolicyA). */
export const EK_POLICY_SHA256 = fromHex('837197674484b3f81a90cc8d46a5d724fd52d76e06520b64f2a1da1b331469aa');

/**
 * The TCG EK policies by hash: PolicyA = PolicySecret(TPM_RH_ENDORSEMENT), PolicyC =
 * PolicyAuthorizeNV(0x01c07f01/02), PolicyB = PolicyOR(PolicyA, PolicyC) — the authPolicy of
 * the high-range templates (e.g. swtpm's ECC P-384 EK).
 */
export const EK_POLICIES: Record<number, { a: Uint8Array; b: Uint8Array; c: Uint8Array }> = {
  [TPM_ALG.SHA256]: {
    a: EK_POLICY_SHA256,
    b: fromHex('ca3d0a99a2b93906f7a3342414efcfb3a385d44cd1fd459089d19b5071c0b7a0'),
    c: fromHex('3767e2edd43ff45a3a7e1eaefcef78643dca964632e7aad82c673a30d8633fde'),
  },
  [TPM_ALG.SHA384]: {
    a: fromHex(
      '8bbf2266537c171cb56e403c4dc1d4b64f432611dc386e6f532050c3278c930e143e8bb1133824ccb431053871c6db53',
    ),
    b: fromHex(
      'b26e7d28d11a50bc53d882bcf5fd3a1a074148bb35d3b4e4cb1c0ad9bde419cacb47ba09699646150f9fc000f3f80e12',
    ),
    c: fromHex(
      'd6032ce61f2fb3c240eb3cf6a33237ef2b6a16f4293c22b455e261cffd217ad5b4947c2d73e63005eed2dc2b3593d165',
    ),
  },
};

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

/** The EKs this library creates: RSA-2048 (L-1), ECC P-256 (L-2), ECC P-384 (H-3). */
export type EkKind = KeyKind | 'ecc-p384';

/**
 * The TCG EK template: low-range L-1 RSA-2048 or L-2 ECC P-256 (as `tpm2_createek` makes
 * them), or high-range H-3 ECC P-384 (as swtpm_setup persists it at 0x81010016).
 */
export function ekTemplate(kind: EkKind): TpmtPublic {
  if (kind === 'ecc-p384') {
    return {
      type: TPM_ALG.ECC,
      nameAlg: TPM_ALG.SHA384,
      objectAttributes: EK_ATTRIBUTES | TPMA_OBJECT.userWithAuth,
      authPolicy: EK_POLICIES[TPM_ALG.SHA384]!.b,
      parameters: {
        symmetric: { algorithm: TPM_ALG.AES, keyBits: 256, mode: TPM_ALG.CFB },
        scheme: { scheme: TPM_ALG.NULL },
        curveId: TPM_ECC.NIST_P384,
        kdf: { scheme: TPM_ALG.NULL },
      },
      unique: { x: new Uint8Array(0), y: new Uint8Array(0) },
    };
  }
  return storageKeyTemplate(kind, { objectAttributes: EK_ATTRIBUTES, authPolicy: EK_POLICY_SHA256 });
}

/** The storage root key template (ECC P-256 by default: created in ~1 ms, RSA in ~40 ms). */
export function srkTemplate(kind: KeyKind = 'ecc'): TpmtPublic {
  return storageKeyTemplate(kind, { objectAttributes: SRK_ATTRIBUTES, authPolicy: new Uint8Array(0) });
}

/**
 * A restricted decryption (storage) key of the TCG templates' shape: SHA-256 name,
 * AES-128-CFB, RSA-2048 or ECC P-256, the unique field zeroed to the key's size. The EK (low
 * range) and the SRK differ only in their attributes and policy.
 */
function storageKeyTemplate(
  kind: KeyKind,
  o: { objectAttributes: number; authPolicy: Uint8Array },
): TpmtPublic {
  const base = { nameAlg: TPM_ALG.SHA256, ...o };
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
