/**
 * Database benchmark (issue 6 point 7): database traffic through Warden against a direct
 * connection to the same database, measured in the same run and printed as ratios. Asserts
 * nothing (numbers depend on the machine and its load). One function per protocol; run all
 * or pick one with `--only`.
 *
 * MySQL (`benchMysql`): a real `warden start` (proxy + db_service), one user logged in, and a
 * throwaway MariaDB with TLS (its certificate from `wctl auth sign --format=db`) that knows
 * the Warden path's db user by certificate only (`REQUIRE SUBJECT`). The Warden path is
 * `wsh proxy db --tunnel` (client → tunnel → proxy TLS → db_service → database TLS); the
 * baseline is the `mysql2` driver straight to MariaDB over TLS with a password account. Both
 * use the same driver and queries; rounds alternate between the paths so that load from other
 * processes hits both alike. Workloads: a point-select loop on one connection (text protocol,
 * COM_QUERY), the same with prepared statements (COM_STMT_EXECUTE), connection setup
 * (connect, one query, close), and one large result (200k rows). Every statement through
 * Warden is a `db.query` audit event in the default SQLite audit log (group commit: one
 * transaction and one fsync per batch of events, see packages/server/src/audit).
 *
 * PostgreSQL (`benchPostgres`): the same Warden set-up with a throwaway PostgreSQL configured
 * as the e2e tests do (TLS, its certificate from `wctl auth sign --format=db`, `pg_hba.conf`
 * `hostssl … cert` only). `pgbench -S` (select-only, after `pgbench -i -s 1`) runs through
 * `wsh proxy db --tunnel` against `pgbench` straight to PostgreSQL over TLS with a client
 * certificate of its own (CN=bench, from a throwaway CA that PostgreSQL trusts next to the db
 * CA), and through pgbouncer (TLS and certificates on both sides) when `pgbouncer` is
 * installed. Rounds alternate the paths; tps and average latency as medians and ratios, for
 * each client count of `--clients` (4, 16 and 64 by default), and the CPU time per transaction
 * of the processes in between (warden + wsh; pgbouncer), read from /proc, which says how much
 * work each path does whatever else the machine is doing. Every ratio is printed with its goal
 * (issue 14) and the run ends with a one-line verdict.
 *
 *   npm run build && npm run bench:db   (needs mariadbd, mariadb-install-db, postgresql-15, openssl)
 *   npm run bench:db -- --only=mysql --queries 500 --rounds 3
 *   npm run bench:db -- --only=postgres --seconds 10 --clients 4 --rounds 3
 *   npm run bench:db -- --only=postgres --rounds 1 --profile=/tmp/prof   (CPU profiles of warden and wsh)
 *   npm run bench:db -- --only=postgres --hold   (sets up, prints each path's PG* environment and
 *     the pids, waits for Ctrl-C: for pgbench by hand, perf and strace; --only=mysql: the
 *     mysql2 options of each path)
 *   npm run bench:db -- --only=postgres --pg-paths=proxy,pgbouncer --clients 4   (only the no-wsh
 *     path and its baseline; `--warden-js=DIR/warden.js` runs another build's warden, for
 *     before/after holds side by side)
 *
 * Both protocols are measured through two tunnels in the same run: `wsh proxy db --tunnel` on
 * a loopback port (what every client can use) and on a Unix socket (`--socket`), each with
 * its own ratio and goal line; and without wsh (`no wsh`): the client itself presents the
 * database certificate of `wsh db login` straight to the proxy (pgbench with PGSSLCERT/PGSSLKEY
 * at the proxy port; mysql2 with `ssl: {ca, cert, key}` at `proxy_service.mysql_listen_addr`),
 * judged the same way, with warden's CPU per transaction (the only process in between).
 */
