/**
 * Test-only: a change source that only the test fires, for a session monitor whose one trigger
 * must be the test (no watch, no polling): pass `source` in the monitor's `changes`, then
 * `deliver()` as the lock view's watch would.
 * Who may import: `*.test.ts` files.
 */
import assert from 'node:assert/strict';

export function manualChanges() {
  let listener: (() => void) | undefined;
  return {
    /** A `ChangeSource`: subscribes the monitor's listener; returns its unsubscribe. */
    source(l: () => void): () => void {
      listener = l;
      return () => {
        listener = undefined;
      };
    },
    /** Delivers one change to the subscribed listener; fails with `what` if none is subscribed. */
    deliver(what = 'the monitor subscribed'): void {
      assert.ok(listener, what);
      listener();
    },
  };
}
