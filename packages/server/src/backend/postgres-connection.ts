/**
 * Connecting to PostgreSQL, shared by the PostgreSQL backend and audit log: the connection
 * options (URL or host fields, TLS with client certificates, a password from a file or an
 * environment variable), a `pg` pool built from them, and `PostgresPool.run`, which runs one
 * statement with the retry rules of DESIGN §3:
 *
 * - the connection could not be made (nothing was sent): retried for every operation until
 *   `retryTimeoutMs`, then WARDEN_ERR_CONNECTION;
 * - the server rolled the transaction back (serialization failure, deadlock): retried;
 * - the connection broke after the statement was sent (the outcome is unknown): retried only
 *   for idempotent operations; others fail with WARDEN_ERR_CONNECTION saying the change may
 *   or may not have been applied;
 * - login refused, unknown database, TLS verification failed: WARDEN_ERR_BAD_CONFIG at once.
 *
 * The password never appears in an error, a log line or `target` (which names
 * `user@host:port/database`); it is read at each new connection, so a rotated file is picked
 * up without a restart. Who may import: `backend/` and `audit/` (through the backend index).
 * Tested against a real server in `test/postgres/`.
 */
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ConnectionOptions } from 'node:tls';
import { isWardenError, WardenError } from '@warden/api';
import type pg from 'pg';
import { type Clock, systemClock } from '../clock';
import type { Logger } from '../log';

export type PostgresTlsMode = 'disable' | 'require' | 'verify-ca' | 'verify-full';

export interface PostgresTlsOptions {
  /**
   * `verify-full` (the default once `tls` is given): encrypted, the server's certificate
   * checked against `caFile` (else the system CAs) and its name; `verify-ca`: the chain only;
   * `require`: encrypted but unverified (not recommended); `disable`: plain TCP.
   */
  mode?: PostgresTlsMode;
  /** PEM CA bundle the server's certificate must chain to. */
  caFile?: string;
  /** PEM client certificate (with `keyFile`), for `cert` authentication. */
  certFile?: string;
  /** PEM private key of the client certificate. */
  keyFile?: string;
  /** Name to verify in the server's certificate, when it differs from the host. */
  serverName?: string;
}

export interface PostgresConnectionOptions {
  /**
   * `postgres://user@host:port/database?sslmode=verify-full&sslrootcert=/path/ca.pem`.
   * Supported parameters: sslmode (disable, require, verify-ca, verify-full), sslrootcert,
   * sslcert, sslkey, host (a socket directory), port, user, dbname, application_name,
   * connect_timeout (seconds). A password in the URL works but is discouraged: use
   * `passwordFile` or `passwordEnv`. Give either this or `host`.
   */
  connString?: string;
  /** Host name, IP address or Unix socket directory (instead of `connString`). */
  host?: string;
  /** Default 5432. */
  port?: number;
  /** Default: the user name. */
  database?: string;
  /** Default `warden`. */
  user?: string;
  /** The password itself (prefer `passwordFile` or `passwordEnv`). At most one password source. */
  password?: string;
  /** A file holding the password (trailing newline ignored), read at each new connection. */
  passwordFile?: string;
  /** The name of an environment variable holding the password, read at each new connection. */
  passwordEnv?: string;
  /** TLS settings; override the URL's ssl* parameters. */
  tls?: PostgresTlsOptions;
  /** Connections in the pool (default 10). */
  poolSize?: number;
  /** Give up connecting after this long (default 5000 ms). */
  connectTimeoutMs?: number;
  /**
   * Pooled connections idle this long are closed (default 30 000 ms), all but the warm ones
   * (one for the audit log; three for the backend, whose poll and maintenance jobs each run
   * every second beside the requests), so a rare write (a lock after an idle hour) does not pay
   * a new connection and its SCRAM login.
   */
  idleTimeoutMs?: number;
  /** How long retryable failures are retried before WARDEN_ERR_CONNECTION (default 15 000 ms). */
  retryTimeoutMs?: number;
  /**
   * A statement without an answer after this long counts as a broken connection (default
   * 30 000 ms): it catches silent network partitions that TCP keepalive would take minutes to.
   */
  queryTimeoutMs?: number;
  /** Shown in pg_stat_activity (default `warden`). */
  applicationName?: string;
}

