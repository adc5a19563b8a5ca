/**
 * Connecting to a real PostgreSQL the ways an operator configures it: a password from a file
 * or an environment variable (refusals are BAD_CONFIG at once, without the password in the
 * message), and TLS with a client certificate under `hostssl … cert` (wrong CA, wrong name,
 * no certificate and no TLS are all refused).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { isWardenError } from '@warden/api';
import { PostgresAuditLog, PostgresBackend, type PostgresBackendOptions } from '@warden/server';
import { requirePostgres, requireTool, startPostgres } from '@warden/testkit';

const check = requirePostgres();
const dir = mkdtempSync(join(tmpdir(), 'warden-pgconn-'));
after(() => rmSync(dir, { recursive: true, force: true }));

async function opens(opts: PostgresBackendOptions): Promise<void> {
  const backend = await PostgresBackend.open({ reapIntervalMs: 0, retryTimeoutMs: 2000, ...opts });
  try {
    await backend.put('/ping', 'pong');
    assert.equal((await backend.get('/ping'))?.value, 'pong');
  } finally {
    await backend.close();
  }
}

async function refused(opts: PostgresBackendOptions, pattern: RegExp, secret?: string): Promise<void> {
  await assert.rejects(opens(opts), (e: unknown) => {
    assert.ok(isWardenError(e, 'WARDEN_ERR_BAD_CONFIG'), String(e));
    assert.match((e as Error).message, pattern);
    if (secret) assert.ok(!(e as Error).message.includes(secret), 'the password is not in the message');
    return true;
  });
}

describe('postgres connection: one warm connection', { skip: check.skip }, async () => {
  if (!check.ok) return;
  const server = await startPostgres({});
  after(() => server.stop());
  const IDLE_MS = 50;
  const pids = (app: string) =>
    server
      .psql(`SELECT pid FROM pg_stat_activity WHERE application_name = '${app}' ORDER BY pid`)
      .split('\n')
      .filter(Boolean);
  async function atMost(n: number, app: string): Promise<string[]> {
    const deadline = Date.now() + 10_000;
    for (;;) {
      const open = pids(app);
      if (open.length <= n || Date.now() > deadline) return open;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  // Without pg-pool's `min` the pools closed every connection idle for 30 s, and a rare write (a
  // lock after a quiet period) paid a new connection and its SCRAM login. The backend keeps
  // three: a request, its poll and its maintenance job (each every second) may run at once.
  for (const [kind, warmCount] of [
    ['backend', 3],
    ['audit log', 1],
  ] as const) {
    test(`the ${kind}'s pool keeps ${warmCount} connection(s) past its idle timeout, and closes them on close()`, async () => {
      const app = `warden-warm-${kind.replace(' ', '-')}`;
      const common = { connString: server.connString, applicationName: app, idleTimeoutMs: IDLE_MS };
      const store =
        kind === 'backend'
          ? await PostgresBackend.open({ ...common, reapIntervalMs: 0, schema: 'warm_backend' })
          : await PostgresAuditLog.open({ ...common, schema: 'warm_audit' });
      const work = () => (store instanceof PostgresBackend ? store.get('/warm') : store.search({ limit: 1 }));
      try {
        await Promise.all(Array.from({ length: 6 }, work));
        const warm = await atMost(warmCount, app);
        assert.equal(warm.length, warmCount, `${warmCount} connection(s) stay open (open: ${warm.length})`);
        // Well past the idle timeout: the same connections, still open, serve the next calls,
        // as many at once as are kept.
        await new Promise((resolve) => setTimeout(resolve, IDLE_MS * 10));
        assert.deepEqual(pids(app), warm);
        await Promise.all(Array.from({ length: warmCount }, work));
        assert.deepEqual(pids(app), warm, 'no new connection for the first calls after idle');
      } finally {
        await store.close();
      }
      assert.deepEqual(await atMost(0, app), [], 'close() ends it');
    });
  }
});

describe('postgres connection: passwords', { skip: check.skip }, async () => {
  if (!check.ok) return;
  const PASSWORD = 'correct horse battery';
  const server = await startPostgres({ password: PASSWORD });
  after(() => server.stop());
  const conn = `postgres://warden@127.0.0.1:${server.port}/postgres`;

  test('from a file or an environment variable', async () => {
    const file = join(dir, 'pg-password');
    writeFileSync(file, `${PASSWORD}\n`, { mode: 0o600 });
    await opens({ connString: conn, passwordFile: file, schema: 'pw_file' });
    process.env.WARDEN_TEST_PG_PW = PASSWORD;
    try {
      await opens({ connString: conn, passwordEnv: 'WARDEN_TEST_PG_PW', schema: 'pw_env' });
    } finally {
      delete process.env.WARDEN_TEST_PG_PW;
    }
    await opens({ connString: server.connString, schema: 'pw_url' });
  });

  test('a wrong or missing password is BAD_CONFIG at once, never echoed', async () => {
    const file = join(dir, 'wrong-password');
    writeFileSync(file, 'tr0ub4dor&3\n', { mode: 0o600 });
    await refused({ connString: conn, passwordFile: file }, /password was refused/, 'tr0ub4dor');
    await refused({ connString: conn }, /password was refused or is missing/);
    await refused({ connString: `${conn}x` }, /password|does not exist/);
  });
});

describe('postgres connection: TLS with client certificates', { skip: check.skip }, async () => {
  if (!check.ok) return;
  const openssl = requireTool('openssl');
  if (!openssl.ok) {
    test('TLS', { skip: openssl.skip }, () => undefined);
    return;
  }
  const pki = join(dir, 'pki');
  const run = (args: string[]) => {
    const res = spawnSync('openssl', args, { cwd: dir, encoding: 'utf8' });
    assert.equal(res.status, 0, res.stderr);
  };
  const issue = (name: string, subject: string, ext: string, caName: string) => {
    run(
      [
        'req',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:P-256',
        '-nodes',
        '-keyout',
        `${pki}-${name}.key`,
      ].concat(['-out', `${pki}-${name}.csr`, '-subj', subject]),
    );
    writeFileSync(`${pki}-${name}.ext`, ext);
    run(
      [
        'x509',
        '-req',
        '-in',
        `${pki}-${name}.csr`,
        '-CA',
        `${pki}-${caName}.crt`,
        '-CAkey',
        `${pki}-${caName}.key`,
      ].concat([
        '-CAcreateserial',
        '-out',
        `${pki}-${name}.crt`,
        '-days',
        '2',
        '-extfile',
        `${pki}-${name}.ext`,
      ]),
    );
  };
  for (const ca of ['ca', 'other-ca']) {
    run(
      ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'].concat([
        '-keyout',
        `${pki}-${ca}.key`,
        '-out',
        `${pki}-${ca}.crt`,
        '-days',
        '2',
        '-subj',
        `/CN=${ca}`,
      ]),
    );
  }
  issue('server', '/CN=localhost', 'subjectAltName=IP:127.0.0.1,DNS:localhost\n', 'ca');
  issue('client', '/CN=warden', 'extendedKeyUsage=clientAuth\n', 'ca');
  const pem = (name: string) => readFileSync(`${pki}-${name}`, 'utf8');
  const server = await startPostgres({
    tls: { cert: pem('server.crt'), key: pem('server.key'), ca: pem('ca.crt') },
    hba: ['hostssl all all 127.0.0.1/32 cert', 'host all all 127.0.0.1/32 reject'],
  });
  after(() => server.stop());
  const base = `postgres://warden@127.0.0.1:${server.port}/postgres`;
  const tls = { caFile: `${pki}-ca.crt`, certFile: `${pki}-client.crt`, keyFile: `${pki}-client.key` };

  test('verify-full with a client certificate, from options or the URL', async () => {
    await opens({ connString: base, tls, schema: 'tls_opts' });
    const q = `sslmode=verify-full&sslrootcert=${tls.caFile}&sslcert=${tls.certFile}&sslkey=${tls.keyFile}`;
    await opens({ connString: `${base}?${q}`, schema: 'tls_url' });
    await opens({
      connString: base,
      tls: { ...tls, mode: 'verify-ca', serverName: 'elsewhere' },
      schema: 'tls_ca',
    });
  });

  test('wrong CA, wrong name, no client certificate or no TLS: refused', async () => {
    await refused({ connString: base, tls: { ...tls, caFile: `${pki}-other-ca.crt` } }, /certificate|CERT/i);
    await refused(
      { connString: base, tls: { ...tls, serverName: 'db.example.com' } },
      /altnames|ALTNAME|certificate/i,
    );
    await refused({ connString: base, tls: { caFile: tls.caFile } }, /pg_hba|certificate/i);
    await refused({ connString: base }, /pg_hba/);
  });
});
