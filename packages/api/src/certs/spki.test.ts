import assert from 'node:assert/strict';
import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import { test } from 'node:test';
import { keyFromSpki, spkiFromKey } from './spki';

test('spkiFromKey and keyFromSpki agree with node’s DER export and import (P-256, Ed25519, RSA)', () => {
  for (const pair of [
    generateKeyPairSync('ec', { namedCurve: 'prime256v1' }),
    generateKeyPairSync('ed25519'),
    generateKeyPairSync('ec', { namedCurve: 'secp384r1' }),
    generateKeyPairSync('rsa', { modulusLength: 1024 }),
    // RSA SPKIs are written from the PKCS#1 export: every DER length form, other exponents.
    generateKeyPairSync('rsa', { modulusLength: 512 }),
    generateKeyPairSync('rsa', { modulusLength: 2048 }),
    generateKeyPairSync('rsa', { modulusLength: 2048, publicExponent: 3 }),
    generateKeyPairSync('rsa-pss', { modulusLength: 1024 }),
  ]) {
    const der = pair.publicKey.export({ type: 'spki', format: 'der' });
    assert.deepEqual(spkiFromKey(pair.publicKey), der);
    assert.deepEqual(spkiFromKey(pair.privateKey), der, 'a private key gives its public half');
    const back = keyFromSpki(der);
    assert.ok(back.equals(createPublicKey({ key: der, format: 'der', type: 'spki' })));
  }
});

test('keyFromSpki refuses what is not a key (a point off the curve, garbage)', () => {
  const der = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).publicKey.export({
    type: 'spki',
    format: 'der',
  });
  const off = Buffer.from(der);
  off[off.length - 1]! ^= 1;
  assert.throws(() => keyFromSpki(off));
  assert.throws(() => keyFromSpki(Buffer.from('not a key')));
});
