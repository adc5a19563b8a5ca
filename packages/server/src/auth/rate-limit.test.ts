import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isWardenError, WardenError } from '@warden/api';
import { MemoryRateCounters } from '../backend';
import { FakeClock } from '../clock';
import { isRefusedCredential, LoginRateLimiter, SourceRateLimits } from './rate-limit';

const MIN = 60_000;

async function limited(fn: () => Promise<void>): Promise<WardenError> {
  try {
    await fn();
  } catch (e) {
    assert.ok(isWardenError(e, 'WARDEN_ERR_RATE_LIMITED'), String(e));
    return e;
  }
  assert.fail('expected WARDEN_ERR_RATE_LIMITED');
}

function setup(overrides: Partial<ConstructorParameters<typeof LoginRateLimiter>[0]> = {}) {
  const clock = new FakeClock();
  const counters = new MemoryRateCounters({ clock, maxKeys: overrides.maxKeys ?? 10_000 });
  const limiter = new LoginRateLimiter({
    counters,
    maxFailures: 3,
    windowMs: 10 * MIN,
    lockoutMs: 4 * MIN,
    ...overrides,
  });
  return { clock, limiter, counters };
}

test('a (user, address) pair is locked out after maxFailures; the user elsewhere goes on (issue 15 item 13)', async () => {
  const { clock, limiter } = setup();
  await limiter.recordFailure('alice', '10.0.0.1');
  await limiter.recordFailure('alice', '10.0.0.1');
  await limiter.check('alice', '10.0.0.1'); // two failures: still allowed
  await limiter.recordFailure('alice', '10.0.0.1');
  const e = await limited(() => limiter.check('alice', '10.0.0.1'));
  assert.equal(e.message, 'too many failed login attempts for user "alice" from 10.0.0.1; try again in 4m');
  assert.equal(e.details?.retryAfterMs, 4 * MIN);
  // The same user from elsewhere, and other users from there, are unaffected.
  await limiter.check('alice', '10.0.0.9');
  await limiter.check('bob', '10.0.0.1');
  clock.advance(3 * MIN + 15_000);
  assert.match((await limited(() => limiter.check('alice', '10.0.0.1'))).message, /try again in 45s$/);
  clock.advance(45_000);
  await limiter.check('alice', '10.0.0.1');
});

test('the slower back-off: a user is locked out after maxFailuresPerUser failures from many addresses', async () => {
  const { limiter } = setup({ maxFailuresPerUser: 6 });
  for (let i = 0; i < 5; i++) await limiter.recordFailure('alice', `10.0.0.${i}`);
  await limiter.check('alice', '10.0.0.99');
  await limiter.recordFailure('alice', '10.0.0.5');
  const e = await limited(() => limiter.check('alice', '10.0.0.99'));
  assert.equal(e.message, 'too many failed login attempts for user "alice"; try again in 4m');
  // The default is ten times maxFailures.
  const d = setup();
  for (let i = 0; i < 29; i++) await d.limiter.recordFailure('carol', `10.1.0.${i}`);
  await d.limiter.check('carol', '10.1.1.1');
  await d.limiter.recordFailure('carol', '10.1.0.200');
  await limited(() => d.limiter.check('carol', '10.1.1.1'));
});

test('failures spread over more than the window do not lock', async () => {
  const { clock, limiter } = setup();
  for (let i = 0; i < 10; i++) {
    await limiter.recordFailure('alice', `10.0.0.${i}`);
    await limiter.recordFailure('alice', `10.0.1.${i}`);
    clock.advance(10 * MIN);
    await limiter.check('alice', '10.0.0.99');
  }
});

test('an address is locked out after maxFailuresPerAddress failures across users', async () => {
  const { limiter } = setup({ maxFailuresPerAddress: 5 });
  for (const user of ['u1', 'u2', 'u3', 'u4']) await limiter.recordFailure(user, '203.0.113.7');
  await limiter.check('u5', '203.0.113.7');
  await limiter.recordFailure('u5', '203.0.113.7');
  const e = await limited(() => limiter.check('carol', '203.0.113.7'));
  assert.equal(e.message, 'too many failed login attempts from 203.0.113.7; try again in 4m');
  await limiter.check('carol', '203.0.113.8');
});

test('the per-address limit defaults to four times the per-user limit', async () => {
  const { limiter } = setup();
  for (let i = 0; i < 11; i++) await limiter.recordFailure(`user${i}`, '198.51.100.1');
  await limiter.check('someone', '198.51.100.1');
  await limiter.recordFailure('user11', '198.51.100.1');
  await limited(() => limiter.check('someone', '198.51.100.1'));
});

