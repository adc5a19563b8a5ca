/**
 * PostgreSQL through Warden as a user meets it (issue 6): a real PostgreSQL 15 in a temp dir
 * with TLS and client-certificate auth only (its certificate from `wctl auth sign
 * --format=db`), reached with real `psql` through `wsh db connect` and `wsh proxy db
 * --tunnel`, and with the `pg` driver; access refusals, device trust, locks, cancel
 * requests, bad input and the audit log.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { connect as netConnect } from 'node:net';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { connect as tlsConnect } from 'node:tls';
import { systemClock } from '@warden/server';
import {
  type PostgresServer,
  requirePostgres,
  requireTool,
  selfSignedCert,
  startPostgres,
} from '@warden/testkit';
import pg from 'pg';
import { pgCancelRequest } from '../support/db-engine';
import { startCore } from '../support/in-process';
import { type Cluster, cli, runClient, startCluster, waitFor } from './cluster';
import {
  bobAsAlice,
  clearLocks,
  type DirectConfig,
  dbAudit,
  dbCertFile,
  directLogin,
  exchange,
  interactive,
  lock,
  refusesUntrustedDevice,
  serveDatabase,
  signDbServer,
  type Tunnel,
  testKey,
  unrecordedStartRelaysNothing,
  withSocketTunnel,
  withTunnel,
} from './scenarios';

const pgCheck = requirePostgres();
const psqlCheck = requireTool('psql');
const skip = pgCheck.skip || psqlCheck.skip;

function psql(conn: string, sql: string, opts: { timeoutMs?: number } = {}) {
  return runClient('psql', ['-X', '-At', conn, '-c', sql], {
    env: { ...process.env, PGCONNECT_TIMEOUT: '10' },
    ...opts,
  });
}

describe('PostgreSQL through Warden', { skip }, () => {
  let c: Cluster;
  let server: PostgresServer;
  let alice: NodeJS.ProcessEnv;
  let bob: NodeJS.ProcessEnv;
  let tunnel: Tunnel;
  let tunnelPort = 0;
  const conn = (user = 'alice', db = 'orders', port = tunnelPort) =>
    `host=127.0.0.1 port=${port} user=${user} dbname=${db} sslmode=disable`;
  /** The pg driver as alice on her tunnel, connected. */
  const pgClient = async () => {
    const client = new pg.Client({ host: '127.0.0.1', port: tunnelPort, user: 'alice', database: 'orders' });
    await client.connect();
    return client;
  };

  before(async () => {
    c = await startCluster();
    // 1. The database's certificate from the db CA, as an admin would make it.
    const signed = await signDbServer(c, 'pg');
    assert.match(signed.stdout, /ssl_ca_file = '.*pg\.cas'/);
    assert.equal(statSync(`${signed.prefix}.key`).mode & 0o777, 0o600);
    // 2. PostgreSQL with TLS and client certificates only.
    server = await startPostgres({ tls: signed.tls, hba: ['hostssl all all 127.0.0.1/32 cert'] });
    server.psql('CREATE ROLE alice LOGIN; CREATE ROLE reader LOGIN');
    server.psql('CREATE DATABASE orders OWNER alice');
    server.psql(
      'CREATE TABLE items (id int primary key, name text); INSERT INTO items VALUES (1, $$apple$$), (2, $$pear$$); GRANT SELECT ON items TO reader',
      'orders',
    );
    server.psql('ALTER TABLE items OWNER TO alice', 'orders');
    // 3–5. db_service, roles, users and alice's tunnel (shared with the MySQL suite).
    ({ alice, bob, tunnel } = await serveDatabase(c, {
      name: 'orders',
      protocol: 'postgres',
      port: server.port,
      dbNames: ['orders', 'postgres'],
    }));
    tunnelPort = tunnel.port;
  });

  after(async () => {
    tunnel?.child.kill('SIGTERM');
    await server?.stop();
    await c?.stop();
  });

  test('wsh db ls shows the database with the db users the roles allow', async () => {
    const res = await cli('wsh', ['db', 'ls'], { env: alice });
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stdout, /orders +postgres +alice +env=prod/);
    const json = JSON.parse((await cli('wsh', ['db', 'ls', '--format=json'], { env: bob })).stdout);
    assert.deepEqual(
      json.map((d: { name: string; db_users: string[] }) => [d.name, d.db_users]),
      [['orders', ['reader']]],
    );
  });

  test('wsh db login remembers the choice; wsh db connect runs psql with it', async () => {
    const login = await cli('wsh', ['db', 'login', 'orders', '--db-name=orders'], { env: alice });
    assert.equal(login.code, 0, login.stderr);
    assert.match(login.stdout, /Logged in to database "orders" as alice \(database orders\)/);
    const res = await cli(
      'wsh',
      [
        'db',
        'connect',
        'orders',
        '--',
        '-X',
        '-At',
        '-c',
        'select current_user, current_database(), count(*) from items',
      ],
      {
        env: alice,
      },
    );
    assert.equal(res.code, 0, res.stderr);
    assert.equal(res.stdout.trim(), 'alice|orders|2');
    // psql reaches the tunnel over a Unix socket in a private directory, removed afterwards.
    const info = await cli('wsh', ['db', 'connect', 'orders', '--', '-X', '-c', '\\conninfo'], {
      env: alice,
    });
    assert.equal(info.code, 0, info.stderr);
    const dir = /via socket in "([^"]*wsh-db-[^"]+)"/.exec(info.stdout)?.[1];
    assert.ok(dir, info.stdout);
    assert.equal(existsSync(dir), false, 'the socket directory is removed when psql ends');
    const config = await cli('wsh', ['db', 'config', '--format=json'], { env: alice });
    assert.equal(JSON.parse(config.stdout).db_user, 'alice');
    const ls = await cli('wsh', ['db', 'ls'], { env: alice });
    assert.match(ls.stdout, /> orders .* alice@orders/);
    const out = await cli('wsh', ['db', 'logout', 'orders'], { env: alice });
    assert.match(out.stdout, /Logged out of "orders"/);
  });

  test("regression: the README's `wsh db connect orders --db-user=alice --db-name=orders`; client arguments after --", async () => {
    // Warden's flags after NAME are Warden's (they went to psql before: issue 15 item 16).
    const readme = await cli('wsh', ['db', 'connect', 'orders', '--db-user=alice', '--db-name=orders'], {
      env: alice,
      input: 'select current_user, current_database();\n',
    });
    assert.equal(readme.code, 0, readme.stderr);
    assert.match(readme.stdout, /^ *alice *\| *orders *$/m);
    // Flags on both sides of NAME, client arguments after --.
    const both = await cli(
      'wsh',
      [
        'db',
        'connect',
        '--db-user=reader',
        'orders',
        '--db-name=orders',
        '--',
        '-X',
        '-At',
        '-c',
        'select current_user',
      ],
      { env: bob },
    );
    assert.equal(both.code, 0, both.stderr);
    assert.equal(both.stdout.trim(), 'reader');
    // A client flag without -- is refused before anything runs, saying where it goes.
    const bare = await cli('wsh', ['db', 'connect', 'orders', '-c', 'select 1'], { env: alice });
    assert.equal(bare.code, 1);
    assert.match(
      bare.stderr,
      /^ERROR: unknown flag -c\nArguments for psql or mysql go after --: wsh db connect NAME/,
    );
    const word = await cli('wsh', ['db', 'connect', 'orders', 'orders'], { env: alice });
    assert.equal(word.code, 1);
    assert.match(
      word.stderr,
      /^ERROR: unexpected argument "orders"\nArguments for psql or mysql go after --/,
    );
    // wsh db login takes them after NAME too.
    const login = await cli('wsh', ['db', 'login', 'orders', '--db-user=alice', '--db-name=orders'], {
      env: alice,
    });
    assert.equal(login.code, 0, login.stderr);
    assert.match(login.stdout, /Logged in to database "orders" as alice \(database orders\)/);
    await cli('wsh', ['db', 'logout', 'orders'], { env: alice });
  });

  test('a db resource an admin creates with wctl is served too', async () => {
    const file = join(c.dir, 'db.yaml');
    writeFileSync(
      file,
      `kind: db\nversion: v3\nmetadata:\n  name: orders-admin\n  labels: { env: prod }\nspec:\n  protocol: postgres\n  uri: "127.0.0.1:${server.port}"\n`,
    );
    const created = await cli('wctl', ['create', file], { env: c.adminEnv });
    assert.equal(created.code, 0, created.stderr);
    const got = await cli('wctl', ['get', 'dbs/orders-admin'], { env: c.adminEnv });
    assert.match(got.stdout, /uri: 127\.0\.0\.1:\d+/);
    const res = await cli(
      'wsh',
      [
        'db',
        'connect',
        '--db-user=alice',
        '--db-name=orders',
        'orders-admin',
        '--',
        '-X',
        '-At',
        '-c',
        'select 5',
      ],
      { env: alice },
    );
    assert.equal(res.code, 0, res.stderr);
    assert.equal(res.stdout.trim(), '5');
  });

  test('psql through the tunnel, with and without its own SSLRequest', async () => {
    const plain = await psql(conn(), 'select current_user, current_database()');
    assert.equal(plain.code, 0, plain.stderr);
    assert.equal(plain.stdout.trim(), 'alice|orders');
    // sslmode=prefer: psql asks for TLS first; the tunnel is TLS already, so the answer is N.
    const prefer = await psql(`host=127.0.0.1 port=${tunnelPort} user=alice dbname=orders`, 'select 42');
    assert.equal(prefer.code, 0, prefer.stderr);
    assert.equal(prefer.stdout.trim(), '42');
  });

  test('a tunnel on a Unix socket (--socket): psql -h DIR and the pg driver, only its user may open it, one per socket, gone at exit', async () => {
    const dir = mkdtempSync(join(c.dir, 'sock-'));
    const socket = join(dir, '.s.PGSQL.6543');
    await withSocketTunnel(alice, 'orders', [`--socket=${dir}`, '-p', '6543'], socket, async (printed) => {
      assert.ok(printed().includes(`on ${socket}.`), printed());
      assert.ok(printed().includes(`Connect with: psql "host=${dir} port=6543 sslmode=disable"`), printed());
      const res = await psql(
        `host=${dir} port=6543 user=alice dbname=orders`,
        'select current_user, current_database()',
      );
      assert.equal(res.code, 0, res.stderr);
      assert.equal(res.stdout.trim(), 'alice|orders');
      const client = new pg.Client({ host: dir, port: 6543, user: 'alice', database: 'orders' });
      await client.connect();
      try {
        const r = await client.query('select name from items where id = $1', [2]);
        assert.deepEqual(r.rows, [{ name: 'pear' }]);
      } finally {
        await client.end();
      }
    });
  });

  test('the pg driver: parameterised (extended protocol) queries, prepared statements, a large result', async () => {
    const client = await pgClient();
    try {
      const sum = await client.query('select $1::int + $2::int as sum', [2, 3]);
      assert.equal(sum.rows[0].sum, 5);
      const named = await client.query({
        name: 'by-id',
        text: 'select name from items where id = $1',
        values: [2],
      });
      assert.equal(named.rows[0].name, 'pear');
      const again = await client.query({
        name: 'by-id',
        text: 'select name from items where id = $1',
        values: [1],
      });
      assert.equal(again.rows[0].name, 'apple');
      const big = await client.query('select g, md5(g::text) from generate_series(1, 200000) g');
      assert.equal(big.rowCount, 200000);
      assert.equal(big.rows[199999].g, 200000);
    } finally {
      await client.end();
    }
  });

  /** How many `pg_sleep(seconds)` queries the server is running now (as PostgreSQL sees it). */
  const runningSleeps = (seconds: number) => () =>
    server.psql(
      `select count(*) from pg_stat_activity where state = 'active' and query like 'select pg_sleep(${seconds})%'`,
    );

  test('a CancelRequest from psql (^C) and from the pg driver’s key cancels the running query', async () => {
    // psql: SIGINT makes it send a CancelRequest on a new connection through the tunnel.
    const child = spawn('psql', ['-X', '-At', conn(), '-c', 'select pg_sleep(30)']);
    let stderr = '';
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    // ^C only cancels a query that runs: wait until the server runs it (a fixed 1.5 s was
    // too short on a loaded machine: psql died before its query started).
    await waitFor(runningSleeps(30), /^[1-9]/);
    child.kill('SIGINT');
    const code = await new Promise<number | null>((r) => child.on('close', r));
    assert.notEqual(code, 0);
    assert.match(stderr, /canceling statement due to user request/);

    // pg: the BackendKeyData it received (ours), sent back as a raw CancelRequest.
    const client = await pgClient();
    try {
      const { processID, secretKey } = client as unknown as { processID: number; secretKey: number };
      const sleeping = client.query('select pg_sleep(30)').then(
        () => 'finished',
        (e: Error) => e.message,
      );
      await waitFor(runningSleeps(30), /^[1-9]/);
      const s = netConnect({ host: '127.0.0.1', port: tunnelPort });
      s.end(pgCancelRequest(processID, secretKey));
      assert.match(await sleeping, /canceling statement due to user request/);
      assert.equal((await client.query('select 1 as one')).rows[0].one, 1);
    } finally {
      await client.end();
    }
  });

  test('a role without the db user is refused, and psql prints why', async () => {
    const res = await psql(conn('alice'), 'select 1');
    assert.equal(res.code, 0, res.stderr);
    await withTunnel(bob, 'orders', async (port) => {
      const denied = await psql(conn('alice', 'orders', port), 'select 1');
      assert.equal(denied.code, 2);
      assert.match(
        denied.stderr,
        /FATAL: {2}access to db denied: user "bob" may not connect to db "orders" as db user "alice" \(database "orders"\) \(roles: db-reader\)/,
      );
      const ok = await psql(conn('reader', 'orders', port), 'select count(*) from items');
      assert.equal(ok.stdout.trim(), '2', ok.stderr);
    });
  });

  test('cluster device trust mode required: unauthorized device', () =>
    refusesUntrustedDevice(c, () => psql(conn(), 'select 1'), {
      code: 2,
      stderr: /FATAL: {2}unauthorized device/,
    }));

  test('garbage, plaintext startups and foreign certificates are refused; open sessions go on', async () => {
    const client = await pgClient();
    try {
      const [host, portText] = c.proxy.split(':') as [string, string];
      const port = Number(portText);
      // Garbage on the proxy port, and a PostgreSQL startup without the tunnel's TLS.
      for (const bytes of [
        Buffer.from('\x00\xff garbage \r\n\r\n'),
        Buffer.from('0000000800000000', 'hex'),
      ]) {
        assert.doesNotMatch(await exchange(host, port, bytes), /ok/);
      }
      // TLS with the db ALPN but a certificate Warden did not issue (self-signed, CN=alice).
      const foreign = selfSignedCert({ dir: c.dir, cn: 'alice', name: 'foreign' });
      const answer = await new Promise<string>((r) => {
        const s = tlsConnect({
          host,
          port,
          rejectUnauthorized: false,
          ALPNProtocols: ['warden-db/1'],
          cert: foreign.certPem,
          key: foreign.keyPem,
        });
        let got = '';
        s.on('secureConnect', () => s.write('{"db":"orders","db_user":"alice"}\n'));
        s.on('data', (d) => {
          got += d;
        });
        s.on('error', () => undefined);
        s.on('close', () => r(got));
      });
      assert.match(answer, /"ok":false,"code":"WARDEN_ERR_NOT_LOGGED_IN"/);
      // Through a valid tunnel connection: garbage instead of a startup gets a protocol error.
      const viaTunnel = await exchange(
        '127.0.0.1',
        tunnelPort,
        Buffer.from('00000010deadbeefdeadbeefdeadbeef', 'hex'),
      );
      assert.match(viaTunnel, /08P01.*invalid startup/);
      // The open session is unharmed.
      assert.equal((await client.query('select 7 as n')).rows[0].n, 7);
    } finally {
      await client.end();
    }
  });

  test('a lock ends an open psql session within a second and refuses new ones with its message', async () => {
    // An idle session of the same user (the pg driver), ended by the same lock.
    const idle = new pg.Client({ host: '127.0.0.1', port: tunnelPort, user: 'alice', database: 'orders' });
    await idle.connect();
    const idleEnded = new Promise<string>((r) => idle.on('error', (e: Error) => r(e.message)));
    const session = interactive('psql', ['-X', '-At', conn()]);
    try {
      // psql buffers stdout on a pipe; \warn goes to stderr at once.
      session.child.stdin!.write('select 11 as n \\gset\n\\warn session-open-:n\n');
      await waitFor(session.all, /session-open-11/);
      session.child.stdin!.write('select pg_sleep(20);\n');
      await waitFor(runningSleeps(20), /^[1-9]/);
      await lock(c, ['--user=alice', '--message=incident 42']);
      await waitFor(session.all, /FATAL: {2}lock targeting User:"alice" is in force: incident 42/, 5000);
      session.child.stdin!.end();
      await session.exited;
      assert.match(await idleEnded, /lock targeting User:"alice" is in force: incident 42/);
      // Both backends are gone: the running pg_sleep was cancelled (closing the connection
      // alone would let it run on), the idle one closed.
      await waitFor(
        () => server.psql("select count(*) from pg_stat_activity where usename = 'alice'").trim(),
        /^0$/,
        5000,
      );
    } finally {
      session.child.kill('SIGKILL');
      await idle.end().catch(() => undefined);
    }
    const again = await psql(conn(), 'select 1');
    assert.equal(again.code, 2);
    assert.match(again.stderr, /FATAL: {2}lock targeting User:"alice" is in force: incident 42/);
    await clearLocks(c);
    assert.equal((await psql(conn(), 'select 1')).code, 0);
  });

  /** A libpq connection string straight to the proxy with `cert`/`key`. */
  const direct = (o: { ca: string; cert?: string; key?: string }, extra = 'user=alice dbname=orders') =>
    `host=127.0.0.1 port=${c.proxy.split(':')[1]} sslmode=verify-full sslrootcert=${o.ca} sslcert=${o.cert ?? join(c.dir, 'none.crt')} sslkey=${o.key ?? join(c.dir, 'none.key')} ${extra}`;

  /** The pg driver as alice straight to the proxy with the files `wsh db config` names, connected. */
  const directPg = async (d: DirectConfig) => {
    const client = new pg.Client({
      host: '127.0.0.1',
      port: d.port,
      user: 'alice',
      database: 'orders',
      ssl: {
        ca: readFileSync(d.ca, 'utf8'),
        cert: readFileSync(d.cert, 'utf8'),
        key: readFileSync(d.key, 'utf8'),
      },
    });
    await client.connect();
    return client;
  };

  test('psql straight to the proxy port with the database certificate of wsh db login (no wsh in the data path)', async () => {
    const d = await directLogin(alice, 'orders', 'psql', ['--db-name=orders']);
    assert.equal(`${d.host}:${d.port}`, c.proxy);
    const conn = /^psql "(.*)"$/.exec(d.direct_command)?.[1];
    assert.ok(conn, d.direct_command);
    assert.match(conn, /sslmode=verify-full .*sslcert=.*user=alice dbname=orders/);
    const res = await psql(conn, 'select current_user, current_database(), count(*) from items');
    assert.equal(res.stdout.trim(), 'alice|orders|2', res.stderr);
    // The route in the certificate wins over what the startup asks for: the database of the
    // login, not the one psql names (a certificate for one place reaches only that place).
    const other = await psql(
      direct(d, 'user=reader dbname=postgres'),
      'select current_user, current_database()',
    );
    assert.equal(other.stdout.trim(), 'alice|orders', other.stderr);
    // The pg driver with the same files.
    const client = await directPg(d);
    try {
      assert.equal((await client.query('select $1::int * 2 as n', [21])).rows[0].n, 42);
    } finally {
      await client.end();
    }
    // libpq 17's `sslnegotiation=direct`: TLS at once (no SSLRequest), ALPN `postgresql`.
    const params = Buffer.from('user\0alice\0database\0orders\0\0');
    const startup = Buffer.alloc(8);
    startup.writeInt32BE(8 + params.length, 0);
    startup.writeInt32BE(196608, 4);
    const [host, port] = c.proxy.split(':') as [string, string];
    const answer = await new Promise<{ alpn: string | false; got: string }>((r, reject) => {
      const s = tlsConnect({
        host,
        port: Number(port),
        ALPNProtocols: ['postgresql'],
        ca: readFileSync(d.ca),
        cert: readFileSync(d.cert),
        key: readFileSync(d.key),
        servername: 'localhost',
      });
      let got = '';
      s.on('secureConnect', () => s.write(Buffer.concat([startup, params])));
      s.on('data', (b) => {
        got += b.toString('latin1');
        // ReadyForQuery ('Z', length 5, status 'I'): logged in; Terminate.
        if (got.includes('Z\0\0\0\x05I')) s.end(Buffer.from([0x58, 0, 0, 0, 4]));
      });
      s.on('error', reject);
      s.on('close', () => r({ alpn: s.alpnProtocol ?? false, got }));
    });
    assert.equal(answer.alpn, 'postgresql');
    assert.ok(answer.got.startsWith('R\0\0\0\x08\0\0\0\0'), JSON.stringify(answer.got.slice(0, 80)));
    assert.match(answer.got, /Z\0\0\0\x05I/);
    const events = await c.audit.search({ limit: 10_000, order: 'asc' });
    assert.ok(
      events.some(
        (e) => e.type === 'cert.create' && e.user === 'alice' && (e as { db?: string }).db === 'orders',
      ),
      'the database certificate was audited',
    );
    assert.ok(
      events.some(
        (e) => e.type === 'db.query' && (e as { query?: string }).query === 'select $1::int * 2 as n',
      ),
    );
  });

  test('direct connections: no, login, expired, forged and foreign-route certificates are refused; no role grant is refused at login and per connection', async () => {
    const d = await directLogin(alice, 'orders', 'psql', ['--db-name=orders']);
    const refused = async (conn: string, why: RegExp) => {
      const res = await psql(conn, 'select 1');
      assert.equal(res.code, 2, res.stdout);
      assert.match(res.stderr, why);
    };
    await refused(direct({ ca: d.ca }), /FATAL: {2}Warden: no client certificate/);
    // The login certificate itself (tls.pem next to key.pem) is not a database certificate.
    await refused(
      direct({ ca: d.ca, cert: join(dirname(d.key), 'tls.pem'), key: d.key }),
      /FATAL: {2}Warden: this is not a database certificate: run `wsh db login NAME`/,
    );
    // Expired, and forged (the same identity and route from a CA Warden does not trust).
    const { keyFile, publicKey } = testKey(c, 'odd.key');
    const identity = { user: 'alice', roles: ['db-traits'], logins: [], traits: { db_users: ['alice'] } };
    const route = { db: 'orders', dbUser: 'alice', dbName: 'orders' };
    const expiredFile = await dbCertFile(c, 'expired.crt', {
      identity: { ...identity, db: route },
      publicKey,
      now: Date.now() - 2 * 3600_000,
      notAfter: new Date(Date.now() - 3600_000),
    });
    await refused(
      direct({ ca: d.ca, cert: expiredFile, key: keyFile }),
      /FATAL: {2}Warden: the client certificate was refused \(CERT_HAS_EXPIRED\)/,
    );
    const foreign = await startCore('foreign', systemClock);
    try {
      const forgedFile = await dbCertFile(
        c,
        'forged.crt',
        { identity: { ...identity, db: route }, publicKey },
        foreign.cas,
      );
      await refused(
        direct({ ca: d.ca, cert: forgedFile, key: keyFile }),
        /FATAL: {2}Warden: the client certificate was refused/,
      );
    } finally {
      await foreign.backend.close();
    }
    // A route to a database that does not exist.
    const ghostFile = await dbCertFile(c, 'ghost.crt', {
      identity: { ...identity, db: { db: 'ghost' } },
      publicKey,
    });
    await refused(
      direct({ ca: d.ca, cert: ghostFile, key: keyFile }),
      /FATAL: {2}Warden: database "ghost" not found/,
    );
    // bob's roles allow db user "reader" only: refused at `wsh db login` with the reason…
    const bobLogin = await cli('wsh', ['db', 'login', 'orders', '--db-user=alice'], { env: bob });
    assert.notEqual(bobLogin.code, 0);
    assert.match(
      bobLogin.stderr,
      /access to db denied: user "bob" may not connect to db "orders" as db user "alice"/,
    );
    // …and per connection, whatever certificate he holds (db_service checks every session).
    const bobFile = await dbCertFile(c, 'bob-as-alice.crt', { identity: bobAsAlice('orders'), publicKey });
    await refused(
      direct({ ca: d.ca, cert: bobFile, key: keyFile }),
      /FATAL: {2}access to db denied: user "bob" may not connect to db "orders" as db user "alice"/,
    );
    // A PostgreSQL database's certificate at the MySQL listener is refused there.
    const [mhost, mport] = c.mysqlDirect.split(':') as [string, string];
    const answer = await new Promise<string>((r) => {
      const s = netConnect({ host: mhost, port: Number(mport) });
      let got = '';
      s.on('data', (b) => {
        got += b.toString('latin1');
      });
      s.on('error', () => undefined);
      s.on('close', () => r(got));
      setTimeout(() => s.end(), 200);
    });
    assert.match(answer, /8\.0\.0-Warden/, 'the MySQL listener greets first');
    // Still fine for alice.
    assert.equal((await psql(direct(d), 'select 1')).stdout.trim(), '1');
  });

  test('direct path: psql’s ^C (a plain CancelRequest at the proxy port) and a CancelRequest after an SSLRequest cancel the running query', async () => {
    const d = await directLogin(alice, 'orders', 'psql', ['--db-name=orders']);
    // psql 15's ^C: a CancelRequest on a new connection without TLS, to the host and port of
    // the session (the proxy), with the key Warden handed out.
    const child = spawn('psql', ['-X', '-At', direct(d), '-c', 'select pg_sleep(30)']);
    let stderr = '';
    child.stderr.on('data', (b) => {
      stderr += b;
    });
    await waitFor(runningSleeps(30), /^[1-9]/);
    child.kill('SIGINT');
    const code = await new Promise<number | null>((r) => child.on('close', r));
    assert.notEqual(code, 0);
    assert.match(stderr, /canceling statement due to user request/);

    // The pg driver with the database certificate; its key sent back raw: first a wrong
    // secret (nothing happens), then inside TLS after an SSLRequest with the certificate (as
    // libpq 17's cancel API does), then plain.
    const client = await directPg(d);
    /** A plain CancelRequest; resolves once the proxy closed the connection (it answers nothing). */
    const plainCancel = (packet: Buffer) =>
      new Promise<string>((resolve, reject) => {
        const s = netConnect({ host: '127.0.0.1', port: d.port });
        let got = '';
        s.on('data', (b) => {
          got += b.toString('latin1');
        });
        s.on('error', reject);
        s.on('close', () => resolve(got));
        s.end(packet);
      });
    try {
      const { processID, secretKey } = client as unknown as { processID: number; secretKey: number };
      const sleep = () =>
        client.query('select pg_sleep(30)').then(
          () => 'finished',
          (e: Error) => e.message,
        );
      let sleeping = sleep();
      await waitFor(runningSleeps(30), /^[1-9]/);
      assert.equal(
        await plainCancel(pgCancelRequest(processID, secretKey ^ 1)),
        '',
        'says nothing either way',
      );
      assert.match(runningSleeps(30)(), /^[1-9]/, 'a wrong key cancels nothing');
      // SSLRequest, 'S', TLS with the database certificate, then the CancelRequest.
      await new Promise<void>((resolve, reject) => {
        const s = netConnect({ host: '127.0.0.1', port: d.port });
        s.on('error', reject);
        s.once('data', (b) => {
          assert.equal(b.toString('latin1'), 'S');
          const t = tlsConnect({
            socket: s,
            ca: readFileSync(d.ca),
            cert: readFileSync(d.cert),
            key: readFileSync(d.key),
            servername: 'localhost',
          });
          t.on('error', reject);
          t.on('secureConnect', () => t.end(pgCancelRequest(processID, secretKey)));
          t.on('close', () => resolve());
        });
        s.write(Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]));
      });
      assert.match(await sleeping, /canceling statement due to user request/);
      sleeping = sleep();
      await waitFor(runningSleeps(30), /^[1-9]/);
      assert.equal(await plainCancel(pgCancelRequest(processID, secretKey)), '');
      assert.match(await sleeping, /canceling statement due to user request/);
      assert.equal((await client.query('select 1 as one')).rows[0].one, 1, 'the session goes on');
    } finally {
      await client.end();
    }
  });

  test('a lock ends a direct psql session within a second and refuses new direct ones', async () => {
    const d = await directLogin(alice, 'orders', 'psql', ['--db-name=orders']);
    const session = interactive('psql', ['-X', '-At', direct(d)]);
    try {
      session.child.stdin!.write('select 12 as n \\gset\n\\warn direct-open-:n\n');
      await waitFor(session.all, /direct-open-12/);
      session.child.stdin!.write('select pg_sleep(20);\n');
      await waitFor(runningSleeps(20), /^[1-9]/);
      await lock(c, ['--user=alice', '--message=incident 43']);
      await waitFor(session.all, /FATAL: {2}lock targeting User:"alice" is in force: incident 43/, 5000);
      session.child.stdin!.end();
      await session.exited;
      const again = await psql(direct(d), 'select 1');
      assert.equal(again.code, 2);
      assert.match(again.stderr, /FATAL: {2}Warden: lock targeting User:"alice" is in force: incident 43/);
    } finally {
      session.child.kill('SIGKILL');
      await clearLocks(c);
    }
    assert.equal((await psql(direct(d), 'select 1')).stdout.trim(), '1');
  });

  test('a session whose start the audit log cannot record relays nothing to the database (issue 15 item 5)', () =>
    unrecordedStartRelaysNothing(c, {
      insert: () => psql(conn(), "insert into items values (99, 'unaudited')"),
      inserted: () => server.psql('select count(*) from items where id = 99', 'orders'),
      query: () => psql(conn(), 'select 1'),
    }));

  test('the audit log has session start, each query, end, and the refusals', async () => {
    const { db, start } = await dbAudit(c, 'orders');
    const queries = db.filter((e) => e.type === 'db.query' && e.session_id === start.session_id);
    assert.ok(queries.length > 0);
    const all = db.filter((e) => e.type === 'db.query');
    assert.ok(all.some((e) => e.query === 'select current_user, current_database(), count(*) from items'));
    const param = all.find((e) => e.query === 'select $1::int + $2::int as sum');
    assert.deepEqual(param?.parameters, ['2', '3']);
    assert.ok(all.some((e) => e.query === 'select name from items where id = $1' && e.statement === 'by-id'));
  });
});
