/**
 * The TPM client against a real software TPM (swtpm manufactured with EK certificates):
 * every command device trust uses, the enrollment and authentication ceremonies end to end,
 * and the forged inputs the issue lists refused with distinct errors — on TPM-made data.
 * One swtpm for the whole file.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { requireTool, type SwtpmProcess, selfSignedCert, startSwtpm } from '@warden/testkit';
import {
  activateCredential,
  akTemplate,
  checkAkAttributes,
  checkEkMatchesCertificate,
  createAk,
  createEk,
  createSrk,
  EK_CERT_NV_INDEX,
  EK_PERSISTENT_HANDLE,
  flushTransientObjects,
  isTpmError,
  loadAk,
  makeCredential,
  objectName,
  parseEkCertificate,
  readEkCertificate,
  TPM_ALG,
  TPM_PT,
  TPMA_OBJECT,
  Tpm,
  type TpmErrorCode,
  toHex,
  verifyCertifyCreation,
  verifyEkCertificate,
  verifyQuote,
  verifyTpmSignature,
} from '@warden/tpm';

const swtpm = requireTool('swtpm');
const setup = swtpm.ok ? requireTool('swtpm_setup') : swtpm;
const openssl = requireTool('openssl');
const rejects = (code: TpmErrorCode) => (e: unknown) => isTpmError(e, code);
const PCRS = [{ hash: TPM_ALG.SHA256, pcrs: [0, 1, 2, 3, 4, 5, 6, 7] }];

/**
 * The server's MakeCredential for `ak`'s name under `ek`, and the client's ActivateCredential
 * through the loaded handles: the TPM releases exactly `challenge`.
 */
async function assertActivates(
  tpm: Tpm,
  o: {
    ek: Parameters<typeof makeCredential>[0]['ekPublic'];
    ekHandle: number;
    ak: Parameters<typeof objectName>[0];
    akHandle: number;
  },
  challenge: Uint8Array,
): Promise<void> {
  const made = makeCredential({ ekPublic: o.ek, objectName: objectName(o.ak), credential: challenge });
  const solved = await activateCredential(tpm, { akHandle: o.akHandle, ekHandle: o.ekHandle, ...made });
  assert.deepEqual(solved, challenge);
}

