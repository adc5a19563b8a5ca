import assert from 'node:assert/strict';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { test } from 'node:test';
import { needs, run, tempDir } from '../../../../test/support/system-tools';
import { isWardenError } from '../errors';
import {
  decodeSshCertificate,
  formatSshCertificate,
  parseSshCertificate,
  type SshCertificate,
  type SshCertificateFields,
  signSshCertificate,
  verifySshCertificate,
} from './ssh-cert';
import { encodeSshPublicKey, formatAuthorizedKey, sshFingerprint, sshSign } from './ssh-key';
import { SshWriter } from './ssh-wire';

const sshKeygen = needs('ssh-keygen');

const T0 = Date.UTC(2026, 0, 1); // 2026-01-01T00:00:00Z
const sec = (ms: number) => BigInt(Math.floor(ms / 1000));
const HOUR = 3_600_000;

const ca = generateKeyPairSync('ed25519');
const ecCa = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const userEd = generateKeyPairSync('ed25519');
const userEc = generateKeyPairSync('ec', { namedCurve: 'P-256' });

function userFields(publicKey: KeyObject, over: Partial<SshCertificateFields> = {}): SshCertificateFields {
  return {
    publicKey,
    serial: 42n,
    type: 'user',
    keyId: 'alice',
    validPrincipals: ['root', 'alice'],
    validAfter: sec(T0 - 60_000),
    validBefore: sec(T0 + 8 * HOUR),
    extensions: {
      'permit-pty': '',
      'warden-roles@wardenproject.org': '["access","editor"]',
      'permit-X11-forwarding': '',
      'permit-agent-forwarding': '',
      'permit-user-rc': '',
      'permit-port-forwarding': '',
    },
    ...over,
  };
}

/** `ssh-keygen -L` output as a record of its fields (lists as arrays). */
function keygenList(file: string): Record<string, string | string[]> {
  const res = run('ssh-keygen', ['-L', '-f', file]);
  assert.equal(res.status, 0, `ssh-keygen -L failed: ${res.stderr}`);
  const out: Record<string, string | string[]> = {};
  let list: string[] | undefined;
  for (const line of res.stdout.split('\n').slice(1)) {
    const field = /^ {8}(\S[^:]*):\s?(.*)$/.exec(line);
    if (field) {
      const [, name = '', value = ''] = field;
      if (value.trim() === '') {
        list = [];
        out[name] = list;
      } else {
        list = undefined;
        out[name] = value;
      }
    } else if (line.trim() !== '' && list) {
      list.push(line.trim());
    }
  }
  return out;
}

function rejects(fn: () => unknown, reason: RegExp): void {
  assert.throws(
    fn,
    (e) => isWardenError(e, 'WARDEN_ERR_BAD_CERTIFICATE') && reason.test((e as Error).message),
  );
}

test('ssh-keygen -L reads our user certificates (Ed25519 and ECDSA user keys, Ed25519 CA)', sshKeygen, () => {
  const tmp = tempDir();
  try {
    for (const [user, kind, alg] of [
      [userEd, 'ED25519-CERT', 'ssh-ed25519-cert-v01@openssh.com'],
      [userEc, 'ECDSA-CERT', 'ecdsa-sha2-nistp256-cert-v01@openssh.com'],
    ] as const) {
      const cert = signSshCertificate(userFields(user.publicKey), ca.privateKey);
      assert.equal(cert.algorithm, alg);
      const file = tmp.path(`${alg}-cert.pub`);
      writeFileSync(file, `${formatSshCertificate(cert, 'alice')}\n`);
      const l = keygenList(file);
      assert.equal(l.Type, `${alg} user certificate`);
      assert.equal(l['Public key'], `${kind} ${sshFingerprint(user.publicKey)}`);
      assert.equal(l['Signing CA'], `ED25519 ${sshFingerprint(ca.publicKey)} (using ssh-ed25519)`);
      assert.equal(l['Key ID'], '"alice"');
      assert.equal(l.Serial, '42');
      assert.equal(l.Valid, 'from 2025-12-31T23:59:00 to 2026-01-01T08:00:00');
      assert.deepEqual(l.Principals, ['root', 'alice']);
      assert.equal(l['Critical Options'], '(none)');
      const roleHex = new SshWriter().string('["access","editor"]').toBuffer().toString('hex');
      // Sorted by name, as OpenSSH requires (byte order: upper case before lower case).
      assert.deepEqual(l.Extensions, [
        'permit-X11-forwarding',
        'permit-agent-forwarding',
        'permit-port-forwarding',
        'permit-pty',
        'permit-user-rc',
        `warden-roles@wardenproject.org UNKNOWN OPTION: ${roleHex} (len 23)`,
      ]);
    }
  } finally {
    tmp.cleanup();
  }
});

