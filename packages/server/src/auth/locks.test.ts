/**
 * Every way a lock is written goes through `LockService`: `wctl lock` (`createLock`) and
 * `wctl create [-f] lock.yaml` / `wctl edit` (`putResource` of kind lock) get the same
 * expiry check, the server's `created_at`/`created_by` (a client-supplied one is replaced),
 * the same audit event and the same device warnings. Regression for issue 10: the generic
 * path used to store the document as sent.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, test } from 'node:test';
import type { LockResource } from '@warden/api';
import { CLIENT_ADDR, startTestCluster, type TestCluster } from '../../../../test/support/auth-cluster';
import { rejectsWith } from '../../../../test/support/warden-errors';

const HOUR = 60 * 60 * 1000;

function lockDoc(spec: Record<string, unknown>, name: string = randomUUID()): Record<string, unknown> {
  return { kind: 'lock', version: 'v2', metadata: { name }, spec };
}

async function editorCaller(c: TestCluster) {
  const { totpSecret } = await c.signUp('erin', ['editor']);
  return c.callerOf(await c.auth.login(c.loginRequest('erin', c.nextOtp(totpSecret!)), CLIENT_ADDR));
}

describe('locks written as resources (wctl create lock.yaml)', () => {
  test('created_by and created_at are the server’s, whatever the document says', async () => {
    const c = await startTestCluster();
    const erin = await editorCaller(c);
    const name = randomUUID();
    const out = await c.auth.putResource(
      erin,
      lockDoc({ target: { user: 'alice' }, created_by: 'mallory', created_at: '2001-01-01T00:00:00Z' }, name),
      { force: false },
    );
    assert.equal(out.outcome, 'created');
    const stored = (await c.services.locks.get(name)) as LockResource;
    assert.equal(stored.spec.created_by, 'erin');
    assert.equal(stored.spec.created_at, new Date(c.clock.now()).toISOString());
    const [event] = await c.audit.search({ types: ['lock.created'] });
    assert.equal(event?.user, 'erin');
    assert.deepEqual((event as { target?: unknown }).target, { user: 'alice' });
  });

  test('an update (create -f, edit) keeps the stored created_by; the document cannot rewrite it', async () => {
    const c = await startTestCluster();
    const erin = await editorCaller(c);
    const { name } = await c.auth.createLock(c.admin, { target: { user: 'alice' } });
    const first = (await c.services.locks.get(name)) as LockResource;
    c.clock.advance(HOUR);
    await c.auth.putResource(
      erin,
      lockDoc({ target: { user: 'alice' }, message: 'still under review', created_by: 'mallory' }, name),
      { force: true },
    );
    const updated = (await c.services.locks.get(name)) as LockResource;
    assert.equal(updated.spec.message, 'still under review');
    assert.equal(updated.spec.created_by, first.spec.created_by);
    assert.equal(updated.spec.created_at, first.spec.created_at);
  });

  test('an expiry in the past is refused and stores nothing, as with wctl lock --expires', async () => {
    const c = await startTestCluster();
    const past = new Date(c.clock.now() - 1000).toISOString();
    const name = randomUUID();
    await rejectsWith(
      c.auth.putResource(c.admin, lockDoc({ target: { user: 'alice' }, expires: past }, name), {
        force: false,
      }),
      'WARDEN_ERR_BAD_PARAMETER',
      /the lock would expire in the past/,
    );
    await rejectsWith(
      c.auth.createLock(c.admin, { target: { user: 'alice' }, expires: past }),
      'WARDEN_ERR_BAD_PARAMETER',
      /the lock would expire in the past/,
    );
    assert.deepEqual(await c.services.locks.list(), []);
    assert.deepEqual(await c.audit.search({ types: ['lock.created'] }), []);
  });

  test('a device lock that cannot take effect comes back with the same warnings on both paths', async () => {
    const c = await startTestCluster();
    const viaLock = await c.auth.createLock(c.admin, { target: { device: 'no-such-device' } });
    const viaFile = await c.auth.putResource(c.admin, lockDoc({ target: { device: 'no-such-device' } }), {
      force: false,
    });
    assert.ok(viaLock.warnings?.length, 'createLock warns');
    assert.deepEqual(viaFile.warnings, viaLock.warnings);
    assert.match(viaFile.warnings![0]!, /no device with ID "no-such-device" is in the inventory/);
    // A lock that takes effect carries no warnings.
    const plain = await c.auth.putResource(c.admin, lockDoc({ target: { user: 'alice' } }), { force: false });
    assert.equal(plain.warnings, undefined);
  });

  test('a lock written as a resource stops the login like one from wctl lock', async () => {
    const c = await startTestCluster();
    const { totpSecret } = await c.signUp('alice', ['access']);
    await c.auth.putResource(c.admin, lockDoc({ target: { user: 'alice' }, message: 'from a file' }), {
      force: false,
    });
    await rejectsWith(
      c.auth.login(c.loginRequest('alice', c.nextOtp(totpSecret!)), CLIENT_ADDR),
      'WARDEN_ERR_LOCKED',
      /lock targeting User:"alice" is in force: from a file/,
    );
  });

  test('without the create verb on lock, neither path writes a lock', async () => {
    const c = await startTestCluster();
    const { totpSecret } = await c.signUp('bob', ['access']);
    const bob = await c.callerOf(
      await c.auth.login(c.loginRequest('bob', c.nextOtp(totpSecret!)), CLIENT_ADDR),
    );
    await rejectsWith(c.auth.createLock(bob, { target: { user: 'alice' } }), 'WARDEN_ERR_ACCESS_DENIED');
    await rejectsWith(
      c.auth.putResource(bob, lockDoc({ target: { user: 'alice' } }), { force: false }),
      'WARDEN_ERR_ACCESS_DENIED',
    );
    assert.deepEqual(await c.services.locks.list(), []);
  });
});
