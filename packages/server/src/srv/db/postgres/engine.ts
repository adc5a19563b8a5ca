/**
 * The PostgreSQL engine of db_service. The client's bytes arrive in plaintext inside the
 * proxy's TLS tunnel (ALPN `warden-db/1`, mTLS with the user's certificate); the database
 * is reached over TLS with a client certificate from the db CA (CN = db user), so the
 * database authenticates Warden with `hostssl … cert` and never sees a password.
 *
 *   client (psql, pg)          proxy + db_service (this engine)               PostgreSQL
 *     │ SSLRequest ──────────────▶ │                                                │
 *     │ ◀────────────────────── 'N' │ (already inside the tunnel's TLS)             │
 *     │ StartupMessage(user, db) ─▶ │ 1. db user/name: request line, else startup   │
 *     │                             │ 2. access check (locks, RBAC, device trust)   │
 *     │ ◀── ErrorResponse 28000 ─── │    denied: reason, e.g. `unauthorized device` │
 *     │                             │ 3. TCP ── SSLRequest ───────────────────────▶ │
 *     │                             │    ◀──────────────────────────────────── 'S'  │
 *     │                             │    TLS (client cert CN=db user) ════════════▶ │
 *     │                             │    StartupMessage(user=db user, database) ──▶ │
 *     │ ◀── AuthenticationOk, ParameterStatus… ◀──────────────────────────────────── │
 *     │ ◀── BackendKeyData(ours) ── │ ◀── BackendKeyData(real): remembered          │
 *     │ ◀── ReadyForQuery ◀──────── │ ◀──────────────────────────────────────────── │
 *     │ Query / Parse/Bind/Execute ▶│ 4. audited (db.query), relayed ─────────────▶ │
 *     │ ◀═══════ results, streamed as they come ═══════════════════════════════════ │
 *     │                             │ 5. lock in force: ErrorResponse 57P01 to the   │
 *     │ ◀── ErrorResponse(lock) ─── │    client at a message boundary; a running     │
 *     │                             │    query is cancelled upstream (an idle one is │
 *     │                             │    just closed: no new dial); both closed      │
 *   Cancel (psql ^C, pg cancel): a new connection through the proxy with
 *     │ CancelRequest(ours) ──────▶ │ same user? map to the real key ── TLS ──────▶ │ CancelRequest(real)
 *   (straight at the proxy port without TLS, libpq's usual cancel: `cancel`, the key alone)
 *
 * Internal to `srv/db/postgres`; tested by `engine.test.ts` (a fake PostgreSQL) and end to
 * end in `test/db/` (a real PostgreSQL 15, psql and the `pg` driver).
 */
import { randomInt } from 'node:crypto';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { isWardenError, WardenError } from '@warden/api';
import type { Logger } from '../../../log';
import type { DbEngine, DbSession } from '../common';
import { dialTcp, endWith, refuseAtOpening, relay, StreamReader, upgrade } from '../common';
import {
  backendKeyData,
  cancelRequest,
  type ErrorFields,
  errorResponse,
  MAX_STARTUP_LENGTH,
  messageLength,
  PgProtocolError,
  parseBackendKeyData,
  parseBind,
  parseErrorFields,
  parseExecute,
  parseParse,
  parseQuery,
  parseStartupPacket,
  SqlState,
  type StartupPacket,
  sslRequest,
  startupLength,
  startupMessage,
} from './protocol';
import { ClientTap, PgActivity, ServerTap } from './relay';

/** How long a client may take to send its startup packet. */
const STARTUP_TIMEOUT_MS = 30_000;
/** Longest message accepted while logging in to the database. */
const MAX_LOGIN_MESSAGE = 1 << 20;
/** After a lock: how long the client gets to read our error before both sides are cut. */

interface CancelEntry {
  session: DbSession;
  upstream: { processId: number; secretKey: number };
}

/** The BackendKeyData we handed out → the database's real one (and whose it is). */
export class CancelKeys {
  readonly #keys = new Map<string, CancelEntry>();

