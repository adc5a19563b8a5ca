/**
 * Identifiers that server and client must agree on: Warden's OID arc, certificate
 * extension names and OIDs, ALPN protocol names, default ports.
 * Who may import: everyone.
 */

/**
 * Warden's private OID arc, minted once as 2.25.<UUID c8e4877c-e87b-4970-93c5-7a0a24dccba3
 * as a decimal integer> (ITU-T X.667). Never change it: certificates already issued use it.
 */
export const WARDEN_OID_ARC = '2.25.267032190862267326988152751847687113635';

export const Oids = {
  /** X.509 extension holding the JSON-encoded identity (roles, logins, traits). */
  identity: `${WARDEN_OID_ARC}.1.1`,
  /** Device trust extensions (all three or none). */
  deviceId: `${WARDEN_OID_ARC}.2.1`,
  deviceAssetTag: `${WARDEN_OID_ARC}.2.2`,
  deviceCredentialId: `${WARDEN_OID_ARC}.2.3`,
  /**
   * App certificates (`wsh app login`): JSON `{ app, public_addr, session_id }` naming the one
   * app the certificate is for. A certificate with it is refused everywhere else.
   */
  appRoute: `${WARDEN_OID_ARC}.3.1`,
  /**
   * Database certificates (`wsh db login`): JSON `{ db, db_user?, db_name? }` naming the one
   * database a native client (psql, mysql) reaches with it straight at the proxy. A
   * certificate with it is refused everywhere else.
   */
  dbRoute: `${WARDEN_OID_ARC}.3.2`,
} as const;

/** SSH certificate extension names for device trust (all three or none). */
export const SshDeviceExtensions = {
  deviceId: 'warden-device-id',
  assetTag: 'warden-device-asset-tag',
  credentialId: 'warden-device-credential-id',
} as const;

/** SSH certificate extensions carrying Warden identity data. */
export const SshIdentityExtensions = {
  roles: 'warden-roles@wardenproject.org',
  traits: 'warden-traits@wardenproject.org',
  /** `bot` on a bot's certificate (absent for people). */
  userKind: 'warden-user-kind@wardenproject.org',
} as const;

/** ALPN protocol of SSH through the proxy port (a request line, then raw SSH bytes to the node). */
export const SSH_ALPN = 'warden-ssh/1';

/** ALPN protocol of database traffic through the proxy port (a request line, then the database's protocol). */
export const DB_ALPN = 'warden-db/1';

/** ALPN protocol of app traffic from `wsh proxy app` (a request line, then HTTP/1.1). */
export const APP_ALPN = 'warden-app/1';

/**
 * The TLS server name (SNI) of Kubernetes traffic on the proxy port: `kube.<proxy host>`, or
 * `kube.localhost` when the proxy is addressed by IP. The proxy's certificate covers it;
 * kubeconfigs keep the proxy's address as `server` and set this as `tls-server-name`.
 */
export function kubeTlsServerName(proxyHost: string): string {
  const h = proxyHost.replace(/^\[|\]$/g, '').toLowerCase();
  const ip = /^[\d.]+$/.test(h) || h.includes(':');
  return `kube.${ip ? 'localhost' : h}`;
}

/** The header carrying Warden's signed JWT to apps; client-supplied copies are removed. */
export const JWT_ASSERTION_HEADER = 'Warden-Jwt-Assertion';

export const DEFAULT_PROXY_ADDR = '127.0.0.1:3080';
export const DEFAULT_DATA_DIR = './warden-data';
export const DEFAULT_CLUSTER_NAME = 'warden';
/** Longest certificate lifetime regardless of role settings. */
export const MAX_CERT_TTL_MS = 12 * 60 * 60 * 1000;
export const INVITE_TOKEN_TTL_MS = 60 * 60 * 1000;
