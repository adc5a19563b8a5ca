/**
 * Test-only: what the validation tests of each resource kind share — a builder of resources of
 * one kind, and the check that a resource is refused as a bad resource with the field named.
 * Who may import: `*.test.ts` files.
 *
 * @example
 *   const db = resourceOf('db', 'v3', 'orders');
 *   assertBadResource(db({ protocol: 'oracle', uri: 'h:1' }), /protocol: expected/);
 */
import assert from 'node:assert/strict';
import { isWardenError, validateResource } from '@warden/api';

/** Builds `{ kind, version, metadata: { name, ...metadata }, spec: { ...specDefaults, ...spec } }`. */
export function resourceOf(
  kind: string,
  version: string,
  name: string,
  specDefaults: Record<string, unknown> = {},
) {
  return (spec: Record<string, unknown>, metadata: Record<string, unknown> = {}) => ({
    kind,
    version,
    metadata: { name, ...metadata },
    spec: { ...specDefaults, ...spec },
  });
}

/**
 * `validateResource(value)` throws WARDEN_ERR_BAD_RESOURCE with a message equal to `message`
 * (a string) or matching it (a RegExp).
 */
export function assertBadResource(value: unknown, message: string | RegExp): void {
  assert.throws(
    () => validateResource(value),
    (e) => {
      assert.ok(isWardenError(e, 'WARDEN_ERR_BAD_RESOURCE'), String(e));
      if (typeof message === 'string') assert.equal(e.message, message);
      else assert.match(e.message, message);
      return true;
    },
  );
}
