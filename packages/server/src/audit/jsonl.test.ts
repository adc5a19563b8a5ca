import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { type AuditEvent, isWardenError } from '@warden/api';
import { FakeClock } from '../clock';
import { JsonlAuditSink } from './jsonl';
import { MemoryAuditLog } from './memory';
import { teeAuditLog } from './tee';
import type { AuditSink } from './types';

const dir = mkdtempSync(join(tmpdir(), 'warden-jsonl-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const freshPath = () => join(dir, `j${++n}`, 'audit.jsonl');

function lines(path: string): AuditEvent[] {
  const text = readFileSync(path, 'utf8');
  assert.ok(text.endsWith('\n'));
  return text
    .slice(0, -1)
    .split('\n')
    .map((l) => JSON.parse(l) as AuditEvent);
}

test('jsonl sink: tee writes each stored event as one line, in order, to a 0600 file', async () => {
  const path = freshPath();
  const primary = new MemoryAuditLog({ clock: new FakeClock() });
  const audit = teeAuditLog(primary, await JsonlAuditSink.open({ path }));
  const emitted = await Promise.all(
    Array.from({ length: 50 }, (_, i) =>
      audit.emit({
        type: 'user.login',
        user: `u${i}`,
        success: i % 2 === 0,
        error: i % 2 ? 'line\nbreak' : undefined,
      }),
    ),
  );
  await audit.close();
  assert.equal(statSync(path).mode & 0o777, 0o600);
  assert.deepEqual(lines(path), emitted, 'the lines are the stored events, newlines escaped');
  await assert.rejects(
    primary.search(),
    (e: unknown) => isWardenError(e, 'WARDEN_ERR_CLOSED'),
    'close reaches the primary',
  );
});

test('jsonl sink: appends to an existing file and makes it 0600', async () => {
  const path = freshPath();
  const sink1 = await JsonlAuditSink.open({ path });
  const event: AuditEvent = { id: '1', code: 'W3000I', type: 'role.created', time: 't', success: true };
  await sink1.write(event);
  await sink1.close();
  chmodSync(path, 0o644);
  const sink2 = await JsonlAuditSink.open({ path });
  assert.equal(statSync(path).mode & 0o777, 0o600);
  await sink2.write({ ...event, id: '2' });
  await sink2.close();
  assert.deepEqual(
    lines(path).map((e) => e.id),
    ['1', '2'],
  );
  await assert.rejects(sink2.write(event), (e: unknown) => isWardenError(e, 'WARDEN_ERR_CLOSED'));
});

test('jsonl sink: reopen() after rotation writes to a new file', async () => {
  const path = freshPath();
  const sink = await JsonlAuditSink.open({ path });
  const event: AuditEvent = { id: 'a', code: 'W3000I', type: 'role.created', time: 't', success: true };
  await sink.write(event);
  renameSync(path, `${path}.1`);
  await sink.write({ ...event, id: 'b' }); // still the rotated file until reopen
  await sink.reopen();
  await sink.write({ ...event, id: 'c' });
  await sink.close();
  assert.deepEqual(
    lines(`${path}.1`).map((e) => e.id),
    ['a', 'b'],
  );
  assert.deepEqual(
    lines(path).map((e) => e.id),
    ['c'],
  );
  assert.equal(statSync(path).mode & 0o777, 0o600);
});

test('jsonl sink: secrets emitted through tee never reach the file', async () => {
  const path = freshPath();
  const audit = teeAuditLog(new MemoryAuditLog(), await JsonlAuditSink.open({ path }));
  await audit.emit({
    type: 'user.signup',
    user: 'alice',
    password: 'SECRET-pw',
    totp: 'SECRET-otp',
  } as never);
  await audit.close();
  const text = readFileSync(path, 'utf8');
  assert.ok(!text.includes('SECRET'), text);
  assert.deepEqual(lines(path)[0]?.redacted, ['password', 'totp']);
});

test('tee: a failing sink makes emit reject, but the primary and other sinks keep the event', async () => {
  const primary = new MemoryAuditLog();
  const got: AuditEvent[] = [];
  const good: AuditSink = { write: async (e) => void got.push(e), close: async () => undefined };
  const broken: AuditSink = {
    write: async () => {
      throw new Error('disk full');
    },
    close: async () => undefined,
  };
  const audit = teeAuditLog(primary, broken, good);
  await assert.rejects(audit.emit({ type: 'role.created', name: 'dev' }), (e: unknown) => {
    assert.ok(isWardenError(e, 'WARDEN_ERR_INTERNAL'));
    assert.match((e as Error).message, /1 audit sink\(s\) failed/);
    return true;
  });
  const stored = await audit.search();
  assert.equal(stored.length, 1);
  assert.deepEqual(got, stored);
  await assert.rejects(audit.emit({ type: 'nope' } as never), (e: unknown) =>
    isWardenError(e, 'WARDEN_ERR_BAD_PARAMETER'),
  );
  assert.equal(got.length, 1, 'a rejected event reaches no sink');
});

test('jsonl sink: bad path is rejected', async () => {
  await assert.rejects(JsonlAuditSink.open({ path: '' }), (e: unknown) =>
    isWardenError(e, 'WARDEN_ERR_BAD_PARAMETER'),
  );
  const file = join(dir, 'plain-file');
  writeFileSync(file, '');
  await assert.rejects(JsonlAuditSink.open({ path: join(file, 'audit.jsonl') }));
});
