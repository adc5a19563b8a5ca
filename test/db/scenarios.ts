/**
 * What the PostgreSQL and MySQL suites do alike, each engine with its own client: the set-up
 * around the database (its certificate from the db CA, db_service, roles, users, tunnels), the
 * refusals every engine must give (an untrusted device, a session start the audit log cannot
 * record), clients left running, raw bytes on a socket, and the audit events both leave.
 * Who may import: test/db/*.e2e.test.ts.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { connect as netConnect } from 'node:net';
import { basename, join } from 'node:path';
import { type TrackedProcess, trackProcess, waitForText } from '@warden/testkit';
import { type CliResult, type Cluster, cli, spawnCli } from './cluster';

const escapeRegExp = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** A `wsh proxy db NAME --tunnel` on a port the tunnel chose, with everything it printed. */
export interface Tunnel extends TrackedProcess {
  port: number;
}

/** `wsh proxy db NAME --tunnel` as `env`'s user on port 0; resolves once it listens. */
export async function startTunnel(env: NodeJS.ProcessEnv, db: string): Promise<Tunnel> {
  const t = trackProcess(spawnCli('wsh', ['proxy', 'db', db, '--tunnel'], env));
  const started = new RegExp(`Started a tunnel for database "${escapeRegExp(db)}" on 127\\.0\\.0\\.1:(\\d+)`);
  try {
    const m = await waitForText(t.all, started);
    return { ...t, port: Number(m[1]) };
  } catch (e) {
    t.child.kill('SIGTERM');
    throw e;
  }
}

/** `fn` with a tunnel of `env`'s user to `db` (its port), stopped afterwards. */
export async function withTunnel<T>(
  env: NodeJS.ProcessEnv,
  db: string,
  fn: (port: number) => Promise<T>,
): Promise<T> {
  const t = await startTunnel(env, db);
  try {
    return await fn(t.port);
  } finally {
    t.child.kill('SIGTERM');
  }
}

/**
 * `fn` with a tunnel of `env`'s user on a Unix socket (`wsh proxy db DB --tunnel` and `args`:
 * `--socket=…`), given what the tunnel printed once it started. The socket's promise is checked
 * around it: the file `socket` is its user's only (0600), a second tunnel on it is refused
 * (before `fn`, which then finds the first one unharmed), and it is gone once the tunnel stops.
 */
export async function withSocketTunnel(
  env: NodeJS.ProcessEnv,
  db: string,
  args: string[],
  socket: string,
  fn: (printed: () => string) => Promise<void>,
): Promise<void> {
  const t = trackProcess(spawnCli('wsh', ['proxy', 'db', db, '--tunnel', ...args], env));
  try {
    await waitForText(t.stdout, /Started a tunnel/);
    assert.equal(statSync(socket).mode & 0o777, 0o600);
    const again = await cli('wsh', ['proxy', 'db', db, '--tunnel', ...args], { env });
    assert.notEqual(again.code, 0);
    assert.match(
      again.stderr,
      new RegExp(`something already listens on .*${escapeRegExp(basename(socket))}`),
    );
    await fn(t.stdout);
  } finally {
    t.child.kill('SIGTERM');
  }
  await t.exited;
  assert.equal(existsSync(socket), false, 'the socket is removed when the tunnel stops');
}

/**
 * The database's server certificate from the db CA as an admin makes it (`wctl auth sign
 * --format=db` into the cluster's dir): what the command printed and the TLS files' contents.
 */
export async function signDbServer(
  c: Cluster,
  name: string,
): Promise<{ prefix: string; stdout: string; tls: { cert: string; key: string; ca: string } }> {
  const prefix = join(c.dir, name);
  const signed = await cli(
    'wctl',
    ['auth', 'sign', '--format=db', '--host=localhost,127.0.0.1', `--out=${prefix}`],
    { env: c.adminEnv },
  );
  assert.equal(signed.code, 0, signed.stderr);
  const read = (ext: string) => readFileSync(`${prefix}.${ext}`, 'utf8');
  return { prefix, stdout: signed.stdout, tls: { cert: read('crt'), key: read('key'), ca: read('cas') } };
}

/**
 * What both engine suites set up once the database runs: db_service serving it (labelled
 * env=prod), the role `db-traits` (alice: her own db user from a trait, on `dbNames`) and
 * `db-reader` (bob: db user "reader" anywhere), the two users logged in, and alice's tunnel.
 */
