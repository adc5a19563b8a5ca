/**
 * The SSH client against a real OpenSSH sshd: user-certificate login (ssh2 patched to sign
 * with a certificate key) and host-certificate verification (wrong CA, wrong principal,
 * expired, plain host key and unknown login are refused with clear errors).
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { PassThrough } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { isWardenError } from '@warden/api';
import { runSession } from '@warden/client';
import { requireTool } from '@warden/testkit';
import { type Sshd, startSshd } from './sshd-fixture';

const sshd = requireTool('sshd');
const keygen = requireTool('ssh-keygen');
const skip = sshd.skip || keygen.skip;

async function output(node: Sshd, command: string): Promise<{ code: number; out: string }> {
  const ssh = await node.connect();
  try {
    const stdout = new PassThrough();
    let out = '';
    stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    const stdin = new PassThrough();
    stdin.end();
    const code = await runSession(ssh, { command }, { stdin, stdout, stderr: new PassThrough() });
    return { code, out };
  } finally {
    ssh.end();
  }
}

describe('SSH client against a real sshd (ed25519 host certificate)', { skip }, () => {
  let node: Sshd;
  before(async () => {
    node = await startSshd();
  });
  after(async () => {
    await node?.stop();
  });

  test('logs in with the user certificate and verifies the host certificate', async () => {
    const ssh = await node.connect();
    try {
      assert.equal(ssh.hostCertificate.type, 'host');
      assert.equal(ssh.hostCertificate.keyId, 'node1');
      assert.deepEqual(ssh.hostCertificate.validPrincipals, ['node1', 'node1.example']);
    } finally {
      ssh.end();
    }
    // sshd accepted a certificate (not a plain key) signed by the user CA.
    await node.waitForLog(
      /Accepted publickey for \S+ from 127\.0\.0\.1 port \d+ ssh2: ECDSA-CERT .* ID alice/,
    );
    const { code, out } = await output(node, 'whoami');
    assert.equal(code, 0);
    assert.equal(out.trim(), node.login);
  });

  test('a principal listed as <name>.<cluster> also matches', async () => {
    const ssh = await node.connect({ hostPrincipals: ['elsewhere', 'node1.example'] });
    ssh.end();
  });

  test('refuses a host certificate from another CA', async () => {
    const other = generateKeyPairSync('ed25519').publicKey;
    await assert.rejects(node.connect({ hostCaKeys: [other] }), (e: unknown) => {
      assert.ok(isWardenError(e, 'WARDEN_ERR_BAD_CERTIFICATE'));
      assert.match(
        e.message,
        /refusing to connect to node "node1": host certificate rejected: not signed by a trusted certificate authority/,
      );
      return true;
    });
  });

  test('refuses a host certificate for another host name', async () => {
    await assert.rejects(node.connect({ hostPrincipals: ['node2'], nodeName: 'node2' }), (e: unknown) => {
      assert.ok(isWardenError(e, 'WARDEN_ERR_BAD_CERTIFICATE'));
      assert.match(
        e.message,
        /node "node2": its host certificate is for \["node1","node1\.example"\], not "node2"/,
      );
      return true;
    });
  });

  test('refuses an expired host certificate', async () => {
    await assert.rejects(
      node.connect({ now: () => Date.now() + 2 * 3600_000 }),
      /host certificate rejected: expired/,
    );
  });

  test('refuses when no host CA is known', async () => {
    await assert.rejects(node.connect({ hostCaKeys: [] }), /has no host CA/);
  });

  test('a login that is not in the user certificate is refused by sshd', async () => {
    const cert = node.signUserCert([], ['someone-else']);
    await assert.rejects(node.connect({ sshCert: cert }), (e: unknown) => {
      assert.ok(isWardenError(e, 'WARDEN_ERR_ACCESS_DENIED'));
      assert.match(e.message, /node "node1" refused your certificate for login/);
      return true;
    });
  });

  test('a certificate for another key is refused before connecting', async () => {
    const otherKey = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
    await assert.rejects(
      node.connect({ keyPem: otherKey.export({ type: 'pkcs8', format: 'pem' }).toString() }),
      /not for your key/,
    );
  });
});

describe('SSH client against a real sshd (ECDSA host certificate)', { skip }, () => {
  test('verifies an ecdsa-sha2-nistp256 host certificate', async () => {
    const node = await startSshd({ hostKeyType: 'ecdsa' });
    try {
      const ssh = await node.connect();
      assert.equal(ssh.hostCertificate.algorithm, 'ecdsa-sha2-nistp256-cert-v01@openssh.com');
      ssh.end();
      // sshd logs the login after the client saw it succeed: wait for the line, don't race it.
      await node.waitForLog(/Accepted publickey for .* ECDSA-CERT/);
    } finally {
      await node.stop();
    }
  });
});

describe('SSH client against a real sshd (plain host key)', { skip }, () => {
  test('refuses a node that has no host certificate', async () => {
    const node = await startSshd({ hostCert: false });
    try {
      await assert.rejects(node.connect(), (e: unknown) => {
        assert.ok(isWardenError(e, 'WARDEN_ERR_BAD_CERTIFICATE'));
        assert.match(e.message, /node "node1": it offers no host certificate/);
        return true;
      });
    } finally {
      await node.stop();
    }
  });
});
