import assert from 'node:assert/strict';
import { test } from 'node:test';
import { watchEventLoopStalls } from './stall';

function recorder() {
  const lines: { o: Record<string, unknown>; m: string | undefined }[] = [];
  return {
    lines,
    logger: { warn: (o: object, m?: string) => lines.push({ o: o as Record<string, unknown>, m }) },
  };
}

test('a blocked event loop is logged with how long it was blocked', async () => {
  const { lines, logger } = recorder();
  const stop = watchEventLoopStalls(logger, { intervalMs: 20, thresholdMs: 150 });
  try {
    await new Promise((r) => setTimeout(r, 30));
    const until = performance.now() + 300;
    while (performance.now() < until) {
      // busy: the loop cannot run
    }
    await new Promise((r) => setTimeout(r, 60));
  } finally {
    stop();
  }
  // The 300 ms of busy work is one stall of about 280 ms (a loaded machine may add others).
  const long = lines.filter((l) => (l.o.stalled_ms as number) >= 250);
  assert.equal(long.length, 1, JSON.stringify(lines));
  assert.match(long[0]!.m ?? '', /event loop was blocked/);
});

test('a loop that keeps running logs nothing', async () => {
  const { lines, logger } = recorder();
  const stop = watchEventLoopStalls(logger, { intervalMs: 10, thresholdMs: 1000 });
  await new Promise((r) => setTimeout(r, 120));
  stop();
  assert.deepEqual(lines, []);
});
