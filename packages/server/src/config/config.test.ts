import 'reflect-metadata';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, test } from 'node:test';
import * as x509 from '@peculiar/x509';
import { isWardenError, type WardenError } from '@warden/api';
import { defaultConfig, loadConfig, parseConfig, problemLines, type WardenConfig } from './index';

const dir = mkdtempSync(join(tmpdir(), 'warden-config-test-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function write(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

/** Asserts that `fn` throws WARDEN_ERR_BAD_CONFIG and returns the error. */
function badConfig(fn: () => unknown): WardenError {
  try {
    fn();
  } catch (e) {
    assert.ok(isWardenError(e, 'WARDEN_ERR_BAD_CONFIG'), `expected BAD_CONFIG, got ${String(e)}`);
    return e;
  }
  assert.fail('expected WARDEN_ERR_BAD_CONFIG, nothing was thrown');
}

/** The message of the error for `text` parsed as warden.yaml. */
function problem(text: string): string {
  return badConfig(() => parseConfig(text, 'warden.yaml', { baseDir: dir })).message;
}

/** For each `[text, expected]`: the error for `text` says exactly `expected` (or matches it). */
function assertProblems(cases: [text: string, expected: string | RegExp][]): void {
  for (const [text, expected] of cases) {
    if (typeof expected === 'string') assert.equal(problem(text), expected, text);
    else assert.match(problem(text), expected, text);
  }
}

/** proxy_service's timeouts when the file sets none. */
const DEFAULT_LIMITS = {
  handshakeTimeoutMs: 10_000,
  headerTimeoutMs: 10_000,
  requestTimeoutMs: 60_000,
  idleTimeoutMs: 120_000,
};

const ecdsa = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
async function makeCert(cn: string, ca: boolean): Promise<string> {
  const keys = await crypto.subtle.generateKey(ecdsa, true, ['sign', 'verify']);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '01',
    name: `CN=${cn}`,
    notBefore: new Date('2020-01-01'),
    notAfter: new Date('2040-01-01'),
    keys,
    signingAlgorithm: ecdsa,
    extensions: [new x509.BasicConstraintsExtension(ca, undefined, true)],
  });
  return `${cert.toString('pem')}\n`;
}

function assertDeepFrozen(value: unknown, path = 'config'): void {
  if (value === null || typeof value !== 'object') return;
  assert.ok(Object.isFrozen(value), `${path} is not frozen`);
  for (const [k, v] of Object.entries(value)) assertDeepFrozen(v, `${path}.${k}`);
}

// --- defaults -------------------------------------------------------------------------------

test('without a file, loadConfig returns the documented defaults', () => {
  const config = loadConfig();
  const dataDir = resolve('warden-data');
  assert.deepEqual(config, {
    source: undefined,
    dataDir,
    diagAddr: undefined,
    log: { severity: 'info', format: 'text' },
    authService: {
      enabled: true,
      clusterName: 'warden',
      authentication: {
        setInFile: false,
        type: 'local',
        secondFactor: 'otp',
        deviceTrust: { mode: 'optional', autoEnroll: false, bindOwner: false, ekcertAllowedCas: [] },
      },
      audit: { jsonlPath: undefined },
    },
    proxyService: {
      enabled: true,
      listenAddr: { host: '127.0.0.1', port: 3080 },
      publicAddr: { host: '127.0.0.1', port: 3080 },
      limits: DEFAULT_LIMITS,
      webDeviceAddressBinding: 'match',
    },
    sshService: {
      enabled: true,
      listenAddr: { host: '127.0.0.1', port: 3022 },
      publicAddr: { host: '127.0.0.1', port: 3022 },
      hostname: hostname(),
      labels: {},
      limits: { loginGraceTimeMs: 30_000, maxStartups: 100, maxStartupsPerSource: 10 },
    },
    dbService: { enabled: true, databases: [] },
    appService: { enabled: true, apps: [] },
    kubeService: { enabled: true, clusters: [] },
    storage: { type: 'sqlite', path: join(dataDir, 'backend.sqlite') },
  } satisfies WardenConfig);
  assertDeepFrozen(config);
});

test('a minimal file gives the same defaults as no file', () => {
  const p = write('minimal.yaml', 'version: v1\n');
  const fromFile = loadConfig({ path: p });
  const { source, ...rest } = fromFile;
  assert.equal(source, p);
  const { source: _none, ...defaults } = defaultConfig();
  // Relative defaults are the built-in ones (working directory), not the file's directory.
  assert.deepEqual(rest, defaults);
});

test('the config is deeply frozen and cannot be changed', () => {
  const config = parseConfig('version: v1\n', 'warden.yaml');
  assertDeepFrozen(config);
  assert.throws(() => {
    (config.authService.authentication.deviceTrust as { mode: string }).mode = 'required';
  }, TypeError);
});

// --- every field ----------------------------------------------------------------------------