test('ssh-keygen -L reads host certificates and certificates signed by an ECDSA CA', sshKeygen, () => {
  const tmp = tempDir();
  try {
    const cert = signSshCertificate(
      {
        publicKey: userEd.publicKey,
        type: 'host',
        keyId: 'node-1',
        validPrincipals: ['node-1.warden', 'node-1'],
        validAfter: sec(T0),
        validBefore: sec(T0 + HOUR),
      },
      ecCa.privateKey,
    );
    const file = tmp.path('host-cert.pub');
    writeFileSync(file, `${formatSshCertificate(cert)}\n`);
    const l = keygenList(file);
    assert.equal(l.Type, 'ssh-ed25519-cert-v01@openssh.com host certificate');
    assert.equal(l['Signing CA'], `ECDSA ${sshFingerprint(ecCa.publicKey)} (using ecdsa-sha2-nistp256)`);
    assert.deepEqual(l.Principals, ['node-1.warden', 'node-1']);
    assert.equal(l.Extensions, '(none)');
    assert.equal(
      verifySshCertificate(cert, [ecCa.publicKey], { now: T0, type: 'host', principal: 'node-1' }).keyId,
      'node-1',
    );
  } finally {
    tmp.cleanup();
  }
});

test('certificates made by ssh-keygen -s parse and verify', sshKeygen, () => {
  const tmp = tempDir();
  try {
    for (const t of ['ed25519', 'ecdsa']) {
      const caFile = tmp.path(`ca-${t}`);
      const userFile = tmp.path(`user-${t}`);
      assert.equal(run('ssh-keygen', ['-q', '-t', t, '-N', '', '-f', caFile]).status, 0);
      assert.equal(run('ssh-keygen', ['-q', '-t', 'ecdsa', '-N', '', '-f', userFile]).status, 0);
      const s = run('ssh-keygen', [
        ...['-q', '-s', caFile, '-I', 'bob', '-n', 'ubuntu,bob', '-z', '7'],
        ...['-V', '20260101000000:20260101120000', '-O', 'extension:warden-roles@wardenproject.org=["dev"]'],
        `${userFile}.pub`,
      ]);
      assert.equal(s.status, 0, s.stderr);
      const line = readFileSync(`${userFile}-cert.pub`, 'utf8');
      const caLine = readFileSync(`${caFile}.pub`, 'utf8');
      const cert = verifySshCertificate(line, [caLine], { now: T0 + HOUR, type: 'user', principal: 'bob' });
      assert.equal(cert.keyId, 'bob');
      assert.equal(cert.serial, 7n);
      assert.deepEqual(cert.validPrincipals, ['ubuntu', 'bob']);
      assert.equal(cert.validAfter, sec(T0));
      assert.equal(cert.validBefore, sec(T0 + 12 * HOUR));
      assert.equal(cert.extensions['warden-roles@wardenproject.org'], '["dev"]');
      assert.equal(cert.extensions['permit-pty'], '');
      // Re-formatting gives back the same bytes.
      assert.equal(formatSshCertificate(cert, cert.comment), line.trim());
    }
  } finally {
    tmp.cleanup();
  }
});

test('a certificate round-trips through its line', () => {
  const cert = signSshCertificate(userFields(userEc.publicKey), ca.privateKey);
  const back = parseSshCertificate(formatSshCertificate(cert, 'c'));
  assert.equal(back.comment, 'c');
  assert.deepEqual(back.blob, cert.blob);
  assert.deepEqual(encodeSshPublicKey(back.publicKey), encodeSshPublicKey(userEc.publicKey));
  assert.deepEqual(back.signatureKeyBlob, encodeSshPublicKey(ca.publicKey));
  assert.equal(back.extensions['warden-roles@wardenproject.org'], '["access","editor"]');
  assert.equal(back.type, 'user');
  assert.equal(back.nonce.length, 32);
});

