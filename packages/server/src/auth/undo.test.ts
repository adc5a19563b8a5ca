/**
 * The undo of a change the audit log refused (issue 15 item 5) takes back only what that
 * change wrote. Regression: the undo deleted (or overwrote) unconditionally, so a concurrent
 * writer's newer version — stored between our write and the audit log's refusal — was lost.
 * Here the audit store, as it refuses the event, lets a second writer in first.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { AuditEventInput, LockResource, RoleResource } from '@warden/api';
import { startTestCluster, type TestCluster } from '../../../../test/support/auth-cluster';
import { rejectsWith } from '../../../../test/support/warden-errors';

const role = (logins: string[]): RoleResource => ({
  kind: 'role',
  version: 'v7',
  metadata: { name: 'ops' },
  spec: { options: {}, allow: { logins }, deny: {} },
});

/** The audit log refuses events of `type`, after `concurrently` has written (once). */
function refuseAfter(c: TestCluster, type: string, concurrently: () => Promise<unknown>): void {
  const emit = c.audit.emit.bind(c.audit);
  let done = false;
  c.audit.emit = async (e: AuditEventInput) => {
    if (e.type !== type || done) return emit(e);
    done = true;
    await concurrently();
    throw new Error('disk full');
  };
}

/** Each undo that met the newer version was refused and logged, not forced. */
function assertUndoRefusedAndLogged(c: TestCluster, what: string): void {
  const line = c.logger.lines.find((l) => l.msg === 'could not undo a change the audit log did not record');
  assert.ok(line, 'the refused undo is logged');
  assert.equal((line.obj as { change?: string }).change, what);
}

describe('the undo of an unaudited change spares a concurrent newer write', () => {
  test('a created role: the newer version written meanwhile stays', async () => {
    const c = await startTestCluster();
    refuseAfter(c, 'role.created', () => c.services.roles.upsert(role(['theirs'])));
    await rejectsWith(
      c.auth.putResource(c.admin, role(['ours']), { force: false }),
      'WARDEN_ERR_AUDIT_UNAVAILABLE',
    );
    assert.deepEqual((await c.services.roles.get('ops')).spec.allow.logins, ['theirs']);
    assertUndoRefusedAndLogged(c, 'role created');
  });

  test('an updated role: the newer version is not overwritten by the one before ours', async () => {
    const c = await startTestCluster();
    await c.auth.putResource(c.admin, role(['before']), { force: false });
    refuseAfter(c, 'role.updated', () => c.services.roles.upsert(role(['theirs'])));
    await rejectsWith(
      c.auth.putResource(c.admin, role(['ours']), { force: true }),
      'WARDEN_ERR_AUDIT_UNAVAILABLE',
    );
    assert.deepEqual((await c.services.roles.get('ops')).spec.allow.logins, ['theirs']);
    assertUndoRefusedAndLogged(c, 'role updated');
  });

  test('a removed role: one created again meanwhile is not replaced by the removed one', async () => {
    const c = await startTestCluster();
    await c.auth.putResource(c.admin, role(['before']), { force: false });
    refuseAfter(c, 'role.deleted', () => c.services.roles.create(role(['theirs'])));
    await rejectsWith(c.auth.deleteResource(c.admin, 'role', 'ops'), 'WARDEN_ERR_AUDIT_UNAVAILABLE');
    assert.deepEqual((await c.services.roles.get('ops')).spec.allow.logins, ['theirs']);
    assertUndoRefusedAndLogged(c, 'role removal');
  });

  test('an added user: the newer version stays', async () => {
    const c = await startTestCluster();
    refuseAfter(c, 'user.create', async () => {
      const ours = await c.services.users.get('bob');
      await c.services.users.upsert({ ...ours, spec: { ...ours.spec, roles: ['editor'] } });
    });
    await rejectsWith(
      c.auth.addUser(c.admin, { name: 'bob', roles: ['access'], logins: [] }),
      'WARDEN_ERR_AUDIT_UNAVAILABLE',
    );
    assert.deepEqual((await c.services.users.get('bob')).spec.roles, ['editor']);
    assertUndoRefusedAndLogged(c, 'user create');
  });

  test('a created lock: a newer version of it stays in force', async () => {
    const c = await startTestCluster();
    refuseAfter(c, 'lock.created', async () => {
      const ours = (await c.services.locks.list())[0]!;
      await c.services.locks.upsert({ ...ours, spec: { ...ours.spec, message: 'theirs' } } as LockResource);
    });
    await rejectsWith(
      c.auth.createLock(c.admin, { target: { user: 'bob' } }),
      'WARDEN_ERR_AUDIT_UNAVAILABLE',
    );
    const locks = await c.services.locks.list();
    assert.deepEqual(
      locks.map((l) => [l.spec.target.user, l.spec.message]),
      [['bob', 'theirs']],
    );
    assertUndoRefusedAndLogged(c, 'lock');
  });

  test('without a concurrent write, the undo still takes the change back', async () => {
    const c = await startTestCluster();
    refuseAfter(c, 'role.created', async () => {});
    await rejectsWith(
      c.auth.putResource(c.admin, role(['ours']), { force: false }),
      'WARDEN_ERR_AUDIT_UNAVAILABLE',
    );
    assert.equal(await c.services.roles.find('ops'), undefined);
    assert.equal(
      c.logger.lines.filter((l) => l.level === 'error' && /could not undo/.test(l.msg ?? '')).length,
      0,
    );
  });
});
