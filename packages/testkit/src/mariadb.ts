/**
 * A throwaway MariaDB server for tests: `mariadb-install-db` in a temp dir, `mariadbd` on a
 * free 127.0.0.1 port and a private unix socket, tuned for speed (no fsync), optionally with
 * TLS, and removed again by `stop()`. The superuser is `root` over the unix socket without a
 * password (`sql()` uses it); TCP logins are whatever accounts the test creates, e.g. a
 * certificate-only account for Warden's db_service:
 *
 *   CREATE USER 'alice'@'%' REQUIRE SUBJECT '/CN=alice/O=<cluster>'   -- no password
 *
 * When the tests run as root, mariadbd runs as root too (`--user=root`). The binaries come
 * from `WARDEN_TEST_MARIADB_BIN` (a directory), else `/usr/sbin` and `/usr/bin` (Debian's
 * `mariadb-server`). Gate tests on `requireMariaDb()`.
 *
 * @example
 *   const check = requireMariaDb();
 *   test('…', { skip: check.skip }, async (t) => {
 *     const db = await startMariaDb({ tls: { cert, key, ca } });
 *     t.after(() => db.stop());
 *     db.sql("CREATE USER 'alice'@'%' REQUIRE SUBJECT '/CN=alice/O=test'");
 *   });
 */

import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { daemonHold, stopProcess, waitForReadyLine } from './daemon';
import { freePort } from './ports';
import { requireTool, type ToolCheck } from './tools';

export interface MariaDbServerOptions {
  /** TLS: PEM server certificate and key, and the CA that client certificates must chain to. */
  tls?: { cert: string; key: string; ca: string };
  /** Extra server options (`--name=value`). */
  settings?: Record<string, string>;
  /** Port to listen on (default: a free one), for a server named in a config written before it starts. */
  port?: number;
}

export interface MariaDbServer {
  readonly host: string;
  readonly port: number;
  /** The unix socket `root` logs in through. */
  readonly socket: string;
  readonly dataDir: string;
  /** The server's version (`SELECT VERSION()`). */
  readonly version: string;
  /** The server's log so far (last lines), for failure messages. */
  log(): string;
  /** Runs SQL as root with the `mariadb` client; returns stdout (tab-separated, no headers). */
  sql(sql: string, database?: string): string;
  /** Stops the server and deletes its directory. Idempotent. */
  stop(): Promise<void>;
}

const LOG_LINES = 200;

function findBinary(names: string[]): string | undefined {
  const dirs = [process.env.WARDEN_TEST_MARIADB_BIN, '/usr/sbin', '/usr/bin', '/usr/local/bin'].filter(
    (d): d is string => !!d,
  );
  for (const dir of dirs) for (const n of names) if (existsSync(join(dir, n))) return join(dir, n);
  return undefined;
}

const server = () => findBinary(['mariadbd', 'mysqld']);
const installDb = () => findBinary(['mariadb-install-db', 'mysql_install_db']);
const client = () => findBinary(['mariadb', 'mysql']);

/** Skips (or, with WARDEN_TEST_STRICT=1, fails) when MariaDB's server or client is missing. */
export function requireMariaDb(): ToolCheck {
  for (const [found, name] of [
    [server(), 'mariadbd'],
    [installDb(), 'mariadb-install-db'],
    [client(), 'mariadb'],
  ] as const) {
    const check = requireTool(found ?? name);
    if (!check.ok) return check;
  }
  return { ok: true, skip: false };
}

/** Starts a fresh MariaDB server; call `stop()` when done. */
export async function startMariaDb(opts: MariaDbServerOptions = {}): Promise<MariaDbServer> {
  const mariadbd = server();
  const install = installDb();
  const mariadb = client();
  if (!mariadbd || !install || !mariadb)
    throw new Error(
      'MariaDB is not installed (Debian: mariadb-server mariadb-client); gate with requireMariaDb()',
    );
  const dir = mkdtempSync(join(tmpdir(), 'warden-mariadb-'));
  const dataDir = join(dir, 'data');
  const socket = join(dir, 'mysqld.sock');
  const asRoot = process.getuid?.() === 0 ? ['--user=root'] : [];
  const fast = [
    '--innodb-flush-method=nosync',
    '--innodb-flush-log-at-trx-commit=0',
    '--innodb-doublewrite=0',
  ];

  // 1. System tables; root logs in over the socket without a password.
  const init = spawnSync(
    install,
    [
      '--no-defaults',
      `--datadir=${dataDir}`,
      '--auth-root-authentication-method=normal',
      '--skip-test-db',
      '--skip-name-resolve',
      ...asRoot,
      ...fast,
    ],
    { encoding: 'utf8', cwd: dir },
  );
  if (init.status !== 0) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`mariadb-install-db failed (${init.status}):\n${init.stdout}\n${init.stderr}`);
  }

  const settings: Record<string, string> = { ...opts.settings };
  if (opts.tls) {
    for (const [name, pem] of [
      ['server.crt', opts.tls.cert],
      ['server.key', opts.tls.key],
      ['ca.crt', opts.tls.ca],
    ] as const) {
      writeFileSync(join(dir, name), pem, { mode: 0o600 });
    }
    settings['ssl-cert'] = join(dir, 'server.crt');
    settings['ssl-key'] = join(dir, 'server.key');
    settings['ssl-ca'] = join(dir, 'ca.crt');
  }

  // 2. mariadbd in the foreground; ready once it logs so.
  const port = opts.port ?? (await freePort());
  const host = '127.0.0.1';
  const lines: string[] = [];
  const argv = [
    '--no-defaults',
    `--datadir=${dataDir}`,
    `--socket=${socket}`,
    `--port=${port}`,
    `--bind-address=${host}`,
    `--pid-file=${join(dir, 'mysqld.pid')}`,
    '--skip-name-resolve',
    '--max-connections=300',
    ...asRoot,
    ...fast,
    ...Object.entries(settings).map(([k, v]) => `--${k}=${v}`),
  ];
  const child: ChildProcess = spawn(mariadbd, argv, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  const hold = daemonHold(dir, {
    kill: () => child.kill('SIGKILL'),
    halt: () => stopProcess(child, 'SIGTERM'),
  });
  try {
    await waitForReadyLine(child, {
      name: 'MariaDB',
      readyLine: 'ready for connections',
      lines,
      maxLines: LOG_LINES,
    });
  } catch (err) {
    await hold.fail(err);
  }

  const sql = (text: string, database?: string): string => {
    const res = spawnSync(
      mariadb,
      [
        '--no-defaults',
        `--socket=${socket}`,
        '-uroot',
        '--batch',
        '--skip-column-names',
        ...(database ? [database] : []),
        '-e',
        text,
      ],
      { encoding: 'utf8' },
    );
    if (res.status !== 0) throw new Error(`mariadb failed: ${res.stderr}`);
    return res.stdout;
  };

  return {
    host,
    port,
    socket,
    dataDir,
    version: sql('SELECT VERSION()').trim(),
    log: () => lines.join('\n'),
    sql,
    stop: hold.stop,
  };
}
