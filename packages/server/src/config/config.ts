/**
 * `warden.yaml`: parsing, defaults and the frozen `WardenConfig` that `bin/` composes the
 * services from. Loading only reads (the config file and any CA files it names); it never
 * creates the data dir or anything else. Tested by `config.test.ts`.
 *
 * Relative paths inside the file (`data_dir`, `storage.path`, `storage.password_file`,
 * `storage.tls.*_file`, `audit.jsonl_path`, `ekcert_allowed_cas`,
 * `db_service.databases[].tls.ca_cert_file`) are resolved against the file's directory, so the meaning of a file
 * does not depend on where `warden` was started. The built-in default data dir
 * (`./warden-data`) and `--data-dir` are resolved against the working directory.
 *
 * `storage.connString` may carry a password: never log a `WardenConfig` whole (the backend's
 * `target` names the database without it). Paths inside the conn string (`sslrootcert`, …)
 * are used as written.
 */
import { readFileSync } from 'node:fs';
import { hostname as osHostname } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { DEFAULT_CLUSTER_NAME, DEFAULT_DATA_DIR, DEFAULT_PROXY_ADDR, WardenError } from '@warden/api';
import { LineCounter, parseDocument } from 'yaml';
import { type HostPort, parseHostPort } from './address';
import { readTrustedCaFile, type TrustedCaFile } from './ca-files';
import { badConfig, type ConfigProblem, lineOf, problemsFromIssues, type SourceMap } from './problems';
import { type ConfigFile, configFileSchema } from './schema';

export interface LogConfig {
  readonly severity: 'debug' | 'info' | 'warn' | 'error';
  readonly format: 'text' | 'json';
}

export interface DeviceTrustConfig {
  /** Cluster-wide device trust mode (roles may raise it, never lower it); default `optional`. */
  readonly mode: 'off' | 'optional' | 'required-for-humans' | 'required';
  readonly autoEnroll: boolean;
  /** A device authenticates only for its owner. */
  readonly bindOwner: boolean;
  /** When non-empty, an EK certificate must chain to one of these CAs. */
  readonly ekcertAllowedCas: readonly TrustedCaFile[];
}

export interface AuthenticationConfig {
  /**
   * True when the config file sets `auth_service.authentication` itself: then it wins over
   * the stored cluster auth preference at every start (see `AuthPreferenceService.applyAtStart`).
   */
  readonly setInFile: boolean;
  readonly type: 'local';
  readonly secondFactor: 'on' | 'otp' | 'off';
  readonly deviceTrust: DeviceTrustConfig;
}

export interface AuditConfig {
  /** Extra JSON-lines sink for audit events, when set. */
  readonly jsonlPath: string | undefined;
}

export interface AuthServiceConfig {
  readonly enabled: boolean;
  readonly clusterName: string;
  readonly authentication: AuthenticationConfig;
  readonly audit: AuditConfig;
}

export interface ProxyServiceConfig {
  readonly enabled: boolean;
  readonly listenAddr: HostPort;
  /** The address clients are told to use; defaults to `listenAddr`. */
  readonly publicAddr: HostPort;
  /**
   * The MySQL listener for native clients with a database certificate (`mysql_listen_addr`);
   * absent: none (PostgreSQL clients use the proxy port itself).
   */
  readonly mysqlListenAddr?: HostPort;
  /** Absent: DEFAULT_PROXY_LIMITS. */
  readonly limits?: ProxyLimits;
  /**
   * `match`: a web device challenge is answered only from the browser's address (default);
   * `off`: from any address (browser and `wsh` behind different NAT addresses).
   */
  readonly webDeviceAddressBinding?: 'match' | 'off';
  /** Absent: DEFAULT_PROXY_RATE_LIMITS. */
  readonly rateLimits?: ProxyRateLimits;
}