  issue(entry: CancelEntry): { processId: number; secretKey: number } {
    for (;;) {
      const processId = randomInt(1, 0x7fffffff);
      const secretKey = randomInt(-0x80000000, 0x7fffffff);
      const k = `${processId}:${secretKey}`;
      if (this.#keys.has(k)) continue;
      this.#keys.set(k, entry);
      return { processId, secretKey };
    }
  }

  get(processId: number, secretKey: number): CancelEntry | undefined {
    return this.#keys.get(`${processId}:${secretKey}`);
  }

  delete(key: { processId: number; secretKey: number }): void {
    this.#keys.delete(`${key.processId}:${key.secretKey}`);
  }

  get size(): number {
    return this.#keys.size;
  }
}

function fatal(code: string, message: string, extra: Partial<ErrorFields> = {}): Buffer {
  return errorResponse({ severity: 'FATAL', code, message, ...extra });
}

/**
 * Reads the client's startup: answers SSLRequest and GSSENCRequest with 'N' (the tunnel is
 * already encrypted) and returns the StartupMessage or CancelRequest.
 */
async function readStartup(
  reader: StreamReader,
  stream: Duplex,
): Promise<Extract<StartupPacket, { kind: 'startup' | 'cancel' }>> {
  for (let round = 0; round < 3; round++) {
    const head = await reader.read(4);
    const len = startupLength(head);
    if (len > MAX_STARTUP_LENGTH) throw new PgProtocolError('startup packet too long');
    const packet = parseStartupPacket(Buffer.concat([head, await reader.read(len - 4)]));
    if (packet.kind === 'ssl' || packet.kind === 'gssenc') {
      stream.write('N');
      continue;
    }
    return packet;
  }
  throw new PgProtocolError('too many encryption requests');
}

/** Reads one typed message (header + body) during the login phase. */
async function readMessage(reader: StreamReader): Promise<{ type: string; body: Buffer; raw: Buffer }> {
  const head = await reader.read(5);
  const len = messageLength(head, MAX_LOGIN_MESSAGE);
  const body = len > 0 ? await reader.read(len) : Buffer.alloc(0);
  return { type: head.toString('latin1', 0, 1), body, raw: Buffer.concat([head, body]) };
}

export interface PostgresEngineOptions {
  logger: Logger;
  cancelKeys?: CancelKeys;
}

/** The frontend's Terminate message ('X'). */
const TERMINATE = Buffer.from([0x58, 0, 0, 0, 4]);

export class PostgresEngine implements DbEngine {
  readonly protocol = 'postgres' as const;
  readonly #logger: Logger;
  readonly cancelKeys: CancelKeys;
  /** CancelRequests sent for terminated sessions (tests, metrics). */
  cancelsSent = 0;

  constructor(o: PostgresEngineOptions) {
    this.#logger = o.logger;
    this.cancelKeys = o.cancelKeys ?? new CancelKeys();
  }

  refuse(stream: Duplex, reason: string): Promise<void> {
    return refuseAtOpening(
      stream,
      STARTUP_TIMEOUT_MS,
      (reader) => readStartup(reader, stream),
      (packet) => (packet.kind === 'startup' ? fatal(SqlState.invalidAuthorization, reason) : undefined),
    );
  }

