/**
 * Device trust, client side (DESIGN §6): the per-OS device code (`native/`: Linux asset tag
 * and collected data, the TPM steps), the device cache (`~/.cache/warden-device/`: the AK's
 * TPM-wrapped blobs), and the two ceremonies — enrollment (`wsh device enroll`) and device
 * authentication inside `wsh login` — whose steps are function fields so tests swap in fakes.
 * Who may import: the CLIs (`wsh device …`, `wsh login`), tests and the benchmark. Tested by
 * the colocated `*.test.ts` (fakes, a fake DMI directory) and against swtpm with a real
 * warden in test/devicetrust/.
 */
export {
  type AuthnApi,
  AuthnCeremony,
  authenticateDevice,
  DEVICE_TRUST_DISABLED,
  type DeviceLoginOutcome,
  preloadDeviceAuthentication,
} from './authn';
export { credentialView, DeviceCache, deviceCacheDir, type Enrollment, type StoredCredential } from './cache';
export { type EnrollApi, EnrollCeremony, type EnrollRequest } from './enroll';
export {
  DMI_ASSET_TAG_FILES,
  dmiAssetTag,
  ekAssetTag,
  isValidDmiValue,
  type NativeDevice,
  nativeOsType,
  openNativeDevice,
  type TpmEnrollInit,
  type TpmQuoteResult,
} from './native';
export { type CeremonyPhase, type CeremonyTimings, Stopwatch } from './steps';
export { parseWebAuthLink, proveWebDevice, type WebChallenge } from './web';
export {
  type RunningWebHelper,
  startWebHelper,
  WEB_HELPER_SERVICE,
  type WebHelperOptions,
  webHelperHomeId,
} from './web-helper';
