/**
 * A real software TPM for tests: `swtpm socket` in a temp dir on free loopback ports (the
 * control channel on port + 1, where the tpm2-tools swtpm TCTI looks for it), started
 * with `startup-clear` so it is ready for commands. With `ekCert: true` the state is first
 * manufactured by `swtpm_setup --create-ek-cert` with a local CA (`swtpm_localca`) in the
 * same dir: the TPM then has EK certificates in NV (RSA-2048 at 0x01c00002, ECC P-384 at
 * 0x01c00016), persisted EKs, and the CA certificates are exposed for chain checks.
 * `stop()` kills swtpm and removes the dir. Needs `swtpm` (and `swtpm_setup` for ekCert):
 * guard tests with `requireTool('swtpm')`.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './ports';

const run = promisify(execFile);

export interface SwtpmStartOptions {
  /** Manufacture the TPM with swtpm_setup: EKs and EK certificates from a local CA (~1 s). */
  ekCert?: boolean;
  /**
   * With ekCert: also store the local CA's issuer and root certificates in the EK certificate
   * chain NV indices (0x01c00100, 0x01c00101), as TPM vendors that ship a chain do. Needs
   * tpm2-tools (`requireTool('tpm2_nvdefine')`).
   */
  ekCertChain?: boolean;
}

export interface SwtpmProcess {
  dir: string;
  port: number;
  ctrlPort: number;
  /** The WARDEN_TPM value for this TPM: `swtpm:host=127.0.0.1,port=P`. */
  address: string;
  /** Env for tpm2-tools (TPM2TOOLS_TCTI) and Warden (WARDEN_TPM). */
  env: Record<string, string>;
  /** With ekCert: the CA that signed the EK certificates (CN=swtpm-localca), PEM. */
  issuerCertPem?: string;
  /** With ekCert: the local CA's root (CN=swtpm-localca-rootca), PEM. */
  rootCertPem?: string;
  child: ChildProcess;
  /** Everything swtpm printed. */
  output(): string;
  stop(): Promise<void>;
}

async function manufacture(dir: string, state: string): Promise<void> {
  const localcaConf = join(dir, 'localca.conf');
  writeFileSync(
    localcaConf,
    [
      `statedir = ${dir}`,
      `signingkey = ${join(dir, 'signkey.pem')}`,
      `issuercert = ${join(dir, 'issuercert.pem')}`,
      `certserial = ${join(dir, 'certserial')}`,
      '',
    ].join('\n'),
  );
  const localcaOptions = join(dir, 'localca.options');
  writeFileSync(
    localcaOptions,
    '--platform-manufacturer Warden\n--platform-version 2.1\n--platform-model swtpm\n',
  );
  const setupConf = join(dir, 'setup.conf');
  writeFileSync(
    setupConf,
    [
      'create_certs_tool = swtpm_localca',
      `create_certs_tool_config = ${localcaConf}`,
      `create_certs_tool_options = ${localcaOptions}`,
      'active_pcr_banks = sha256',
      '',
    ].join('\n'),
  );
  await run(
    'swtpm_setup',
    ['--tpm2', '--tpmstate', state, '--config', setupConf, '--create-ek-cert', '--overwrite'],
    { cwd: dir, timeout: 60_000 },
  );
}

function isFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

function waitForPort(port: number, child: ChildProcess, deadlineMs: number): Promise<void> {
  const deadline = Date.now() + deadlineMs;
  return new Promise((resolve, reject) => {
    const attempt = () => {
      if (child.exitCode !== null) {
        reject(new Error(`swtpm exited with ${child.exitCode}`));
        return;
      }
      const s = connect({ host: '127.0.0.1', port });
      s.once('connect', () => {
        s.destroy();
        resolve();
      });
      s.once('error', () => {
        s.destroy();
        if (Date.now() > deadline) reject(new Error(`swtpm did not listen on ${port}`));
        else setTimeout(attempt, 20);
      });
    };
    attempt();
  });
}

/**
 * Starts swtpm. Probing the server port leaves swtpm serving the next connection, so the
 * first client connects normally.
 *
 * @example
 *   const tpm = await startSwtpm({ ekCert: true });
 *   try { … Tpm.open({ address: tpm.address }) … } finally { await tpm.stop(); }
 */
