/**
 * The MySQL engine of db_service (MariaDB and MySQL). The client's bytes arrive in plaintext
 * inside the proxy's TLS tunnel (ALPN `warden-db/1`, mTLS with the user's certificate), so
 * inside the tunnel the engine is the server: it greets, ignores any password (the identity
 * is the Warden certificate), checks access, and only then logs in to the database over TLS
 * with a client certificate from the db CA (CN = db user; the account is
 * `REQUIRE SUBJECT '/CN=<db user>/O=<cluster>'` without a password).
 *
 *   client (mysql, mysql2)         proxy + db_service (this engine)              MariaDB / MySQL
 *     │ ◀── HandshakeV10 (seq 0) ── │ mysql_native_password, our connection id,      │
 *     │                             │ no SSL (the tunnel is TLS already)             │
 *     │ HandshakeResponse41 (1) ──▶ │ 1. db user/name: request line, else response;  │
 *     │                             │    the password, if any, is ignored            │
 *     │                             │ 2. access check (locks, RBAC, device trust)    │
 *     │ ◀── ERR 1045 28000 (2) ──── │    denied: reason, e.g. `unauthorized device`  │
 *     │                             │ 3. TCP ◀──────────────────── HandshakeV10 (0)  │
 *     │                             │    SSLRequest (1) ──────────────────────────▶  │
 *     │                             │    TLS (client cert CN=db user) ═════════════▶ │
 *     │                             │    HandshakeResponse41(db user, db, no pwd) (2)▶│
 *     │                             │    ◀── [AuthSwitch → empty answer] ◀── OK (n)  │
 *     │ ◀── OK (2, the database's)  │                                                │
 *     │ COM_QUERY / COM_STMT_* (0) ▶│ 4. audited (db.query), relayed ─────────────▶  │
 *     │ ◀═══════ results, streamed as they come, sequence ids untouched ══════════════ │
 *     │ COM_CHANGE_USER ──────────▶ │    refused here (ERR 1235): never relayed      │
 *     │ KILL QUERY <our id> ──────▶ │    same Warden user: rewritten to the real id ▶│
 *     │ COM_QUIT, nothing running ▶ │ 6. not relayed: COM_RESET_CONNECTION …  ─────▶ │
 *     │                             │    the connection waits for the next session   │
 *     │                             │    of this db user and schema (step 3 skipped; │
 *     │                             │    docs/mysql-connection-pool.md)              │
 *     │                             │ 5. lock in force: ERR 1927 70100 (next seq) to │
 *     │ ◀── ERR(lock message) ───── │    the client at a packet boundary; a thread   │
 *     │                             │    running a statement is killed (an idle one  │
 *     │                             │    gets COM_QUIT: no new login); both closed   │
 *
 * Internal to `srv/db/mysql`; tested by `engine.test.ts` (a fake MySQL server) and end to
 * end in `test/db/` (a real MariaDB, the `mysql` client and the `mysql2` driver).
 */
import { randomInt } from 'node:crypto';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { isWardenError, WardenError } from '@warden/api';
import type { Logger } from '../../../log';
import type { DbEngine, DbSession } from '../common';
import { dialTcp, endWith, refuseAtOpening, relay, StreamReader, upgrade } from '../common';
import { MySqlActivity } from './activity';
import {
  Cap,
  Command,
  comQuery,
  DEFAULT_CHARSET,
  ErrorCode,
  type ErrPacket,
  errPacket,
  type HandshakeV10,
  handshakeResponse,
  handshakeV10,
  MAX_HANDSHAKE_PAYLOAD,
  MySqlProtocolError,
  NATIVE_PASSWORD,
  OFFERED_CAPABILITIES,
  packet,
  packetHeader,
  parseAuthSwitch,
  parseComQuery,
  parseComStmtExecute,
  parseComStmtPrepare,
  parseErr,
  parseHandshakeResponse,
  parseHandshakeV10,
  parsePrepareOk,
  SERVER_STATUS_AUTOCOMMIT,
  sslRequest,
} from './protocol';
import { ClientTap, type ClientTapHandler, type CommandAction, type SeqState, ServerTap } from './relay';

/** How long a client may take to answer our greeting. */
const HANDSHAKE_TIMEOUT_MS = 30_000;
/** How long logging in to the database may take. */
const LOGIN_TIMEOUT_MS = 15_000;
/** After a lock: how long the client gets to read our error before both sides are cut. */
/** What the greeting announces until a database has told us its own version. */
export const DEFAULT_SERVER_VERSION = '8.0.0-Warden';
/**
 * Capabilities whose absence on the database would change what the client reads after the
 * login (result sets, OK packets): the database must have every one the client chose.
 */
const WIRE_FORMAT =
  Cap.PROTOCOL_41 |
  Cap.LONG_FLAG |
  Cap.TRANSACTIONS |
  Cap.MULTI_STATEMENTS |
  Cap.MULTI_RESULTS |
  Cap.PS_MULTI_RESULTS |
  Cap.SESSION_TRACK |
  Cap.DEPRECATE_EOF;
/** Auth plugins whose answer for an account without a password is known. */
const EMPTY_ANSWER: Record<string, Buffer> = {
  mysql_native_password: Buffer.alloc(0),
  caching_sha2_password: Buffer.from([0]),
  sha256_password: Buffer.from([0]),
};
const KILL = /^\s*KILL\s+((?:(?:HARD|SOFT)\s+)?(?:(?:CONNECTION|QUERY)\s+)?)(\d{1,10})\s*;?\s*$/i;