test('every field is read, relative paths resolve against the file directory', async () => {
  const sub = join(dir, 'full');
  mkdirSync(join(sub, 'cas'), { recursive: true });
  const root = await makeCert('EK Root A', true);
  const intermediate = await makeCert('EK Intermediate B', true);
  writeFileSync(join(sub, 'cas', 'a.pem'), root);
  writeFileSync(join(sub, 'b.pem'), `Subject: EK Intermediate B\n${intermediate}${root}`);
  const p = join(sub, 'warden.yaml');
  writeFileSync(
    p,
    `version: v1
data_dir: /var/lib/warden
log: { severity: debug, format: json }
auth_service:
  enabled: false
  cluster_name: example
  authentication:
    type: local
    second_factor: "on"
    device_trust:
      mode: required
      auto_enroll: true
      ekcert_allowed_cas: [ cas/a.pem, ${join(sub, 'b.pem')} ]
  audit:
    jsonl_path: audit/audit.jsonl
proxy_service:
  enabled: false
  listen_addr: 0.0.0.0:443
  public_addr: proxy.example.com:3080
ssh_service:
  enabled: false
  listen_addr: 0.0.0.0:3022
  public_addr: node-1.example.com:3022
  hostname: node-1
  labels: { env: prod, team: "db" }
storage:
  type: sqlite
  path: db/backend.sqlite
`,
  );
  const config = loadConfig({ path: p });
  assert.equal(config.source, p);
  assert.equal(config.dataDir, '/var/lib/warden');
  assert.deepEqual(config.log, { severity: 'debug', format: 'json' });
  assert.equal(config.authService.enabled, false);
  assert.equal(config.authService.clusterName, 'example');
  assert.equal(config.authService.authentication.secondFactor, 'on');
  const dt = config.authService.authentication.deviceTrust;
  assert.equal(dt.mode, 'required');
  assert.equal(dt.autoEnroll, true);
  assert.deepEqual(
    dt.ekcertAllowedCas.map((c) => [c.path, c.certificates.length]),
    [
      [join(sub, 'cas', 'a.pem'), 1],
      [join(sub, 'b.pem'), 2],
    ],
  );
  assert.equal(dt.ekcertAllowedCas[0]?.certificates[0], root);
  assert.equal(dt.ekcertAllowedCas[1]?.certificates[0], intermediate);
  assert.equal(config.authService.audit.jsonlPath, join(sub, 'audit', 'audit.jsonl'));
  assert.deepEqual(config.proxyService, {
    enabled: false,
    listenAddr: { host: '0.0.0.0', port: 443 },
    publicAddr: { host: 'proxy.example.com', port: 3080 },
    limits: DEFAULT_LIMITS,
    webDeviceAddressBinding: 'match',
  });
  assert.deepEqual(config.sshService, {
    enabled: false,
    listenAddr: { host: '0.0.0.0', port: 3022 },
    publicAddr: { host: 'node-1.example.com', port: 3022 },
    hostname: 'node-1',
    labels: { env: 'prod', team: 'db' },
    limits: { loginGraceTimeMs: 30_000, maxStartups: 100, maxStartupsPerSource: 10 },
  });
  assert.deepEqual(config.storage, { type: 'sqlite', path: join(sub, 'db', 'backend.sqlite') });
  assertDeepFrozen(config);
});

test('public_addr defaults to listen_addr; storage memory needs nothing else', () => {
  const config = parseConfig(
    'version: v1\nproxy_service:\n  listen_addr: "[::1]:4080"\nssh_service:\n  listen_addr: 10.0.0.7:2222\nstorage:\n  type: memory\n',
    'warden.yaml',
  );
  assert.deepEqual(config.proxyService.publicAddr, { host: '::1', port: 4080 });
  assert.deepEqual(config.sshService.publicAddr, { host: '10.0.0.7', port: 2222 });
  assert.deepEqual(config.storage, { type: 'memory' });
});

test('device trust is optional unless the file says otherwise (a new cluster, issue 5)', () => {
  const mode = (text: string) => parseConfig(text, 'warden.yaml').authService.authentication.deviceTrust.mode;
  assert.equal(mode('version: v1\n'), 'optional');
  assert.equal(mode('version: v1\nauth_service:\n  authentication:\n    second_factor: "on"\n'), 'optional');
  assert.equal(
    mode('version: v1\nauth_service:\n  authentication:\n    device_trust: { mode: "off" }\n'),
    'off',
  );
  assert.equal(defaultConfig().authService.authentication.deviceTrust.mode, 'optional');
});

