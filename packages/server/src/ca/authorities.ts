/**
 * Warden's certificate authorities (DESIGN §4): created once at first start, stored in the
 * backend, loaded by every auth replica, and used to issue user certificates (SSH + X.509),
 * host TLS certificates and host SSH certificates.
 *
 *   type      SSH key    X.509 (ECDSA P-256, self-signed)   signs
 *   user      Ed25519    yes                                user SSH certs, user client certs (mTLS)
 *   host      Ed25519    yes                                SSH host certs, TLS server certs
 *   db        -          yes                                client certs db_service shows databases (CN = db user),
 *                                                           and databases' server certs (`wctl auth sign --format=db`)
 *   openssh   Ed25519    -                                  per-session certs the proxy logs in to agentless nodes with
 *   jwt       -          - (an ECDSA P-256 JWT key)         `Warden-Jwt-Assertion` tokens app_service sends apps (ES256;
 *                                                           public keys as the proxy's JWKS)
 *
 * Backend layout (private keys as PKCS#8 PEM; only this module reads them):
 *
 *   /authorities/<type>   { type, cluster_name, ssh?: { private_key }, tls?: { private_key, cert }, jwt?: { private_key } }
 *
 * Two auth servers starting at once each generate keys but only one `create` wins; the
 * other loads the winner's. Private keys live in `PrivateKey` objects, which redact
 * themselves, and this class shows only its cluster and types when printed.
 * Internal to `ca/`; the public surface is `ca/index.ts`.
 */

import {
  createHash,
  createPublicKey,
  type KeyObject,
  X509Certificate as NodeX509Certificate,
  randomUUID,
} from 'node:crypto';
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import {
  CERT_AUTHORITY_TYPES,
  type CertAuthorityResource,
  type CertAuthorityType,
  type CertIdentity,
  type DeviceIdentity,
  formatAuthorizedKey,
  formatSshCertificate,
  identityExtensions,
  identitySubject,
  isWardenError,
  type PreparedSshCertificate,
  parseAuthorizedKey,
  parseIdentityFromCertificate,
  prepareSshCertificate,
  type SshCertificate,
  SshDeviceExtensions,
  SshIdentityExtensions,
  SshStandardUserExtensions,
  signPreparedSshCertificate,
  signSshCertificate,
  sshKeyType,
  validateResourceOfKind,
  verifySshCertificate,
  WardenError,
} from '@warden/api';
import { calculateJwkThumbprint, exportJWK, SignJWT } from 'jose';
import { z } from 'zod';
import type { Backend } from '../backend';
import { type Clock, systemClock } from '../clock';
import { PrivateKey } from './private-key';
import {
  certificatePem,
  createCaCertificate,
  issueLeafCertificate,
  type LeafParts,
  leafParts,
  signLeafCertificate,
  type X509Signer,
} from './x509';

export type CaType = CertAuthorityType;

/** What each type of CA holds. Adding a type = a row here + the type in `types` at init. */
export const CaKinds: Readonly<Record<CaType, { ssh: boolean; tls: boolean; jwt?: boolean }>> = {
  user: { ssh: true, tls: true },
  host: { ssh: true, tls: true },
  db: { ssh: false, tls: true },
  openssh: { ssh: true, tls: false },
  jwt: { ssh: false, tls: false, jwt: true },
};

/** The CAs `init` creates unless told otherwise. */
export const DEFAULT_CA_TYPES: readonly CaType[] = ['user', 'host', 'db', 'openssh', 'jwt'];

export const AUTHORITIES_PREFIX = '/authorities/';

const DAY_MS = 24 * 60 * 60 * 1000;
/** Lifetime of a CA certificate. */
const CA_CERT_TTL_MS = 10 * 365 * DAY_MS;
/** Certificates start this much before "now", so a client whose clock is a little behind accepts them. */
const CLOCK_SKEW_MS = 60 * 1000;
/** Default lifetime of host certificates (TLS and SSH). */
const DEFAULT_HOST_CERT_TTL_MS = 365 * DAY_MS;
/**
 * Hard upper bound on user certificates, whatever the caller asks: defence in depth (auth
 * bounds user logins by the roles' max_session_ttl and MAX_CERT_TTL_MS; the admin identity uses 24 h).
 */
const MAX_USER_CERT_TTL_MS = 7 * DAY_MS;

const storedSchema = z.strictObject({
  type: z.enum(CERT_AUTHORITY_TYPES),
  cluster_name: z.string().min(1),
  ssh: z.strictObject({ private_key: z.string() }).optional(),
  tls: z.strictObject({ private_key: z.string(), cert: z.string() }).optional(),
  jwt: z.strictObject({ private_key: z.string() }).optional(),
});
type StoredAuthority = z.infer<typeof storedSchema>;

/** One loaded CA. */
interface Authority {
  type: CaType;
  ssh?: { key: PrivateKey };
  tls?: X509Signer & { pem: string; node: NodeX509Certificate };
  jwt?: { key: PrivateKey; jwk: JwtPublicKey };
}

/** A public key of the `jwt` CA as a JWK (what `/.well-known/jwks.json` lists). */
export interface JwtPublicKey {
  kty: 'EC';
  crv: 'P-256';
  x: string;
  y: string;
  kid: string;
  alg: 'ES256';
  use: 'sig';
}

/** What a `Warden-Jwt-Assertion` says about the caller (DESIGN §7). */
export interface AppJwtClaims {
  user: string;
  roles: readonly string[];
  traits: Readonly<Record<string, readonly string[]>>;
  /** The trusted device, when the caller's certificate carried the device extensions. */
  device?: DeviceIdentity;
  /** The app's URI: the token's audience. */
  audience: string;
  /** Expiry (never later than the session behind it). */
  expires: Date;
  now?: number;
}