describe('TPM client on swtpm', { skip: setup.skip }, () => {
  let sw: SwtpmProcess;
  let tpm: Tpm;
  before(async () => {
    sw = await startSwtpm({ ekCert: true });
    tpm = await Tpm.open({ address: sw.address });
  });
  after(async () => {
    await tpm?.close();
    await sw?.stop();
  });

  test('startup is idempotent; random bytes, properties, PCR banks', async () => {
    await tpm.startup();
    const a = await tpm.getRandom(100);
    assert.equal(a.length, 100);
    assert.notDeepEqual(a, await tpm.getRandom(100));
    const props = await tpm.getProperties(TPM_PT.MANUFACTURER, 1);
    assert.equal(props.get(TPM_PT.MANUFACTURER), 0x49424d00); // "IBM\0"
    const banks = await tpm.getPcrBanks();
    assert.deepEqual(banks.find((b) => b.hash === TPM_ALG.SHA256)?.pcrs.length, 24);
  });

  test('WARDEN_TPM selects the transport', async () => {
    const viaEnv = await Tpm.open({ env: { WARDEN_TPM: sw.address } });
    try {
      assert.equal(viaEnv.transport.description, `swtpm:127.0.0.1:${sw.port}`);
      await tpm.close(); // swtpm serves one connection at a time
      assert.equal((await viaEnv.getRandom(8)).length, 8);
    } finally {
      await viaEnv.close();
    }
  });

  test('the EK from the TCG template is the EK swtpm persisted and certified', async () => {
    const ek = await createEk(tpm, 'rsa');
    try {
      assert.deepEqual(ek.name, objectName(ek.public));
      const persisted = await tpm.readPublic(EK_PERSISTENT_HANDLE.rsa2048);
      assert.equal(toHex(persisted.name), toHex(ek.name));
      const der = await readEkCertificate(tpm, 'rsa');
      assert.ok(der);
      const cert = parseEkCertificate(der);
      checkEkMatchesCertificate(ek.public, cert);
      assert.equal(cert.tpmManufacturer, 'id:00001014');
      assert.equal(cert.tpmModel, 'swtpm');
      const { chain } = verifyEkCertificate(cert, {
        roots: [sw.rootCertPem!],
        intermediates: [sw.issuerCertPem!],
        now: new Date(),
      });
      assert.equal(chain.length, 3);
      verifyEkCertificate(cert, { roots: [sw.issuerCertPem!], now: new Date() });
    } finally {
      await tpm.flushContext(ek.handle);
    }
  });

  test('the ECC P-384 EK certificate verifies and matches the persisted ECC EK', async () => {
    const der = await readEkCertificate(tpm, EK_CERT_NV_INDEX.eccP384);
    const cert = parseEkCertificate(der!);
    verifyEkCertificate(cert, { roots: [sw.issuerCertPem!], now: new Date() });
    checkEkMatchesCertificate((await tpm.readPublic(EK_PERSISTENT_HANDLE.eccP384)).public, cert);
    // swtpm provisions no P-256 certificate: absent is undefined, not an error.
    assert.equal(await readEkCertificate(tpm, 'ecc'), undefined);
  });

  test('an EK certificate from an unlisted CA (same name, other key) is refused', {
    skip: openssl.skip,
  }, async () => {
    const der = (await readEkCertificate(tpm, 'rsa'))!;
    const dir = mkdtempSync(join(tmpdir(), 'warden-ca-'));
    try {
      const impostor = selfSignedCert({ dir, cn: 'swtpm-localca', ca: true }).certPem;
      assert.throws(
        () => verifyEkCertificate(der, { roots: [impostor], now: new Date() }),
        rejects('TPM_ERR_EK_CERT_UNTRUSTED'),
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('the root alone without the issuing CA, and an EK that is not the certified one', async () => {
    const der = (await readEkCertificate(tpm, 'rsa'))!;
    assert.throws(
      () => verifyEkCertificate(der, { roots: [sw.rootCertPem!], now: new Date() }),
      rejects('TPM_ERR_EK_CERT_UNTRUSTED'),
    );
    const eccEk = await createEk(tpm, 'ecc');
    await tpm.flushContext(eccEk.handle);
    assert.throws(
      () => checkEkMatchesCertificate(eccEk.public, parseEkCertificate(der)),
      rejects('TPM_ERR_EK_MISMATCH'),
    );
  });

  test('NV reads: chunked equals whole; a missing index is TPM_ERR_NOT_FOUND', async () => {
    const whole = await tpm.nvRead(EK_CERT_NV_INDEX.rsa2048);
    const chunked = await tpm.nvRead(EK_CERT_NV_INDEX.rsa2048, { chunkSize: 100 });
    assert.deepEqual(chunked, whole);
    assert.equal(whole.length, 1016);
    await assert.rejects(tpm.nvReadPublic(0x01c00fff), rejects('TPM_ERR_NOT_FOUND'));
    await assert.rejects(tpm.readPublic(0x81000fff), rejects('TPM_ERR_NOT_FOUND'));
  });

  for (const kind of ['rsa', 'ecc'] as const) {
    test(`enrollment and authentication with an ${kind.toUpperCase()} EK and an ECC AK`, async () => {
      // Client: EK, SRK, AK (created, loaded, certifying its own creation).
      const ek = await createEk(tpm, kind);
      const srk = await createSrk(tpm);
      const ak = await createAk(tpm, srk.handle);
      const loaded = await loadAk(tpm, srk.handle, ak);
      try {
        assert.equal(toHex(loaded.name), toHex(objectName(ak.public)));
        const creation = await tpm.certifyCreation({
          signHandle: loaded.handle,
          objectHandle: loaded.handle,
          qualifyingData: new Uint8Array(0),
          creationHash: ak.creationHash,
          creationTicket: ak.creationTicket,
        });
        // Server: AK attributes, creation, credential challenge bound to EK and AK name.
        checkAkAttributes(ak.public);
        const { creationData } = verifyCertifyCreation({
          akPublic: ak.public,
          creationData: ak.creationDataBytes,
          attest: creation.attest,
          signature: creation.signatureBytes,
        });
        assert.deepEqual(creationData.parentName, srk.name);
        const challenge = new Uint8Array(32).fill(kind === 'rsa' ? 1 : 2);
        // Client: ActivateCredential, then a quote over the server's nonce.
        await assertActivates(
          tpm,
          { ek: ek.public, ekHandle: ek.handle, ak: ak.public, akHandle: loaded.handle },
          challenge,
        );
        const nonce = await tpm.getRandom(32);
        const q = await tpm.quote({ signHandle: loaded.handle, qualifyingData: nonce, pcrs: PCRS });
        const values = await tpm.pcrRead(PCRS);
        // Server: the quote verifies against the stored AK.
        const ok = verifyQuote({
          akPublic: ak.public,
          attest: q.attest,
          signature: q.signatureBytes,
          nonce,
          pcrs: values,
          expectedSelection: PCRS,
        });
        assert.equal(ok.pcrs.length, 8);
        // No session is left behind by ActivateCredential.
        assert.deepEqual(await tpm.getHandles(0x03000000), []);
      } finally {
        await flushTransientObjects(tpm);
      }
    });
  }

  test('the high-range ECC P-384 EK (PolicyOR policy): same key as persisted, certified, activates', async () => {
    const ek = await createEk(tpm, 'ecc-p384');
    const cert = parseEkCertificate((await readEkCertificate(tpm, 'ecc-p384'))!);
    checkEkMatchesCertificate(ek.public, cert);
    await tpm.flushContext(ek.handle);
    const srk = await createSrk(tpm);
    const ak = await createAk(tpm, srk.handle);
    const loaded = await loadAk(tpm, srk.handle, ak);
    try {
      // The EK swtpm_setup persisted, used through its persistent handle.
      const challenge = new Uint8Array(48).fill(0x38);
      await assertActivates(
        tpm,
        { ek: ek.public, ekHandle: EK_PERSISTENT_HANDLE.eccP384, ak: ak.public, akHandle: loaded.handle },
        challenge,
      );
      assert.deepEqual(await tpm.getHandles(0x03000000), []);
    } finally {
      await flushTransientObjects(tpm);
    }
  });

  test('authentication later: the AK reloads under a re-created SRK and its quote verifies', async () => {
    // Enrollment keeps the AK's sealed private part and its public area.
    const srk = await createSrk(tpm);
    const ak = await createAk(tpm, srk.handle);
    await flushTransientObjects(tpm);
    // Later (another process, after a reboot): the SRK is derived again, the AK loaded.
    const srk2 = await createSrk(tpm);
    assert.deepEqual(srk2.name, srk.name);
    const loaded = await loadAk(tpm, srk2.handle, ak);
    try {
      const nonce = await tpm.getRandom(32);
      const q = await tpm.quote({ signHandle: loaded.handle, qualifyingData: nonce, pcrs: PCRS });
      verifyQuote({
        akPublic: ak.public,
        attest: q.attest,
        signature: q.signatureBytes,
        nonce,
        pcrs: await tpm.pcrRead(PCRS),
      });
    } finally {
      await flushTransientObjects(tpm);
    }
  });

  test('forged inputs are refused with distinct errors', async () => {
    const ek = await createEk(tpm, 'ecc');
    const srk = await createSrk(tpm);
    const ak = await createAk(tpm, srk.handle);
    const other = await createAk(tpm, srk.handle);
    const loaded = await loadAk(tpm, srk.handle, ak);
    try {
      const nonce = new Uint8Array(32).fill(9);
      const q = await tpm.quote({ signHandle: loaded.handle, qualifyingData: nonce, pcrs: PCRS });
      const values = await tpm.pcrRead(PCRS);
      const base = {
        akPublic: ak.public,
        attest: q.attest,
        signature: q.signatureBytes,
        nonce,
        pcrs: values,
      };
      const seen = new Set<string>();
      const expectCode = (code: TpmErrorCode, f: () => unknown) => {
        assert.throws(f, rejects(code));
        seen.add(code);
      };
      // Wrong nonce (a replayed quote).
      expectCode('TPM_ERR_NONCE_MISMATCH', () => verifyQuote({ ...base, nonce: new Uint8Array(32) }));
      // PCR values that don't match the digest: PCR 7 changed after the quote.
      await tpm.pcrExtend(7, [{ hash: TPM_ALG.SHA256, digest: new Uint8Array(32).fill(7) }]);
      const changed = await tpm.pcrRead(PCRS);
      expectCode('TPM_ERR_PCR_MISMATCH', () => verifyQuote({ ...base, pcrs: changed }));
      // Quote signed by another key: checked against another AK.
      expectCode('TPM_ERR_BAD_SIGNATURE', () => verifyQuote({ ...base, akPublic: other.public }));
      // AK without fixedTPM.
      expectCode('TPM_ERR_AK_ATTRIBUTES', () =>
        checkAkAttributes({
          ...ak.public,
          objectAttributes: ak.public.objectAttributes & ~TPMA_OBJECT.fixedTPM,
        }),
      );
      // Credential made for another AK name: the TPM refuses to release it.
      const made = makeCredential({
        ekPublic: ek.public,
        objectName: objectName(other.public),
        credential: new Uint8Array(16),
      });
      await assert.rejects(
        activateCredential(tpm, { akHandle: loaded.handle, ekHandle: ek.handle, ...made }),
        rejects('TPM_ERR_CREDENTIAL_REJECTED'),
      );
      seen.add('TPM_ERR_CREDENTIAL_REJECTED');
      assert.equal(seen.size, 5);
      // The failed activation did not leak its policy session.
      assert.deepEqual(await tpm.getHandles(0x03000000), []);
    } finally {
      await flushTransientObjects(tpm);
    }
  });

  test('Sign with an unrestricted key verifies; an AK refuses to sign an outside digest', async () => {
    const srk = await createSrk(tpm);
    try {
      const template = akTemplate('ecc');
      const signer = await tpm.create({
        parent: srk.handle,
        template: { ...template, objectAttributes: template.objectAttributes & ~TPMA_OBJECT.restricted },
      });
      const key = await tpm.load({ parent: srk.handle, private: signer.private, public: signer.public });
      const data = new TextEncoder().encode('warden device trust');
      const { signature } = await tpm.sign({
        keyHandle: key.handle,
        digest: createHash('sha256').update(data).digest(),
      });
      assert.equal(verifyTpmSignature(signer.public, data, signature), true);
      assert.equal(verifyTpmSignature(signer.public, new Uint8Array(1), signature), false);
      await tpm.flushContext(key.handle);
      const ak = await createAk(tpm, srk.handle);
      const loaded = await loadAk(tpm, srk.handle, ak);
      await assert.rejects(
        tpm.sign({ keyHandle: loaded.handle, digest: new Uint8Array(32) }),
        (e) => isTpmError(e, 'TPM_ERR_RESPONSE') && e.rcName === 'TPM_RC_TICKET',
      );
    } finally {
      await flushTransientObjects(tpm);
    }
  });

  test('leftover transient objects are flushed; TPM errors carry their decoded code', async () => {
    await createSrk(tpm);
    await createSrk(tpm);
    await createSrk(tpm);
    await assert.rejects(
      createSrk(tpm),
      (e) => isTpmError(e, 'TPM_ERR_RESPONSE') && e.rcName === 'TPM_RC_OBJECT_MEMORY',
    );
    assert.equal(await flushTransientObjects(tpm), 3);
    assert.deepEqual(await tpm.getHandles(), []);
    await assert.rejects(
      tpm.flushContext(0x80ffffff),
      (e) => isTpmError(e, 'TPM_ERR_RESPONSE') && e.response?.parameter === 1,
    );
  });
});
