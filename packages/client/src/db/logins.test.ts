import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { isWardenError } from '@warden/api';
import { clientCommand, mysqlDirectArgs, postgresConnString, postgresDirectConnString } from './clients';
import { dbCertPath, loadDbLogins, removeDbLogins, saveDbCert, saveDbLogin } from './logins';

test('db logins are remembered per database, 0600, and forgotten one by one or all at once', () => {
  const dir = mkdtempSync(join(tmpdir(), 'warden-dblogins-'));
  try {
    const profile = { dir };
    assert.deepEqual(loadDbLogins(profile), {});
    saveDbLogin(profile, 'orders', { db_user: 'alice', db_name: 'orders', protocol: 'postgres' });
    saveDbLogin(profile, 'billing', { db_user: 'reader' });
    assert.equal(statSync(join(dir, 'dbs.json')).mode & 0o777, 0o600);
    assert.deepEqual(loadDbLogins(profile).orders, {
      db_user: 'alice',
      db_name: 'orders',
      protocol: 'postgres',
    });
    assert.deepEqual(removeDbLogins(profile, 'orders'), ['orders']);
    assert.deepEqual(removeDbLogins(profile, 'nope'), []);
    assert.deepEqual(Object.keys(loadDbLogins(profile)), ['billing']);
    assert.deepEqual(removeDbLogins(profile), ['billing']);
    assert.deepEqual(loadDbLogins(profile), {});
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a damaged dbs.json is a clear error; stray fields are ignored', () => {
  const dir = mkdtempSync(join(tmpdir(), 'warden-dblogins-'));
  try {
    writeFileSync(join(dir, 'dbs.json'), '{not json');
    assert.throws(
      () => loadDbLogins({ dir }),
      (e) => isWardenError(e, 'WARDEN_ERR_BAD_PARAMETER') && /wsh db logout/.test(e.message),
    );
    writeFileSync(
      join(dir, 'dbs.json'),
      JSON.stringify({ a: { db_user: 1, db_name: 'x', extra: true }, b: 'str' }),
    );
    assert.deepEqual(loadDbLogins({ dir }), { a: { db_name: 'x' } });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('psql connection strings quote what libpq needs quoted; other protocols are not known yet', () => {
  assert.equal(
    postgresConnString({ host: '127.0.0.1', port: 5433, dbUser: 'alice', dbName: 'orders' }),
    'host=127.0.0.1 port=5433 user=alice dbname=orders sslmode=disable',
  );
  assert.equal(
    postgresConnString({ host: '127.0.0.1', port: 1, dbUser: "o'brien", dbName: 'my db' }),
    "host=127.0.0.1 port=1 user='o\\'brien' dbname='my db' sslmode=disable",
  );
  assert.equal(postgresConnString({ host: 'h', port: 2 }), 'host=h port=2 sslmode=disable');
  assert.deepEqual(clientCommand('postgres', { host: 'h', port: 2 }, ['-c', 'select 1']), [
    'psql',
    'host=h port=2 sslmode=disable',
    '-c',
    'select 1',
  ]);
  assert.throws(
    () => clientCommand('mongodb', { host: 'h', port: 2 }),
    (e) => isWardenError(e, 'WARDEN_ERR_NOT_IMPLEMENTED'),
  );
});

test('a database login keeps its certificate next to the key; logout removes both; file names are safe', () => {
  const dir = mkdtempSync(join(tmpdir(), 'warden-dbcerts-'));
  try {
    const profile = { dir };
    const path = saveDbCert(profile, {
      cert_pem: '-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n',
      expires: '2030-01-01T00:00:00.000Z',
      db: { name: 'orders', protocol: 'postgres' },
      db_user: 'alice',
      db_name: 'orders',
      endpoint: { host: 'proxy.example.com', port: 3080 },
    });
    assert.equal(path, join(dir, 'dbs', 'orders.crt'));
    assert.deepEqual(loadDbLogins(profile).orders, {
      db_user: 'alice',
      db_name: 'orders',
      protocol: 'postgres',
      expires: '2030-01-01T00:00:00.000Z',
      host: 'proxy.example.com',
      port: 3080,
    });
    // A name with a slash or leading dots stays inside dbs/.
    assert.equal(dbCertPath(profile, '../etc/x'), join(dir, 'dbs', '%2E%2E%2Fetc%2Fx.crt'));
    assert.deepEqual(removeDbLogins(profile, 'orders'), ['orders']);
    assert.equal(existsSync(path), false);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('native clients straight at the proxy: libpq verifies the proxy and shows the certificate; mysql too', () => {
  const e = {
    host: 'proxy.example.com',
    port: 3080,
    dbUser: 'alice',
    dbName: 'orders',
    caPath: '/p/host-cas.pem',
    certPath: '/p/dbs/orders.crt',
    keyPath: '/p/key.pem',
  };
  assert.equal(
    postgresDirectConnString(e),
    'host=proxy.example.com port=3080 sslmode=verify-full sslrootcert=/p/host-cas.pem sslcert=/p/dbs/orders.crt sslkey=/p/key.pem user=alice dbname=orders',
  );
  assert.match(
    postgresDirectConnString({ ...e, keyPath: '/my keys/key.pem' }),
    / sslkey='\/my keys\/key\.pem' /,
  );
  assert.deepEqual(mysqlDirectArgs({ ...e, port: 3036 }), [
    '--protocol=TCP',
    '--host=proxy.example.com',
    '--port=3036',
    '--ssl-ca=/p/host-cas.pem',
    '--ssl-cert=/p/dbs/orders.crt',
    '--ssl-key=/p/key.pem',
    '--ssl-verify-server-cert',
    '--user=alice',
    '--database=orders',
  ]);
  assert.ok(mysqlDirectArgs(e, 'mysql').includes('--ssl-mode=VERIFY_IDENTITY'));
});
