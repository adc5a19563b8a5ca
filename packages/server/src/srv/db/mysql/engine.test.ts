/**
 * The MySQL engine against a fake MySQL server (TLS with client certificates from a real db
 * CA): the login conversations a real MariaDB does not show on demand (auth switches,
 * caching_sha2 fast auth, plugins that want a password, no TLS, ERR at login), the access
 * refusal before any dial, and a lock on an idle session (ERR to the client, the database's
 * thread killed). The real thing is in test/db/mysql.e2e.test.ts.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, connect as netConnect, type Socket } from 'node:net';
import { after, before, test } from 'node:test';
import type { DbResource } from '@warden/api';
import {
  ALLOWED,
  dbServerTls,
  type EngineProxy,
  FakeDbServer,
  quietLogger as quiet,
  startEngineProxy,
} from '../../../../../../test/support/db-engine';
import type { AccessDecision } from '../../../access';
import { StreamReader } from '../common';
import { MySqlEngine } from './engine';
import {
  Cap,
  Command,
  comQuery,
  errPayload,
  handshakeResponse,
  handshakeV10,
  OFFERED_CAPABILITIES,
  okPayload,
  packet,
  packetHeader,
  parseErr,
  parseHandshakeResponse,
  parseHandshakeV10,
} from './protocol';

async function readPacket(r: StreamReader): Promise<{ seq: number; payload: Buffer }> {
  const { length, seq } = packetHeader(await r.read(4));
  return { seq, payload: length ? await r.read(length) : Buffer.alloc(0) };
}

type Scenario =
  | { kind: 'ok' }
  | { kind: 'err' }
  | { kind: 'switch'; plugin: string; fast?: boolean }
  | { kind: 'full-auth' };

interface Login {
  user: string;
  database: string | undefined;
  authResponse: Buffer;
  attributes: [string, string][];
  cn: unknown;
  capabilities: number;
}

/** A MySQL server that speaks just enough: greeting, SSLRequest, TLS, login, COM_QUERY → OK. */
class FakeMySql extends FakeDbServer {
  ssl = true;
  scenario: Scenario = { kind: 'ok' };
  logins: Login[] = [];
  queries: string[] = [];
  /** Sessions that ended with the client's COM_QUIT. */
  quits = 0;
  answers: Buffer[] = [];

  protected async serve(sock: Socket): Promise<void> {
    sock.write(
      packet(
        0,
        handshakeV10({
          serverVersion: '5.5.5-10.11.0-MariaDB-fake',
          connectionId: 1000 + this.connections,
          authData: Buffer.alloc(20, 0x41),
          capabilities: OFFERED_CAPABILITIES | (this.ssl ? Cap.SSL : 0),
          charset: 45,
          status: 2,
          authPlugin: 'mysql_native_password',
        }),
      ),
    );
    if (!this.ssl) return;
    const plain = new StreamReader(sock);
    await readPacket(plain);
    const tls = await this.startTls(sock, plain);
    const r = new StreamReader(tls);
    const { seq, payload } = await readPacket(r);
    const resp = parseHandshakeResponse(payload);
    if ('ssl' in resp) throw new Error('unexpected SSLRequest');
    this.logins.push({
      user: resp.user,
      database: resp.database,
      authResponse: resp.authResponse,
      attributes: resp.attributes ?? [],
      cn: tls.getPeerCertificate().subject?.CN,
      capabilities: resp.capabilities,
    });
    let next = seq + 1;
    const s = this.scenario;
    if (s.kind === 'err') {
      tls.end(
        packet(
          next,
          errPayload({ code: 1045, sqlState: '28000', message: "Access denied for user 'alice'" }),
        ),
      );
      return;
    }
    if (s.kind === 'switch') {
      tls.write(
        packet(
          next,
          Buffer.concat([
            Buffer.from([0xfe]),
            Buffer.from(`${s.plugin}\0`),
            Buffer.alloc(20, 0x42),
            Buffer.from([0]),
          ]),
        ),
      );
      const answer = await readPacket(r);
      this.answers.push(answer.payload);
      next = answer.seq + 1;
      if (s.fast) tls.write(packet(next++, Buffer.from([0x01, 0x03])));
    }
    if (s.kind === 'full-auth') {
      tls.write(packet(next, Buffer.from([0x01, 0x04])));
      return;
    }
    tls.write(packet(next, okPayload()));
    for (;;) {
      const cmd = await readPacket(r);
      if (cmd.payload[0] === Command.QUIT) {
        this.quits++;
        break;
      }
      const text = cmd.payload.toString('utf8', 1);
      this.queries.push(text);
      if (text === 'SELECT CURRENT_ROLE()') {
        // A result set of one NULL: column count, its definition, (EOF,) the row, its end.
        const eof = resp.capabilities & Cap.DEPRECATE_EOF ? [] : [Buffer.from([0xfe, 0, 0, 2, 0])];
        const parts = [Buffer.from([1]), Buffer.from([3, 0x64, 0x65, 0x66]), ...eof, Buffer.from([0xfb])];
        parts.push(Buffer.from([0xfe, 0, 0, 2, 0, 0, 0]));
        tls.write(Buffer.concat(parts.map((b, i) => packet(i + 1, b))));
      } else if (!text.startsWith('select sleep')) tls.write(packet(1, okPayload()));
    }
    tls.end();
  }
}

