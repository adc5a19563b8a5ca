/**
 * MySQL through Warden as a user meets it (issue 6): a real MariaDB in a temp dir with TLS
 * and certificate-only accounts (`REQUIRE SUBJECT`, no password; its server certificate from
 * `wctl auth sign --format=db`), reached with the real `mysql` client through `wsh db
 * connect` and `wsh proxy db --tunnel`, and with the `mysql2` driver; prepared statements,
 * large results, access refusals (ERR 1045 with the reason), device trust, locks ending a
 * live session, KILL QUERY mapping, bad input and the audit log.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type MariaDbServer, requireMariaDb, requireTool, startMariaDb } from '@warden/testkit';
import mysql from 'mysql2/promise';
import pg from 'pg';
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

const mariaCheck = requireMariaDb();
const mysqlCheck = requireTool('mysql');
const skip = mariaCheck.skip || mysqlCheck.skip;

/** Runs the `mysql` client against a tunnel's port or socket (batch mode, no column names). */
function mysqlCli(to: number | { socket: string }, user: string, sql: string, extra: string[] = []) {
  return runClient('mysql', [
    '--no-defaults',
    ...(typeof to === 'number'
      ? ['--protocol=TCP', '--host=127.0.0.1', `--port=${to}`]
      : ['--protocol=SOCKET', `--socket=${to.socket}`]),
    `--user=${user}`,
    '--skip-ssl',
    '--connect-timeout=10',
    '-N',
    '-B',
    ...extra,
    '-e',
    sql,
  ]);
}