interface IdEntry {
  session: DbSession;
  /** The database's thread id, once logged in. */
  upstream?: number;
}

/**
 * The connection ids our greetings hand out → the session and the database's real thread
 * id, so that `KILL QUERY <id>` (what `mysql` sends on ^C, on a new connection) reaches the
 * right thread, and only for the same Warden user.
 */
export class ConnectionIds {
  readonly #ids = new Map<number, IdEntry>();

  /**
   * A fresh id for `session`, far above the small ids databases count from; `wanted` (the id a
   * greeting sent before the session existed already announced) when it is free.
   */
  issue(session: DbSession, wanted?: number): number {
    if (wanted !== undefined && !this.#ids.has(wanted)) {
      this.#ids.set(wanted, { session });
      return wanted;
    }
    for (;;) {
      const id = randomInt(0x40000000, 0x7fffffff);
      if (this.#ids.has(id)) continue;
      this.#ids.set(id, { session });
      return id;
    }
  }

  setUpstream(id: number, threadId: number): void {
    const e = this.#ids.get(id);
    if (e) e.upstream = threadId;
  }

  get(id: number): IdEntry | undefined {
    return this.#ids.get(id);
  }

  delete(id: number): void {
    this.#ids.delete(id);
  }

  get size(): number {
    return this.#ids.size;
  }
}

/** The database refused (an ERR packet during its login): shown to the client as it is. */
class UpstreamRefused extends Error {
  constructor(readonly err: ErrPacket) {
    super(err.message);
  }
}

/** Reads one packet (header + payload up to `max`). */
async function readPacket(reader: StreamReader, max: number): Promise<{ seq: number; payload: Buffer }> {
  const { length, seq } = packetHeader(await reader.read(4));
  if (length > max) throw new MySqlProtocolError(`packet of ${length} bytes during the handshake`);
  return { seq, payload: length > 0 ? await reader.read(length) : Buffer.alloc(0) };
}

/** 20 bytes of scramble in 1..127, as MySQL makes them (clients treat NUL as an end). */
function scramble(): Buffer {
  const b = Buffer.alloc(20);
  for (let i = 0; i < b.length; i++) b[i] = randomInt(1, 128);
  return b;
}

interface ClientHello {
  seq: number;
  capabilities: number;
  maxPacketSize: number;
  charset: number;
  user: string;
  database?: string;
  attributes?: [string, string][];
}

interface Upstream {
  socket: TLSSocket;
  threadId: number;
  serverVersion: string;
  /** The database's final OK payload (its status flags and session state go to the client). */
  ok: Buffer;
  rest: Buffer;
  /** What the login negotiated with the database. */
  capabilities: number;
  tcp: Socket;
  /** What the SSLRequest (and so the login) asked for. */
  ssl: SslParams;
  /** Taken from the pool: logged in and reset for an earlier session (`MySqlEngine#pool`). */
  reused?: boolean;
  /** When the database accepted the login (ms, `Date.now()`): the pool's lifetime counts from it. */
  loggedInAt: number;
}

/** What the SSLRequest told the database (it reads the login's capabilities from it). */
interface SslParams {
  capabilities: number;
  maxPacketSize: number;
  charset: number;
}

/** A database connection greeted and upgraded to TLS with the db user's certificate, not logged in. */
interface Opened {
  tcp: Socket;
  tls: TLSSocket;
  greeting: HandshakeV10;
  ssl: SslParams;
}

/** A connection made ahead, waiting for the next login of its db user (`MySqlEngine#makeSpare`). */
interface Spare extends Opened {
  /** Stops its expiry and its close listeners (it is being used, or closed). */
  forget(): void;
}

/**
 * How long a connection made ahead waits for a client before it is closed unused: well within
 * MariaDB's and MySQL's `connect_timeout` (10 s by default), after which the database would
 * drop it with "Bad handshake".
 */
export const SPARE_IDLE_MS = 3000;

/** Connections made ahead are per database (and its address) and db user. */
function spareKey(session: DbSession): string {
  return `${session.db.metadata.name}\n${session.db.spec.uri}\n${session.dbUser ?? ''}`;
}

/** The capabilities, packet size and character set of the login `hello` asks for from a database that greeted with `greeting`. */
function sslParams(session: DbSession, hello: Omit<ClientHello, 'seq'>, greeting: HandshakeV10): SslParams {
  let caps = (hello.capabilities & greeting.capabilities) | Cap.PROTOCOL_41 | Cap.SSL;
  caps |= greeting.capabilities & (Cap.SECURE_CONNECTION | Cap.PLUGIN_AUTH);
  if (session.dbName !== undefined && greeting.capabilities & Cap.CONNECT_WITH_DB)
    caps |= Cap.CONNECT_WITH_DB;
  else caps &= ~Cap.CONNECT_WITH_DB;
  return { capabilities: caps, maxPacketSize: hello.maxPacketSize, charset: hello.charset };
}

/**
 * How long a logged-in connection waits in the pool for the next session before it is closed
 * (COM_QUIT): a connection lives while sessions keep coming, and never idles long enough to
 * meet the database's `wait_timeout` (8 h by default) or to hold a thread through a quiet hour.
 */
export const POOL_IDLE_MS = 30_000;
/** Most idle logged-in connections kept per pool key (`poolKey`). */
export const POOL_MAX_IDLE = 16;
/**
 * How long a logged-in connection may serve sessions, from its login (pgbouncer's
 * `server_lifetime`). The database applies an account's global privileges, its locked or
 * dropped state and its certificate at the login: a REVOKE, an `ALTER USER … ACCOUNT LOCK` or a
 * `DROP USER` reaches a pooled connection only when it is replaced, so it is replaced at least
 * this often, however busy its key (each release restarts only the idle time).
 */
export const POOL_MAX_LIFETIME_MS = 5 * 60_000;

/**
 * Logged-in connections are shared by sessions of the same database (name and address), db
 * user, default schema and login parameters (the client's capabilities, packet size and
 * character set: the database fixed them at the login). Never across db users or schemas.
 */
function poolKey(session: DbSession, hello: Omit<ClientHello, 'seq'>): string | undefined {
  if (session.dbName === undefined) return undefined;
  return `${spareKey(session)}\n${session.dbName}\n${hello.capabilities}:${hello.maxPacketSize}:${hello.charset}`;
}

/** What of a `db` resource a connection depends on: a change discards its pooled connections. */
function specOf(session: DbSession): string {
  return JSON.stringify(session.db.spec);
}

/** A logged-in connection between sessions. */
interface Pooled {
  up: Upstream;
  spec: string;
  /** Stops its expiry and its close listeners (it is being used, or closed). */
  forget(): void;
}

/**
 * Parks an idle database connection: it no longer keeps the process alive, and `drop` runs at
 * the first of `idleMs` passing or one of `events` on `socket`. Returns `forget`, which undoes
 * all of it (the connection is being used, or closed).
 */
function park(
  tcp: Socket,
  socket: TLSSocket,
  idleMs: number,
  events: readonly string[],
  drop: () => void,
): () => void {
  tcp.unref();
  const timer = setTimeout(drop, idleMs);
  timer.unref();
  for (const event of events) socket.on(event, drop);
  return () => {
    clearTimeout(timer);
    for (const event of events) socket.off(event, drop);
    tcp.ref();
  };
}

function closeOpened(o: Opened): void {
  o.tls.destroy();
  o.tcp.destroy();
}

export interface MySqlEngineOptions {
  logger: Logger;
  connectionIds?: ConnectionIds;
  /**
   * How long a connection made ahead for the next login of a db user waits (`SPARE_IDLE_MS`
   * by default); 0: none is made (every login dials).
   */
  spareIdleMs?: number;
  /**
   * How long a logged-in connection waits for the next session after a clean end
   * (`POOL_IDLE_MS` by default); 0: no pool (every session's connection is closed at its end).
   */
  poolIdleMs?: number;
  /** How long a logged-in connection may serve sessions (`POOL_MAX_LIFETIME_MS` by default). */
  poolMaxLifetimeMs?: number;
}

/** COM_QUIT, a whole packet. */
const QUIT = packet(0, Buffer.from([Command.QUIT]));
/** COM_RESET_CONNECTION (MariaDB 10.2.4+, MySQL 5.7.3+), a whole packet. */
const RESET_CONNECTION = packet(0, Buffer.from([0x1f]));

/**
 * The rows of a text result set, each row's payload (an ERR throws). `deprecateEof`: no EOF
 * after the column definitions, and an OK (0xfe) ends the rows.
 */
async function readRows(r: StreamReader, deprecateEof: boolean): Promise<Buffer[]> {
  const first = await readPacket(r, MAX_HANDSHAKE_PAYLOAD);
  const columns = first.payload[0] ?? 0;
  if (columns === 0 || columns >= 0xfb) throw new MySqlProtocolError('expected a result set');
  for (let i = 0; i < columns + (deprecateEof ? 0 : 1); i++) await readPacket(r, MAX_HANDSHAKE_PAYLOAD);
  const rows: Buffer[] = [];
  for (;;) {
    const p = await readPacket(r, MAX_HANDSHAKE_PAYLOAD);
    if (p.payload[0] === 0xff) throw new MySqlProtocolError(parseErr(p.payload).message);
    if (p.payload[0] === 0xfe && p.payload.length < 0xffffff) return rows;
    rows.push(p.payload);
  }
}

export class MySqlEngine implements DbEngine {
  readonly protocol = 'mysql' as const;
  readonly #logger: Logger;
  readonly connectionIds: ConnectionIds;
  /** `KILL CONNECTION`s sent for terminated sessions (tests, metrics). */
  killsSent = 0;
  /** Logins that used a connection made ahead (tests, metrics). */
  sparesUsed = 0;
  /** The connection made ahead per database and db user (`spareKey`), and those being made. */
  readonly #spares = new Map<string, Spare>();
  readonly #making = new Set<string>();
  readonly #spareIdleMs: number;
  /** Idle logged-in connections by `poolKey`, most recently released last. */
  readonly #pool = new Map<string, Pooled[]>();
  readonly #poolIdleMs: number;
  readonly #poolMaxLifetimeMs: number;
  /** Sessions that got a pooled connection, and connections put back in the pool (tests, metrics). */
  pooledUsed = 0;
  pooledReleased = 0;
  #closed = false;
  /** Each database's version string, learned at its first login and then announced. */
  readonly #versions = new Map<string, string>();

