import assert from 'node:assert/strict';
import { test } from 'node:test';
import { constantTimeEqual, generateToken, hashToken, tokenMatchesHash } from './tokens';

test('generateToken: 256 bits, base64url without padding, never repeating', () => {
  const seen = new Set<string>();
  for (let i = 0; i < 1000; i++) {
    const t = generateToken();
    assert.match(t, /^[A-Za-z0-9_-]{43}$/);
    seen.add(t);
  }
  assert.equal(seen.size, 1000);
  assert.match(generateToken(16), /^[A-Za-z0-9_-]{22}$/);
});

test('generateToken refuses fewer than 128 bits', () => {
  for (const bad of [0, 8, 15, 16.5, 1000, Number.NaN]) {
    assert.throws(() => generateToken(bad), { code: 'WARDEN_ERR_BAD_PARAMETER' }, String(bad));
  }
});

test('hashToken is SHA-256 hex', () => {
  assert.equal(hashToken('abc'), 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  const t = generateToken();
  assert.match(hashToken(t), /^[0-9a-f]{64}$/);
  assert.equal(hashToken(t), hashToken(t));
  assert.notEqual(hashToken(t), hashToken(generateToken()));
});

test('hashToken refuses empty, non-string and over-long input', () => {
  for (const bad of ['', undefined, null, 42, 'x'.repeat(513)]) {
    assert.throws(() => hashToken(bad as string), { code: 'WARDEN_ERR_INVALID_TOKEN' }, String(bad));
  }
  assert.doesNotThrow(() => hashToken('x'.repeat(512)));
});

test('constantTimeEqual compares exactly, whatever the lengths', () => {
  assert.equal(constantTimeEqual('secret', 'secret'), true);
  assert.equal(constantTimeEqual('', ''), true);
  assert.equal(constantTimeEqual('secret', 'secreT'), false);
  assert.equal(constantTimeEqual('secret', 'secret2'), false);
  assert.equal(constantTimeEqual('secret', ''), false);
  assert.equal(constantTimeEqual('é', 'e\u0301'), false);
  assert.equal(constantTimeEqual(undefined as unknown as string, 'x'), false);
  assert.equal(constantTimeEqual(undefined as unknown as string, undefined as unknown as string), false);
});

test('tokenMatchesHash checks a presented token against the stored hash', () => {
  const t = generateToken();
  const stored = hashToken(t);
  assert.equal(tokenMatchesHash(t, stored), true);
  assert.equal(tokenMatchesHash(`${t}x`, stored), false);
  assert.equal(tokenMatchesHash(t.slice(1), stored), false);
  assert.equal(tokenMatchesHash('', stored), false);
  assert.equal(tokenMatchesHash(t, ''), false);
  assert.equal(tokenMatchesHash(t, stored.toUpperCase()), false);
  assert.equal(tokenMatchesHash(null as unknown as string, stored), false);
});
