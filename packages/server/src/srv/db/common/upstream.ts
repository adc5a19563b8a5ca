/**
 * The TLS side of db_service → database: a client certificate from the db CA with CN = the
 * database user (PostgreSQL `cert` auth, MySQL `REQUIRE SUBJECT`), for a key that lives only
 * in this process; the database's server certificate is verified against the db resource's
 * `ca_cert`, else the db CA (`wctl auth sign --format=db` issues database certificates from
 * it), and its name against the host of `spec.uri`.
 *
 * Certificates are cached per db user and renewed when less than a quarter of their life is
 * left. The TLS context (key, certificate, CAs parsed by OpenSSL) is built once per
 * (certificate, CAs) and shared by every connection that logs in as that db user to a
 * database trusting those CAs: building one parses the key and the CA certificates again,
 * which cost more than the rest of a connection's setup and of a lock's teardown. The protocol-specific part (PostgreSQL's SSLRequest, MySQL's SSL request packet)
 * stays in each engine: they call `dialTcp`, do their preamble, then `upgrade`.
 * Internal to `srv/db`; the public surface is `common/index.ts`.
 */
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { isIP, connect as netConnect, type Socket } from 'node:net';
import {
  type ConnectionOptions,
  createSecureContext,
  type SecureContext,
  type TLSSocket,
  connect as tlsConnect,
} from 'node:tls';
import { type DbResource, WardenError } from '@warden/api';
import type { Clock } from '../../../clock';

/** What db_service needs from the db CA (the auth service's CertAuthorities in process). */
export interface DbCertIssuer {
  issueClientCert(req: { dbUser: string; publicKey: KeyObject; ttlMs: number }): Promise<{
    certPem: string;
    notAfter: Date;
  }>;
  /** The db CA's certificates (PEM). */
  caPems(): string[];
}

/**
 * A DbCertIssuer over the CA object of `ca/` (structural, so this folder does not depend on
 * the CA's internals).
 *
 * @example
 *   const issuer = dbCertIssuer(cas);
 */
export function dbCertIssuer(cas: {
  issueDbClientCert(req: { dbUser: string; publicKey: KeyObject; ttlMs: number }): Promise<{
    certPem: string;
    notAfter: Date;
  }>;
  tlsCertPems(type: 'db'): string[];
}): DbCertIssuer {
  return {
    issueClientCert: (req) => cas.issueDbClientCert(req),
    caPems: () => cas.tlsCertPems('db'),
  };
}

export const DB_CLIENT_CERT_TTL_MS = 60 * 60 * 1000;
const CONNECT_TIMEOUT_MS = 10_000;

/** "host:port" → parts (IPv6 in brackets). */
export function splitUri(uri: string): { host: string; port: number } {
  const i = uri.lastIndexOf(':');
  return { host: uri.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(uri.slice(i + 1)) };
}

/** Most TLS contexts kept per db user (one per distinct set of trusted CAs). */
const MAX_CONTEXTS_PER_USER = 16;

/** A TLS context for one client certificate and one set of trusted CAs. */
interface ContextEntry {
  certPem: string;
  ca: readonly string[];
  context: SecureContext;
  /** The last TLS session each database (host:port) gave this context, for resumption. */
  sessions: Map<string, Buffer>;
}

/** TLS options for one upstream connection; `onSession` keeps the database's session ticket. */
export type UpstreamTlsOptions = ConnectionOptions & { onSession?(session: Buffer): void };

export class UpstreamCredentials {
  readonly #issuer: DbCertIssuer;
  readonly #clock: Clock;
  readonly #ttlMs: number;
  readonly #key: { privateKey: KeyObject; publicKey: KeyObject };
  /** The private key in PEM, exported once (OpenSSL's context wants it in this form). */
  readonly #keyPem: string;
  readonly #certs = new Map<string, Promise<{ certPem: string; notAfter: Date }>>();
  /** db user → CAs (a resource's own `ca_cert`, or the db CA) → context. */
  readonly #contexts = new Map<string, Map<string, ContextEntry>>();
  #contextsBuilt = 0;

