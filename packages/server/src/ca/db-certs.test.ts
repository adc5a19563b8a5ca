import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { test } from 'node:test';
import { isWardenError } from '@warden/api';
import { needs, run, tempDir } from '../../../../test/support/system-tools';
import { MemoryBackend } from '../backend';
import { FakeClock } from '../clock';
import { CertAuthorities } from './authorities';

const openssl = needs('openssl');
const T0 = Date.UTC(2026, 0, 1);
const HOUR = 3_600_000;
const attime = (ms: number) => String(Math.floor(ms / 1000));

async function setup() {
  const clock = new FakeClock(T0);
  const backend = new MemoryBackend({ clock, reapIntervalMs: 0 });
  const cas = await CertAuthorities.init({ backend, clusterName: 'example', clock });
  return { backend, cas };
}

test('db client certificates: CN = db user, clientAuth, verified by the db CA only', openssl, async () => {
  const { backend, cas } = await setup();
  const tmp = tempDir();
  try {
    const key = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const { certPem, notAfter } = await cas.issueDbClientCert({
      dbUser: 'app_reader',
      publicKey: key.publicKey,
      ttlMs: HOUR,
    });
    assert.equal(notAfter.getTime(), T0 + HOUR);
    writeFileSync(tmp.path('db-ca.pem'), cas.tlsCertPems('db')[0]!);
    writeFileSync(tmp.path('user-ca.pem'), cas.tlsCertPems('user')[0]!);
    writeFileSync(tmp.path('c.pem'), certPem);
    const verify = (ca: string, purpose: string) =>
      run('openssl', [
        'verify',
        '-attime',
        attime(T0 + 60_000),
        '-purpose',
        purpose,
        '-CAfile',
        tmp.path(ca),
        tmp.path('c.pem'),
      ]);
    assert.equal(verify('db-ca.pem', 'sslclient').status, 0, verify('db-ca.pem', 'sslclient').stderr);
    assert.notEqual(verify('user-ca.pem', 'sslclient').status, 0);
    assert.notEqual(verify('db-ca.pem', 'sslserver').status, 0);
    const text = run('openssl', ['x509', '-noout', '-text', '-in', tmp.path('c.pem')]).stdout;
    assert.match(text, /Subject: CN = app_reader, O = example/);
    assert.match(text, /Issuer: CN = example, O = example, OU = warden db CA/);
  } finally {
    tmp.cleanup();
    await backend.close();
  }
});

test('db server certificates: SANs, serverAuth, from the db CA', openssl, async () => {
  const { backend, cas } = await setup();
  const tmp = tempDir();
  try {
    const key = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const { certPem } = await cas.issueDbServerCert({
      dnsNames: ['db-1.internal'],
      ipAddresses: ['127.0.0.1'],
      publicKey: key.publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    });
    writeFileSync(tmp.path('db-ca.pem'), cas.tlsCertPems('db')[0]!);
    writeFileSync(tmp.path('s.pem'), certPem);
    const v = run('openssl', [
      'verify',
      '-attime',
      attime(T0 + HOUR),
      '-purpose',
      'sslserver',
      '-CAfile',
      tmp.path('db-ca.pem'),
      tmp.path('s.pem'),
    ]);
    assert.equal(v.status, 0, v.stderr);
    const text = run('openssl', ['x509', '-noout', '-text', '-in', tmp.path('s.pem')]).stdout;
    assert.match(text, /DNS:db-1.internal, IP Address:127.0.0.1/);
    assert.match(text, /TLS Web Server Authentication/);
  } finally {
    tmp.cleanup();
    await backend.close();
  }
});

test('db certificates refuse empty users, control characters, no names and long lifetimes', async () => {
  const { backend, cas } = await setup();
  try {
    const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const bad = (e: unknown) => isWardenError(e, 'WARDEN_ERR_BAD_PARAMETER');
    await assert.rejects(cas.issueDbClientCert({ dbUser: '', publicKey, ttlMs: HOUR }), bad);
    await assert.rejects(cas.issueDbClientCert({ dbUser: 'a\nb', publicKey, ttlMs: HOUR }), bad);
    await assert.rejects(cas.issueDbClientCert({ dbUser: 'a', publicKey, ttlMs: 0 }), bad);
    await assert.rejects(cas.issueDbClientCert({ dbUser: 'a', publicKey, ttlMs: 8 * 24 * HOUR }), bad);
    await assert.rejects(cas.issueDbServerCert({ publicKey }), bad);
    await assert.rejects(cas.issueDbClientCert({ dbUser: 'a', publicKey: 'nope', ttlMs: HOUR }), bad);
  } finally {
    await backend.close();
  }
});
