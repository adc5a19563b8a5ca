import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FakeClock } from '../clock';
import { MemoryBackend } from './memory';

test('memory backend: TTL expiry is a delete event after the writes before it', async () => {
  const clock = new FakeClock();
  const backend = new MemoryBackend({ clock, reapIntervalMs: 0 });
  const watcher = backend.watch('/a/', { sinceRev: 0 });
  await backend.create('/a/1', 'x', { ttlMs: 10 });
  await backend.put('/a/2', 'y');
  clock.advance(10);
  assert.equal(await backend.get('/a/1'), undefined);
  assert.equal(await backend.reapExpired(), 1);
  const seen: string[] = [];
  for await (const e of watcher) {
    seen.push(`${e.rev}:${e.type}`);
    if (seen.length === 3) break;
  }
  assert.deepEqual(seen, ['1:put', '2:put', '3:delete']);
  await backend.close();
});
