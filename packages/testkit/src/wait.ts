/**
 * Waiting for something a test cannot be told about: polls, and fails with what it saw.
 *
 * @example
 *   const m = await waitForText(session.stdout, /port (\d+)/);
 *   await waitUntil('the lock to reach replica b', async () => (await locksOn(b)).length > 0);
 */

/** Polls `read()` every 25 ms until `re` matches it; fails after `timeoutMs` showing the text. */
export async function waitForText(
  read: () => string,
  re: RegExp,
  timeoutMs = 15_000,
): Promise<RegExpExecArray> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const m = re.exec(read());
    if (m) return m;
    if (Date.now() > until) throw new Error(`timed out waiting for ${re}; got:\n${read()}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/**
 * Polls `check` every `everyMs` until it gives something truthy, and returns that; fails after
 * `timeoutMs` with `what` (a function is asked at the time: e.g. for a log so far).
 */
export async function waitUntil<T>(
  what: string | (() => string),
  check: () => T | Promise<T>,
  timeoutMs = 20_000,
  everyMs = 50,
): Promise<NonNullable<T>> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v as NonNullable<T>;
    if (Date.now() > until) {
      throw new Error(`timed out waiting for ${typeof what === 'string' ? what : what()}`);
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
