import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { LockResource } from '@warden/api';
import { findLockInForce, isLockInForce, lockMatches, lockMessage } from './locks';

const NOW = Date.UTC(2026, 0, 1, 12);
let seq = 0;
function lock(
  target: LockResource['spec']['target'],
  extra: Partial<LockResource['spec']> = {},
): LockResource {
  seq++;
  return {
    kind: 'lock',
    version: 'v2',
    metadata: { name: `00000000-0000-4000-8000-${String(seq).padStart(12, '0')}` },
    spec: { target, ...extra },
  };
}

describe('lockMessage', () => {
  test('the guide message for a device lock', () => {
    assert.equal(
      lockMessage(lock({ device: '9cdfc0ad-64b7-4d9c-this-is-an-example' })),
      'lock targeting Device:"9cdfc0ad-64b7-4d9c-this-is-an-example" is in force',
    );
  });
  test('with a message, and several targets in a fixed order', () => {
    assert.equal(
      lockMessage(lock({ user: 'alice' }, { message: 'laptop stolen' })),
      'lock targeting User:"alice" is in force: laptop stolen',
    );
    assert.equal(
      lockMessage(lock({ device: 'd', role: 'dev', user: 'alice', node: 'n', login: 'root' })),
      'lock targeting User:"alice", Role:"dev", Login:"root", Node:"n", Device:"d" is in force',
    );
  });
});

describe('matching', () => {
  const who = { user: 'alice', roles: ['access', 'dev'], login: 'root', node: 'web-1', device: 'd-1' };

  test('each kind of target', () => {
    assert.ok(lockMatches(lock({ user: 'alice' }), who));
    assert.ok(lockMatches(lock({ role: 'dev' }), who));
    assert.ok(lockMatches(lock({ login: 'root' }), who));
    assert.ok(lockMatches(lock({ node: 'web-1' }), who));
    assert.ok(lockMatches(lock({ device: 'd-1' }), who));
  });

  test('non-matching targets', () => {
    assert.ok(!lockMatches(lock({ user: 'bob' }), who));
    assert.ok(!lockMatches(lock({ role: 'editor' }), who));
    assert.ok(!lockMatches(lock({ device: 'd-2' }), who));
    assert.ok(
      !lockMatches(lock({ device: 'd-1' }), { user: 'alice' }),
      'no device: a device lock does not match',
    );
    assert.ok(!lockMatches(lock({ role: 'dev' }), { user: 'alice' }));
  });

  test('every field of a lock must match', () => {
    assert.ok(lockMatches(lock({ user: 'alice', device: 'd-1' }), who));
    assert.ok(!lockMatches(lock({ user: 'alice', device: 'd-2' }), who));
  });

  test('a lock without targets matches nothing', () => {
    assert.ok(!lockMatches(lock({}), who));
  });
});

describe('findLockInForce', () => {
  test('expired locks do not count', () => {
    const expired = lock({ user: 'alice' }, { expires: new Date(NOW).toISOString() });
    const live = lock({ user: 'alice' }, { expires: new Date(NOW + 1).toISOString() });
    assert.ok(!isLockInForce(expired, NOW));
    assert.ok(isLockInForce(live, NOW));
    assert.equal(findLockInForce([expired], { user: 'alice' }, NOW), undefined);
    assert.equal(findLockInForce([expired, live], { user: 'alice' }, NOW), live);
  });

  test('metadata.expires counts too; unreadable expiry keeps the lock', () => {
    const l = lock({ user: 'alice' });
    assert.ok(!isLockInForce({ ...l, metadata: { ...l.metadata, expires: '2026-01-01T00:00:00Z' } }, NOW));
    assert.ok(isLockInForce({ ...l, spec: { ...l.spec, expires: 'garbage' } }, NOW));
  });

  test('returns the first matching lock, or undefined', () => {
    const a = lock({ user: 'bob' });
    const b = lock({ role: 'dev' });
    const c = lock({ device: 'd-1' });
    assert.equal(findLockInForce([a, b, c], { user: 'alice', roles: ['dev'], device: 'd-1' }, NOW), b);
    assert.equal(findLockInForce([a], { user: 'alice' }, NOW), undefined);
    assert.equal(findLockInForce([], { user: 'alice' }, NOW), undefined);
  });
});
