import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runBackendConformance, testReaperTimer } from '../../../../test/support/backend-conformance';
import { MemoryBackend } from './memory';

runBackendConformance('memory', async ({ clock, maxHistory }) =>
  maxHistory === undefined
    ? new MemoryBackend({ clock, reapIntervalMs: 0 })
    : new MemoryBackend({ clock, maxHistory, reapIntervalMs: 0 }),
);

testReaperTimer('memory backend', async (clock) => new MemoryBackend({ clock, reapIntervalMs: 5 }));

test('memory backend: options are validated', () => {
  assert.throws(() => new MemoryBackend({ maxHistory: 0 }), /maxHistory/);
  assert.throws(() => new MemoryBackend({ reapIntervalMs: -1 }), /reapIntervalMs/);
});
