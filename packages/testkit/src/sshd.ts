/**
 * A real OpenSSH `sshd` as an agentless Warden node: it trusts the cluster's user CA and
 * presents a host certificate made by `wctl auth sign --host`. Runs in a temp dir on a free
 * port, in the foreground (-D), logging to stderr. `registerAgentlessNode` does the whole
 * migration with a running warden: the certificate, the CA, sshd and the node resource.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCli, succeeded } from './cli';
import { freePort, waitForListener } from './ports';

export interface AgentlessSshd {
  port: number;
  log(): string;
  stop(): Promise<void>;
}

/**
 * `hostKeyPrefix` is what `wctl auth sign --out` wrote (PREFIX, PREFIX-cert.pub). `config`:
 * sshd_config lines placed before the defaults (sshd keeps the first value it reads, so they
 * override), e.g. `['X11Forwarding yes', 'LogLevel DEBUG1']`.
 */
export async function startAgentlessSshd(opts: {
  dir: string;
  hostKeyPrefix: string;
  userCaLine: string;
  config?: string[];
}): Promise<AgentlessSshd> {
  if (process.getuid?.() === 0 && !existsSync('/run/sshd')) mkdirSync('/run/sshd', { mode: 0o755 });
  const port = await freePort();
  const caFile = join(opts.dir, 'user_ca.pub');
  writeFileSync(caFile, `${opts.userCaLine.trim()}\n`);
  const cfg = join(opts.dir, 'sshd_config');
  writeFileSync(
    cfg,
    [
      ...(opts.config ?? []),
      `Port ${port}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${opts.hostKeyPrefix}`,
      `HostCertificate ${opts.hostKeyPrefix}-cert.pub`,
      `TrustedUserCAKeys ${caFile}`,
      'AuthorizedKeysFile none',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'PermitRootLogin prohibit-password',
      'UsePAM no',
      `PidFile ${join(opts.dir, 'sshd.pid')}`,
      'Subsystem sftp internal-sftp',
      'LogLevel VERBOSE',
      '',
    ].join('\n'),
  );
  const child: ChildProcess = spawn('/usr/sbin/sshd', ['-D', '-e', '-f', cfg], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let log = '';
  child.stderr!.on('data', (c) => {
    log += c;
  });
  // Ready once the port accepts connections.
  await waitForListener(port, { name: 'sshd', log: () => log, exited: () => child.exitCode !== null });
  return {
    port,
    log: () => log,
    stop: async () => {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    },
  };
}

/**
 * An agentless OpenSSH node registered with the warden at `w` (its admin's `env`, files in its
 * `dir`) as the README's migration does it: the host certificate from `wctl auth sign
 * --host=HOSTNAME`, the openssh user CA from `wctl auth export`, the sshd (`config`: as
 * `startAgentlessSshd`'s) and the node resource (`sub_kind: openssh`, name `id`, `labels` in
 * YAML flow) from `wctl create`. Each step must succeed.
 */
export async function registerAgentlessNode(
  w: { dir: string; env: NodeJS.ProcessEnv },
  o: { hostname: string; id: string; labels?: string; config?: string[] },
): Promise<AgentlessSshd> {
  const wctl = (what: string, args: string[], input?: string) =>
    runCli('wctl', args, { env: w.env, ...(input !== undefined ? { input } : {}) }).then((r) =>
      succeeded(what, r),
    );
  const prefix = join(w.dir, 'agentless_host');
  await wctl('wctl auth sign --host', ['auth', 'sign', `--host=${o.hostname}`, `--out=${prefix}`]);
  const ca = await wctl('wctl auth export --type=openssh', ['auth', 'export', '--type=openssh']);
  const sshd = await startAgentlessSshd({
    dir: w.dir,
    hostKeyPrefix: prefix,
    userCaLine: ca.stdout,
    ...(o.config ? { config: o.config } : {}),
  });
  const node = [
    'kind: node',
    'version: v2',
    'metadata:',
    `  name: ${o.id}`,
    ...(o.labels ? [`  labels: { ${o.labels} }`] : []),
    'spec:',
    `  hostname: ${o.hostname}`,
    `  addr: 127.0.0.1:${sshd.port}`,
    '  sub_kind: openssh',
    '',
  ].join('\n');
  try {
    await wctl('wctl create (node)', ['create', '-'], node);
  } catch (e) {
    await sshd.stop();
    throw e;
  }
  return sshd;
}