let fake: FakeMySql;
let cas: Awaited<ReturnType<typeof dbServerTls>>['cas'];
let dbCa: string;
let shop: DbResource;
let proxy: EngineProxy;
let engine: MySqlEngine;
let decision: AccessDecision = ALLOWED;

before(async () => {
  const made = await dbServerTls();
  cas = made.cas;
  dbCa = made.tls.ca.join('\n');
  fake = new FakeMySql(made.tls);
  await fake.start();
  // No connections made ahead nor pooled here: these tests count the database's connections and
  // COM_QUITs (see the spare and pool tests).
  engine = new MySqlEngine({ logger: quiet, spareIdleMs: 0, poolIdleMs: 0 });
  shop = {
    kind: 'db',
    version: 'v3',
    metadata: { name: 'shop' },
    spec: { protocol: 'mysql', uri: `127.0.0.1:${fake.port}` },
  };
  proxy = await startEngineProxy({ engine, cas, db: shop, decide: () => decision });
});

after(() => {
  proxy.close();
  fake.close();
});

/** A client: reads the greeting, logs in as `user`, returns the answer and the socket. */
async function login(user = 'alice', database = 'orders', o: { port?: number; charset?: number } = {}) {
  const sock = netConnect({ host: '127.0.0.1', port: o.port ?? proxy.port });
  sock.on('error', () => undefined);
  const r = new StreamReader(sock);
  const greeting = parseHandshakeV10((await readPacket(r)).payload);
  sock.write(
    packet(
      1,
      handshakeResponse({
        capabilities:
          Cap.PROTOCOL_41 |
          Cap.SECURE_CONNECTION |
          Cap.PLUGIN_AUTH |
          Cap.CONNECT_WITH_DB |
          Cap.CONNECT_ATTRS |
          Cap.DEPRECATE_EOF |
          Cap.COMPRESS,
        maxPacketSize: 1 << 24,
        charset: o.charset ?? 224,
        user,
        authResponse: Buffer.alloc(20, 9),
        database,
        authPlugin: 'mysql_native_password',
        attributes: [['program_name', 'unit']],
      }),
    ),
  );
  const answer = await readPacket(r);
  return { sock, r, greeting, answer };
}

/** Ends a client's session with COM_QUIT, as a client does, once the proxy has closed it. */
async function quit(c: Awaited<ReturnType<typeof login>>): Promise<void> {
  c.sock.write(packet(0, Buffer.from([Command.QUIT])));
  await once(c.sock, 'close');
}