export const POSTGRES_DEFAULT_POOL_SIZE = 10;
export const POSTGRES_DEFAULT_CONNECT_TIMEOUT_MS = 5000;
export const POSTGRES_DEFAULT_RETRY_TIMEOUT_MS = 15_000;
export const POSTGRES_DEFAULT_QUERY_TIMEOUT_MS = 30_000;
export const POSTGRES_DEFAULT_IDLE_TIMEOUT_MS = 30_000;

function badConfig(message: string): WardenError {
  return new WardenError('WARDEN_ERR_BAD_CONFIG', message);
}

const URL_PARAMS = new Set([
  'sslmode',
  'sslrootcert',
  'sslcert',
  'sslkey',
  'host',
  'port',
  'user',
  'dbname',
  'application_name',
  'connect_timeout',
]);

interface Target {
  host: string;
  port: number;
  database: string;
  user: string;
  urlPassword: string | undefined;
  tls: PostgresTlsOptions;
  applicationName: string | undefined;
  connectTimeoutMs: number | undefined;
}

function parsePort(value: unknown, what: string): number {
  const port = typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : value;
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw badConfig(`${what} must be a port number from 1 to 65535`);
  }
  return port;
}

function parseTlsMode(value: string): PostgresTlsMode {
  if (value === 'disable' || value === 'require' || value === 'verify-ca' || value === 'verify-full')
    return value;
  if (value === 'allow' || value === 'prefer') {
    throw badConfig(
      `sslmode=${value} may fall back to plain text; use sslmode=verify-full (or require), or disable explicitly`,
    );
  }
  throw badConfig(`unknown sslmode "${value}" (use disable, require, verify-ca or verify-full)`);
}

