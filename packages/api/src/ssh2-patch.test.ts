import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { PassThrough } from 'node:stream';
import { test } from 'node:test';
import ssh2 from 'ssh2';
import { formatSshCertificate, signSshCertificate } from './certs';
import { isWardenError } from './errors';
import { certificateKey, HOST_CERT_ALGORITHMS, offerOnlyHostCertificates } from './ssh2-patch';

const ca = generateKeyPairSync('ed25519');
const user = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });

function certLine(publicKey = user.publicKey): string {
  const now = BigInt(Math.floor(Date.now() / 1000));
  return formatSshCertificate(
    signSshCertificate(
      {
        publicKey,
        type: 'user',
        keyId: 'alice',
        validPrincipals: ['root'],
        validAfter: now - 60n,
        validBefore: now + 3600n,
      },
      ca.privateKey,
    ),
  );
}

test('the certificate key looks like a parsed private key whose public half is the certificate', () => {
  const key = certificateKey(user.privateKey, certLine());
  const k = key.ssh2Key as {
    type: string;
    getPublicSSH(): Buffer;
    isPrivateKey(): boolean;
    sign(d: Buffer): unknown;
  };
  // ssh2 takes it as already parsed (it returns parsed keys unchanged).
  assert.equal(ssh2.utils.parseKey(k as never), k);
  assert.equal(k.type, 'ecdsa-sha2-nistp256-cert-v01@openssh.com');
  assert.ok(k.getPublicSSH().equals(key.certificate.blob));
  assert.equal(k.isPrivateKey(), true);
  // Signing through ssh2's own path would produce a signature sshd rejects: it refuses instead.
  assert.ok(k.sign(Buffer.from('x')) instanceof Error);
});

test('a certificate for another key is refused', () => {
  const other = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  assert.throws(
    () => certificateKey(user.privateKey, certLine(other.publicKey)),
    (e: unknown) => isWardenError(e, 'WARDEN_ERR_BAD_CERTIFICATE') && /not for this key/.test(e.message),
  );
  assert.throws(
    () => certificateKey(user.privateKey, certLine(other.publicKey), 'run `wsh login` again'),
    (e: unknown) => isWardenError(e, 'WARDEN_ERR_BAD_CERTIFICATE') && e.message === 'run `wsh login` again',
  );
  assert.throws(
    () => certificateKey(user.privateKey, 'ssh-ed25519 AAAA'),
    (e: unknown) => isWardenError(e),
  );
});

test('the client offers only host certificate algorithms', () => {
  const client = new ssh2.Client();
  client.on('error', () => {});
  const sock = new PassThrough();
  client.connect({ sock: sock as never, username: 'x' });
  offerOnlyHostCertificates(client);
  const offer = (
    client as unknown as {
      _protocol: { _offer: { lists: { serverHostKey: { array: string[] }; kex: { array: string[] } } } };
    }
  )._protocol._offer;
  assert.deepEqual(offer.lists.serverHostKey.array, [...HOST_CERT_ALGORITHMS]);
  assert.ok(offer.lists.kex.array.includes('kex-strict-c-v00@openssh.com'), 'other lists are kept');
  client.end();
  sock.destroy();
});

test('patching a client that never connected fails loudly', () => {
  assert.throws(() => offerOnlyHostCertificates(new ssh2.Client()), /ssh2 library is not the version/);
});
