import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatDuration, parseDuration, tryParseDuration } from './duration';
import { isWardenError } from './errors';

test('parses Go-style durations', () => {
  assert.equal(parseDuration('8h'), 8 * 3_600_000);
  assert.equal(parseDuration('1h30m'), 5_400_000);
  assert.equal(parseDuration('45s'), 45_000);
  assert.equal(parseDuration('500ms'), 500);
  assert.equal(parseDuration('2d'), 172_800_000);
  assert.equal(parseDuration('1.5h'), 5_400_000);
});

test('refuses what is not a duration', () => {
  for (const bad of ['', '8', 'h', '-1h', '1x', '1h 30m', '0s', 'abc']) {
    assert.equal(tryParseDuration(bad), undefined, bad);
  }
  assert.throws(
    () => parseDuration('soon', '--ttl'),
    (e) => isWardenError(e, 'WARDEN_ERR_BAD_PARAMETER') && /--ttl "soon"/.test(e.message),
  );
});

test('formats like Go', () => {
  assert.equal(formatDuration(12 * 3_600_000), '12h0m0s');
  assert.equal(formatDuration(90_000), '1m30s');
  assert.equal(formatDuration(5_000), '5s');
});
