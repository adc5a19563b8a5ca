/**
 * Test-only: what the `decideAccess` tests of every protocol (packages/server/src/access/check*.test.ts)
 * build their cases from — a fixed "now", a role from its spec, and the live policy around a
 * decision (no locks, best-effort locking, cluster device trust off unless overridden).
 * Who may import: `*.test.ts` files.
 */
import type { RoleResource } from '@warden/api';
import type { AccessPolicy } from '@warden/server';

export const NOW = Date.UTC(2026, 0, 1, 12);

export function role(name: string, spec: Partial<RoleResource['spec']>): RoleResource {
  return {
    kind: 'role',
    version: 'v7',
    metadata: { name },
    spec: { options: {}, allow: {}, deny: {}, ...spec },
  };
}

export function policy(over: Partial<AccessPolicy> = {}): AccessPolicy {
  return {
    locks: [],
    lockViewStaleForMs: 0,
    lockingMode: 'best_effort',
    lockMaxStalenessMs: 300_000,
    clusterDeviceTrustMode: 'off',
    now: NOW,
    ...over,
  };
}