export async function serveDatabase(
  c: Cluster,
  db: { name: string; protocol: 'postgres' | 'mysql'; port: number; dbNames: string[] },
): Promise<{ alice: NodeJS.ProcessEnv; bob: NodeJS.ProcessEnv; tunnel: Tunnel }> {
  await c.startDb({
    enabled: true,
    databases: [
      {
        name: db.name,
        protocol: db.protocol,
        uri: { host: '127.0.0.1', port: db.port },
        staticLabels: { env: 'prod' },
        caCert: undefined,
      },
    ],
  });
  await c.services.roles.create({
    kind: 'role',
    version: 'v7',
    metadata: { name: 'db-traits' },
    spec: {
      options: {},
      allow: { db_labels: { env: 'prod' }, db_users: ['{{internal.db_users}}'], db_names: db.dbNames },
      deny: {},
    },
  });
  await c.services.roles.create({
    kind: 'role',
    version: 'v7',
    metadata: { name: 'db-reader' },
    spec: {
      options: {},
      allow: { db_labels: { '*': '*' }, db_users: ['reader'], db_names: ['*'] },
      deny: {},
    },
  });
  const [alice, bob] = await Promise.all([
    c.addUser('alice', ['db-traits'], { db_users: ['alice'] }),
    c.addUser('bob', ['db-reader'], {}),
  ]);
  return { alice, bob, tunnel: await startTunnel(alice, db.name) };
}

