import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runBackendConformance } from '../../../../test/support/backend-conformance';
import { FakeClock } from '../clock';
import { MemoryBackend } from './memory';

runBackendConformance('memory', async ({ clock, maxHistory }) =>
  maxHistory === undefined
    ? new MemoryBackend({ clock, reapIntervalMs: 0 })
    : new MemoryBackend({ clock, maxHistory, reapIntervalMs: 0 }),
);

test('memory backend: the reaper timer deletes expired keys with a delete event', async () => {
  const clock = new FakeClock();
  const backend = new MemoryBackend({ clock, reapIntervalMs: 5 });
  let keepAlive: NodeJS.Timeout | undefined;
  try {
    await backend.create('/hb/a', 'up', { ttlMs: 10 });
    const w = backend.watch('/hb/', { sinceRev: 1 });
    clock.advance(10);
    // The reaper's timer is unref'd; keep the event loop alive while waiting for it.
    keepAlive = setInterval(() => undefined, 1000);
    for await (const e of w) {
      assert.deepEqual(e, { type: 'delete', rev: 2, key: '/hb/a' });
      break;
    }
  } finally {
    clearInterval(keepAlive);
    await backend.close();
  }
});

test('memory backend: options are validated', () => {
  assert.throws(() => new MemoryBackend({ maxHistory: 0 }), /maxHistory/);
  assert.throws(() => new MemoryBackend({ reapIntervalMs: -1 }), /reapIntervalMs/);
});
