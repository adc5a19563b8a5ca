import assert from 'node:assert/strict';
import { scryptSync } from 'node:crypto';
import { test } from 'node:test';
import { isWardenError } from '@warden/api';
import {
  checkPasswordPolicy,
  hashPassword,
  needsRehash,
  verifyPassword,
  verifyPasswordForUnknownUser,
} from './password';

const PW = 'correct horse battery staple';
const FORMAT = /^\$scrypt\$ln=15,r=8,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$/;

test('hashPassword produces the documented $scrypt$ string with fresh salt', async () => {
  const a = await hashPassword(PW);
  const b = await hashPassword(PW);
  assert.match(a, FORMAT);
  assert.match(b, FORMAT);
  assert.notEqual(a, b, 'each hash has its own salt');
});

test('the key is scrypt(N=2^ln, r, p) of the password and salt (independent check)', async () => {
  const encoded = await hashPassword(PW);
  const [, , , salt, key] = encoded.split('$');
  const expected = scryptSync(PW, Buffer.from(salt!, 'base64'), 32, {
    N: 2 ** 15,
    r: 8,
    p: 1,
    maxmem: 64 << 20,
  });
  assert.equal(Buffer.from(key!, 'base64').toString('hex'), expected.toString('hex'));
});

test('verifyPassword accepts the password and refuses wrong, empty and garbage input', async () => {
  const encoded = await hashPassword(PW);
  assert.equal(await verifyPassword(PW, encoded), true);
  assert.equal(await verifyPassword(`${PW} `, encoded), false);
  assert.equal(await verifyPassword('Correct horse battery staple', encoded), false);
  assert.equal(await verifyPassword('', encoded), false);
  assert.equal(await verifyPassword('x'.repeat(1025), encoded), false);
  assert.equal(await verifyPassword(undefined as unknown as string, encoded), false);
  assert.equal(await verifyPassword(42 as unknown as string, encoded), false);
});

test('parameters are read from the stored string, so they can be raised later', async () => {
  const stronger = await hashPassword(PW, { ln: 15, r: 16, p: 2 });
  assert.match(stronger, /^\$scrypt\$ln=15,r=16,p=2\$/);
  assert.equal(await verifyPassword(PW, stronger), true);
  // The same salt and key under other parameters no longer match: the parameters are used.
  const tampered = stronger.replace('r=16,p=2', 'r=8,p=1');
  assert.equal(await verifyPassword(PW, tampered), false);
  assert.equal(needsRehash(stronger), false);
  assert.equal(needsRehash(stronger, { ln: 16, r: 8, p: 1 }), true);
  assert.equal(needsRehash(await hashPassword(PW)), false);
  assert.equal(needsRehash('garbage'), true);
});

test('passwords are NFKC-normalised: composed and decomposed forms match', async () => {
  const composed = 'pa\u00e9ssword-long-enough';
  const decomposed = 'pae\u0301ssword-long-enough';
  assert.notEqual(composed, decomposed);
  const encoded = await hashPassword(composed);
  assert.equal(await verifyPassword(decomposed, encoded), true);
});

test('a malformed or too weak stored hash is an internal error, never a match', async () => {
  const good = await hashPassword(PW);
  const [, , , salt, key] = good.split('$');
  for (const bad of [
    '',
    'garbage',
    '$2b$12$abcdefghijklmnopqrstuuABCDEFGHIJKLMNOPQRSTUVWXYZ01234',
    '$scrypt$ln=15,r=8,p=1$$',
    `$scrypt$ln=15,r=8,p=1$${salt}$`,
    `$scrypt$ln=15,r=8,p=1$${salt}$${key}=`,
    `$scrypt$ln=15,r=8,p=1$${salt}$${key}$extra`,
    `$scrypt$ln=14,r=8,p=1$${salt}$${key}`,
    `$scrypt$ln=99,r=8,p=1$${salt}$${key}`,
    `$scrypt$ln=20,r=32,p=1$${salt}$${key}`,
    `$scrypt$ln=15,r=0,p=1$${salt}$${key}`,
    `$scrypt$ln=15,r=8,p=0$${salt}$${key}`,
    `$scrypt$ln=15,r=8,p=1$AAAA$${key}`,
    `$scrypt$r=8,ln=15,p=1$${salt}$${key}`,
  ]) {
    await assert.rejects(verifyPassword(PW, bad), (e) => isWardenError(e, 'WARDEN_ERR_INTERNAL'), bad);
  }
});

test('hashPassword refuses empty and over-long passwords and weak parameters', async () => {
  await assert.rejects(hashPassword(''), { code: 'WARDEN_ERR_BAD_PARAMETER' });
  await assert.rejects(hashPassword('x'.repeat(1025)), {
    code: 'WARDEN_ERR_BAD_PARAMETER',
    message: 'password must be at most 1024 bytes long',
  });
  await assert.rejects(hashPassword(PW, { ln: 14, r: 8, p: 1 }), { code: 'WARDEN_ERR_BAD_PARAMETER' });
  await assert.rejects(hashPassword(PW, { ln: 15, r: 8.5, p: 1 }), { code: 'WARDEN_ERR_BAD_PARAMETER' });
  await assert.rejects(hashPassword(PW, { ln: 21, r: 8, p: 1 }), { code: 'WARDEN_ERR_BAD_PARAMETER' });
});

test('the longest allowed password (1024 bytes) hashes and verifies', async () => {
  const long = 'é'.repeat(512); // 2 bytes each
  const encoded = await hashPassword(long);
  assert.equal(await verifyPassword(long, encoded), true);
  assert.equal(await verifyPassword(`${long}x`, encoded), false);
});

test('verifyPasswordForUnknownUser always answers false', async () => {
  assert.equal(await verifyPasswordForUnknownUser(PW), false);
  assert.equal(await verifyPasswordForUnknownUser(''), false);
  assert.equal(await verifyPasswordForUnknownUser('x'.repeat(5000)), false);
});

test('checkPasswordPolicy: 12 to 1024 bytes of printable text', () => {
  const refuses = (pw: unknown, message: string | RegExp) =>
    assert.throws(() => checkPasswordPolicy(pw as string), { code: 'WARDEN_ERR_BAD_PARAMETER', message });
  refuses('', 'password must be at least 12 characters long');
  refuses('hunter2', 'password must be at least 12 characters long');
  refuses('abcdefghijk', 'password must be at least 12 characters long');
  refuses('a'.repeat(1025), 'password must be at most 1024 bytes long');
  refuses('é'.repeat(513), 'password must be at most 1024 bytes long');
  refuses('abcdefghijkl\n', 'password must not contain control characters');
  refuses('abcdef\u0000ghijkl', 'password must not contain control characters');
  refuses(' '.repeat(12), 'password must not be only whitespace');
  refuses('abcdefghijk\ud800', /valid Unicode/);
  refuses(123456789012, 'password must be a string');
  // Code points, not UTF-16 units or bytes: 11 emoji are too few, 12 are enough.
  refuses('😀'.repeat(11), 'password must be at least 12 characters long');
  assert.doesNotThrow(() => checkPasswordPolicy('😀'.repeat(12)));
  assert.doesNotThrow(() => checkPasswordPolicy('abcdefghijkl'));
  assert.doesNotThrow(() => checkPasswordPolicy(PW));
  assert.doesNotThrow(() => checkPasswordPolicy('a'.repeat(1024)));
});
