import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { isWardenError } from '@warden/api';
import { classifyFailure, resolveConnection } from './postgres-connection';

const dir = mkdtempSync(join(tmpdir(), 'warden-pgconn-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const file = (name: string, text: string) => {
  const path = join(dir, name);
  writeFileSync(path, text, { mode: 0o600 });
  return path;
};

function badConfig(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(isWardenError(e, 'WARDEN_ERR_BAD_CONFIG'), String(e));
    assert.match((e as Error).message, pattern);
    return true;
  });
}

async function passwordOf(config: { password?: unknown }): Promise<unknown> {
  return typeof config.password === 'function' ? await config.password() : config.password;
}

test('postgres connection: a URL gives host, port, database and user, with defaults', () => {
  const a = resolveConnection({ connString: 'postgres://db.internal/warden' });
  assert.equal(a.target, 'warden@db.internal:5432/warden');
  assert.equal(a.config.ssl, false);
  assert.equal(a.config.max, 10);
  const b = resolveConnection({
    connString: 'postgresql://alice@[::1]:6432/?application_name=auth-1&connect_timeout=3',
  });
  assert.equal(b.target, 'alice@::1:6432/alice');
  assert.equal(b.config.application_name, 'auth-1');
  assert.equal(b.config.connectionTimeoutMillis, 3000);
  const c = resolveConnection({ connString: 'postgres://u@x/db?host=/run/postgresql&port=5433' });
  assert.equal(c.target, 'u@/run/postgresql:5433/db');
  const d = resolveConnection({ host: '10.0.0.5', database: 'cluster', poolSize: 3 });
  assert.equal(d.target, 'warden@10.0.0.5:5432/cluster');
  assert.equal(d.config.max, 3);
});

test('postgres connection: the password never shows in the target, the config or errors', async () => {
  const resolved = resolveConnection({ connString: 'postgres://warden:hunter2%21@db/warden' });
  assert.ok(!resolved.target.includes('hunter2'));
  assert.ok(!JSON.stringify(resolved.config).includes('hunter2'), 'pg gets a function, not the string');
  assert.equal(await passwordOf(resolved.config), 'hunter2!');
  assert.throws(
    () => resolveConnection({ connString: 'mysql://warden:hunter2@db/warden' }),
    (e: unknown) => isWardenError(e) && !(e as Error).message.includes('hunter2'),
  );
  assert.throws(
    () => resolveConnection({ connString: 'postgres://warden:hunter2@db/warden?sslmode=bogus' }),
    (e: unknown) => isWardenError(e) && !(e as Error).message.includes('hunter2'),
  );
});

test('postgres connection: the password comes from a file or a variable, read at each connect', async () => {
  const path = file('pw', 's3cret\n');
  const fromFile = resolveConnection({ connString: 'postgres://db/warden', passwordFile: path });
  assert.equal(await passwordOf(fromFile.config), 's3cret');
  writeFileSync(path, 'rotated\n');
  assert.equal(await passwordOf(fromFile.config), 'rotated', 'a rotated file is picked up');
  process.env.WARDEN_TEST_PG_PASSWORD = 'from-env';
  const fromEnv = resolveConnection({ host: 'db', passwordEnv: 'WARDEN_TEST_PG_PASSWORD' });
  assert.equal(await passwordOf(fromEnv.config), 'from-env');
  delete process.env.WARDEN_TEST_PG_PASSWORD;
  badConfig(
    () => resolveConnection({ host: 'db', passwordEnv: 'WARDEN_TEST_PG_PASSWORD' }),
    /WARDEN_TEST_PG_PASSWORD.*not set/,
  );
  badConfig(
    () => resolveConnection({ host: 'db', passwordFile: join(dir, 'missing') }),
    /cannot read the password file/,
  );
  badConfig(
    () => resolveConnection({ connString: 'postgres://u:p@db/x', passwordFile: path }),
    /at most one password source/,
  );
  badConfig(() => resolveConnection({ host: 'db', password: 'a', passwordEnv: 'X' }), /at most one/);
});