  constructor(o: { issuer: DbCertIssuer; clock: Clock; ttlMs?: number }) {
    this.#issuer = o.issuer;
    this.#clock = o.clock;
    this.#ttlMs = o.ttlMs ?? DB_CLIENT_CERT_TTL_MS;
    this.#key = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    this.#keyPem = this.#key.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  }

  async #cert(dbUser: string): Promise<string> {
    const cached = this.#certs.get(dbUser);
    if (cached) {
      const c = await cached.catch(() => undefined);
      if (c && c.notAfter.getTime() - this.#clock.now() > this.#ttlMs / 4) return c.certPem;
    }
    const fresh = this.#issuer.issueClientCert({
      dbUser,
      publicKey: this.#key.publicKey,
      ttlMs: this.#ttlMs,
    });
    this.#certs.set(dbUser, fresh);
    try {
      return (await fresh).certPem;
    } catch (e) {
      this.#certs.delete(dbUser);
      throw e;
    }
  }

  /**
   * The context for `certPem` trusting `ca`: the cached one while both are unchanged, else a
   * new one (a renewed certificate, a rotated CA, a resource's new `ca_cert`).
   */
  #context(dbUser: string, certPem: string, ca: readonly string[]): ContextEntry {
    const caKey = ca.join('\n');
    let byCa = this.#contexts.get(dbUser);
    if (!byCa) {
      byCa = new Map();
      this.#contexts.set(dbUser, byCa);
    }
    const hit = byCa.get(caKey);
    if (hit && hit.certPem === certPem) return hit;
    const context = createSecureContext({
      cert: certPem,
      key: this.#keyPem,
      ca: [...ca],
      minVersion: 'TLSv1.2',
    });
    this.#contextsBuilt++;
    // Bounded: CAs replaced over time (rotations, edited resources) do not pile up.
    if (!hit && byCa.size >= MAX_CONTEXTS_PER_USER) byCa.delete(byCa.keys().next().value!);
    const entry: ContextEntry = { certPem, ca, context, sessions: new Map() };
    byCa.set(caKey, entry);
    return entry;
  }

  /**
   * TLS options to log in to `db` as `dbUser`: the shared, cached TLS context, and the last
   * session this database gave it (a resumed handshake skips the certificate signature and
   * checks on both sides; a database that does not resume, such as PostgreSQL, does a full
   * one). Sessions belong to their context: a renewed certificate starts afresh.
   */
  async tlsOptions(db: DbResource, dbUser: string): Promise<UpstreamTlsOptions> {
    const { host } = splitUri(db.spec.uri);
    const certPem = await this.#cert(dbUser);
    const ca = db.spec.ca_cert ? [db.spec.ca_cert] : this.#issuer.caPems();
    const entry = this.#context(dbUser, certPem, ca);
    const target = db.spec.uri;
    const session = entry.sessions.get(target);
    return {
      host,
      ...(isIP(host) ? {} : { servername: host }),
      secureContext: entry.context,
      rejectUnauthorized: true,
      minVersion: 'TLSv1.2',
      ...(session ? { session } : {}),
      onSession: (s) => {
        entry.sessions.set(target, s);
      },
    };
  }

  /** How many TLS contexts were built so far (tests, metrics). */
  get contextsBuilt(): number {
    return this.#contextsBuilt;
  }

  toJSON() {
    return { cachedUsers: this.#certs.size, contextsBuilt: this.#contextsBuilt };
  }
}

/** TCP to the database at `uri`; WARDEN_ERR_CONNECTION naming the database when it fails. */
export function dialTcp(db: DbResource): Promise<Socket> {
  const { host, port } = splitUri(db.spec.uri);
  return new Promise((resolve, reject) => {
    const socket = netConnect({ host, port });
    const fail = (why: string) => {
      socket.destroy();
      reject(
        new WardenError(
          'WARDEN_ERR_CONNECTION',
          `cannot reach database "${db.metadata.name}" at ${db.spec.uri}: ${why}`,
        ),
      );
    };
    socket.setTimeout(CONNECT_TIMEOUT_MS, () => fail('timed out'));
    socket.once('error', (e) => fail(e.message));
    socket.once('connect', () => {
      socket.setTimeout(0);
      socket.removeAllListeners('error');
      socket.setNoDelay(true);
      resolve(socket);
    });
  });
}

/** Upgrades a connected socket to TLS with `options`; WARDEN_ERR_CONNECTION on failure. */
export function upgrade(socket: Socket, options: UpstreamTlsOptions, db: DbResource): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const { onSession, ...tlsOptions } = options;
    const tls = tlsConnect({ ...tlsOptions, socket });
    if (onSession) tls.on('session', onSession);
    const fail = (e: Error) => {
      tls.destroy();
      reject(
        new WardenError(
          'WARDEN_ERR_CONNECTION',
          `TLS to database "${db.metadata.name}" at ${db.spec.uri} failed: ${e.message}`,
        ),
      );
    };
    tls.once('error', fail);
    tls.once('secureConnect', () => {
      tls.off('error', fail);
      resolve(tls);
    });
  });
}
