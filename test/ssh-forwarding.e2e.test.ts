/**
 * Agent and X11 forwarding follow the roles (issue 16 item 11): a user certificate carries
 * `permit-agent-forwarding` / `permit-X11-forwarding` only when a role's options
 * `permit_agent_forwarding` / `permit_x11_forwarding` say so, never `permit-user-rc`; both an
 * agentless OpenSSH sshd (through the proxy, which relays the agent only then) and the Warden
 * node refuse agent forwarding without it. Real `warden start`, real OpenSSH `ssh -A` with the
 * `wsh config` block, a real `ssh-agent` holding a key, `ssh-add -l` on the far side. With the
 * same cluster: `wctl get nodes` and the audit table name nodes by host name (item 7), and the
 * `Match exec` form of `wsh config` with OpenSSH 9.2 (`ssh -G` and real connections). X11
 * (`ssh -X`) and remote forwarding (`ssh -R`) are refused — through the proxy to an agentless
 * sshd that would allow both, the request never reaching it (issue 15 follow-up).
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  type AgentlessSshd,
  inviteAndSignUp,
  registerAgentlessNode,
  requireTool,
  runCli,
  startWarden,
  type WardenProcess,
} from '@warden/testkit';

const PASSWORD = 'correct horse battery staple';

/**
 * Runs OpenSSH's `ssh` without blocking the event loop: the agentless sshd logs to a pipe this
 * process reads (at DEBUG1, a lot), and a spawnSync would let that pipe fill and stall sshd.
 */
function runSsh(
  args: string[],
  env: NodeJS.ProcessEnv,
): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('ssh', args, { env, stdio: ['ignore', 'pipe', 'pipe'], timeout: 30_000 });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => {
      stdout += c;
    });
    child.stderr.setEncoding('utf8').on('data', (c: string) => {
      stderr += c;
    });
    child.on('error', reject);
    child.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}
const skip =
  requireTool('ssh').skip ||
  requireTool('sshd').skip ||
  requireTool('ssh-agent').skip ||
  requireTool('ssh-add').skip ||
  requireTool('ssh-keygen').skip;