test('postgres connection: TLS modes, files and client certificates', () => {
  const ca = file('ca.pem', 'CA PEM');
  const cert = file('client.pem', 'CERT PEM');
  const key = file('client.key', 'KEY PEM');
  const full = resolveConnection({
    connString: `postgres://db/warden?sslmode=verify-full&sslrootcert=${ca}&sslcert=${cert}&sslkey=${key}`,
  });
  assert.deepEqual(full.config.ssl, {
    rejectUnauthorized: true,
    ca: 'CA PEM',
    cert: 'CERT PEM',
    key: 'KEY PEM',
  });
  const byDefault = resolveConnection({ host: 'db', tls: { caFile: ca } });
  assert.deepEqual(byDefault.config.ssl, { rejectUnauthorized: true, ca: 'CA PEM' }, 'tls means verify-full');
  const verifyCa = resolveConnection({ host: 'db', tls: { mode: 'verify-ca', caFile: ca } });
  const ssl = verifyCa.config.ssl as { rejectUnauthorized: boolean; checkServerIdentity?: () => unknown };
  assert.equal(ssl.rejectUnauthorized, true);
  assert.equal(ssl.checkServerIdentity?.(), undefined, 'verify-ca skips the name check');
  const require_ = resolveConnection({ connString: 'postgres://db/w?sslmode=require' });
  assert.deepEqual(require_.config.ssl, { rejectUnauthorized: false });
  const override = resolveConnection({
    connString: 'postgres://db/w?sslmode=require',
    tls: { mode: 'disable' },
  });
  assert.equal(override.config.ssl, false, 'options override the URL');
  const named = resolveConnection({ host: 'db', tls: { serverName: 'pg.example.com' } });
  assert.equal((named.config.ssl as { servername?: string }).servername, 'pg.example.com');

  badConfig(
    () => resolveConnection({ connString: 'postgres://db/w?sslmode=prefer' }),
    /fall back to plain text/,
  );
  badConfig(() => resolveConnection({ connString: 'postgres://db/w?sslmode=allow' }), /fall back/);
  badConfig(() => resolveConnection({ host: 'db', tls: { certFile: cert } }), /both certFile/);
  badConfig(
    () => resolveConnection({ host: 'db', tls: { caFile: join(dir, 'nope') } }),
    /cannot read the CA file/,
  );
  badConfig(() => resolveConnection({ host: 'db', tls: { mode: 'disable', caFile: ca } }), /mode is disable/);
  badConfig(() => resolveConnection({ host: '/run/postgresql', tls: {} }), /serverName/);
});

test('postgres connection: bad options are refused', () => {
  badConfig(() => resolveConnection({}), /conn_string/);
  badConfig(() => resolveConnection({ connString: 'not a url' }), /must be a URL/);
  badConfig(() => resolveConnection({ connString: 'http://db/x' }), /postgres:\/\//);
  badConfig(() => resolveConnection({ connString: 'postgres://db/x?sslpassword=x' }), /not supported/);
  badConfig(() => resolveConnection({ connString: 'postgres://db/x', host: 'db' }), /not both/);
  badConfig(() => resolveConnection({ connString: 'postgres://db/x?port=99999' }), /port/);
  badConfig(() => resolveConnection({ host: 'db', port: 0 }), /port/);
  badConfig(() => resolveConnection({ connString: 'postgres://db/x?connect_timeout=soon' }), /whole seconds/);
  assert.throws(() => resolveConnection({ host: 'db', poolSize: 0 }), /poolSize/);
  assert.throws(() => resolveConnection({ host: 'db', retryTimeoutMs: 1.5 }), /retryTimeoutMs/);
});

test('postgres connection: failures are classified for retrying', () => {
  const pgError = (code: string) => Object.assign(new Error('x'), { code });
  assert.equal(classifyFailure(pgError('40001'), 'query'), 'rolled-back');
  assert.equal(classifyFailure(pgError('40P01'), 'query'), 'rolled-back');
  assert.equal(classifyFailure(pgError('28P01'), 'connect'), 'config');
  assert.equal(classifyFailure(pgError('3D000'), 'connect'), 'config');
  assert.equal(classifyFailure(pgError('SELF_SIGNED_CERT_IN_CHAIN'), 'connect'), 'config');
  assert.equal(classifyFailure(pgError('ECONNREFUSED'), 'connect'), 'unreachable');
  assert.equal(classifyFailure(pgError('57P03'), 'connect'), 'unreachable');
  assert.equal(classifyFailure(new Error('Connection terminated unexpectedly'), 'query'), 'ambiguous');
  assert.equal(classifyFailure(pgError('ECONNRESET'), 'query'), 'ambiguous');
  assert.equal(classifyFailure(pgError('57P01'), 'query'), 'ambiguous');
  assert.equal(classifyFailure(pgError('08006'), 'query'), 'ambiguous');
  assert.equal(classifyFailure(pgError('23505'), 'query'), 'server');
});
