/**
 * A Warden node (SshService) in process, for driving it with the real OpenSSH client:
 * MemoryBackend, services with presets, CAs, a memory audit log; user certificates from the
 * user CA for fresh ECDSA keys written as OpenSSH expects them (key 0600 + key-cert.pub);
 * known_hosts holding only the cluster's `@cert-authority` line; `ssh`/`scp` command lines
 * with no user config, strict host key checking and the node's name as host key alias.
 * Who may import: tests under test/ssh-node/.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { LockResource, RoleResource } from '@warden/api';
import {
  type CertAuthorities,
  createLogger,
  type Logger,
  type MemoryAuditLog,
  type MemoryBackend,
  type Services,
  SshService,
  type SshServiceOptions,
  systemClock,
} from '@warden/server';
import { collectProcess, type ProcessResult } from '@warden/testkit';
import { startCore } from '../support/in-process';

export const CLUSTER = 'warden';
export const HOSTNAME = 'node-1';
/** WARDEN_TEST_LOG=1 shows the node's log on stderr. */
const quiet: Logger =
  process.env.WARDEN_TEST_LOG === '1'
    ? createLogger({ severity: 'debug', format: 'text' })
    : { debug() {}, info() {}, warn() {}, error() {} };

export type RunResult = ProcessResult;

export interface Identity {
  /** Path of the private key; the certificate is `<key>-cert.pub`. */
  key: string;
  cert: string;
}

export interface IssueOptions {
  user?: string;
  roles?: string[];
  logins?: string[];
  traits?: Record<string, string[]>;
  ttlMs?: number;
  /** Issue as if at this time (for expired certificates). */
  now?: number;
  /** Issue from these CAs instead (a foreign cluster). */
  cas?: CertAuthorities;
}

export interface NodeFixture {
  dir: string;
  backend: MemoryBackend;
  services: Services;
  cas: CertAuthorities;
  audit: MemoryAuditLog;
  node: SshService;
  knownHosts: string;
  issue(opts?: IssueOptions): Promise<Identity>;
  /** `ssh` arguments up to and including `login@127.0.0.1`. */
  sshArgs(id: Identity, login: string, extra?: string[]): string[];
  ssh(
    id: Identity,
    login: string,
    command: string[],
    opts?: { input?: string; extra?: string[] },
  ): Promise<RunResult>;
  scp(id: Identity, args: string[]): Promise<RunResult>;
  addRole(
    name: string,
    allow: RoleResource['spec']['allow'],
    deny?: RoleResource['spec']['deny'],
  ): Promise<void>;
  lock(target: LockResource['spec']['target'], message?: string): Promise<LockResource>;
  close(): Promise<void>;
}

/** Runs a command to completion (killed after `timeoutMs`), collecting its output. */
export function run(
  file: string,
  args: string[],
  opts: { input?: string; timeoutMs?: number } = {},
): Promise<RunResult> {
  return collectProcess(spawn(file, args, { stdio: ['pipe', 'pipe', 'pipe'] }), {
    ...(opts.input !== undefined && { input: opts.input }),
    timeout: 'kill',
    timeoutMs: opts.timeoutMs ?? 15_000,
  });
}

/** Resolves when `child` exits (or after `timeoutMs`, killing it). */
export function exited(child: ChildProcess, timeoutMs = 10_000): Promise<number | null> {
  return new Promise((resolve) => {
    if (child.exitCode !== null) return resolve(child.exitCode);
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve(code);
    });
  });
}

export async function startNode(
  opts: Partial<SshServiceOptions> & {
    /** Leave the cluster without a stored cluster_auth_preference (`warden start` stores one). */
    withoutPreference?: boolean;
    /**
     * The node's access checker and session monitor, built over the fixture's services (as
     * `warden start` hands the process's to the node); by default the node builds its own.
     */
    accessFor?: (services: Services) => Promise<NonNullable<SshServiceOptions['access']>>;
  } = {},
): Promise<NodeFixture> {
  const dir = mkdtempSync(join(tmpdir(), 'warden-ssh-node-'));
  const { clock, backend, services, cas, audit } = await startCore(CLUSTER, systemClock);
  // As `warden start` does for a new cluster: the defaults, stored.
  const { withoutPreference, accessFor, ...nodeOpts } = opts;
  if (!withoutPreference) await services.authPreference.upsert(await services.authPreference.get());
  const node = await SshService.start({
    config: {
      enabled: true,
      listenAddr: { host: '127.0.0.1', port: 0 },
      publicAddr: { host: '127.0.0.1', port: 0 },
      hostname: HOSTNAME,
      labels: { env: 'test' },
    },
    dataDir: join(dir, 'data'),
    backend,
    services,
    cas,
    audit,
    clock,
    logger: quiet,
    clusterName: CLUSTER,
    ...(accessFor && { access: await accessFor(services) }),
    ...nodeOpts,
  });
  const knownHosts = join(dir, 'known_hosts');
  writeFileSync(knownHosts, `${cas.exportHostLine()}\n`);

  const options = (id: Identity) => [
    '-F',
    '/dev/null',
    '-o',
    `UserKnownHostsFile=${knownHosts}`,
    '-o',
    'GlobalKnownHostsFile=/dev/null',
    '-o',
    'StrictHostKeyChecking=yes',
    '-o',
    `HostKeyAlias=${HOSTNAME}.${CLUSTER}`,
    '-o',
    'BatchMode=yes',
    '-o',
    'IdentitiesOnly=yes',
    '-o',
    'IdentityAgent=none',
    '-o',
    'ConnectTimeout=5',
    '-i',
    id.key,
  ];
  // ssh takes the first value of an option: `extra` goes first so that it overrides.
  const sshArgs = (id: Identity, login: string, extra: string[] = []) => [
    ...extra,
    ...options(id),
    '-p',
    String(node.port),
    `${login}@127.0.0.1`,
  ];

  return {
    dir,
    backend,
    services,
    cas,
    audit,
    node,
    knownHosts,
    async issue(o = {}) {
      const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
      const logins = o.logins ?? ['root'];
      const { sshCert } = await (o.cas ?? cas).issueUserCertificates({
        user: o.user ?? 'alice',
        roles: o.roles ?? ['access'],
        logins,
        traits: o.traits ?? { logins },
        publicKey,
        ttlMs: o.ttlMs ?? 3600_000,
        ...(o.now !== undefined && { now: o.now }),
      });
      const key = join(dir, `id-${randomUUID()}`);
      writeFileSync(key, privateKey.export({ type: 'sec1', format: 'pem' }) as string, { mode: 0o600 });
      writeFileSync(`${key}-cert.pub`, `${sshCert}\n`);
      return { key, cert: `${key}-cert.pub` };
    },
    sshArgs,
    ssh(id, login, command, o = {}) {
      return run('ssh', [...sshArgs(id, login, o.extra), ...command], { input: o.input });
    },
    scp(id, args) {
      return run('scp', [...options(id), '-P', String(node.port), ...args]);
    },
    async addRole(name, allow, deny = {}) {
      await services.roles.create({
        kind: 'role',
        version: 'v7',
        metadata: { name },
        spec: { options: {}, allow, deny },
      });
    },
    lock(target, message) {
      return services.locks.create({
        kind: 'lock',
        version: 'v2',
        metadata: { name: randomUUID() },
        spec: { target, ...(message !== undefined && { message }) },
      });
    },
    async close() {
      await node.close();
      await backend.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