test('login: greeting without SSL, the db user’s certificate upstream, no password, our OK numbered 2', async () => {
  fake.scenario = { kind: 'ok' };
  const before = fake.logins.length;
  const { sock, r, greeting, answer } = await login();
  assert.equal(greeting.capabilities & Cap.SSL, 0);
  assert.equal(greeting.authPlugin, 'mysql_native_password');
  assert.ok(greeting.connectionId >= 0x40000000);
  assert.equal(answer.seq, 2);
  assert.equal(answer.payload[0], 0);
  const l = fake.logins[before]!;
  assert.equal(l.user, 'alice');
  assert.equal(l.database, 'orders');
  assert.equal(l.cn, 'alice');
  assert.deepEqual(l.authResponse, Buffer.alloc(0));
  assert.deepEqual(l.attributes, [
    ['program_name', 'unit'],
    ['warden_user', 'alice'],
  ]);
  // What we never offered (COMPRESS) is not asked of the database.
  assert.equal(l.capabilities & Cap.COMPRESS, 0);
  assert.ok(l.capabilities & Cap.DEPRECATE_EOF);
  sock.write(comQuery('select 1'));
  assert.equal((await readPacket(r)).seq, 1);
  assert.equal(fake.queries.at(-1), 'select 1');
  sock.end(packet(0, Buffer.from([Command.QUIT])));
  await proxy.served;
  // The next greeting announces the database's own version.
  const again = await login();
  assert.equal(again.greeting.serverVersion, '5.5.5-10.11.0-MariaDB-fake');
  again.sock.destroy();
  await proxy.served;
});

test('auth switch to caching_sha2_password with fast auth: an empty answer, then OK', async () => {
  fake.scenario = { kind: 'switch', plugin: 'caching_sha2_password', fast: true };
  const { sock, answer } = await login();
  assert.equal(answer.payload[0], 0, answer.payload.toString('latin1'));
  assert.deepEqual(fake.answers.at(-1), Buffer.from([0]));
  sock.destroy();
  await proxy.served;
});

test('a database that wants a password or an unknown plugin: ERR saying how to set up the account', async () => {
  for (const scenario of [
    { kind: 'switch', plugin: 'client_ed25519' },
    { kind: 'full-auth' },
  ] as Scenario[]) {
    fake.scenario = scenario;
    const { sock, answer } = await login();
    const err = parseErr(answer.payload);
    assert.equal(answer.seq, 2);
    assert.equal(err.code, 2003);
    assert.match(
      err.message,
      /asked for .* for user "alice".*REQUIRE SUBJECT '\/CN=alice\/O=<cluster name>'/,
    );
    sock.destroy();
    await proxy.served;
  }
  const failed = (await proxy.audit.search({ limit: 1000, order: 'asc' })).filter(
    (e) => e.type === 'session.start' && !e.success,
  );
  assert.ok(failed.some((e) => /client_ed25519/.test(String((e as { error?: string }).error))));
});

test('the database’s own ERR at login reaches the client as it is', async () => {
  fake.scenario = { kind: 'err' };
  const { sock, answer } = await login();
  assert.deepEqual(parseErr(answer.payload), {
    code: 1045,
    sqlState: '28000',
    message: "Access denied for user 'alice'",
  });
  sock.destroy();
  await proxy.served;
});

test('a database without TLS is never sent a login', async () => {
  fake.ssl = false;
  try {
    const before = fake.logins.length;
    const { sock, answer } = await login();
    assert.match(parseErr(answer.payload).message, /does not accept TLS/);
    assert.equal(fake.logins.length, before);
    sock.destroy();
    await proxy.served;
  } finally {
    fake.ssl = true;
  }
});

test('denied access: ERR 1045 28000 with the reason, and the database is not even dialed', async () => {
  decision = {
    allowed: false,
    step: 'device_trust',
    code: 'WARDEN_ERR_ACCESS_DENIED',
    reason: 'unauthorized device',
  };
  try {
    const before = fake.connections;
    const { sock, answer } = await login();
    assert.equal(answer.seq, 2);
    assert.deepEqual(parseErr(answer.payload), {
      code: 1045,
      sqlState: '28000',
      message: 'unauthorized device',
    });
    assert.equal(fake.connections, before);
    sock.destroy();
    await proxy.served;
  } finally {
    decision = ALLOWED;
  }
});

