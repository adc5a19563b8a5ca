/**
 * Test-only: counts how often a zod schema runs its checks, for the tests that prove a check
 * was compiled ahead (at start-up) rather than in the first request's path — counted, not timed.
 * Who may import: `*.test.ts` files.
 */

type Runnable = { _zod: { run: (...args: unknown[]) => unknown } };

/** Wraps `schema`'s run (zod 4's internal `_zod.run`) so that `count` grows with each run. */
export function countRuns(schema: unknown): { count: number } {
  const z = (schema as Runnable)._zod;
  const counter = { count: 0 };
  const run = z.run;
  z.run = (...args) => {
    counter.count++;
    return run(...args);
  };
  return counter;
}
