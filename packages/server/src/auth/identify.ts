/**
 * Identify at the proxy: turns a client certificate that TLS verified against the user CA
 * into the caller's identity (refusing locked users, roles and devices), and issues and
 * recognises the admin identity `warden start` writes for `wctl` on the auth host.
 * Internal to `auth/`; the public surface is `auth/index.ts`.
 */
import { createHash, generateKeyPairSync, X509Certificate } from 'node:crypto';
import { type DbCertRoute, spkiFromKey, WardenError } from '@warden/api';
import {
  type AccessChecker,
  findLockInForce,
  type Identity,
  lockedError,
  lockMessage,
  lockTargets,
  makeIdentity,
} from '../access';
import type { AuthDeps } from './deps';

/**
 * The admin identity: `warden start` writes it for `wctl` on the auth host. Only the current
 * one works: issuing a new one (at start, at each refresh, on SIGHUP) revokes the one it
 * replaces (issue 15 item 11: the old ones stayed valid for their whole 24 h).
 */
export const ADMIN_USER = '@admin';
const ADMIN_CERTS = '/admin_identities/';
const ADMIN_TTL_MS = 24 * 60 * 60 * 1000;

export interface IdentifierOptions extends Pick<AuthDeps, 'clock' | 'backend' | 'services' | 'cas'> {
  /**
   * The live access checker (the proxy's): when given, `identify` — called for every API
   * request and tunnel — asks it (locks from the watch-fed view; in `locking_mode: strict` a
   * view stale beyond the bound refuses too) instead of listing locks from the backend.
   */
  access?: Pick<AccessChecker, 'lockReason'>;
}

/** Most verified certificates remembered (the oldest is forgotten first). */
export const MAX_VERIFIED_CERTS = 10_000;

interface Verified {
  identity: Identity;
  /** The database a database certificate (`wsh db login`) is for; undefined on login certificates. */
  db: DbCertRoute | undefined;
  notBefore: number;
  notAfter: number;
  /** The admin identity: still asked for on every use whether it is the current one. */
  admin?: true;
}

/** Freezes an identity and what it holds (it is shared by every use of its certificate). */
function frozen(identity: Identity): Identity {
  for (const v of Object.values(identity)) if (v !== null && typeof v === 'object') Object.freeze(v);
  for (const v of Object.values(identity.traits)) Object.freeze(v);
  return Object.freeze(identity);
}

export class Identifier {
  readonly #o: IdentifierOptions;
  /**
   * Identities of user certificates verified before, by SHA-256 of the DER, within their
   * validity: verifying and parsing one costs milliseconds of CPU (a signature check and two
   * X.509 parsers), and a client opening connections (a MySQL pool, `wsh proxy db` per
   * connection) shows the same certificate each time. The lock check is never cached, nor
   * whether an admin identity is the current one (a replaced one stops working at once).
   */
  readonly #verified = new Map<string, Verified>();
  #verifications = 0;

  constructor(o: IdentifierOptions) {
    this.#o = o;
  }

  /** Certificates verified and parsed so far (tests, metrics); hits of the cache are not counted. */
  get verifications(): number {
    return this.#verifications;
  }