/** A P-256 key pair of the test's own, its private key in the cluster's dir as `name` (0600). */
export function testKey(c: Cluster, name: string): { keyFile: string; publicKey: KeyObject } {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const keyFile = join(c.dir, name);
  writeFileSync(keyFile, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  return { keyFile, publicKey };
}

/**
 * A database certificate the test issues itself (with `cas`, the cluster's CAs unless another
 * cluster's; valid for an hour unless `notAfter` says otherwise), written to `name` in the
 * cluster's dir; its path.
 */
export async function dbCertFile(
  c: Cluster,
  name: string,
  req: Omit<Parameters<Cluster['cas']['issueDbCert']>[0], 'notAfter'> & { notAfter?: Date },
  cas: Pick<Cluster['cas'], 'issueDbCert'> = c.cas,
): Promise<string> {
  const issued = await cas.issueDbCert({ notAfter: new Date(Date.now() + 3600_000), ...req });
  const file = join(c.dir, name);
  writeFileSync(file, issued.certPem);
  return file;
}

/**
 * bob's identity (role `db-reader`: db user "reader" only) in a certificate routed to `db` as db
 * user "alice": db_service checks every connection, so the certificate alone lets him in nowhere.
 */
export function bobAsAlice(db: string) {
  return { user: 'bob', roles: ['db-reader'], logins: [], traits: {}, db: { db, dbUser: 'alice' } };
}

/** A database client left running with stdin open (statements written as a user types them). */
export function interactive(command: string, args: string[]): TrackedProcess {
  return trackProcess(spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'] }));
}

/** What `wsh db config NAME --format=json` says about the database certificate's direct path. */
export interface DirectConfig {
  direct_command: string;
  host: string;
  port: number;
  ca: string;
  cert: string;
  key: string;
}

/**
 * `wsh db login DB` as `env`'s user (it must print the direct command line of `client`), then
 * what `wsh db config` says about connecting straight to the proxy with the certificate.
 */
export async function directLogin(
  env: NodeJS.ProcessEnv,
  db: string,
  client: 'psql' | 'mysql',
  args: string[],
): Promise<DirectConfig> {
  const login = await cli('wsh', ['db', 'login', db, ...args], { env });
  assert.equal(login.code, 0, login.stderr);
  assert.match(
    login.stdout,
    new RegExp(`Or connect straight to the proxy with the database certificate:\n {2}${client} `),
  );
  const config = await cli('wsh', ['db', 'config', db, '--format=json'], { env });
  assert.equal(config.code, 0, config.stderr);
  return JSON.parse(config.stdout) as DirectConfig;
}

/** `wctl lock` as the admin, asserting it succeeded. */
export async function lock(c: Cluster, args: string[]): Promise<void> {
  const res = await cli('wctl', ['lock', ...args, '--ttl=1h'], { env: c.adminEnv });
  assert.equal(res.code, 0, res.stderr);
}

/** Removes every lock (straight from the store: the tests after a lock test run unlocked). */
export async function clearLocks(c: Cluster): Promise<void> {
  for (const l of await c.services.locks.list()) await c.services.locks.delete(l.metadata.name);
}

/**
 * Connects to host:port and writes `bytes` (at once, or with `onGreeting` as the answer to the
 * first thing the server says); resolves with everything that came back (latin1) once the
 * server closes, or after `giveUpMs` (5 s).
 */
export function exchange(
  host: string,
  port: number,
  bytes: Buffer,
  o: { onGreeting?: boolean; giveUpMs?: number } = {},
): Promise<string> {
  return new Promise((r) => {
    const s = netConnect({ host, port });
    let got = Buffer.alloc(0);
    s.on('data', (d) => {
      if (o.onGreeting && got.length === 0) s.write(bytes);
      got = Buffer.concat([got, d]);
    });
    s.on('error', () => undefined);
    s.on('close', () => r(got.toString('latin1')));
    if (!o.onGreeting) s.write(bytes);
    setTimeout(() => s.destroy(), o.giveUpMs ?? 5000).unref();
  });
}

/**
 * Cluster device trust `required` refuses alice's untrusted device with the engine's error
 * (`refused`: the client's exit code and what it prints); after `off` she gets in again.
 */
export async function refusesUntrustedDevice(
  c: Cluster,
  query: () => Promise<CliResult>,
  refused: { code: number; stderr: RegExp },
): Promise<void> {
  await c.setAuthPreference({ device_trust: { mode: 'required', auto_enroll: false } });
  try {
    const res = await query();
    assert.equal(res.code, refused.code, res.stderr);
    assert.match(res.stderr, refused.stderr);
  } finally {
    await c.setAuthPreference({ device_trust: { mode: 'off', auto_enroll: false } });
  }
  assert.equal((await query()).code, 0);
}

/**
 * Issue 15 item 5: a session whose start the audit log cannot record relays nothing. Fault
 * injection on the in-process store: session.start stalls (a disk that hangs) and then fails,
 * so a session relayed before its start was recorded would run `insert`. `inserted()` counts
 * the row in the database itself; `query` works again once the log does.
 */
export async function unrecordedStartRelaysNothing(
  c: Cluster,
  o: { insert: () => Promise<CliResult>; inserted: () => string; query: () => Promise<CliResult> },
): Promise<void> {
  const emit = c.audit.emit.bind(c.audit);
  c.audit.emit = async (e) => {
    if (e.type !== 'session.start' || e.success === false) return emit(e);
    await new Promise((r) => setTimeout(r, 500));
    throw new Error('could not extend file: No space left on device');
  };
  try {
    const res = await o.insert();
    assert.notEqual(res.code, 0, res.stdout);
    assert.match(res.stderr, /the audit log could not record this \(session\.start\)/);
  } finally {
    c.audit.emit = emit;
  }
  assert.equal(o.inserted().trim(), '0');
  assert.equal((await o.query()).code, 0, 'repaired: sessions work again');
}

/**
 * The audit events of database sessions, in order, and alice's first successful session start
 * (checked: db user alice, database orders, the db resource with its labels). Checked too, as
 * both suites caused them: that session's end, a session ended by a lock, bob refused by RBAC
 * and alice's untrusted device refused.
 */
export async function dbAudit(
  c: Cluster,
  dbName: string,
): Promise<{ db: Record<string, unknown>[]; start: Record<string, unknown> }> {
  const events = await c.audit.search({ limit: 10_000, order: 'asc' });
  const db = events.filter((e) => (e as { protocol?: string }).protocol === 'db') as Record<
    string,
    unknown
  >[];
  const start = db.find((e) => e.type === 'session.start' && e.success && e.user === 'alice');
  assert.ok(start, 'a session.start for alice');
  assert.equal(start.db_user, 'alice');
  assert.equal(start.db_name, 'orders');
  assert.deepEqual(start.resource, { kind: 'db', name: dbName, labels: { env: 'prod' } });
  assert.ok(db.some((e) => e.type === 'session.end' && e.session_id === start.session_id));
  assert.ok(db.some((e) => e.type === 'session.end' && String(e.terminated_by).startsWith('lock targeting')));
  assert.ok(
    db.some(
      (e) =>
        e.type === 'access.denied' && e.user === 'bob' && String(e.error).startsWith('access to db denied'),
    ),
  );
  assert.ok(db.some((e) => e.type === 'access.denied' && e.error === 'unauthorized device'));
  return { db, start };
}
