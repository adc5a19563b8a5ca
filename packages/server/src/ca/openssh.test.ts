import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { test } from 'node:test';
import { isWardenError, parseSshCertificate, verifySshCertificate } from '@warden/api';
import { MemoryBackend } from '../backend';
import { FakeClock } from '../clock';
import { CertAuthorities, OPENSSH_SESSION_CERT_VALIDITY_MS } from './authorities';

// The per-session certificates the proxy logs in to agentless nodes with (issue 15 item 14).
test('openssh session certificates: openssh CA only, principal = login, one minute, permit-* only', async () => {
  const clock = new FakeClock(Date.UTC(2026, 0, 1));
  const cas = await CertAuthorities.init({
    backend: new MemoryBackend({ clock, reapIntervalMs: 0 }),
    clusterName: 'example',
    clock,
  });
  assert.ok(cas.types().includes('openssh'), 'created at first start with the others');
  assert.match(cas.exportUserLine('openssh'), /^ssh-ed25519 AAAA\S+ type=openssh$/);
  const { publicKey } = generateKeyPairSync('ed25519');
  const line = cas.issueOpenSshSessionCert({
    publicKey,
    login: 'root',
    user: 'alice',
    sessionId: 's-1',
    extensions: ['permit-pty', 'permit-port-forwarding', 'warden-roles', 'no-such-thing'],
  });
  const cert = parseSshCertificate(line);
  assert.equal(cert.type, 'user');
  assert.deepEqual(cert.validPrincipals, ['root']);
  assert.equal(cert.keyId, 'alice session s-1');
  assert.deepEqual(Object.keys(cert.extensions).sort(), ['permit-port-forwarding', 'permit-pty']);
  assert.deepEqual(cert.criticalOptions, {});
  assert.equal(Number(cert.validBefore - cert.validAfter) * 1000, OPENSSH_SESSION_CERT_VALIDITY_MS);
  assert.ok(OPENSSH_SESSION_CERT_VALIDITY_MS <= 60_000);
  const now = clock.now();
  verifySshCertificate(cert, cas.sshPublicKeys('openssh'), { now, type: 'user', principal: 'root' });
  // Not the user CA's: a node trusting only the user CA refuses it, and the other way round.
  assert.throws(() => verifySshCertificate(cert, cas.sshPublicKeys('user'), { now, type: 'user' }));
  // Expired a minute later.
  assert.throws(() =>
    verifySshCertificate(cert, cas.sshPublicKeys('openssh'), { now: now + 60_000, type: 'user' }),
  );
  for (const login of ['', 'a,b', 'a b', 'x\u0007']) {
    assert.throws(
      () => cas.issueOpenSshSessionCert({ publicKey, login, user: 'alice', sessionId: 's' }),
      (e) => isWardenError(e, 'WARDEN_ERR_BAD_PARAMETER'),
      JSON.stringify(login),
    );
  }
});