/** Reads the connection URL; never echoes it back (it may hold a password). */
function parseConnString(connString: string): Target {
  let url: URL;
  try {
    url = new URL(connString);
  } catch {
    throw badConfig('conn_string must be a URL such as postgres://warden@db.example.com:5432/warden');
  }
  if (url.protocol !== 'postgres:' && url.protocol !== 'postgresql:') {
    throw badConfig('conn_string must start with postgres:// or postgresql://');
  }
  const q = url.searchParams;
  for (const name of q.keys()) {
    if (!URL_PARAMS.has(name)) throw badConfig(`conn_string parameter "${name}" is not supported`);
  }
  const tls: PostgresTlsOptions = {};
  const sslmode = q.get('sslmode');
  if (sslmode !== null) tls.mode = parseTlsMode(sslmode);
  const ca = q.get('sslrootcert');
  if (ca !== null) tls.caFile = ca;
  const cert = q.get('sslcert');
  if (cert !== null) tls.certFile = cert;
  const key = q.get('sslkey');
  if (key !== null) tls.keyFile = key;
  const hostname = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  const host = q.get('host') ?? decodeURIComponent(hostname);
  if (host === '') throw badConfig('conn_string names no host');
  const user = q.get('user') ?? (url.username === '' ? 'warden' : decodeURIComponent(url.username));
  const path = decodeURIComponent(url.pathname.replace(/^\//, ''));
  const timeout = q.get('connect_timeout');
  if (timeout !== null && !/^\d+$/.test(timeout)) throw badConfig('connect_timeout must be whole seconds');
  return {
    host,
    port: parsePort(q.get('port') ?? (url.port === '' ? 5432 : url.port), 'the conn_string port'),
    database: q.get('dbname') ?? (path === '' ? user : path),
    user,
    urlPassword: url.password === '' ? undefined : decodeURIComponent(url.password),
    tls,
    applicationName: q.get('application_name') ?? undefined,
    connectTimeoutMs: timeout === null || timeout === '0' ? undefined : Number(timeout) * 1000,
  };
}

function positive(value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) {
    throw new WardenError('WARDEN_ERR_BAD_PARAMETER', `${name} must be a positive integer`);
  }
  return value;
}

function readPem(path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw badConfig(`cannot read the ${what} ${path} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
}

function tlsConfig(tls: PostgresTlsOptions, host: string): false | ConnectionOptions {
  const mode = tls.mode ?? 'verify-full';
  if ((tls.certFile === undefined) !== (tls.keyFile === undefined)) {
    throw badConfig('a client certificate needs both certFile (sslcert) and keyFile (sslkey)');
  }
  if (mode === 'disable') {
    if (tls.caFile || tls.certFile) throw badConfig('TLS files are given but the TLS mode is disable');
    return false;
  }
  const out: ConnectionOptions = { rejectUnauthorized: mode !== 'require' };
  if (tls.caFile !== undefined) out.ca = readPem(tls.caFile, 'CA file');
  if (tls.certFile !== undefined && tls.keyFile !== undefined) {
    out.cert = readPem(tls.certFile, 'client certificate');
    out.key = readPem(tls.keyFile, 'client key');
  }
  if (mode === 'verify-ca') out.checkServerIdentity = () => undefined;
  if (mode === 'verify-full' && tls.serverName !== undefined) out.servername = tls.serverName;
  if (mode === 'verify-full' && tls.serverName === undefined && host.startsWith('/')) {
    throw badConfig('verify-full over a Unix socket needs tls.serverName');
  }
  return out;
}

/** Everything `pg` needs, and a printable target without the password. */
export interface ResolvedConnection {
  config: pg.PoolConfig;
  /** `user@host:port/database`, safe to log. */
  target: string;
  retryTimeoutMs: number;
  queryTimeoutMs: number;
}

/**
 * Checks the options and builds the pool configuration (reads TLS files now, the password later).
 * `warm`: connections the pool keeps open however long it is idle (see `idleTimeoutMs`).
 */
export function resolveConnection(
  opts: PostgresConnectionOptions,
  { warm = 1 }: { warm?: number } = {},
): ResolvedConnection {
  if (opts === null || typeof opts !== 'object') {
    throw new WardenError('WARDEN_ERR_BAD_PARAMETER', 'PostgreSQL connection options are required');
  }
  let target: Target;
  if (opts.connString !== undefined) {
    if (typeof opts.connString !== 'string') throw badConfig('conn_string must be a string');
    if (opts.host !== undefined) throw badConfig('give either conn_string or host, not both');
    target = parseConnString(opts.connString);
  } else {
    if (typeof opts.host !== 'string' || opts.host === '') {
      throw badConfig('the PostgreSQL storage needs conn_string (or host)');
    }
    const user = opts.user ?? 'warden';
    target = {
      host: opts.host,
      port: opts.port === undefined ? 5432 : parsePort(opts.port, 'port'),
      database: opts.database ?? user,
      user,
      urlPassword: undefined,
      tls: {},
      applicationName: undefined,
      connectTimeoutMs: undefined,
    };
  }
  if (opts.connString !== undefined) {
    if (opts.port !== undefined) target.port = parsePort(opts.port, 'port');
    if (opts.database !== undefined) target.database = opts.database;
    if (opts.user !== undefined) target.user = opts.user;
  }
  const sources = [
    target.urlPassword !== undefined,
    opts.password !== undefined,
    opts.passwordFile !== undefined,
    opts.passwordEnv !== undefined,
  ].filter(Boolean).length;
  if (sources > 1) {
    throw badConfig(
      'give at most one password source (conn_string, password, password_file or password_env)',
    );
  }
  const password = passwordSource(opts, target.urlPassword);
  const tls = opts.tls === undefined ? target.tls : { ...target.tls, ...opts.tls };
  if (opts.tls !== undefined && opts.tls.mode !== undefined) tls.mode = opts.tls.mode;
  const ssl =
    opts.tls === undefined && target.tls.mode === undefined && !target.tls.caFile && !target.tls.certFile
      ? false
      : tlsConfig(tls, target.host);
  const connectTimeoutMs = positive(
    opts.connectTimeoutMs ?? target.connectTimeoutMs,
    POSTGRES_DEFAULT_CONNECT_TIMEOUT_MS,
    'connectTimeoutMs',
  );
  const poolSize = positive(opts.poolSize, POSTGRES_DEFAULT_POOL_SIZE, 'poolSize');
  const config: pg.PoolConfig = {
    host: target.host,
    port: target.port,
    database: target.database,
    user: target.user,
    password,
    ssl,
    max: poolSize,
    connectionTimeoutMillis: connectTimeoutMs,
    idleTimeoutMillis: positive(opts.idleTimeoutMs, POSTGRES_DEFAULT_IDLE_TIMEOUT_MS, 'idleTimeoutMs'),
    // `warm` connections stay open however long the pool is idle (pg-pool closes idle
    // connections only above `min`; `close()` still ends them). Replica A's first lock after 30 s
    // of quiet paid a new connection and a SCRAM login in `bench:locks`, and real locks are rare.
    min: Math.min(warm, poolSize),
    keepAlive: true,
    keepAliveInitialDelayMillis: 10_000,
    application_name: opts.applicationName ?? target.applicationName ?? 'warden',
    // Writers serialise on the revision counter's row lock; READ COMMITTED lets a writer that
    // waited for it see the rows its predecessor committed (stricter levels would only retry).
    options: '-c default_transaction_isolation=read\\ committed',
  };
  return {
    config,
    target: `${target.user}@${target.host}:${target.port}/${target.database}`,
    retryTimeoutMs: positive(opts.retryTimeoutMs, POSTGRES_DEFAULT_RETRY_TIMEOUT_MS, 'retryTimeoutMs'),
    queryTimeoutMs: positive(opts.queryTimeoutMs, POSTGRES_DEFAULT_QUERY_TIMEOUT_MS, 'queryTimeoutMs'),
  };
}

/** A function `pg` calls for the password at each new connection (so it is never stored here). */
function passwordSource(
  opts: PostgresConnectionOptions,
  urlPassword: string | undefined,
): (() => string) | undefined {
  if (urlPassword !== undefined) return () => urlPassword;
  if (opts.password !== undefined) {
    if (typeof opts.password !== 'string') throw badConfig('password must be a string');
    const value = opts.password;
    return () => value;
  }
  if (opts.passwordFile !== undefined) {
    const file = opts.passwordFile;
    if (typeof file !== 'string' || file === '') throw badConfig('password_file must name a file');
    const read = () => {
      try {
        return readFileSync(file, 'utf8').replace(/\r?\n$/, '');
      } catch (err) {
        throw badConfig(
          `cannot read the password file ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
        );
      }
    };
    read(); // fail at startup, not at the first connection
    return read;
  }
  if (opts.passwordEnv !== undefined) {
    const name = opts.passwordEnv;
    if (typeof name !== 'string' || name === '') throw badConfig('password_env must name a variable');
    const read = () => {
      const value = process.env[name];
      if (value === undefined) throw badConfig(`the environment variable ${name} (password_env) is not set`);
      return value;
    };
    read();
    return read;
  }
  return undefined;
}

