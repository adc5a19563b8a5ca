/**
 * Databases straight at the proxy, without `wsh` in the data path (as `tsh db login` + a
 * native client): `wsh db login NAME` gets a database certificate (the user's identity plus a
 * route extension naming the database, for the key of their login, never outliving it), and
 * psql, pgbench, mysql or a driver present it to the proxy themselves.
 *
 *   PostgreSQL, on the proxy port itself (the first bytes tell it from TLS, `proxyFrontDoor`):
 *     │ SSLRequest (00 00 00 08 04 d2 16 2f) ─▶ │ 'S'  (a GSSENCRequest first: 'N')
 *     │ TLS, client certificate = the database certificate ═▶ │ identify it, find the db
 *     │ StartupMessage … ══════════════════════════════════════▶ db_service (engine): access
 *                                                               check, audit, locks
 *   MySQL, on `proxy_service.mysql_listen_addr` (the server speaks first: its own listener):
 *     │ ◀── greeting (CLIENT_SSL) │ SSLRequest ─▶ │ TLS as above │ HandshakeResponse ═▶ engine
 *
 * Refusals before the database is known (no, expired or forged certificate; a login or app
 * certificate; a lock; an unknown database; the wrong port for its protocol) reach the
 * client as the protocol's own error, so psql and mysql print them. The route in the
 * certificate picks the database: a certificate for one database cannot reach another.
 * Who may import: `bin/` (composition). Tested end to end in `test/db/`.
 */
import { createPublicKey, constants as cryptoConstants } from 'node:crypto';
import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import {
  createServer as createTlsServer,
  type TLSSocket,
  type TlsOptions,
  type Server as TlsServer,
} from 'node:tls';
import {
  type CertIdentity,
  type DbCertRoute,
  type DbProtocol,
  type DbResource,
  isWardenError,
  type rpc,
  WardenError,
} from '@warden/api';
import {
  type AccessChecker,
  accessDeniedError,
  type Identity,
  routeCertAuditEvent,
  routeCertIdentity,
} from '../access';
import { type AuditLog, writeAuditEvent } from '../audit';
import type { Logger } from '../log';
import { type DbHandoff, dbTarget, type MySqlGreeted, mysqlTlsOpening } from '../srv/db';

/**
 * The ALPN protocol libpq (17 and later) offers in its TLS ClientHello. With
 * `sslnegotiation=direct` it starts TLS at once, without an SSLRequest: the proxy's TLS
 * server routes this ALPN to `DbDirect.handle` (and must select it: libpq insists).
 */
export const POSTGRES_ALPN = 'postgresql';

/** PostgreSQL's SSLRequest and GSSENCRequest (length 8, codes 80877103 and 80877104). */
const PG_SSL_REQUEST = Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]);
const PG_GSSENC_REQUEST = Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x30]);
/** The head of a CancelRequest (length 16, code 80877102), then the process id and secret key. */
const PG_CANCEL_HEAD = Buffer.from([0, 0, 0, 16, 0x04, 0xd2, 0x16, 0x2e]);

export interface DbDirectOptions {
  /** A database certificate into the identity and its route (`AuthServer.identifyDb`); throws to refuse. */
  identifyDb(certDer: Buffer): Promise<{ identity: Identity; db: DbCertRoute }>;
  /** Finds a `db` resource by name. */
  findDb(name: string): Promise<DbResource | undefined>;
  /** db_service; undefined when no db_service runs behind this proxy. */
  handoff: DbHandoff | undefined;
  checker: Pick<AccessChecker, 'checkAccess'>;
  /** `CertAuthorities.issueDbCert`. */
  issueDbCert(req: {
    identity: CertIdentity & { db: DbCertRoute };
    publicKey: ReturnType<typeof createPublicKey>;
    notAfter: Date;
  }): Promise<{ certPem: string; notAfter: Date }>;
  audit: AuditLog;
  logger: Logger;
  /** Where native clients of each protocol connect (for `wsh db login`'s answer). */
  endpoints: Partial<Record<DbProtocol, { host: string; port: number }>>;
}

function notADatabaseCertificate(peer: boolean, why: string | Error | null | undefined): string {
  return peer
    ? `Warden: the client certificate was refused (${String(why ?? 'not from the user CA')}); run \`wsh db login NAME\` for a fresh one`
    : 'Warden: no client certificate; connect with the database certificate of `wsh db login NAME` (`wsh db config NAME` prints how)';
}