test('verification accepts a good certificate at both ends of its window', () => {
  const cert = signSshCertificate(userFields(userEd.publicKey), ca.privateKey);
  const opts = { type: 'user', principal: 'root' } as const;
  verifySshCertificate(cert, [ca.publicKey], { ...opts, now: T0 - 60_000 });
  verifySshCertificate(cert, [formatAuthorizedKey(ca.publicKey)], { ...opts, now: T0 + 8 * HOUR - 1 });
  verifySshCertificate(cert, [ecCa.publicKey, ca.publicKey], { now: T0, type: 'user' });
});

function tamperedAt(cert: SshCertificate, offset: number): string {
  const blob = Buffer.from(cert.blob);
  blob[offset] = (blob[offset] as number) ^ 0x01;
  return `${cert.algorithm} ${blob.toString('base64')}`;
}

test('verification rejects tampered, expired, early, misdirected and foreign certificates', sshKeygen, () => {
  const cert = signSshCertificate(userFields(userEd.publicKey), ca.privateKey);
  const now = T0;
  const ok = { now, type: 'user', principal: 'root' } as const;

  // Flip one byte of the key id ("alice" → "`lice"): still parses, signature no longer matches.
  const keyIdAt = cert.blob.indexOf(Buffer.from('alice'));
  const tampered = tamperedAt(cert, keyIdAt);
  assert.equal(parseSshCertificate(tampered).keyId, '`lice');
  rejects(() => verifySshCertificate(tampered, [ca.publicKey], ok), /signature is invalid/);
  // Flip a byte of the signature itself.
  rejects(
    () => verifySshCertificate(tamperedAt(cert, cert.blob.length - 5), [ca.publicKey], ok),
    /signature/,
  );
  // OpenSSH agrees the tampered one is bad.
  const tmp = tempDir();
  try {
    writeFileSync(tmp.path('bad-cert.pub'), `${tampered}\n`);
    assert.notEqual(run('ssh-keygen', ['-L', '-f', tmp.path('bad-cert.pub')]).status, 0);
  } finally {
    tmp.cleanup();
  }

  rejects(() => verifySshCertificate(cert, [ca.publicKey], { ...ok, now: T0 + 8 * HOUR }), /expired/);
  rejects(() => verifySshCertificate(cert, [ca.publicKey], { ...ok, now: T0 - 61_000 }), /not yet valid/);
  rejects(
    () => verifySshCertificate(cert, [ca.publicKey], { ...ok, principal: 'admin' }),
    /principal "admin"/,
  );
  rejects(() => verifySshCertificate(cert, [ecCa.publicKey], ok), /not signed by a trusted/);
  rejects(() => verifySshCertificate(cert, [], ok), /not signed by a trusted/);
  rejects(
    () => verifySshCertificate(cert, [ca.publicKey], { ...ok, type: 'host' }),
    /user certificate used as a host/,
  );

  const host = signSshCertificate({ ...userFields(userEd.publicKey), type: 'host' }, ca.privateKey);
  rejects(() => verifySshCertificate(host, [ca.publicKey], ok), /host certificate used as a user/);

  const noPrincipals = signSshCertificate(
    userFields(userEd.publicKey, { validPrincipals: [] }),
    ca.privateKey,
  );
  rejects(() => verifySshCertificate(noPrincipals, [ca.publicKey], ok), /principal/);

  const critical = signSshCertificate(
    userFields(userEd.publicKey, { criticalOptions: { 'force-command': '/bin/true' } }),
    ca.privateKey,
  );
  assert.equal(critical.criticalOptions['force-command'], '/bin/true');
  rejects(() => verifySshCertificate(critical, [ca.publicKey], ok), /critical option "force-command"/);
});

test('a certificate re-signed by another CA with the same fields is still rejected', () => {
  const attacker = generateKeyPairSync('ed25519');
  const cert = signSshCertificate(userFields(userEd.publicKey), attacker.privateKey);
  rejects(
    () => verifySshCertificate(cert, [ca.publicKey], { now: T0, type: 'user' }),
    /not signed by a trusted/,
  );
  // Claiming the real CA as signature key while signing with another key fails the signature.
  const real = signSshCertificate(userFields(userEd.publicKey), ca.privateKey);
  const signed = real.signedData;
  const forged = new SshWriter().raw(signed).bytes(sshSign(attacker.privateKey, signed)).toBuffer();
  rejects(
    () => verifySshCertificate(decodeSshCertificate(forged), [ca.publicKey], { now: T0, type: 'user' }),
    /signature is invalid/,
  );
});

