/**
 * A new `LockService` checks a full sample of every schema on the lock-create path once per
 * process (`LOCK_PRIMING_SAMPLES`), so zod compiles them at start-up and not in the first
 * lock's path. Counted without timing: each schema's run is wrapped before the service exists.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { auditEventCatalogue, rpc, web } from '@warden/api';
import { countRuns } from '../../../../test/support/zod-runs';
import { LOCK_PRIMING_SAMPLES, LockService, type LockServiceOptions } from './locks';

test('a new lock service runs the request, lock and audit schemas before the first lock', () => {
  const rpcRequest = countRuns(rpc.CreateLockRequest);
  const webRequest = countRuns(web.CreateLockRequest);
  const auditTarget = countRuns(auditEventCatalogue['lock.created'].fields.shape.target);
  // The constructor only keeps its dependencies; none is used until a lock is written.
  new LockService({} as LockServiceOptions);
  assert.ok(rpcRequest.count >= 1, 'rpc.CreateLockRequest not primed');
  assert.ok(webRequest.count >= 1, 'web.CreateLockRequest not primed');
  assert.ok(auditTarget.count >= 1, 'the lock.created audit event not primed');
  // Once per process.
  const before = rpcRequest.count;
  new LockService({} as LockServiceOptions);
  assert.equal(rpcRequest.count, before);
});

test('every priming sample is valid (the whole schema is walked, start-up never fails)', () => {
  for (const sample of LOCK_PRIMING_SAMPLES) assert.doesNotThrow(sample.check, sample.what);
  const audit = LOCK_PRIMING_SAMPLES.find((s) => s.what === 'lock.created audit event');
  const event = audit?.check() as { event: Record<string, unknown> };
  assert.deepEqual(event.event.target, { user: 'u', role: 'r', login: 'l', node: 'n', device: 'd' });
});
