import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { isWardenError } from '@warden/api';
import { HOST_KEY_FILE, HOST_UUID_FILE, loadHostIdentity } from './host-identity';

const root = mkdtempSync(join(tmpdir(), 'warden-host-identity-'));
after(() => rmSync(root, { recursive: true, force: true }));

test('created once at first start (0600), the same afterwards', () => {
  const dir = join(root, 'a', 'data');
  const first = loadHostIdentity(dir);
  assert.match(first.hostId, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}$/);
  assert.equal(statSync(join(dir, HOST_KEY_FILE)).mode & 0o777, 0o600);
  assert.equal(statSync(join(dir, HOST_UUID_FILE)).mode & 0o777, 0o600);
  assert.equal(statSync(dir).mode & 0o777, 0o700);
  assert.match(readFileSync(join(dir, HOST_KEY_FILE), 'utf8'), /^-----BEGIN EC PRIVATE KEY-----/);
  const again = loadHostIdentity(dir);
  assert.equal(again.hostId, first.hostId);
  assert.equal(again.keyPem, first.keyPem);
});

test('unusable files are refused, never replaced', () => {
  const bad = (dir: string, pattern: RegExp) =>
    assert.throws(
      () => loadHostIdentity(dir),
      (e) => isWardenError(e, 'WARDEN_ERR_BAD_CONFIG') && pattern.test(e.message),
    );
  const dir = join(root, 'b');
  loadHostIdentity(dir);
  chmodSync(join(dir, HOST_KEY_FILE), 0o644);
  bad(dir, /ssh_host_key: is readable by others/);
  writeFileSync(join(dir, HOST_KEY_FILE), 'not a key', { mode: 0o600 });
  chmodSync(join(dir, HOST_KEY_FILE), 0o600);
  bad(dir, /ssh_host_key: is not a PEM private key/);
  writeFileSync(join(dir, HOST_UUID_FILE), 'web-1\n');
  bad(dir, /host_uuid: does not hold a UUID/);
});
