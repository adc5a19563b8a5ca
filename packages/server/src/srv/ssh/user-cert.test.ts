import assert from 'node:assert/strict';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { before, test } from 'node:test';
import {
  isWardenError,
  parseSshCertificate,
  SshDeviceExtensions,
  SshIdentityExtensions,
  signSshCertificate,
  sshSign,
} from '@warden/api';
import { MemoryBackend } from '../../backend';
import { CertAuthorities } from '../../ca';
import { FakeClock } from '../../clock';
import {
  certHolder,
  isCertificateAlgorithm,
  verifyClientSignature,
  verifyUserCertificate,
} from './user-cert';

const clock = new FakeClock(Date.UTC(2026, 0, 1, 12));
let cas: CertAuthorities;
let otherCas: CertAuthorities;
let userKey: KeyObject;

before(async () => {
  cas = await CertAuthorities.init({ backend: new MemoryBackend({ clock }), clusterName: 'warden', clock });
  otherCas = await CertAuthorities.init({
    backend: new MemoryBackend({ clock }),
    clusterName: 'warden',
    clock,
  });
  userKey = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
});

async function certFor(ca: CertAuthorities, extra: { device?: boolean } = {}) {
  const { sshCert } = await ca.issueUserCertificates({
    user: 'alice',
    roles: ['access'],
    logins: ['root', 'alice'],
    traits: { logins: ['root', 'alice'] },
    publicKey: userKey,
    ttlMs: 3600_000,
    ...(extra.device && { device: { deviceId: 'dev-1', assetTag: 'tag-1', credentialId: 'cred-1' } }),
  });
  return parseSshCertificate(sshCert);
}

function rejected(fn: () => unknown, message: RegExp): void {
  assert.throws(fn, (e) => {
    assert.ok(isWardenError(e, 'WARDEN_ERR_BAD_CERTIFICATE'), String(e));
    assert.match(e.message, message);
    return true;
  });
}

test('a Warden user certificate gives user, roles, traits, principals and extensions', async () => {
  const cert = await certFor(cas);
  const { holder } = verifyUserCertificate(cas, cert.algorithm, cert.blob, clock.now());
  assert.equal(holder.user, 'alice');
  assert.deepEqual(holder.roles, ['access']);
  assert.deepEqual(holder.traits, { logins: ['root', 'alice'] });
  assert.deepEqual(holder.principals, ['root', 'alice']);
  assert.equal(holder.device, undefined);
  assert.ok('permit-pty' in holder.extensions);
  assert.equal(holder.expiresAt, Number(cert.validBefore) * 1000);
});

test('device extensions are carried', async () => {
  const cert = await certFor(cas, { device: true });
  const { holder } = verifyUserCertificate(cas, cert.algorithm, cert.blob, clock.now());
  assert.deepEqual(holder.device, { deviceId: 'dev-1', assetTag: 'tag-1', credentialId: 'cred-1' });
});

test('refused: plain keys, another CA, expired, not yet valid, tampered, mismatched algorithm', async () => {
  const cert = await certFor(cas);
  assert.ok(isCertificateAlgorithm(cert.algorithm));
  assert.ok(!isCertificateAlgorithm('ecdsa-sha2-nistp256'));
  rejected(() => verifyUserCertificate(cas, 'ecdsa-sha2-nistp256', cert.blob, clock.now()), /plain key/);
  const foreign = await certFor(otherCas);
  rejected(
    () => verifyUserCertificate(cas, foreign.algorithm, foreign.blob, clock.now()),
    /not signed by a trusted certificate authority/,
  );
  rejected(
    () => verifyUserCertificate(cas, cert.algorithm, cert.blob, clock.now() + 2 * 3600_000),
    /expired/,
  );
  rejected(
    () => verifyUserCertificate(cas, cert.algorithm, cert.blob, clock.now() - 3600_000),
    /not yet valid/,
  );
  const tampered = Buffer.from(cert.blob);
  const at = tampered.indexOf(Buffer.from('alice'));
  tampered[at] = 'm'.charCodeAt(0); // key ID alice → mlice
  rejected(() => verifyUserCertificate(cas, cert.algorithm, tampered, clock.now()), /signature is invalid/);
  rejected(
    () => verifyUserCertificate(cas, 'ssh-ed25519-cert-v01@openssh.com', cert.blob, clock.now()),
    /says/,
  );
  rejected(() => verifyUserCertificate(cas, cert.algorithm, cert.blob.subarray(0, 40), clock.now()), /parse/);
});

test('a host certificate signed by another CA, or without Warden extensions, is refused', async () => {
  const caKey = generateKeyPairSync('ed25519').privateKey;
  const plain = signSshCertificate(
    {
      publicKey: userKey,
      type: 'user',
      keyId: 'alice',
      validPrincipals: ['root'],
      validAfter: 0n,
      validBefore: 4_000_000_000n,
      extensions: { 'permit-pty': '' },
    },
    caKey,
  );
  assert.throws(() => certHolder(plain), /no roles extension/);
  const badRoles = signSshCertificate(
    {
      publicKey: userKey,
      type: 'user',
      keyId: 'alice',
      validPrincipals: ['root'],
      validAfter: 0n,
      validBefore: 4_000_000_000n,
      extensions: { [SshIdentityExtensions.roles]: '{"a":1}', [SshIdentityExtensions.traits]: '{}' },
    },
    caKey,
  );
  assert.throws(() => certHolder(badRoles), /not a list of role names/);
  const badTraits = signSshCertificate(
    {
      publicKey: userKey,
      type: 'user',
      keyId: 'alice',
      validPrincipals: ['root'],
      validAfter: 0n,
      validBefore: 4_000_000_000n,
      extensions: {
        [SshIdentityExtensions.roles]: '["access"]',
        [SshIdentityExtensions.traits]: '{"logins":"root"}',
        [SshDeviceExtensions.deviceId]: 'dev-1',
      },
    },
    caKey,
  );
  assert.throws(() => certHolder(badTraits), /traits extension/);
});

test('the client signature must be by the certified key over the signed data', async () => {
  const cert = await certFor(cas);
  const data = Buffer.from('session id and userauth request');
  assert.ok(verifyClientSignature(cert, data, sshSign(userKey, data)));
  assert.ok(!verifyClientSignature(cert, Buffer.from('other data'), sshSign(userKey, data)));
  const otherKey = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
  assert.ok(!verifyClientSignature(cert, data, sshSign(otherKey, data)));
  assert.ok(!verifyClientSignature(cert, data, Buffer.from('garbage')));
});
