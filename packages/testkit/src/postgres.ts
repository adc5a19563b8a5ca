/**
 * A throwaway PostgreSQL server for tests: `initdb` in a temp dir, `postgres` on a free
 * 127.0.0.1 port, tuned for speed (no fsync), and removed again by `stop()`. `restart()`
 * stops it with a fast shutdown (every session is cut, as in a failover) and starts it again
 * on the same port with the same data. PostgreSQL refuses to run as root, so when the tests
 * run as root the server runs as `nobody` (via `setpriv`) in a temp dir it owns.
 *
 * The binaries come from `WARDEN_TEST_PG_BIN`, else the newest `/usr/lib/postgresql/N/bin`
 * (Debian's `postgresql-15`). Gate tests on `requirePostgres()`.
 *
 * @example
 *   const check = requirePostgres();
 *   test('…', { skip: check.skip }, async (t) => {
 *     const pg = await startPostgres();
 *     t.after(() => pg.stop());
 *     const backend = await PostgresBackend.open({ connString: pg.connString });
 *   });
 */

import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { daemonHold, stopProcess, waitForReadyLine } from './daemon';
import { freePort } from './ports';
import { requireTool, type ToolCheck } from './tools';

export interface PostgresServerOptions {
  /**
   * Password of the superuser `warden`. When set, TCP logins need it (scram-sha-256) and it is
   * part of `connString`; without it TCP logins are trusted.
   */
  password?: string;
  /** TLS: PEM server certificate and key, and optionally a CA for client certificates. */
  tls?: { cert: string; key: string; ca?: string };
  /** Replaces pg_hba.conf (e.g. `hostssl all all 127.0.0.1/32 cert`). */
  hba?: string[];
  /** Extra server settings (`-c name=value`). */
  settings?: Record<string, string>;
  /** Port to listen on (default: a free one), for a server named in a config written before it starts. */
  port?: number;
}

export interface PostgresServer {
  readonly host: string;
  readonly port: number;
  /** The superuser. */
  readonly user: string;
  /** The default database (`postgres`). */
  readonly database: string;
  /** `postgres://warden[:password]@127.0.0.1:port/postgres`. */
  readonly connString: string;
  /** The server's data directory (owned by the server's user). */
  readonly dataDir: string;
  /** The server's log so far (last lines), for failure messages. */
  log(): string;
  /** Runs SQL with psql as the superuser; returns stdout (`-At`: unaligned, tuples only). */
  psql(sql: string, database?: string): string;
  /** Fast shutdown (cuts every session), then starts again on the same port. */
  restart(): Promise<void>;
  /** Fast shutdown without starting again (`start()` brings it back). */
  halt(): Promise<void>;
  /** Starts a halted server again. */
  start(): Promise<void>;
  /** Stops the server and deletes its directory. Idempotent. */
  stop(): Promise<void>;
}

/** The environment variable the `storage:` section of `wardenStorage` names for the password. */
const WARDEN_TEST_DB_PASSWORD = 'WARDEN_TEST_DB_PASSWORD';

/**
 * Warden's state in `pg` (started with `password`), in `schema`: `yaml`, the `storage:` section
 * of a warden.yaml (`poolSize`: its pool_size), which names the password's environment variable
 * only, and `env`, the environment that carries the password to `warden start`.
 *
 * @example
 *   const storage = wardenStorage(pg, DB_PASSWORD, 'ha');
 *   await startWarden({ configYaml: storage.yaml, env: storage.env });
 */
export function wardenStorage(
  pg: Pick<PostgresServer, 'user' | 'host' | 'port' | 'database'>,
  password: string,
  schema: string,
  o: { poolSize?: number } = {},
): { yaml: string; env: Record<string, string> } {
  const yaml = [
    'storage:',
    '  type: postgres',
    `  conn_string: postgres://${pg.user}@${pg.host}:${pg.port}/${pg.database}`,
    `  password_env: ${WARDEN_TEST_DB_PASSWORD}`,
    `  schema: ${schema}`,
    ...(o.poolSize !== undefined ? [`  pool_size: ${o.poolSize}`] : []),
    '',
  ].join('\n');
  return { yaml, env: { [WARDEN_TEST_DB_PASSWORD]: password } };
}

const USER = 'warden';
const LOG_LINES = 200;

/** The directory holding initdb and postgres, or undefined when none is installed. */
export function postgresBinDir(): string | undefined {
  const env = process.env.WARDEN_TEST_PG_BIN;
  if (env) return env;
  const base = '/usr/lib/postgresql';
  if (!existsSync(base)) return undefined;
  const versions = readdirSync(base)
    .filter((v) => /^\d+$/.test(v) && existsSync(join(base, v, 'bin', 'initdb')))
    .sort((a, b) => Number(b) - Number(a));
  return versions[0] === undefined ? undefined : join(base, versions[0], 'bin');
}

/** Skips (or, with WARDEN_TEST_STRICT=1, fails) when PostgreSQL's server binaries are missing. */
export function requirePostgres(): ToolCheck {
  const dir = postgresBinDir() ?? '/usr/lib/postgresql/15/bin';
  const initdb = requireTool(join(dir, 'initdb'));
  return initdb.ok ? requireTool(join(dir, 'postgres')) : initdb;
}

/** uid/gid to run the server as: ourselves, or `nobody` when we are root. */
function serverUser(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const entry = spawnSync('getent', ['passwd', 'nobody'], { encoding: 'utf8' }).stdout.split(':');
  const uid = Number(entry[2]);
  const gid = Number(entry[3]);
  if (!Number.isInteger(uid) || !Number.isInteger(gid)) {
    throw new Error('tests run as root but there is no "nobody" user to run PostgreSQL as');
  }
  return { uid, gid };
}

