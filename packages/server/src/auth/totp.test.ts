import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { FakeClock } from '../clock';
import {
  base32Decode,
  base32Encode,
  generateTotp,
  generateTotpSecret,
  otpauthUri,
  type TotpAlgorithm,
  totpStep,
  verifyTotp,
} from './totp';

// RFC 6238 appendix B: seeds are ASCII digits of the hash's output length.
const SEEDS: Record<TotpAlgorithm, Buffer> = {
  SHA1: Buffer.from('12345678901234567890'),
  SHA256: Buffer.from('12345678901234567890123456789012'),
  SHA512: Buffer.from('1234567890123456789012345678901234567890123456789012345678901234'),
};
const RFC6238: [number, string, TotpAlgorithm][] = [
  [59, '94287082', 'SHA1'],
  [59, '46119246', 'SHA256'],
  [59, '90693936', 'SHA512'],
  [1111111109, '07081804', 'SHA1'],
  [1111111109, '68084774', 'SHA256'],
  [1111111109, '25091201', 'SHA512'],
  [1111111111, '14050471', 'SHA1'],
  [1111111111, '67062674', 'SHA256'],
  [1111111111, '99943326', 'SHA512'],
  [1234567890, '89005924', 'SHA1'],
  [1234567890, '91819424', 'SHA256'],
  [1234567890, '93441116', 'SHA512'],
  [2000000000, '69279037', 'SHA1'],
  [2000000000, '90698825', 'SHA256'],
  [2000000000, '38618901', 'SHA512'],
  [20000000000, '65353130', 'SHA1'],
  [20000000000, '77737706', 'SHA256'],
  [20000000000, '47863826', 'SHA512'],
];

test('RFC 6238 appendix B test vectors (8 digits, SHA1/SHA256/SHA512)', () => {
  for (const [seconds, code, algorithm] of RFC6238) {
    assert.equal(
      generateTotp(SEEDS[algorithm], seconds * 1000, { digits: 8, algorithm }),
      code,
      `${algorithm}@${seconds}`,
    );
    const base32 = base32Encode(SEEDS[algorithm]);
    assert.equal(generateTotp(base32, seconds * 1000, { digits: 8, algorithm }), code);
    const r = verifyTotp(base32, code, { now: seconds * 1000, digits: 8, algorithm, window: 0 });
    assert.deepEqual(r, { ok: true, step: Math.floor(seconds / 30) });
  }
});

test('RFC 4226 appendix D HOTP values as 6-digit TOTP codes at steps 0–9', () => {
  const expected = [
    '755224',
    '287082',
    '359152',
    '969429',
    '338314',
    '254676',
    '287922',
    '162583',
    '399871',
    '520489',
  ];
  for (const [step, code] of expected.entries()) {
    assert.equal(generateTotp(SEEDS.SHA1, step * 30_000 + 29_999), code);
    assert.equal(totpStep(step * 30_000 + 29_999), step);
  }
});

test('base32: RFC 4648 §10 vectors, padded and unpadded', () => {
  const vectors: [string, string][] = [
    ['', ''],
    ['f', 'MY======'],
    ['fo', 'MZXQ===='],
    ['foo', 'MZXW6==='],
    ['foob', 'MZXW6YQ='],
    ['fooba', 'MZXW6YTB'],
    ['foobar', 'MZXW6YTBOI======'],
  ];
  for (const [plain, encoded] of vectors) {
    assert.equal(base32Encode(Buffer.from(plain), { padding: true }), encoded);
    assert.equal(base32Encode(Buffer.from(plain)), encoded.replace(/=+$/, ''));
    assert.equal(base32Decode(encoded).toString(), plain);
    assert.equal(base32Decode(encoded.replace(/=+$/, '')).toString(), plain);
  }
  assert.equal(base32Decode('mzxw 6ytb oi').toString(), 'foobar');
});

test('base32 round-trips random data', () => {
  for (let n = 0; n < 64; n++) {
    const data = randomBytes(n);
    assert.deepEqual(base32Decode(base32Encode(data)), data);
  }
});

test('base32Decode refuses characters outside the alphabet, bad padding and impossible lengths', () => {
  for (const bad of [
    'MZXW6YT1',
    'MZXW6YT0',
    'MZXW6YT8',
    'MZ!W6YTB',
    'MZXW-6YTB',
    'A',
    'ABC',
    'ABCDEF',
    'MY=',
    'MZ=XW6YTB',
    '=',
  ]) {
    assert.throws(() => base32Decode(bad), { code: 'WARDEN_ERR_BAD_PARAMETER' }, bad);
  }
  assert.throws(() => base32Decode(undefined as unknown as string), { code: 'WARDEN_ERR_BAD_PARAMETER' });
});

test('generateTotpSecret: 160 random bits in 32 base32 characters', () => {
  const a = generateTotpSecret();
  const b = generateTotpSecret();
  assert.match(a, /^[A-Z2-7]{32}$/);
  assert.equal(base32Decode(a).length, 20);
  assert.notEqual(a, b);
});