test('a lock on an idle session: ERR 1927 to the client, COM_QUIT upstream, no new login', async () => {
  fake.scenario = { kind: 'ok' };
  const { sock, r, answer } = await login();
  assert.equal(answer.payload[0], 0);
  sock.write(comQuery('select 2'));
  await readPacket(r);
  const connections = fake.connections;
  const quits = fake.quits;
  const kills = engine.killsSent;
  proxy.lastSession!.terminate('lock targeting User:"alice" is in force');
  const err = await readPacket(r);
  assert.deepEqual(parseErr(err.payload), {
    code: 1927,
    sqlState: '70100',
    message: 'lock targeting User:"alice" is in force',
  });
  // Numbered after the database's last answer (sequence id 1).
  assert.equal(err.seq, 2);
  await proxy.served;
  assert.ok(sock.destroyed || (await once(sock, 'close')));
  const until = Date.now() + 5000;
  while (fake.quits === quits && Date.now() < until) await new Promise((res) => setTimeout(res, 20));
  assert.equal(fake.quits, quits + 1);
  assert.equal(fake.connections, connections, 'the database was logged in to again');
  assert.equal(engine.killsSent, kills);
  assert.ok(!fake.queries.some((q) => q.startsWith('KILL')), fake.queries.join('\n'));
});

test('a lock on a running statement: ERR 1927 to the client, the database thread killed', async () => {
  fake.scenario = { kind: 'ok' };
  const { sock, r, answer } = await login();
  assert.equal(answer.payload[0], 0);
  const threadId = 1000 + fake.connections;
  sock.write(comQuery('select sleep(60)'));
  const until = Date.now() + 5000;
  while (!fake.queries.includes('select sleep(60)') && Date.now() < until)
    await new Promise((res) => setTimeout(res, 20));
  const kills = engine.killsSent;
  proxy.lastSession!.terminate('lock targeting User:"alice" is in force');
  const err = await readPacket(r);
  assert.equal(parseErr(err.payload).code, 1927);
  await proxy.served;
  while (!fake.queries.includes(`KILL CONNECTION ${threadId}`) && Date.now() < until)
    await new Promise((res) => setTimeout(res, 20));
  assert.ok(fake.queries.includes(`KILL CONNECTION ${threadId}`), fake.queries.join('\n'));
  assert.equal(engine.killsSent, kills + 1);
});

test('refuse (a locked user known to the proxy): greeting, then ERR 1045 with the reason', async () => {
  const server = createServer((s) => void engine.refuse(s, 'lock targeting User:"bob" is in force'));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  try {
    const sock = netConnect({ host: '127.0.0.1', port: (server.address() as { port: number }).port });
    const r = new StreamReader(sock);
    await readPacket(r);
    sock.write(
      packet(
        1,
        handshakeResponse({
          capabilities: Cap.PROTOCOL_41 | Cap.SECURE_CONNECTION,
          maxPacketSize: 0,
          charset: 45,
          user: 'bob',
          authResponse: Buffer.alloc(0),
        }),
      ),
    );
    const { seq, payload } = await readPacket(r);
    assert.equal(seq, 2);
    assert.deepEqual(parseErr(payload), {
      code: 1045,
      sqlState: '28000',
      message: 'lock targeting User:"bob" is in force',
    });
    sock.destroy();
  } finally {
    server.close();
  }
});

/** Holds every successful `session.start` until `release` (the audit log's commit, slowed down). */
function holdSessionStart(fail?: Error) {
  const emit = proxy.audit.emit.bind(proxy.audit);
  let release!: () => void;
  const released = new Promise<void>((r) => {
    release = r;
  });
  let pending = 0;
  proxy.audit.emit = async (e) => {
    if (e.type !== 'session.start' || e.success === false) return emit(e);
    pending++;
    try {
      await released;
      if (fail) throw fail;
      return await emit(e);
    } finally {
      pending--;
    }
  };
  return {
    get pending() {
      return pending;
    },
    release,
    restore: () => {
      release();
      proxy.audit.emit = emit;
    },
  };
}

test('the OK leaves while session.start is being recorded; the first command waits until it is', async () => {
  fake.scenario = { kind: 'ok' };
  const hold = holdSessionStart();
  try {
    const logged = login();
    const first = await Promise.race([logged, new Promise((r) => setTimeout(r, 2000, 'timeout'))]);
    assert.notEqual(first, 'timeout', 'the OK waited for session.start to be recorded');
    const { sock, r, answer } = await logged;
    assert.equal(answer.payload[0], 0);
    assert.equal(hold.pending, 1, 'session.start is still being recorded');
    sock.write(comQuery('select 43'));
    await new Promise((res) => setTimeout(res, 200));
    assert.ok(!fake.queries.includes('select 43'), 'a command was relayed before session.start was recorded');
    hold.release();
    const ok = await readPacket(r);
    assert.equal(ok.payload[0], 0);
    assert.ok(fake.queries.includes('select 43'));
    sock.destroy();
    await proxy.served;
  } finally {
    hold.restore();
  }
});

