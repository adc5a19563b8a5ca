/**
 * Databases through the proxy port: TLS connections that negotiate ALPN `warden-db/1`
 * (mTLS with the user's Warden certificate) carry one request line, one answer line, then
 * the database protocol in plaintext inside this TLS tunnel. Clients never dial databases;
 * any PostgreSQL or MySQL client reaches one through `wsh proxy db --tunnel` or
 * `wsh db connect`, which speak this framing for them.
 *
 *   client (wsh)                               proxy                          db_service
 *     │ TLS (ALPN warden-db/1, mTLS) ──────────▶ │                                 │
 *     │ {"db":"orders","db_user":"alice",         │ identify the certificate,       │
 *     │  "db_name":"orders"}\n ────────────────▶ │ find the db                     │
 *     │ ◀── {"ok":true,"db":{…}}\n                │ ── serve(stream, identity) ───▶ │ access check,
 *     │ ◀════════ PostgreSQL / MySQL protocol ══════════════════════════════════════▶ │ then the database
 *   or, before the db is known (bad line, no or bad certificate, unknown db):
 *     │ ◀── {"ok":false,"code":"WARDEN_ERR_…","message":"…"}\n  (then close)
 *   or, for a user who is locked out: `ok`, then the protocol's own error with the lock
 *   message (`refuse`), so psql and mysql print it.
 *
 * `db_user` and `db_name` are optional: the protocol's startup supplies what the line leaves
 * out. The access check itself runs in db_service once the db user is known (every agent
 * enforces authorization); the proxy authenticates, applies the user and role locks that
 * `identify` checks, and routes.
 * Who may import: `bin/` (composition). Tested end to end in `test/db/`.
 */
import type { TLSSocket } from 'node:tls';
import { type DbResource, isWardenError, WardenError } from '@warden/api';
import type { Identity } from '../access';
import type { Logger } from '../log';
import type { DbHandoff } from '../srv/db';
import { clientCertificateDer, readRequestLine, refuseTunnel } from './tunnel-line';

export interface DbTunnelOptions {
  /** Turns a verified client certificate into an identity (`AuthServer.identify`). */
  identify(certDer: Buffer): Promise<Identity>;
  /** Finds a `db` resource by name (NOT_FOUND otherwise). */
  findDb(name: string): Promise<DbResource | undefined>;
  /** db_service; undefined when no db_service runs behind this proxy. */
  handoff: DbHandoff | undefined;
  logger: Logger;
}

/** What the client learns about the database it reached. */
export function dbInfo(db: DbResource) {
  return { name: db.metadata.name, protocol: db.spec.protocol, labels: { ...(db.metadata.labels ?? {}) } };
}

const NAME = /^[^\s\p{Cc}]{1,253}$/u;

function parseRequest(line: string): { db: string; dbUser?: string; dbName?: string } {
  let req: { db?: unknown; db_user?: unknown; db_name?: unknown };
  try {
    req = JSON.parse(line) as typeof req;
  } catch {
    throw new WardenError('WARDEN_ERR_BAD_PARAMETER', 'malformed database request line');
  }
  if (req === null || typeof req !== 'object' || typeof req.db !== 'string' || !NAME.test(req.db)) {
    throw new WardenError('WARDEN_ERR_BAD_PARAMETER', 'the database request needs "db"');
  }
  const opt = (v: unknown, what: string): string | undefined => {
    if (v === undefined || v === null || v === '') return undefined;
    if (typeof v !== 'string' || !NAME.test(v))
      throw new WardenError('WARDEN_ERR_BAD_PARAMETER', `invalid ${what} in the database request`);
    return v;
  };
  const dbUser = opt(req.db_user, 'db_user');
  const dbName = opt(req.db_name, 'db_name');
  return { db: req.db, ...(dbUser ? { dbUser } : {}), ...(dbName ? { dbName } : {}) };
}

export class DbTunnels {
  readonly #o: DbTunnelOptions;

  constructor(o: DbTunnelOptions) {
    this.#o = o;
  }

  /** Handles one TLS connection that negotiated DB_ALPN. */
  handle(socket: TLSSocket): void {
    readRequestLine(
      socket,
      (line, rest) => this.#open(socket, line, rest),
      (e) => this.#answerError(socket, e),
    );
  }

  async #open(socket: TLSSocket, line: string, rest: Buffer): Promise<void> {
    const der = clientCertificateDer(
      socket,
      'databases through the proxy need a valid Warden client certificate; run `wsh login`',
    );
    const req = parseRequest(line);
    let identity: Awaited<ReturnType<DbTunnelOptions['identify']>> | undefined;
    let locked: WardenError | undefined;
    try {
      identity = await this.#o.identify(der);
    } catch (e) {
      if (!isWardenError(e, 'WARDEN_ERR_LOCKED')) throw e;
      locked = e;
    }
    if (identity?.admin)
      throw new WardenError('WARDEN_ERR_ACCESS_DENIED', 'the admin identity cannot connect to databases');
    const db = await this.#o.findDb(req.db);
    if (!db) {
      throw new WardenError(
        'WARDEN_ERR_NOT_FOUND',
        `database "${req.db}" not found; \`wsh db ls\` lists the databases you can reach`,
      );
    }
    const handoff = this.#o.handoff;
    if (!handoff) {
      throw new WardenError(
        'WARDEN_ERR_NOT_IMPLEMENTED',
        `no db_service serves database "${req.db}" behind this proxy`,
      );
    }
    socket.write(`${JSON.stringify({ ok: true, db: dbInfo(db) })}\n`);
    if (rest.length) socket.unshift(rest);
    const clientAddr = socket.remoteAddress?.replace(/^::ffff:/, '') ?? 'unknown';
    if (locked || !identity) {
      handoff.refuse({ stream: socket, db, reason: locked?.message ?? 'access denied', clientAddr });
      return;
    }
    // Plain data across the hand-off (the X.509 key stays here).
    const { cert: _cert, ...handed } = identity;
    handoff.serve({
      stream: socket,
      db,
      identity: { ...handed, clientAddr },
      ...(req.dbUser ? { dbUser: req.dbUser } : {}),
      ...(req.dbName ? { dbName: req.dbName } : {}),
      clientAddr,
    });
  }

  #answerError(socket: TLSSocket, e: unknown): void {
    refuseTunnel(socket, e, this.#o.logger, 'database tunnel');
  }
}