const INT8_OID = 20;

type PgModule = typeof pg;
let pgModule: Promise<PgModule> | undefined;

/** Loads the driver on first use, so a cluster on SQLite never pays for it at startup. */
function loadPg(): Promise<PgModule> {
  pgModule ??= import('pg').then((m) => ((m as { default?: PgModule }).default ?? m) as PgModule);
  return pgModule;
}

/** bigint columns as numbers (revisions and milliseconds stay far below 2^53); the rest as pg does. */
function typesFor(driver: PgModule): pg.CustomTypesConfig {
  const getTypeParser = (oid: number, format?: unknown) => {
    if (oid === INT8_OID) {
      return (value: string) => {
        const n = Number(value);
        if (!Number.isSafeInteger(n)) throw new Error(`bigint ${value} is beyond 2^53`);
        return n;
      };
    }
    return driver.types.getTypeParser(oid, format as 'text');
  };
  return { getTypeParser: getTypeParser as pg.CustomTypesConfig['getTypeParser'] };
}

/** What a failure means for retrying. */
export type FailureKind =
  /** Nothing reached the server (connect failed): safe to retry. */
  | 'unreachable'
  /** The server rolled the transaction back (serialization failure, deadlock): safe to retry. */
  | 'rolled-back'
  /** The connection broke after the statement was sent: the outcome is unknown. */
  | 'ambiguous'
  /** Login refused, unknown database, TLS verification failed: retrying will not help. */
  | 'config'
  /** Any other server error (a bug, permissions, a full disk). */
  | 'server';