test('a session.start the audit log refuses: the first command gets the error, nothing reaches the database', async () => {
  fake.scenario = { kind: 'ok' };
  const hold = holdSessionStart(new Error('could not extend file: No space left on device'));
  try {
    setTimeout(hold.release, 100);
    const { sock, r, answer } = await login();
    assert.equal(answer.payload[0], 0);
    sock.write(comQuery('insert into unaudited values (1)'));
    const err = await readPacket(r);
    assert.equal(parseErr(err.payload).code, 1927);
    assert.match(parseErr(err.payload).message, /the audit log could not record this \(session\.start\)/);
    await proxy.served;
    assert.ok(!fake.queries.includes('insert into unaudited values (1)'), fake.queries.join('\n'));
  } finally {
    hold.restore();
  }
});

/** Polls `cond` every 10 ms for up to 5 s. */
async function until(cond: () => boolean, what: string): Promise<void> {
  const end = Date.now() + 5000;
  while (!cond()) {
    if (Date.now() > end) assert.fail(`never: ${what}`);
    await new Promise((res) => setTimeout(res, 10));
  }
}

/** An engine that makes connections ahead (`spareIdleMs`), behind a proxy of its own. */
async function withSpares(spareIdleMs: number, run: (e: MySqlEngine, p: EngineProxy) => Promise<void>) {
  const e = new MySqlEngine({ logger: quiet, spareIdleMs });
  const p = await startEngineProxy({ engine: e, cas, db: shop });
  try {
    await run(e, p);
  } finally {
    e.close();
    p.close();
  }
}

test('the next login of the same db user goes over a connection made ahead: TLS with its certificate, its own attributes', () =>
  withSpares(5000, async (e, p) => {
    fake.scenario = { kind: 'ok' };
    const connections = fake.connections;
    const first = await login('alice', 'orders', { port: p.port });
    assert.equal(first.answer.payload[0], 0);
    // The login made the next connection in the background: TCP, greeting, SSLRequest, TLS.
    await until(() => fake.connections === connections + 2, 'a connection made ahead');
    const logins = fake.logins.length;
    assert.equal(e.sparesUsed, 0);
    first.sock.destroy();
    const second = await login('alice', 'orders', { port: p.port });
    assert.equal(second.answer.payload[0], 0, 'logged in');
    assert.equal(e.sparesUsed, 1);
    assert.equal(fake.logins.length, logins + 1);
    const last = fake.logins.at(-1)!;
    assert.equal(last.user, 'alice');
    assert.equal(last.cn, 'alice');
    assert.equal(last.database, 'orders');
    assert.ok(last.attributes.some(([k, v]) => k === 'warden_user' && v === 'alice'));
    second.sock.write(comQuery('select 44'));
    assert.equal((await readPacket(second.r)).payload[0], 0);
    assert.ok(fake.queries.includes('select 44'));
    // …and the one after that is being made again.
    await until(() => fake.connections === connections + 3, 'the next connection made ahead');
    second.sock.destroy();
  }));

test('a connection made ahead is not used by a client asking for other settings, nor once the database closed it', () =>
  withSpares(5000, async (e, p) => {
    fake.scenario = { kind: 'ok' };
    const connections = fake.connections;
    const first = await login('alice', 'orders', { port: p.port });
    first.sock.destroy();
    await until(() => fake.connections === connections + 2, 'a connection made ahead');
    // Another character set: the SSLRequest already told the database 224.
    const other = await login('alice', 'orders', { port: p.port, charset: 45 });
    assert.equal(other.answer.payload[0], 0);
    assert.equal(e.sparesUsed, 0);
    other.sock.destroy();
    // The database drops the connection made ahead (its connect_timeout): the next login dials.
    const before = fake.connections;
    for (const s of fake.open) if (!s.destroyed) s.destroy();
    const again = await login('alice', 'orders', { port: p.port });
    assert.equal(again.answer.payload[0], 0, 'logged in over a new connection');
    assert.ok(fake.connections > before);
    again.sock.destroy();
  }));