test('second_factor and mode accept both YAML 1.2 strings and YAML 1.1 booleans', () => {
  const sf = (text: string) => parseConfig(text, 'warden.yaml').authService.authentication;
  const doc = (sfValue: string, mode: string) =>
    `version: v1\nauth_service:\n  authentication:\n    second_factor: ${sfValue}\n    device_trust:\n      mode: ${mode}\n`;
  assert.equal(sf(doc('on', 'optional')).secondFactor, 'on');
  assert.equal(sf(doc('"on"', 'optional')).secondFactor, 'on');
  assert.equal(sf(doc('off', 'off')).secondFactor, 'off');
  assert.equal(sf(doc('otp', 'off')).deviceTrust.mode, 'off');
  assert.equal(sf(doc('true', 'required')).secondFactor, 'on');
  assert.equal(sf(doc('false', 'required')).secondFactor, 'off');
  // Under YAML 1.1, unquoted on/off are booleans.
  const v11 = (text: string) => `%YAML 1.1\n---\n${text}`;
  const a = sf(v11(doc('on', 'off')));
  assert.equal(a.secondFactor, 'on');
  assert.equal(a.deviceTrust.mode, 'off');
  assert.equal(sf(v11(doc('off', 'required'))).secondFactor, 'off');
  // `true` is not a mode: it stays an error rather than a guess.
  assert.match(
    problem(doc('on', 'true')),
    /device_trust\.mode: expected one of off, optional, required-for-humans, required \(line 6\)/,
  );
});

// --- --data-dir -----------------------------------------------------------------------------

test('--data-dir overrides data_dir and moves the default sqlite path with it', () => {
  const p = write('datadir.yaml', 'version: v1\ndata_dir: /var/lib/warden\n');
  const config = loadConfig({ path: p, dataDir: join(dir, 'override') });
  assert.equal(config.dataDir, join(dir, 'override'));
  assert.deepEqual(config.storage, { type: 'sqlite', path: join(dir, 'override', 'backend.sqlite') });

  const relative = loadConfig({ dataDir: 'some/where' });
  assert.equal(relative.dataDir, resolve('some/where'));
});

test('--data-dir does not move an explicit storage.path', () => {
  const p = write('explicit.yaml', 'version: v1\nstorage:\n  type: sqlite\n  path: /srv/w.sqlite\n');
  const config = loadConfig({ path: p, dataDir: '/tmp/elsewhere' });
  assert.equal(config.dataDir, '/tmp/elsewhere');
  assert.deepEqual(config.storage, { type: 'sqlite', path: '/srv/w.sqlite' });
});

test('loading never writes: the data dir is not created', () => {
  const dataDir = join(dir, 'never-created');
  const p = write('nowrite.yaml', `version: v1\ndata_dir: ${dataDir}\n`);
  const before = readdirSync(dir).sort();
  loadConfig({ path: p });
  loadConfig({ dataDir });
  assert.deepEqual(readdirSync(dir).sort(), before);
});

// --- postgres -------------------------------------------------------------------------------

test('storage postgres: only conn_string is required', () => {
  const text = 'version: v1\nstorage:\n  type: postgres\n  conn_string: postgres://warden@db/warden\n';
  const config = parseConfig(text, 'warden.yaml');
  assert.deepEqual(config.storage, { type: 'postgres', connString: 'postgres://warden@db/warden' });
  const p = write('pg.yaml', text);
  assert.deepEqual(loadConfig({ path: p }).storage, config.storage);
});

test('storage postgres maps every option, files resolved against the config file', () => {
  const sub = join(dir, 'pg-etc');
  mkdirSync(sub, { recursive: true });
  const p = join(sub, 'warden.yaml');
  writeFileSync(
    p,
    [
      'version: v1',
      'storage:',
      '  type: postgres',
      '  conn_string: postgresql://warden@db.internal:5433/warden?sslmode=verify-full',
      '  password_file: secrets/db-password',
      '  tls:',
      '    mode: verify-ca',
      '    ca_file: db-ca.pem',
      '    cert_file: /etc/warden/client.pem',
      '    key_file: client-key.pem',
      '    server_name: db.internal',
      '  schema: warden_prod',
      '  pool_size: 20',
      '',
    ].join('\n'),
  );
  const config = loadConfig({ path: p });
  assert.deepEqual(config.storage, {
    type: 'postgres',
    connString: 'postgresql://warden@db.internal:5433/warden?sslmode=verify-full',
    passwordFile: join(sub, 'secrets', 'db-password'),
    tls: {
      mode: 'verify-ca',
      caFile: join(sub, 'db-ca.pem'),
      certFile: '/etc/warden/client.pem',
      keyFile: join(sub, 'client-key.pem'),
      serverName: 'db.internal',
    },
    schema: 'warden_prod',
    poolSize: 20,
  });
  assertDeepFrozen(config);
  const env = parseConfig(
    'version: v1\nstorage: { type: postgres, conn_string: "postgres://db/w", password_env: WARDEN_DB_PASSWORD }\n',
    'warden.yaml',
  );
  assert.deepEqual(env.storage, {
    type: 'postgres',
    connString: 'postgres://db/w',
    passwordEnv: 'WARDEN_DB_PASSWORD',
  });
});

