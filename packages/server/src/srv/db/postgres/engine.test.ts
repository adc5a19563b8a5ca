/**
 * The PostgreSQL engine against a fake PostgreSQL (TLS with client certificates from a real
 * db CA), for what a real server does not show: how many connections Warden opens. A lock
 * on an idle session closes it (Terminate, then close) without dialing the database again;
 * a lock on a session whose statement runs sends a CancelRequest on a new connection with
 * the database's own key. The real thing is in test/db/postgres.e2e.test.ts.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { once } from 'node:events';
import { createServer, connect as netConnect, type Server, type Socket } from 'node:net';
import { after, before, test } from 'node:test';
import { TLSSocket } from 'node:tls';
import type { DbResource } from '@warden/api';
import { type AccessDecision, makeIdentity } from '../../../access';
import { MemoryAuditLog } from '../../../audit';
import { MemoryBackend } from '../../../backend';
import { CertAuthorities } from '../../../ca';
import { systemClock } from '../../../clock';
import { DbSession, dbCertIssuer, StreamReader, UpstreamCredentials } from '../common';
import { PostgresEngine } from './engine';
import {
  backendKeyData,
  CANCEL_REQUEST_CODE,
  message,
  parseErrorFields,
  parseQuery,
  startupMessage,
} from './protocol';

const quiet = { debug() {}, info() {}, warn() {}, error() {} };
const DB_KEY = { processId: 4242, secretKey: 777 };

async function readMessage(r: StreamReader): Promise<{ type: string; body: Buffer }> {
  const head = await r.read(5);
  const len = head.readInt32BE(1) - 4;
  return { type: head.toString('latin1', 0, 1), body: len > 0 ? await r.read(len) : Buffer.alloc(0) };
}

const ready = () => message('Z', Buffer.from('I'));

/** A PostgreSQL that speaks just enough: SSLRequest, TLS, startup, simple queries, cancel. */
class FakePostgres {
  server!: Server;
  port = 0;
  /** TCP connections accepted (logins and cancel requests alike). */
  connections = 0;
  cancels: { processId: number; secretKey: number }[] = [];
  /** Sessions that ended with the client's Terminate message. */
  terminated = 0;
  queries: string[] = [];
  readonly open = new Set<Socket>();

  constructor(readonly tls: { key: string; cert: string; ca: string[] }) {}

  async start(): Promise<void> {
    this.server = createServer((s) => void this.#serve(s).catch(() => s.destroy()));
    this.server.listen(0, '127.0.0.1');
    await once(this.server, 'listening');
    this.port = (this.server.address() as { port: number }).port;
  }

  async #serve(sock: Socket): Promise<void> {
    this.connections++;
    this.open.add(sock);
    sock.on('close', () => this.open.delete(sock));
    sock.on('error', () => undefined);
    const plain = new StreamReader(sock);
    await plain.read(8); // SSLRequest
    const rest = plain.release();
    if (rest.length) sock.unshift(rest);
    sock.write('S');
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
    const r = new StreamReader(tls);
    const len = (await r.read(4)).readInt32BE(0);
    const startup = await r.read(len - 4);
    if (startup.readInt32BE(0) === CANCEL_REQUEST_CODE) {
      this.cancels.push({ processId: startup.readInt32BE(4), secretKey: startup.readInt32BE(8) });
      tls.end();
      return;
    }
    tls.write(
      Buffer.concat([
        message('R', Buffer.from([0, 0, 0, 0])),
        backendKeyData(DB_KEY.processId, DB_KEY.secretKey),
        ready(),
      ]),
    );
    for (;;) {
      let m: { type: string; body: Buffer };
      try {
        m = await readMessage(r);
      } catch {
        return;
      }
      if (m.type === 'X') {
        this.terminated++;
        tls.end();
        return;
      }
      if (m.type !== 'Q') continue;
      const q = parseQuery(m.body);
      this.queries.push(q);
      // pg_sleep never answers (a statement that runs until cancelled).
      if (!q.startsWith('select pg_sleep'))
        tls.write(Buffer.concat([message('C', Buffer.from('SELECT 1\0')), ready()]));
    }
  }

  close(): void {
    for (const s of this.open) s.destroy();
    this.server.close();
  }
}

