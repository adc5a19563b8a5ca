import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type AuditEvent, type AuditEventInput, isWardenError, type WardenError } from '@warden/api';
import { FakeClock } from '../clock';
import { createMetrics, instrumentAudit } from '../diag';
import type { Logger } from '../log';
import { MemoryAuditLog } from './memory';
import type { AuditLog } from './types';
import { writeAuditEvent } from './write';

/** Test double: an audit log whose store fails while `broken` (as a full disk would). */
class BreakableAuditLogDouble implements AuditLog {
  broken = false;
  readonly #inner = new MemoryAuditLog({ clock: new FakeClock() });
  async emit(event: AuditEventInput): Promise<AuditEvent> {
    if (this.broken) throw new Error('SQLITE_FULL: database or disk is full');
    return this.#inner.emit(event);
  }
  search = this.#inner.search.bind(this.#inner);
  close = this.#inner.close.bind(this.#inner);
}

function recordingLogger(): Logger & { errors: string[] } {
  const errors: string[] = [];
  return { errors, debug() {}, info() {}, warn() {}, error: (_o, msg) => errors.push(msg ?? '') };
}

const login: AuditEventInput = { type: 'user.login', success: true, user: 'alice', method: 'local' };

test('a success event the audit log does not take refuses the operation (AUDIT_UNAVAILABLE)', async () => {
  const audit = new BreakableAuditLogDouble();
  const logger = recordingLogger();
  await writeAuditEvent(audit, logger, login);
  assert.equal((await audit.search()).length, 1);
  audit.broken = true;
  await assert.rejects(writeAuditEvent(audit, logger, login), (e: unknown) => {
    assert.ok(isWardenError(e, 'WARDEN_ERR_AUDIT_UNAVAILABLE'));
    assert.equal(e.status, 503);
    assert.match(e.message, /audit log could not record this \(user\.login\)/);
    assert.doesNotMatch(e.message, /SQLITE_FULL/, 'the store error stays in the server log');
    return true;
  });
  // A lock and an access grant alike.
  for (const event of [
    { type: 'lock.created', name: 'l', target: { user: 'bob' } },
    { type: 'access.allowed', protocol: 'ssh', resource: { kind: 'node', name: 'n' } },
  ] as AuditEventInput[])
    await assert.rejects(writeAuditEvent(audit, logger, event), { code: 'WARDEN_ERR_AUDIT_UNAVAILABLE' });
  assert.match(logger.errors.at(-1)!, /the operation is refused/);
});

test('a refusal the audit log does not take stays the caller’s refusal (no throw)', async () => {
  const audit = new BreakableAuditLogDouble();
  audit.broken = true;
  const logger = recordingLogger();
  await writeAuditEvent(audit, logger, { ...login, success: false, error: 'bad password' });
  // access.denied has only a failure code: a refusal even without `success: false`.
  await writeAuditEvent(audit, logger, {
    type: 'access.denied',
    protocol: 'ssh',
  } as AuditEventInput);
  assert.equal(logger.errors.length, 2);
  assert.match(logger.errors[0]!, /refused anyway/);
});

test('a data path passes onLost: the session is ended instead of a throw', async () => {
  const audit = new BreakableAuditLogDouble();
  audit.broken = true;
  const ended: [string, WardenError][] = [];
  await writeAuditEvent(
    audit,
    recordingLogger(),
    {
      type: 'db.query',
      success: true,
      protocol: 'db',
      session_id: 's',
      query: 'select 1',
    } as AuditEventInput,
    {},
    { onLost: (message, error) => ended.push([message, error]) },
  );
  assert.equal(ended.length, 1);
  assert.equal(ended[0]![1].code, 'WARDEN_ERR_AUDIT_UNAVAILABLE');
  assert.match(ended[0]![0], /\(db\.query\)/);
});

test('warden_audit_write_failures_total counts what the store refused, by event type', async () => {
  const metrics = createMetrics();
  const inner = new BreakableAuditLogDouble();
  const audit = instrumentAudit(inner, metrics);
  await writeAuditEvent(audit, recordingLogger(), login);
  inner.broken = true;
  await assert.rejects(writeAuditEvent(audit, recordingLogger(), login));
  await assert.rejects(writeAuditEvent(audit, recordingLogger(), login));
  await writeAuditEvent(audit, recordingLogger(), { ...login, success: false });
  const text = await metrics.render();
  assert.match(text, /^warden_audit_write_failures_total\{type="user\.login"\} 3$/m);
  assert.match(
    text,
    /^warden_logins_total\{outcome="success"\} 1$/m,
    'only the stored event counts as a login',
  );
});

test('warden_audit_write_failures_total counts refused session statements too (statement writer)', async () => {
  const metrics = createMetrics();
  let broken = false;
  const inner = Object.assign(new BreakableAuditLogDouble(), {
    statements: () => ({
      write: (_s: unknown, done: (e?: unknown) => void) => done(broken ? new Error('disk full') : undefined),
    }),
  });
  const writer = instrumentAudit(inner, metrics).statements?.({
    type: 'db.query',
    protocol: 'db',
    session_id: 's',
    resource: { kind: 'db', name: 'd' },
  });
  assert.ok(writer);
  const write = (query: string) =>
    new Promise<void>((resolve, reject) =>
      writer.write({ query }, (e) => (e === undefined ? resolve() : reject(e))),
    );
  await write('select 1');
  broken = true;
  await assert.rejects(write('select 2'));
  const text = await metrics.render();
  assert.match(text, /^warden_audit_write_failures_total\{type="db\.query"\} 1$/m);
  assert.match(text, /^warden_audit_emit_duration_seconds_count 2$/m);
});
