/**
 * The lock view primes the lock schema's checks at start-up (`PRIMING_LOCK`): the sample must
 * be a valid stored lock with every target and spec field set (so that the whole schema is
 * compiled, and a lock view never fails to start), and priming must store nothing.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LOCK_TARGET_FIELDS, validateResource } from '@warden/api';
import { MemoryBackend } from '../backend';
import { FakeClock } from '../clock';
import { createServices, PRIMING_LOCK } from './services';

test('the priming lock is a valid lock with every field set', () => {
  assert.deepEqual(validateResource(PRIMING_LOCK), PRIMING_LOCK);
  for (const field of LOCK_TARGET_FIELDS) assert.ok(PRIMING_LOCK.spec.target[field], field);
  for (const field of ['message', 'expires', 'created_at', 'created_by'] as const) {
    assert.ok(PRIMING_LOCK.spec[field], field);
  }
});

test('a lock view primes without storing or showing the priming lock', async () => {
  const clock = new FakeClock(Date.UTC(2026, 0, 1));
  const backend = new MemoryBackend({ clock, reapIntervalMs: 0 });
  const services = createServices({ backend, clock });
  const view = services.lockCache();
  await view.start();
  try {
    assert.deepEqual(view.values(), []);
    assert.deepEqual((await backend.range('/')).items, []);
  } finally {
    view.close();
  }
});
