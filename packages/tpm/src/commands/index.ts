/**
 * commands: the client side — `Tpm` (one method per TPM2 command device trust needs), the
 * key templates (TCG EK, SRK, AK), and the device-trust steps built from them.
 * Who may import: the package root.
 * Tested by frame.test.ts (framing without a TPM) and against swtpm under test/tpm/.
 */
export {
  activateCredential,
  createAk,
  createEk,
  createSrk,
  EK_CERT_INDEX,
  flushTransientObjects,
  loadAk,
  readEkCertificate,
  readEkCertificateChain,
} from './device';
export { type AuthSession, buildCommand, commandName, parseResponse, passwordAuth } from './frame';
export {
  AK_ATTRIBUTES,
  akTemplate,
  EK_POLICIES,
  EK_POLICY_SHA256,
  type EkKind,
  ekTemplate,
  type KeyKind,
  srkTemplate,
} from './templates';
export {
  type Attestation,
  type CapabilityData,
  type CreatedKey,
  type CreatedObject,
  type PrimaryObject,
  Tpm,
} from './tpm';