  async serve(stream: Duplex, session: DbSession): Promise<void> {
    // 1. The client's startup.
    const reader = new StreamReader(stream);
    const timer = setTimeout(() => stream.destroy(), STARTUP_TIMEOUT_MS);
    let packet: Extract<StartupPacket, { kind: 'startup' | 'cancel' }>;
    try {
      packet = await readStartup(reader, stream);
    } catch (e) {
      reader.release();
      clearTimeout(timer);
      if (e instanceof PgProtocolError)
        await endWith(stream, fatal(SqlState.protocolViolation, `invalid startup: ${e.message}`));
      return;
    }
    clearTimeout(timer);
    if (packet.kind === 'cancel') {
      reader.release();
      await this.#cancel(packet, session);
      return;
    }
    const params = packet.parameters;
    const dbUser = session.requested.dbUser ?? params.user;
    if (!dbUser) {
      reader.release();
      await endWith(
        stream,
        fatal(
          SqlState.invalidAuthorization,
          'access to db denied: no database user given; use `wsh db login --db-user=NAME` or the client’s user option',
        ),
      );
      return;
    }
    const dbName = session.requested.dbName ?? params.database ?? dbUser;

    // 2. Access check.
    const decision = await session.authorize({ dbUser, dbName });
    if (!decision.allowed) {
      reader.release();
      await endWith(stream, fatal(SqlState.invalidAuthorization, decision.reason));
      return;
    }

    // 3. The database, over TLS with a client certificate for the db user.
    let upstream: TLSSocket;
    try {
      upstream = await this.#dial(session);
    } catch (e) {
      reader.release();
      const message = isWardenError(e) ? e.message : `cannot reach database "${session.db.metadata.name}"`;
      if (!isWardenError(e)) this.#logger.error({ err: e }, 'database dial failed');
      await session.failed(message);
      await endWith(stream, fatal(SqlState.connectionFailure, message));
      return;
    }
    upstream.on('error', () => upstream.destroy());
    const forwarded: Record<string, string> = {};
    for (const [k, v] of Object.entries(params)) if (k !== 'user' && k !== 'database') forwarded[k] = v;
    upstream.write(startupMessage({ ...forwarded, user: dbUser, database: dbName }));

    // 4. Login: relay until ReadyForQuery, swapping the BackendKeyData for ours.
    let issued: { processId: number; secretKey: number } | undefined;
    let upstreamKey: { processId: number; secretKey: number } | undefined;
    const up = new StreamReader(upstream);
    try {
      for (;;) {
        const m = await readMessage(up);
        if (m.type === 'R') {
          const code = m.body.length >= 4 ? m.body.readInt32BE(0) : -1;
          if (code !== 0) {
            throw new WardenError(
              'WARDEN_ERR_CONNECTION',
              `database "${session.db.metadata.name}" asked for a password (authentication method ${code}); ` +
                'configure it for certificate authentication (pg_hba.conf: hostssl … cert)',
            );
          }
          stream.write(m.raw);
        } else if (m.type === 'K') {
          upstreamKey = parseBackendKeyData(m.body);
          issued = this.cancelKeys.issue({ session, upstream: upstreamKey });
          stream.write(backendKeyData(issued.processId, issued.secretKey));
        } else if (m.type === 'E') {
          const fields = parseErrorFields(m.body);
          await session.failed(fields.M ?? 'the database refused the login');
          reader.release();
          up.release();
          upstream.destroy();
          await endWith(stream, m.raw);
          return;
        } else {
          stream.write(m.raw);
          if (m.type === 'Z') break;
        }
      }
    } catch (e) {
      reader.release();
      up.release();
      upstream.destroy();
      const message =
        isWardenError(e) || e instanceof PgProtocolError
          ? (e as Error).message
          : `the database "${session.db.metadata.name}" closed the connection during login`;
      await session.failed(message);
      if (issued) this.cancelKeys.delete(issued);
      await endWith(stream, fatal(SqlState.connectionFailure, message));
      return;
    }
    if (!(await session.started())) {
      reader.release();
      up.release();
      upstream.destroy();
      if (issued) this.cancelKeys.delete(issued);
      await endWith(stream, fatal(SqlState.adminShutdown, session.terminatedBy ?? 'the session was ended'));
      return;
    }

    // 5. Relay, auditing the client's statements.
    const clientRest = reader.release();
    const upstreamRest = up.release();
    try {
      await this.#relay(stream, upstream, session, clientRest, upstreamRest, upstreamKey);
    } finally {
      if (issued) this.cancelKeys.delete(issued);
    }
  }