  constructor(o: MySqlEngineOptions) {
    this.#logger = o.logger;
    this.connectionIds = o.connectionIds ?? new ConnectionIds();
    this.#spareIdleMs = o.spareIdleMs ?? SPARE_IDLE_MS;
    this.#poolIdleMs = o.poolIdleMs ?? POOL_IDLE_MS;
    this.#poolMaxLifetimeMs = o.poolMaxLifetimeMs ?? POOL_MAX_LIFETIME_MS;
  }

  /** Idle logged-in connections in the pool (tests, metrics). */
  get pooledIdle(): number {
    let n = 0;
    for (const list of this.#pool.values()) n += list.length;
    return n;
  }

  #greeting(dbName: string, connectionId: number): Buffer {
    return packet(
      0,
      handshakeV10({
        serverVersion: this.#versions.get(dbName) ?? DEFAULT_SERVER_VERSION,
        connectionId,
        authData: scramble(),
        capabilities: OFFERED_CAPABILITIES,
        charset: DEFAULT_CHARSET,
        status: SERVER_STATUS_AUTOCOMMIT,
        authPlugin: NATIVE_PASSWORD,
      }),
    );
  }

  /**
   * Greets and reads the client's HandshakeResponse41. On malformed input or an SSLRequest,
   * answers with an ERR packet itself and returns undefined.
   */
  async #hello(
    stream: Duplex,
    reader: StreamReader,
    greeting: Buffer | undefined,
  ): Promise<ClientHello | undefined> {
    // No greeting when the proxy's MySQL listener greeted before TLS (`greeted`).
    if (greeting) stream.write(greeting);
    let seq = 1;
    try {
      const p = await readPacket(reader, MAX_HANDSHAKE_PAYLOAD);
      seq = p.seq;
      const r = parseHandshakeResponse(p.payload);
      if ('ssl' in r) {
        await endWith(
          stream,
          errPacket(seq + 1, {
            ...ErrorCode.badHandshake,
            message:
              'the Warden tunnel is already TLS: connect to it without TLS (mysql --skip-ssl, ssl-mode=DISABLED)',
          }),
        );
        return undefined;
      }
      return {
        seq: p.seq,
        capabilities: r.capabilities,
        maxPacketSize: r.maxPacketSize,
        charset: r.charset,
        user: r.user,
        ...(r.database !== undefined ? { database: r.database } : {}),
        ...(r.attributes ? { attributes: r.attributes } : {}),
      };
    } catch (e) {
      if (e instanceof MySqlProtocolError)
        await endWith(
          stream,
          errPacket((seq + 1) & 0xff, { ...ErrorCode.badHandshake, message: `Bad handshake: ${e.message}` }),
        );
      return undefined;
    }
  }

