/**
 * A real OpenSSH sshd in a temporary directory for the SSH client tests: a test user CA
 * (TrustedUserCAKeys), a host key with a host certificate from a test host CA (`ssh-keygen -s
 * -h`), the user's ECDSA P-256 key in PKCS#8 (as `wsh login` stores it) and user certificates
 * from `ssh-keygen -s`. Listens on 127.0.0.1 on a free port; the login is the OS user running
 * the tests (sshd running as non-root can only log in as itself).
 * Who may import: tests under test/ssh-client/.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect as netConnect } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { parseAuthorizedKey } from '@warden/api';
import { connectNode, hostCaKeys, type NodeSsh, type NodeSshOptions } from '@warden/client';
import { freePort } from '@warden/testkit';

export interface SshdOptions {
  /** Host key type (default ed25519). */
  hostKeyType?: 'ed25519' | 'ecdsa';
  /** Serve a host certificate (default true); false: only the plain host key. */
  hostCert?: boolean;
  /** Principals of the host certificate (default node1, node1.example). */
  hostPrincipals?: string[];
}

export interface Sshd {
  dir: string;
  port: number;
  /** The OS user the tests log in as. */
  login: string;
  /** PKCS#8 PEM of the user's key (key.pem). */
  keyPem: string;
  /** User certificate for `login` with the standard permit-* extensions (key-cert.pub). */
  userCert: string;
  /** `@cert-authority *.example,example <host CA>` (known_hosts). */
  knownHosts: string;
  hostCaKeys: KeyObject[];
  /** A user certificate from ssh-keygen for the same key, with extra `ssh-keygen -s` flags. */
  signUserCert(flags: string[], principals?: string[]): string;
  /** Connects with the fixture's identity; fields of `opts` override. */
  connect(opts?: Partial<NodeSshOptions>): Promise<NodeSsh>;
  /** sshd's log so far. */
  log(): string;
  /**
   * Resolves with the log once it matches `re`: sshd writes a line after the client saw the
   * event (a login is logged after the client's userauth succeeded), so read it this way.
   */
  waitForLog(re: RegExp, timeoutMs?: number): Promise<string>;
  stop(): Promise<void>;
}

