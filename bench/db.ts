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
 * Warden is a `db.query` audit event: with the default SQLite audit log (`synchronous=FULL`)
 * that is one fsync per statement, which dominates the point-select figures on most disks.
 *
 *   npm run build && npm run bench:db                (needs mariadbd, mariadb-install-db)
 *   npm run bench:db -- --only=mysql --queries 500 --rounds 3
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import {
  Authenticator,
  freePort,
  type MariaDbServer,
  requireMariaDb,
  runCli,
  signupWithTotp,
  spawnCli,
  startMariaDb,
  startWarden,
  type WardenProcess,
} from '@warden/testkit';
import mysql from 'mysql2/promise';

const { values: args } = parseArgs({
  options: {
    only: { type: 'string' },
    queries: { type: 'string', default: '2000' },
    connects: { type: 'string', default: '50' },
    rounds: { type: 'string', default: '5' },
  },
});
const QUERIES = Number(args.queries);
const CONNECTS = Number(args.connects);
const ROUNDS = Number(args.rounds);
const PASSWORD = 'correct horse battery staple';

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** Runs `fn` and returns its wall time in ms. */
async function timed(fn: () => Promise<unknown>): Promise<number> {
  const start = performance.now();
  await fn();
  return performance.now() - start;
}

/** Signs up `user` (roles) in `w` with TOTP and logs them in; returns their env. */
async function loginUser(w: WardenProcess, user: string, roles: string): Promise<NodeJS.ProcessEnv> {
  const env = { ...w.env, WARDEN_HOME: join(w.dir, `home-${user}`) };
  const add = await runCli('wctl', ['users', 'add', user, `--roles=${roles}`], { env: w.env });
  const token = /--token=(\S+)/.exec(add.stdout)?.[1];
  if (add.code !== 0 || !token) throw new Error(`wctl users add failed:\n${add.stderr}`);
  const signup = await signupWithTotp(
    [`--proxy=${w.proxy}`, `--token=${token}`, `--ca-pin=${w.caPin}`],
    PASSWORD,
    env,
  );
  if (signup.code !== 0 || !signup.uri) throw new Error(`wsh signup failed:\n${signup.stderr}`);
  const otp = new Authenticator(signup.uri);
  otp.markUsed();
  const login = await runCli('wsh', ['login', `--proxy=${w.proxy}`, `--user=${user}`], {
    env,
    input: `${PASSWORD}\n${await otp.code()}\n`,
  });
  if (login.code !== 0) throw new Error(`wsh login failed:\n${login.stderr}`);
  return env;
}

/** Runs `wctl create` on a YAML document. */
async function create(w: WardenProcess, name: string, yaml: string): Promise<void> {
  const file = join(w.dir, `${name}.yaml`);
  writeFileSync(file, yaml);
  const res = await runCli('wctl', ['create', file], { env: w.env });
  if (res.code !== 0) throw new Error(`wctl create ${name} failed:\n${res.stderr}`);
}

interface Row {
  workload: string;
  unit: string;
  /** Per round, higher is better. */
  direct: number[];
  warden: number[];
}

