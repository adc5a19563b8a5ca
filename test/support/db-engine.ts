/**
 * Test-only: a database engine (srv/db MySqlEngine or PostgresEngine) between a client and a
 * fake database, for what a real database does not show on demand (login conversations,
 * connection counts, cancels and kills). Gives:
 * - `dbServerTls()`: a real db CA and a server certificate for 127.0.0.1 signed by it;
 * - `FakeDbServer`: the fake database's plumbing (listen on port 0, track sockets, TLS with a
 *   client certificate required); each protocol's test writes only its conversation;
 * - `startEngineProxy()`: the proxy's side, where every connection is a `DbSession` of alice
 *   served by the engine;
 * - `pgCancelRequest()`: a PostgreSQL CancelRequest written byte by byte from the protocol
 *   document (not with the code under test).
 * A test double (the real databases are in test/db/*.e2e.test.ts). Who may import: `*.test.ts`.
 */
import { generateKeyPairSync } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type Server, type Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import type { DbResource } from '@warden/api';
import { type AccessDecision, makeIdentity } from '../../packages/server/src/access';
import { MemoryAuditLog } from '../../packages/server/src/audit';
import { MemoryBackend } from '../../packages/server/src/backend';
import { CertAuthorities } from '../../packages/server/src/ca';
import { systemClock } from '../../packages/server/src/clock';
import {
  type DbEngine,
  DbSession,
  dbCertIssuer,
  type StreamReader,
  UpstreamCredentials,
} from '../../packages/server/src/srv/db';

export const quietLogger = { debug() {}, info() {}, warn() {}, error() {} };

/** A PostgreSQL CancelRequest: length 16, code 80877102, then the process id and secret key. */
export function pgCancelRequest(processId: number, secretKey: number): Buffer {
  const b = Buffer.alloc(16);
  b.writeInt32BE(16, 0);
  b.writeInt32BE(80877102, 4);
  b.writeInt32BE(processId, 8);
  b.writeInt32BE(secretKey, 12);
  return b;
}

export interface FakeDbTls {
  key: string;
  cert: string;
  ca: string[];
}

/** A db CA in a memory backend and a server certificate (127.0.0.1) signed by it. */
export async function dbServerTls(): Promise<{ cas: CertAuthorities; tls: FakeDbTls }> {
  const backend = new MemoryBackend({ clock: systemClock });
  const cas = await CertAuthorities.init({ backend, clusterName: 'unit', clock: systemClock });
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const { certPem } = await cas.issueDbServerCert({ ipAddresses: ['127.0.0.1'], publicKey });
  const key = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  return { cas, tls: { key, cert: certPem, ca: cas.tlsCertPems('db') } };
}

/** A fake database's listener; `serve` speaks the protocol on each accepted socket. */
export abstract class FakeDbServer {
  server!: Server;
  port = 0;
  /** TCP connections accepted (logins, cancel requests and kills alike). */
  connections = 0;
  readonly open = new Set<Socket>();

  constructor(readonly tls: FakeDbTls) {}

  protected abstract serve(sock: Socket): Promise<void>;

  async start(): Promise<void> {
    this.server = createServer((s) => {
      this.connections++;
      this.open.add(s);
      s.on('close', () => this.open.delete(s));
      s.on('error', () => undefined);
      void this.serve(s).catch(() => s.destroy());
    });
    this.server.listen(0, '127.0.0.1');
    await once(this.server, 'listening');
    this.port = (this.server.address() as { port: number }).port;
  }

  /**
   * TLS as the server after the protocol's plain-text request was read through `plain`:
   * bytes read ahead (the client's TLS hello may share a chunk with its request) go back
   * into the socket; a client certificate from the db CA is required.
   */
  protected async startTls(sock: Socket, plain: StreamReader): Promise<TLSSocket> {
    const rest = plain.release();
    if (rest.length) sock.unshift(rest);
    const tls = new TLSSocket(sock, {
      isServer: true,
      key: this.tls.key,
      cert: this.tls.cert,
      ca: this.tls.ca,
      requestCert: true,
      rejectUnauthorized: true,
    });
    tls.on('error', () => undefined);
    await once(tls, 'secure');
    return tls;
  }

  close(): void {
    for (const s of this.open) s.destroy();
    this.server.close();
  }
}

export const ALLOWED: AccessDecision = { allowed: true, deviceTrustMode: 'off', matchedRoles: ['dev'] };

export interface EngineProxy {
  readonly port: number;
  readonly audit: MemoryAuditLog;
  /** The session of the latest connection. */
  readonly lastSession: DbSession | undefined;
  /** Resolves when the latest connection's `engine.serve` returned. */
  readonly served: Promise<void> | undefined;
  close(): void;
}

/**
 * Listens on port 0; every connection is a DbSession of alice (role dev) to `db`, served by
 * `engine`, decided by `decide` (default: allowed), with upstream certificates from `cas`.
 */
export async function startEngineProxy(opts: {
  engine: DbEngine;
  cas: CertAuthorities;
  db: DbResource;
  decide?: () => AccessDecision;
}): Promise<EngineProxy> {
  const audit = new MemoryAuditLog({ clock: systemClock });
  const credentials = new UpstreamCredentials({ issuer: dbCertIssuer(opts.cas), clock: systemClock });
  const checker = { checkAccess: opts.decide ?? (() => ALLOWED) };
  const proxied = new Set<Socket>();
  let lastSession: DbSession | undefined;
  let served: Promise<void> | undefined;
  const server = createServer((sock) => {
    proxied.add(sock);
    const session = new DbSession(
      {
        stream: sock,
        db: opts.db,
        identity: makeIdentity({ user: 'alice', roles: ['dev'] }),
        clientAddr: '127.0.0.1',
      },
      { clock: systemClock, audit, logger: quietLogger, checker, credentials },
    );
    lastSession = session;
    served = opts.engine.serve(sock, session).finally(() => {
      sock.destroy();
      void session.ended();
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as { port: number }).port,
    audit,
    get lastSession() {
      return lastSession;
    },
    get served() {
      return served;
    },
    close() {
      for (const s of proxied) s.destroy();
      server.close();
    },
  };
}
