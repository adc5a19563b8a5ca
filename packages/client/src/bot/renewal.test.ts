/**
 * `nextRenewal` (wbot's schedule): the identity at a third of its lifetime left, the outputs on
 * their own schedule when they end first (kube certificates live at most an hour), retries
 * after failures, and outputs that are wanted but missing due at once.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { nextRenewal, renewAt } from './index';

const M = 60_000;
const H = 60 * M;
const now = Date.parse('2030-01-01T00:00:00Z');

test('a third of the lifetime left: a 1 h identity renews after 40 minutes', () => {
  assert.equal(renewAt(now, now + H, now), now + 40 * M);
  assert.equal(renewAt(now - 2 * H, now - H, now), now, 'never in the past');
});

test('outputs that end before the identity are refreshed on their own schedule', () => {
  const identity = { obtainedMs: now, expiresMs: now + 24 * H };
  const { identityAt, outputsAt } = nextRenewal(now, identity, { obtainedMs: now, expiresMs: now + H });
  assert.equal(identityAt, now + 16 * H);
  assert.equal(outputsAt, now + 40 * M, 'the 1 h kube certificate first');
});

test('no outputs wanted: never due; wanted but none written: due now', () => {
  const identity = { obtainedMs: now, expiresMs: now + H };
  assert.equal(nextRenewal(now, identity, undefined).outputsAt, Number.POSITIVE_INFINITY);
  assert.equal(nextRenewal(now + 5 * M, identity, 'missing').outputsAt, now + 5 * M);
});

test('after a failure each step waits for its own retry time', () => {
  const r = nextRenewal(
    now,
    { obtainedMs: now - 50 * M, expiresMs: now + 10 * M, retryAtMs: now + 30_000 },
    { obtainedMs: now, expiresMs: now + H, retryAtMs: now + 2 * M },
  );
  assert.deepEqual(r, { identityAt: now + 30_000, outputsAt: now + 2 * M });
});
