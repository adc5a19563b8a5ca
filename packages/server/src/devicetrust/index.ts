/**
 * Device trust on the server (DESIGN §6): the device inventory (`DeviceInventory`: devices,
 * enrollment tokens stored hashed and spent once, enrollment and collected data, admin edits
 * and removal, each audited), and the TPM ceremonies built on it: enrollment
 * (`DeviceEnrollment`: token, EK classification, AK checks, MakeCredential, quote) and device
 * authentication at login (`DeviceAuthentication`: quote by the enrolled AK, augmented certificates).
 * Who may import: the auth service, the proxy's routes and `bin/` (composition). Tested by
 * the colocated `*.test.ts` against MemoryBackend with a FakeClock, and end to end by
 * `test/devicetrust/`.
 */

export {
  AuthnErrorCodes,
  AuthnErrors,
  type AuthnInventory,
  DeviceAuthentication,
  type DeviceAuthenticationOptions,
  type WebProof,
} from './authn';
export { CEREMONY_PREFIX, DEFAULT_CEREMONY_TTL_MS, DEVICE_PCR_SELECTION } from './ceremony';
export {
  DeviceEnrollment,
  type DeviceEnrollmentOptions,
  deviceSummary,
  EnrollErrors,
  type EnrollInventory,
} from './enroll';
export {
  checkEnrollTokenTtl,
  credentialIndexKey,
  DEFAULT_ENROLL_TOKEN_TTL_MS,
  DEVICE_INDEX_BACKFILLED,
  DEVICE_INDEX_PREFIX,
  DeviceInventory,
  type DeviceInventoryOptions,
  deviceLabel,
  ENROLL_TOKEN_PREFIX,
  ekIndexKey,
  INVALID_ENROLL_TOKEN_MESSAGE,
  MAX_ENROLL_TOKEN_TTL_MS,
} from './inventory';
