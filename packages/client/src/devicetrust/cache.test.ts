import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, test } from 'node:test';
import { isWardenError } from '@warden/api';
import { DeviceCache, deviceCacheDir, type StoredCredential } from './cache';

const cred = (): StoredCredential => ({
  id: '6c9f0a1e-0000-4000-8000-000000000001',
  akPublic: new Uint8Array([1, 2, 3]),
  akPrivate: new Uint8Array([4, 5, 6]),
  creationData: new Uint8Array([7]),
  creationHash: new Uint8Array(32).fill(8),
  creationTicket: { tag: 0x8021, hierarchy: 0x40000001, digest: new Uint8Array(32).fill(9) },
  createTime: '2026-01-01T00:00:00.000Z',
  ekAssetTag: 'ek:abc',
  enrollments: [],
});

describe('DeviceCache', () => {
  let root: string;
  let dir: string;
  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'warden-devcache-'));
    dir = join(root, 'warden-device');
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  test('WARDEN_DEVICE_CACHE overrides ~/.cache/warden-device', () => {
    assert.equal(deviceCacheDir({ WARDEN_DEVICE_CACHE: '/x/y' }), '/x/y');
    assert.match(deviceCacheDir({}), /\/\.cache\/warden-device$/);
  });

  test('round trip; directory 0700, files 0600; no credential until saved', () => {
    const cache = new DeviceCache(dir);
    assert.equal(cache.load(), undefined);
    cache.save(cred());
    assert.deepEqual(cache.load(), cred());
    assert.equal(statSync(dir).mode & 0o777, 0o700);
    for (const f of ['ak.pub', 'ak.priv', 'credential.json'])
      assert.equal(statSync(join(dir, f)).mode & 0o777, 0o600, f);
  });

  test('enrollments per cluster: recorded, replaced, looked up', () => {
    const cache = new DeviceCache(dir);
    assert.throws(
      () =>
        cache.recordEnrollment({ cluster: 'a', proxy: 'p:1', deviceId: 'd1', assetTag: 't', time: 'now' }),
      (e) => isWardenError(e, 'WARDEN_ERR_NOT_FOUND'),
    );
    cache.save(cred());
    cache.recordEnrollment({ cluster: 'a', proxy: 'p:1', deviceId: 'd1', assetTag: 't', time: '1' });
    cache.recordEnrollment({ cluster: 'b', proxy: 'q:1', deviceId: 'd2', assetTag: 't', time: '2' });
    cache.recordEnrollment({ cluster: 'a', proxy: 'p:1', deviceId: 'd3', assetTag: 't', time: '3' });
    assert.equal(cache.enrollmentIn('a')?.deviceId, 'd3');
    assert.equal(cache.enrollmentIn('b')?.deviceId, 'd2');
    assert.equal(cache.enrollmentIn('c'), undefined);
    assert.equal(cache.load()?.enrollments.length, 2);
  });

  test('a damaged credential.json is an error that says what to do', () => {
    const cache = new DeviceCache(dir);
    cache.save(cred());
    writeFileSync(join(dir, 'credential.json'), '{not json');
    assert.throws(() => cache.load(), /damaged; remove the directory and enroll the device again/);
    cache.remove();
    assert.equal(cache.load(), undefined);
  });
});
