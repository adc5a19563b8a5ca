/**
 * `wctl lock` on the SQLite backend, composed as `warden start` composes it (the backend and
 * the audit log in SQLite files, the live views, one session monitor): the lock's creator
 * gets the answer without waiting for the lock's enforcement. The lock's write wakes the lock
 * view, whose session monitor ends every session the lock targets in one pass, each end
 * writing a `session.end` audit event; the API call waits only for its own `lock.created`
 * event to be durable. It used to wait behind the pass's events too: the write woke the view
 * in the same tick as the API handler's continuation, the pass ran first and its events were
 * queued ahead of `lock.created` (bench/README.md, "The lock API round trip on SQLite").
 * Ordering only, no timing.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { AUTH_PREFERENCE_NAME, type AuditEventInput } from '@warden/api';
import { certDer } from '../../../../test/support/auth-cluster';
import { authServerOf, quietLogger as quiet, startLiveAccess } from '../../../../test/support/in-process';
import { type Identity, makeIdentity } from '../access';
import { type AuditLog, SESSION_END_PRIMING, SqliteAuditLog, writeAuditEvent } from '../audit';
import { SqliteBackend } from '../backend';
import { CertAuthorities } from '../ca';
import { systemClock } from '../clock';
import { createServices } from '../services';

const dir = mkdtempSync(join(tmpdir(), 'warden-lock-answer-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const SESSIONS = 50;

test('sqlite: the lock API answers after its own lock.created is durable, not after the session.end events of the sessions it ends', async () => {
  const clock = systemClock;
  const backend = await SqliteBackend.open({ path: join(dir, 'backend.sqlite'), clock, reapIntervalMs: 0 });
  const store = await SqliteAuditLog.open({ path: join(dir, 'audit.sqlite'), clock });
  // What happened, in order: an event handed to the audit log, an event durable, a session
  // ended by the monitor, the API call's answer.
  const timeline: string[] = [];
  const audit: AuditLog = {
    async emit(event: AuditEventInput) {
      timeline.push(`queued ${event.type}`);
      const stored = await store.emit(event);
      timeline.push(`durable ${event.type}`);
      return stored;
    },
    search: (q) => store.search(q),
    close: () => store.close(),
  };
  const services = createServices({ backend, clock });
  await services.ensurePresets();
  // The cluster settings as `warden start` stores them (without them every session is refused).
  await services.authPreference.upsert({
    ...(await services.authPreference.get()),
    metadata: { name: AUTH_PREFERENCE_NAME },
  });
  const cas = await CertAuthorities.init({ backend, clusterName: 'test-cluster', clock });
  const core = { clock, backend, audit, services, cas };
  const live = await startLiveAccess(core);
  const { monitor } = live;
  try {
    const auth = authServerOf(core, { clusterName: 'test-cluster', proxy: 'proxy.test:3080' });
    const adminId = await auth.issueAdminIdentity();
    const admin: Identity = { ...(await auth.identify(certDer(adminId.certPem))), clientAddr: '127.0.0.1' };
    // Sessions as the protocols register them: `end` writes the session's session.end event.
    const ended: Promise<void>[] = [];
    const messages: string[] = [];
    for (let i = 0; i < SESSIONS; i++) {
      let done!: () => void;
      ended.push(new Promise<void>((r) => (done = r)));
      monitor.register({
        identity: makeIdentity({ user: 'alice', roles: ['access'] }),
        protocol: 'ssh',
        end(message) {
          messages.push(message);
          timeline.push('session ended');
          void writeAuditEvent(audit, quiet, {
            ...(SESSION_END_PRIMING as Extract<AuditEventInput, { type: 'session.end' }>),
            user: 'alice',
            session_id: `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`,
          }).then(done);
        },
      });
    }
    // They were allowed: none ended at its registration.
    await new Promise((r) => setImmediate(r));
    assert.equal(timeline.join(', '), '');

    await auth.createLock(admin, { target: { user: 'alice' }, message: 'under review' });
    timeline.push('answer');
    await Promise.all(ended);

    // Every session was ended by the lock, and its end audited.
    assert.equal(messages.length, SESSIONS);
    for (const m of messages) assert.match(m, /^lock targeting .*alice.*: under review$/);
    assert.equal(timeline.filter((e) => e === 'durable session.end').length, SESSIONS);
    assert.equal(monitor.size, 0);
    const at = (entry: string) => timeline.indexOf(entry);
    // The API handler queued its own event before the pass's events...
    assert.ok(at('queued lock.created') < at('queued session.end'), timeline.join(', '));
    // ... so it was durable first (the same commit as some of theirs at most), and the answer
    // followed it, waiting for nothing of theirs.
    assert.ok(at('durable lock.created') < at('durable session.end'), timeline.join(', '));
    assert.ok(at('durable lock.created') < at('answer'), timeline.join(', '));
    const [created] = await store.search({ types: ['lock.created'] });
    assert.equal(created?.user, admin.user);
  } finally {
    live.close();
    await audit.close();
    await backend.close();
  }
});