/** Per-address rate limits of the routes that need no login (issue 15 item 4), shared by replicas. */
export interface ProxyRateLimits {
  readonly requestsPerMinute: number;
  readonly failedAttempts: number;
  readonly failedWindowMs: number;
}

export const DEFAULT_PROXY_RATE_LIMITS: ProxyRateLimits = Object.freeze({
  requestsPerMinute: 300,
  failedAttempts: 10,
  failedWindowMs: 10 * 60_000,
});

/** Timeouts of the proxy's TLS port (issue 15 item 3), in milliseconds. */
export interface ProxyLimits {
  readonly handshakeTimeoutMs: number;
  readonly headerTimeoutMs: number;
  readonly requestTimeoutMs: number;
  readonly idleTimeoutMs: number;
}

export const DEFAULT_PROXY_LIMITS: ProxyLimits = Object.freeze({
  handshakeTimeoutMs: 10_000,
  headerTimeoutMs: 10_000,
  requestTimeoutMs: 60_000,
  idleTimeoutMs: 120_000,
});

/** Connection limits of an SSH node (issue 15 item 3; sshd's LoginGraceTime and MaxStartups). */
export interface SshLimits {
  readonly loginGraceTimeMs: number;
  readonly maxStartups: number;
  readonly maxStartupsPerSource: number;
}

export const DEFAULT_SSH_LIMITS: SshLimits = Object.freeze({
  loginGraceTimeMs: 30_000,
  maxStartups: 100,
  maxStartupsPerSource: 10,
});

export interface SshServiceConfig {
  readonly enabled: boolean;
  readonly listenAddr: HostPort;
  /** Where the proxy reaches this node (the node resource's `addr`); defaults to `listenAddr`. */
  readonly publicAddr: HostPort;
  /** The node's host name; defaults to the machine's (`os.hostname()`). */
  readonly hostname: string;
  /** Static labels of the node resource. */
  readonly labels: Readonly<Record<string, string>>;
  /** Absent: DEFAULT_SSH_LIMITS. */
  readonly limits?: SshLimits;
}

/** One database of `db_service.databases`. */
export interface DbConfig {
  readonly name: string;
  readonly protocol: 'postgres' | 'mysql';
  /** Where db_service dials it. */
  readonly uri: HostPort;
  readonly staticLabels: Readonly<Record<string, string>>;
  /** The CA certificates (PEM) of `tls.ca_cert_file`, read at load time; absent: Warden's db CA. */
  readonly caCert: TrustedCaFile | undefined;
}

/** One cluster of `kube_service.clusters` (paths absolute; the files are read when kube_service starts). */
export interface KubeClusterConfig {
  readonly name: string;
  readonly kubeconfigPath?: string;
  readonly server?: string;
  readonly caFile?: string;
  readonly tokenFile?: string;
  readonly certFile?: string;
  readonly keyFile?: string;
  readonly labels: Readonly<Record<string, string>>;
}

export interface KubeServiceConfig {
  readonly enabled: boolean;
  readonly clusters: readonly KubeClusterConfig[];
}

export interface DbServiceConfig {
  readonly enabled: boolean;
  readonly databases: readonly DbConfig[];
}

/** One web app of `app_service.apps` (validated like an `app` resource's spec). */
export interface AppConfig {
  readonly name: string;
  readonly description?: string;
  readonly uri: string;
  readonly publicAddr?: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly rewriteHeaders: readonly { readonly name: string; readonly value: string }[];
  readonly insecureSkipVerify: boolean;
  readonly auditRequests: boolean;
}

export interface AppServiceConfig {
  readonly enabled: boolean;
  readonly apps: readonly AppConfig[];
}

/**
 * `storage: {type: postgres, …}`: the connection fields of `PostgresBackendOptions` (same
 * names), shared by the backend and the audit log. Absent fields are left out.
 */
