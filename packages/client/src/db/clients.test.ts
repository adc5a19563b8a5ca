import assert from 'node:assert/strict';
import { test } from 'node:test';
import { clientCommand, mysqlArgs, mysqlFlavor } from './clients';

test('mysql options: TCP to the tunnel, user and database when known, no TLS in each client’s spelling', () => {
  const e = { host: '127.0.0.1', port: 3307, dbUser: 'alice', dbName: 'orders' };
  assert.deepEqual(mysqlArgs(e), [
    '--protocol=TCP',
    '--host=127.0.0.1',
    '--port=3307',
    '--user=alice',
    '--database=orders',
    '--skip-ssl',
  ]);
  assert.deepEqual(mysqlArgs({ host: 'h', port: 1 }, 'mysql'), [
    '--protocol=TCP',
    '--host=h',
    '--port=1',
    '--ssl-mode=DISABLED',
  ]);
  assert.deepEqual(
    clientCommand('mysql', e, ['-N', '-e', 'select 1'], () => 'mariadb'),
    ['mysql', ...mysqlArgs(e), '-N', '-e', 'select 1'],
  );
});

test('the mysql flavor comes from `--version`; a missing client counts as MariaDB’s', () => {
  assert.equal(mysqlFlavor('/nonexistent/mysql'), 'mariadb');
  // `node --version` prints no "MariaDB": an Oracle-style client.
  assert.equal(mysqlFlavor(process.execPath), 'mysql');
});