describe('agent forwarding follows the roles', { skip }, () => {
  let w: WardenProcess;
  let agentless: AgentlessSshd;
  let agent: ChildProcess;
  let agentSock: string;
  let keyFingerprint: string;
  const home = (user: string) => join(w.dir, `home-${user}`);
  const wsh = (user: string, args: string[]) =>
    runCli('wsh', args, { env: { ...w.env, WARDEN_HOME: home(user) } });
  const wctl = (args: string[], input?: string) => runCli('wctl', args, { env: w.env, input });

  async function addUser(user: string, roles: string): Promise<void> {
    await inviteAndSignUp(w, user, {
      roles,
      logins: 'root',
      password: PASSWORD,
      env: { ...w.env, WARDEN_HOME: home(user) },
    });
    const cfg = await wsh(user, ['config']);
    assert.equal(cfg.code, 0, cfg.stderr);
    writeFileSync(join(w.dir, `ssh_config-${user}`), cfg.stdout);
  }

  /** `ssh -A` (or -X) to the node, running `ssh-add -l` there against the forwarded agent. */
  function sshAddThere(user: string, node: string, flag = '-A') {
    return runSsh(
      [
        '-F',
        join(w.dir, `ssh_config-${user}`),
        '-o',
        'BatchMode=yes',
        flag,
        `root@${node}`,
        'ssh-add -l; echo "ssh-add=$?"; echo "sock=$SSH_AUTH_SOCK"',
      ],
      { ...process.env, ...w.env, WARDEN_HOME: home(user), SSH_AUTH_SOCK: agentSock },
    );
  }

  before(async () => {
    w = await startWarden({ nodeName: 'node-1' });
    // A local agent holding one key: what `ssh -A` forwards.
    agentSock = join(w.dir, 'agent.sock');
    agent = spawn('ssh-agent', ['-D', '-a', agentSock], { stdio: 'ignore' });
    for (let i = 0; i < 100 && !existsSync(agentSock); i++) await new Promise((r) => setTimeout(r, 50));
    const key = join(w.dir, 'forwarded_key');
    assert.equal(
      spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'fwd-test', '-f', key]).status,
      0,
    );
    const added = spawnSync('ssh-add', [key], {
      env: { ...process.env, SSH_AUTH_SOCK: agentSock },
      encoding: 'utf8',
    });
    assert.equal(added.status, 0, added.stderr);
    keyFingerprint = spawnSync('ssh-keygen', ['-l', '-f', `${key}.pub`], { encoding: 'utf8' }).stdout.split(
      ' ',
    )[1]!;
    assert.match(keyFingerprint, /^SHA256:/);

    const role = [
      'kind: role',
      'version: v7',
      'metadata: { name: forwarder }',
      'spec:',
      '  options: { permit_agent_forwarding: true }',
      '',
    ].join('\n');
    const created = await wctl(['create', '-'], role);
    assert.equal(created.code, 0, created.stderr);

    // An sshd that would forward X11 and remote ports for a certificate that permits them, and
    // logs (DEBUG1) every channel and global request it gets: what the proxy refuses must
    // never reach it.
    agentless = await registerAgentlessNode(w, {
      hostname: 'agentless-1',
      id: '0d5f3c1a-6a2b-4c1d-9e8f-0a1b2c3d4e5f',
      config: ['X11Forwarding yes', 'AllowTcpForwarding yes', 'LogLevel DEBUG1'],
    });

    const x11 = [
      'kind: role',
      'version: v7',
      'metadata: { name: x11 }',
      'spec:',
      '  options: { permit_x11_forwarding: true }',
      '',
    ].join('\n');
    assert.equal((await wctl(['create', '-'], x11)).code, 0);

    await addUser('alice', 'access');
    await addUser('carol', 'access,forwarder');
    await addUser('xavier', 'access,x11');
  });
  after(async () => {
    agent?.kill();
    await agentless?.stop();
    await w?.stop();
  });

  test('the certificate carries permit-agent-forwarding only for a role that permits it; never permit-user-rc', async () => {
    const ext = async (user: string) =>
      (JSON.parse((await wsh(user, ['status', '--format=json'])).stdout) as { extensions: string[] })
        .extensions;
    const alice = await ext('alice');
    assert.ok(!alice.includes('permit-agent-forwarding'), alice.join(' '));
    assert.ok(!alice.includes('permit-X11-forwarding'));
    assert.ok(!alice.includes('permit-user-rc'));
    assert.ok(alice.includes('permit-pty') && alice.includes('permit-port-forwarding'));
    const carol = await ext('carol');
    assert.ok(carol.includes('permit-agent-forwarding'), carol.join(' '));
    assert.ok(!carol.includes('permit-X11-forwarding'));
    assert.ok(!carol.includes('permit-user-rc'));
  });

  for (const node of ['node-1', 'agentless-1']) {
    const kind = node === 'node-1' ? 'the Warden node' : 'an agentless sshd';
    test(`ssh -A to ${kind}: refused without the role option`, async () => {
      const r = await sshAddThere('alice', node);
      assert.equal(r.status, 0, `${r.stderr}\n${node === 'agentless-1' ? agentless.log() : ''}`);
      assert.match(r.stdout, /ssh-add=2\n/, 'no agent on the far side');
      assert.match(r.stdout, /sock=\n/);
      assert.ok(!r.stdout.includes(keyFingerprint));
    });

    test(`ssh -A to ${kind}: the local agent's key is listed there with the role option`, async () => {
      const r = await sshAddThere('carol', node);
      assert.equal(r.status, 0, `${r.stderr}\n${node === 'agentless-1' ? agentless.log() : ''}`);
      assert.match(r.stdout, /ssh-add=0\n/, r.stdout);
      assert.ok(r.stdout.includes(keyFingerprint), r.stdout);
      assert.ok(r.stdout.includes('fwd-test'));
      if (node === 'node-1') {
        // A private socket in a private directory, removed when the connection ends.
        const sock = /sock=(\S+)/.exec(r.stdout)![1]!;
        assert.match(sock, /warden-agent-[^/]+\/agent\.\d+$/);
        for (let i = 0; i < 100 && existsSync(sock); i++) await new Promise((res) => setTimeout(res, 20));
        assert.ok(!existsSync(sock), 'the agent socket is removed with the connection');
      }
    });
  }

  test('wsh ssh -A forwards the agent only with the role option; without it, a warning and no agent', async () => {
    const run = (user: string, node: string) =>
      runCli('wsh', ['ssh', '-A', `root@${node}`, 'ssh-add -l; echo "ssh-add=$?"'], {
        env: { ...w.env, WARDEN_HOME: home(user), SSH_AUTH_SOCK: agentSock },
      });
    for (const node of ['node-1', 'agentless-1']) {
      const carol = await run('carol', node);
      assert.equal(carol.code, 0, carol.stderr);
      assert.ok(carol.stdout.includes(keyFingerprint), `${node}: ${carol.stdout}`);
      assert.match(carol.stdout, /ssh-add=0\n/);
      const alice = await run('alice', node);
      assert.equal(alice.code, 0, alice.stderr);
      assert.match(alice.stdout, /ssh-add=2\n/);
      assert.match(alice.stderr, /WARNING: -A: your roles do not permit agent forwarding/);
    }
  });

  /** Plain OpenSSH through the proxy (`wsh config`), as `user`, with `args` before the host. */
  function ssh(user: string, node: string, args: string[], command: string) {
    return runSsh(
      ['-F', join(w.dir, `ssh_config-${user}`), '-o', 'BatchMode=yes', ...args, `root@${node}`, command],
      { ...process.env, ...w.env, WARDEN_HOME: home(user), DISPLAY: ':0' },
    );
  }

  test('ssh -X to the Warden node: X11 forwarding is refused', async () => {
    const r = await ssh('carol', 'node-1', ['-o', 'ForwardX11Trusted=yes', '-X'], 'echo "display=$DISPLAY"');
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, 'display=\n');
    assert.match(r.stderr, /X11 forwarding request failed/);
  });

  // Issue 15 follow-up: agentless nodes (the proxy ends their sessions) refuse X11 and remote
  // forwarding; the node never sees the request.
  test('ssh -X to an agentless sshd: X11 refused by the proxy, whether or not a role permits it', async () => {
    const xavier = (await wsh('xavier', ['status', '--format=json'])).stdout;
    assert.ok(xavier.includes('permit-X11-forwarding'), 'the x11 role puts it in the certificate');
    for (const user of ['alice', 'xavier']) {
      const r = await ssh(
        user,
        'agentless-1',
        ['-o', 'ForwardX11Trusted=yes', '-X'],
        'echo "display=$DISPLAY"',
      );
      assert.equal(r.status, 0, `${user}: ${r.stderr}\n${agentless.log()}`);
      assert.equal(r.stdout, 'display=\n', user);
      assert.match(r.stderr, /X11 forwarding request failed/, user);
    }
    // The session ran on the node (its requests are logged), but no x11-req ever reached it.
    assert.match(agentless.log(), /req exec/);
    assert.doesNotMatch(agentless.log(), /x11-req/);
  });

  for (const node of ['agentless-1', 'node-1']) {
    const kind = node === 'node-1' ? 'the Warden node' : 'an agentless sshd';
    test(`ssh -R to ${kind}: remote port forwarding refused, for any role`, async () => {
      for (const user of ['alice', 'carol']) {
        const r = await ssh(
          user,
          node,
          ['-o', 'ExitOnForwardFailure=yes', '-R', '0:127.0.0.1:9'],
          'echo ran',
        );
        assert.equal(r.status, 255, `${user}: ${r.stdout}${r.stderr}`);
        assert.match(r.stderr, /remote port forwarding failed/, user);
        assert.equal(r.stdout, '', 'the command did not run');
        // Without ExitOnForwardFailure the session runs, still without the forward.
        const w2 = await ssh(user, node, ['-R', '0:127.0.0.1:9'], 'echo ran');
        assert.equal(w2.status, 0, w2.stderr);
        assert.equal(w2.stdout, 'ran\n');
        assert.match(w2.stderr, /remote port forwarding failed/);
      }
      if (node === 'agentless-1') assert.doesNotMatch(agentless.log(), /tcpip-forward/);
    });
  }

  test('wctl get nodes and the audit table name nodes by host name and address (issue 16 item 7)', async () => {
    const nodes = await wctl(['get', 'nodes']);
    assert.equal(nodes.code, 0, nodes.stderr);
    const lines = nodes.stdout.trimEnd().split('\n');
    assert.match(lines[0]!, /^Hostname +Address +Sort +Labels +ID$/);
    assert.match(
      nodes.stdout,
      new RegExp(
        `agentless-1 +127\\.0\\.0\\.1:${agentless.port} +agentless +0d5f3c1a-6a2b-4c1d-9e8f-0a1b2c3d4e5f`,
      ),
    );
    assert.match(
      nodes.stdout,
      new RegExp(`node-1 +${w.sshAddr.replace(/\./g, '\\.')} +warden +env=test +[0-9a-f-]{36}`),
    );
    // JSON keeps everything, the ID included.
    const json = JSON.parse((await wctl(['get', 'nodes', '--format=json'])).stdout) as {
      metadata: { name: string };
      spec: { hostname: string; addr: string };
    }[];
    const id = json.find((n) => n.spec.hostname === 'node-1')!.metadata.name;
    assert.match(id, /^[0-9a-f-]{36}$/);
    const audit = await wctl(['audit', 'search', '--type=session.start', '--user=carol']);
    assert.equal(audit.code, 0, audit.stderr);
    assert.match(audit.stdout, /carol +node\/node-1 +success/);
    assert.ok(!audit.stdout.includes(id), 'the table shows the host name, not the ID');
    const auditJson = JSON.parse(
      (await wctl(['audit', 'search', '--type=session.start', '--user=carol', '--format=json'])).stdout,
    ) as { resource: { name: string; hostname?: string } }[];
    assert.ok(auditJson.some((e) => e.resource.name === id && e.resource.hostname === 'node-1'));
  });

  test('wsh config --form=match: a Match exec block that OpenSSH 9.2 resolves and connects through', async () => {
    const env = { ...process.env, ...w.env, WARDEN_HOME: home('alice') };
    const cluster = JSON.parse((await wsh('alice', ['status', '--format=json'])).stdout).cluster as string;
    // The check the block runs: nodes by bare name and NAME.<cluster>; anything else is not ours.
    for (const [host, code] of [
      ['node-1', 0],
      [`node-1.${cluster}`, 0],
      ['agentless-1', 0],
      ['github', 1],
      ['node-1.elsewhere', 1],
    ] as const) {
      assert.equal((await wsh('alice', ['config', `--is-node=${host}`])).code, code, host);
    }
    const cfg = await wsh('alice', ['config', '--form=match']);
    assert.equal(cfg.code, 0, cfg.stderr);
    assert.match(cfg.stdout, /^Match !host \*\.\S+,\*\.\* exec ".* config --is-node '%h'"$/m);
    const file = join(w.dir, 'ssh_config-match');
    writeFileSync(file, cfg.stdout);
    // ssh -G: what OpenSSH resolves, without connecting.
    const resolved = (host: string) => {
      const r = spawnSync('ssh', ['-G', '-F', file, `root@${host}`], {
        encoding: 'utf8',
        env,
        timeout: 30_000,
      });
      assert.equal(r.status, 0, r.stderr);
      return Object.fromEntries(
        r.stdout.split('\n').map((l) => [l.slice(0, l.indexOf(' ')), l.slice(l.indexOf(' ') + 1)]),
      ) as Record<string, string>;
    };
    const node = resolved('node-1');
    assert.equal(node.hostname, `node-1.${cluster}`);
    assert.match(node.proxycommand ?? '', / proxy ssh --login=%r %h$/);
    assert.match(node.certificatefile ?? '', /key-cert\.pub$/);
    assert.equal(resolved(`agentless-1.${cluster}`).hostname, `agentless-1.${cluster}`);
    const other = resolved('github');
    assert.equal(other.hostname, 'github');
    assert.equal(other.proxycommand, undefined, 'other hosts are left alone');
    // And a real connection by bare name, to the Warden node and to the agentless sshd.
    for (const host of ['node-1', 'agentless-1']) {
      const r = await runSsh(['-F', file, '-o', 'BatchMode=yes', `root@${host}`, 'echo', 'via-match'], env);
      assert.equal(r.status, 0, `${host}: ${r.stderr}`);
      assert.equal(r.stdout, 'via-match\n');
    }
  });
});
