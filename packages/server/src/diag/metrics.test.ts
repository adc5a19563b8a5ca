import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { createMetrics, EVENT_LOOP_SAMPLE_MS } from './metrics';

test('the event-loop delay is sampled every EVENT_LOOP_SAMPLE_MS, not every 10 ms (an idle warden woke 100 times a second)', async () => {
  const metrics = createMetrics();
  await metrics.render(); // starts a fresh histogram window
  await sleep(EVENT_LOOP_SAMPLE_MS * 3.5);
  const text = await metrics.render();
  // Node records the time between two samples: the smallest one is the sampling interval.
  const min = Number(/^nodejs_eventloop_lag_min_seconds (\S+)$/m.exec(text)?.[1]);
  assert.ok(min * 1000 >= EVENT_LOOP_SAMPLE_MS * 0.9, `shortest sample interval ${min * 1000} ms`);
  assert.ok(EVENT_LOOP_SAMPLE_MS >= 100);
});