const TLS_CODES = /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS|ALTNAME|UNABLE_TO_GET_ISSUER/;

/** The SQLSTATE of a server error, if `err` is one. */
export function sqlState(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}

export function classifyFailure(err: unknown, phase: 'connect' | 'query'): FailureKind {
  const state = sqlState(err);
  const code = String((err as { code?: unknown } | null)?.code ?? '');
  const message = err instanceof Error ? err.message : String(err);
  if (
    state === '28P01' || // invalid password
    state === '28000' || // invalid authorization (pg_hba.conf)
    state === '3D000' || // no such database
    state === '42501' || // insufficient privilege
    TLS_CODES.test(code) ||
    /does not support SSL|client password must be a string|password authentication|SASL/.test(message)
  ) {
    return 'config';
  }
  if (state?.startsWith('40')) return 'rolled-back'; // 40001 serialization, 40P01 deadlock
  if (phase === 'connect') return 'unreachable';
  if (state === undefined || state.startsWith('08') || state.startsWith('57P')) return 'ambiguous';
  return 'server';
}

export interface PoolHealth {
  /** False from the first failed round trip until the next successful one. */
  connected: boolean;
  /** When the database last answered (the replica's clock), if ever. */
  lastContactAt: number | undefined;
}

export interface RunOptions {
  /** Safe to run twice: retried even when the outcome of a broken attempt is unknown. */
  idempotent: boolean;
  /**
   * Stop retrying when this returns true; gets `performance.now()` of the first failure
   * (default: after `retryTimeoutMs`).
   */
  giveUp?: (failingSinceMs: number) => boolean;
  /** Do not log retries (background work that the next tick repeats anyway). */
  quiet?: boolean;
  /** Give up on an attempt that gets no answer after this long (default: `queryTimeoutMs`). */
  timeoutMs?: number;
}

const MAX_ROLLBACK_RETRIES = 50;

/**
 * A `pg` pool with the retry rules above, health tracking, and `close()` that fails later
 * calls with WARDEN_ERR_CLOSED.
 */
export class PostgresPool {
  readonly target: string;
  readonly #driver: PgModule;
  readonly #pool: pg.Pool;
  readonly #config: pg.PoolConfig;
  readonly #clock: Clock;
  readonly #logger: Logger | undefined;
  readonly #retryTimeoutMs: number;
  readonly #queryTimeoutMs: number;
  readonly #what: string;
  #health: PoolHealth = { connected: false, lastContactAt: undefined };
  #closed = false;
  readonly #closing = new AbortController();