export async function startSwtpm(opts: SwtpmStartOptions = {}): Promise<SwtpmProcess> {
  const dir = mkdtempSync(join(tmpdir(), 'warden-swtpm-'));
  const state = join(dir, 'state');
  mkdirSync(state);
  try {
    if (opts.ekCert) await manufacture(dir, state);
    let lastError: unknown;
    for (let attempt = 0; attempt < 10; attempt++) {
      // The tpm2-tools swtpm TCTI expects the control channel on port + 1.
      const port = await freePort();
      const ctrlPort = port + 1;
      if (ctrlPort > 65535 || !(await isFree(ctrlPort))) continue;
      const child = spawn(
        'swtpm',
        [
          'socket',
          '--tpm2',
          '--tpmstate',
          `dir=${state}`,
          '--server',
          `type=tcp,port=${port},bindaddr=127.0.0.1`,
          '--ctrl',
          `type=tcp,port=${ctrlPort},bindaddr=127.0.0.1`,
          '--flags',
          'startup-clear,not-need-init',
        ],
        { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] },
      );
      let out = '';
      child.stdout!.on('data', (c) => {
        out += c;
      });
      child.stderr!.on('data', (c) => {
        out += c;
      });
      try {
        await waitForPort(port, child, 10_000);
      } catch (e) {
        lastError = new Error(`${(e as Error).message}: ${out}`);
        child.kill('SIGKILL');
        continue;
      }
      // If the test process dies without stop(), don't leave swtpm behind.
      const killOnExit = () => child.kill('SIGKILL');
      process.once('exit', killOnExit);
      const address = `swtpm:host=127.0.0.1,port=${port}`;
      const exited = new Promise<void>((resolve) => {
        if (child.exitCode !== null) resolve();
        else child.once('exit', () => resolve());
      });
      const proc: SwtpmProcess = {
        dir,
        port,
        ctrlPort,
        address,
        env: { WARDEN_TPM: address, TPM2TOOLS_TCTI: address },
        issuerCertPem: opts.ekCert ? readFileSync(join(dir, 'issuercert.pem'), 'utf8') : undefined,
        rootCertPem: opts.ekCert
          ? readFileSync(join(dir, 'swtpm-localca-rootca-cert.pem'), 'utf8')
          : undefined,
        child,
        output: () => out,
        async stop() {
          process.off('exit', killOnExit);
          if (child.exitCode === null) {
            child.kill('SIGTERM');
            const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
            await exited;
            clearTimeout(timer);
          }
          rmSync(dir, { recursive: true, force: true });
        },
      };
      if (opts.ekCert && opts.ekCertChain) {
        try {
          await writeEkCertChain(proc, [proc.issuerCertPem!, proc.rootCertPem!]);
        } catch (e) {
          await proc.stop();
          throw e;
        }
      }
      return proc;
    }
    throw lastError ?? new Error('swtpm did not start');
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
}

/** DER of a PEM certificate (or the DER given). */
function certDer(cert: string | Uint8Array): Uint8Array {
  if (typeof cert !== 'string') return cert;
  const b64 = /-----BEGIN CERTIFICATE-----([\s\S]*?)-----END CERTIFICATE-----/.exec(cert)?.[1];
  if (!b64) throw new Error('not a PEM certificate');
  return new Uint8Array(Buffer.from(b64.replace(/\s+/g, ''), 'base64'));
}

/**
 * Stores certificates in the TPM's EK certificate chain NV indices, one per index from
 * 0x01c00100, platform-created and readable without auth as a manufacturer would leave them
 * (tpm2-tools, platform hierarchy: swtpm's platform auth is empty after startup).
 */
export async function writeEkCertChain(tpm: SwtpmProcess, certs: (string | Uint8Array)[]): Promise<void> {
  const env = { ...process.env, TPM2TOOLS_TCTI: tpm.address };
  for (const [i, cert] of certs.entries()) {
    const der = certDer(cert);
    const index = `0x${(0x01c00100 + i).toString(16)}`;
    const file = join(tpm.dir, `chain-${i}.der`);
    writeFileSync(file, der);
    await run(
      'tpm2_nvdefine',
      [
        index,
        '-C',
        'p',
        '-s',
        String(der.length),
        '-a',
        'ppwrite|ppread|ownerread|authread|no_da|platformcreate',
      ],
      { env, timeout: 30_000 },
    );
    await run('tpm2_nvwrite', [index, '-C', 'p', '-i', file], { env, timeout: 30_000 });
  }
}

/**
 * Flips one bit of an NV index the platform may write (an EK certificate: what a tampered
 * TPM or a corrupted NV would present). `fromEnd` counts bytes back from the end of the
 * index: the last bytes of a certificate are its signature.
 */
export async function flipNvBit(tpm: SwtpmProcess, index: number, fromEnd = 3): Promise<void> {
  const env = { ...process.env, TPM2TOOLS_TCTI: tpm.address };
  const hex = `0x${index.toString(16)}`;
  const { stdout } = await run('tpm2_nvread', [hex, '-C', 'o'], { env, encoding: 'buffer', timeout: 30_000 });
  const data = new Uint8Array(stdout as unknown as Buffer);
  const at = data.length - fromEnd;
  const file = join(tpm.dir, 'flipped.bin');
  writeFileSync(file, Uint8Array.of(data[at]! ^ 0x01));
  await run('tpm2_nvwrite', [hex, '-C', 'p', '--offset', String(at), '-i', file], { env, timeout: 30_000 });
}
