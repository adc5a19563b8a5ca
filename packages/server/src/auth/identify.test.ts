/**
 * Identifier's cache of verified certificates: a certificate is verified and parsed once and
 * its identity reused within its validity, while the lock check stays live (a cached identity
 * is refused by a lock like a fresh one), expiry still refuses, and other bytes are verified
 * as new (a tampered copy is refused).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { identityExtensions } from '@warden/api';
import { CLIENT_ADDR, certDer, startTestCluster } from '../../../../test/support/auth-cluster';
import { rejectsWith } from '../../../../test/support/warden-errors';
import { Identifier } from './identify';

test('a certificate is verified once and its identity reused; locks and expiry still refuse it', async () => {
  const c = await startTestCluster();
  const { totpSecret } = await c.signUp('alice', ['access', 'editor']);
  const res = await c.auth.login(c.loginRequest('alice', c.nextOtp(totpSecret!)), CLIENT_ADDR);
  const der = certDer(res.tls_cert);
  const ids = new Identifier({ clock: c.clock, backend: c.backend, services: c.services, cas: c.cas });

  const first = await ids.identify(der);
  assert.equal(first.user, 'alice');
  assert.deepEqual(first.roles, ['access', 'editor']);
  const again = await ids.identify(Buffer.from(der));
  assert.deepEqual(again, first);
  assert.equal(ids.verifications, 1, 'the second use of the certificate is not verified again');
  // Shared between uses: nobody can change what the next caller gets.
  assert.throws(() => (again.roles as string[]).push('admin'));

  // The lock check is not cached: a lock refuses the cached identity at once, by user or role.
  const lock = await c.auth.createLock(c.admin, { target: { user: 'alice' }, message: 'stolen laptop' });
  await rejectsWith(
    ids.identify(der),
    'WARDEN_ERR_LOCKED',
    'lock targeting User:"alice" is in force: stolen laptop',
  );
  await c.auth.deleteResource(c.admin, 'lock', lock.name);
  assert.equal((await ids.identify(der)).user, 'alice');
  const roleLock = await c.auth.createLock(c.admin, { target: { role: 'editor' } });
  await rejectsWith(ids.identify(der), 'WARDEN_ERR_LOCKED', 'lock targeting Role:"editor" is in force');
  await c.auth.deleteResource(c.admin, 'lock', roleLock.name);
  // `locks: 'caller'` still skips it (the caller checks), from the cache too.
  assert.equal((await ids.identify(der, { locks: 'caller' })).user, 'alice');
  assert.equal(ids.verifications, 1);

  // Other bytes are other certificates: a tampered copy is verified, and refused.
  const tampered = Buffer.from(der);
  tampered[tampered.length - 1]! ^= 0x01;
  await rejectsWith(ids.identify(tampered), 'WARDEN_ERR_BAD_CERTIFICATE', /not signed by the user CA/);
  assert.equal(ids.verifications, 2);

  // Past its end the cached identity is not used: the certificate is expired.
  c.clock.set(Date.parse(res.expires) + 1000);
  await rejectsWith(ids.identify(der), 'WARDEN_ERR_BAD_CERTIFICATE', /expired/);
});

test('the admin identity is verified once, but asked for as the current one on every use: a replaced one stops working at once', async () => {
  const c = await startTestCluster();
  const ids = new Identifier({ clock: c.clock, backend: c.backend, services: c.services, cas: c.cas });
  const first = await c.auth.issueAdminIdentity();
  assert.equal((await ids.identify(certDer(first.certPem))).admin, true);
  assert.equal((await ids.identify(certDer(first.certPem))).admin, true);
  assert.equal(ids.verifications, 1, 'the second use is not verified and parsed again');
  // Replaced: refused at the next use, although its verification is remembered.
  const second = await c.auth.issueAdminIdentity({ replaces: first.certPem });
  await rejectsWith(ids.identify(certDer(first.certPem)), 'WARDEN_ERR_BAD_CERTIFICATE', /not valid any more/);
  assert.equal(ids.verifications, 1);
  // The new one works; a tampered copy of it is verified as new, and refused.
  assert.equal((await ids.identify(certDer(second.certPem))).admin, true);
  const tampered = Buffer.from(certDer(second.certPem));
  tampered[tampered.length - 1]! ^= 0x01;
  await rejectsWith(ids.identify(tampered), 'WARDEN_ERR_BAD_CERTIFICATE', /not signed by the user CA/);
  // Past its end the remembered verification is not used: the certificate is expired.
  c.clock.set(second.expires.getTime() + 1000);
  await rejectsWith(ids.identify(certDer(second.certPem)), 'WARDEN_ERR_BAD_CERTIFICATE', /expired/);
});

test('a database certificate works only where databases are served, with its route; a login certificate does not work there', async () => {
  const c = await startTestCluster();
  const { totpSecret } = await c.signUp('alice', ['access']);
  const res = await c.auth.login(c.loginRequest('alice', c.nextOtp(totpSecret!)), CLIENT_ADDR);
  const login = certDer(res.tls_cert);
  const ids = new Identifier({ clock: c.clock, backend: c.backend, services: c.services, cas: c.cas });
  const alice = await ids.identify(login);
  const { publicKey } = (await import('node:crypto')).generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const route = { db: 'orders', dbUser: 'alice', dbName: 'orders' };
  const issued = await c.cas.issueDbCert({
    identity: { user: 'alice', roles: [...alice.roles], logins: [], traits: {}, db: route },
    publicKey,
    notAfter: new Date(Date.parse(res.expires)),
  });
  const dbCert = certDer(issued.certPem);
  const who = await ids.identifyDb(dbCert);
  assert.equal(who.identity.user, 'alice');
  assert.deepEqual(who.db, route);
  // Anywhere else (API, tunnels) it is refused; and a login certificate is no database certificate.
  await rejectsWith(ids.identify(dbCert), 'WARDEN_ERR_BAD_CERTIFICATE', /database certificate for "orders"/);
  await rejectsWith(ids.identifyDb(login), 'WARDEN_ERR_BAD_CERTIFICATE', /not a database certificate/);
  // Locks refuse it like a login certificate, from the cache too.
  const lock = await c.auth.createLock(c.admin, { target: { user: 'alice' }, message: 'stolen laptop' });
  await rejectsWith(ids.identifyDb(dbCert), 'WARDEN_ERR_LOCKED', /stolen laptop/);
  await c.auth.deleteResource(c.admin, 'lock', lock.name);
  // One route per certificate: the codec refuses both at once.
  assert.throws(
    () =>
      identityExtensions({
        user: 'alice',
        roles: [],
        logins: [],
        traits: {},
        db: route,
        app: { app: 'grafana', publicAddr: 'g.example.com', sessionId: 's' },
      }),
    /one route per certificate/,
  );
});
