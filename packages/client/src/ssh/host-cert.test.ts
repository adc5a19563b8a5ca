import assert from 'node:assert/strict';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { test } from 'node:test';
import { encodeSshPublicKey, formatAuthorizedKey, isWardenError, signSshCertificate } from '@warden/api';
import { hostCaKeys, verifyHostCertificate } from './host-cert';

const ca = generateKeyPairSync('ed25519');
const hostKey = generateKeyPairSync('ed25519');
const NOW = Date.UTC(2026, 0, 1);
const sec = (ms: number) => BigInt(Math.floor(ms / 1000));

function cert(
  over: { type?: 'user' | 'host'; principals?: string[]; caKey?: KeyObject; from?: number; to?: number } = {},
) {
  return signSshCertificate(
    {
      publicKey: hostKey.publicKey,
      type: over.type ?? 'host',
      keyId: 'node1',
      validPrincipals: over.principals ?? ['node1', 'node1.example'],
      validAfter: sec(over.from ?? NOW - 60_000),
      validBefore: sec(over.to ?? NOW + 3600_000),
    },
    over.caKey ?? ca.privateKey,
  ).blob;
}

const check = { caKeys: [ca.publicKey], principals: ['node1'], now: NOW, nodeName: 'node1' };

function refused(fn: () => unknown, re: RegExp): void {
  assert.throws(fn, (e: unknown) => isWardenError(e, 'WARDEN_ERR_BAD_CERTIFICATE') && re.test(e.message));
}

test('hostCaKeys reads the @cert-authority lines of known_hosts', () => {
  const line = formatAuthorizedKey(ca.publicKey, 'type=host');
  const keys = hostCaKeys(
    `# comment\nhost1 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ\n@cert-authority *.example,example ${line}\n`,
  );
  assert.equal(keys.length, 1);
  assert.ok(encodeSshPublicKey(keys[0]!).equals(encodeSshPublicKey(ca.publicKey)));
  assert.deepEqual(hostCaKeys(''), []);
});

test('hostCaKeys refuses a malformed @cert-authority line', () => {
  refused(() => hostCaKeys('@cert-authority *.example'), /malformed @cert-authority line/);
  refused(() => hostCaKeys('@cert-authority * ssh-ed25519 !!!'), /./);
});

test('a host certificate from the CA that names the node is accepted', () => {
  const c = verifyHostCertificate(cert(), check);
  assert.equal(c.keyId, 'node1');
  assert.ok(verifyHostCertificate(cert(), { ...check, principals: ['other', 'node1.example'] }));
});

test('refuses a plain host key', () => {
  refused(
    () => verifyHostCertificate(encodeSshPublicKey(hostKey.publicKey), check),
    /node "node1": it presented a plain ssh-ed25519 host key/,
  );
  refused(() => verifyHostCertificate(Buffer.alloc(2), check), /plain unknown host key/);
});

test('refuses a certificate from another CA', () => {
  const other = generateKeyPairSync('ed25519');
  refused(
    () => verifyHostCertificate(cert({ caKey: other.privateKey }), check),
    /not signed by a trusted certificate authority/,
  );
});

test('refuses a user certificate presented as a host certificate', () => {
  refused(
    () => verifyHostCertificate(cert({ type: 'user' }), check),
    /user certificate used as a host certificate/,
  );
});

test('refuses a certificate outside its validity window', () => {
  refused(() => verifyHostCertificate(cert({ to: NOW - 1000 }), check), /expired/);
  refused(() => verifyHostCertificate(cert({ from: NOW + 60_000 }), check), /not yet valid/);
});

test('refuses a certificate for other names, and one with no principals', () => {
  refused(
    () => verifyHostCertificate(cert(), { ...check, principals: ['node2', ''], nodeName: 'node2' }),
    /is for \["node1","node1\.example"\], not "node2"$/,
  );
  refused(() => verifyHostCertificate(cert({ principals: [] }), check), /is for \[\]/);
});

test('refuses when no CA is known, and a truncated certificate', () => {
  refused(() => verifyHostCertificate(cert(), { ...check, caKeys: [] }), /no host CA/);
  refused(() => verifyHostCertificate(cert().subarray(0, 120), check), /host certificate rejected/);
});