test('success clears the user count but not the address count', async () => {
  const { limiter } = setup({ maxFailuresPerAddress: 4 });
  await limiter.recordFailure('alice', '10.0.0.1');
  await limiter.recordFailure('alice', '10.0.0.1');
  await limiter.recordSuccess('alice', '10.0.0.1');
  await limiter.recordFailure('alice', '10.0.0.2');
  await limiter.recordFailure('alice', '10.0.0.2');
  await limiter.check('alice', '10.0.0.2'); // 2 since the success, not 4
  await limiter.recordFailure('mallory', '10.0.0.1');
  await limiter.recordFailure('mallory', '10.0.0.1'); // 4th from 10.0.0.1 despite alice's success
  assert.match((await limited(() => limiter.check('mallory', '10.0.0.1'))).message, /from 10\.0\.0\.1/);
});

test('long lockouts read in hours and minutes', async () => {
  const { limiter } = setup({ maxFailures: 1, lockoutMs: 65 * MIN });
  await limiter.recordFailure('alice', '10.0.0.1');
  assert.match((await limited(() => limiter.check('alice', '10.0.0.1'))).message, /try again in 1h5m$/);
});

test('memory is bounded: old keys are evicted, locked ones last', async () => {
  const { clock, limiter, counters } = setup({ maxKeys: 300 });
  for (let i = 0; i < 3; i++) await limiter.recordFailure('alice', '192.0.2.200');
  await limited(() => limiter.check('alice', '192.0.2.200'));
  for (let i = 0; i < 5000; i++) {
    await limiter.recordFailure(`spray${i}`, `2001:db8::${i.toString(16)}`);
    if (i % 100 === 0) clock.advance(1000);
  }
  assert.ok(counters.size <= 300, `tracked ${counters.size}`);
  // Alice's lockout survived the flood of new keys.
  await limited(() => limiter.check('alice', '192.0.2.200'));
  // Once their window has passed, entries are idle and a sweep drops all of them.
  clock.advance(11 * MIN);
  for (let i = 0; i < 20; i++) await limiter.recordFailure(`late${i}`, `198.51.100.${i}`);
  assert.ok(counters.size <= 60, `tracked ${counters.size}`);
});

test('invalid options are refused', async () => {
  const clock = new FakeClock();
  for (const bad of [
    { maxFailures: 0 },
    { windowMs: -1 },
    { lockoutMs: 1.5 },
    { maxKeys: 0 },
    { maxFailuresPerAddress: Number.NaN },
  ]) {
    assert.throws(
      () => new LoginRateLimiter({ clock, ...bad }),
      { code: 'WARDEN_ERR_BAD_PARAMETER' },
      JSON.stringify(bad),
    );
  }
  assert.doesNotThrow(() => new LoginRateLimiter({ clock }));
  assert.throws(() => new MemoryRateCounters({ maxKeys: 0 }), { code: 'WARDEN_ERR_BAD_PARAMETER' });
});

test('unauthenticated routes: an address over its failed attempts waits for the window; others go on', async () => {
  const clock = new FakeClock();
  const limits = new SourceRateLimits({
    counters: new MemoryRateCounters({ clock }),
    failedAttempts: 3,
    failedWindowMs: 10 * MIN,
  });
  for (let i = 0; i < 3; i++) {
    await limits.admit('203.0.113.9');
    await limits.failed('203.0.113.9');
  }
  clock.advance(4 * MIN);
  const e = await limited(() => limits.admit('203.0.113.9'));
  assert.equal(
    e.message,
    'too many failed attempts (invalid tokens or passwords) from 203.0.113.9; try again in 6m',
  );
  assert.equal(e.details?.retryAfterMs, 6 * MIN);
  await limits.admit('203.0.113.10');
  clock.advance(6 * MIN);
  await limits.admit('203.0.113.9');
});

test('unauthenticated routes: requests per minute per address', async () => {
  const clock = new FakeClock();
  const limits = new SourceRateLimits({ counters: new MemoryRateCounters({ clock }), requestsPerMinute: 5 });
  for (let i = 0; i < 5; i++) await limits.admit('198.51.100.4');
  clock.advance(15_000);
  const e = await limited(() => limits.admit('198.51.100.4'));
  assert.match(e.message, /too many unauthenticated requests from 198\.51\.100\.4; try again in 45s$/);
  await limits.admit('198.51.100.5');
  clock.advance(45_000);
  await limits.admit('198.51.100.4');
});

test('what counts as a guess: invalid tokens and passwords, not locks or bad input', () => {
  assert.ok(isRefusedCredential(new WardenError('WARDEN_ERR_INVALID_TOKEN')));
  assert.ok(isRefusedCredential(new WardenError('WARDEN_ERR_LOGIN_FAILED')));
  assert.ok(!isRefusedCredential(new WardenError('WARDEN_ERR_LOCKED')));
  assert.ok(!isRefusedCredential(new WardenError('WARDEN_ERR_BAD_PARAMETER')));
  assert.ok(!isRefusedCredential(new Error('x')));
});
