/**
 * Test-only assertions on WardenErrors: the code (what clients decide by) always, the message
 * when given (exact for a string, a match for a RegExp).
 * Who may import: `*.test.ts` files.
 */
import assert from 'node:assert/strict';
import { type ErrorCode, isWardenError } from '@warden/api';

/** A validator for `assert.rejects`: a WardenError with this code (and message). */
export function refusedWith(message: string | RegExp | undefined, code: ErrorCode) {
  return (e: unknown): true => {
    assert.ok(isWardenError(e), `expected a WardenError, got ${String(e)}`);
    assert.equal(e.code, code, `code of "${e.message}"`);
    if (typeof message === 'string') assert.equal(e.message, message);
    else if (message) assert.match(e.message, message);
    return true;
  };
}

/** Awaits `p`, which must reject with a WardenError of this code (and message); returns it. */
export async function rejectsWith(
  p: Promise<unknown>,
  code: ErrorCode,
  message?: string | RegExp,
): Promise<Error> {
  let caught: unknown;
  await assert.rejects(p, (e) => {
    caught = e;
    return refusedWith(message, code)(e);
  });
  return caught as Error;
}