test('verifyTotp accepts the current step and one either side, not two', () => {
  const clock = new FakeClock(Date.UTC(2026, 0, 1, 12, 0, 10));
  const secret = generateTotpSecret();
  const now = clock.now();
  const step = totpStep(now);
  const codeAt = (s: number) => generateTotp(secret, s * 30_000);
  assert.deepEqual(verifyTotp(secret, codeAt(step), { now }), { ok: true, step });
  assert.deepEqual(verifyTotp(secret, codeAt(step - 1), { now }), { ok: true, step: step - 1 });
  assert.deepEqual(verifyTotp(secret, codeAt(step + 1), { now }), { ok: true, step: step + 1 });
  assert.deepEqual(verifyTotp(secret, codeAt(step - 2), { now }), { ok: false, reason: 'mismatch' });
  assert.deepEqual(verifyTotp(secret, codeAt(step + 2), { now }), { ok: false, reason: 'mismatch' });
  assert.deepEqual(verifyTotp(secret, codeAt(step - 1), { now, window: 0 }), {
    ok: false,
    reason: 'mismatch',
  });
  assert.deepEqual(verifyTotp(secret, codeAt(step - 2), { now, window: 2 }), { ok: true, step: step - 2 });
  // A code for another secret doesn't match.
  assert.deepEqual(verifyTotp(generateTotpSecret(), codeAt(step), { now }).ok, false);
});

test('a replayed code (same or older step than lastUsedStep) is refused', () => {
  const clock = new FakeClock();
  const secret = generateTotpSecret();
  const code = generateTotp(secret, clock.now());
  const first = verifyTotp(secret, code, { now: clock.now() });
  assert.ok(first.ok);
  // Same code again, same moment.
  assert.deepEqual(verifyTotp(secret, code, { now: clock.now(), lastUsedStep: first.step }), {
    ok: false,
    reason: 'replayed',
  });
  // Same code 20 s later (still inside the window).
  clock.advance(20_000);
  assert.deepEqual(verifyTotp(secret, code, { now: clock.now(), lastUsedStep: first.step }), {
    ok: false,
    reason: 'replayed',
  });
  // An older, still-in-window code after a newer one was used.
  clock.set(Date.UTC(2026, 0, 1, 0, 0, 45));
  const current = totpStep(clock.now());
  const older = generateTotp(secret, (current - 1) * 30_000);
  assert.deepEqual(verifyTotp(secret, older, { now: clock.now(), lastUsedStep: current }), {
    ok: false,
    reason: 'replayed',
  });
  // The next step's code is fine.
  clock.advance(30_000);
  const next = generateTotp(secret, clock.now());
  assert.deepEqual(verifyTotp(secret, next, { now: clock.now(), lastUsedStep: current }), {
    ok: true,
    step: current + 1,
  });
});

test('malformed codes are refused without matching', () => {
  const secret = generateTotpSecret();
  const now = new FakeClock().now();
  const good = generateTotp(secret, now);
  for (const bad of [
    '',
    '12345',
    '1234567',
    'abcdef',
    ` ${good.slice(1)}`,
    `${good} `,
    '１２３４５６',
    '12 345',
    '-12345',
    '1e5000',
  ]) {
    assert.deepEqual(
      verifyTotp(secret, bad, { now }),
      { ok: false, reason: 'malformed' },
      JSON.stringify(bad),
    );
  }
  assert.deepEqual(verifyTotp(secret, undefined as unknown as string, { now }), {
    ok: false,
    reason: 'malformed',
  });
  assert.deepEqual(verifyTotp(secret, `${good}0`, { now, digits: 6 }), { ok: false, reason: 'malformed' });
});

test('bad secrets and options are BAD_PARAMETER errors', () => {
  const now = new FakeClock().now();
  const throwsBad = (fn: () => unknown) => assert.throws(fn, { code: 'WARDEN_ERR_BAD_PARAMETER' });
  throwsBad(() => verifyTotp('not base32!', '123456', { now }));
  throwsBad(() => verifyTotp('', '123456', { now }));
  throwsBad(() => verifyTotp('MZXW6YTBOI', '123456', { now })); // 48 bits: too short
  const secret = generateTotpSecret();
  throwsBad(() => verifyTotp(secret, '123456', { now, window: 11 }));
  throwsBad(() => verifyTotp(secret, '123456', { now, window: -1 }));
  throwsBad(() => verifyTotp(secret, '123456', { now, digits: 5 }));
  throwsBad(() => verifyTotp(secret, '123456', { now, lastUsedStep: Number.NaN }));
  throwsBad(() => verifyTotp(secret, '123456', { now: -1 }));
  throwsBad(() => verifyTotp(secret, '123456', { now, algorithm: 'MD5' as TotpAlgorithm }));
});

test('otpauthUri follows the Key URI Format', () => {
  const secret = 'JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP';
  assert.equal(
    otpauthUri({ secret, account: 'alice', issuer: 'Warden' }),
    `otpauth://totp/Warden:alice?secret=${secret}&issuer=Warden&algorithm=SHA1&digits=6&period=30`,
  );
  assert.equal(
    otpauthUri({ secret: secret.toLowerCase(), account: 'bob@example.com', issuer: 'Warden example' }),
    `otpauth://totp/Warden%20example:bob%40example.com?secret=${secret}&issuer=Warden%20example&algorithm=SHA1&digits=6&period=30`,
  );
  const throwsBad = (fn: () => unknown) => assert.throws(fn, { code: 'WARDEN_ERR_BAD_PARAMETER' });
  throwsBad(() => otpauthUri({ secret, account: 'a:b', issuer: 'Warden' }));
  throwsBad(() => otpauthUri({ secret, account: 'alice', issuer: 'War:den' }));
  throwsBad(() => otpauthUri({ secret, account: '', issuer: 'Warden' }));
  throwsBad(() => otpauthUri({ secret, account: 'alice', issuer: '' }));
  throwsBad(() => otpauthUri({ secret: 'not base32!', account: 'alice', issuer: 'Warden' }));
});
