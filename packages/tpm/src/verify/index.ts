/**
 * verify: the server side of TPM device trust, with no TPM — MakeCredential (RSA and ECC
 * EKs), KDFa/KDFe, quote and certify-creation verification, AK attribute checks, EK
 * certificate parsing (with the TCG quirks) and chain verification. Every refusal is a
 * TpmError with its own code, so callers can tell a wrong nonce from a forged signature.
 * Who may import: the package root (the server's device-trust code uses it through it).
 * Tested by the *.test.ts beside each file (forged inputs) and the tpm2-tools cross-checks.
 */
export {
  checkAkAttributes,
  pcrDigest,
  type VerifiedQuote,
  verifyAttestation,
  verifyCertifyCreation,
  verifyQuote,
} from './attest';
export {
  decodeCredentialFile,
  encodeCredentialFile,
  type MadeCredential,
  makeCredential,
} from './credential';
export {
  type Certificate,
  checkEkCertificateChain,
  checkEkMatchesCertificate,
  type EkCertificate,
  type EkChainReach,
  type Extension,
  isSignedBy,
  OID,
  parseCertificate,
  parseEkCertificate,
  splitPem,
  verifyEkCertificate,
} from './ek-cert';
export { kdfa, kdfe } from './kdf';
export { publicKeyFromTpmt, verifyTpmSignature } from './keys';
