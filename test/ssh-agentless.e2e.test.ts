/**
 * Agentless OpenSSH nodes behind the proxy (issue 15 item 14, DESIGN §4), with a real
 * `warden start` and a real OpenSSH `sshd` that trusts only the `openssh` CA:
 *
 * - a user's own certificate sent straight to the sshd is refused (it used to open the node,
 *   skipping locks and device trust, while the node trusted the user CA);
 * - through the proxy it works, with `wsh ssh` and with plain `ssh`/`scp` via `wsh config`: the
 *   proxy logs in with a per-session certificate (principal = the login, one minute, key ID
 *   naming the user and the session);
 * - a lock ends open sessions and the user reads the lock message (the cut agentless session
 *   used to print nothing); the refusal and the sessions are audited with the node's ID and
 *   hostname.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer, connect as netConnect } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { AuditEvent } from '@warden/api';
import {
  type AgentlessSshd,
  collectProcess,
  freePort,
  inviteAndSignUp,
  registerAgentlessNode,
  requireTool,
  runCli,
  spawnCli,
  startWarden,
  trackProcess,
  type WardenProcess,
} from '@warden/testkit';

const PASSWORD = 'correct horse battery staple';
const NODE_ID = '6b1f4d2e-7c3a-4e5f-8a9b-0c1d2e3f4a5b';
const ssh = requireTool('ssh');
const sshd = requireTool('sshd');

describe('agentless OpenSSH node behind the proxy (openssh CA)', { skip: ssh.skip || sshd.skip }, () => {
  let w: WardenProcess;
  let node: AgentlessSshd;
  let cluster = '';
  /** alice's `wsh config` file, and the paths it names. */
  let sshConfig = '';
  let files: { identity: string; certificate: string; knownHosts: string };
  const env = (user: string) => ({ ...w.env, WARDEN_HOME: join(w.dir, `home-${user}`) });
  const wsh = (user: string, args: string[], input?: string) =>
    runCli('wsh', args, { env: env(user), input });
  const wctl = (args: string[], input?: string) => runCli('wctl', args, { env: w.env, input });
  /**
   * Plain `ssh` run to its end without blocking the event loop: this process reads the logs of
   * warden and of the agentless sshd (VERBOSE) from pipes, and a spawnSync would leave them
   * undrained — once one fills, that server blocks on its log write and the session stalls.
   */
  const openssh = (args: string[], input = '') =>
    collectProcess(spawn('ssh', ['-F', sshConfig, ...args], { env: { ...process.env, ...env('alice') } }), {
      input,
    });
  /** Plain `ssh` in the background, shaped like spawnCli's result. */
  const spawnOpenSsh = (args: string[]) =>
    trackProcess(
      spawn('ssh', ['-F', sshConfig, ...args], {
        env: { ...process.env, ...env('alice') },
        stdio: ['pipe', 'pipe', 'pipe'],
      }),
    );
  const events = async (args: string[]): Promise<AuditEvent[]> => {
    const r = await wctl(['audit', 'search', '--format=json', ...args]);
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout) as AuditEvent[];
  };
  async function waitForEvent(args: string[], pick: (e: AuditEvent) => boolean): Promise<AuditEvent> {
    for (const until = Date.now() + 10_000; Date.now() < until; ) {
      const found = (await events(args)).find(pick);
      if (found) return found;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.fail(`no audit event for ${args.join(' ')}`);
  }

  async function addUser(user: string, logins: string): Promise<void> {
    await inviteAndSignUp(w, user, { roles: 'access', logins, password: PASSWORD, env: env(user) });
    const l = await wsh(user, ['login', `--proxy=${w.proxy}`, `--user=${user}`], `${PASSWORD}\n`);
    assert.equal(l.code, 0, l.stderr);
  }

  before(async () => {
    w = await startWarden({
      nodeName: 'node-1',
      configYaml: 'auth_service:\n  authentication:\n    second_factor: "off"\n',
    });
    await addUser('alice', 'root');
    // As the README's migration: the node's host certificate, and TrustedUserCAKeys = openssh CA.
    node = await registerAgentlessNode(w, { hostname: 'agentless-1', id: NODE_ID, labels: 'env: test' });
    cluster = JSON.parse((await wsh('alice', ['status', '--format=json'])).stdout).cluster as string;
    const cfg = await wsh('alice', ['config']);
    assert.equal(cfg.code, 0, cfg.stderr);
    sshConfig = join(w.dir, 'ssh_config_alice');
    writeFileSync(sshConfig, cfg.stdout);
    const path = (name: string) => new RegExp(`^\\s*${name} "?([^"\\n]+)"?$`, 'm').exec(cfg.stdout)![1]!;
    files = {
      identity: path('IdentityFile'),
      certificate: path('CertificateFile'),
      knownHosts: path('UserKnownHostsFile'),
    };
  });
  after(async () => {
    await node?.stop();
    await w?.stop();
  });

  test('wctl auth export --type=openssh is its own CA, listed with the others', async () => {
    const openCa = (await wctl(['auth', 'export', '--type=openssh'])).stdout.trim();
    const userCa = (await wctl(['auth', 'export', '--type=user'])).stdout.trim();
    assert.match(openCa, /^ssh-ed25519 AAAA\S+ type=openssh$/);
    assert.notEqual(openCa.split(' ')[1], userCa.split(' ')[1]);
    const cas = JSON.parse((await wctl(['get', 'cert_authorities', '--format=json'])).stdout) as {
      metadata: { name: string };
      spec: { ssh_public_keys: string[] };
    }[];
    const listed = cas.find((c) => c.metadata.name === 'openssh');
    assert.ok(listed, JSON.stringify(cas.map((c) => c.metadata.name)));
    assert.equal(listed.spec.ssh_public_keys[0]?.split(' ')[1], openCa.split(' ')[1]);
    const bad = await wctl(['auth', 'export', '--type=nope']);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /openssh/);
  });

  test("a user's own certificate sent straight to the node is refused", async () => {
    const direct = await collectProcess(
      spawn('ssh', [
        '-F',
        '/dev/null',
        '-i',
        files.identity,
        '-o',
        `CertificateFile=${files.certificate}`,
        '-o',
        `UserKnownHostsFile=${files.knownHosts}`,
        '-o',
        `HostKeyAlias=agentless-1.${cluster}`,
        '-o',
        'StrictHostKeyChecking=yes',
        '-o',
        'IdentitiesOnly=yes',
        '-o',
        'IdentityAgent=none',
        '-o',
        'BatchMode=yes',
        '-p',
        String(node.port),
        'root@127.0.0.1',
        'echo',
        'should-not-run',
      ]),
    );
    assert.equal(direct.code, 255, direct.stderr);
    assert.match(direct.stderr, /Permission denied \(publickey\)/);
    assert.doesNotMatch(direct.stdout, /should-not-run/);
  });

  test('through the proxy: wsh ssh runs commands with exit status and stdin; the node saw a per-session certificate', async () => {
    const res = await wsh('alice', ['ssh', 'root@agentless-1', 'echo', 'agentless-ok']);
    assert.equal(res.code, 0, `${res.stderr}\n${node.log()}`);
    assert.equal(res.stdout, 'agentless-ok\n');
    const status = await wsh('alice', ['ssh', 'root@agentless-1', 'sh -c "echo out; echo err >&2; exit 3"']);
    assert.equal(status.code, 3, status.stderr);
    assert.equal(status.stdout, 'out\n');
    assert.match(status.stderr, /err/);
    const cat = await wsh('alice', ['ssh', 'root@agentless-1', 'cat'], 'through the proxy\n');
    assert.equal(cat.stdout, 'through the proxy\n');
    // sshd logs the certificate it accepted: the openssh CA's, key ID "<user> session <id>".
    assert.match(
      node.log(),
      /Accepted publickey for root .*ID alice session [0-9a-f-]{36} \(serial \d+\) CA ED25519/,
    );
    const allowed = await waitForEvent(
      ['--type=access.allowed', '--user=alice'],
      (e) => e.protocol === 'ssh',
    );
    assert.deepEqual(
      { ...(allowed.resource as object) },
      { kind: 'node', name: NODE_ID, hostname: 'agentless-1' },
    );
    const end = await waitForEvent(
      ['--type=session.end', '--user=alice'],
      (e) => (e as { exit_code?: number }).exit_code === 3,
    );
    assert.equal((end.resource as { hostname: string }).hostname, 'agentless-1');
    assert.equal((end.resource as { name: string }).name, NODE_ID);
    assert.equal((end as { login?: string }).login, 'root');
  });

  test('through the proxy: plain ssh and scp with `wsh config`; -L forwards through the node', async () => {
    const run = await openssh([`root@agentless-1.${cluster}`, 'echo', 'via-openssh']);
    assert.equal(run.code, 0, `${run.stderr}\n${w.output().slice(-3000)}`);
    assert.equal(run.stdout, 'via-openssh\n');
    const src = join(w.dir, 'agentless-payload.bin');
    writeFileSync(src, Buffer.alloc(128 * 1024, 9));
    const dest = join(w.dir, 'agentless-copy.bin');
    const scp = await collectProcess(
      spawn('scp', ['-F', sshConfig, src, `root@agentless-1.${cluster}:${dest}`], {
        env: { ...process.env, ...env('alice') },
      }),
    );
    assert.equal(scp.code, 0, scp.stderr);
    assert.deepEqual(readFileSync(dest), readFileSync(src));

    const echo = createServer((s) => s.pipe(s));
    await new Promise<void>((r) => echo.listen(0, '127.0.0.1', () => r()));
    const target = (echo.address() as { port: number }).port;
    const local = await freePort();
    const fwd = spawnCli('wsh', ['ssh', '-N', '-L', `${local}:127.0.0.1:${target}`, 'root@agentless-1'], {
      env: env('alice'),
    });
    try {
      let reply = '';
      for (let i = 0; i < 100 && !reply; i++) {
        reply = await new Promise<string>((res) => {
          const s = netConnect({ host: '127.0.0.1', port: local }, () => s.write('ping via agentless'));
          s.on('data', (d) => {
            res(d.toString());
            s.destroy();
          });
          s.on('error', () => res(''));
        });
        if (!reply) await new Promise((r) => setTimeout(r, 100));
      }
      assert.equal(reply, 'ping via agentless');
      const audited = await waitForEvent(
        ['--type=session.start', '--user=alice'],
        (e) => (e as { session_type?: string }).session_type === 'direct-tcpip',
      );
      assert.equal((audited as { forward_addr?: string }).forward_addr, `127.0.0.1:${target}`);
      assert.equal((audited.resource as { hostname: string }).hostname, 'agentless-1');
    } finally {
      fwd.child.kill('SIGTERM');
      echo.close();
    }
  });

  test('a lock ends open sessions with the lock message (wsh with a terminal, plain ssh); new ones are refused and audited', async () => {
    const viaWsh = spawnCli('wsh', ['ssh', '-t', 'root@agentless-1', 'echo ready; sleep 60'], {
      env: env('alice'),
    });
    const viaSsh = spawnOpenSsh([`root@agentless-1.${cluster}`, 'echo ready; sleep 60']);
    for (const s of [viaWsh, viaSsh]) {
      for (let i = 0; i < 300 && !s.stdout().includes('ready'); i++)
        await new Promise((r) => setTimeout(r, 50));
      assert.match(s.stdout(), /ready/, s.stderr());
    }
    const lock = await wctl(['lock', '--user=alice', '--message=incident 9', '--ttl=1h']);
    assert.equal(lock.code, 0, lock.stderr);
    for (const s of [viaWsh, viaSsh]) {
      const code = await Promise.race([
        s.exited,
        new Promise<string>((r) => setTimeout(() => r('still running'), 10_000)),
      ]);
      assert.notEqual(code, 'still running', 'the lock ended the session');
      assert.match(s.stdout() + s.stderr(), /ERROR: lock targeting User:"alice" is in force: incident 9/);
    }
    const again = await wsh('alice', ['ssh', 'root@agentless-1', 'true']);
    assert.equal(again.code, 255);
    assert.match(again.stderr, /lock targeting User:"alice" is in force: incident 9/);
    const denied = await waitForEvent(['--type=access.denied', '--user=alice'], () => true);
    assert.match(String(denied.error), /incident 9/);
    assert.equal((denied.resource as { hostname: string }).hostname, 'agentless-1');
    const ended = await waitForEvent(['--type=session.end', '--user=alice'], (e) =>
      /incident 9/.test(String((e as { terminated_by?: string }).terminated_by)),
    );
    assert.equal((ended.resource as { name: string }).name, NODE_ID);
  });
});