let fake: FakePostgres;
let proxy: Server;
let engine: PostgresEngine;
let lastSession: DbSession | undefined;
let served: Promise<void> | undefined;
const proxied = new Set<Socket>();
const ALLOWED: AccessDecision = { allowed: true, deviceTrustMode: 'off', matchedRoles: ['dev'] };

before(async () => {
  const backend = new MemoryBackend({ clock: systemClock });
  const cas = await CertAuthorities.init({ backend, clusterName: 'unit', clock: systemClock });
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const { certPem } = await cas.issueDbServerCert({ ipAddresses: ['127.0.0.1'], publicKey });
  fake = new FakePostgres({
    key: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    cert: certPem,
    ca: cas.tlsCertPems('db'),
  });
  await fake.start();
  const audit = new MemoryAuditLog({ clock: systemClock });
  engine = new PostgresEngine({ logger: quiet });
  const credentials = new UpstreamCredentials({ issuer: dbCertIssuer(cas), clock: systemClock });
  const db: DbResource = {
    kind: 'db',
    version: 'v3',
    metadata: { name: 'orders' },
    spec: { protocol: 'postgres', uri: `127.0.0.1:${fake.port}` },
  };
  proxy = createServer((sock) => {
    proxied.add(sock);
    const session = new DbSession(
      {
        stream: sock,
        db,
        identity: makeIdentity({ user: 'alice', roles: ['dev'] }),
        clientAddr: '127.0.0.1',
      },
      { clock: systemClock, audit, logger: quiet, checker: { checkAccess: () => ALLOWED }, credentials },
    );
    lastSession = session;
    served = engine.serve(sock, session).finally(() => {
      sock.destroy();
      void session.ended();
    });
  });
  proxy.listen(0, '127.0.0.1');
  await once(proxy, 'listening');
});

after(() => {
  for (const s of proxied) s.destroy();
  proxy.close();
  fake.close();
});

/** A client logged in through the engine, up to its first ReadyForQuery. */
async function login() {
  const sock = netConnect({ host: '127.0.0.1', port: (proxy.address() as { port: number }).port });
  sock.on('error', () => undefined);
  const r = new StreamReader(sock);
  sock.write(startupMessage({ user: 'alice', database: 'orders' }));
  const seen: string[] = [];
  for (;;) {
    const m = await readMessage(r);
    seen.push(m.type);
    if (m.type === 'Z') break;
  }
  assert.deepEqual(seen, ['R', 'K', 'Z']);
  return { sock, r };
}

async function until(what: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!what() && Date.now() < end) await new Promise((res) => setTimeout(res, 10));
}

test('a lock on an idle session: FATAL to the client, Terminate upstream, no new connection', async () => {
  const { sock, r } = await login();
  sock.write(message('Q', Buffer.from('select 1\0')));
  assert.equal((await readMessage(r)).type, 'C');
  assert.equal((await readMessage(r)).type, 'Z');
  const connections = fake.connections;
  const terminated = fake.terminated;
  lastSession!.terminate('lock targeting User:"alice" is in force');
  const err = await readMessage(r);
  assert.equal(err.type, 'E');
  assert.equal(parseErrorFields(err.body).M, 'lock targeting User:"alice" is in force');
  await served;
  await until(() => fake.terminated > terminated);
  assert.equal(fake.terminated, terminated + 1);
  assert.equal(fake.connections, connections, 'the database was dialed again');
  assert.equal(fake.cancels.length, 0);
  assert.equal(engine.cancelsSent, 0);
});

test('a lock on a running statement: FATAL to the client and a CancelRequest with the database’s key', async () => {
  const { sock, r } = await login();
  sock.write(message('Q', Buffer.from('select pg_sleep(60)\0')));
  await until(() => fake.queries.includes('select pg_sleep(60)'));
  const cancels = fake.cancels.length;
  lastSession!.terminate('lock targeting User:"alice" is in force');
  const err = await readMessage(r);
  assert.equal(err.type, 'E');
  await served;
  await until(() => fake.cancels.length > cancels);
  assert.deepEqual(fake.cancels.at(-1), DB_KEY);
  assert.equal(engine.cancelsSent, 1);
});