test('storage postgres: bad options name the field and line, and never echo the conn string', () => {
  const pg = (extra: string, conn = 'postgres://warden@db/warden') =>
    problem(`version: v1\nstorage:\n  type: postgres\n  conn_string: "${conn}"\n${extra}`);
  const secret = pg('', 'mysql://warden:hunter2@db/warden');
  assert.equal(
    secret,
    'warden.yaml: storage.conn_string: expected a URL such as postgres://warden@db.example.com:5432/warden (line 4)',
  );
  assert.doesNotMatch(secret, /hunter2/);
  assert.doesNotMatch(pg('', 'not a url hunter2'), /hunter2/);
  assert.match(pg('', ''), /storage\.conn_string: must not be empty/);
  assert.equal(
    pg('  password_file: /run/pw\n  password_env: PGPASS\n'),
    'warden.yaml: storage.password_env: give password_file or password_env, not both (line 6)',
  );
  assert.match(
    pg('  password_env: "not a name"\n'),
    /storage\.password_env: expected the name of an environment variable \(line 5\)/,
  );
  assert.match(
    pg('  tls: { mode: prefer }\n'),
    /storage\.tls\.mode: expected one of disable, require, verify-ca, verify-full/,
  );
  assert.match(
    pg('  tls: { cert_file: c.pem }\n'),
    /storage\.tls\.cert_file: a client certificate needs both cert_file and key_file/,
  );
  assert.match(pg('  tls: { key_file: k.pem }\n'), /storage\.tls\.key_file: a client certificate needs both/);
  assert.match(pg('  tls: { sslmode: disable }\n'), /storage\.tls\.sslmode: unknown field/);
  assert.match(pg('  schema: Warden\n'), /storage\.schema: expected 1 to 48 lower-case letters/);
  assert.match(pg('  schema: pg_warden\n'), /storage\.schema: must not start with pg_/);
  assert.match(
    pg('  pool_size: 0\n'),
    /storage\.pool_size: expected a whole number from 1 to 1000 \(line 5\)/,
  );
  assert.match(pg('  pool_size: 2.5\n'), /storage\.pool_size: expected a whole number/);
  assert.match(pg('  pool_size: 1001\n'), /storage\.pool_size: expected a whole number/);
  assert.match(pg('  pool_size: "10"\n'), /storage\.pool_size: expected a number/);
  assert.match(pg('  path: /x.sqlite\n'), /storage\.path: unknown field/);
});

// --- bad input: one clear error naming file, field and line -------------------------------

test('a bad enum names file, field path and line', () => {
  assertProblems([
    [
      'version: v1\nauth_service:\n  cluster_name: example\n  authentication:\n    type: local\n    second_factor: sometimes\n',
      'warden.yaml: auth_service.authentication.second_factor: expected one of on, otp, off (line 6)',
    ],
    [
      'version: v1\nlog:\n  severity: loud\n',
      'warden.yaml: log.severity: expected one of debug, info, warn, error (line 3)',
    ],
    [
      'version: v1\nauth_service:\n  authentication:\n    type: saml\n',
      'warden.yaml: auth_service.authentication.type: expected local (line 4)',
    ],
  ]);
});

test('unknown fields are errors, in every section', () => {
  assertProblems([
    [
      'version: v1\nproxy_service:\n  enabled: true\n  listen: 1.2.3.4:80\n',
      'warden.yaml: proxy_service.listen: unknown field; did you mean listen_addr? (line 4)',
    ],
    [
      'version: v1\n\nssh_service:\n  enabled: true\n  port: 22\n',
      'warden.yaml: ssh_service.port: unknown field (line 5)',
    ],
    [
      'version: v1\nkube_service:\n  enabled: true\n  clusterz: []\n',
      'warden.yaml: kube_service.clusterz: unknown field; did you mean clusters? (line 4)',
    ],
    [
      'version: v1\nauth_service:\n  authentication:\n    device_trust:\n      mode: off\n      modee: on\n',
      'warden.yaml: auth_service.authentication.device_trust.modee: unknown field; did you mean mode? (line 6)',
    ],
  ]);
});

test('ssh_service: addresses, host name and labels are checked', () => {
  assertProblems([
    [
      'version: v1\nssh_service:\n  listen_addr: 3022\n',
      'warden.yaml: ssh_service.listen_addr: expected a string, got 3022 (line 3)',
    ],
    [
      'version: v1\nssh_service:\n  public_addr: node-1\n',
      'warden.yaml: ssh_service.public_addr: expected host:port, got "node-1" (line 3)',
    ],
    [
      'version: v1\nssh_service:\n  hostname: "web 1"\n',
      'warden.yaml: ssh_service.hostname: must not contain spaces, "/" or control characters (line 3)',
    ],
    [
      'version: v1\nssh_service:\n  labels:\n    env: 1\n',
      /^warden\.yaml: ssh_service\.labels\.env: expected a string, got 1 \(line 4\)$/,
    ],
    [
      'version: v1\nssh_service:\n  enabled: "yes"\n',
      'warden.yaml: ssh_service.enabled: expected true or false, got "yes" (line 3)',
    ],
  ]);
});