/** argv that runs `cmd` as the server's user. */
function asServerUser(user: { uid: number; gid: number } | undefined, cmd: string[]): string[] {
  if (!user) return cmd;
  return ['setpriv', `--reuid=${user.uid}`, `--regid=${user.gid}`, '--clear-groups', '--', ...cmd];
}

/** Starts a fresh PostgreSQL server; call `stop()` when done. */
export async function startPostgres(opts: PostgresServerOptions = {}): Promise<PostgresServer> {
  const bin = postgresBinDir();
  if (!bin)
    throw new Error('PostgreSQL is not installed (Debian: postgresql-15); gate with requirePostgres()');
  const user = serverUser();
  // As root, /tmp: the server's user must be able to reach the directory (TMPDIR may be private).
  const dir = mkdtempSync(join(user ? '/tmp' : tmpdir(), 'warden-pg-'));
  const dataDir = join(dir, 'data');
  const own = (path: string) => {
    if (user) chownSync(path, user.uid, user.gid);
  };
  own(dir);
  chmodSync(dir, 0o700);

  // 1. initdb: UTF-8, C collation, superuser "warden" (password-protected over TCP if asked).
  const initArgs = [join(bin, 'initdb'), '-D', dataDir, '-U', USER, '-E', 'UTF8', '--locale=C', '--no-sync'];
  if (opts.password !== undefined) {
    const pwfile = join(dir, 'pwfile');
    writeFileSync(pwfile, `${opts.password}\n`, { mode: 0o600 });
    own(pwfile);
    initArgs.push(`--pwfile=${pwfile}`, '--auth-local=trust', '--auth-host=scram-sha-256');
  } else {
    initArgs.push('--auth=trust');
  }
  const [cmd, ...args] = asServerUser(user, initArgs);
  const init = spawnSync(cmd!, args, { encoding: 'utf8', cwd: dir });
  if (init.status !== 0) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`initdb failed (${init.status}):\n${init.stdout}\n${init.stderr}`);
  }

  const settings: Record<string, string> = {
    listen_addresses: '127.0.0.1',
    unix_socket_directories: dir,
    fsync: 'off',
    synchronous_commit: 'off',
    full_page_writes: 'off',
    max_connections: '300',
    ...opts.settings,
  };
  if (opts.tls) {
    for (const [name, pem] of [
      ['server.crt', opts.tls.cert],
      ['server.key', opts.tls.key],
      ...(opts.tls.ca === undefined ? [] : [['ca.crt', opts.tls.ca]]),
    ] as const) {
      const path = join(dataDir, name);
      writeFileSync(path, pem, { mode: 0o600 });
      own(path);
    }
    settings.ssl = 'on';
    settings.ssl_cert_file = 'server.crt';
    settings.ssl_key_file = 'server.key';
    if (opts.tls.ca !== undefined) settings.ssl_ca_file = 'ca.crt';
  }
  if (opts.hba) {
    const hba = join(dataDir, 'pg_hba.conf');
    writeFileSync(hba, `${['local all all trust', ...opts.hba].join('\n')}\n`, { mode: 0o600 });
    own(hba);
  }

  const port = opts.port ?? (await freePort());
  const host = '127.0.0.1';
  const auth = opts.password === undefined ? USER : `${USER}:${encodeURIComponent(opts.password)}`;
  const connString = `postgres://${auth}@${host}:${port}/postgres`;
  const lines: string[] = [];
  let child: ChildProcess | undefined;

  // 2. postgres in the foreground; ready once it logs so.
  const launch = async (): Promise<void> => {
    const argv = asServerUser(user, [
      join(bin, 'postgres'),
      '-D',
      dataDir,
      '-p',
      String(port),
      ...Object.entries(settings).flatMap(([k, v]) => ['-c', `${k}=${v}`]),
    ]);
    const proc = spawn(argv[0]!, argv.slice(1), { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
    child = proc;
    await waitForReadyLine(proc, {
      name: 'PostgreSQL',
      readyLine: 'database system is ready to accept connections',
      lines,
      maxLines: LOG_LINES,
    });
  };

  const halt = async (): Promise<void> => {
    const proc = child;
    child = undefined;
    await stopProcess(proc, 'SIGINT'); // fast shutdown: roll back and disconnect every session
  };
  const hold = daemonHold(dir, { kill: () => child?.kill('SIGKILL'), halt });

  try {
    await launch();
  } catch (err) {
    await hold.fail(err);
  }

  return {
    host,
    port,
    user: USER,
    database: 'postgres',
    connString,
    dataDir,
    log: () => lines.join('\n'),
    psql(sql: string, database = 'postgres'): string {
      const res = spawnSync(
        join(bin, 'psql'),
        [
          '-X',
          '-At',
          '-v',
          'ON_ERROR_STOP=1',
          '-h',
          dir,
          '-p',
          String(port),
          '-U',
          USER,
          '-d',
          database,
          '-c',
          sql,
        ],
        { encoding: 'utf8' },
      );
      if (res.status !== 0) throw new Error(`psql failed: ${res.stderr}`);
      return res.stdout;
    },
    async restart(): Promise<void> {
      await halt();
      await launch();
    },
    halt,
    async start(): Promise<void> {
      if (hold.stopped) throw new Error('the server was stopped');
      if (!child) await launch();
    },
    stop: hold.stop,
  };
}
