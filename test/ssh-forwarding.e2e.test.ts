/**
 * Agent and X11 forwarding follow the roles (issue 16 item 11): a user certificate carries
 * `permit-agent-forwarding` / `permit-X11-forwarding` only when a role's options
 * `permit_agent_forwarding` / `permit_x11_forwarding` say so, never `permit-user-rc`; both an
 * agentless OpenSSH sshd (through the proxy, which relays the agent only then) and the Warden
 * node refuse agent forwarding without it. Real `warden start`, real OpenSSH `ssh -A` with the
 * `wsh config` block, a real `ssh-agent` holding a key, `ssh-add -l` on the far side. With the
 * same cluster: `wctl get nodes` and the audit table name nodes by host name (item 7), and the
 * `Match exec` form of `wsh config` with OpenSSH 9.2 (`ssh -G` and real connections).
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  type AgentlessSshd,
  requireTool,
  runCli,
  signupWithTotp,
  startAgentlessSshd,
  startWarden,
  type WardenProcess,
} from '@warden/testkit';

const PASSWORD = 'correct horse battery staple';
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
    const add = await wctl(['users', 'add', user, `--roles=${roles}`, '--logins=root']);
    assert.equal(add.code, 0, add.stderr);
    const token = /--token=(\S+)/.exec(add.stdout)![1]!;
    const s = await signupWithTotp(
      [`--proxy=${w.proxy}`, `--token=${token}`, `--ca-pin=${w.caPin}`],
      PASSWORD,
      { ...w.env, WARDEN_HOME: home(user) },
    );
    assert.equal(s.code, 0, s.stderr);
    const cfg = await wsh(user, ['config']);
    assert.equal(cfg.code, 0, cfg.stderr);
    writeFileSync(join(w.dir, `ssh_config-${user}`), cfg.stdout);
  }

  /** `ssh -A` (or -X) to the node, running `ssh-add -l` there against the forwarded agent. */
  function sshAddThere(user: string, node: string, flag = '-A') {
    return spawnSync(
      'ssh',
      [
        '-F',
        join(w.dir, `ssh_config-${user}`),
        '-o',
        'BatchMode=yes',
        flag,
        `root@${node}`,
        'ssh-add -l; echo "ssh-add=$?"; echo "sock=$SSH_AUTH_SOCK"',
      ],
      {
        encoding: 'utf8',
        env: { ...process.env, ...w.env, WARDEN_HOME: home(user), SSH_AUTH_SOCK: agentSock },
        timeout: 30_000,
      },
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

    const prefix = join(w.dir, 'agentless_host');
    assert.equal((await wctl(['auth', 'sign', '--host=agentless-1', `--out=${prefix}`])).code, 0);
    const opensshCa = await wctl(['auth', 'export', '--type=openssh']);
    agentless = await startAgentlessSshd({ dir: w.dir, hostKeyPrefix: prefix, userCaLine: opensshCa.stdout });
    const node = [
      'kind: node',
      'version: v2',
      'metadata: { name: 0d5f3c1a-6a2b-4c1d-9e8f-0a1b2c3d4e5f }',
      'spec:',
      '  hostname: agentless-1',
      `  addr: 127.0.0.1:${agentless.port}`,
      '  sub_kind: openssh',
      '',
    ].join('\n');
    assert.equal((await wctl(['create', '-'], node)).code, 0);

    await addUser('alice', 'access');
    await addUser('carol', 'access,forwarder');
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
      const r = sshAddThere('alice', node);
      assert.equal(r.status, 0, `${r.stderr}\n${node === 'agentless-1' ? agentless.log() : ''}`);
      assert.match(r.stdout, /ssh-add=2\n/, 'no agent on the far side');
      assert.match(r.stdout, /sock=\n/);
      assert.ok(!r.stdout.includes(keyFingerprint));
    });

    test(`ssh -A to ${kind}: the local agent's key is listed there with the role option`, async () => {
      const r = sshAddThere('carol', node);
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

  test('ssh -X to the Warden node: X11 forwarding is refused', async () => {
    const r = spawnSync(
      'ssh',
      [
        '-F',
        join(w.dir, 'ssh_config-carol'),
        '-o',
        'BatchMode=yes',
        '-o',
        'ForwardX11Trusted=yes',
        '-X',
        'root@node-1',
        'echo "display=$DISPLAY"',
      ],
      {
        encoding: 'utf8',
        env: { ...process.env, ...w.env, WARDEN_HOME: home('carol'), DISPLAY: ':0' },
        timeout: 30_000,
      },
    );
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, 'display=\n');
    assert.match(r.stderr, /X11 forwarding request failed/);
  });

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
      const r = spawnSync('ssh', ['-F', file, '-o', 'BatchMode=yes', `root@${host}`, 'echo', 'via-match'], {
        encoding: 'utf8',
        env,
        timeout: 30_000,
      });
      assert.equal(r.status, 0, `${host}: ${r.stderr}`);
      assert.equal(r.stdout, 'via-match\n');
    }
  });
});
