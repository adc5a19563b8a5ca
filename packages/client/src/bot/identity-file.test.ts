/**
 * `readIdentityFile` (wsh/wctl -i): a file as `wbot start` writes it is read; anything else —
 * not JSON, another format, a field missing, empty or of the wrong type — is refused with
 * NOT_LOGGED_IN naming the file. The check is written by hand (no zod at start-up), so each
 * rule is exercised here.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { isWardenError } from '@warden/api';
import { readIdentityFile } from './identity-file';

const good = {
  warden_identity: 1,
  proxy: '127.0.0.1:3080',
  cluster: 'example',
  user: 'bot-ci',
  roles: ['bot-ci'],
  logins: [],
  expires: '2030-01-01T00:00:00.000Z',
  insecure: false,
  key_pem: '-----BEGIN PRIVATE KEY-----\n…',
  ssh_public_key: 'ssh-ed25519 AAAA…',
  ssh_cert: 'ssh-ed25519-cert-v01@openssh.com AAAA…',
  tls_cert: '-----BEGIN CERTIFICATE-----\n…',
  user_ca_pems: [],
  host_ca_pems: ['-----BEGIN CERTIFICATE-----\n…'],
  known_hosts: '',
  extra_field_from_a_newer_wbot: true,
};

function withFile(text: string, fn: (path: string) => void) {
  const dir = mkdtempSync(join(tmpdir(), 'warden-identity-'));
  try {
    const path = join(dir, 'identity');
    writeFileSync(path, text);
    fn(path);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('an identity file as wbot writes it is read, its directory the profile directory', () => {
  withFile(JSON.stringify(good), (path) => {
    const p = readIdentityFile(path);
    assert.equal(p.user, 'bot-ci');
    assert.equal(p.proxy, '127.0.0.1:3080');
    assert.deepEqual(p.hostCaPems, good.host_ca_pems);
    assert.equal(p.insecure, false);
    assert.equal(p.dir, join(path, '..'));
  });
});

test('anything else is refused with NOT_LOGGED_IN naming the file', () => {
  const { warden_identity: _v, ...noVersion } = good;
  const { tls_cert: _t, ...noTls } = good;
  const bad: [string, string][] = [
    ['not JSON', '{ nope'],
    ['JSON null', 'null'],
    ['a list', JSON.stringify([good])],
    ['no format marker', JSON.stringify(noVersion)],
    ['another format', JSON.stringify({ ...good, warden_identity: 2 })],
    ['a field missing', JSON.stringify(noTls)],
    ['an empty proxy', JSON.stringify({ ...good, proxy: '' })],
    ['a number for a string', JSON.stringify({ ...good, expires: 0 })],
    ['a string for a boolean', JSON.stringify({ ...good, insecure: 'false' })],
    ['a string for a list', JSON.stringify({ ...good, roles: 'bot-ci' })],
    ['a list of numbers', JSON.stringify({ ...good, logins: [1] })],
    ['no host CA', JSON.stringify({ ...good, host_ca_pems: [] })],
  ];
  for (const [what, text] of bad) {
    withFile(text, (path) => {
      assert.throws(
        () => readIdentityFile(path),
        (e) => isWardenError(e) && e.code === 'WARDEN_ERR_NOT_LOGGED_IN' && e.message.includes(path),
        what,
      );
    });
  }
});