function printTable(title: string, rows: Row[]): void {
  const lines = [
    ['workload', 'direct', 'warden', 'warden/direct'],
    ...rows.map((r) => {
      const d = median(r.direct);
      const w = median(r.warden);
      const fmt = (v: number) => `${v >= 100 ? v.toFixed(0) : v.toFixed(1)} ${r.unit}`;
      return [r.workload, fmt(d), fmt(w), (w / d).toFixed(2)];
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
  try {
    // 1. Warden, a role for the db user "bench", a user with it.
    w = await startWarden({ configYaml: 'db_service:\n  enabled: true\n' });
    await create(
      w,
      'role',
      'kind: role\nversion: v7\nmetadata:\n  name: bench-db\nspec:\n  allow:\n    db_labels: { "*": "*" }\n    db_users: [bench]\n    db_names: ["*"]\n',
    );
    const env = await loginUser(w, 'bencher', 'bench-db');

    // 2. MariaDB with a certificate from the db CA; "bench" by certificate, "direct" by password.
    const prefix = join(w.dir, 'mariadb');
    const signed = await runCli(
      'wctl',
      ['auth', 'sign', '--format=db', '--host=localhost,127.0.0.1', `--out=${prefix}`],
      {
        env: w.env,
      },
    );
    if (signed.code !== 0) throw new Error(`wctl auth sign failed:\n${signed.stderr}`);
    const ca = readFileSync(`${prefix}.cas`, 'utf8');
    const cluster = /^O=(.*)$/m.exec(new X509Certificate(ca).subject)?.[1];
    if (!cluster) throw new Error('cannot read the cluster name from the db CA');
    db = await startMariaDb({
      tls: { cert: readFileSync(`${prefix}.crt`, 'utf8'), key: readFileSync(`${prefix}.key`, 'utf8'), ca },
    });
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

    // 3. The Warden path: a local tunnel.
    const port = await freePort();
    tunnel = spawnCli(
      'wsh',
      ['proxy', 'db', 'mariadb', '--tunnel', '-p', String(port), '--db-user=bench', '--db-name=benchdb'],
      { env },
    );
    const deadline = Date.now() + 20_000;
    while (!/Started a tunnel/.test(tunnel.stdout())) {
      if (Date.now() > deadline) throw new Error(`wsh proxy db did not start:\n${tunnel.stderr()}`);
      await new Promise((r) => setTimeout(r, 50));
    }
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
    } as const;
    const version = db.version;

    // 4. Workloads, alternating paths each round.
    const rows: Row[] = [
      { workload: `point select, text (${QUERIES} queries)`, unit: 'q/s', direct: [], warden: [] },
      { workload: `point select, prepared (${QUERIES})`, unit: 'q/s', direct: [], warden: [] },
      { workload: `connect + query + close (${CONNECTS})`, unit: 'conn/s', direct: [], warden: [] },
      { workload: 'large result (200k rows)', unit: 'rows/s', direct: [], warden: [] },
    ];
    const ids = Array.from({ length: QUERIES }, (_, i) => (i % 1000) + 1);
    for (let round = 0; round < ROUNDS; round++) {
      const order = round % 2 === 0 ? (['direct', 'warden'] as const) : (['warden', 'direct'] as const);
      for (const path of order) {
        const options = paths[path];
        const conn = await mysql.createConnection(options);
        try {
          const text = await timed(async () => {
            for (const id of ids) await conn.query('SELECT id, name FROM t WHERE id = ?', [id]);
          });
          rows[0]![path].push((QUERIES / text) * 1000);
          const prepared = await timed(async () => {
            for (const id of ids) await conn.execute('SELECT id, name FROM t WHERE id = ?', [id]);
          });
          rows[1]![path].push((QUERIES / prepared) * 1000);
          const large = await timed(() => conn.query('SELECT seq, md5(seq) FROM seq_1_to_200000'));
          rows[3]![path].push((200_000 / large) * 1000);
        } finally {
          await conn.end();
        }
        const connects = await timed(async () => {
          for (let i = 0; i < CONNECTS; i++) {
            const c = await mysql.createConnection(options);
            await c.query('SELECT 1');
            await c.end();
          }
        });
        rows[2]![path].push((CONNECTS / connects) * 1000);
      }
      process.stderr.write(`mysql round ${round + 1}/${ROUNDS} done\n`);
    }
    printTable(
      `MySQL: ${version} through Warden (wsh proxy db --tunnel → proxy → db_service → TLS) vs mysql2 direct over TLS; medians of ${ROUNDS} rounds`,
      rows,
    );
  } finally {
    tunnel?.child.kill('SIGTERM');
    await db?.stop();
    await w?.stop();
  }
}

const sections: Record<string, () => Promise<void>> = { mysql: benchMysql };
if (args.only !== undefined && !(args.only in sections)) {
  process.stderr.write(`--only must be one of: ${Object.keys(sections).join(', ')}\n`);
  process.exit(2);
}
for (const [name, run] of Object.entries(sections))
  if (args.only === undefined || args.only === name) await run();