export interface PostgresStorageConfig {
  readonly type: 'postgres';
  /** May hold a password: never log it. */
  readonly connString: string;
  readonly passwordFile?: string;
  readonly passwordEnv?: string;
  readonly tls?: {
    readonly mode?: 'disable' | 'require' | 'verify-ca' | 'verify-full';
    readonly caFile?: string;
    readonly certFile?: string;
    readonly keyFile?: string;
    readonly serverName?: string;
  };
  /** The PostgreSQL schema holding Warden's tables (default `warden`). */
  readonly schema?: string;
  /** Connections per pool (a replica has two pools: backend and audit). */
  readonly poolSize?: number;
}

export type StorageConfig =
  | { readonly type: 'sqlite'; readonly path: string }
  | PostgresStorageConfig
  | { readonly type: 'memory' };

/** The whole configuration, fully defaulted and deeply frozen. */
export interface WardenConfig {
  /** The file it was read from; undefined for the built-in defaults. */
  readonly source: string | undefined;
  /** Absolute path of the data directory. */
  readonly dataDir: string;
  /** Where the diagnostics listener (/metrics, /healthz, /readyz) listens; undefined: off. */
  readonly diagAddr: HostPort | undefined;
  readonly log: LogConfig;
  readonly authService: AuthServiceConfig;
  readonly proxyService: ProxyServiceConfig;
  readonly sshService: SshServiceConfig;
  readonly dbService: DbServiceConfig;
  readonly appService: AppServiceConfig;
  readonly kubeService: KubeServiceConfig;
  readonly storage: StorageConfig;
}

export interface ParseConfigOptions {
  /** `--data-dir`: overrides `data_dir` (resolved against the working directory). */
  dataDir?: string;
  /** Directory that relative paths in the file are resolved against (default: the working directory). */
  baseDir?: string;
}

