import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isWardenError } from '@warden/api';
import { parseForwardSpec } from './forward';

test('port:host:hostport binds to localhost', () => {
  assert.deepEqual(parseForwardSpec('8080:localhost:80'), {
    bindAddress: '127.0.0.1',
    bindPort: 8080,
    host: 'localhost',
    hostPort: 80,
  });
});

test('bind:port:host:hostport, with * and localhost as bind addresses', () => {
  assert.deepEqual(parseForwardSpec('0.0.0.0:5432:db.internal:5432'), {
    bindAddress: '0.0.0.0',
    bindPort: 5432,
    host: 'db.internal',
    hostPort: 5432,
  });
  assert.equal(parseForwardSpec('*:1:h:2').bindAddress, '0.0.0.0');
  assert.equal(parseForwardSpec('localhost:1:h:2').bindAddress, '127.0.0.1');
});

test('IPv6 addresses in brackets', () => {
  assert.deepEqual(parseForwardSpec('[::1]:8080:[fd00::5]:80'), {
    bindAddress: '::1',
    bindPort: 8080,
    host: 'fd00::5',
    hostPort: 80,
  });
  assert.equal(parseForwardSpec('9000:[::1]:22').host, '::1');
});

test('bind port 0 picks a free port; host port 0 is refused', () => {
  assert.equal(parseForwardSpec('0:h:1').bindPort, 0);
  assert.throws(() => parseForwardSpec('1:h:0'), /host port 0 is out of range/);
});

test('bad specs are refused with the expected form', () => {
  for (const bad of [
    '',
    '8080',
    '8080:host',
    'a:b:c:d:e',
    'x:host:80',
    '8080:host:http',
    '70000:host:80',
    '8080::80',
    '8080:host:-1',
    '[::1:8080:h:80',
    '8080:ho st:80',
    '1.5:h:2',
  ]) {
    assert.throws(
      () => parseForwardSpec(bad),
      (e: unknown) =>
        isWardenError(e, 'WARDEN_ERR_BAD_PARAMETER') &&
        /expected \[bind_address:\]port:host:hostport/.test(e.message),
      bad,
    );
  }
});
