/**
 * Certificates shared by server and client: OpenSSH public keys and certificates
 * (PROTOCOL.certkeys, written here because `sshpk` mis-pads Ed25519 keys) and the X.509
 * identity codec for Warden user certificates.
 * Who may import: everyone (re-exported from `@warden/api`). The SSH wire reader/writer stays
 * private. Tested by the colocated `*.test.ts` files, cross-checked with `ssh-keygen` and `openssl`.
 */
export {
  type AppRoute,
  type CertIdentity,
  type DbCertRoute,
  type DeviceIdentity,
  encodeAppRouteExtension,
  encodeDbRouteExtension,
  encodeDeviceExtensions,
  encodeIdentityExtension,
  identityExtensions,
  identitySubject,
  parseIdentityFromCertificate,
} from './identity';
export { keyFromSpki, spkiFromKey } from './spki';
export {
  decodeSshCertificate,
  formatSshCertificate,
  type PreparedSshCertificate,
  parseSshCertificate,
  prepareSshCertificate,
  SSH_CERT_FOREVER,
  type SshCertAlgorithm,
  SshCertAlgorithms,
  type SshCertificate,
  type SshCertificateFields,
  type SshCertType,
  SshStandardUserExtensions,
  signPreparedSshCertificate,
  signSshCertificate,
  type VerifySshCertificateOptions,
  verifySshCertificate,
} from './ssh-cert';
export {
  encodeSshPublicKey,
  formatAuthorizedKey,
  parseAuthorizedKey,
  parseSshPublicKey,
  type SshKeyType,
  sshFingerprint,
  sshKeyType,
  sshSign,
  sshVerify,
} from './ssh-key';
export {
  addCertificateExtensions,
  type CertificateExtension,
  certificateDer,
  derTlv,
  encodeExtension,
  encodeOid,
  readCertificateExtensions,
} from './x509-der';
