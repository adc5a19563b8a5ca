/**
 * Benchmark: @warden/tpm against tpm2-tools on the same swtpm, and server-side verification
 * rates. Prints milliseconds per operation and ratios; asserts nothing (numbers depend on
 * the machine). A tpm2-tools figure includes starting the tool's process, which is what a
 * program shelling out to tpm2-tools would pay.
 *
 *   npm run bench:tpm            (needs swtpm, swtpm_setup and tpm2-tools)
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startSwtpm } from '@warden/testkit';
import {
  createAk,
  createEk,
  createSrk,
  EK_CERT_NV_INDEX,
  encodePublic2b,
  flushTransientObjects,
  loadAk,
  makeCredential,
  objectName,
  readEkCertificate,
  TPM_ALG,
  Tpm,
  toHex,
  verifyQuote,
} from '@warden/tpm';

const PCRS = [{ hash: TPM_ALG.SHA256, pcrs: [0, 1, 2, 3, 4, 5, 6, 7] }];

async function time(n: number, f: () => Promise<unknown> | unknown): Promise<number> {
  await f(); // warm-up
  const start = process.hrtime.bigint();
  for (let i = 0; i < n; i++) await f();
  return Number(process.hrtime.bigint() - start) / 1e6 / n;
}

function fmt(ms: number): string {
  return ms >= 1 ? `${ms.toFixed(2)} ms` : `${(ms * 1000).toFixed(1)} µs`;
}

async function main(): Promise<void> {
  const sw = await startSwtpm({ ekCert: true });
  const dir = mkdtempSync(join(tmpdir(), 'warden-bench-tpm-'));
  const tpm = await Tpm.open({ address: sw.address });
  const env = { ...process.env, ...sw.env };
  const tool = (args: string[]) => execFileSync(args[0]!, args.slice(1), { cwd: dir, env, stdio: 'pipe' });
  /**
   * Milliseconds per run of a tool against the swtpm. Our connection is closed first (swtpm
   * serves one client at a time) and what the tool left loaded is flushed, both untimed.
   */
  const online = async (n: number, args: string[]): Promise<number> => {
    let total = 0;
    for (let i = 0; i <= n; i++) {
      await tpm.close();
      const start = process.hrtime.bigint();
      tool(args);
      if (i > 0) total += Number(process.hrtime.bigint() - start) / 1e6;
      tool(['tpm2_flushcontext', '-t']);
    }
    return total / n;
  };
  const rows: [string, number, number | undefined][] = [];
  try {
    await flushTransientObjects(tpm);

    // Client commands, ours vs tpm2-tools.
    const rsaEk = await time(5, async () => tpm.flushContext((await createEk(tpm, 'rsa')).handle));
    const rsaEkTools = await online(5, ['tpm2_createek', '-G', 'rsa', '-c', 'ek.ctx', '-u', 'ek.pub']);
    rows.push(['CreatePrimary RSA-2048 EK', rsaEk, rsaEkTools]);

    const eccEk = await time(20, async () => tpm.flushContext((await createEk(tpm, 'ecc')).handle));
    const eccEkTools = await online(10, ['tpm2_createek', '-G', 'ecc', '-c', 'ek.ctx', '-u', 'ek.pub']);
    rows.push(['CreatePrimary ECC P-256 EK', eccEk, eccEkTools]);

    const nv = await time(20, () => readEkCertificate(tpm, 'rsa'));
    const nvTools = await online(10, [
      'tpm2_nvread',
      `0x${EK_CERT_NV_INDEX.rsa2048.toString(16)}`,
      '-o',
      'c.der',
    ]);
    rows.push(['NV read of the EK certificate', nv, nvTools]);

    const rp = await time(50, () => tpm.readPublic(0x81010001));
    const rpTools = await online(10, ['tpm2_readpublic', '-c', '0x81010001', '-o', 'rp.pub']);
    rows.push(['ReadPublic', rp, rpTools]);

    const rnd = await time(100, () => tpm.getRandom(32));
    const rndTools = await online(10, ['tpm2_getrandom', '-o', 'r.bin', '32']);
    rows.push(['GetRandom 32', rnd, rndTools]);

    // Quote with an ECC AK under an SRK (ours) vs an AK under the EK (tpm2_createak).
    const srk = await createSrk(tpm);
    const ak = await createAk(tpm, srk.handle);
    const loaded = await loadAk(tpm, srk.handle, ak);
    const nonce = new Uint8Array(32).fill(1);
    const quote = await tpm.quote({ signHandle: loaded.handle, qualifyingData: nonce, pcrs: PCRS });
    const q = await time(50, () =>
      tpm.quote({ signHandle: loaded.handle, qualifyingData: nonce, pcrs: PCRS }),
    );
    const pcrs = await tpm.pcrRead(PCRS);
    await flushTransientObjects(tpm);
    await online(1, ['tpm2_createek', '-G', 'rsa', '-c', 'ek.ctx', '-u', 'ek.pub']);
    await online(1, [
      'tpm2_createak',
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
    ]);
    const qTools = await online(10, [
      'tpm2_quote',
      '-c',
      'ak.ctx',
      '-l',
      'sha256:0,1,2,3,4,5,6,7',
      '-q',
      toHex(nonce),
      '-m',
      'q.msg',
      '-s',
      'q.sig',
    ]);
    rows.push(['Quote PCR 0-7 (ECC AK)', q, qTools]);

    // Server side: MakeCredential (tpm2_makecredential runs offline with -T none).
    const ek = await createEk(tpm, 'rsa');
    await tpm.flushContext(ek.handle);
    writeFileSync(join(dir, 'ek-ours.pub'), encodePublic2b(ek.public));
    writeFileSync(join(dir, 'secret.bin'), new Uint8Array(32).fill(3));
    const name = objectName(ak.public);
    const mc = await time(200, () =>
      makeCredential({ ekPublic: ek.public, objectName: name, credential: new Uint8Array(32) }),
    );
    const mcTools = await time(10, () =>
      tool([
        'tpm2_makecredential',
        '-T',
        'none',
        '-u',
        'ek-ours.pub',
        '-s',
        'secret.bin',
        '-n',
        toHex(name),
        '-o',
        'c.out',
      ]),
    );
    rows.push(['MakeCredential (RSA EK)', mc, mcTools]);

    // Quote verification: ours in process vs tpm2_checkquote (signature + nonce only).
    const verifyOnce = () =>
      verifyQuote({
        akPublic: ak.public,
        attest: quote.attest,
        signature: quote.signatureBytes,
        nonce,
        pcrs,
      });
    const vq = await time(2000, verifyOnce);
    writeFileSync(join(dir, 'our-ak.pub'), encodePublic2b(ak.public));
    writeFileSync(join(dir, 'our-q.msg'), quote.attest);
    writeFileSync(join(dir, 'our-q.sig'), quote.signatureBytes);
    const vqTools = await time(10, () =>
      tool([
        'tpm2_checkquote',
        '-u',
        'our-ak.pub',
        '-m',
        'our-q.msg',
        '-s',
        'our-q.sig',
        '-q',
        toHex(nonce),
        '-g',
        'sha256',
      ]),
    );
    rows.push(['Verify quote (ECDSA P-256)', vq, vqTools]);

    console.log('\n@warden/tpm vs tpm2-tools on the same swtpm (lower is better)\n');
    console.log(
      `${'operation'.padEnd(32)}${'ours'.padStart(12)}${'tpm2-tools'.padStart(14)}${'tools/ours'.padStart(12)}`,
    );
    for (const [op, ours, theirs] of rows) {
      const ratio = theirs === undefined ? '' : `${(theirs / ours).toFixed(1)}x`;
      console.log(
        `${op.padEnd(32)}${fmt(ours).padStart(12)}${(theirs === undefined ? '-' : fmt(theirs)).padStart(14)}${ratio.padStart(12)}`,
      );
    }
    console.log(`\nquote verifications per second (one core): ${Math.round(1000 / vq)}`);
    console.log('tpm2-tools times include starting the tool (one process per operation).');
  } finally {
    await tpm.close();
    await sw.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