/** An app certificate: the caller's identity for the caller's key, plus the app route. */
export interface AppCertificateRequest {
  identity: CertIdentity & { app: NonNullable<CertIdentity['app']> };
  publicKey: KeyObject | string;
  /** The caller's certificate's NotAfter: the app certificate never outlives it. */
  notAfter: Date;
  now?: number;
}

/** A database certificate: the caller's identity for the caller's key, plus the database route. */
export interface DbCertificateRequest {
  identity: CertIdentity & { db: NonNullable<CertIdentity['db']> };
  publicKey: KeyObject | string;
  /** The caller's certificate's NotAfter: the database certificate never outlives it. */
  notAfter: Date;
  now?: number;
}

export interface CertAuthoritiesOptions {
  backend: Backend;
  clusterName: string;
  clock?: Clock;
  /** CAs to create when missing and load (default DEFAULT_CA_TYPES). */
  types?: readonly CaType[];
}

export interface UserCertificateRequest {
  user: string;
  roles: readonly string[];
  /** OS logins: the SSH certificate's principals. */
  logins: readonly string[];
  traits: Readonly<Record<string, readonly string[]>>;
  /** `bot` for a machine identity; people's certificates leave it out. */
  kind?: 'bot';
  /** The user's key (ECDSA P-256 or Ed25519): KeyObject, SPKI PEM or authorized_keys line. */
  publicKey: KeyObject | string;
  /** Lifetime from `now`. Give this or `notAfter`. */
  ttlMs?: number;
  /** Exact expiry, e.g. to keep a certificate's NotAfter when augmenting it with a device. */
  notAfter?: Date;
  /** Milliseconds since the epoch; defaults to the clock. */
  now?: number;
  /** The three device extensions, after the device ceremony. */
  device?: DeviceIdentity;
  /**
   * What the SSH certificate permits beyond a PTY and port forwarding (the roles' options
   * `permit_agent_forwarding` / `permit_x11_forwarding`, see userSshExtensions); default none.
   */
  permit?: SshPermits;
}

/** SSH features a user's roles may permit (role options; default false). */
export interface SshPermits {
  agentForwarding?: boolean;
  x11Forwarding?: boolean;
}

/**
 * The standard extensions of a user's SSH certificate: `permit-pty` and
 * `permit-port-forwarding` always; `permit-agent-forwarding` and `permit-X11-forwarding` only
 * when permitted; never `permit-user-rc` (sshd would run the user's ~/.ssh/rc, code the roles
 * never vouched for; Warden nodes never run it).
 */
export function userSshExtensions(permit: SshPermits = {}): Record<string, string> {
  const out: Record<string, string> = {};
  if (permit.x11Forwarding) out['permit-X11-forwarding'] = '';
  if (permit.agentForwarding) out['permit-agent-forwarding'] = '';
  out['permit-port-forwarding'] = '';
  out['permit-pty'] = '';
  return out;
}

export interface UserCertificates {
  /** One line in OpenSSH format (`ecdsa-sha2-nistp256-cert-v01@openssh.com AAAA…`). */
  sshCert: string;
  /** PEM client certificate: CN=user, O=<role>…, identity extension, clientAuth. */
  tlsCert: string;
  /** Shared by both certificates (whole seconds). */
  notAfter: Date;
}

export interface HostTlsRequest {
  dnsNames?: readonly string[];
  ipAddresses?: readonly string[];
  /** The host's key; generated (ECDSA P-256) and returned when absent. */
  publicKey?: KeyObject | string;
  ttlMs?: number;
  now?: number;
}

export interface HostTlsCertificate {
  certPem: string;
  /** The host CA certificates, for clients' trust stores. */
  caPems: string[];
  /** Present when the key was generated here; pass `privateKey.toPkcs8Pem()` to `tls.createServer`. */
  privateKey?: PrivateKey;
  notAfter: Date;
}

export interface DbClientRequest {
  /** The database user db_service logs in as: the certificate's CN. */
  dbUser: string;
  /** db_service's key for this certificate (ECDSA P-256 or Ed25519). */
  publicKey: KeyObject | string;
  ttlMs: number;
  now?: number;
}

export interface DbServerRequest {
  dnsNames?: readonly string[];
  ipAddresses?: readonly string[];
  /** The database's key; generated by `wctl`, never sent here. */
  publicKey: KeyObject | string;
  ttlMs?: number;
  now?: number;
}

export interface HostSshRequest {
  publicKey: KeyObject | string;
  /** Stable host ID (UUID); the key ID and a principal. */
  hostId: string;
  /** Other names the host answers to (node name, DNS names). */
  hostnames?: readonly string[];
  ttlMs?: number;
  now?: number;
}

/** A per-session certificate for an agentless node (DESIGN §4); see issueOpenSshSessionCert. */
export interface OpenSshSessionRequest {
  /** The proxy's fresh key for this one session. */
  publicKey: KeyObject | string;
  /** The OS login: the only principal. */
  login: string;
  /** The Warden user the session is for (key ID, as sshd logs it) and the session ID. */
  user: string;
  sessionId: string;
  /** Standard `permit-*` extensions to grant (others are dropped). */
  extensions?: readonly string[];
  now?: number;
}

/**
 * Validity of an openssh session certificate, in all: it only has to open one connection,
 * right after it is made. It starts a little before `now` for a node whose clock is behind.
 */
export const OPENSSH_SESSION_CERT_VALIDITY_MS = 60_000;
const OPENSSH_SESSION_CERT_SKEW_MS = 10_000;

function badParameter(message: string): WardenError {
  return new WardenError('WARDEN_ERR_BAD_PARAMETER', message);
}