test('a connection made ahead and never used closes after its idle time without logging in', () =>
  withSpares(150, async (e, p) => {
    fake.scenario = { kind: 'ok' };
    const connections = fake.connections;
    const first = await login('alice', 'orders', { port: p.port });
    first.sock.destroy();
    await until(() => fake.connections === connections + 2, 'a connection made ahead');
    const logins = fake.logins.length;
    await until(() => fake.open.size === 0, 'the connection made ahead closed');
    assert.equal(fake.logins.length, logins, 'it never logged in');
    assert.equal(e.sparesUsed, 0);
  }));

test('pool: a clean end resets the connection for the next session; a changed db spec discards it', async () => {
  const e = new MySqlEngine({ logger: quiet, spareIdleMs: 0 });
  const o = { engine: e, cas, db: shop };
  const p = await startEngineProxy(o);
  try {
    fake.scenario = { kind: 'ok' };
    const connections = fake.connections;
    const quits = fake.quits;
    const first = await login('alice', 'orders', { port: p.port });
    assert.equal(first.answer.payload[0], 0);
    await quit(first);
    await until(() => e.pooledIdle === 1, 'pooled');
    // The COM_QUIT was kept; the database got the reset, the schema and the role check instead.
    assert.equal(fake.quits, quits);
    assert.deepEqual(fake.queries.slice(-1), ['SELECT CURRENT_ROLE()']);
    const second = await login('alice', 'orders', { port: p.port });
    assert.equal(second.answer.payload[0], 0);
    assert.equal(e.pooledUsed, 1);
    assert.equal(fake.connections, connections + 1, 'no new connection');
    second.sock.write(comQuery('select 45'));
    assert.equal((await readPacket(second.r)).payload[0], 0);
    assert.ok(fake.queries.includes('select 45'));
    await quit(second);
    await until(() => e.pooledIdle === 1, 'pooled again');
    // The db resource's spec changes (its CA): the pooled connection is closed, not used.
    o.db = { ...shop, spec: { ...shop.spec, ca_cert: dbCa } };
    const third = await login('alice', 'orders', { port: p.port });
    assert.equal(third.answer.payload[0], 0);
    assert.equal(e.pooledUsed, 1);
    assert.equal(fake.connections, connections + 2, 'a new connection');
    await until(() => fake.quits === quits + 1, 'the old connection ended with COM_QUIT');
    third.sock.destroy();
  } finally {
    e.close();
    p.close();
  }
});

test('pool: a connection serves sessions only within its lifetime from the login, then ends with COM_QUIT', async () => {
  // 0: outlived at its first release, so never pooled.
  const none = new MySqlEngine({ logger: quiet, spareIdleMs: 0, poolMaxLifetimeMs: 0 });
  // 2.5 s: pooled at once, outlived while it waits in the pool.
  const short = new MySqlEngine({ logger: quiet, spareIdleMs: 0, poolMaxLifetimeMs: 2500 });
  const proxies = [await startEngineProxy({ engine: none, cas, db: shop })];
  proxies.push(await startEngineProxy({ engine: short, cas, db: shop }));
  try {
    fake.scenario = { kind: 'ok' };
    let quits = fake.quits;
    const a = await login('alice', 'orders', { port: proxies[0]!.port });
    assert.equal(a.answer.payload[0], 0);
    await quit(a);
    await until(() => fake.quits === quits + 1, 'the outlived connection ended with COM_QUIT');
    assert.equal(none.pooledIdle, 0);
    assert.equal(none.pooledReleased, 0);

    quits = fake.quits;
    const b = await login('alice', 'orders', { port: proxies[1]!.port });
    assert.equal(b.answer.payload[0], 0);
    await quit(b);
    await until(() => short.pooledIdle === 1, 'pooled');
    await new Promise((r) => setTimeout(r, 2600));
    const connections = fake.connections;
    const c = await login('alice', 'orders', { port: proxies[1]!.port });
    assert.equal(c.answer.payload[0], 0);
    assert.equal(short.pooledUsed, 0, 'the outlived connection was not used');
    assert.equal(fake.connections, connections + 1, 'a new login');
    await until(() => fake.quits === quits + 1, 'the outlived connection ended with COM_QUIT');
    c.sock.destroy();
  } finally {
    none.close();
    short.close();
    for (const p of proxies) p.close();
  }
});
