/**
 * The PostgreSQL engine against a fake PostgreSQL (TLS with client certificates from a real
 * db CA), for what a real server does not show: how many connections Warden opens. A lock
 * on an idle session closes it (Terminate, then close) without dialing the database again;
 * a lock on a session whose statement runs sends a CancelRequest on a new connection with
 * the database's own key. The real thing is in test/db/postgres.e2e.test.ts.
 */
import assert from 'node:assert/strict';
import { connect as netConnect, type Socket } from 'node:net';
import { after, before, test } from 'node:test';
import type { DbResource } from '@warden/api';
import {
  dbServerTls,
  type EngineProxy,
  FakeDbServer,
  quietLogger as quiet,
  startEngineProxy,
} from '../../../../../../test/support/db-engine';
import { StreamReader } from '../common';
import { PostgresEngine } from './engine';
import {
  backendKeyData,
  CANCEL_REQUEST_CODE,
  message,
  parseErrorFields,
  parseQuery,
  startupMessage,
} from './protocol';

const DB_KEY = { processId: 4242, secretKey: 777 };

async function readMessage(r: StreamReader): Promise<{ type: string; body: Buffer }> {
  const head = await r.read(5);
  const len = head.readInt32BE(1) - 4;
  return { type: head.toString('latin1', 0, 1), body: len > 0 ? await r.read(len) : Buffer.alloc(0) };
}

const ready = () => message('Z', Buffer.from('I'));

/** A PostgreSQL that speaks just enough: SSLRequest, TLS, startup, simple queries, cancel. */
class FakePostgres extends FakeDbServer {
  cancels: { processId: number; secretKey: number }[] = [];
  /** Sessions that ended with the client's Terminate message. */
  terminated = 0;
  queries: string[] = [];

  protected async serve(sock: Socket): Promise<void> {
    const plain = new StreamReader(sock);
    await plain.read(8); // SSLRequest
    sock.write('S');
    const tls = await this.startTls(sock, plain);
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
}

let fake: FakePostgres;
let proxy: EngineProxy;
let engine: PostgresEngine;

before(async () => {
  const { cas, tls } = await dbServerTls();
  fake = new FakePostgres(tls);
  await fake.start();
  engine = new PostgresEngine({ logger: quiet });
  const db: DbResource = {
    kind: 'db',
    version: 'v3',
    metadata: { name: 'orders' },
    spec: { protocol: 'postgres', uri: `127.0.0.1:${fake.port}` },
  };
  proxy = await startEngineProxy({ engine, cas, db });
});

after(() => {
  proxy.close();
  fake.close();
});

/** A client logged in through the engine, up to its first ReadyForQuery. */
async function login() {
  const sock = netConnect({ host: '127.0.0.1', port: proxy.port });
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
  proxy.lastSession!.terminate('lock targeting User:"alice" is in force');
  const err = await readMessage(r);
  assert.equal(err.type, 'E');
  assert.equal(parseErrorFields(err.body).M, 'lock targeting User:"alice" is in force');
  await proxy.served;
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
  proxy.lastSession!.terminate('lock targeting User:"alice" is in force');
  const err = await readMessage(r);
  assert.equal(err.type, 'E');
  await proxy.served;
  await until(() => fake.cancels.length > cancels);
  assert.deepEqual(fake.cancels.at(-1), DB_KEY);
  assert.equal(engine.cancelsSent, 1);
});

test('a plain cancel by key (the direct path): our key cancels with the database’s key; an unknown one dials nothing', async () => {
  const sock = netConnect({ host: '127.0.0.1', port: proxy.port });
  sock.on('error', () => undefined);
  const r = new StreamReader(sock);
  sock.write(startupMessage({ user: 'alice', database: 'orders' }));
  let ours: { processId: number; secretKey: number } | undefined;
  for (;;) {
    const m = await readMessage(r);
    if (m.type === 'K') ours = { processId: m.body.readInt32BE(0), secretKey: m.body.readInt32BE(4) };
    if (m.type === 'Z') break;
  }
  assert.ok(ours);
  assert.notDeepEqual(ours, DB_KEY, 'the client never sees the database’s key');
  sock.write(message('Q', Buffer.from('select pg_sleep(61)\0')));
  await until(() => fake.queries.includes('select pg_sleep(61)'));
  const connections = fake.connections;
  const cancels = fake.cancels.length;
  await engine.cancel({ processId: ours.processId, secretKey: ours.secretKey + 1 });
  await engine.cancel({ processId: DB_KEY.processId, secretKey: DB_KEY.secretKey });
  assert.equal(fake.connections, connections, 'a key we did not issue dials nothing');
  await engine.cancel(ours);
  await until(() => fake.cancels.length > cancels);
  assert.deepEqual(fake.cancels.at(-1), DB_KEY);
  sock.destroy();
  await proxy.served;
});