/** The public half of a key given as KeyObject, SPKI PEM or authorized_keys line. */
function toPublicKey(key: KeyObject | string, what: string): KeyObject {
  let k: KeyObject;
  try {
    if (typeof key !== 'string') k = key.type === 'private' ? createPublicKey(key) : key;
    else if (key.trimStart().startsWith('-----BEGIN')) k = createPublicKey(key);
    else k = parseAuthorizedKey(key).key;
    sshKeyType(k);
  } catch {
    throw badParameter(
      `${what} must be an ECDSA P-256 or Ed25519 public key (KeyObject, SPKI PEM or OpenSSH line)`,
    );
  }
  return k;
}

const seconds = (ms: number) => BigInt(Math.floor(ms / 1000));

/** What `CertAuthorities.#userParts` keeps per identity. */
interface UserCertParts {
  leaf: LeafParts;
  /** Undefined for an identity without logins (each certificate gets its own principal). */
  ssh: PreparedSshCertificate | undefined;
  sshExtensions: Readonly<Record<string, string>>;
}
/** Identities whose certificate parts are kept (a few kB each). */
const USER_CERT_PARTS_MAX = 4096;

/**
 * The principal of a user certificate without logins. Some verifiers (Go's x/crypto/ssh among
 * them) read an empty principal list as "any login", so we never issue one: this name can't be
 * a Unix user (leading dash) and is unique, so it matches nothing.
 */
export const NO_LOGIN_PRINCIPAL_PREFIX = '-warden-nologin-';
function noLoginPrincipal(): string {
  return `${NO_LOGIN_PRINCIPAL_PREFIX}${randomUUID()}`;
}

/** Cluster names go into known_hosts patterns and certificate subjects. */
const CLUSTER_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$/;

export class CertAuthorities {
  readonly clusterName: string;
  readonly #clock: Clock;
  readonly #cas: ReadonlyMap<CaType, Authority>;
  /** Encoded holder parts of user certificates, by request (`#userParts`), oldest dropped first. */
  readonly #userCertParts = new Map<string, UserCertParts>();

  private constructor(clusterName: string, clock: Clock, cas: Map<CaType, Authority>) {
    this.clusterName = clusterName;
    this.#clock = clock;
    this.#cas = cas;
  }

  /**
   * Loads the CAs of `types` from the backend, creating the missing ones (first start).
   * Fails with WARDEN_ERR_BAD_CONFIG when a stored CA belongs to another cluster name.
   *
   * @example
   *   const cas = await CertAuthorities.init({ backend, clusterName: 'warden', clock });
   */
  static async init(opts: CertAuthoritiesOptions): Promise<CertAuthorities> {
    const clock = opts.clock ?? systemClock;
    if (!CLUSTER_NAME.test(opts.clusterName)) {
      throw new WardenError(
        'WARDEN_ERR_BAD_CONFIG',
        `cluster name ${JSON.stringify(opts.clusterName)} must be letters, digits, ".", "_" or "-"`,
      );
    }
    const cas = new Map<CaType, Authority>();
    for (const type of opts.types ?? DEFAULT_CA_TYPES) {
      const key = AUTHORITIES_PREFIX + type;
      let item = await opts.backend.get(key);
      if (!item) {
        const fresh = await generateAuthority(type, opts.clusterName, clock.now());
        try {
          await opts.backend.create(key, JSON.stringify(fresh));
        } catch (e) {
          // Another auth server created it first: use theirs.
          if (!isWardenError(e, 'WARDEN_ERR_ALREADY_EXISTS')) throw e;
        }
        item = await opts.backend.get(key);
        if (!item)
          throw new WardenError('WARDEN_ERR_INTERNAL', `the ${type} CA vanished right after it was created`);
      }
      cas.set(type, await loadAuthority(type, opts.clusterName, item.value));
    }
    return new CertAuthorities(opts.clusterName, clock, cas);
  }

  /** The CA types loaded. */
  types(): CaType[] {
    return [...this.#cas.keys()];
  }

  #get(type: CaType): Authority {
    const ca = this.#cas.get(type);
    if (!ca) throw new WardenError('WARDEN_ERR_NOT_FOUND', `the ${type} certificate authority is not set up`);
    return ca;
  }