test('db_service: databases with protocol, uri, labels and a CA file relative to the file', async () => {
  const sub = join(dir, 'dbconf');
  mkdirSync(sub, { recursive: true });
  const ca = await makeCert('Orders DB CA', true);
  writeFileSync(join(sub, 'orders-ca.pem'), ca);
  const p = join(sub, 'warden.yaml');
  writeFileSync(
    p,
    `version: v1
db_service:
  databases:
    - name: orders
      protocol: postgres
      uri: db-1.internal:5432
      static_labels: { env: prod }
      tls:
        ca_cert_file: orders-ca.pem
    - name: billing
      protocol: mysql
      uri: "[::1]:3306"
`,
  );
  const config = loadConfig({ path: p });
  assert.equal(config.dbService.enabled, true);
  const [orders, billing] = config.dbService.databases;
  assert.deepEqual(
    { ...orders, caCert: orders?.caCert?.path },
    {
      name: 'orders',
      protocol: 'postgres',
      uri: { host: 'db-1.internal', port: 5432 },
      staticLabels: { env: 'prod' },
      caCert: join(sub, 'orders-ca.pem'),
    },
  );
  assert.equal(orders?.caCert?.certificates[0], ca);
  assert.deepEqual(billing, {
    name: 'billing',
    protocol: 'mysql',
    uri: { host: '::1', port: 3306 },
    staticLabels: {},
    caCert: undefined,
  });
  assertDeepFrozen(config);
  assert.equal(
    parseConfig('version: v1\ndb_service:\n  enabled: false\n', 'w.yaml').dbService.enabled,
    false,
  );
});

test('db_service: bad protocol, uri, names, duplicates, CA files and unknown fields are named', async () => {
  const db = (fields: string) => `version: v1\ndb_service:\n  databases:\n    - ${fields}\n`;
  assertProblems([
    [
      db('{ name: a, protocol: oracle, uri: "h:1" }'),
      'warden.yaml: db_service.databases[0].protocol: expected one of postgres, mysql (line 4)',
    ],
    [
      db('{ name: a, protocol: postgres, uri: h }'),
      'warden.yaml: db_service.databases[0].uri: expected host:port, got "h" (line 4)',
    ],
    [
      db('{ name: "a b", protocol: postgres, uri: "h:1" }'),
      'warden.yaml: db_service.databases[0].name: must not contain spaces, "/" or control characters (line 4)',
    ],
    [db('{ protocol: postgres, uri: "h:1" }'), /db_service\.databases\[0\]\.name/],
    [
      db('{ name: a, protocol: postgres, uri: "h:1", password: x }'),
      'warden.yaml: db_service.databases[0].password: unknown field (line 4)',
    ],
    [
      'version: v1\ndb_service:\n  databases:\n    - { name: a, protocol: postgres, uri: "h:1" }\n    - { name: a, protocol: mysql, uri: "h:2" }\n',
      'warden.yaml: db_service.databases[1].name: database "a" is listed twice (line 5)',
    ],
    [
      db('{ name: a, protocol: postgres, uri: "h:1", tls: { ca_cert_file: missing.pem } }'),
      /^warden\.yaml: db_service\.databases\[0\]\.tls\.ca_cert_file: cannot read CA file ".*missing\.pem": no such file \(line 4\)$/,
    ],
  ]);
  writeFileSync(join(dir, 'leaf.pem'), await makeCert('leaf', false));
  assert.match(
    problem(db('{ name: a, protocol: postgres, uri: "h:1", tls: { ca_cert_file: leaf.pem } }')),
    /is not a CA certificate/,
  );
});

test('version is required and must be v1', () => {
  assertProblems([
    ['data_dir: /x\n', 'warden.yaml: version: is required; expected v1 (line 1)'],
    ['data_dir: /x\nversion: v2\n', 'warden.yaml: version: expected v1 (line 2)'],
    ['version: 1\n', 'warden.yaml: version: expected v1 (line 1)'],
    ['', 'warden.yaml: version: is required; expected v1 (line 1)'],
    ['# nothing but a comment\n', 'warden.yaml: version: is required; expected v1 (line 1)'],
  ]);
});