  /** The verified identity of `certDer` (from the cache while it is valid), or the admin's. */
  async #identityOf(certDer: Buffer, now: number): Promise<Pick<Verified, 'identity' | 'db'>> {
    const fingerprint = createHash('sha256').update(certDer).digest('hex');
    const hit = this.#verified.get(fingerprint);
    if (hit && now >= hit.notBefore && now <= hit.notAfter) {
      if (hit.admin) await this.#currentAdmin(fingerprint);
      return hit;
    }
    if (hit) this.#verified.delete(fingerprint);
    this.#verifications++;
    // The CA parses the bytes itself: anything that is not a certificate is BAD_CERTIFICATE.
    const parsed = this.#o.cas.verifyUserTlsCert(certDer, now);
    if (parsed.app)
      throw new WardenError(
        'WARDEN_ERR_BAD_CERTIFICATE',
        `this is an app certificate for "${parsed.app.app}": it works for that app only; use your \`wsh login\` certificate`,
      );
    const x509 = new X509Certificate(certDer);
    const validity = { notBefore: Date.parse(x509.validFrom), notAfter: Date.parse(x509.validTo) };
    if (parsed.user === ADMIN_USER) {
      // Verified and parsed once; whether it is the current one is asked on every use.
      await this.#currentAdmin(fingerprint);
      const admin: Verified = {
        identity: frozen(makeIdentity({ user: ADMIN_USER, admin: true })),
        db: undefined,
        ...validity,
        admin: true,
      };
      this.#remember(fingerprint, admin);
      return admin;
    }
    const identity = frozen(
      makeIdentity({
        user: parsed.user,
        roles: parsed.roles,
        logins: parsed.logins,
        traits: parsed.traits,
        ...(parsed.kind === 'bot' ? { kind: 'bot' as const } : {}),
        ...(parsed.device ? { device: parsed.device } : {}),
        cert: {
          publicKeyDer: spkiFromKey(x509.publicKey),
          notAfter: new Date(Date.parse(x509.validTo)),
        },
      }),
    );
    const db = parsed.db ? Object.freeze({ ...parsed.db }) : undefined;
    this.#remember(fingerprint, { identity, db, ...validity });
    return { identity, db };
  }

  #remember(fingerprint: string, verified: Verified): void {
    if (this.#verified.size >= MAX_VERIFIED_CERTS) this.#verified.delete(this.#verified.keys().next().value!);
    this.#verified.set(fingerprint, verified);
  }

  /** Refuses an admin identity that is not the current one (a newer one replaced it). */
  async #currentAdmin(fingerprint: string): Promise<void> {
    if (!(await this.#o.backend.get(ADMIN_CERTS + fingerprint))) {
      throw new WardenError(
        'WARDEN_ERR_BAD_CERTIFICATE',
        'this admin identity is not valid any more (warden replaced it at a refresh or restart): run the command again on the auth host, which reads the current one from the data dir',
      );
    }
  }

  /** Refuses the caller's locks (`identify`'s check), else returns. */
  async #checkLocks(identity: Identity, now: number): Promise<void> {
    // A lock on the device of a trusted-device certificate refuses it like a lock on the user.
    if (this.#o.access) {
      const why = this.#o.access.lockReason(identity);
      if (why) throw lockedError(why);
      return;
    }
    const lock = findLockInForce(await this.#o.services.locks.list(), lockTargets(identity), now);
    if (lock) throw new WardenError('WARDEN_ERR_LOCKED', lockMessage(lock));
  }

  /**
   * Turns a client certificate that TLS verified against the user CA into an identity.
   * `locks: 'caller'` leaves the lock check to a caller that asks `checkAccess` right away
   * (it checks the same locks and more) and audits the refusal (SSH through the proxy).
   */
  async identify(certDer: Buffer, opts: { locks?: 'caller' } = {}): Promise<Identity> {
    const now = this.#o.clock.now();
    const { identity, db } = await this.#identityOf(certDer, now);
    if (db)
      throw new WardenError(
        'WARDEN_ERR_BAD_CERTIFICATE',
        `this is a database certificate for "${db.db}": it works for that database only; use your \`wsh login\` certificate`,
      );
    if (identity.admin) return identity;
    if (opts.locks === 'caller') return identity;
    await this.#checkLocks(identity, now);
    return identity;
  }

  /**
   * Turns a database certificate (`wsh db login`) that TLS verified against the user CA into
   * the identity and the database it is for, with `identify`'s lock check. Any other
   * certificate (a login certificate, an app certificate, the admin identity) is refused.
   */
  async identifyDb(certDer: Buffer): Promise<{ identity: Identity; db: DbCertRoute }> {
    const now = this.#o.clock.now();
    const { identity, db } = await this.#identityOf(certDer, now);
    if (!db || identity.admin)
      throw new WardenError(
        'WARDEN_ERR_BAD_CERTIFICATE',
        'this is not a database certificate: run `wsh db login NAME` and use the certificate it writes (`wsh db config NAME`)',
      );
    await this.#checkLocks(identity, now);
    return { identity, db };
  }

  /**
   * Issues the admin identity (a client key and certificate) and remembers its fingerprint;
   * `replaces` (the certificate it takes over from, PEM) stops working at once. Replicas
   * sharing a backend each replace only their own.
   */
  async issueAdminIdentity(
    opts: { replaces?: string } = {},
  ): Promise<{ certPem: string; keyPem: string; expires: Date }> {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const issued = await this.#o.cas.issueUserCertificates({
      user: ADMIN_USER,
      roles: [],
      logins: [],
      traits: {},
      publicKey,
      ttlMs: ADMIN_TTL_MS,
      now: this.#o.clock.now(),
    });
    const der = new X509Certificate(issued.tlsCert).raw;
    const fingerprint = createHash('sha256').update(der).digest('hex');
    await this.#o.backend.put(
      ADMIN_CERTS + fingerprint,
      JSON.stringify({ expires: issued.notAfter.toISOString() }),
      { ttlMs: ADMIN_TTL_MS },
    );
    if (opts.replaces !== undefined) {
      const old = adminFingerprint(opts.replaces);
      if (old !== undefined && old !== fingerprint) await this.#o.backend.delete(ADMIN_CERTS + old);
    }
    return {
      certPem: issued.tlsCert,
      keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
      expires: issued.notAfter,
    };
  }
}

/** The fingerprint under which an admin certificate (PEM) is recorded; undefined if it does not parse. */
function adminFingerprint(certPem: string): string | undefined {
  try {
    return createHash('sha256').update(new X509Certificate(certPem).raw).digest('hex');
  } catch {
    return undefined;
  }
}
