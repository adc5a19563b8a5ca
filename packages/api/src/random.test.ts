import assert from 'node:assert/strict';
import { test } from 'node:test';
import { pooledRandomBytes } from './random';

test('pooledRandomBytes: the sizes asked for, never the same bytes twice, across refills', () => {
  const seen = new Set<string>();
  // 4096-byte pool: 1,000 draws of 16 bytes refill it several times.
  for (let i = 0; i < 1000; i++) {
    const b = pooledRandomBytes(16);
    assert.equal(b.length, 16);
    const hex = b.toString('hex');
    assert.ok(!seen.has(hex), 'a draw repeated');
    assert.notEqual(hex, '0'.repeat(32), 'a draw was not random');
    seen.add(hex);
  }
  assert.equal(pooledRandomBytes(0).length, 0);
  assert.equal(pooledRandomBytes(1000).length, 1000);
  assert.throws(() => pooledRandomBytes(-1), RangeError);
});

test('pooledRandomBytes: a draw is a copy (writing to it changes no later draw)', () => {
  const a = pooledRandomBytes(32);
  a.fill(0);
  const b = pooledRandomBytes(32);
  assert.notEqual(b.toString('hex'), '0'.repeat(64));
});