test('wrong types say what was expected and what was found', () => {
  assertProblems([
    [
      'version: v1\nauth_service:\n  enabled: "yes"\n',
      'warden.yaml: auth_service.enabled: expected true or false, got "yes" (line 3)',
    ],
    ['version: v1\nauth_service: true\n', 'warden.yaml: auth_service: expected a mapping, got true (line 2)'],
    [
      'version: v1\nauth_service:\n  cluster_name:\n',
      'warden.yaml: auth_service.cluster_name: expected a string, got an empty value (line 3)',
    ],
    [
      'version: v1\nauth_service:\n  authentication:\n    device_trust:\n      ekcert_allowed_cas: /a.pem\n',
      'warden.yaml: auth_service.authentication.device_trust.ekcert_allowed_cas: expected a list, got "/a.pem" (line 5)',
    ],
    [
      'version: v1\nauth_service:\n  authentication:\n    device_trust:\n      ekcert_allowed_cas:\n        - 7\n',
      'warden.yaml: auth_service.authentication.device_trust.ekcert_allowed_cas[0]: expected a string, got 7 (line 6)',
    ],
    ['- version: v1\n', 'warden.yaml: expected a mapping (key: value lines) at the top level (line 1)'],
    ['version: v1\ndata_dir: ""\n', 'warden.yaml: data_dir: must not be empty (line 2)'],
  ]);
});

test('addresses must be host:port with a port from 1 to 65535', () => {
  assertProblems([
    [
      'version: v1\nproxy_service:\n  listen_addr: 127.0.0.1:0\n',
      'warden.yaml: proxy_service.listen_addr: expected a port number from 1 to 65535, got "127.0.0.1:0" (line 3)',
    ],
    [
      'version: v1\nproxy_service:\n  public_addr: proxy.example.com\n',
      'warden.yaml: proxy_service.public_addr: expected host:port, got "proxy.example.com" (line 3)',
    ],
    ['version: v1\nproxy_service:\n  listen_addr: 127.0.0.1:70000\n', /listen_addr: .*\(line 3\)/],
    [
      'version: v1\nproxy_service:\n  listen_addr: 3080\n',
      /listen_addr: expected a string, got 3080 \(line 3\)/,
    ],
  ]);
});

test('cluster_name is restricted to a safe character set', () => {
  assertProblems([
    ['version: v1\nauth_service:\n  cluster_name: "a b"\n', /cluster_name: expected 1 to 253/],
    ['version: v1\nauth_service:\n  cluster_name: "-x"\n', /cluster_name: expected 1 to 253/],
    [`version: v1\nauth_service:\n  cluster_name: ${'a'.repeat(254)}\n`, /\(line 3\)/],
  ]);
  assert.equal(
    parseConfig(`version: v1\nauth_service:\n  cluster_name: ${'a'.repeat(253)}\n`, 'w').authService
      .clusterName,
    'a'.repeat(253),
  );
});

test('storage: type required and known, fields per type', () => {
  assertProblems([
    [
      'version: v1\nstorage:\n  path: /x.sqlite\n',
      'warden.yaml: storage.type: is required; expected one of sqlite, postgres, memory (line 3)',
    ],
    [
      'version: v1\nstorage:\n  type: etcd\n',
      'warden.yaml: storage.type: expected one of sqlite, postgres, memory (line 3)',
    ],
    ['version: v1\nstorage:\n  type: postgres\n', 'warden.yaml: storage.conn_string: is required (line 3)'],
    [
      'version: v1\nstorage:\n  type: sqlite\n  conn_string: x\n',
      'warden.yaml: storage.conn_string: unknown field (line 4)',
    ],
    [
      'version: v1\nstorage:\n  type: memory\n  path: /x\n',
      'warden.yaml: storage.path: unknown field (line 4)',
    ],
  ]);
});

test('YAML syntax errors, duplicate keys and bad aliases are BAD_CONFIG with a line', () => {
  assertProblems([
    ['version: v1\nlog: [\n', /^warden\.yaml: invalid YAML: .+\(line \d+\)$/],
    [
      'version: v1\nlog:\n  format: json\n  format: text\n',
      /^warden\.yaml: invalid YAML: Map keys must be unique \(line 4\)$/,
    ],
    ['version: v1\ndata_dir: *nowhere\n', /^warden\.yaml: invalid YAML: /],
    ['version: v1\n---\nversion: v1\n', /^warden\.yaml: invalid YAML: .*multiple documents/],
    ['version: v1\n\tlog: x\n', /^warden\.yaml: invalid YAML: /],
  ]);
});

test('several problems: the message names the first by line and counts the rest', () => {
  const e = badConfig(() =>
    parseConfig(
      'version: v1\nlog:\n  severity: loud\nproxy_service:\n  listen_addr: x\nbogus: 1\n',
      'w.yaml',
    ),
  );
  assert.equal(
    e.message,
    'w.yaml: log.severity: expected one of debug, info, warn, error (line 3) (and 2 more problems)',
  );
  const problems = e.details?.problems as { path: string; line: number }[];
  assert.deepEqual(
    problems.map((p) => [p.path, p.line]),
    [
      ['log.severity', 3],
      ['proxy_service.listen_addr', 5],
      ['bogus', 6],
    ],
  );
});

