/**
 * Cross-checks of @warden/tpm against tpm2-tools on the same swtpm, both ways: what we read
 * equals what the tools read; a credential we make is activated by tpm2_activatecredential
 * and one tpm2_makecredential made is activated by us; a tpm2_quote verifies with our
 * verifier and our quote with tpm2_checkquote. swtpm serves one connection at a time, so our
 * connection is closed before each tool runs.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { requireTool, type SwtpmProcess, startSwtpm } from '@warden/testkit';
import {
  activateCredential,
  createAk,
  createEk,
  createSrk,
  decodeCredentialFile,
  decodePublic2b,
  EK_CERT_NV_INDEX,
  EK_PERSISTENT_HANDLE,
  encodeCredentialFile,
  encodePublic2b,
  flushTransientObjects,
  isTpmError,
  type KeyKind,
  loadAk,
  makeCredential,
  objectName,
  type PcrValue,
  readEkCertificate,
  TPM_ALG,
  Tpm,
  toHex,
  verifyQuote,
} from '@warden/tpm';

const exec = promisify(execFile);
const needs = ['swtpm', 'swtpm_setup', 'tpm2_createek', 'tpm2_checkquote'].map((t) => requireTool(t));
const skip = needs.find((n) => !n.ok)?.skip ?? false;
const PCRS = [{ hash: TPM_ALG.SHA256, pcrs: [0, 1, 2, 3, 4, 5, 6, 7] }];
const PCR_LIST = 'sha256:0,1,2,3,4,5,6,7';

/**
 * The "serialized" PCR file of tpm2_quote -o / tpm2_checkquote -f: TPML_PCR_SELECTION as a
 * little-endian C struct (count, 16 × {hash, sizeofSelect, pcrSelect[4], pad}), then the
 * number of TPML_DIGESTs and each as {count, 8 × {size, buffer[64]}}.
 */
function toolsPcrFile(values: PcrValue[]): Uint8Array {
  assert.ok(values.length <= 8);
  const b = Buffer.alloc(4 + 16 * 8 + 4 + 4 + 8 * 66);
  b.writeUInt32LE(1, 0);
  b.writeUInt16LE(TPM_ALG.SHA256, 4);
  b.writeUInt8(3, 6);
  for (const v of values) b[7 + (v.pcr >> 3)]! |= 1 << (v.pcr & 7);
  let off = 4 + 16 * 8;
  b.writeUInt32LE(1, off);
  b.writeUInt32LE(values.length, off + 4);
  off += 8;
  for (const v of values) {
    b.writeUInt16LE(v.digest.length, off);
    b.set(v.digest, off + 2);
    off += 66;
  }
  return b;
}

