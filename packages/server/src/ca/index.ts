/**
 * Certificate authorities (DESIGN §4): the user, host, db, openssh and jwt CAs, stored in the
 * backend, and issuance of user certificates (SSH + X.509), app certificates, app JWTs, host TLS and SSH certificates,
 * plus verification of user client certificates for mTLS.
 * Who may import: server modules (auth, proxy, agents through auth). Wire formats live in
 * `@warden/api` (certs). Tested by the colocated tests, cross-checked with `ssh-keygen` and
 * `openssl`.
 */
export {
  type AppCertificateRequest,
  type AppJwtClaims,
  AUTHORITIES_PREFIX,
  CaKinds,
  type CaType,
  CertAuthorities,
  type CertAuthoritiesOptions,
  type DbCertificateRequest,
  type DbClientRequest,
  type DbServerRequest,
  DEFAULT_CA_TYPES,
  type HostSshRequest,
  type HostTlsCertificate,
  type HostTlsRequest,
  type JwtPublicKey,
  NO_LOGIN_PRINCIPAL_PREFIX,
  OPENSSH_SESSION_CERT_VALIDITY_MS,
  type OpenSshSessionRequest,
  type SshPermits,
  type UserCertificateRequest,
  type UserCertificates,
  userSshExtensions,
} from './authorities';
export { PrivateKey, type PrivateKeyAlgorithm } from './private-key';
export { proxyServerTls } from './server-tls';