test('a missing, unreadable or directory config file is one clear error', () => {
  const missing = join(dir, 'nope.yaml');
  assert.equal(
    badConfig(() => loadConfig({ path: missing })).message,
    `cannot read config file "${missing}": no such file`,
  );
  assert.equal(
    badConfig(() => loadConfig({ path: dir })).message,
    `cannot read config file "${dir}": is a directory, not a file`,
  );
});

test('the error names the file as given', () => {
  const p = write('named.yaml', 'version: v2\n');
  assert.equal(badConfig(() => loadConfig({ path: p })).message, `${p}: version: expected v1 (line 1)`);
});

// --- ekcert_allowed_cas ---------------------------------------------------------------------

function caProblem(content: string | undefined): string {
  const sub = mkdtempSync(join(dir, 'ca-'));
  if (content !== undefined) writeFileSync(join(sub, 'ca.pem'), content);
  return badConfig(() =>
    parseConfig(
      'version: v1\nauth_service:\n  authentication:\n    device_trust:\n      ekcert_allowed_cas:\n        - ca.pem\n',
      'warden.yaml',
      { baseDir: sub },
    ),
  ).message;
}

test('ekcert_allowed_cas files are read and PEM-validated at load', async () => {
  const prefix = 'warden.yaml: auth_service.authentication.device_trust.ekcert_allowed_cas[0]: ';
  assert.match(
    caProblem(undefined),
    /^.*ekcert_allowed_cas\[0\]: cannot read CA file ".*ca\.pem": no such file \(line 6\)$/,
  );
  assert.ok(caProblem('hello\n').startsWith(prefix));
  assert.match(caProblem('hello\n'), /holds no PEM "CERTIFICATE" block \(line 6\)$/);
  assert.match(caProblem(''), /holds no PEM "CERTIFICATE" block/);
  assert.match(
    caProblem('-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n'),
    /certificate 1 is not a valid X\.509 certificate \(line 6\)$/,
  );
  const ca = await makeCert('Good CA', true);
  assert.match(
    caProblem(`${ca}-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n`),
    /contains a "PRIVATE KEY" PEM block; expected only CERTIFICATE blocks/,
  );
  assert.match(caProblem(await makeCert('Leaf', false)), /certificate 1 \(CN=Leaf\) is not a CA certificate/);
  assert.match(caProblem(`${ca}${await makeCert('Leaf2', false)}`), /certificate 2 \(CN=Leaf2\) is not a CA/);
});

// --- fuzz -----------------------------------------------------------------------------------

test('fuzz: mutated config files either parse or fail with BAD_CONFIG', () => {
  const valid = `version: v1
log: { severity: info, format: text }
auth_service:
  cluster_name: example
  authentication:
    second_factor: "on"
    device_trust: { mode: optional, auto_enroll: false }
proxy_service:
  listen_addr: 127.0.0.1:3080
  public_addr: proxy.example.com:3080
ssh_service: { listen_addr: 127.0.0.1:3022, hostname: web-1, labels: { env: prod } }
storage: { type: memory }
`;
  let seed = 0x2545f491;
  const rand = (n: number) => {
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return (seed >>> 0) % n;
  };
  const alphabet = ':-[]{}"\' \n\t#&*!|>%@`,?0x';
  let parsed = 0;
  for (let i = 0; i < 500; i++) {
    const chars = [...valid];
    for (let m = 1 + rand(4); m > 0; m--) {
      const at = rand(chars.length);
      const op = rand(3);
      const c = alphabet[rand(alphabet.length)] ?? ' ';
      if (op === 0) chars[at] = c;
      else if (op === 1) chars.splice(at, 1);
      else chars.splice(at, 0, c);
    }
    try {
      parseConfig(chars.join(''), 'fuzz.yaml');
      parsed++;
    } catch (e) {
      assert.ok(isWardenError(e, 'WARDEN_ERR_BAD_CONFIG'), `unexpected error for input ${i}: ${String(e)}`);
      assert.ok(e.message.startsWith('fuzz.yaml: '), e.message);
    }
  }
  assert.ok(parsed > 0 && parsed < 500, `some mutations should parse and some fail (parsed ${parsed})`);
});

test('every problem of a file is reported at once, typos with "did you mean"', () => {
  const e = badConfig(() =>
    parseConfig(
      'version: v1\nlog:\n  sevrity: debug\nauth_service:\n  authentication:\n    second_factor: otpp\nproxy_service:\n  listen_addr: nowhere\n',
      'warden.yaml',
      { baseDir: dir },
    ),
  );
  assert.deepEqual(problemLines(e), [
    'warden.yaml: log.sevrity: unknown field; did you mean severity? (line 3)',
    'warden.yaml: auth_service.authentication.second_factor: expected one of on, otp, off; did you mean otp? (line 6)',
    `warden.yaml: proxy_service.listen_addr: ${(problemLines(e)[2] ?? '').split('listen_addr: ')[1]}`,
  ]);
  assert.match(problemLines(e)[2]!, /proxy_service\.listen_addr: .*\(line 8\)$/);
  assert.match(e.message, /\(and 2 more problems\)$/);
  // Unrelated names get no guess.
  assert.equal(
    problem('version: v1\nspaceship_service:\n  enabled: true\n'),
    'warden.yaml: spaceship_service: unknown field (line 2)',
  );
});

