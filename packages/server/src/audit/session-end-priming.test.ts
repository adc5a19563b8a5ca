/**
 * `primeSessionEndAudit` checks a full `session.end` once per process (the composition root
 * calls it next to the session monitor), so zod compiles the event's checks at start-up and
 * not when a lock ends the first sessions. Counted without timing: a field schema's runs are
 * wrapped before priming.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { auditEventCatalogue } from '@warden/api';
import { countRuns } from '../../../../test/support/zod-runs';
import { prepareAuditEvent, primeSessionEndAudit, SESSION_END_PRIMING } from './prepare';

test('priming runs the session.end checks once per process', () => {
  const exitCode = countRuns(auditEventCatalogue['session.end'].fields.shape.exit_code);
  primeSessionEndAudit();
  assert.ok(exitCode.count >= 1, 'session.end not checked at priming');
  const before = exitCode.count;
  primeSessionEndAudit();
  assert.equal(exitCode.count, before, 'primed twice');
});

test('the priming sample is a valid session.end with every field set (the whole schema is walked)', () => {
  const { event } = prepareAuditEvent(SESSION_END_PRIMING, 0);
  for (const field of Object.keys(auditEventCatalogue['session.end'].fields.shape))
    assert.notEqual(event[field as keyof typeof event], undefined, field);
  for (const field of ['user', 'addr', 'device', 'user_kind'] as const)
    assert.notEqual(event[field], undefined, field);
  assert.equal(event.redacted, undefined);
});