export interface LoadConfigOptions {
  /** `--config`: the file to read; without it, the built-in defaults apply. */
  path?: string;
  /** `--data-dir`: overrides `data_dir` (resolved against the working directory). */
  dataDir?: string;
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

function builtInAddr(name: string, text: string): HostPort {
  const addr = parseHostPort(text);
  if (typeof addr === 'string') throw new WardenError('WARDEN_ERR_INTERNAL', `bad ${name}: ${addr}`);
  return addr;
}

function defaultProxyAddr(): HostPort {
  return builtInAddr('DEFAULT_PROXY_ADDR', DEFAULT_PROXY_ADDR);
}

/** Where ssh_service listens unless configured: loopback only, port 3022 (Teleport's node port). */
export const DEFAULT_SSH_LISTEN_ADDR = '127.0.0.1:3022';

function build(
  file: ConfigFile | undefined,
  source: string | undefined,
  baseDir: string,
  dataDirOverride: string | undefined,
  cas: readonly TrustedCaFile[],
  dbCas: ReadonlyMap<number, TrustedCaFile> = new Map(),
): WardenConfig {
  const fromFile = (p: string | undefined) => (p === undefined ? undefined : resolve(baseDir, p));
  const dataDir =
    dataDirOverride !== undefined
      ? resolve(dataDirOverride)
      : (fromFile(file?.data_dir) ?? resolve(DEFAULT_DATA_DIR));
  const auth = file?.auth_service;
  const dt = auth?.authentication?.device_trust;
  const proxy = file?.proxy_service;
  const listenAddr = proxy?.listen_addr ?? defaultProxyAddr();
  const ssh = file?.ssh_service;
  const sshListenAddr = ssh?.listen_addr ?? builtInAddr('DEFAULT_SSH_LISTEN_ADDR', DEFAULT_SSH_LISTEN_ADDR);

  let storage: StorageConfig;
  const s = file?.storage;
  if (s === undefined || s.type === 'sqlite') {
    storage = { type: 'sqlite', path: fromFile(s?.path) ?? join(dataDir, 'backend.sqlite') };
  } else if (s.type === 'postgres') {
    storage = postgresStorage(s, fromFile);
  } else {
    storage = { type: 'memory' };
  }

  return deepFreeze<WardenConfig>({
    source,
    dataDir,
    diagAddr: file?.diag_addr,
    log: { severity: file?.log?.severity ?? 'info', format: file?.log?.format ?? 'text' },
    authService: {
      enabled: auth?.enabled ?? true,
      clusterName: auth?.cluster_name ?? DEFAULT_CLUSTER_NAME,
      authentication: {
        setInFile: auth?.authentication !== undefined,
        type: auth?.authentication?.type ?? 'local',
        secondFactor: auth?.authentication?.second_factor ?? 'otp',
        deviceTrust: {
          mode: dt?.mode ?? 'optional',
          autoEnroll: dt?.auto_enroll ?? false,
          bindOwner: dt?.bind_owner ?? false,
          ekcertAllowedCas: [...cas],
        },
      },
      audit: { jsonlPath: fromFile(auth?.audit?.jsonl_path) },
    },
    proxyService: {
      enabled: proxy?.enabled ?? true,
      listenAddr,
      publicAddr: proxy?.public_addr ?? listenAddr,
      ...(proxy?.mysql_listen_addr !== undefined ? { mysqlListenAddr: proxy.mysql_listen_addr } : {}),
      limits: {
        handshakeTimeoutMs: proxy?.handshake_timeout ?? DEFAULT_PROXY_LIMITS.handshakeTimeoutMs,
        headerTimeoutMs: proxy?.header_timeout ?? DEFAULT_PROXY_LIMITS.headerTimeoutMs,
        requestTimeoutMs: proxy?.request_timeout ?? DEFAULT_PROXY_LIMITS.requestTimeoutMs,
        idleTimeoutMs: proxy?.idle_timeout ?? DEFAULT_PROXY_LIMITS.idleTimeoutMs,
      },
      webDeviceAddressBinding: proxy?.web_ui?.device_address_binding ?? 'match',
      ...(proxy?.unauthenticated_requests_per_minute !== undefined ||
      proxy?.failed_attempts !== undefined ||
      proxy?.failed_attempts_window !== undefined
        ? {
            rateLimits: {
              requestsPerMinute:
                proxy.unauthenticated_requests_per_minute ?? DEFAULT_PROXY_RATE_LIMITS.requestsPerMinute,
              failedAttempts: proxy.failed_attempts ?? DEFAULT_PROXY_RATE_LIMITS.failedAttempts,
              failedWindowMs: proxy.failed_attempts_window ?? DEFAULT_PROXY_RATE_LIMITS.failedWindowMs,
            },
          }
        : {}),
    },
    sshService: {
      enabled: ssh?.enabled ?? true,
      listenAddr: sshListenAddr,
      publicAddr: ssh?.public_addr ?? sshListenAddr,
      hostname: ssh?.hostname ?? osHostname(),
      labels: { ...(ssh?.labels ?? {}) },
      limits: {
        loginGraceTimeMs: ssh?.login_grace_time ?? DEFAULT_SSH_LIMITS.loginGraceTimeMs,
        maxStartups: ssh?.max_startups ?? DEFAULT_SSH_LIMITS.maxStartups,
        maxStartupsPerSource: ssh?.max_startups_per_source ?? DEFAULT_SSH_LIMITS.maxStartupsPerSource,
      },
    },
    dbService: {
      enabled: file?.db_service?.enabled ?? true,
      databases: (file?.db_service?.databases ?? []).map((d, i) => ({
        name: d.name,
        protocol: d.protocol,
        uri: d.uri,
        staticLabels: { ...(d.static_labels ?? {}) },
        caCert: dbCas.get(i),
      })),
    },
    appService: {
      enabled: file?.app_service?.enabled ?? true,
      apps: (file?.app_service?.apps ?? []).map((a) => ({
        name: a.name,
        ...(a.description !== undefined ? { description: a.description } : {}),
        uri: a.uri,
        ...(a.public_addr !== undefined ? { publicAddr: a.public_addr } : {}),
        labels: { ...(a.labels ?? {}) },
        rewriteHeaders: (a.rewrite?.headers ?? []).map((h) => ({ name: h.name, value: h.value })),
        insecureSkipVerify: a.insecure_skip_verify ?? false,
        auditRequests: a.audit_requests ?? false,
      })),
    },
    kubeService: {
      enabled: file?.kube_service?.enabled ?? true,
      clusters: (file?.kube_service?.clusters ?? []).map((c) =>
        defined({
          name: c.name,
          kubeconfigPath: fromFile(c.kubeconfig_path),
          server: c.server,
          caFile: fromFile(c.ca_file),
          tokenFile: fromFile(c.token_file),
          certFile: fromFile(c.cert_file),
          keyFile: fromFile(c.key_file),
          labels: { ...(c.labels ?? {}) },
        }),
      ),
    },
    storage,
  });
}

/** Drops the keys whose value is undefined (so configs compare and print cleanly). */
function defined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

function postgresStorage(
  s: Extract<NonNullable<ConfigFile['storage']>, { type: 'postgres' }>,
  fromFile: (p: string | undefined) => string | undefined,
): PostgresStorageConfig {
  const tls = s.tls && {
    mode: s.tls.mode,
    caFile: fromFile(s.tls.ca_file),
    certFile: fromFile(s.tls.cert_file),
    keyFile: fromFile(s.tls.key_file),
    serverName: s.tls.server_name,
  };
  return defined<PostgresStorageConfig>({
    type: 'postgres',
    connString: s.conn_string,
    passwordFile: fromFile(s.password_file),
    passwordEnv: s.password_env,
    tls: tls && defined(tls),
    schema: s.schema,
    poolSize: s.pool_size,
  });
}

/**
 * The configuration used when no file is given: data dir `./warden-data` (or `dataDir`),
 * cluster `warden`, proxy on 127.0.0.1:3080, ssh_service on 127.0.0.1:3022 named after the
 * machine, sqlite at `<data dir>/backend.sqlite`, second factor `otp`, device trust `optional`.
 *
 * @example
 *   defaultConfig({ dataDir: '/tmp/w' }).storage; // { type: 'sqlite', path: '/tmp/w/backend.sqlite' }
 */
export function defaultConfig(options: { dataDir?: string } = {}): WardenConfig {
  return build(undefined, undefined, process.cwd(), options.dataDir, []);
}

/**
 * Parses the text of a `warden.yaml`. `source` names the file in error messages. Reads the
 * CA files it names (and nothing else: PostgreSQL's password and TLS files are read when
 * `warden start` connects).
 *
 * @throws WardenError WARDEN_ERR_BAD_CONFIG naming the file, the field and its line.
 * @example
 *   const config = parseConfig('version: v1\nauth_service:\n  cluster_name: example\n', 'warden.yaml');
 *   config.authService.clusterName; // 'example'
 */
export function parseConfig(text: string, source: string, options: ParseConfigOptions = {}): WardenConfig {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: true });
  const map: SourceMap = { doc, lineCounter };

  const yamlError = doc.errors[0];
  if (yamlError !== undefined) {
    const message = yamlError.message.split(' at line ')[0] ?? yamlError.message;
    throw badConfig(source, [
      { path: '', message: `invalid YAML: ${message}`, line: yamlError.linePos?.[0].line },
    ]);
  }
  let raw: unknown;
  try {
    raw = doc.toJS({ maxAliasCount: 100 });
  } catch (e) {
    throw badConfig(source, [
      { path: '', message: `invalid YAML: ${(e as Error).message}`, line: undefined },
    ]);
  }
  if (raw === null || raw === undefined) {
    throw badConfig(source, [{ path: 'version', message: 'is required; expected v1', line: 1 }]);
  }
  if (typeof raw !== 'object' || Array.isArray(raw)) {
    throw badConfig(source, [
      { path: '', message: 'expected a mapping (key: value lines) at the top level', line: lineOf(map, []) },
    ]);
  }

  const parsed = configFileSchema.safeParse(raw);
  if (!parsed.success)
    throw badConfig(source, problemsFromIssues(parsed.error.issues, raw, map, configFileSchema));
  const file = parsed.data;

  const baseDir = options.baseDir ?? process.cwd();
  const cas: TrustedCaFile[] = [];
  const problems: ConfigProblem[] = [];
  const caPaths = file.auth_service?.authentication?.device_trust?.ekcert_allowed_cas ?? [];
  for (const [i, p] of caPaths.entries()) {
    const fieldPath = ['auth_service', 'authentication', 'device_trust', 'ekcert_allowed_cas', i];
    const ca = readTrustedCaFile(resolve(baseDir, p));
    if (typeof ca === 'string') {
      problems.push({
        path: `auth_service.authentication.device_trust.ekcert_allowed_cas[${i}]`,
        message: ca,
        line: lineOf(map, fieldPath),
      });
    } else {
      cas.push(ca);
    }
  }
  const dbCas = new Map<number, TrustedCaFile>();
  const seen = new Set<string>();
  for (const [i, d] of (file.db_service?.databases ?? []).entries()) {
    if (seen.has(d.name)) {
      problems.push({
        path: `db_service.databases[${i}].name`,
        message: `database ${JSON.stringify(d.name)} is listed twice`,
        line: lineOf(map, ['db_service', 'databases', i, 'name']),
      });
    }
    seen.add(d.name);
    const p = d.tls?.ca_cert_file;
    if (p === undefined) continue;
    const ca = readTrustedCaFile(resolve(baseDir, p));
    if (typeof ca === 'string') {
      problems.push({
        path: `db_service.databases[${i}].tls.ca_cert_file`,
        message: ca,
        line: lineOf(map, ['db_service', 'databases', i, 'tls', 'ca_cert_file']),
      });
    } else {
      dbCas.set(i, ca);
    }
  }
  const apps = new Set<string>();
  for (const [i, a] of (file.app_service?.apps ?? []).entries()) {
    if (apps.has(a.name)) {
      problems.push({
        path: `app_service.apps[${i}].name`,
        message: `app ${JSON.stringify(a.name)} is listed twice`,
        line: lineOf(map, ['app_service', 'apps', i, 'name']),
      });
    }
    apps.add(a.name);
  }
  if (problems.length > 0) throw badConfig(source, problems);

  return build(file, source, baseDir, options.dataDir, cas, dbCas);
}

/**
 * Loads the configuration: the file at `path` if given (relative paths in it resolved
 * against its directory), else the defaults; `dataDir` overrides `data_dir`. Never writes
 * anything.
 *
 * @throws WardenError WARDEN_ERR_BAD_CONFIG (unreadable or invalid file).
 * @example
 *   const config = loadConfig({ path: '/etc/warden.yaml', dataDir: opts.dataDir });
 */
export function loadConfig(options: LoadConfigOptions = {}): WardenConfig {
  if (options.path === undefined) return defaultConfig({ dataDir: options.dataDir });
  let text: string;
  try {
    text = readFileSync(options.path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why =
      code === 'ENOENT'
        ? 'no such file'
        : code === 'EACCES'
          ? 'permission denied'
          : code === 'EISDIR'
            ? 'is a directory, not a file'
            : (e as Error).message;
    throw new WardenError(
      'WARDEN_ERR_BAD_CONFIG',
      `cannot read config file ${JSON.stringify(options.path)}: ${why}`,
      {
        source: options.path,
      },
    );
  }
  return parseConfig(text, options.path, {
    dataDir: options.dataDir,
    baseDir: dirname(resolve(options.path)),
  });
}