  #ssh(type: CaType): { key: PrivateKey } {
    const ssh = this.#get(type).ssh;
    if (!ssh)
      throw new WardenError('WARDEN_ERR_NOT_FOUND', `the ${type} certificate authority has no SSH key`);
    return ssh;
  }

  #tls(type: CaType): NonNullable<Authority['tls']> {
    const tls = this.#get(type).tls;
    if (!tls)
      throw new WardenError('WARDEN_ERR_NOT_FOUND', `the ${type} certificate authority has no X.509 key`);
    return tls;
  }

  /** The public parts of one CA as a `cert_authority` resource (validated against its schema). */
  publicView(type: CaType): CertAuthorityResource {
    const ca = this.#get(type);
    return validateResourceOfKind('cert_authority', {
      kind: 'cert_authority',
      version: 'v2',
      metadata: { name: type },
      spec: {
        type,
        cluster: this.clusterName,
        ssh_public_keys: ca.ssh ? [formatAuthorizedKey(ca.ssh.key.publicKey)] : [],
        tls_certs: ca.tls ? [ca.tls.pem] : [],
        ...(ca.jwt ? { jwt_public_keys: [ca.jwt.jwk] } : {}),
      },
    });
  }

  /**
   * The `jwt` CA's public keys as a JSON Web Key Set (`/.well-known/jwks.json`).
   *
   * @example
   *   const jwks = createLocalJWKSet(cas.jwks()); // jose, in an app
   */
  jwks(): { keys: JwtPublicKey[] } {
    const jwt = this.#get('jwt').jwt;
    return { keys: jwt ? [{ ...jwt.jwk }] : [] };
  }

  /**
   * A `Warden-Jwt-Assertion` token (ES256, signed by the `jwt` CA): `iss` = cluster, `sub` and
   * `username` = user, `aud` = the app's URI, `roles`, `traits`, and `device` (`id`,
   * `asset_tag`, `credential_id`) when the caller's certificate is device-trusted.
   *
   * @example
   *   const token = await cas.signAppJwt({ user: 'alice', roles: ['access'], traits: {},
   *     audience: 'http://127.0.0.1:3000', expires: new Date(Date.now() + 60_000) });
   */
  async signAppJwt(c: AppJwtClaims): Promise<string> {
    const jwt = this.#get('jwt').jwt;
    if (!jwt) throw new WardenError('WARDEN_ERR_NOT_FOUND', 'the jwt certificate authority has no key');
    const now = c.now ?? this.#clock.now();
    const iat = Math.floor(now / 1000);
    const exp = Math.floor(c.expires.getTime() / 1000);
    if (!(exp > iat)) throw badParameter('the token would already be expired');
    return new SignJWT({
      username: c.user,
      roles: [...c.roles],
      traits: Object.fromEntries(Object.entries(c.traits).map(([k, v]) => [k, [...v]])),
      ...(c.device
        ? {
            device: {
              id: c.device.deviceId,
              asset_tag: c.device.assetTag,
              credential_id: c.device.credentialId,
            },
          }
        : {}),
    })
      .setProtectedHeader({ alg: 'ES256', typ: 'JWT', kid: jwt.jwk.kid })
      .setIssuer(this.clusterName)
      .setSubject(c.user)
      .setAudience(c.audience)
      .setIssuedAt(iat)
      .setNotBefore(iat - Math.floor(CLOCK_SKEW_MS / 1000))
      .setExpirationTime(exp)
      .sign(jwt.key.keyObject);
  }

  /**
   * An app certificate from the user CA for the caller's own key: the caller's identity
   * (roles, traits, device extensions when present) plus the app route extension, clientAuth,
   * NotAfter = the caller's certificate's (never later).
   *
   * @example
   *   const { certPem } = await cas.issueAppCert({ identity: { ...caller, app: { app: 'grafana',
   *     publicAddr: 'grafana.example.com', sessionId } }, publicKey, notAfter: callerCert.notAfter });
   */
  async issueAppCert(req: AppCertificateRequest): Promise<{ certPem: string; notAfter: Date }> {
    if (!req.identity.app) throw badParameter('an app certificate needs an app route');
    return this.#issueRouteCert(req, { app: { ...req.identity.app } }, 'app');
  }

  /**
   * A database certificate from the user CA for the caller's own key (`wsh db login`): the
   * caller's identity (roles, traits, device extensions when present) plus the database route
   * extension, clientAuth, NotAfter = the caller's certificate's (never later). psql and mysql
   * present it straight to the proxy; it is refused everywhere else.
   */
  async issueDbCert(req: DbCertificateRequest): Promise<{ certPem: string; notAfter: Date }> {
    if (!req.identity.db) throw badParameter('a database certificate needs a database route');
    return this.#issueRouteCert(req, { db: { ...req.identity.db } }, 'database');
  }

  async #issueRouteCert(
    req: { identity: CertIdentity; publicKey: KeyObject | string; notAfter: Date; now?: number },
    route: Pick<CertIdentity, 'app' | 'db'>,
    what: string,
  ): Promise<{ certPem: string; notAfter: Date }> {
    const now = req.now ?? this.#clock.now();
    const notAfterMs = Math.floor(req.notAfter.getTime() / 1000) * 1000;
    if (!Number.isFinite(notAfterMs) || notAfterMs <= now)
      throw badParameter('the certificate would already be expired');
    if (notAfterMs - now > MAX_USER_CERT_TTL_MS)
      throw badParameter(`${what} certificates live at most 7 days`);
    const identity: CertIdentity = {
      user: req.identity.user,
      roles: [...req.identity.roles],
      logins: [],
      traits: Object.fromEntries(Object.entries(req.identity.traits).map(([k, v]) => [k, [...v]])),
      ...(req.identity.kind === 'bot' && { kind: 'bot' as const }),
      ...(req.identity.device && { device: { ...req.identity.device } }),
      ...route,
    };
    const certPem = await issueLeafCertificate({
      ca: this.#tls('user'),
      subject: identitySubject(identity),
      publicKey: toPublicKey(req.publicKey, 'publicKey'),
      notBefore: new Date(Math.floor((now - CLOCK_SKEW_MS) / 1000) * 1000),
      notAfter: new Date(notAfterMs),
      usages: ['clientAuth'],
      wardenExtensions: identityExtensions(identity),
    });
    return { certPem, notAfter: new Date(notAfterMs) };
  }

  publicViews(): CertAuthorityResource[] {
    return this.types().map((t) => this.publicView(t));
  }

  /** The CA's SSH public keys (for verifying certificates). */
  sshPublicKeys(type: CaType): KeyObject[] {
    const ssh = this.#get(type).ssh;
    return ssh ? [ssh.key.publicKey] : [];
  }

  /** The CA's X.509 certificates in PEM. */
  tlsCertPems(type: CaType): string[] {
    const tls = this.#get(type).tls;
    return tls ? [tls.pem] : [];
  }

  /** `sha256:<hex>` of the CA certificate's SubjectPublicKeyInfo: what `wsh --ca-pin` takes. */
  caPin(type: CaType): string {
    const spki = this.#tls(type).node.publicKey.export({ type: 'spki', format: 'der' });
    return `sha256:${createHash('sha256').update(spki).digest('hex')}`;
  }

  /**
   * The line for OpenSSH's `TrustedUserCAKeys` file: `ssh-ed25519 AAAA… type=user`.
   * `openssh` exports the openssh CA instead (DESIGN §4): what agentless nodes should trust.
   */
  exportUserLine(type: 'user' | 'openssh' = 'user'): string {
    return formatAuthorizedKey(this.#ssh(type).key.publicKey, `type=${type}`);
  }

  /**
   * The known_hosts line that makes `ssh` trust host certificates from this cluster:
   * `@cert-authority *.<cluster>,<cluster> ssh-ed25519 AAAA… type=host`.
   * The pattern covers the cluster name and every name under it; host certificates carry
   * `<host>` and `<host>.<cluster>` principals (see issueHostSshCert), and wsh connects to
   * nodes as `<node>.<cluster>`, so bare IPs or unrelated names are never vouched for.
   */
  exportHostLine(clusterName: string = this.clusterName): string {
    if (!CLUSTER_NAME.test(clusterName))
      throw badParameter(`invalid cluster name ${JSON.stringify(clusterName)}`);
    return `@cert-authority *.${clusterName},${clusterName} ${formatAuthorizedKey(this.#ssh('host').key.publicKey, 'type=host')}`;
  }

  /**
   * The parts of a user's certificates that depend only on who they are for (identity,
   * device, permits): the X.509 subject and extensions, the SSH key ID, principals and
   * extensions, checked and encoded once per identity. A user's login and device
   * authentication certify the same identity again and again; only the key, serials, nonce,
   * validity and signatures are new each time. Keyed by the request's JSON (byte for byte the
   * same input, checked before); rebuilt when the user CA's certificate changes.
   */
  #userParts(req: UserCertificateRequest): UserCertParts {
    const ca = this.#tls('user');
    const key = JSON.stringify([
      req.user,
      req.roles,
      req.logins,
      req.traits,
      req.kind === 'bot',
      req.device ?? null,
      req.permit?.x11Forwarding === true,
      req.permit?.agentForwarding === true,
    ]);
    const known = this.#userCertParts.get(key);
    if (known && known.leaf.caCert === ca.cert) return known;
    const identity: CertIdentity = {
      user: req.user,
      roles: [...req.roles],
      logins: [...req.logins],
      traits: Object.fromEntries(Object.entries(req.traits).map(([k, v]) => [k, [...v]])),
      ...(req.kind === 'bot' && { kind: 'bot' as const }),
      ...(req.device && { device: { ...req.device } }),
    };
    // Encoding validates the identity and the device fields (all three non-empty).
    const wardenExtensions = identityExtensions(identity);
    const sshExtensions = userSshExtensions(req.permit);
    sshExtensions[SshIdentityExtensions.roles] = JSON.stringify(identity.roles);
    sshExtensions[SshIdentityExtensions.traits] = JSON.stringify(identity.traits);
    if (identity.kind === 'bot') sshExtensions[SshIdentityExtensions.userKind] = 'bot';
    if (identity.device) {
      sshExtensions[SshDeviceExtensions.deviceId] = identity.device.deviceId;
      sshExtensions[SshDeviceExtensions.assetTag] = identity.device.assetTag;
      sshExtensions[SshDeviceExtensions.credentialId] = identity.device.credentialId;
    }
    const parts: UserCertParts = {
      leaf: leafParts({
        ca,
        subject: identitySubject(identity),
        usages: ['clientAuth'],
        wardenExtensions,
      }),
      // Without logins each certificate gets a principal of its own (noLoginPrincipal).
      ssh:
        identity.logins.length > 0
          ? prepareSshCertificate({
              type: 'user',
              keyId: identity.user,
              validPrincipals: identity.logins,
              extensions: sshExtensions,
            })
          : undefined,
      sshExtensions: Object.freeze(sshExtensions),
    };
    if (this.#userCertParts.size >= USER_CERT_PARTS_MAX)
      this.#userCertParts.delete(this.#userCertParts.keys().next().value!);
    this.#userCertParts.set(key, parts);
    return parts;
  }

  /**
   * Issues a user's SSH and X.509 certificates for the same key, with the same NotAfter.
   * SSH: key ID = user, principals = logins (or one unmatchable `-warden-nologin-<uuid>` when
   * there are none), the permit-* extensions of userSshExtensions, Warden
   * roles (JSON array) and traits (JSON object), and the device extensions when given.
   * X.509: CN=user, O=<role> per role, identity (and device) extensions, clientAuth.
   *
   * @example
   *   const { sshCert, tlsCert, notAfter } = await cas.issueUserCertificates({ user: 'alice',
   *     roles: ['access'], logins: ['alice'], traits: {}, publicKey, ttlMs: 8 * 3600_000 });
   */
  async issueUserCertificates(req: UserCertificateRequest): Promise<UserCertificates> {
    const now = req.now ?? this.#clock.now();
    const publicKey = toPublicKey(req.publicKey, 'publicKey');
    if (typeof req.user !== 'string' || req.user === '') throw badParameter('user must not be empty');
    let notAfterMs: number;
    if (req.notAfter !== undefined) {
      if (req.ttlMs !== undefined) throw badParameter('give ttlMs or notAfter, not both');
      notAfterMs = req.notAfter.getTime();
    } else {
      if (req.ttlMs === undefined || !Number.isFinite(req.ttlMs) || req.ttlMs <= 0) {
        throw badParameter('ttlMs must be a positive number of milliseconds');
      }
      notAfterMs = now + req.ttlMs;
    }
    // Whole seconds, so that the SSH and X.509 certificates say exactly the same.
    notAfterMs = Math.floor(notAfterMs / 1000) * 1000;
    if (!Number.isFinite(notAfterMs) || notAfterMs <= now)
      throw badParameter('the certificate would already be expired');
    if (notAfterMs - now > MAX_USER_CERT_TTL_MS) throw badParameter('user certificates live at most 7 days');
    const notBeforeMs = Math.floor((now - CLOCK_SKEW_MS) / 1000) * 1000;

    const parts = this.#userParts(req);
    const ssh =
      parts.ssh ??
      prepareSshCertificate({
        type: 'user',
        keyId: req.user,
        validPrincipals: [noLoginPrincipal()],
        extensions: parts.sshExtensions,
      });
    const sshCert = signPreparedSshCertificate(
      ssh,
      { publicKey, validAfter: seconds(notBeforeMs), validBefore: seconds(notAfterMs) },
      this.#ssh('user').key.keyObject,
    );
    const tlsCert = signLeafCertificate(this.#tls('user'), parts.leaf, {
      publicKey,
      notBefore: new Date(notBeforeMs),
      notAfter: new Date(notAfterMs),
    });
    return { sshCert: formatSshCertificate(sshCert), tlsCert, notAfter: new Date(notAfterMs) };
  }

  /**
   * A TLS server certificate from the host CA (serverAuth and clientAuth, so agents can also
   * use it to dial auth). Generates an ECDSA P-256 key when none is given and returns it.
   *
   * @example
   *   const { certPem, privateKey } = await cas.issueHostTlsCert({ dnsNames: ['proxy.example.com'], ipAddresses: ['127.0.0.1'] });
   *   tls.createServer({ cert: certPem, key: privateKey!.toPkcs8Pem() });
   */
  async issueHostTlsCert(req: HostTlsRequest): Promise<HostTlsCertificate> {
    const now = req.now ?? this.#clock.now();
    const dnsNames = [...(req.dnsNames ?? [])];
    const ipAddresses = [...(req.ipAddresses ?? [])];
    if (dnsNames.length + ipAddresses.length === 0)
      throw badParameter('a host certificate needs a DNS name or an IP');
    const privateKey = req.publicKey === undefined ? PrivateKey.generate('ecdsa-p256') : undefined;
    const publicKey = privateKey
      ? privateKey.publicKey
      : toPublicKey(req.publicKey as KeyObject | string, 'publicKey');
    const notAfter = new Date(
      Math.floor((now + this.#ttl(req.ttlMs, DEFAULT_HOST_CERT_TTL_MS)) / 1000) * 1000,
    );
    const certPem = await issueLeafCertificate({
      ca: this.#tls('host'),
      subject: [{ CN: [dnsNames[0] ?? ipAddresses[0] ?? this.clusterName] }, { O: [this.clusterName] }],
      publicKey,
      notBefore: new Date(Math.floor((now - CLOCK_SKEW_MS) / 1000) * 1000),
      notAfter,
      usages: ['serverAuth', 'clientAuth'],
      dnsNames,
      ipAddresses,
    });
    return { certPem, caPems: this.tlsCertPems('host'), ...(privateKey && { privateKey }), notAfter };
  }

  /**
   * A client certificate from the db CA for db_service to show a database: CN = the database
   * user (PostgreSQL `cert` auth and MySQL `REQUIRE SUBJECT` read it), clientAuth only.
   *
   * @example
   *   const { certPem } = await cas.issueDbClientCert({ dbUser: 'alice', publicKey, ttlMs: 3600_000 });
   */
  async issueDbClientCert(req: DbClientRequest): Promise<{ certPem: string; notAfter: Date }> {
    const now = req.now ?? this.#clock.now();
    if (typeof req.dbUser !== 'string' || req.dbUser === '' || /[\p{Cc}]/u.test(req.dbUser))
      throw badParameter('the database user must be a non-empty name without control characters');
    const notAfter = new Date(Math.floor((now + this.#ttl(req.ttlMs, 0)) / 1000) * 1000);
    if (notAfter.getTime() - now > MAX_USER_CERT_TTL_MS)
      throw badParameter('database client certificates live at most 7 days');
    const certPem = await issueLeafCertificate({
      ca: this.#tls('db'),
      subject: [{ CN: [req.dbUser] }, { O: [this.clusterName] }],
      publicKey: toPublicKey(req.publicKey, 'publicKey'),
      notBefore: new Date(Math.floor((now - CLOCK_SKEW_MS) / 1000) * 1000),
      notAfter,
      usages: ['clientAuth'],
    });
    return { certPem, notAfter };
  }

  /**
   * A Kubernetes client certificate from the user CA for kubectl (`wsh kube credentials`):
   * CN = the user, OU = `warden-kube`, clientAuth, no Warden extensions (Go's X.509 parser
   * refuses their big-arc OIDs), so only kube_service accepts it, by looking up the identity it
   * recorded for it at issue (`srv/kube/certs.ts`). Lives until `notAfter` (at most 7 days).
   */
  async issueKubeClientCert(req: {
    user: string;
    publicKey: KeyObject | string;
    notAfter: Date;
    now?: number;
  }): Promise<{ certPem: string; notAfter: Date }> {
    const now = req.now ?? this.#clock.now();
    if (typeof req.user !== 'string' || req.user === '' || /[\p{Cc}]/u.test(req.user))
      throw badParameter('the user must be a non-empty name without control characters');
    const notAfter = new Date(Math.floor(req.notAfter.getTime() / 1000) * 1000);
    if (notAfter.getTime() <= now || notAfter.getTime() - now > MAX_USER_CERT_TTL_MS)
      throw badParameter('Kubernetes client certificates live between 1 second and 7 days');
    const certPem = await issueLeafCertificate({
      ca: this.#tls('user'),
      subject: [{ CN: [req.user] }, { O: [this.clusterName] }, { OU: ['warden-kube'] }],
      publicKey: toPublicKey(req.publicKey, 'publicKey'),
      notBefore: new Date(Math.floor((now - CLOCK_SKEW_MS) / 1000) * 1000),
      notAfter,
      usages: ['clientAuth'],
    });
    return { certPem, notAfter };
  }

  /**
   * A TLS server certificate for a database, from the db CA (so db_service, which trusts the
   * db CA for databases without their own `ca_cert`, can verify it). serverAuth only.
   */
  async issueDbServerCert(req: DbServerRequest): Promise<{ certPem: string; notAfter: Date }> {
    const now = req.now ?? this.#clock.now();
    const dnsNames = [...(req.dnsNames ?? [])];
    const ipAddresses = [...(req.ipAddresses ?? [])];
    if (dnsNames.length + ipAddresses.length === 0)
      throw badParameter('a database certificate needs a DNS name or an IP');
    const notAfter = new Date(
      Math.floor((now + this.#ttl(req.ttlMs, DEFAULT_HOST_CERT_TTL_MS)) / 1000) * 1000,
    );
    const certPem = await issueLeafCertificate({
      ca: this.#tls('db'),
      subject: [{ CN: [dnsNames[0] ?? ipAddresses[0]!] }, { O: [this.clusterName] }],
      publicKey: toPublicKey(req.publicKey, 'publicKey'),
      notBefore: new Date(Math.floor((now - CLOCK_SKEW_MS) / 1000) * 1000),
      notAfter,
      usages: ['serverAuth'],
      dnsNames,
      ipAddresses,
    });
    return { certPem, notAfter };
  }

  /**
   * A user certificate from the `openssh` CA for one session to an agentless node: principal =
   * the login, key = the proxy's fresh per-session key, valid 60 s in all (10 s before now, 50 s
   * after), key ID `<user> session <id>`. Only the proxy asks, after the access checker allowed
   * the session; nodes that trust only this CA can't be opened with a user's own certificate.
   *
   * @example
   *   const line = cas.issueOpenSshSessionCert({ publicKey, login: 'root', user: 'alice',
   *     sessionId, extensions: ['permit-pty'] });
   */
  issueOpenSshSessionCert(req: OpenSshSessionRequest): string {
    const now = req.now ?? this.#clock.now();
    if (typeof req.login !== 'string' || req.login === '' || /[\p{Cc},\s]/u.test(req.login))
      throw badParameter('the login must be a non-empty name without spaces, commas or control characters');
    if (!req.user || !req.sessionId) throw badParameter('user and sessionId must not be empty');
    // Never permit-user-rc (a per-user hook no role vouched for), as for user certificates.
    const allowed = new Set<string>(SshStandardUserExtensions.filter((e) => e !== 'permit-user-rc'));
    const extensions = Object.fromEntries(
      (req.extensions ?? []).filter((e) => allowed.has(e)).map((e) => [e, '']),
    );
    const validAfter = seconds(now - OPENSSH_SESSION_CERT_SKEW_MS);
    const cert = signSshCertificate(
      {
        publicKey: toPublicKey(req.publicKey, 'publicKey'),
        type: 'user',
        keyId: `${req.user} session ${req.sessionId}`,
        validPrincipals: [req.login],
        validAfter,
        validBefore: validAfter + BigInt(OPENSSH_SESSION_CERT_VALIDITY_MS / 1000),
        extensions,
      },
      this.#ssh('openssh').key.keyObject,
    );
    return formatSshCertificate(cert);
  }

  /**
   * An SSH host certificate from the host CA. Principals: the host ID and each host name,
   * each also as `<name>.<cluster>` (what the known_hosts pattern of exportHostLine covers).
   */
  issueHostSshCert(req: HostSshRequest): string {
    const now = req.now ?? this.#clock.now();
    if (!req.hostId) throw badParameter('hostId must not be empty');
    const names = [req.hostId, ...(req.hostnames ?? [])];
    const principals = [...new Set(names.flatMap((n) => [n, `${n}.${this.clusterName}`]))];
    const cert = signSshCertificate(
      {
        publicKey: toPublicKey(req.publicKey, 'publicKey'),
        type: 'host',
        keyId: req.hostId,
        validPrincipals: principals,
        validAfter: seconds(now - CLOCK_SKEW_MS),
        validBefore: seconds(now + this.#ttl(req.ttlMs, DEFAULT_HOST_CERT_TTL_MS)),
      },
      this.#ssh('host').key.keyObject,
    );
    return formatSshCertificate(cert);
  }

  #ttl(ttlMs: number | undefined, fallback: number): number {
    if (ttlMs === undefined) return fallback;
    if (!Number.isFinite(ttlMs) || ttlMs <= 0)
      throw badParameter('ttlMs must be a positive number of milliseconds');
    return ttlMs;
  }

  /**
   * Verifies a user client certificate for mTLS: issued and signed by the user CA, within its
   * validity at `now`, not a CA, with the clientAuth EKU; then reads its identity.
   * Throws WARDEN_ERR_BAD_CERTIFICATE.
   */
  verifyUserTlsCert(cert: string | Uint8Array, now: number = this.#clock.now()): CertIdentity {
    const bad = (reason: string) =>
      new WardenError('WARDEN_ERR_BAD_CERTIFICATE', `client certificate rejected: ${reason}`);
    const ca = this.#tls('user');
    let node: NodeX509Certificate;
    let parsed: x509.X509Certificate;
    try {
      node = new NodeX509Certificate(typeof cert === 'string' ? cert : Buffer.from(cert));
      parsed = new x509.X509Certificate(node.raw);
    } catch {
      throw bad('not an X.509 certificate');
    }
    if (!node.checkIssued(ca.node) || !node.verify(ca.node.publicKey)) throw bad('not signed by the user CA');
    if (now < parsed.notBefore.getTime()) throw bad('not yet valid');
    if (now > parsed.notAfter.getTime()) throw bad('expired');
    if (node.ca) throw bad('a CA certificate is not a client certificate');
    const eku = parsed.getExtension(x509.ExtendedKeyUsageExtension);
    if (!eku?.usages.includes(x509.ExtendedKeyUsage.clientAuth))
      throw bad('no clientAuth extended key usage');
    return parseIdentityFromCertificate(node.raw);
  }

  /** Verifies a user SSH certificate against the user CA (see verifySshCertificate in @warden/api). */
  verifyUserSshCert(cert: string, opts: { principal?: string; now?: number } = {}): SshCertificate {
    return verifySshCertificate(cert, this.sshPublicKeys('user'), {
      now: opts.now ?? this.#clock.now(),
      type: 'user',
      ...(opts.principal !== undefined && { principal: opts.principal }),
    });
  }

  toJSON(): { clusterName: string; types: CaType[] } {
    return { clusterName: this.clusterName, types: this.types() };
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return `CertAuthorities { cluster: ${JSON.stringify(this.clusterName)}, types: ${JSON.stringify(this.types())} }`;
  }
}

/** Fresh keys (and CA certificate) for a CA of `type`. */
async function generateAuthority(type: CaType, clusterName: string, now: number): Promise<StoredAuthority> {
  const kind = CaKinds[type];
  const stored: StoredAuthority = { type, cluster_name: clusterName };
  if (kind.ssh) stored.ssh = { private_key: PrivateKey.generate('ed25519').toPkcs8Pem() };
  if (kind.tls) {
    const key = PrivateKey.generate('ecdsa-p256');
    const cert = await createCaCertificate({
      key,
      subject: [{ CN: [clusterName] }, { O: [clusterName] }, { OU: [`warden ${type} CA`] }],
      notBefore: new Date(now - CLOCK_SKEW_MS),
      notAfter: new Date(now + CA_CERT_TTL_MS),
    });
    stored.tls = { private_key: key.toPkcs8Pem(), cert };
  }
  if (kind.jwt) stored.jwt = { private_key: PrivateKey.generate('ecdsa-p256').toPkcs8Pem() };
  return stored;
}

/** Parses and checks a stored CA: schema, type, cluster, key algorithms, cert matches key. */
async function loadAuthority(type: CaType, clusterName: string, value: string): Promise<Authority> {
  const corrupt = (why: string) =>
    new WardenError('WARDEN_ERR_BAD_CONFIG', `the stored ${type} CA is unusable: ${why}`);
  let stored: StoredAuthority;
  try {
    stored = storedSchema.parse(JSON.parse(value));
  } catch {
    throw corrupt('not the expected JSON');
  }
  if (stored.type !== type) throw corrupt(`it says it is a ${stored.type} CA`);
  if (stored.cluster_name !== clusterName) {
    throw new WardenError(
      'WARDEN_ERR_BAD_CONFIG',
      `the stored CAs belong to cluster "${stored.cluster_name}", but the configured cluster name is "${clusterName}"; ` +
        'a cluster cannot be renamed: restore the old name or start with a fresh data directory',
    );
  }
  const kind = CaKinds[type];
  if (
    kind.ssh !== (stored.ssh !== undefined) ||
    kind.tls !== (stored.tls !== undefined) ||
    (kind.jwt ?? false) !== (stored.jwt !== undefined)
  ) {
    throw corrupt('it does not have the keys a CA of its type needs');
  }
  const ca: Authority = { type };
  if (stored.ssh) {
    const key = PrivateKey.fromPkcs8Pem(stored.ssh.private_key);
    if (key.algorithm !== 'ed25519') throw corrupt('the SSH key is not Ed25519');
    ca.ssh = { key };
  }
  if (stored.tls) {
    const key = PrivateKey.fromPkcs8Pem(stored.tls.private_key);
    if (key.algorithm !== 'ecdsa-p256') throw corrupt('the X.509 key is not ECDSA P-256');
    let node: NodeX509Certificate;
    let cert: x509.X509Certificate;
    try {
      node = new NodeX509Certificate(stored.tls.cert);
      cert = new x509.X509Certificate(node.raw);
    } catch {
      throw corrupt('the CA certificate does not parse');
    }
    const spki = (k: KeyObject) => k.export({ type: 'spki', format: 'der' });
    if (!spki(node.publicKey).equals(spki(key.publicKey)))
      throw corrupt('the CA certificate is not for its key');
    ca.tls = { key, webKey: await key.toWebCryptoSigningKey(), cert, pem: certificatePem(node.raw), node };
  }
  if (stored.jwt) {
    const key = PrivateKey.fromPkcs8Pem(stored.jwt.private_key);
    if (key.algorithm !== 'ecdsa-p256') throw corrupt('the JWT key is not ECDSA P-256');
    const pub = await exportJWK(key.publicKey);
    if (pub.kty !== 'EC' || pub.crv !== 'P-256' || !pub.x || !pub.y)
      throw corrupt('the JWT key is not EC P-256');
    const kid = await calculateJwkThumbprint({ kty: 'EC', crv: 'P-256', x: pub.x, y: pub.y });
    ca.jwt = { key, jwk: { kty: 'EC', crv: 'P-256', x: pub.x, y: pub.y, kid, alg: 'ES256', use: 'sig' } };
  }
  return ca;
}