test('diag_addr: off by default, a host:port when set', () => {
  assert.equal(parseConfig('version: v1\n', 'warden.yaml').diagAddr, undefined);
  assert.deepEqual(parseConfig('version: v1\ndiag_addr: 127.0.0.1:3000\n', 'warden.yaml').diagAddr, {
    host: '127.0.0.1',
    port: 3000,
  });
  assert.match(problem('version: v1\ndiag_addr: nowhere\n'), /^warden\.yaml: diag_addr: .*\(line 2\)$/);
});

test('app_service: apps with uri, public_addr, labels, rewrite headers; bad and duplicate apps are named', () => {
  const config = parseConfig(
    `version: v1
app_service:
  apps:
    - name: grafana
      uri: http://127.0.0.1:3000
      public_addr: grafana.example.com
      labels: { env: prod }
      rewrite:
        headers:
          - { name: X-Env, value: prod }
      audit_requests: true
    - { name: wiki, uri: "https://wiki.internal:8443", insecure_skip_verify: true }
`,
    'w.yaml',
  );
  assert.equal(config.appService.enabled, true);
  const [grafana, wiki] = config.appService.apps;
  assert.deepEqual(grafana, {
    name: 'grafana',
    uri: 'http://127.0.0.1:3000',
    publicAddr: 'grafana.example.com',
    labels: { env: 'prod' },
    rewriteHeaders: [{ name: 'X-Env', value: 'prod' }],
    insecureSkipVerify: false,
    auditRequests: true,
  });
  assert.equal(wiki?.insecureSkipVerify, true);
  assertDeepFrozen(config);
  const app = (fields: string) => `version: v1\napp_service:\n  apps:\n    - ${fields}\n`;
  assertProblems([
    [app('{ name: Grafana, uri: "http://x" }'), /app_service\.apps\[0\]\.name: must be a DNS label/],
    [app('{ name: g, uri: "ftp://x" }'), /app_service\.apps\[0\]\.uri/],
    [
      app('{ name: g, uri: "http://x", rewrite: { headers: [{ name: Warden-Jwt-Assertion, value: x }] } }'),
      /app_service\.apps\[0\]\.rewrite\.headers\[0\]\.name/,
    ],
    [
      'version: v1\napp_service:\n  apps:\n    - { name: a, uri: "http://x" }\n    - { name: a, uri: "http://y" }\n',
      /app_service\.apps\[1\]\.name: app "a" is listed twice \(line 5\)/,
    ],
  ]);
});

test('proxy_service.web_ui.device_address_binding: match (default) or off (NAT); nothing else', () => {
  const at = (v: string) =>
    loadConfig({
      path: write(
        `binding-${v}.yaml`,
        `version: v1\nproxy_service:\n  web_ui: { device_address_binding: ${v} }\n`,
      ),
    });
  assert.equal(at('match').proxyService.webDeviceAddressBinding, 'match');
  assert.equal(at('off').proxyService.webDeviceAddressBinding, 'off');
  assert.equal(
    loadConfig({ path: write('binding-none.yaml', 'version: v1\n') }).proxyService.webDeviceAddressBinding,
    'match',
  );
  assert.throws(() => at('any'), /device_address_binding/);
});

test('timeouts and connection limits: durations and counts, checked', () => {
  const p = write(
    'limits.yaml',
    [
      'version: v1',
      'proxy_service: { handshake_timeout: 5s, header_timeout: 2s, request_timeout: 1m, idle_timeout: 90s }',
      'ssh_service: { login_grace_time: 1m30s, max_startups: 50, max_startups_per_source: 3 }',
      '',
    ].join('\n'),
  );
  const config = loadConfig({ path: p });
  assert.deepEqual(config.proxyService.limits, {
    handshakeTimeoutMs: 5000,
    headerTimeoutMs: 2000,
    requestTimeoutMs: 60_000,
    idleTimeoutMs: 90_000,
  });
  assert.deepEqual(config.sshService.limits, {
    loginGraceTimeMs: 90_000,
    maxStartups: 50,
    maxStartupsPerSource: 3,
  });
  assert.throws(
    () =>
      loadConfig({
        path: write(
          'bad-limits.yaml',
          'version: v1\nssh_service: { login_grace_time: soon, max_startups: 0 }\n',
        ),
      }),
    /ssh_service.login_grace_time: invalid duration "soon".*\(and 1 more problem\)/,
  );
});
