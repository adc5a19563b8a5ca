import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isWardenError, type WardenError } from '@warden/api';
import { FakeClock } from '../clock';
import { LoginRateLimiter } from './rate-limit';

const MIN = 60_000;

function limited(fn: () => void): WardenError {
  try {
    fn();
  } catch (e) {
    assert.ok(isWardenError(e, 'WARDEN_ERR_RATE_LIMITED'), String(e));
    return e;
  }
  assert.fail('expected WARDEN_ERR_RATE_LIMITED');
}

function setup(overrides: Partial<ConstructorParameters<typeof LoginRateLimiter>[0]> = {}) {
  const clock = new FakeClock();
  const limiter = new LoginRateLimiter({
    clock,
    maxFailures: 3,
    windowMs: 10 * MIN,
    lockoutMs: 4 * MIN,
    ...overrides,
  });
  return { clock, limiter };
}

test('a (user, address) pair is locked out after maxFailures; the user elsewhere goes on (issue 15 item 13)', () => {
  const { clock, limiter } = setup();
  limiter.recordFailure('alice', '10.0.0.1');
  limiter.recordFailure('alice', '10.0.0.1');
  limiter.check('alice', '10.0.0.1'); // two failures: still allowed
  limiter.recordFailure('alice', '10.0.0.1');
  const e = limited(() => limiter.check('alice', '10.0.0.1'));
  assert.equal(e.message, 'too many failed login attempts for user "alice" from 10.0.0.1; try again in 4m');
  assert.equal(e.details?.retryAfterMs, 4 * MIN);
  // The same user from elsewhere, and other users from there, are unaffected.
  limiter.check('alice', '10.0.0.9');
  limiter.check('bob', '10.0.0.1');
  clock.advance(3 * MIN + 15_000);
  assert.match(limited(() => limiter.check('alice', '10.0.0.1')).message, /try again in 45s$/);
  clock.advance(45_000);
  limiter.check('alice', '10.0.0.1');
});

test('the slower back-off: a user is locked out after maxFailuresPerUser failures from many addresses', () => {
  const { limiter } = setup({ maxFailuresPerUser: 6 });
  for (let i = 0; i < 5; i++) limiter.recordFailure('alice', `10.0.0.${i}`);
  limiter.check('alice', '10.0.0.99');
  limiter.recordFailure('alice', '10.0.0.5');
  const e = limited(() => limiter.check('alice', '10.0.0.99'));
  assert.equal(e.message, 'too many failed login attempts for user "alice"; try again in 4m');
  // The default is ten times maxFailures.
  const d = setup();
  for (let i = 0; i < 29; i++) d.limiter.recordFailure('carol', `10.1.0.${i}`);
  d.limiter.check('carol', '10.1.1.1');
  d.limiter.recordFailure('carol', '10.1.0.200');
  limited(() => d.limiter.check('carol', '10.1.1.1'));
});

test('failures spread over more than the window do not lock', () => {
  const { clock, limiter } = setup();
  for (let i = 0; i < 10; i++) {
    limiter.recordFailure('alice', `10.0.0.${i}`);
    limiter.recordFailure('alice', `10.0.1.${i}`);
    clock.advance(10 * MIN);
    limiter.check('alice', '10.0.0.99');
  }
});

test('an address is locked out after maxFailuresPerAddress failures across users', () => {
  const { limiter } = setup({ maxFailuresPerAddress: 5 });
  for (const user of ['u1', 'u2', 'u3', 'u4']) limiter.recordFailure(user, '203.0.113.7');
  limiter.check('u5', '203.0.113.7');
  limiter.recordFailure('u5', '203.0.113.7');
  const e = limited(() => limiter.check('carol', '203.0.113.7'));
  assert.equal(e.message, 'too many failed login attempts from 203.0.113.7; try again in 4m');
  limiter.check('carol', '203.0.113.8');
});

test('the per-address limit defaults to four times the per-user limit', () => {
  const { limiter } = setup();
  for (let i = 0; i < 11; i++) limiter.recordFailure(`user${i}`, '198.51.100.1');
  limiter.check('someone', '198.51.100.1');
  limiter.recordFailure('user11', '198.51.100.1');
  limited(() => limiter.check('someone', '198.51.100.1'));
});

test('success clears the user count but not the address count', () => {
  const { limiter } = setup({ maxFailuresPerAddress: 4 });
  limiter.recordFailure('alice', '10.0.0.1');
  limiter.recordFailure('alice', '10.0.0.1');
  limiter.recordSuccess('alice', '10.0.0.1');
  limiter.recordFailure('alice', '10.0.0.2');
  limiter.recordFailure('alice', '10.0.0.2');
  limiter.check('alice', '10.0.0.2'); // 2 since the success, not 4
  limiter.recordFailure('mallory', '10.0.0.1');
  limiter.recordFailure('mallory', '10.0.0.1'); // 4th from 10.0.0.1 despite alice's success
  assert.match(limited(() => limiter.check('mallory', '10.0.0.1')).message, /from 10\.0\.0\.1/);
});

test('long lockouts read in hours and minutes', () => {
  const { limiter } = setup({ maxFailures: 1, lockoutMs: 65 * MIN });
  limiter.recordFailure('alice', '10.0.0.1');
  assert.match(limited(() => limiter.check('alice', '10.0.0.1')).message, /try again in 1h5m$/);
});

test('memory is bounded: old keys are evicted, locked ones last', () => {
  const { clock, limiter } = setup({ maxKeys: 100 });
  for (let i = 0; i < 3; i++) limiter.recordFailure('alice', '192.0.2.200');
  limited(() => limiter.check('alice', '192.0.2.200'));
  for (let i = 0; i < 5000; i++) {
    limiter.recordFailure(`spray${i}`, `2001:db8::${i.toString(16)}`);
    if (i % 100 === 0) clock.advance(1000);
  }
  assert.ok(limiter.trackedKeys <= 300, `tracked ${limiter.trackedKeys}`);
  // Alice's lockout survived the flood of new keys.
  limited(() => limiter.check('alice', '192.0.2.200'));
  // Once their window has passed, entries are idle and a sweep drops all of them.
  clock.advance(11 * MIN);
  for (let i = 0; i < 20; i++) limiter.recordFailure(`late${i}`, `198.51.100.${i}`);
  assert.ok(limiter.trackedKeys <= 60, `tracked ${limiter.trackedKeys}`);
});

test('invalid options are refused', () => {
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
});
