import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatHostPort, parseHostPort } from './address';

test('parses host:port for names, IPv4 and bracketed IPv6', () => {
  assert.deepEqual(parseHostPort('proxy.example.com:3080'), { host: 'proxy.example.com', port: 3080 });
  assert.deepEqual(parseHostPort('127.0.0.1:1'), { host: '127.0.0.1', port: 1 });
  assert.deepEqual(parseHostPort('localhost:65535'), { host: 'localhost', port: 65535 });
  assert.deepEqual(parseHostPort('[::1]:443'), { host: '::1', port: 443 });
  assert.deepEqual(parseHostPort('[2001:db8::5]:3080'), { host: '2001:db8::5', port: 3080 });
  assert.deepEqual(parseHostPort('0.0.0.0:3080'), { host: '0.0.0.0', port: 3080 });
});

test('refuses addresses without a valid host or port', () => {
  for (const bad of [
    '',
    'example.com',
    ':3080',
    'example.com:',
    'example.com:0',
    'example.com:65536',
    'example.com:99999',
    'example.com:-1',
    'example.com:80a',
    'example.com:+80',
    '::1:3080',
    '[::1]3080',
    '[::1:3080',
    '[example.com]:3080',
    'exa mple.com:3080',
    'example..com:3080',
    '-example.com:3080',
    '999.1.1.1:3080',
    'http://example.com:3080',
    'example.com:3080/',
  ]) {
    assert.equal(typeof parseHostPort(bad), 'string', `should refuse ${JSON.stringify(bad)}`);
  }
});

test('the refusal says what was expected and what was given', () => {
  assert.equal(parseHostPort('example.com:0'), 'expected a port number from 1 to 65535, got "example.com:0"');
  assert.equal(parseHostPort('example.com'), 'expected host:port, got "example.com"');
});

test('formatHostPort round-trips, bracketing IPv6', () => {
  for (const text of ['proxy.example.com:3080', '10.0.0.1:22', '[::1]:3080', '[2001:db8::5]:1']) {
    const addr = parseHostPort(text);
    assert.notEqual(typeof addr, 'string');
    if (typeof addr !== 'string') assert.equal(formatHostPort(addr), text);
  }
});