  #relay(
    client: Duplex,
    upstream: TLSSocket,
    session: DbSession,
    clientRest: Buffer,
    upstreamRest: Buffer,
    upstreamKey: { processId: number; secretKey: number } | undefined,
  ): Promise<void> {
    const statements = new Map<string, string>();
    const portals = new Map<string, { statement: string; parameters: (string | null)[] }>();
    const audit = (type: string, body: Buffer | undefined, length: number) => {
      if (!body) {
        if (type === 'Q' || type === 'P')
          session.query({ query: `<statement of ${length} bytes not recorded>` });
        return;
      }
      try {
        if (type === 'Q') session.query({ query: parseQuery(body) });
        else if (type === 'P') {
          const p = parseParse(body);
          statements.set(p.statement, p.query);
        } else if (type === 'B') {
          const b = parseBind(body);
          portals.set(b.portal, { statement: b.statement, parameters: b.parameters });
        } else if (type === 'E') {
          const { portal } = parseExecute(body);
          const p = portals.get(portal);
          const query = p ? statements.get(p.statement) : undefined;
          session.query({
            query: query ?? '<unknown prepared statement>',
            ...(p ? { parameters: p.parameters } : {}),
            ...(p?.statement ? { statement: p.statement } : {}),
          });
        }
      } catch (e) {
        // The database judges the message; we record that we could not read it.
        this.#logger.debug({ err: e }, 'unreadable client message');
        session.query({ query: `<malformed ${type} message>` });
      }
    };
    const activity = new PgActivity();
    const clientTap = new ClientTap(audit, activity);
    const serverTap = new ServerTap(activity);
    return relay({
      session,
      logger: this.#logger,
      client,
      upstream,
      clientTap,
      serverTap,
      clientRest,
      upstreamRest,
      malformed: {
        client: 'client sent a malformed message; ending the session',
        server: 'database sent a malformed message; ending the session',
      },
      hold: () => session.auditBacklog(),
      terminate: (reason) => {
        serverTap.interrupt(fatal(SqlState.adminShutdown, reason));
      },
      stopUpstream: () => {
        // A statement may be running: cancel it (closing the connection would not stop it).
        // Idle: Terminate and close end the backend, without dialing the database again.
        if (!activity.idle && upstreamKey) {
          this.cancelsSent++;
          void this.#sendCancel(session, upstreamKey);
        } else if (!upstream.writableEnded && !upstream.destroyed) upstream.end(TERMINATE);
      },
    });
  }

  /** TCP, SSLRequest, TLS with the db user's client certificate. */
  async #dial(session: DbSession): Promise<TLSSocket> {
    const tcp = await dialTcp(session.db);
    try {
      tcp.write(sslRequest());
      const r = new StreamReader(tcp);
      let answer: Buffer;
      try {
        answer = await r.read(1);
      } catch (e) {
        r.release();
        throw e;
      }
      // Bytes after the answer and before TLS would be injected into the session.
      if (r.release().length > 0)
        throw new PgProtocolError('the database sent data before the TLS handshake');
      if (answer.toString('latin1') !== 'S') {
        throw new WardenError(
          'WARDEN_ERR_CONNECTION',
          `database "${session.db.metadata.name}" does not accept TLS; turn on ssl with a certificate from \`wctl auth sign --format=db\``,
        );
      }
      return await upgrade(tcp, await session.upstreamTls(), session.db);
    } catch (e) {
      tcp.destroy();
      throw e;
    }
  }

  /**
   * A plain CancelRequest that reached the proxy port without TLS (`DbCancel`): no user to
   * check, the key is the credential (as PostgreSQL does); an unknown key is ignored silently.
   */
  async cancel(key: { processId: number; secretKey: number }): Promise<void> {
    const entry = this.cancelKeys.get(key.processId, key.secretKey);
    if (!entry) return;
    await this.#sendCancel(entry.session, entry.upstream);
  }

  /** A CancelRequest on a new connection: map our key to the database's and pass it on. */
  async #cancel(packet: { processId: number; secretKey: number }, session: DbSession): Promise<void> {
    const entry = this.cancelKeys.get(packet.processId, packet.secretKey);
    // As PostgreSQL does, say nothing either way.
    if (!entry) return;
    if (entry.session.identity.user !== session.identity.user) {
      this.#logger.warn(
        { user: session.identity.user, owner: entry.session.identity.user },
        'cancel request for another user’s session ignored',
      );
      return;
    }
    await this.#sendCancel(entry.session, entry.upstream);
  }

  async #sendCancel(session: DbSession, key: { processId: number; secretKey: number }): Promise<void> {
    try {
      const tls = await this.#dial(session);
      await endWith(tls, cancelRequest(key.processId, key.secretKey));
      tls.destroy();
    } catch (e) {
      this.#logger.warn({ err: e, session: session.id }, 'could not pass a cancel request to the database');
    }
  }
}
