/**
 * TPM 2.0 constants used by Warden (TCG TPM 2.0 Library Part 2, and the TCG EK Credential
 * Profile for NV indices and EK templates). Only what the library uses is listed.
 * Who may import: every module of this package; re-exported from the package root.
 */

/** TPM_ALG_ID */
export const TPM_ALG = {
  RSA: 0x0001,
  SHA1: 0x0004,
  HMAC: 0x0005,
  AES: 0x0006,
  KEYEDHASH: 0x0008,
  XOR: 0x000a,
  SHA256: 0x000b,
  SHA384: 0x000c,
  SHA512: 0x000d,
  NULL: 0x0010,
  SM3_256: 0x0012,
  RSASSA: 0x0014,
  RSAES: 0x0015,
  RSAPSS: 0x0016,
  OAEP: 0x0017,
  ECDSA: 0x0018,
  ECDH: 0x0019,
  ECDAA: 0x001a,
  SM2: 0x001b,
  ECSCHNORR: 0x001c,
  KDF1_SP800_56A: 0x0020,
  KDF1_SP800_108: 0x0022,
  ECC: 0x0023,
  SYMCIPHER: 0x0025,
  CFB: 0x0043,
} as const;

/** TPM_ECC_CURVE */
export const TPM_ECC = {
  NIST_P256: 0x0003,
  NIST_P384: 0x0004,
  NIST_P521: 0x0005,
} as const;

/** TPM_ST (structure tags) */
export const TPM_ST = {
  RSP_COMMAND: 0x00c4,
  NULL: 0x8000,
  NO_SESSIONS: 0x8001,
  SESSIONS: 0x8002,
  ATTEST_NV: 0x8014,
  ATTEST_COMMAND_AUDIT: 0x8015,
  ATTEST_SESSION_AUDIT: 0x8016,
  ATTEST_CERTIFY: 0x8017,
  ATTEST_QUOTE: 0x8018,
  ATTEST_TIME: 0x8019,
  ATTEST_CREATION: 0x801a,
  CREATION: 0x8021,
  VERIFIED: 0x8022,
  AUTH_SECRET: 0x8023,
  HASHCHECK: 0x8024,
  AUTH_SIGNED: 0x8025,
} as const;

/** TPM_RH / TPM_RS (permanent handles) */
export const TPM_RH = {
  OWNER: 0x40000001,
  NULL: 0x40000007,
  PW: 0x40000009,
  LOCKOUT: 0x4000000a,
  ENDORSEMENT: 0x4000000b,
  PLATFORM: 0x4000000c,
} as const;

/** TPM_HT: the top byte of a handle. */
export const TPM_HT = {
  NV_INDEX: 0x01,
  HMAC_SESSION: 0x02,
  POLICY_SESSION: 0x03,
  PERMANENT: 0x40,
  TRANSIENT: 0x80,
  PERSISTENT: 0x81,
} as const;

/** TPM_CC (command codes) */
export const TPM_CC = {
  EvictControl: 0x00000120,
  CreatePrimary: 0x00000131,
  SelfTest: 0x00000143,
  Startup: 0x00000144,
  Shutdown: 0x00000145,
  ActivateCredential: 0x00000147,
  Certify: 0x00000148,
  CertifyCreation: 0x0000014a,
  NV_Read: 0x0000014e,
  PolicySecret: 0x00000151,
  Create: 0x00000153,
  Load: 0x00000157,
  Quote: 0x00000158,
  Sign: 0x0000015d,
  FlushContext: 0x00000165,
  MakeCredential: 0x00000168,
  NV_ReadPublic: 0x00000169,
  PolicyOR: 0x00000171,
  ReadPublic: 0x00000173,
  StartAuthSession: 0x00000176,
  GetCapability: 0x0000017a,
  GetRandom: 0x0000017b,
  PCR_Read: 0x0000017e,
  PCR_Extend: 0x00000182,
  PolicyGetDigest: 0x00000189,
} as const;

/** TPM_SU */
export const TPM_SU = { CLEAR: 0x0000, STATE: 0x0001 } as const;

/** TPM_SE (session types) */
export const TPM_SE = { HMAC: 0x00, POLICY: 0x01, TRIAL: 0x03 } as const;

/** TPM_CAP */
export const TPM_CAP = {
  ALGS: 0x00000000,
  HANDLES: 0x00000001,
  COMMANDS: 0x00000002,
  PCRS: 0x00000005,
  TPM_PROPERTIES: 0x00000006,
} as const;

/** TPM_PT (fixed properties used here) */
export const TPM_PT = {
  FAMILY_INDICATOR: 0x00000100,
  REVISION: 0x00000102,
  MANUFACTURER: 0x00000105,
  VENDOR_STRING_1: 0x00000106,
  FIRMWARE_VERSION_1: 0x0000010b,
  FIRMWARE_VERSION_2: 0x0000010c,
  INPUT_BUFFER: 0x0000010d,
  MAX_DIGEST: 0x00000120,
  NV_BUFFER_MAX: 0x0000012c,
} as const;

/** TPMA_OBJECT bits */
export const TPMA_OBJECT = {
  fixedTPM: 1 << 1,
  stClear: 1 << 2,
  fixedParent: 1 << 4,
  sensitiveDataOrigin: 1 << 5,
  userWithAuth: 1 << 6,
  adminWithPolicy: 1 << 7,
  noDA: 1 << 10,
  encryptedDuplication: 1 << 11,
  restricted: 1 << 16,
  decrypt: 1 << 17,
  sign: 1 << 18,
} as const;

/** TPMA_SESSION bits */
export const TPMA_SESSION = {
  continueSession: 1 << 0,
  auditExclusive: 1 << 1,
  auditReset: 1 << 2,
  decrypt: 1 << 5,
  encrypt: 1 << 6,
  audit: 1 << 7,
} as const;

/** TPMA_NV bits used by the EK certificate reader. */
export const TPMA_NV = {
  PPREAD: 1 << 16,
  OWNERREAD: 1 << 17,
  AUTHREAD: 1 << 18,
  POLICYREAD: 1 << 19,
  WRITTEN: 1 << 29,
} as const;

/** The TPMS_ATTEST magic: every attestation the TPM generated starts with it. */
export const TPM_GENERATED_VALUE = 0xff544347;

/** TCG EK Credential Profile: NV indices of the EK certificates. */
export const EK_CERT_NV_INDEX = {
  /** Low range, RSA-2048 EK (template L-1). */
  rsa2048: 0x01c00002,
  /** Low range, ECC NIST P-256 EK (template L-2). */
  eccP256: 0x01c0000a,
  /** High range, ECC NIST P-384 EK (template H-3; swtpm provisions this one). */
  eccP384: 0x01c00016,
} as const;

/**
 * TCG EK Credential Profile: NV indices of the EK certificate chain — the certificates that
 * issued the EK certificate (intermediates, maybe the root), one or more DER certificates
 * per index, concatenated.
 */
export const EK_CERT_CHAIN_NV_RANGE = { first: 0x01c00100, last: 0x01c001ff } as const;

/** Where swtpm_setup persists the EKs it creates. */
export const EK_PERSISTENT_HANDLE = {
  rsa2048: 0x81010001,
  eccP384: 0x81010016,
} as const;
