import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Stopwatch } from './steps';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('Stopwatch: device time overlapped by a server phase is not counted as the device alone', async () => {
  const w = new Stopwatch();
  // 30 ms of device work, of which the first ~20 ms overlap an RPC.
  await Promise.all([w.device(() => sleep(30)), w.server(() => sleep(20))]);
  await w.device(() => sleep(10));
  const t = w.timings;
  assert.ok(t.deviceMs >= 38, JSON.stringify(t));
  assert.ok(t.serverMs >= 18, JSON.stringify(t));
  // Alone: the ~10 ms after the RPC ended plus the last 10 ms — well under the 40 ms in all.
  assert.ok(t.deviceOnlyMs >= 15 && t.deviceOnlyMs < t.deviceMs - 10, JSON.stringify(t));
});

test('Stopwatch: phases one after the other count whole', async () => {
  const w = new Stopwatch();
  await w.device(() => sleep(10));
  await w.server(() => sleep(10));
  assert.equal(w.timings.deviceOnlyMs, w.timings.deviceMs);
});