describe('cross-checks with tpm2-tools', { skip }, () => {
  let sw: SwtpmProcess;
  let tpm: Tpm;
  let dir: string;
  const file = (name: string) => join(dir, name);

  /** Runs a tpm2 tool against our swtpm (after closing our connection), then flushes what it left. */
  async function tool(name: string, args: string[], opts: { offline?: boolean } = {}): Promise<string> {
    if (!opts.offline) await tpm.close();
    try {
      const { stdout } = await exec(name, args, { cwd: dir, env: { ...process.env, ...sw.env } });
      return stdout;
    } finally {
      if (!opts.offline) await flushTransientObjects(tpm, { sessions: true });
    }
  }

  /** EK and ECC AK made by tpm2-tools, with their public areas. */
  async function toolsEkAk(kind: KeyKind) {
    await tool('tpm2_createek', ['-c', 'ek.ctx', '-G', kind, '-u', 'ek.pub']);
    await tool('tpm2_createak', [
      '-C',
      'ek.ctx',
      '-c',
      'ak.ctx',
      '-G',
      'ecc',
      '-g',
      'sha256',
      '-s',
      'ecdsa',
      '-u',
      'ak.pub',
      '-n',
      'ak.name',
    ]);
    return {
      ekPublic: decodePublic2b(readFileSync(file('ek.pub'))),
      akPublic: decodePublic2b(readFileSync(file('ak.pub'))),
      akName: new Uint8Array(readFileSync(file('ak.name'))),
    };
  }

  before(async () => {
    sw = await startSwtpm({ ekCert: true });
    tpm = await Tpm.open({ address: sw.address });
    dir = mkdtempSync(join(tmpdir(), 'warden-tpm2-tools-'));
  });
  after(async () => {
    await tpm?.close();
    await sw?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  for (const kind of ['rsa', 'ecc'] as const) {
    test(`${kind.toUpperCase()} EK public: ours equals tpm2_createek's`, async () => {
      await tool('tpm2_createek', ['-c', 'ek.ctx', '-G', kind, '-u', 'ek.pub']);
      const theirs = readFileSync(file('ek.pub'));
      const ours = await createEk(tpm, kind);
      await tpm.flushContext(ours.handle);
      assert.equal(toHex(encodePublic2b(ours.public)), theirs.toString('hex'));
      assert.deepEqual(decodePublic2b(theirs), ours.public);
    });
  }

  test('ReadPublic and Names: ours equal tpm2_readpublic on the persisted EKs', async () => {
    for (const handle of [EK_PERSISTENT_HANDLE.rsa2048, EK_PERSISTENT_HANDLE.eccP384]) {
      await tool('tpm2_readpublic', ['-c', `0x${handle.toString(16)}`, '-o', 'rp.pub', '-n', 'rp.name']);
      const ours = await tpm.readPublic(handle);
      assert.equal(toHex(encodePublic2b(ours.public)), readFileSync(file('rp.pub')).toString('hex'));
      assert.equal(toHex(ours.name), readFileSync(file('rp.name')).toString('hex'));
      assert.equal(toHex(objectName(ours.public)), toHex(ours.name));
    }
  });

  test('EK certificates: ours equal tpm2_nvread', async () => {
    for (const index of [EK_CERT_NV_INDEX.rsa2048, EK_CERT_NV_INDEX.eccP384]) {
      await tool('tpm2_nvread', [`0x${index.toString(16)}`, '-o', 'cert.der']);
      const ours = await readEkCertificate(tpm, index);
      assert.equal(toHex(ours!), readFileSync(file('cert.der')).toString('hex'));
    }
  });

  for (const kind of ['rsa', 'ecc'] as const) {
    test(`${kind.toUpperCase()} EK: our MakeCredential is activated by tpm2_activatecredential`, async () => {
      const { ekPublic, akPublic, akName } = await toolsEkAk(kind);
      assert.equal(toHex(objectName(akPublic)), toHex(akName));
      const secret = new Uint8Array(32).map((_, i) => i + (kind === 'rsa' ? 1 : 100));
      writeFileSync(
        file('cred.out'),
        encodeCredentialFile(makeCredential({ ekPublic, objectName: akName, credential: secret })),
      );
      await tool('tpm2_startauthsession', ['--policy-session', '-S', 'session.ctx']);
      await tool('tpm2_policysecret', ['-S', 'session.ctx', '-c', 'e']);
      await tool('tpm2_activatecredential', [
        '-c',
        'ak.ctx',
        '-C',
        'ek.ctx',
        '-i',
        'cred.out',
        '-o',
        'act.out',
        '-P',
        'session:session.ctx',
      ]);
      assert.equal(readFileSync(file('act.out')).toString('hex'), toHex(secret));
    });

    test(`${kind.toUpperCase()} EK: tpm2_makecredential's credential is activated by us`, async () => {
      const ek = await createEk(tpm, kind);
      const srk = await createSrk(tpm);
      const ak = await createAk(tpm, srk.handle);
      const loaded = await loadAk(tpm, srk.handle, ak);
      try {
        const secret = new Uint8Array(32).fill(kind === 'rsa' ? 0x5a : 0xa5);
        writeFileSync(file('ek-ours.pub'), encodePublic2b(ek.public));
        writeFileSync(file('secret.bin'), secret);
        await tool(
          'tpm2_makecredential',
          [
            '-T',
            'none',
            '-u',
            'ek-ours.pub',
            '-s',
            'secret.bin',
            '-n',
            toHex(loaded.name),
            '-o',
            'cred-theirs.out',
          ],
          { offline: true },
        );
        const made = decodeCredentialFile(readFileSync(file('cred-theirs.out')));
        const solved = await activateCredential(tpm, {
          akHandle: loaded.handle,
          ekHandle: ek.handle,
          ...made,
        });
        assert.deepEqual(solved, secret);
      } finally {
        await flushTransientObjects(tpm);
      }
    });
  }

  test("tpm2_quote's quote verifies with verifyQuote (and not with another nonce)", async () => {
    const { akPublic } = await toolsEkAk('ecc');
    const nonce = new Uint8Array(20).fill(0x33);
    await tool('tpm2_quote', [
      '-c',
      'ak.ctx',
      '-l',
      PCR_LIST,
      '-q',
      toHex(nonce),
      '-m',
      'quote.msg',
      '-s',
      'quote.sig',
      '-g',
      'sha256',
    ]);
    const attest = new Uint8Array(readFileSync(file('quote.msg')));
    const signature = new Uint8Array(readFileSync(file('quote.sig')));
    const pcrs = await tpm.pcrRead(PCRS);
    const ok = verifyQuote({ akPublic, attest, signature, nonce, pcrs, expectedSelection: PCRS });
    assert.equal(ok.pcrs.length, 8);
    assert.throws(
      () => verifyQuote({ akPublic, attest, signature, nonce: new Uint8Array(20), pcrs }),
      (e) => isTpmError(e, 'TPM_ERR_NONCE_MISMATCH'),
    );
  });

  test('our quote verifies with tpm2_checkquote (and a wrong nonce or PCR value fails it)', async () => {
    const srk = await createSrk(tpm);
    const ak = await createAk(tpm, srk.handle);
    const loaded = await loadAk(tpm, srk.handle, ak);
    const nonce = new Uint8Array(16).fill(0x44);
    const q = await tpm.quote({ signHandle: loaded.handle, qualifyingData: nonce, pcrs: PCRS });
    const pcrs = await tpm.pcrRead(PCRS);
    await flushTransientObjects(tpm);
    writeFileSync(file('our-ak.pub'), encodePublic2b(ak.public));
    writeFileSync(file('our-quote.msg'), q.attest);
    writeFileSync(file('our-quote.sig'), q.signatureBytes);
    writeFileSync(file('our-pcrs.bin'), toolsPcrFile(pcrs));
    const check = (nonceHex: string, pcrFile = 'our-pcrs.bin') =>
      tool('tpm2_checkquote', [
        '-u',
        'our-ak.pub',
        '-m',
        'our-quote.msg',
        '-s',
        'our-quote.sig',
        '-f',
        pcrFile,
        '-g',
        'sha256',
        '-q',
        nonceHex,
      ]);
    await check(toHex(nonce));
    await assert.rejects(check('00'.repeat(16)));
    const lied = pcrs.map((v) => (v.pcr === 3 ? { ...v, digest: new Uint8Array(32).fill(1) } : v));
    writeFileSync(file('lied-pcrs.bin'), toolsPcrFile(lied));
    await assert.rejects(check(toHex(nonce), 'lied-pcrs.bin'));
  });
});