export class DbDirect {
  readonly #o: DbDirectOptions;

  constructor(o: DbDirectOptions) {
    this.#o = o;
  }

  /** Where `protocol`'s native clients connect, when served. */
  endpoint(protocol: DbProtocol): { host: string; port: number } | undefined {
    return this.#o.endpoints[protocol];
  }

  /**
   * `wsh db login NAME`: a database certificate for the caller's key. Refused (and audited)
   * when the caller's roles do not allow the db user (and database) asked for; a missing
   * trusted device only warns (the connection is refused then, with the reason).
   */
  async login(identity: Identity, req: rpc.DbLoginRequestBody): Promise<rpc.DbLoginResponse> {
    if (identity.admin)
      throw new WardenError('WARDEN_ERR_ACCESS_DENIED', 'the admin identity cannot connect to databases');
    if (!identity.cert)
      throw new WardenError('WARDEN_ERR_NOT_LOGGED_IN', 'a database login needs your Warden certificate');
    const db = await this.#o.findDb(req.db);
    if (!db)
      throw new WardenError(
        'WARDEN_ERR_NOT_FOUND',
        `database "${req.db}" not found; \`wsh db ls\` lists the databases you can reach`,
      );
    const warnings: string[] = [];
    if (req.db_user !== undefined) {
      const d = this.#o.checker.checkAccess<'db'>(identity, dbTarget(db), {
        dbUser: req.db_user,
        dbName: req.db_name,
      });
      if (!d.allowed) {
        if (d.step !== 'device_trust') {
          await this.#audit(identity, db, req, undefined, d.reason);
          throw accessDeniedError(d);
        }
        warnings.push(
          `${d.reason}: this login has no trusted device, so connections to "${req.db}" will be refused until you log in on an enrolled device.`,
        );
      }
    }
    const route: DbCertRoute = {
      db: db.metadata.name,
      ...(req.db_user !== undefined ? { dbUser: req.db_user } : {}),
      ...(req.db_name !== undefined ? { dbName: req.db_name } : {}),
    };
    const issued = await this.#o.issueDbCert({
      identity: { ...routeCertIdentity(identity), db: route },
      publicKey: createPublicKey({ key: identity.cert.publicKeyDer, format: 'der', type: 'spki' }),
      notAfter: identity.cert.notAfter,
    });
    await this.#audit(identity, db, req, issued.notAfter);
    const endpoint = this.endpoint(db.spec.protocol);
    return {
      cert_pem: issued.certPem,
      expires: issued.notAfter.toISOString(),
      db: { name: db.metadata.name, protocol: db.spec.protocol },
      ...(req.db_user !== undefined ? { db_user: req.db_user } : {}),
      ...(req.db_name !== undefined ? { db_name: req.db_name } : {}),
      ...(endpoint ? { endpoint } : {}),
      ...(warnings.length ? { warnings } : {}),
    };
  }

  async #audit(
    identity: Identity,
    db: DbResource,
    req: rpc.DbLoginRequestBody,
    expires: Date | undefined,
    error?: string,
  ): Promise<void> {
    const resource = {
      kind: 'db',
      name: db.metadata.name,
      ...(db.metadata.labels ? { labels: { ...db.metadata.labels } } : {}),
    };
    const asked = {
      ...(req.db_user !== undefined ? { db_user: req.db_user } : {}),
      ...(req.db_name !== undefined ? { db_name: req.db_name } : {}),
    };
    // No database certificate unaudited: a cert.create the log refuses throws.
    await writeAuditEvent(
      this.#o.audit,
      this.#o.logger,
      routeCertAuditEvent(identity, { type: 'db', resource, asked }, { expires, error }),
    );
  }

  /**
   * libpq's plain CancelRequest at the proxy port (no TLS, so no certificate): passed to
   * db_service, which cancels the statement of the session that was given this key, if any.
   */
  cancel(key: { processId: number; secretKey: number }, clientAddr: string): void {
    this.#o.handoff?.cancel?.({ protocol: 'postgres', ...key, clientAddr });
  }

  /**
   * A native client's TLS connection (handshake done) for `protocol`: identify its database
   * certificate and hand it to db_service, or refuse it in the protocol's own words.
   */
  handle(socket: TLSSocket, protocol: DbProtocol, greeted?: MySqlGreeted): void {
    socket.setNoDelay(true);
    socket.on('error', () => socket.destroy());
    this.#open(socket, protocol, greeted).catch((e) => {
      this.#o.logger.error({ err: e }, 'direct database connection failed');
      socket.destroy();
    });
  }

  async #open(socket: TLSSocket, protocol: DbProtocol, greeted: MySqlGreeted | undefined): Promise<void> {
    const handoff = this.#o.handoff;
    if (!handoff) {
      socket.destroy();
      return;
    }
    const clientAddr = socket.remoteAddress?.replace(/^::ffff:/, '') ?? 'unknown';
    const refuse = (reason: string, user?: string) =>
      handoff.refuse({
        stream: socket,
        protocol,
        reason,
        clientAddr,
        ...(user ? { user } : {}),
        ...(greeted ? { greeted } : {}),
      });
    // The X509Certificate form: only the DER is needed here (see db-tunnel.ts).
    const peer = socket.getPeerX509Certificate();
    if (!socket.authorized || !peer?.raw) {
      refuse(notADatabaseCertificate(peer !== undefined, socket.authorizationError));
      return;
    }
    let who: { identity: Identity; db: DbCertRoute };
    try {
      who = await this.#o.identifyDb(peer.raw);
    } catch (e) {
      if (!isWardenError(e)) throw e;
      refuse(`Warden: ${e.message}`);
      return;
    }
    const db = await this.#o.findDb(who.db.db);
    if (!db) {
      refuse(`Warden: database "${who.db.db}" not found`, who.identity.user);
      return;
    }
    if (db.spec.protocol !== protocol) {
      refuse(
        `Warden: database "${who.db.db}" is a ${db.spec.protocol} database; this port serves ${protocol} (\`wsh db config ${who.db.db}\` prints where to connect)`,
        who.identity.user,
      );
      return;
    }
    // Plain data across the hand-off (the X.509 key stays here).
    const { cert: _cert, ...handed } = who.identity;
    handoff.serve({
      stream: socket,
      db,
      identity: { ...handed, clientAddr },
      ...(who.db.dbUser !== undefined ? { dbUser: who.db.dbUser } : {}),
      ...(who.db.dbName !== undefined ? { dbName: who.db.dbName } : {}),
      clientAddr,
      ...(greeted ? { greeted } : {}),
    });
  }
}

