/**
 * `ResourceService.undo` (memory and SQLite backends; it rests only on conditional delete,
 * compare-and-swap and create, which the backend conformance suite checks on PostgreSQL too):
 * taking back a write the audit log refused touches the resource only while it is still what
 * that write stored.
 * Regression: the undo of a create deleted unconditionally, and the undo of an update or a
 * removal overwrote unconditionally — so a concurrent writer's newer version, written between
 * our write and the audit log's refusal, was lost.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import type { RoleResource } from '@warden/api';
import { rejectsWith } from '../../../../test/support/warden-errors';
import { type Backend, MemoryBackend, SqliteBackend } from '../backend';
import { FakeClock } from '../clock';
import { createServices } from './services';

const role = (logins: string[]): RoleResource => ({
  kind: 'role',
  version: 'v7',
  metadata: { name: 'dev' },
  spec: { options: {}, allow: { logins }, deny: {} },
});

function undoSuite(name: string, open: () => Promise<Backend>): void {
  describe(`ResourceService.undo (${name})`, () => {
    async function roles(t: { after(fn: () => unknown): void }) {
      const backend = await open();
      t.after(() => backend.close());
      return createServices({ backend, clock: new FakeClock() }).roles;
    }
    const logins = async (store: Awaited<ReturnType<typeof roles>>) =>
      (await store.find('dev'))?.spec.allow.logins;

    test('undoing a create removes what it wrote, but not a newer version written since', async (t) => {
      const store = await roles(t);
      const written = await store.create(role(['ours']));
      await store.undo({ written });
      assert.equal(await store.find('dev'), undefined, 'our create is taken back');

      const again = await store.create(role(['ours']));
      await store.upsert(role(['theirs']));
      await rejectsWith(store.undo({ written: again }), 'WARDEN_ERR_COMPARE_FAILED');
      assert.deepEqual(await logins(store), ['theirs'], 'the concurrent newer write survives');
    });

    test('undoing an update puts the previous version back, but not over a newer one', async (t) => {
      const store = await roles(t);
      const previous = await store.create(role(['before']));
      const written = await store.upsert(role(['ours']));
      await store.undo({ written, previous });
      assert.deepEqual(await logins(store), ['before'], 'our update is taken back');

      const current = (await store.find('dev'))!;
      const ours = await store.upsert(role(['ours']));
      await store.upsert(role(['theirs']));
      await rejectsWith(store.undo({ written: ours, previous: current }), 'WARDEN_ERR_COMPARE_FAILED');
      assert.deepEqual(await logins(store), ['theirs'], 'the concurrent newer write survives');
    });

    test('undoing a removal puts the resource back, but not over one created since', async (t) => {
      const store = await roles(t);
      const previous = await store.create(role(['before']));
      await store.delete('dev');
      await store.undo({ previous });
      assert.deepEqual(await logins(store), ['before'], 'our removal is taken back');

      await store.delete('dev');
      await store.create(role(['theirs']));
      await rejectsWith(store.undo({ previous }), 'WARDEN_ERR_ALREADY_EXISTS');
      assert.deepEqual(await logins(store), ['theirs'], 'the concurrent newer write survives');
    });
  });
}

undoSuite('memory', async () => new MemoryBackend({ clock: new FakeClock(), reapIntervalMs: 0 }));

const dir = mkdtempSync(join(tmpdir(), 'warden-undo-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let files = 0;
undoSuite('sqlite', () => SqliteBackend.open({ path: join(dir, `${++files}.db`), reapIntervalMs: 0 }));