  /** Loads the driver and creates the pool (connections are made on first use). */
  static async create(
    resolved: ResolvedConnection,
    deps: { clock?: Clock | undefined; logger?: Logger | undefined; what: string },
  ): Promise<PostgresPool> {
    return new PostgresPool(await loadPg(), resolved, deps);
  }

  private constructor(
    driver: PgModule,
    resolved: ResolvedConnection,
    deps: { clock?: Clock | undefined; logger?: Logger | undefined; what: string },
  ) {
    this.target = resolved.target;
    this.#driver = driver;
    this.#config = { ...resolved.config, types: typesFor(driver) };
    this.#clock = deps.clock ?? systemClock;
    this.#logger = deps.logger;
    this.#retryTimeoutMs = resolved.retryTimeoutMs;
    this.#queryTimeoutMs = resolved.queryTimeoutMs;
    this.#what = deps.what;
    this.#pool = new driver.Pool(this.#config);
    // An idle client whose server went away emits here; without a listener the process dies.
    this.#pool.on('error', (err) => {
      this.#failed();
      this.#logger?.debug({ target: this.target, err }, `${this.#what}: idle PostgreSQL connection lost`);
    });
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** How long a statement may go unanswered before its connection counts as broken. */
  get queryTimeoutMs(): number {
    return this.#queryTimeoutMs;
  }

  health(): PoolHealth {
    return { ...this.#health };
  }

  /** A new dedicated client (not from the pool), e.g. for LISTEN; `role` suffixes its application name. */
  newClient(role: string): pg.Client {
    return new this.#driver.Client({
      ...this.#config,
      application_name: `${this.#config.application_name}/${role}`,
    });
  }

  /** Records a successful round trip (also called for the LISTEN connection's traffic). */
  contact(): void {
    this.#health = { connected: true, lastContactAt: this.#clock.now() };
  }

  #failed(): void {
    if (this.#health.connected) this.#health = { ...this.#health, connected: false };
  }

  /** Runs `fn` with a pooled client under the retry rules; `what` names the operation in errors. */
  async run<T>(what: string, opts: RunOptions, fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    let failingSince: number | undefined;
    let rollbacks = 0;
    for (let attempt = 0; ; attempt++) {
      this.#assertOpen();
      const outcome = await this.#attempt(fn, opts.timeoutMs ?? this.#queryTimeoutMs);
      if (outcome.ok) return outcome.value;
      const { kind, err } = outcome;
      this.#assertOpen();
      if (kind === 'config') {
        this.#failed();
        throw this.#configError(err);
      }
      if (kind === 'server') {
        this.#logger?.error({ target: this.target, err, op: what }, `${this.#what}: PostgreSQL error`);
        throw new WardenError(
          'WARDEN_ERR_INTERNAL',
          `${this.#what}: PostgreSQL failed the ${what} (SQLSTATE ${sqlState(err) ?? 'none'})`,
        );
      }
      if (kind === 'rolled-back') {
        if (++rollbacks > MAX_ROLLBACK_RETRIES) {
          throw new WardenError(
            'WARDEN_ERR_INTERNAL',
            `${this.#what}: the ${what} kept conflicting; try again`,
          );
        }
        await this.#pause(Math.random() * 2 ** Math.min(rollbacks, 7));
        continue;
      }
      this.#failed();
      if (kind === 'ambiguous' && !opts.idempotent) {
        throw new WardenError(
          'WARDEN_ERR_CONNECTION',
          `${this.#what}: lost the connection to PostgreSQL (${this.target}) during the ${what}; ` +
            'it may or may not have been applied: read it back before retrying',
        );
      }
      failingSince ??= performance.now();
      const giveUp = opts.giveUp ?? ((since: number) => performance.now() - since >= this.#retryTimeoutMs);
      if (giveUp(failingSince)) {
        throw new WardenError(
          'WARDEN_ERR_CONNECTION',
          `${this.#what}: cannot reach PostgreSQL at ${this.target} (${describe(err)}); is it running?`,
        );
      }
      if (!opts.quiet && attempt % 20 === 0) {
        this.#logger?.warn(
          { target: this.target, op: what, err },
          `${this.#what}: PostgreSQL unavailable; retrying`,
        );
      }
      await this.#pause(Math.min(1000, 25 * 2 ** Math.min(attempt, 6)));
    }
  }

  async #attempt<T>(
    fn: (client: pg.PoolClient) => Promise<T>,
    timeoutMs: number,
  ): Promise<{ ok: true; value: T } | { ok: false; kind: FailureKind; err: unknown }> {
    let client: pg.PoolClient;
    try {
      client = await this.#pool.connect();
    } catch (err) {
      if (isWardenError(err)) throw err; // from the password source: a file or variable went missing
      return { ok: false, kind: classifyFailure(err, 'connect'), err };
    }
    // While checked out, the pool does not listen for the client's errors, and a socket that
    // dies mid-query emits one besides failing the query: without a listener the process dies.
    client.on('error', ignore);
    let released = false;
    const release = (broken?: Error) => {
      if (released) return;
      released = true;
      if (broken) {
        client.release(broken); // destroyed, never back in the pool (keeps the listener)
      } else {
        client.off('error', ignore);
        client.release();
      }
    };
    // A connection that hangs without an error (a silent network partition) would hold the
    // caller forever and keep health() green: give up on it after timeoutMs.
    let timer: NodeJS.Timeout | undefined;
    const hung = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer from PostgreSQL in ${timeoutMs} ms`)), timeoutMs);
    });
    const work = fn(client);
    work.catch(() => undefined); // after a timeout its rejection is nobody's business
    try {
      const value = await Promise.race([work, hung]);
      release();
      this.contact();
      return { ok: true, value };
    } catch (err) {
      if (isWardenError(err)) {
        release();
        throw err;
      }
      const kind = classifyFailure(err, 'query');
      if (kind === 'ambiguous') {
        release(err as Error);
        return { ok: false, kind, err };
      }
      release();
      this.contact();
      return { ok: false, kind, err };
    } finally {
      clearTimeout(timer);
    }
  }

  /** One parameterised statement through `run`. */
  async query<R extends pg.QueryResultRow>(
    what: string,
    opts: RunOptions,
    query: pg.QueryConfig,
  ): Promise<R[]> {
    return this.run(what, opts, async (client) => (await client.query<R>(query)).rows);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#closing.abort();
    await this.#pool.end();
  }

  #assertOpen(): void {
    if (this.#closed) throw new WardenError('WARDEN_ERR_CLOSED', `the ${this.#what} is closed`);
  }

  /**
   * Waits between attempts. The timer keeps the process alive: someone awaits the retry (with
   * an unref'd one, `warden start` against an unreachable server exited with code 13, unsettled
   * top-level await, instead of reporting the failure).
   */
  async #pause(ms: number): Promise<void> {
    try {
      await sleep(ms, undefined, { signal: this.#closing.signal });
    } catch {
      // closed: the loop's next check throws CLOSED
    }
  }

  #configError(err: unknown): WardenError {
    const state = sqlState(err);
    const reason =
      state === '28P01' || /password/i.test(describe(err))
        ? 'the password was refused or is missing'
        : state === '28000'
          ? 'pg_hba.conf refuses this user, host or TLS setting'
          : state === '3D000'
            ? 'the database does not exist'
            : state === '42501'
              ? 'the user lacks a privilege it needs'
              : describe(err);
    return new WardenError('WARDEN_ERR_BAD_CONFIG', `${this.#what}: PostgreSQL at ${this.target}: ${reason}`);
  }
}

function ignore(): void {}

/** A short description of a failure without anything secret in it. */
export function describe(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    return code === undefined ? err.message : `${String(code)}: ${err.message}`;
  }
  return String(err);
}