import { spawn, spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import {
  addUserAndLogin,
  collectProcess,
  freePort,
  type MariaDbServer,
  type PostgresServer,
  postgresBinDir,
  requireMariaDb,
  requirePostgres,
  runCli,
  spawnCli,
  startMariaDb,
  startPostgres,
  startWarden,
  type WardenProcess,
  waitForListener,
} from '@warden/testkit';
import mysql from 'mysql2/promise';
import { cpuMs, type Goal, goal, loadAverage, verdict } from './goals';

const { values: args } = parseArgs({
  options: {
    only: { type: 'string' },
    queries: { type: 'string', default: '2000' },
    connects: { type: 'string', default: '50' },
    rounds: { type: 'string', default: '5' },
    seconds: { type: 'string', default: '10' },
    clients: { type: 'string', default: '4,16,64' },
    'extra-seconds': { type: 'string', default: '5' },
    'extra-rounds': { type: 'string', default: '2' },
    profile: { type: 'string' },
    hold: { type: 'boolean', default: false },
    'warden-js': { type: 'string' },
    'pg-paths': { type: 'string' },
    help: { type: 'boolean', default: false },
  },
});
if (args.help) {
  console.log(`Usage: npm run bench:db -- [--only=mysql|postgres] [options]

  --only=P          mysql or postgres (default both)
  --rounds=N        rounds per workload, alternating Warden and the baseline (default 5)
  MySQL:       --queries=N (point selects per round, default 2000), --connects=N (default 50)
  PostgreSQL:  --seconds=S (pgbench run, default 10), --clients=LIST (default 4,16,64),
               --extra-seconds=S, --extra-rounds=N (the client counts after the first; 5, 2),
               --pg-paths=LIST (of direct, warden, socket, proxy, pgbouncer, relay; default all)
  --profile=DIR     warden and wsh write V8 CPU profiles to DIR
  --hold            set up, print each path's settings and wait for Ctrl-C
  --warden-js=FILE  run another build's warden.js (before/after comparisons)

Needs a build (npm run build), mariadbd, mariadb-install-db, postgresql-15 and openssl.`);
  process.exit(0);
}
/** `--pg-paths=proxy,pgbouncer`: only these PostgreSQL paths run pgbench (default: all of them). */
const PG_PATHS = args['pg-paths']?.split(',');
const PG_PATH_NAMES = ['direct', 'warden', 'socket', 'proxy', 'pgbouncer', 'relay'];
if (PG_PATHS?.some((p) => !PG_PATH_NAMES.includes(p)))
  throw new Error(`--pg-paths: a comma-separated list of ${PG_PATH_NAMES.join(', ')}`);
/** `--profile=DIR`: warden and wsh write V8 CPU profiles there (`node --cpu-prof`). */
const nodeArgs = args.profile ? ['--cpu-prof', `--cpu-prof-dir=${args.profile}`] : [];
const QUERIES = Number(args.queries);
const CONNECTS = Number(args.connects);
const ROUNDS = Number(args.rounds);
const SECONDS = Number(args.seconds);
/** pgbench client counts, each a run of its own (`--clients 4,16,64`). */
const CLIENTS = args.clients.split(',').map(Number);
if (CLIENTS.some((c) => !Number.isSafeInteger(c) || c < 1))
  throw new Error('--clients: numbers like 4,16,64');
/**
 * The first client count (the goal's `-c4`) runs `--rounds` × `--seconds`; the others are
 * reported, not judged by the goal alone, and run `--extra-rounds` × `--extra-seconds`
 * (2 × 5 s by default) so that the whole bench ends in a few minutes.
 */
const EXTRA_SECONDS = Number(args['extra-seconds']);
const EXTRA_ROUNDS = Number(args['extra-rounds']);
/** Every goal measured in this run, for the verdict at the end. */
const goals: Goal[] = [];
const PASSWORD = 'correct horse battery staple';

/** The median of the rounds that produced a figure (a failed round is NaN); NaN when none did. */
function median(values: number[]): number {
  const s = values.filter(Number.isFinite).sort((a, b) => a - b);
  if (s.length === 0) return Number.NaN;
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** Runs `fn` and returns its wall time in ms. */
async function timed(fn: () => Promise<unknown>): Promise<number> {
  const start = performance.now();
  await fn();
  return performance.now() - start;
}

/**
 * The role bench-db (db user "bench", every database) and the user "bencher" with it, signed
 * up with TOTP and logged in; returns their env.
 */
async function benchDbUser(w: WardenProcess): Promise<NodeJS.ProcessEnv> {
  await create(
    w,
    'role',
    'kind: role\nversion: v7\nmetadata:\n  name: bench-db\nspec:\n  allow:\n    db_labels: { "*": "*" }\n    db_users: [bench]\n    db_names: ["*"]\n',
  );
  const user = 'bencher';
  return (
    await addUserAndLogin(w, user, {
      roles: 'bench-db',
      home: join(w.dir, `home-${user}`),
      password: PASSWORD,
    })
  ).env;
}

/**
 * The database's server certificate from the db CA, as an admin makes it (`wctl auth sign
 * --format=db`): files `<w.dir>/<name>.{crt,key,cas}` and their contents.
 */
async function signDbServer(
  w: WardenProcess,
  name: string,
): Promise<{ prefix: string; cert: string; key: string; ca: string }> {
  const prefix = join(w.dir, name);
  const signed = await runCli(
    'wctl',
    ['auth', 'sign', '--format=db', '--host=localhost,127.0.0.1', `--out=${prefix}`],
    { env: w.env },
  );
  if (signed.code !== 0) throw new Error(`wctl auth sign failed:\n${signed.stderr}`);
  const read = (ext: string) => readFileSync(`${prefix}.${ext}`, 'utf8');
  return { prefix, cert: read('crt'), key: read('key'), ca: read('cas') };
}

/**
 * `wsh db login NAME` as the bench user (db user bench, database benchdb): the database
 * certificate for native clients straight at the proxy; returns what `wsh db config` says
 * (where to connect, the CA, certificate and key files).
 */
async function directLogin(
  env: NodeJS.ProcessEnv,
  name: string,
): Promise<{ host: string; port: number; ca: string; cert: string; key: string }> {
  const login = await runCli('wsh', ['db', 'login', name, '--db-user=bench', '--db-name=benchdb'], { env });
  if (login.code !== 0) throw new Error(`wsh db login ${name} failed:\n${login.stderr}`);
  const config = await runCli('wsh', ['db', 'config', name, '--format=json'], { env });
  if (config.code !== 0) throw new Error(`wsh db config ${name} failed:\n${config.stderr}`);
  const c = JSON.parse(config.stdout) as {
    host?: string;
    port?: number;
    ca: string;
    cert: string;
    key: string;
  };
  if (!c.host || !c.port)
    throw new Error(`wsh db config ${name} names no direct endpoint:\n${config.stdout}`);
  return { host: c.host, port: c.port, ca: c.ca, cert: c.cert, key: c.key };
}

/** Runs `wctl create` on a YAML document. */
async function create(w: WardenProcess, name: string, yaml: string): Promise<void> {
  const file = join(w.dir, `${name}.yaml`);
  writeFileSync(file, yaml);
  const res = await runCli('wctl', ['create', file], { env: w.env });
  if (res.code !== 0) throw new Error(`wctl create ${name} failed:\n${res.stderr}`);
}

/**
 * Starts `wsh proxy db NAME --tunnel` on `where` (`-p PORT`, or `--socket=PATH`) and waits for
 * it to listen.
 */
async function startTunnel(
  env: NodeJS.ProcessEnv,
  name: string,
  where: string[],
): Promise<ReturnType<typeof spawnCli>> {
  const tunnel = spawnCli(
    'wsh',
    ['proxy', 'db', name, '--tunnel', ...where, '--db-user=bench', '--db-name=benchdb'],
    { env, nodeArgs },
  );
  const deadline = Date.now() + 20_000;
  while (!/Started a tunnel/.test(tunnel.stdout())) {
    if (Date.now() > deadline || tunnel.child.exitCode !== null) {
      tunnel.child.kill('SIGTERM');
      throw new Error(`wsh proxy db ${where.join(' ')} did not start:\n${tunnel.stderr()}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return tunnel;
}

interface Row {
  workload: string;
  unit: string;
  /** Per round (higher is better, except for latencies). */
  direct: number[];
  /** Through the TCP tunnel (`wsh proxy db --tunnel -p PORT`). */
  warden: number[];
  /** Through the Unix-socket tunnel (`wsh proxy db --tunnel --socket=PATH`), same run. */
  socket?: number[];
  /** Straight to the proxy with the database certificate (`wsh db login`: no wsh in the path). */
  proxy?: number[];
  /** Per round, when pgbouncer took part. */
  pgbouncer?: number[];
  /** Per round, when the bare Node relay took part (`pg-relay-floor.mjs`). */
  relay?: number[];
}

/** A row with no rounds yet: the three Warden paths and the direct one (and pgbouncer's). */
function emptyRow(workload: string, unit: string, o: { pgbouncer?: boolean; relay?: boolean } = {}): Row {
  return {
    workload,
    unit,
    direct: [],
    warden: [],
    socket: [],
    proxy: [],
    ...(o.pgbouncer ? { pgbouncer: [] } : {}),
    ...(o.relay ? { relay: [] } : {}),
  };
}

function printTable(title: string, rows: Row[]): void {
  const withSocket = rows.some((r) => r.socket?.length);
  const withProxy = rows.some((r) => r.proxy?.length);
  const bouncer = rows.some((r) => r.pgbouncer?.length);
  const withRelay = rows.some((r) => r.relay?.length);
  const lines = [
    [
      'workload',
      'direct',
      'warden (TCP)',
      'warden/direct',
      ...(withSocket ? ['warden (socket)', 'socket/direct'] : []),
      ...(withProxy ? ['warden (no wsh)', 'no-wsh/direct'] : []),
      ...(bouncer ? ['pgbouncer', 'pgbouncer/direct'] : []),
      ...(withRelay ? ['node relay', 'relay/direct'] : []),
    ],
    ...rows.map((r) => {
      const d = median(r.direct);
      const w = median(r.warden);
      const fmt = (v: number) =>
        Number.isFinite(v) ? `${v >= 100 ? v.toFixed(0) : v.toFixed(v >= 10 ? 1 : 2)} ${r.unit}` : '-';
      const ratio = (x: number) => (d > 0 ? (x / d).toFixed(2) : '-');
      const column = (on: boolean, values: number[] | undefined) => {
        if (!on) return [];
        const v = values?.length ? median(values) : undefined;
        return v === undefined ? ['-', '-'] : [fmt(v), ratio(v)];
      };
      return [
        r.workload,
        d > 0 ? fmt(d) : '-',
        fmt(w),
        ratio(w),
        ...column(withSocket, r.socket),
        ...column(withProxy, r.proxy),
        ...column(bouncer, r.pgbouncer),
        ...column(withRelay, r.relay),
      ];
    }),
  ];
  const widths = lines[0]!.map((_, i) => Math.max(...lines.map((l) => l[i]!.length)));
  process.stdout.write(`\n${title}\n`);
  for (const l of lines) process.stdout.write(`${l.map((c, i) => c.padEnd(widths[i]!)).join('   ')}\n`);
}

/** The MySQL half: a query loop and friends through Warden against direct TLS to MariaDB. */
async function benchMysql(): Promise<void> {
  const check = requireMariaDb();
  if (!check.ok) {
    process.stdout.write(`\nMySQL: ${check.skip}\n`);
    return;
  }
  let w: WardenProcess | undefined;
  let db: MariaDbServer | undefined;
  let tunnel: ReturnType<typeof spawnCli> | undefined;
  let socketTunnel: ReturnType<typeof spawnCli> | undefined;
  try {
    // 1. Warden (with its MySQL listener for native clients), a role for the db user "bench",
    //    a user with it.
    const mysqlListen = await freePort();
    w = await startWarden({
      configYaml: 'db_service:\n  enabled: true\n',
      proxyLimitsYaml: `  mysql_listen_addr: 127.0.0.1:${mysqlListen}\n`,
      nodeArgs,
      // `--warden-js=PATH`: another build's warden (a before/after comparison of the MySQL paths).
      ...(args['warden-js'] ? { wardenJs: args['warden-js'] } : {}),
    });
    const env = await benchDbUser(w);

    // 2. MariaDB with a certificate from the db CA; "bench" by certificate, "direct" by password.
    const { ca, cert, key } = await signDbServer(w, 'mariadb');
    const cluster = /^O=(.*)$/m.exec(new X509Certificate(ca).subject)?.[1];
    if (!cluster) throw new Error('cannot read the cluster name from the db CA');
    db = await startMariaDb({ tls: { cert, key, ca } });
    db.sql(
      [
        `CREATE USER 'bench'@'%' REQUIRE SUBJECT '/CN=bench/O=${cluster}'`,
        "CREATE USER 'direct'@'%' IDENTIFIED BY 'direct-pw' REQUIRE SSL",
        'CREATE DATABASE benchdb',
        "GRANT ALL ON benchdb.* TO 'bench'@'%', 'direct'@'%'",
      ].join(';'),
    );
    db.sql(
      'CREATE TABLE t (id INT PRIMARY KEY, name VARCHAR(40)); INSERT INTO t SELECT seq, md5(seq) FROM seq_1_to_1000',
      'benchdb',
    );
    await create(
      w,
      'db',
      `kind: db\nversion: v3\nmetadata:\n  name: mariadb\n  labels: { env: bench }\nspec:\n  protocol: mysql\n  uri: "127.0.0.1:${db.port}"\n`,
    );

    // 3. The Warden paths: a local tunnel on a loopback port, one on a Unix socket, and mysql2
    //    straight at the proxy's MySQL listener with the database certificate (no wsh).
    const d = await directLogin(env, 'mariadb');
    const port = await freePort();
    tunnel = await startTunnel(env, 'mariadb', ['-p', String(port)]);
    const socketPath = join(w.dir, 'mariadb-tunnel.sock');
    socketTunnel = await startTunnel(env, 'mariadb', [`--socket=${socketPath}`]);
    const paths = {
      direct: {
        host: '127.0.0.1',
        port: db.port,
        user: 'direct',
        password: 'direct-pw',
        database: 'benchdb',
        ssl: { ca, servername: 'localhost' },
      },
      warden: { host: '127.0.0.1', port, user: 'bench', database: 'benchdb' },
      socket: { socketPath, user: 'bench', database: 'benchdb' },
      proxy: {
        host: d.host,
        port: d.port,
        user: 'bench',
        database: 'benchdb',
        ssl: {
          ca: readFileSync(d.ca, 'utf8'),
          cert: readFileSync(d.cert, 'utf8'),
          key: readFileSync(d.key, 'utf8'),
        },
      },
    } as const;
    const version = db.version;
    if (args.hold) {
      // Everything stays up for perf/strace: each path's mysql2 options and the pids.
      // The no-wsh path by its files (ca, cert, key), never the key itself.
      await holdUntilSignal({
        paths: { ...paths, proxy: { ...paths.proxy, ssl: { ca: d.ca, cert: d.cert, key: d.key } } },
        pids: { warden: w.child.pid, wsh: tunnel.child.pid, wshSocket: socketTunnel.child.pid },
      });
      return;
    }

    // 4. Workloads, alternating paths each round.
    const row = (workload: string, unit: string) => emptyRow(workload, unit);
    const rows: Row[] = [
      row(`point select, text (${QUERIES} queries)`, 'q/s'),
      row(`point select, prepared (${QUERIES})`, 'q/s'),
      row(`connect + query + close (${CONNECTS})`, 'conn/s'),
      row('large result (200k rows)', 'rows/s'),
    ];
    // CPU of the processes between the client and MariaDB on each warden path (warden + its
    // wsh; warden alone without wsh): what the path costs whatever the load.
    const cpuRows: Row[] = [
      row('CPU per point select (text), warden (+ wsh)', 'µs'),
      row('CPU per connect + query + close, warden (+ wsh)', 'µs'),
    ];
    const between = {
      direct: [],
      warden: [w.child.pid, tunnel.child.pid],
      socket: [w.child.pid, socketTunnel.child.pid],
      proxy: [w.child.pid],
    };
    const cpuNow = (path: keyof typeof paths) =>
      between[path].reduce<number>((sum, pid) => sum + (cpuMs(pid) ?? 0), 0);
    const ids = Array.from({ length: QUERIES }, (_, i) => (i % 1000) + 1);
    const names = ['direct', 'warden', 'socket', 'proxy'] as const;
    for (let round = 0; round < ROUNDS; round++) {
      const order = round % 2 === 0 ? names : [...names].reverse();
      for (const path of order) {
        const options = paths[path];
        const conn = await mysql.createConnection(options);
        try {
          const cpu0 = cpuNow(path);
          const text = await timed(async () => {
            for (const id of ids) await conn.query('SELECT id, name FROM t WHERE id = ?', [id]);
          });
          rows[0]![path]!.push((QUERIES / text) * 1000);
          if (path !== 'direct') cpuRows[0]![path]!.push(((cpuNow(path) - cpu0) * 1000) / QUERIES);
          const prepared = await timed(async () => {
            for (const id of ids) await conn.execute('SELECT id, name FROM t WHERE id = ?', [id]);
          });
          rows[1]![path]!.push((QUERIES / prepared) * 1000);
          const large = await timed(() => conn.query('SELECT seq, md5(seq) FROM seq_1_to_200000'));
          rows[3]![path]!.push((200_000 / large) * 1000);
        } finally {
          await conn.end();
        }
        const cpu1 = cpuNow(path);
        const connects = await timed(async () => {
          for (let i = 0; i < CONNECTS; i++) {
            const c = await mysql.createConnection(options);
            await c.query('SELECT 1');
            await c.end();
          }
        });
        rows[2]![path]!.push((CONNECTS / connects) * 1000);
        if (path !== 'direct') cpuRows[1]![path]!.push(((cpuNow(path) - cpu1) * 1000) / CONNECTS);
      }
      process.stderr.write(`mysql round ${round + 1}/${ROUNDS} done\n`);
    }
    printTable(
      `MySQL: ${version} through Warden (wsh proxy db --tunnel on a loopback port, and on a Unix socket → proxy → db_service → TLS; and mysql2 with the database certificate straight at the proxy's MySQL listener, no wsh) vs mysql2 direct over TLS; medians of ${ROUNDS} rounds (${loadAverage()})`,
      [...rows, ...cpuRows],
    );
    // Each goal for both tunnels: the loopback port (what every client can use) and the socket.
    for (const [r, min, what] of [
      [rows[0]!, 0.7, 'MySQL point select (text)'],
      [rows[1]!, 0.7, 'MySQL point select (prepared)'],
      [rows[2]!, 0.5, 'MySQL connection setup'],
      [rows[3]!, 0.7, 'MySQL 200k-row result'],
    ] as const) {
      for (const path of ['warden', 'socket', 'proxy'] as const) {
        const label = `${what} warden ${{ warden: 'TCP', socket: 'socket', proxy: 'no-wsh' }[path]}/direct`;
        const g = goal(label, median(r[path]!) / median(r.direct), { min });
        goals.push(g);
        process.stdout.write(`${label}: ${g.text}\n`);
      }
    }
  } finally {
    tunnel?.child.kill('SIGTERM');
    socketTunnel?.child.kill('SIGTERM');
    await db?.stop();
    await w?.stop();
  }
}

/** Environment without the caller's own PG* settings, plus `pg`. */
function pgEnv(pg: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('PG')) env[k] = v;
  return { ...env, ...pg };
}

/** `--hold`: prints what to reach by hand (JSON: addresses, pids) and waits for Ctrl-C or SIGTERM. */
async function holdUntilSignal(info: unknown): Promise<void> {
  process.stdout.write(`${JSON.stringify(info, null, 2)}\n`);
  await new Promise<void>((r) => {
    process.once('SIGINT', r);
    process.once('SIGTERM', r);
  });
}

/**
 * Runs pgbench with `args` and `env`; rejects with its output when it fails or outlives its
 * time. Asynchronous on purpose: while pgbench runs, this process must keep reading the pipes
 * of the processes it started (warden, wsh, pgbouncer). With spawnSync nobody read them, and
 * pgbouncer, which logs every connection, blocked in write(2) on a full stderr pipe at -c64:
 * its pgbench never got an answer ("did no transaction", or a hang until the timeout).
 */
async function pgbench(bin: string, args: string[], env: NodeJS.ProcessEnv): Promise<string> {
  const child = spawn(bin, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const r = await collectProcess(child, { timeoutMs: (SECONDS + 120) * 1000, timeout: 'kill' });
  if (r.code === 0) return r.stdout;
  throw new Error(`pgbench ${args.join(' ')} failed (${r.code}):\n${r.stdout}\n${r.stderr}`);
}

/**
 * tps and average latency (ms) from a pgbench report; NaN (printed as "-", the goal not met)
 * when the run did no transaction at all (e.g. not every client connected in time).
 */
function pgbenchFigures(out: string): { tps: number; latency: number } {
  const tps = Number(/^tps = ([\d.]+)/m.exec(out)?.[1]);
  const latency = Number(/^latency average = ([\d.]+) ms/m.exec(out)?.[1]);
  if (!Number.isFinite(tps) || !Number.isFinite(latency)) {
    process.stderr.write(`pgbench did no transaction:\n${out}\n`);
    return { tps: Number.NaN, latency: Number.NaN };
  }
  return { tps, latency };
}

/**
 * A throwaway CA and a client certificate with CN `user` from it (openssl), for the direct
 * path: PostgreSQL trusts this CA next to the db CA.
 */
function directClientCert(dir: string, user: string): { ca: string; cert: string; key: string } {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  const steps = [
    [
      'req',
      '-x509',
      ...ec,
      '-keyout',
      'ca.key',
      '-out',
      'ca.crt',
      '-subj',
      '/CN=bench direct CA',
      '-days',
      '1',
    ],
    ['req', ...ec, '-keyout', 'client.key', '-out', 'client.csr', '-subj', `/CN=${user}`],
    [
      'x509',
      '-req',
      '-in',
      'client.csr',
      '-CA',
      'ca.crt',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-out',
      'client.crt',
      '-days',
      '1',
    ],
  ];
  for (const step of steps) {
    const res = spawnSync('openssl', step, { cwd: dir, encoding: 'utf8' });
    if (res.status !== 0) throw new Error(`openssl ${step.join(' ')} failed:\n${res.stderr}`);
  }
  chmodSync(join(dir, 'client.key'), 0o600);
  return { ca: join(dir, 'ca.crt'), cert: join(dir, 'client.crt'), key: join(dir, 'client.key') };
}

/**
 * pgbouncer between pgbench and PostgreSQL with certificates on both sides (clients: the
 * database's certificate and `auth_type = cert`; server: the direct path's client certificate),
 * transaction pooling. As root it runs as `nobody` (it refuses root), from a dir it owns.
 */
async function startPgbouncer(o: {
  dir: string;
  pgPort: number;
  serverCert: { cert: string; key: string; ca: string };
  clientCert: { cert: string; key: string; ca: string };
}): Promise<{ port: number; pid: number | undefined; stop(): void }> {
  mkdirSync(o.dir, { recursive: true, mode: 0o700 });
  const files: Record<string, string> = {};
  for (const [name, from] of Object.entries({
    'listen.crt': o.serverCert.cert,
    'listen.key': o.serverCert.key,
    'clients-ca.crt': o.serverCert.ca,
    'server-client.crt': o.clientCert.cert,
    'server-client.key': o.clientCert.key,
    'server-ca.crt': o.clientCert.ca,
  })) {
    files[name] = join(o.dir, name);
    writeFileSync(files[name], readFileSync(from), { mode: 0o600 });
  }
  const port = await freePort();
  const ini = join(o.dir, 'pgbouncer.ini');
  writeFileSync(
    ini,
    [
      '[databases]',
      `benchdb = host=127.0.0.1 port=${o.pgPort} dbname=benchdb`,
      '[pgbouncer]',
      'listen_addr = 127.0.0.1',
      `listen_port = ${port}`,
      "unix_socket_dir = ''",
      'auth_type = cert',
      `auth_file = ${join(o.dir, 'userlist.txt')}`,
      'pool_mode = transaction',
      `default_pool_size = ${Math.max(...CLIENTS)}`,
      'max_client_conn = 200',
      'client_tls_sslmode = verify-full',
      `client_tls_cert_file = ${files['listen.crt']}`,
      `client_tls_key_file = ${files['listen.key']}`,
      `client_tls_ca_file = ${files['clients-ca.crt']}`,
      'server_tls_sslmode = verify-ca',
      `server_tls_cert_file = ${files['server-client.crt']}`,
      `server_tls_key_file = ${files['server-client.key']}`,
      `server_tls_ca_file = ${files['server-ca.crt']}`,
      '',
    ].join('\n'),
  );
  writeFileSync(join(o.dir, 'userlist.txt'), '"bench" ""\n', { mode: 0o600 });
  let argv = ['pgbouncer', ini];
  if (process.getuid?.() === 0) {
    const entry = spawnSync('getent', ['passwd', 'nobody'], { encoding: 'utf8' }).stdout.split(':');
    const [uid, gid] = [Number(entry[2]), Number(entry[3])];
    for (const f of [o.dir, ini, join(o.dir, 'userlist.txt'), ...Object.values(files)])
      chownSync(f, uid, gid);
    argv = ['setpriv', `--reuid=${uid}`, `--regid=${gid}`, '--clear-groups', '--', ...argv];
  }
  const child = spawn(argv[0]!, argv.slice(1), { cwd: o.dir, stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  // Only the tail is kept (it logs every connection), for the error when it does not start.
  const keep = (d: Buffer) => {
    log = (log + d).slice(-16_384);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  try {
    await waitForListener(port, {
      name: 'pgbouncer',
      log: () => log,
      exited: () => child.exitCode !== null,
      timeoutMs: 20_000,
    });
  } catch (e) {
    child.kill('SIGKILL');
    throw e;
  }
  // setpriv execs pgbouncer: the child's pid is pgbouncer's.
  return { port, pid: child.pid, stop: () => child.kill('SIGTERM') };
}

/**
 * The bare Node relay (`pg-relay-floor.mjs`), with pgbouncer's certificates on both sides: the
 * floor under any proxy on Node's streams and TLS, for the CPU budget in bench/README.md.
 */
async function startRelay(o: {
  pgPort: number;
  listen: { cert: string; key: string; ca: string };
  upstream: { cert: string; key: string; ca: string };
}): Promise<{ port: number; pid: number | undefined; stop(): void }> {
  const script = join(import.meta.dirname, 'pg-relay-floor.mjs');
  const child = spawn(process.execPath, [script, JSON.stringify(o)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stderr!.on('data', (d: Buffer) => {
    out = (out + d).slice(-4096);
  });
  try {
    const port = await new Promise<number>((resolve, reject) => {
      child.stdout!.on('data', (d: Buffer) => {
        out += d;
        const m = /listening (\d+)/.exec(out);
        if (m) resolve(Number(m[1]));
      });
      child.once('exit', (code) => reject(new Error(`the node relay exited (${code}):\n${out}`)));
      setTimeout(() => reject(new Error(`the node relay did not start:\n${out}`)), 20_000).unref();
    });
    return { port, pid: child.pid, stop: () => child.kill('SIGTERM') };
  } catch (e) {
    child.kill('SIGKILL');
    throw e;
  }
}

/**
 * The PostgreSQL half: `pgbench -S` through Warden against pgbench straight to PostgreSQL over
 * TLS with a client certificate (and through pgbouncer when installed), same run.
 */
async function benchPostgres(): Promise<void> {
  const check = requirePostgres();
  const bin = postgresBinDir();
  const pgbenchBin = bin === undefined ? undefined : join(bin, 'pgbench');
  if (!check.ok || pgbenchBin === undefined || !existsSync(pgbenchBin)) {
    process.stdout.write(
      `\nPostgreSQL: ${check.skip || 'skipped: pgbench is not installed (postgresql-15)'}\n`,
    );
    return;
  }
  const haveBouncer = spawnSync('sh', ['-c', 'command -v pgbouncer'], { encoding: 'utf8' }).status === 0;
  let w: WardenProcess | undefined;
  let server: PostgresServer | undefined;
  let tunnel: ReturnType<typeof spawnCli> | undefined;
  let socketTunnel: ReturnType<typeof spawnCli> | undefined;
  let bouncer: Awaited<ReturnType<typeof startPgbouncer>> | undefined;
  let relayProcess: Awaited<ReturnType<typeof startRelay>> | undefined;
  // As root pgbouncer runs as nobody, who must reach the dir (TMPDIR may be private).
  const bouncerDir = join(
    process.getuid?.() === 0 ? '/tmp' : tmpdir(),
    `warden-bench-pgbouncer-${process.pid}`,
  );
  try {
    // 1. Warden, a role for the db user "bench", a user with it.
    w = await startWarden({
      configYaml: 'db_service:\n  enabled: true\n',
      nodeArgs,
      ...(args['warden-js'] ? { wardenJs: args['warden-js'] } : {}),
    });
    const env = await benchDbUser(w);

    // 2. PostgreSQL as the e2e tests set it up (certificate from the db CA, `cert` auth only),
    //    also trusting the direct path's own CA.
    const signed = await signDbServer(w, 'pg');
    const prefix = signed.prefix;
    const direct = directClientCert(join(w.dir, 'direct'), 'bench');
    server = await startPostgres({
      tls: { cert: signed.cert, key: signed.key, ca: signed.ca + readFileSync(direct.ca, 'utf8') },
      hba: ['hostssl all all 127.0.0.1/32 cert'],
    });
    server.psql('CREATE ROLE bench LOGIN');
    server.psql('CREATE DATABASE benchdb OWNER bench');
    await create(
      w,
      'db',
      `kind: db\nversion: v3\nmetadata:\n  name: pg\n  labels: { env: bench }\nspec:\n  protocol: postgres\n  uri: "127.0.0.1:${server.port}"\n`,
    );

    // 3. The paths: direct TLS with verify-full and a client certificate; the Warden tunnel
    //    (plain to the local listener, TLS beyond it); pgbouncer if installed.
    const paths: Record<string, NodeJS.ProcessEnv> = {
      direct: pgEnv({
        PGHOST: 'localhost',
        PGHOSTADDR: '127.0.0.1',
        PGPORT: String(server.port),
        PGUSER: 'bench',
        PGDATABASE: 'benchdb',
        PGSSLMODE: 'verify-full',
        PGSSLROOTCERT: `${prefix}.cas`,
        PGSSLCERT: direct.cert,
        PGSSLKEY: direct.key,
      }),
    };
    await pgbench(pgbenchBin, ['-i', '-s', '1', '-q'], paths.direct!);
    const port = await freePort();
    tunnel = await startTunnel(env, 'pg', ['-p', String(port)]);
    paths.warden = pgEnv({
      PGHOST: '127.0.0.1',
      PGPORT: String(port),
      PGUSER: 'bench',
      PGDATABASE: 'benchdb',
      PGSSLMODE: 'disable',
    });
    // The same tunnel on a Unix socket: w.dir/.s.PGSQL.<port>, found by libpq as host=w.dir.
    socketTunnel = await startTunnel(env, 'pg', [`--socket=${w.dir}`, '-p', String(port)]);
    paths.socket = pgEnv({
      PGHOST: w.dir,
      PGPORT: String(port),
      PGUSER: 'bench',
      PGDATABASE: 'benchdb',
      PGSSLMODE: 'disable',
    });
    // pgbench straight at the proxy port with the database certificate (`wsh db login`): libpq's
    // SSLRequest, then TLS with it; no wsh in the path.
    const d = await directLogin(env, 'pg');
    paths.proxy = pgEnv({
      PGHOST: d.host,
      PGPORT: String(d.port),
      PGUSER: 'bench',
      PGDATABASE: 'benchdb',
      PGSSLMODE: 'verify-full',
      PGSSLROOTCERT: d.ca,
      PGSSLCERT: d.cert,
      PGSSLKEY: d.key,
    });
    if (haveBouncer) {
      bouncer = await startPgbouncer({
        dir: bouncerDir,
        pgPort: server.port,
        serverCert: { cert: `${prefix}.crt`, key: `${prefix}.key`, ca: direct.ca },
        clientCert: { cert: direct.cert, key: direct.key, ca: `${prefix}.cas` },
      });
      paths.pgbouncer = { ...paths.direct, PGPORT: String(bouncer.port) };
    }
    // The bare Node relay, set up as pgbouncer is (not a goal: what Node itself costs).
    relayProcess = await startRelay({
      pgPort: server.port,
      listen: { cert: `${prefix}.crt`, key: `${prefix}.key`, ca: direct.ca },
      upstream: { cert: direct.cert, key: direct.key, ca: `${prefix}.cas` },
    });
    paths.relay = { ...paths.direct, PGPORT: String(relayProcess.port) };
    const version = server.psql('SHOW server_version').trim();

    // 4. pgbench -S on each path, alternating the order each round, for each client count.
    //    CPU per transaction of the processes between pgbench and PostgreSQL (warden + wsh;
    //    pgbouncer) comes from /proc: it says how much work a path does, whatever the load.
    const names = (
      Object.keys(paths) as ('direct' | 'warden' | 'socket' | 'proxy' | 'pgbouncer' | 'relay')[]
    ).filter((name) => PG_PATHS === undefined || PG_PATHS.includes(name));
    const middle: Record<string, (number | undefined)[]> = {
      direct: [],
      warden: [w.child.pid, tunnel.child.pid],
      socket: [w.child.pid, socketTunnel.child.pid],
      proxy: [w.child.pid],
      pgbouncer: [bouncer?.pid],
      relay: [relayProcess.pid],
    };
    const cpuOf = (path: string) => middle[path]!.reduce<number>((sum, pid) => sum + (cpuMs(pid) ?? 0), 0);
    if (args.hold) {
      // Everything stays up for perf/strace: the environment of each path and the pids.
      const envOf = (e: NodeJS.ProcessEnv) =>
        Object.entries(e)
          .filter(([k]) => k.startsWith('PG'))
          .map(([k, v]) => `${k}=${v}`)
          .join(' ');
      await holdUntilSignal({
        pgbench: pgbenchBin,
        paths: Object.fromEntries(Object.entries(paths).map(([k, v]) => [k, envOf(v)])),
        pids: {
          warden: w.child.pid,
          wsh: tunnel.child.pid,
          wshSocket: socketTunnel.child.pid,
          pgbouncer: bouncer?.pid,
          relay: relayProcess.pid,
        },
      });
      return;
    }
    for (const [index, clients] of CLIENTS.entries()) {
      const seconds = index === 0 ? SECONDS : EXTRA_SECONDS;
      const rounds = index === 0 ? ROUNDS : EXTRA_ROUNDS;
      const row = (workload: string, unit: string) =>
        emptyRow(workload, unit, { pgbouncer: !!bouncer, relay: names.includes('relay') });
      const rows: Row[] = [
        row(`pgbench -S -c ${clients} -T ${seconds}: tps`, 'tps'),
        row('latency average (lower is better)', 'ms'),
        row('CPU per transaction, between (lower is better)', 'µs'),
      ];
      // Each warden path's CPU split between its two processes (proxy + db_service; wsh).
      const split: Row[] = [
        {
          workload: '  of which warden (proxy + db_service)',
          unit: 'µs',
          direct: [],
          warden: [],
          socket: [],
          proxy: [],
        },
        { workload: '  of which wsh proxy db --tunnel', unit: 'µs', direct: [], warden: [], socket: [] },
      ];
      const select = [
        '-S',
        '-n',
        '-c',
        String(clients),
        '-j',
        String(Math.min(clients, 4)),
        '-T',
        String(seconds),
      ];
      for (let round = 0; round < rounds; round++) {
        const order = round % 2 === 0 ? names : [...names].reverse();
        for (const path of order) {
          const cpu0 = cpuOf(path);
          const each0 = middle[path]!.map((pid) => cpuMs(pid) ?? 0);
          let out: string;
          try {
            out = await pgbench(pgbenchBin, select, paths[path]!);
          } catch (e) {
            // A run that hangs or fails (a loaded machine) is a "-" for that path, not the end.
            process.stderr.write(`postgres -c ${clients} ${path}: ${(e as Error).message.split('\n')[0]}\n`);
            out = '';
          }
          const { tps, latency } = pgbenchFigures(out);
          const transactions = Number(/^number of transactions actually processed: (\d+)/m.exec(out)?.[1]);
          rows[0]![path]!.push(tps);
          rows[1]![path]!.push(latency);
          rows[2]![path]!.push(((cpuOf(path) - cpu0) * 1000) / transactions);
          if (path === 'warden' || path === 'socket' || path === 'proxy') {
            middle[path]!.forEach((pid, i) => {
              split[i]![path]!.push((((cpuMs(pid) ?? 0) - each0[i]!) * 1000) / transactions);
            });
          }
        }
        process.stderr.write(`postgres -c ${clients} round ${round + 1}/${rounds} done (${loadAverage()})\n`);
      }
      printTable(
        `PostgreSQL ${version}: pgbench -S -c ${clients} through Warden (wsh proxy db --tunnel on a loopback port, and on a Unix socket → proxy → db_service → TLS; and pgbench with the database certificate straight at the proxy port, no wsh) vs direct over TLS with a client certificate; medians of ${rounds} rounds of ${seconds} s (${loadAverage()})`,
        [...rows, ...split],
      );
      if (bouncer) {
        for (const path of ['warden', 'socket', 'proxy'] as const) {
          if (!names.includes(path) || !names.includes('pgbouncer')) continue;
          const label = `pgbench -S -c${clients} warden ${{ warden: 'TCP', socket: 'socket', proxy: 'no-wsh' }[path]}/pgbouncer`;
          const g = goal(label, median(rows[0]![path]!) / median(rows[0]!.pgbouncer!), { min: 1.0 });
          goals.push(g);
          process.stdout.write(`${label} tps: ${g.text}\n`);
        }
      }
      // Not a goal: how much of warden's CPU per transaction any Node proxy pays, and how much
      // pgbouncer's C costs next to that floor (bench/README.md, "the CPU budget").
      const cpu = (path: 'proxy' | 'relay' | 'pgbouncer') => median(rows[2]![path] ?? []);
      if (names.includes('relay') && names.includes('proxy'))
        process.stdout.write(
          `CPU per transaction -c${clients}: warden no-wsh ${cpu('proxy').toFixed(0)} µs = ${(cpu('proxy') / cpu('relay')).toFixed(2)}× the bare Node relay (${cpu('relay').toFixed(0)} µs)` +
            (names.includes('pgbouncer')
              ? `; the Node relay = ${(cpu('relay') / cpu('pgbouncer')).toFixed(2)}× pgbouncer (${cpu('pgbouncer').toFixed(0)} µs)`
              : '') +
            '\n',
        );
    }
    if (!bouncer) process.stdout.write('pgbouncer: skipped (not installed)\n');
  } finally {
    bouncer?.stop();
    relayProcess?.stop();
    rmSync(bouncerDir, { recursive: true, force: true });
    tunnel?.child.kill('SIGTERM');
    socketTunnel?.child.kill('SIGTERM');
    await server?.stop();
    await w?.stop();
  }
}

const sections: Record<string, () => Promise<void>> = { mysql: benchMysql, postgres: benchPostgres };
if (args.only !== undefined && !(args.only in sections)) {
  process.stderr.write(`--only must be one of: ${Object.keys(sections).join(', ')}\n`);
  process.exit(2);
}
for (const [name, run] of Object.entries(sections))
  if (args.only === undefined || args.only === name) await run();
process.stdout.write(`\n${verdict('bench:db', goals)}\n`);