/** A TLS server that never listens: connections are handed to it after their opening. */
function tlsServerFor(tls: TlsOptions, onSecure: (socket: TLSSocket) => void, logger: Logger): TlsServer {
  const server = createTlsServer(tls, onSecure);
  server.on('tlsClientError', (e, socket) => {
    logger.debug({ err: e, addr: socket.remoteAddress }, 'TLS handshake failed (direct database client)');
    socket.destroy();
  });
  return server;
}

export interface FrontDoorOptions {
  /** The proxy's TLS server (ALPN, SNI, HTTP…): every connection that is not PostgreSQL's. */
  tls: TlsServer;
  /**
   * Serves PostgreSQL clients after their SSLRequest, and their plain CancelRequests; absent:
   * no PostgreSQL on this port.
   */
  postgres?: { direct: Pick<DbDirect, 'handle' | 'cancel'>; tls: TlsOptions };
  /** How long a connection may take to send its first bytes (the TLS handshake timeout). */
  timeoutMs: number;
  logger: Logger;
}

/**
 * The proxy port's listener: a TLS ClientHello (or anything but PostgreSQL's requests) goes to
 * the proxy's TLS server as before; a PostgreSQL SSLRequest is answered 'S' and its TLS goes
 * to the direct database path (a GSSENCRequest first is answered 'N', as servers without
 * GSSAPI do). The first bytes are read once per connection; after that the TLS server reads
 * the socket itself.
 */