describe('MySQL (MariaDB) through Warden', { skip }, () => {
  let c: Cluster;
  let server: MariaDbServer;
  let alice: NodeJS.ProcessEnv;
  let bob: NodeJS.ProcessEnv;
  let tunnel: Tunnel;
  let tunnelPort = 0;
  const connect = (user = 'alice', database: string | undefined = 'orders') =>
    mysql.createConnection({ host: '127.0.0.1', port: tunnelPort, user, ...(database ? { database } : {}) });

  /** `mysql` left running on a tunnel port, reading statements from stdin (unbuffered output). */
  const mysqlSession = (port: number, user: string) =>
    interactive('mysql', [
      '--no-defaults',
      '--protocol=TCP',
      '-h127.0.0.1',
      `-P${port}`,
      `-u${user}`,
      '--skip-ssl',
      '-N',
      '-B',
      '--unbuffered',
    ]);

  /** How many of `user`'s threads MariaDB has (running `select sleep(...)` only, with `sleeping`). */
  const threads = (user: string, sleeping = false) =>
    server
      .sql(
        `select count(*) from information_schema.processlist where user = '${user}'${sleeping ? " and info like 'select sleep%'" : ''}`,
      )
      .trim();

  before(async () => {
    c = await startCluster();
    // 1. The database's certificate from the db CA, as an admin would make it.
    const signed = await signDbServer(c, 'maria');
    // It says what MariaDB's config and accounts need (the subject db_service's certificates carry).
    assert.match(
      signed.stdout,
      /\[mariadbd\][^\n]*\n {2}ssl_cert = .*maria\.crt\n {2}ssl_key = .*maria\.key\n {2}ssl_ca = .*maria\.cas\n/,
    );
    assert.match(signed.stdout, /CREATE USER 'alice'@'%' REQUIRE SUBJECT '\/CN=alice\/O=db-test'/);
    // 2. MariaDB with TLS; accounts that log in with a db-CA certificate and nothing else.
    server = await startMariaDb({ tls: signed.tls });
    server.sql(
      [
        "CREATE USER 'alice'@'%' REQUIRE SUBJECT '/CN=alice/O=db-test'",
        "CREATE USER 'reader'@'%' REQUIRE SUBJECT '/CN=reader/O=db-test'",
        'CREATE DATABASE orders',
        'CREATE TABLE orders.items (id INT PRIMARY KEY, name VARCHAR(50), added DATE)',
        "INSERT INTO orders.items VALUES (1, 'apple', '2024-01-02'), (2, 'pear', NULL)",
        "GRANT ALL ON orders.* TO 'alice'@'%'",
        "GRANT SELECT ON orders.* TO 'reader'@'%'",
      ].join(';'),
    );
    // 3–5. db_service, roles, users and alice's tunnel (shared with the PostgreSQL suite).
    ({ alice, bob, tunnel } = await serveDatabase(c, {
      name: 'shop',
      protocol: 'mysql',
      port: server.port,
      dbNames: ['orders'],
    }));
    tunnelPort = tunnel.port;
    assert.match(
      tunnel.stdout(),
      new RegExp(`Connect with: mysql --protocol=TCP --host=127\\.0\\.0\\.1 --port=${tunnelPort} --skip-ssl`),
    );
  });

  after(async () => {
    tunnel?.child.kill('SIGTERM');
    await server?.stop();
    await c?.stop();
  });

  test('wsh db ls shows the database; wsh db login and wsh db connect run mysql as the db user', async () => {
    const ls = await cli('wsh', ['db', 'ls'], { env: alice });
    assert.equal(ls.code, 0, ls.stderr);
    assert.match(ls.stdout, /shop +mysql +alice +env=prod/);
    const login = await cli('wsh', ['db', 'login', 'shop', '--db-name=orders'], { env: alice });
    assert.equal(login.code, 0, login.stderr);
    const res = await cli(
      'wsh',
      [
        'db',
        'connect',
        'shop',
        '--',
        '-N',
        '-B',
        '-e',
        'select current_user(), database(), count(*) from items',
      ],
      { env: alice },
    );
    assert.equal(res.code, 0, res.stderr);
    assert.equal(res.stdout.trim(), 'alice@%\torders\t2');
    // mysql reaches the tunnel over a Unix socket in a private directory, removed afterwards.
    const status = await cli('wsh', ['db', 'connect', 'shop', '--', '-e', 'status'], { env: alice });
    assert.equal(status.code, 0, status.stderr);
    const sock = /UNIX socket:\s+(\S*wsh-db-\S+)/.exec(status.stdout)?.[1];
    assert.ok(sock, status.stdout);
    assert.equal(existsSync(sock), false, 'the socket is removed when mysql ends');
    const config = JSON.parse((await cli('wsh', ['db', 'config', '--format=json'], { env: alice })).stdout);
    assert.match(
      config.command,
      /^mysql --protocol=TCP --host=127\.0\.0\.1 --port=3307 --user=alice --database=orders/,
    );
    assert.equal((await cli('wsh', ['db', 'logout', 'shop'], { env: alice })).code, 0);
  });

  test('mysql through the tunnel: TLS to the database with the db user’s certificate; a password is ignored', async () => {
    const res = await mysqlCli(
      tunnelPort,
      'alice',
      "select current_user(), (select variable_value from information_schema.session_status where variable_name = 'Ssl_version') <> ''",
      ['orders'],
    );
    assert.equal(res.code, 0, res.stderr);
    assert.equal(res.stdout.trim(), 'alice@%\t1');
    const withPassword = await mysqlCli(tunnelPort, 'alice', 'select 42', ['--password=whatever']);
    assert.equal(withPassword.stdout.trim(), '42', withPassword.stderr);
  });

  test('a tunnel on a Unix socket (--socket): mysql --socket and mysql2 socketPath, only its user may open it, one per socket, gone at exit', async () => {
    const socket = join(mkdtempSync(join(c.dir, 'sock-')), 'shop.sock');
    await withSocketTunnel(alice, 'shop', [`--socket=${socket}`], socket, async (printed) => {
      assert.ok(
        printed().includes(`Connect with: mysql --protocol=SOCKET --socket=${socket} --skip-ssl`),
        printed(),
      );
      const res = await mysqlCli(
        { socket },
        'alice',
        "select current_user(), (select variable_value from information_schema.session_status where variable_name = 'Ssl_version') <> ''",
        ['orders'],
      );
      assert.equal(res.code, 0, res.stderr);
      assert.equal(res.stdout.trim(), 'alice@%\t1', 'TLS to the database beyond the socket');
      const conn = await mysql.createConnection({ socketPath: socket, user: 'alice', database: 'orders' });
      try {
        const [rows] = await conn.execute<mysql.RowDataPacket[]>('select id from items where name = ?', [
          'pear',
        ]);
        assert.deepEqual(rows, [{ id: 2 }]);
      } finally {
        await conn.end();
      }
      const withPort = await cli(
        'wsh',
        ['proxy', 'db', 'shop', '--tunnel', `--socket=${socket}x`, '-p', '3307'],
        {
          env: alice,
        },
      );
      assert.notEqual(withPort.code, 0);
      assert.match(withPort.stderr, /-p is not used with --socket/);
    });
  });

  test('the mysql2 driver: queries, prepared statements with parameters, a large result', async () => {
    const conn = await connect();
    try {
      const [rows] = await conn.query<mysql.RowDataPacket[]>('select name from items order by id');
      assert.deepEqual(
        rows.map((r) => r.name),
        ['apple', 'pear'],
      );
      const [byId] = await conn.execute<mysql.RowDataPacket[]>('select name from items where id = ?', [2]);
      assert.equal(byId[0]!.name, 'pear');
      const [again] = await conn.execute<mysql.RowDataPacket[]>('select name from items where id = ?', [1]);
      assert.equal(again[0]!.name, 'apple');
      const [typed] = await conn.execute<mysql.RowDataPacket[]>('select ? as s, ? as n, ? as d, ? as x', [
        'it’s',
        null,
        2.5,
        new Date(Date.UTC(2024, 0, 2)),
      ]);
      assert.equal(typed[0]!.s, 'it’s');
      assert.equal(typed[0]!.n, null);
      const [big] = await conn.query<mysql.RowDataPacket[]>('select seq, md5(seq) as h from seq_1_to_200000');
      assert.equal(big.length, 200_000);
      assert.equal(big[199_999]!.seq, 200_000);
      await conn.query("insert into items (id, name) values (3, repeat('x', 50))");
      const [[count]] = await conn.query<mysql.RowDataPacket[]>('select count(*) as n from items');
      assert.equal(count!.n, 3);
    } finally {
      await conn.end();
    }
  });

  test('COM_CHANGE_USER is refused without touching the session', async () => {
    const conn = await connect();
    try {
      await assert.rejects(conn.changeUser({ user: 'reader' }), (e: { errno?: number; message: string }) => {
        assert.equal(e.errno, 1235);
        assert.match(e.message, /changing the database user is not supported through Warden/);
        return true;
      });
    } finally {
      conn.destroy();
    }
    const check = await connect();
    try {
      const [[row]] = await check.query<mysql.RowDataPacket[]>('select current_user() as u');
      assert.equal(row!.u, 'alice@%');
    } finally {
      await check.end();
    }
  });

  test('KILL QUERY with the connection id Warden handed out stops the right query, for the same user only', async () => {
    const victim = await connect();
    const killer = await connect();
    try {
      const running = victim.query('select sleep(30) as s').then(
        ([rows]) => String((rows as mysql.RowDataPacket[])[0]!.s),
        (e: Error) => e.message,
      );
      await waitFor(() => threads('alice', true), /^[1-9]/);
      // Bob (another Warden user) is not mapped: the database never heard of that id.
      await withTunnel(bob, 'shop', async (bobPort) => {
        const denied = await mysqlCli(bobPort, 'reader', `KILL QUERY ${victim.threadId}`);
        assert.match(denied.stderr, /Unknown thread id/);
      });
      await killer.query(`KILL QUERY ${victim.threadId}`);
      // MariaDB's SLEEP() returns 1 when interrupted (or the query fails as interrupted).
      assert.match(await running, /^1$|interrupted/);
      const [[row]] = await victim.query<mysql.RowDataPacket[]>('select 5 as n');
      assert.equal(row!.n, 5);
    } finally {
      victim.destroy();
      killer.destroy();
    }
  });

  /** A session through alice's tunnel: its thread id and what a fresh login's state looks like. */
  const sessionState = async (conn: mysql.Connection) => {
    const [[row]] = await conn.query<mysql.RowDataPacket[]>(
      "select connection_id() id, database() db, @@character_set_client cs, @@collation_connection co, @@sql_mode m, @@wait_timeout w, @@autocommit ac, current_role() r, @v v, is_used_lock('warden-pool') l",
    );
    return row!;
  };
  /** The connection a session ended with COM_QUIT goes back to the pool once reset: give it the moment. */
  const released = () => new Promise((r) => setTimeout(r, 300));
  const alive = (id: number) =>
    server.sql(`select count(*) from information_schema.processlist where id = ${id}`).trim() === '1';

  test('pool: the next session gets the connection of the last one, with nothing of its state', async () => {
    const first = await connect();
    const fresh = await sessionState(first);
    // State of every kind a session can leave behind.
    await first.query("set @v = 'left behind'");
    await first.query('create temporary table orders.scratch (i int)');
    await first.query("prepare leftover from 'select 1'");
    await first.execute('select name from orders.items where id = ?', [1]);
    await first.query('set names latin1');
    await first.query("set sql_mode = 'ANSI', wait_timeout = 7, autocommit = 0");
    await first.query("insert into orders.items values (99, 'uncommitted', null)");
    await first.query("select get_lock('warden-pool', 1)");
    await first.query('use information_schema');
    assert.equal((await sessionState(first)).v, 'left behind');
    await first.end();
    await released();

    const next = await connect();
    try {
      const now = await sessionState(next);
      // The same database thread (the pool served it), in the state of a fresh login.
      assert.equal(now.id, fresh.id, 'the connection was not reused');
      assert.deepEqual(now, fresh);
      assert.equal(now.db, 'orders');
      assert.match(String(now.m), /IGNORE_SPACE/); // mysql2 asks for it at the login
      await assert.rejects(next.query('select * from orders.scratch'), /doesn't exist/);
      await assert.rejects(next.query('execute leftover'), /Unknown prepared statement/);
      const [items] = await next.query<mysql.RowDataPacket[]>('select id from orders.items where id = 99');
      assert.equal(items.length, 0, 'the uncommitted insert was rolled back');
    } finally {
      await next.end();
    }
    await released();
    // MariaDB saw one thread, reset between the sessions; it is still there, idle, for the next one.
    assert.ok(alive(fresh.id as number));
  });

  test('pool: a session that set a role, ended by the client without COM_QUIT or by a lock, is not pooled', async () => {
    server.sql("CREATE ROLE IF NOT EXISTS pool_role; GRANT pool_role TO 'alice'@'%'");
    const withRole = await connect();
    const roleId = (await sessionState(withRole)).id as number;
    await withRole.query('set role pool_role');
    await withRole.end();
    await released();
    // MariaDB keeps a role across COM_RESET_CONNECTION: that connection is closed, not reused.
    await waitFor(() => String(alive(roleId)), /^false$/, 5000);

    const dropped = await connect();
    const droppedId = (await sessionState(dropped)).id as number;
    dropped.destroy(); // no COM_QUIT
    await waitFor(() => String(alive(droppedId)), /^false$/, 5000);

    const locked = await connect();
    const lockedId = (await sessionState(locked)).id as number;
    const lockedError = new Promise<string>((r) => locked.on('error', (e: Error) => r(e.message)));
    try {
      await lock(c, ['--user=alice', '--message=pool test']);
      assert.match(await lockedError, /pool test/);
      await waitFor(() => String(alive(lockedId)), /^false$/, 5000);
    } finally {
      locked.destroy();
      await clearLocks(c);
    }
  });

  test('pool: a refused session never gets the pooled connection', async () => {
    const first = await connect();
    const id = (await sessionState(first)).id as number;
    await first.end();
    await released();
    await withTunnel(bob, 'shop', async (port) => {
      // bob may not be db user alice: refused before any connection is taken.
      await assert.rejects(
        mysql.createConnection({ host: '127.0.0.1', port, user: 'alice', database: 'orders' }),
        /may not connect to db "shop" as db user "alice"/,
      );
      // reader is another db user: never alice's connection.
      const other = await mysql.createConnection({
        host: '127.0.0.1',
        port,
        user: 'reader',
        database: 'orders',
      });
      try {
        assert.notEqual((await sessionState(other)).id, id);
      } finally {
        await other.end();
      }
    });
    // A locked user is refused too, and the connection stays in the pool untouched.
    await lock(c, ['--user=alice', '--message=refused']);
    try {
      await assert.rejects(connect(), /refused/);
    } finally {
      await clearLocks(c);
    }
    const again = await connect();
    try {
      assert.equal((await sessionState(again)).id, id);
    } finally {
      await again.end();
    }
  });

  test('a role without the db user is refused with ERR 1045 and mysql prints why', async () => {
    await withTunnel(bob, 'shop', async (port) => {
      const denied = await mysqlCli(port, 'alice', 'select 1', ['orders']);
      assert.equal(denied.code, 1);
      assert.match(
        denied.stderr,
        /ERROR 1045 \(28000\): access to db denied: user "bob" may not connect to db "shop" as db user "alice" \(database "orders"\) \(roles: db-reader\)/,
      );
      const ok = await mysqlCli(port, 'reader', 'select count(*) from orders.items');
      assert.equal(ok.stdout.trim(), '3', ok.stderr);
    });
  });

  test('cluster device trust mode required: unauthorized device', () =>
    refusesUntrustedDevice(c, () => mysqlCli(tunnelPort, 'alice', 'select 1'), {
      code: 1,
      stderr: /ERROR 1045 \(28000\): unauthorized device/,
    }));

  test('garbage and TLS requests are refused; open sessions go on', async () => {
    const conn = await connect();
    try {
      const [host, portText] = c.proxy.split(':') as [string, string];
      // Plaintext MySQL on the proxy port: no TLS, no route.
      const plain = await exchange(
        host,
        Number(portText),
        Buffer.from('\x20\x00\x00\x01garbage-garbage-garbage-garbage!'),
      );
      assert.doesNotMatch(plain, /ok/);
      // Through the tunnel: garbage instead of a handshake response, and an SSLRequest.
      const reply = (bytes: Buffer) => exchange('127.0.0.1', tunnelPort, bytes, { onGreeting: true });
      assert.match(await reply(Buffer.from('0500000100deadbeef00', 'hex')), /#08S01Bad handshake/);
      const sslRequest = Buffer.alloc(36);
      sslRequest.writeUIntLE(32, 0, 3);
      sslRequest[3] = 1;
      sslRequest.writeUInt32LE(0x0200 | 0x0800 | 0x8000, 4);
      assert.match(await reply(sslRequest), /#08S01the Warden tunnel is already TLS/);
      // The open session is unharmed.
      const [[row]] = await conn.query<mysql.RowDataPacket[]>('select 7 as n');
      assert.equal(row!.n, 7);
    } finally {
      await conn.end();
    }
  });

  test('a lock ends an open mysql session within a second and refuses new ones with its message', async () => {
    const session = mysqlSession(tunnelPort, 'alice');
    try {
      session.child.stdin!.write("select 'session-open';\n");
      await waitFor(session.all, /session-open/);
      session.child.stdin!.write('select sleep(20);\n');
      await waitFor(() => threads('alice', true), /^[1-9]/);
      const thread = server
        .sql(
          "select id from information_schema.processlist where user = 'alice' and info like 'select sleep%'",
        )
        .trim();
      await lock(c, ['--user=alice', '--message=incident 42']);
      await waitFor(
        session.all,
        /ERROR 1927 \(70100\) at line 2: lock targeting User:"alice" is in force: incident 42/,
        5000,
      );
      session.child.stdin!.end();
      await session.exited;
      // The database's thread is gone too (its sleep did not run on), not kept for a next session.
      await waitFor(
        () => server.sql(`select count(*) from information_schema.processlist where id = ${thread}`).trim(),
        /^0$/,
        5000,
      );
    } finally {
      session.child.kill('SIGKILL');
    }
    const again = await mysqlCli(tunnelPort, 'alice', 'select 1');
    assert.equal(again.code, 1);
    assert.match(again.stderr, /ERROR 1045 \(28000\): lock targeting User:"alice" is in force: incident 42/);
    await clearLocks(c);
    assert.equal((await mysqlCli(tunnelPort, 'alice', 'select 1')).code, 0);
  });

  test('a lock ends idle sessions too: mysql prints it at its next statement, mysql2 gets an error', () =>
    withTunnel(bob, 'shop', async (port) => {
      // Connections of earlier sessions waiting in the pool are not these sessions'.
      const pooled = server.sql("select id from information_schema.processlist where user = 'reader'").trim();
      const ours = () =>
        server
          .sql(
            `select count(*) from information_schema.processlist where user = 'reader'${pooled ? ` and id not in (${pooled.split('\n').join(',')})` : ''}`,
          )
          .trim();
      const session = mysqlSession(port, 'reader');
      try {
        session.child.stdin!.write("select 'idle-open';\n");
        await waitFor(session.all, /idle-open/);
        const driver = await mysql.createConnection({ host: '127.0.0.1', port, user: 'reader' });
        const driverError = new Promise<string>((r) => driver.on('error', (e: Error) => r(e.message)));
        const ended = async () =>
          (await c.audit.search({ limit: 10_000, order: 'asc' })).filter(
            (e) =>
              e.type === 'session.end' &&
              String((e as { terminated_by?: string }).terminated_by).startsWith(
                'lock targeting Role:"db-reader"',
              ),
          ).length;
        await lock(c, ['--role=db-reader']);
        assert.equal(await driverError, 'lock targeting Role:"db-reader" is in force');
        const until = Date.now() + 5000;
        while ((await ended()) < 2 && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
        session.child.stdin!.write("select 'after';\n");
        await waitFor(
          session.all,
          /ERROR 1927 \(70100\) at line 2: lock targeting Role:"db-reader" is in force/,
          5000,
        );
        assert.doesNotMatch(session.all(), /\nafter\n/);
        // The database's threads of both idle sessions are gone (closed with COM_QUIT).
        await waitFor(ours, /^0$/, 5000);
      } finally {
        session.child.kill('SIGKILL');
        await clearLocks(c);
      }
    }));

  /** The `mysql` client straight at the MySQL listener: `direct`'s options (or others), batch mode. */
  const mysqlDirect = (direct: string[], sql: string) =>
    runClient('mysql', ['--no-defaults', ...direct, '--connect-timeout=10', '-N', '-B', '-e', sql]);
  /** `wsh db config`'s mysql options, without the leading `mysql`. */
  const optionsOf = (d: DirectConfig) => d.direct_command.split(' ').slice(1);
  /** The same options with another certificate and key. */
  const withCert = (d: DirectConfig, cert: string, key: string) =>
    optionsOf(d).map((o) =>
      o.startsWith('--ssl-cert=')
        ? `--ssl-cert=${cert}`
        : o.startsWith('--ssl-key=')
          ? `--ssl-key=${key}`
          : o,
    );

  test('mysql and mysql2 straight at the MySQL listener with the database certificate (no wsh in the data path)', async () => {
    const d = await directLogin(alice, 'shop', 'mysql', ['--db-name=orders']);
    assert.equal(`${d.host}:${d.port}`, c.mysqlDirect);
    assert.match(
      d.direct_command,
      /--ssl-cert=.*--ssl-key=.*--ssl-verify-server-cert --user=alice --database=orders/,
    );
    const res = await mysqlDirect(
      optionsOf(d),
      'select current_user(), database(), name from items where id = 1',
    );
    assert.equal(res.code, 0, res.stderr);
    assert.equal(res.stdout.trim(), 'alice@%\torders\tapple');
    const driver = await mysql.createConnection({
      host: d.host,
      port: d.port,
      user: 'alice',
      database: 'orders',
      ssl: {
        ca: readFileSync(d.ca, 'utf8'),
        cert: readFileSync(d.cert, 'utf8'),
        key: readFileSync(d.key, 'utf8'),
      },
    });
    try {
      const [rows] = await driver.execute('select ? + ? as s', [2, 3]);
      assert.equal(Number((rows as { s: number }[])[0]!.s), 5);
      const [names] = await driver.query('select name from items where id in (1, 2) order by id');
      assert.deepEqual(
        (names as { name: string }[]).map((r) => r.name),
        ['apple', 'pear'],
      );
    } finally {
      await driver.end();
    }
    const events = await c.audit.search({ limit: 10_000, order: 'asc' });
    assert.ok(
      events.some((e) => e.type === 'db.query' && (e as { query?: string }).query === 'select ? + ? as s'),
    );
  });

  test("direct MySQL: no TLS, no or foreign certificates, another user's grant and another protocol's port are refused; a lock ends the session", async () => {
    const d = await directLogin(alice, 'shop', 'mysql', ['--db-name=orders']);
    const [host, port] = c.mysqlDirect.split(':') as [string, string];
    const plain = await mysqlDirect(
      ['--protocol=TCP', `--host=${host}`, `--port=${port}`, '--user=alice', '--skip-ssl'],
      'select 1',
    );
    assert.equal(plain.code, 1);
    assert.match(
      plain.stderr,
      /ERROR 1045 \(28000\): Warden: this port takes TLS with your database certificate only/,
    );
    const noCert = await mysqlDirect(
      optionsOf(d).filter((o) => !o.startsWith('--ssl-cert=') && !o.startsWith('--ssl-key=')),
      'select 1',
    );
    assert.equal(noCert.code, 1);
    assert.match(noCert.stderr, /ERROR 1045 \(28000\): Warden: no client certificate/);
    const login = await mysqlDirect(withCert(d, join(dirname(d.key), 'tls.pem'), d.key), 'select 1');
    assert.match(login.stderr, /ERROR 1045 \(28000\): Warden: this is not a database certificate/);
    // bob's roles allow db user "reader" only: a certificate saying "alice" is refused per connection.
    const { keyFile, publicKey } = testKey(c, 'mysql-odd.key');
    const bobFile = await dbCertFile(c, 'mysql-bob-as-alice.crt', {
      identity: bobAsAlice('shop'),
      publicKey,
    });
    const bobRes = await mysqlDirect(withCert(d, bobFile, keyFile), 'select 1');
    assert.match(
      bobRes.stderr,
      /ERROR 1045 \(28000\): access to db denied: user "bob" may not connect to db "shop" as db user "alice"/,
    );
    // This MySQL database's certificate at the PostgreSQL entry (the proxy port) is refused.
    const [pgHost, pgPort] = c.proxy.split(':') as [string, string];
    const pgClient = new pg.Client({
      host: pgHost,
      port: Number(pgPort),
      user: 'alice',
      ssl: {
        ca: readFileSync(d.ca, 'utf8'),
        cert: readFileSync(d.cert, 'utf8'),
        key: readFileSync(d.key, 'utf8'),
      },
    });
    await assert.rejects(
      pgClient.connect(),
      /Warden: database "shop" is a mysql database; this port serves postgres/,
    );
    // A lock ends an open direct session and refuses new ones.
    const session = interactive('mysql', ['--no-defaults', ...optionsOf(d), '-N', '-B', '--unbuffered']);
    try {
      session.child.stdin!.write("select 'direct-open';\n");
      await waitFor(session.all, /direct-open/);
      session.child.stdin!.write('select sleep(20);\n');
      await waitFor(() => threads('alice', true), /^[1-9]/);
      await lock(c, ['--user=alice', '--message=incident 44']);
      await waitFor(
        session.all,
        /ERROR 1927 \(70100\) at line 2: lock targeting User:"alice" is in force: incident 44/,
        5000,
      );
      session.child.stdin!.end();
      await session.exited;
      const again = await mysqlDirect(optionsOf(d), 'select 1');
      assert.match(
        again.stderr,
        /ERROR 1045 \(28000\): Warden: lock targeting User:"alice" is in force: incident 44/,
      );
    } finally {
      session.child.kill('SIGKILL');
      await clearLocks(c);
    }
    assert.equal((await mysqlDirect(optionsOf(d), 'select 1')).stdout.trim(), '1');
  });

  test('a database removed with wctl rm is refused at the next connection (the proxy finds databases in a watch-fed view)', async () => {
    await c.services.dbs.create({
      kind: 'db',
      version: 'v3',
      metadata: { name: 'gone', labels: { env: 'prod' } },
      spec: { protocol: 'mysql', uri: `127.0.0.1:${server.port}` },
    });
    const d = await directLogin(alice, 'gone', 'mysql', ['--db-name=orders']);
    const before = await mysqlDirect(optionsOf(d), 'select name from items where id = 1');
    assert.equal(before.stdout.trim(), 'apple', before.stderr);
    const rm = await cli('wctl', ['rm', 'db/gone'], { env: c.adminEnv });
    assert.equal(rm.code, 0, rm.stderr);
    const after = await mysqlDirect(optionsOf(d), 'select 1');
    assert.equal(after.code, 1);
    assert.match(after.stderr, /ERROR 1045 \(28000\): Warden: database "gone" not found/);
  });

  test('a session whose start the audit log cannot record relays nothing to the database (issue 15 item 5)', () =>
    unrecordedStartRelaysNothing(c, {
      insert: () => mysqlCli(tunnelPort, 'alice', "INSERT INTO orders.items VALUES (99, 'unaudited', NULL)"),
      inserted: () => server.sql('SELECT COUNT(*) FROM orders.items WHERE id = 99'),
      query: () => mysqlCli(tunnelPort, 'alice', 'SELECT 1'),
    }));

  test('the audit log has session start, each query (COM_QUERY and prepared), end, and the refusals', async () => {
    const { db, start } = await dbAudit(c, 'shop');
    const all = db.filter((e) => e.type === 'db.query');
    assert.ok(all.some((e) => e.query === 'select current_user(), database(), count(*) from items'));
    assert.ok(all.some((e) => e.session_id === start.session_id));
    const prepared = all.filter((e) => e.query === 'select name from items where id = ?');
    assert.deepEqual(
      prepared.map((e) => e.parameters),
      [['2'], ['1']],
    );
    assert.ok(prepared.every((e) => typeof e.statement === 'string'));
    const typed = all.find((e) => e.query === 'select ? as s, ? as n, ? as d, ? as x');
    assert.ok(typed, 'the typed prepared statement was audited');
    const params = typed.parameters as unknown[];
    assert.equal(params[0], 'it’s');
    assert.equal(params[1], null);
    assert.equal(params[2], '2.5');
  });
});