  refuse(stream: Duplex, reason: string, greeted?: { connectionId: number }): Promise<void> {
    return refuseAtOpening(
      stream,
      HANDSHAKE_TIMEOUT_MS,
      // No greeting when the proxy's MySQL listener greeted before TLS.
      (reader) => this.#hello(stream, reader, greeted ? undefined : this.#greeting('', 0)),
      (hello) =>
        hello ? errPacket(hello.seq + 1, { ...ErrorCode.accessDenied, message: reason }) : undefined,
    );
  }

  async serve(stream: Duplex, session: DbSession, greeted?: { connectionId: number }): Promise<void> {
    const connectionId = this.connectionIds.issue(session, greeted?.connectionId);
    try {
      await this.#serve(stream, session, connectionId, greeted !== undefined);
    } finally {
      this.connectionIds.delete(connectionId);
    }
  }

  async #serve(stream: Duplex, session: DbSession, connectionId: number, greeted: boolean): Promise<void> {
    // 1. Greeting and the client's handshake response.
    const reader = new StreamReader(stream);
    const timer = setTimeout(() => stream.destroy(), HANDSHAKE_TIMEOUT_MS);
    let hello: ClientHello | undefined;
    try {
      hello = await this.#hello(
        stream,
        reader,
        greeted ? undefined : this.#greeting(session.db.metadata.name, connectionId),
      );
    } catch {
      hello = undefined;
    } finally {
      clearTimeout(timer);
    }
    if (!hello) {
      reader.release();
      return;
    }
    const replySeq = (hello.seq + 1) & 0xff;
    const refuse = async (e: ErrPacket) => {
      reader.release();
      await endWith(stream, errPacket(replySeq, e));
    };
    const dbUser = session.requested.dbUser ?? (hello.user || undefined);
    if (!dbUser) {
      await refuse({
        ...ErrorCode.accessDenied,
        message:
          'access to db denied: no database user given; use `wsh db login --db-user=NAME` or the client’s user option',
      });
      return;
    }
    const dbName = session.requested.dbName ?? hello.database;

    // 2. Access check.
    const decision = await session.authorize({ dbUser, dbName });
    if (!decision.allowed) {
      await refuse({ ...ErrorCode.accessDenied, message: decision.reason });
      return;
    }

    // 3. The database, over TLS with a client certificate for the db user.
    let up: Upstream;
    const login: Omit<ClientHello, 'seq'> = {
      ...hello,
      capabilities: hello.capabilities & OFFERED_CAPABILITIES,
      attributes: [...(hello.attributes ?? []), ['warden_user', session.identity.user]],
    };
    try {
      up = await this.#login(session, login, true);
    } catch (e) {
      let err: ErrPacket;
      if (e instanceof UpstreamRefused) err = e.err;
      else {
        const message =
          isWardenError(e) || e instanceof MySqlProtocolError
            ? e.message
            : `cannot reach database "${session.db.metadata.name}"`;
        if (!isWardenError(e) && !(e instanceof MySqlProtocolError))
          this.#logger.error({ err: e }, 'database login failed');
        err = { ...ErrorCode.connectionFailure, message };
      }
      await session.failed(err.message);
      await refuse(err);
      return;
    }
    this.#versions.set(session.db.metadata.name, up.serverVersion);
    this.connectionIds.setUpstream(connectionId, up.threadId);
    if (!up.reused) up.socket.on('error', () => up.socket.destroy());
    // The OK goes out while `session.start` is being made durable (its fsync overlaps the
    // client's next round trip); nothing the client sends is read, let alone relayed, before
    // the start is recorded. If it is not (the audit log refused it, or a lock came), the
    // session is already terminated and the relay only tells the client, at its first command.
    // The OK is written first: checking and queueing the event is work the client need not wait for.
    stream.write(packet(replySeq, up.ok));
    await session.started();

    // 4. Relay, auditing the client's statements.
    const kept = await this.#relay(stream, up, session, reader.release(), { seq: replySeq, from: 'server' });
    // 5. A clean end (COM_QUIT, nothing running, not terminated): the connection is reset for the next session.
    if (kept) void this.#release(session, login, up);
  }

  /**
   * TCP, the database's greeting, SSLRequest, TLS with the db user's client certificate,
   * HandshakeResponse41 without a password, and whatever auth switch the account needs. The
   * first four steps are skipped when a connection made ahead for this db user (`#spares`)
   * fits; `spare` makes the next one once this login succeeded.
   */
  async #login(session: DbSession, hello: Omit<ClientHello, 'seq'>, spare = false): Promise<Upstream> {
    if (spare) {
      const pooled = this.#takePooled(session, hello);
      if (pooled) return pooled;
    }
    const key = spareKey(session);
    const ahead = this.#takeSpare(key, session, hello);
    if (ahead) {
      try {
        const up = await this.#authenticate(session, hello, ahead);
        if (spare) this.#makeSpare(key, session, hello);
        return up;
      } catch (e) {
        // The database refused the login itself: a new connection would be refused too.
        if (e instanceof UpstreamRefused) throw e;
        // Otherwise the spare may have died while it waited (the database's connect_timeout): dial.
        this.#logger.debug({ err: e }, 'a database connection made ahead failed; dialing');
      }
    }
    const up = await this.#authenticate(session, hello, await this.#open(session, hello));
    if (spare) this.#makeSpare(key, session, hello);
    return up;
  }

  /** TCP, the database's greeting (checked), SSLRequest and TLS with the db user's certificate. */
  async #open(session: DbSession, hello: Omit<ClientHello, 'seq'>): Promise<Opened> {
    const db = session.db;
    const tcp = await dialTcp(db);
    const timer = setTimeout(() => tcp.destroy(), LOGIN_TIMEOUT_MS);
    try {
      const plain = new StreamReader(tcp);
      let g: { seq: number; payload: Buffer };
      try {
        g = await readPacket(plain, MAX_HANDSHAKE_PAYLOAD);
      } catch (e) {
        plain.release();
        throw e;
      }
      // Bytes after the greeting and before TLS would be injected into the session.
      if (plain.release().length > 0)
        throw new MySqlProtocolError('the database sent data before the TLS handshake');
      if (g.payload[0] === 0xff) throw new UpstreamRefused(parseErr(g.payload));
      const greeting = parseHandshakeV10(g.payload);
      if (!(greeting.capabilities & Cap.SSL)) {
        throw new WardenError(
          'WARDEN_ERR_CONNECTION',
          `database "${db.metadata.name}" does not accept TLS; start it with ssl_cert, ssl_key and ssl_ca from \`wctl auth sign --format=db\``,
        );
      }
      const missing = hello.capabilities & WIRE_FORMAT & ~greeting.capabilities;
      if (missing !== 0) {
        throw new WardenError(
          'WARDEN_ERR_CONNECTION',
          `database "${db.metadata.name}" (${greeting.serverVersion}) lacks protocol features the client asked for (capabilities 0x${missing.toString(16)}); Warden needs MariaDB 10.2+ or MySQL 5.7+`,
        );
      }
      const ssl = sslParams(session, hello, greeting);
      tcp.write(packet(1, sslRequest(ssl.capabilities, ssl.maxPacketSize, ssl.charset)));
      const tls = await upgrade(tcp, await session.upstreamTls(), db);
      return { tcp, tls, greeting, ssl };
    } catch (e) {
      tcp.destroy();
      throw e;
    } finally {
      clearTimeout(timer);
    }
  }

  /** HandshakeResponse41 without a password over `o`'s TLS, and whatever auth switch the account needs. */
  async #authenticate(session: DbSession, hello: Omit<ClientHello, 'seq'>, o: Opened): Promise<Upstream> {
    const { tcp, tls, greeting, ssl } = o;
    const caps = ssl.capabilities;
    const timer = setTimeout(() => tcp.destroy(), LOGIN_TIMEOUT_MS);
    try {
      const plugin = greeting.authPlugin in EMPTY_ANSWER ? greeting.authPlugin : NATIVE_PASSWORD;
      tls.write(
        packet(
          2,
          handshakeResponse({
            capabilities: caps,
            maxPacketSize: ssl.maxPacketSize,
            charset: ssl.charset,
            user: session.dbUser ?? '',
            authResponse: EMPTY_ANSWER[plugin]!,
            ...(session.dbName !== undefined ? { database: session.dbName } : {}),
            authPlugin: plugin,
            ...(hello.attributes ? { attributes: hello.attributes } : {}),
          }),
        ),
      );
      const r = new StreamReader(tls);
      try {
        for (;;) {
          const p = await readPacket(r, MAX_HANDSHAKE_PAYLOAD);
          const kind = p.payload[0];
          if (kind === 0x00) {
            return {
              socket: tls,
              threadId: greeting.connectionId,
              serverVersion: greeting.serverVersion,
              ok: p.payload,
              rest: r.release(),
              capabilities: caps,
              tcp,
              ssl,
              loggedInAt: Date.now(),
            };
          }
          if (kind === 0xff) throw new UpstreamRefused(parseErr(p.payload));
          if (kind === 0xfe) {
            const sw = parseAuthSwitch(p.payload);
            const answer = EMPTY_ANSWER[sw.plugin];
            if (!answer) throw this.#wantsPassword(session, `authentication plugin ${sw.plugin}`);
            tls.write(packet(p.seq + 1, answer));
          } else if (kind === 0x01 && p.payload[1] === 0x03) {
            // caching_sha2_password: fast authentication succeeded; the OK follows.
          } else if (kind === 0x01) {
            throw this.#wantsPassword(session, 'a password (full authentication)');
          } else {
            throw new MySqlProtocolError(`unexpected packet 0x${(kind ?? 0).toString(16)} during the login`);
          }
        }
      } catch (e) {
        r.release();
        throw e;
      }
    } catch (e) {
      tls.destroy();
      tcp.destroy();
      throw e;
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * The connection made ahead for `key`, if it is alive and its SSLRequest said what this
   * client's login needs (capabilities, packet size, character set): the database reads them
   * from the SSLRequest, so a spare made for another kind of client is not used (it expires).
   */
  #takeSpare(key: string, session: DbSession, hello: Omit<ClientHello, 'seq'>): Opened | undefined {
    const s = this.#spares.get(key);
    if (!s) return undefined;
    const want = sslParams(session, hello, s.greeting);
    if (
      want.capabilities !== s.ssl.capabilities ||
      want.maxPacketSize !== s.ssl.maxPacketSize ||
      want.charset !== s.ssl.charset ||
      (hello.capabilities & WIRE_FORMAT & ~s.greeting.capabilities) !== 0
    )
      return undefined;
    this.#spares.delete(key);
    s.forget();
    this.sparesUsed++;
    return s;
  }

  /**
   * Opens the next connection for `key` in the background (TCP, greeting, SSLRequest, TLS; no
   * login), so that the next client of this db user skips those round trips. One per db user
   * and database; it waits `SPARE_IDLE_MS` for a client, then closes without ever logging in.
   */
  #makeSpare(key: string, session: DbSession, hello: Omit<ClientHello, 'seq'>): void {
    if (this.#spareIdleMs <= 0 || this.#spares.has(key) || this.#making.has(key) || this.#closed) return;
    this.#making.add(key);
    setImmediate(() => {
      this.#open(session, hello).then(
        (o) => {
          this.#making.delete(key);
          if (this.#closed || this.#spares.has(key)) {
            closeOpened(o);
            return;
          }
          const drop = () => {
            if (this.#spares.get(key) === spare) this.#spares.delete(key);
            spare.forget();
            closeOpened(o);
          };
          const spare: Spare = {
            ...o,
            forget: park(o.tcp, o.tls, this.#spareIdleMs, ['close', 'error'], drop),
          };
          this.#spares.set(key, spare);
        },
        (e: unknown) => {
          this.#making.delete(key);
          this.#logger.debug({ err: e }, 'could not open a database connection ahead');
        },
      );
    });
  }

  /**
   * An idle logged-in connection for this session's database, db user, default schema and
   * login parameters (`poolKey`), most recently released first. Only called after the access
   * check allowed the session: a refused client never gets one. Connections logged in for
   * another version of the `db` resource's spec (address, CA) are closed instead.
   */
  #takePooled(session: DbSession, hello: Omit<ClientHello, 'seq'>): Upstream | undefined {
    const key = poolKey(session, hello);
    const list = key === undefined ? undefined : this.#pool.get(key);
    if (!list) return undefined;
    const spec = specOf(session);
    let found: Upstream | undefined;
    while (!found && list.length > 0) {
      const p = list.pop()!;
      p.forget();
      const s = p.up.socket;
      if (p.spec !== spec || s.destroyed || !s.readable || this.#outlived(p.up)) this.#quit(p.up);
      else found = p.up;
    }
    if (list.length === 0) this.#pool.delete(key!);
    if (!found) return undefined;
    this.pooledUsed++;
    return { ...found, rest: Buffer.alloc(0), reused: true };
  }

  /**
   * After a clean end, returns the session's connection to the pool in the state of a fresh
   * login (see docs/mysql-connection-pool.md), or closes it. Pipelined, off every client's path:
   *
   *   COM_RESET_CONNECTION   the database drops the session's state: rolls back, drops temporary
   *                          tables, prepared statements, user variables, locks; session
   *                          variables back to the global ones, the login's character set
   *   COM_INIT_DB <schema>   the default schema of the login (a reset keeps the current one)
   *   SET SESSION …          what the login's capabilities set (IGNORE_SPACE, INTERACTIVE)
   *   SELECT CURRENT_ROLE()  MariaDB keeps a role across the reset: pooled only without one
   *
   * Anything but those answers (an ERR, a role, bytes beyond them) closes the connection.
   */
  async #release(session: DbSession, hello: Omit<ClientHello, 'seq'>, up: Upstream): Promise<void> {
    const key = poolKey(session, hello);
    const list = key === undefined ? undefined : this.#pool.get(key);
    if (
      key === undefined ||
      this.#closed ||
      this.#poolIdleMs <= 0 ||
      (list?.length ?? 0) >= POOL_MAX_IDLE ||
      session.terminatedBy !== undefined ||
      this.#outlived(up)
    ) {
      this.#quit(up);
      return;
    }
    const { socket } = up;
    const timer = setTimeout(() => socket.destroy(), LOGIN_TIMEOUT_MS);
    const r = new StreamReader(socket);
    try {
      const set: string[] = [];
      if (up.ssl.capabilities & Cap.IGNORE_SPACE)
        set.push("sql_mode = CONCAT_WS(',', NULLIF(@@sql_mode, ''), 'IGNORE_SPACE')");
      if (up.ssl.capabilities & Cap.INTERACTIVE) set.push('wait_timeout = @@interactive_timeout');
      socket.write(
        Buffer.concat([
          RESET_CONNECTION,
          packet(0, Buffer.concat([Buffer.from([Command.INIT_DB]), Buffer.from(session.dbName!, 'utf8')])),
          ...(set.length > 0 ? [comQuery(`SET SESSION ${set.join(', ')}`)] : []),
          comQuery('SELECT CURRENT_ROLE()'),
        ]),
      );
      const deprecateEof = (up.capabilities & Cap.DEPRECATE_EOF) !== 0;
      for (let i = 0; i < 2 + (set.length > 0 ? 1 : 0); i++) {
        const p = await readPacket(r, MAX_HANDSHAKE_PAYLOAD);
        if (p.payload[0] !== 0x00) throw new MySqlProtocolError('the connection could not be reset');
      }
      const rows = await readRows(r, deprecateEof);
      if (rows.length !== 1 || rows[0]![0] !== 0xfb) throw new MySqlProtocolError('a role is set');
      if (r.release().length > 0) throw new MySqlProtocolError('unexpected bytes after the reset');
    } catch (e) {
      r.release();
      this.#logger.debug({ err: e, session: session.id }, 'a database connection was not pooled');
      this.#quit(up);
      return;
    } finally {
      clearTimeout(timer);
    }
    if (this.#closed || socket.destroyed || (this.#pool.get(key)?.length ?? 0) >= POOL_MAX_IDLE) {
      this.#quit(up);
      return;
    }
    // An idle pooled connection does not keep the process alive. It is read while it waits, so
    // that the database closing it (restart, wait_timeout) or saying anything at all drops it.
    const drop = () => {
      const l = this.#pool.get(key);
      const at = l?.indexOf(pooled) ?? -1;
      if (at >= 0) l!.splice(at, 1);
      if (l?.length === 0) this.#pool.delete(key);
      pooled.forget();
      this.#quit(up);
    };
    const unpark = park(up.tcp, socket, this.#poolIdleMs, ['close', 'end', 'data'], drop);
    const pooled: Pooled = {
      up,
      spec: specOf(session),
      forget: () => {
        unpark();
        socket.pause();
      },
    };
    socket.resume();
    const l = this.#pool.get(key) ?? [];
    l.push(pooled);
    this.#pool.set(key, l);
    this.pooledReleased++;
  }

  /** The connection logged in `POOL_MAX_LIFETIME_MS` ago or more: it serves no further session. */
  #outlived(up: Upstream): boolean {
    return Date.now() - up.loggedInAt >= this.#poolMaxLifetimeMs;
  }

  /** Ends a logged-in connection politely (COM_QUIT: MariaDB does not count it as aborted). */
  #quit(up: Upstream): void {
    const { socket } = up;
    if (socket.destroyed) return;
    up.tcp.ref();
    socket.end(QUIT);
    setTimeout(() => socket.destroy(), 1000).unref();
  }

  /** Closes the connections made ahead and the pool; none is made after this. */
  close(): void {
    this.#closed = true;
    for (const s of this.#spares.values()) {
      s.forget();
      closeOpened(s);
    }
    this.#spares.clear();
    for (const list of this.#pool.values()) {
      for (const p of list) {
        p.forget();
        this.#quit(p.up);
      }
    }
    this.#pool.clear();
  }

  #wantsPassword(session: DbSession, what: string): WardenError {
    return new WardenError(
      'WARDEN_ERR_CONNECTION',
      `database "${session.db.metadata.name}" asked for ${what} for user "${session.dbUser}"; ` +
        `create the account for certificate authentication: CREATE USER '${session.dbUser}'@'%' REQUIRE SUBJECT '/CN=${session.dbUser}/O=<cluster name>'`,
    );
  }

  /** Resolves true when the session ended cleanly and the connection is kept for the pool (`#release`). */
  async #relay(
    client: Duplex,
    up: Upstream,
    session: DbSession,
    clientRest: Buffer,
    seq: SeqState,
  ): Promise<boolean> {
    const upstream = up.socket;
    const pooling = this.#poolIdleMs > 0 && session.dbName !== undefined;
    let kept = false;
    const activity = new MySqlActivity(up.capabilities);
    const serverTap = new ServerTap(seq, activity);
    const statements = new Map<number, { query: string; params: number; types?: number[] }>();
    let lastPrepared: number | undefined;
    const malformed = (what: string, e: unknown) => {
      // The database judges the command; we record that we could not read it.
      this.#logger.debug({ err: e }, 'unreadable client command');
      session.query({ query: `<malformed ${what}>` });
    };
    const handler: ClientTapHandler = {
      reply: (p) => serverTap.inject(p),
      allowLong: (command) => command !== Command.CHANGE_USER,
      longCommand: (command, length) => {
        if (command === Command.QUERY || command === Command.STMT_PREPARE || command === Command.STMT_EXECUTE)
          session.query({ query: `<statement of ${length} bytes not recorded>` });
      },
      command: (payload): CommandAction => {
        switch (payload[0]) {
          case Command.QUERY: {
            const query = parseComQuery(payload);
            session.query({ query });
            return this.#rewriteKill(query, session);
          }
          case Command.STMT_PREPARE: {
            let query: string;
            try {
              query = parseComStmtPrepare(payload);
            } catch (e) {
              malformed('COM_STMT_PREPARE', e);
              return { kind: 'forward' };
            }
            serverTap.expectAnswer((first) => {
              if (first[0] !== 0) return;
              try {
                const ok = parsePrepareOk(first);
                statements.set(ok.statementId, { query, params: ok.params });
                lastPrepared = ok.statementId;
              } catch (e) {
                this.#logger.debug({ err: e }, 'unreadable COM_STMT_PREPARE answer');
              }
            });
            return { kind: 'forward' };
          }
          case Command.STMT_EXECUTE: {
            try {
              let id = payload.length >= 5 ? payload.readUInt32LE(1) : 0;
              // MariaDB: 0xffffffff means the statement prepared last.
              if (id === 0xffffffff && lastPrepared !== undefined) id = lastPrepared;
              const stmt = statements.get(id);
              const exec = parseComStmtExecute(payload, stmt?.params, stmt?.types);
              if (stmt && exec.types) stmt.types = exec.types;
              session.query({
                query: stmt?.query ?? '<unknown prepared statement>',
                ...(exec.parameters ? { parameters: exec.parameters } : {}),
                statement: String(id),
              });
            } catch (e) {
              malformed('COM_STMT_EXECUTE', e);
            }
            return { kind: 'forward' };
          }
          case Command.STMT_CLOSE:
            if (payload.length >= 5) statements.delete(payload.readUInt32LE(1));
            return { kind: 'forward' };
          case Command.QUIT:
            // Only at rest: a COM_QUIT behind a running statement goes on (the database ends both).
            if (!pooling || !activity.idle) return { kind: 'forward' };
            // Kept from the database: the client is done, the connection may serve the next session.
            setImmediate(() => client.end());
            return { kind: 'end' };
          case Command.CHANGE_USER:
            return {
              kind: 'reply',
              packet: errPacket(1, {
                ...ErrorCode.notSupported,
                message:
                  'changing the database user is not supported through Warden; connect again as the other user',
              }),
            };
          default:
            return { kind: 'forward' };
        }
      },
    };
    const clientTap = new ClientTap(handler, seq, activity);
    await relay({
      session,
      logger: this.#logger,
      client,
      upstream,
      clientTap,
      serverTap,
      clientRest,
      upstreamRest: up.rest,
      malformed: {
        client: 'client sent a malformed packet; ending the session',
        server: 'database stream failed; ending the session',
      },
      hold: () => session.auditBacklog(),
      terminate: (reason) => {
        serverTap.interrupt((s) => errPacket(s, { ...ErrorCode.connectionKilled, message: reason }));
      },
      stopUpstream: () => {
        // A statement may be running: closing the connection would not stop it, KILL does.
        // Idle: COM_QUIT and close end the thread, without logging in to the database again.
        if (!activity.idle) {
          this.killsSent++;
          void this.#kill(session, up.threadId);
        } else if (!upstream.writableEnded && !upstream.destroyed) upstream.end(QUIT);
      },
      keepUpstream: () => {
        kept =
          clientTap.ended &&
          !clientTap.trailing &&
          activity.idle &&
          serverTap.atBoundary &&
          !serverTap.interrupted &&
          session.terminatedBy === undefined &&
          !upstream.destroyed &&
          upstream.readable &&
          !upstream.writableEnded;
        return kept;
      },
    });
    if (kept && session.terminatedBy === undefined) return true;
    // Kept a moment ago, but terminated since: not reused.
    if (kept) this.#quit(up);
    return false;
  }

  /**
   * `KILL [QUERY|CONNECTION] <id>` naming a connection id we handed out to the same Warden
   * user: the database's own thread id instead. Other ids go through unchanged.
   */
  #rewriteKill(query: string, session: DbSession): CommandAction {
    const m = KILL.exec(query);
    if (!m) return { kind: 'forward' };
    const entry = this.connectionIds.get(Number(m[2]));
    if (!entry || entry.upstream === undefined) return { kind: 'forward' };
    if (
      entry.session.identity.user !== session.identity.user ||
      entry.session.db.metadata.name !== session.db.metadata.name
    ) {
      this.#logger.warn(
        { user: session.identity.user, owner: entry.session.identity.user },
        'KILL for another user’s session not mapped',
      );
      return { kind: 'forward' };
    }
    return {
      kind: 'rewrite',
      payload: Buffer.concat([
        Buffer.from([Command.QUERY]),
        Buffer.from(`KILL ${m[1]}${entry.upstream}`, 'utf8'),
      ]),
    };
  }

  /** Ends the database's thread of a terminated session (its running statement with it). */
  async #kill(session: DbSession, threadId: number): Promise<void> {
    let up: Upstream | undefined;
    try {
      up = await this.#login(session, {
        capabilities: OFFERED_CAPABILITIES & ~Cap.CONNECT_ATTRS,
        maxPacketSize: 1 << 24,
        charset: DEFAULT_CHARSET,
        user: session.dbUser ?? '',
      });
      const r = new StreamReader(up.socket);
      up.socket.write(comQuery(`KILL CONNECTION ${threadId}`));
      await readPacket(r, MAX_HANDSHAKE_PAYLOAD).finally(() => r.release());
      await endWith(up.socket, packet(0, Buffer.from([Command.QUIT])));
    } catch (e) {
      this.#logger.warn(
        { err: e, session: session.id },
        'could not end the database thread of a locked session',
      );
    } finally {
      up?.socket.destroy();
    }
  }
}
