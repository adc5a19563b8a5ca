/**
 * `locking_mode: strict` on PostgreSQL (issue 7 point 7): a replica cut off from the database
 * keeps its lock watch waiting (it resumes without a reset), so only the backend knows the view
 * is stale. While that lasts beyond the bound, the access checker of the replica denies
 * everything; `best_effort` keeps using the last view. When PostgreSQL is back, the view catches
 * up (a lock written by another replica applies) and access returns. Real server, halted and
 * started again; the composition is `warden start`'s (services, lock cache, AccessChecker).
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync, X509Certificate } from 'node:crypto';
import { after, describe, test } from 'node:test';
import { isWardenError, presetRoles } from '@warden/api';
import {
  AccessChecker,
  CertAuthorities,
  createAuthServer,
  createServices,
  MemoryAuditLog,
  makeIdentity,
  type NodeTarget,
  PostgresBackend,
  silentLogger,
  systemClock,
} from '@warden/server';
import { requirePostgres, startPostgres } from '@warden/testkit';
import { waitFor } from './helpers';

const check = requirePostgres();
const STALE_REASON = 'the lock view is stale and locking_mode is strict; access is denied until it recovers';

describe('strict locking on PostgreSQL', { skip: check.skip }, async () => {
  if (!check.ok) return;
  const server = await startPostgres();
  after(() => server.stop());

  test('a replica cut off from PostgreSQL beyond the bound denies in strict mode, and recovers', {
    timeout: 60_000,
  }, async (t) => {
    const clock = systemClock;
    const open = () =>
      PostgresBackend.open({
        connString: server.connString,
        schema: 'strict_locking',
        pollIntervalMs: 100,
        retryTimeoutMs: 1000,
      });
    const backend = await open();
    t.after(() => backend.close());
    const services = createServices({ backend, clock });
    const locks = services.lockCache({ retryDelayMs: 50 });
    await locks.start();
    t.after(() => locks.close());
    const checker = (lockingMode: string) =>
      new AccessChecker({
        clock,
        locks,
        role: (name) => presetRoles().find((r) => r.metadata.name === name),
        clusterSettings: () => ({ deviceTrustMode: 'off', lockingMode }),
        lockMaxStalenessMs: 500,
      });
    const strict = checker('strict');
    const bestEffort = checker('best_effort');
    const alice = makeIdentity({ user: 'alice', roles: ['access'], traits: { logins: ['alice'] } });
    const node: NodeTarget = { kind: 'node', id: 'web-1', hostname: 'web-1', labels: { env: 'test' } };
    const decide = (c: AccessChecker) => c.checkAccess(alice, node, { login: 'alice' });
    // The API's identify() on this replica, asking the strict checker (issue 15 item 6).
    const cas = await CertAuthorities.init({ backend, clusterName: 'strict', clock });
    const auth = createAuthServer({
      clock,
      backend,
      services,
      cas,
      audit: new MemoryAuditLog({ clock }),
      logger: silentLogger,
      clusterName: 'strict',
      proxyPublicAddr: 'proxy.test:3080',
      serverVersion: '0.0.0-test',
      access: strict,
    });
    const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const issued = await cas.issueUserCertificates({
      user: 'alice',
      roles: ['access'],
      logins: ['alice'],
      traits: {},
      publicKey,
      ttlMs: 3600_000,
    });
    const der = new X509Certificate(issued.tlsCert).raw;
    assert.equal((await auth.identify(der)).user, 'alice');

    assert.equal(decide(strict).allowed, true);
    assert.equal(backend.staleForMs(clock.now()), 0);

    await server.halt();
    await waitFor('strict mode to deny', () => !decide(strict).allowed);
    const denied = decide(strict);
    assert.equal(denied.allowed, false);
    assert.equal(denied.allowed === false && denied.reason, STALE_REASON);
    assert.equal(locks.healthy, true, 'the watch only waits: the backend is what knows');
    assert.ok(locks.staleForMs(clock.now()) > 500);
    assert.equal(decide(bestEffort).allowed, true, 'best_effort keeps the last view');
    await assert.rejects(auth.identify(der), (e: unknown) => {
      assert.ok(isWardenError(e, 'WARDEN_ERR_LOCK_VIEW_STALE'), String(e));
      assert.equal(e.message, STALE_REASON);
      return true;
    });

    await server.start();
    await waitFor('access to return', () => decide(strict).allowed);
    assert.equal((await auth.identify(der)).user, 'alice');
    assert.equal(backend.staleForMs(clock.now()), 0);

    // The view caught up with the database: a lock written through another replica applies.
    const other = await open();
    t.after(() => other.close());
    await createServices({ backend: other, clock }).locks.create({
      kind: 'lock',
      version: 'v2',
      metadata: { name: '0b9c5f0e-2f4e-4a57-9d51-1f6f2b9a7c11' },
      spec: { target: { user: 'alice' }, message: 'incident 7' },
    });
    await waitFor('the lock to reach this replica', () => !decide(strict).allowed);
    const locked = decide(strict);
    assert.equal(
      locked.allowed === false && locked.reason,
      'lock targeting User:"alice" is in force: incident 7',
    );
  });
});