export function proxyFrontDoor(o: FrontDoorOptions): NetServer {
  const pg =
    o.postgres &&
    tlsServerFor(
      // libpq 17 offers ALPN `postgresql` after its SSLRequest too; older ones offer none.
      // No stateless session tickets: libpq never resumes a session (it turns tickets off
      // itself), and OpenSSL encodes, decodes and encrypts the session twice per connection to
      // make the two TLS 1.3 tickets it sends by default (~0.3 ms of CPU per connection, ~4 %
      // of its set-up). With SSL_OP_NO_TICKET it announces bare session ids instead.
      {
        ...o.postgres.tls,
        ALPNProtocols: [POSTGRES_ALPN],
        secureOptions: (o.postgres.tls.secureOptions ?? 0) | cryptoConstants.SSL_OP_NO_TICKET,
      },
      (socket) => o.postgres!.direct.handle(socket, 'postgres'),
      o.logger,
    );
  // No Nagle on the proxy port: an API answer or a tunnel's reply leaves in several small writes,
  // and with Nagle the second waits for the client's delayed ACK (~40 ms per RPC; the device
  // step of `wsh login` went from 22 to 58 ms when this listener came in without it).
  const server = createNetServer({ noDelay: true }, (socket) => {
    let buffered: Buffer = Buffer.alloc(0);
    const timer = setTimeout(() => socket.destroy(), o.timeoutMs);
    // A connection cut before its first bytes (shutdown's deadline) must not leave the timer
    // keeping the process alive for the rest of the handshake timeout.
    socket.once('close', () => clearTimeout(timer));
    const onError = () => socket.destroy();
    const handTo = (to: TlsServer, rest: Buffer) => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('error', onError);
      socket.pause();
      if (rest.length) socket.unshift(rest);
      to.emit('connection', socket);
    };
    const onData = (chunk: Buffer) => {
      buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
      for (;;) {
        // TLS starts with 0x16; only PostgreSQL's requests start with a zero byte.
        if (!pg || buffered[0] !== 0) return handTo(o.tls, buffered);
        if (buffered.length < 8) return;
        const head = buffered.subarray(0, 8);
        if (head.equals(PG_SSL_REQUEST)) {
          socket.write('S');
          return handTo(pg, buffered.subarray(8));
        }
        if (head.equals(PG_CANCEL_HEAD)) {
          // libpq's cancel (psql's ^C): the key alone, then the connection closes, as PostgreSQL
          // does, saying nothing either way.
          if (buffered.length < 16) return;
          clearTimeout(timer);
          socket.off('data', onData);
          const key = { processId: buffered.readInt32BE(8), secretKey: buffered.readInt32BE(12) };
          socket.end();
          o.postgres!.direct.cancel(key, socket.remoteAddress?.replace(/^::ffff:/, '') ?? 'unknown');
          return;
        }
        if (!head.equals(PG_GSSENC_REQUEST)) {
          // A plaintext startup: nothing here serves it.
          clearTimeout(timer);
          socket.destroy();
          return;
        }
        socket.write('N');
        buffered = buffered.subarray(8);
        if (buffered.length === 0) return;
      }
    };
    socket.on('error', onError);
    socket.on('data', onData);
  });
  return server;
}

/**
 * The MySQL listener (`proxy_service.mysql_listen_addr`): greets each client announcing TLS,
 * takes its SSLRequest, then TLS with the database certificate, then the direct path.
 */
export function mysqlDirectListener(o: {
  direct: Pick<DbDirect, 'handle'>;
  tls: TlsOptions;
  timeoutMs: number;
  logger: Logger;
}): NetServer {
  // The TLS socket the server makes shows the same peer address and port as the TCP socket the
  // opening was read from: the key from one to the other while the handshake runs.
  const opened = new Map<string, MySqlGreeted>();
  const key = (s: Socket) => `${s.remoteAddress}|${s.remotePort}`;
  const tls = tlsServerFor(
    // No stateless session tickets, as on the PostgreSQL entry: mysql2 and the mysql clients do
    // not resume, and the two TLS 1.3 tickets OpenSSL makes by default cost CPU per connection.
    { ...o.tls, secureOptions: (o.tls.secureOptions ?? 0) | cryptoConstants.SSL_OP_NO_TICKET },
    (socket) => {
      const k = key(socket);
      const greeted = opened.get(k);
      opened.delete(k);
      if (!greeted) {
        socket.destroy();
        return;
      }
      o.direct.handle(socket, 'mysql', greeted);
    },
    o.logger,
  );
  return createNetServer({ noDelay: true }, (socket) => {
    socket.on('error', () => socket.destroy());
    const timer = setTimeout(() => socket.destroy(), o.timeoutMs);
    mysqlTlsOpening(socket).then(
      (greeted) => {
        clearTimeout(timer);
        if (!greeted || socket.destroyed) return;
        const k = key(socket);
        opened.set(k, greeted);
        socket.once('close', () => {
          if (opened.get(k) === greeted) opened.delete(k);
        });
        tls.emit('connection', socket);
      },
      () => {
        clearTimeout(timer);
        socket.destroy();
      },
    );
  });
}