test('extensions out of order or repeated are refused when parsing', () => {
  const cert = signSshCertificate(userFields(userEd.publicKey, { extensions: {} }), ca.privateKey);
  const rebuild = (exts: [string, string][]) => {
    const opts = new SshWriter();
    for (const [n, v] of exts)
      opts.string(n).bytes(v === '' ? Buffer.alloc(0) : new SshWriter().string(v).toBuffer());
    const emptyExt = Buffer.alloc(4);
    // The empty extensions field is followed by the empty reserved field: find "00000000 00000000 <sigkey>".
    const sigKey = new SshWriter().bytes(encodeSshPublicKey(ca.publicKey)).toBuffer();
    const at = cert.signedData.length - sigKey.length - 8;
    assert.deepEqual(cert.signedData.subarray(at, at + 4), emptyExt);
    const signed = Buffer.concat([
      cert.signedData.subarray(0, at),
      new SshWriter().bytes(opts.toBuffer()).toBuffer(),
      cert.signedData.subarray(at + 4),
    ]);
    return new SshWriter().raw(signed).bytes(sshSign(ca.privateKey, signed)).toBuffer();
  };
  const good = decodeSshCertificate(
    rebuild([
      ['a', ''],
      ['b', 'x'],
    ]),
  );
  assert.deepEqual({ ...good.extensions }, { a: '', b: 'x' });
  verifySshCertificate(good, [ca.publicKey], { now: T0, type: 'user' });
  rejects(
    () =>
      decodeSshCertificate(
        rebuild([
          ['b', ''],
          ['a', ''],
        ]),
      ),
    /not sorted/,
  );
  rejects(
    () =>
      decodeSshCertificate(
        rebuild([
          ['a', ''],
          ['a', ''],
        ]),
      ),
    /repeat/,
  );
});

test('signing refuses an empty validity window and empty principals', () => {
  assert.throws(
    () => signSshCertificate(userFields(userEd.publicKey, { validBefore: sec(T0 - 60_000) }), ca.privateKey),
    (e) => isWardenError(e, 'WARDEN_ERR_BAD_PARAMETER'),
  );
  assert.throws(
    () => signSshCertificate(userFields(userEd.publicKey, { validPrincipals: [''] }), ca.privateKey),
    (e) => isWardenError(e, 'WARDEN_ERR_BAD_PARAMETER'),
  );
  assert.throws(() => signSshCertificate(userFields(userEd.publicKey), ca.publicKey), TypeError);
});

test('a certificate line of the wrong type or a plain key is refused', () => {
  const cert = signSshCertificate(userFields(userEd.publicKey), ca.privateKey);
  rejects(
    () => parseSshCertificate(`ecdsa-sha2-nistp256-cert-v01@openssh.com ${cert.blob.toString('base64')}`),
    /line says/,
  );
  rejects(() => parseSshCertificate(formatAuthorizedKey(userEd.publicKey)), /unsupported certificate type/);
});

test('signSshCertificate returns exactly what decoding its blob gives (no re-parse needed)', () => {
  const spki = (k: KeyObject) => k.export({ type: 'spki', format: 'der' }).toString('hex');
  for (const [caKey, subject] of [
    [ca.privateKey, userEc.publicKey],
    [ecCa.privateKey, userEd.privateKey],
  ] as const) {
    const signed = signSshCertificate(
      {
        publicKey: subject,
        type: 'user',
        keyId: 'alice',
        validPrincipals: ['root', 'alice'],
        validAfter: 100n,
        validBefore: 200n,
        criticalOptions: { 'source-address': '10.0.0.0/8' },
        extensions: { 'permit-pty': '', 'warden-roles': '["a"]', 'a-first': 'x' },
      },
      caKey,
    );
    const decoded = decodeSshCertificate(signed.blob);
    const { publicKey, signatureKey, ...rest } = signed;
    const { publicKey: dPublicKey, signatureKey: dSignatureKey, ...dRest } = decoded;
    assert.deepEqual(rest, dRest);
    assert.equal(spki(publicKey), spki(dPublicKey));
    assert.equal(spki(signatureKey), spki(dSignatureKey));
    assert.deepEqual(Object.keys(signed.extensions), ['a-first', 'permit-pty', 'warden-roles']);
  }
});