function keygen(args: string[]): void {
  const r = spawnSync('ssh-keygen', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ssh-keygen ${args.join(' ')}: ${r.stderr}`);
}

/** Starts sshd; resolves once it listens. */
export async function startSshd(opts: SshdOptions = {}): Promise<Sshd> {
  const dir = mkdtempSync(join(tmpdir(), 'warden-sshd-'));
  const p = (f: string) => join(dir, f);
  const login = userInfo().username;
  // sshd started by root needs its privilege separation directory (systemd creates it).
  if (process.getuid?.() === 0 && !existsSync('/run/sshd')) mkdirSync('/run/sshd', { mode: 0o755 });

  keygen(['-q', '-t', 'ed25519', '-N', '', '-C', 'test host CA', '-f', p('host_ca')]);
  keygen(['-q', '-t', 'ed25519', '-N', '', '-C', 'test user CA', '-f', p('user_ca')]);
  const hostKeyType = opts.hostKeyType ?? 'ed25519';
  keygen([
    '-q',
    '-t',
    hostKeyType,
    ...(hostKeyType === 'ecdsa' ? ['-b', '256'] : []),
    '-N',
    '',
    '-f',
    p('host'),
  ]);
  const hostPrincipals = opts.hostPrincipals ?? ['node1', 'node1.example'];
  keygen([
    '-q',
    '-s',
    p('host_ca'),
    '-h',
    '-I',
    'node1',
    '-n',
    hostPrincipals.join(','),
    '-V',
    '-5m:+1h',
    p('host.pub'),
  ]);

  // The user's key as `wsh login` stores it: ECDSA P-256, PKCS#8 PEM, mode 0600.
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const keyPem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  writeFileSync(p('key.pem'), keyPem, { mode: 0o600 });
  const pub = spawnSync('ssh-keygen', ['-y', '-f', p('key.pem')], { encoding: 'utf8' });
  if (pub.status !== 0) throw new Error(`ssh-keygen -y: ${pub.stderr}`);
  writeFileSync(p('key.pub'), pub.stdout);
  let certN = 0;
  const signUserCert = (flags: string[], principals: string[] = [login]): string => {
    const base = p(`user${certN++}`);
    writeFileSync(`${base}.pub`, pub.stdout);
    keygen([
      '-q',
      '-s',
      p('user_ca'),
      '-I',
      'alice',
      '-n',
      principals.join(','),
      '-V',
      '-5m:+1h',
      ...flags,
      `${base}.pub`,
    ]);
    return readFileSync(`${base}-cert.pub`, 'utf8').trim();
  };
  const userCert = signUserCert([]);
  writeFileSync(p('key-cert.pub'), `${userCert}\n`);
  const hostCaLine = readFileSync(p('host_ca.pub'), 'utf8').trim();
  const knownHosts = `@cert-authority *.example,example ${hostCaLine}`;
  writeFileSync(p('known_hosts'), `${knownHosts}\n`);

  const config = [
    'ListenAddress 127.0.0.1',
    `HostKey ${p('host')}`,
    ...(opts.hostCert === false ? [] : [`HostCertificate ${p('host-cert.pub')}`]),
    `TrustedUserCAKeys ${p('user_ca.pub')}`,
    'AuthorizedKeysFile none',
    'PubkeyAuthentication yes',
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    'UsePAM no',
    'StrictModes no',
    'PermitRootLogin prohibit-password',
    'AllowTcpForwarding yes',
    'PidFile none',
    'LogLevel VERBOSE',
    'Subsystem sftp internal-sftp',
  ];
  writeFileSync(p('sshd_config'), `${config.join('\n')}\n`);
  chmodSync(p('host'), 0o600);

  let child: ChildProcess | undefined;
  let log = '';
  const waiters = new Set<() => void>();
  let port = 0;
  for (let attempt = 0; attempt < 5 && !child; attempt++) {
    port = await freePort();
    const proc = spawn('/usr/sbin/sshd', ['-D', '-e', '-f', p('sshd_config'), '-p', String(port)], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    const started = await new Promise<boolean>((resolve) => {
      proc.stderr!.on('data', (d: Buffer) => {
        log += d.toString();
        for (const w of [...waiters]) w();
        if (log.includes(`Server listening on 127.0.0.1 port ${port}`)) resolve(true);
      });
      proc.once('exit', () => resolve(false));
    });
    if (started) child = proc;
    else if (!/Address already in use/.test(log)) throw new Error(`sshd did not start:\n${log}`);
  }
  if (!child) throw new Error(`sshd did not start:\n${log}`);
  const sshd = child;

  const caKeys = hostCaKeys(knownHosts);
  return {
    dir,
    port,
    login,
    keyPem,
    userCert,
    knownHosts,
    hostCaKeys: caKeys,
    signUserCert,
    connect: (o = {}) =>
      connectNode({
        stream: netConnect(port, '127.0.0.1'),
        login,
        keyPem,
        sshCert: userCert,
        hostCaKeys: caKeys,
        hostPrincipals: ['node1'],
        nodeName: 'node1',
        ...o,
      }),
    log: () => log,
    waitForLog: (re, timeoutMs = 10_000) =>
      new Promise<string>((resolve, reject) => {
        const check = () => {
          if (!re.test(log)) return;
          waiters.delete(check);
          clearTimeout(timer);
          resolve(log);
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`sshd did not log ${re} within ${timeoutMs} ms:\n${log}`));
        }, timeoutMs);
        waiters.add(check);
        check();
      }),
    stop: async () => {
      if (sshd.exitCode === null) {
        const exited = new Promise((r) => sshd.once('exit', r));
        sshd.kill('SIGTERM');
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** An OpenSSH public key line's KeyObject (for building wrong CAs in tests). */
export function keyOf(line: string): KeyObject {
  return parseAuthorizedKey(line).key;
}
