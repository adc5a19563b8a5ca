/**
 * SSH as a new user meets it (issue 3's "done when"): a real `warden start` with its SSH
 * service, `wsh ls`, `wsh ssh` (exit codes, stdin, -L), plain OpenSSH `ssh`/`scp` with
 * `wsh config`, an agentless OpenSSH `sshd` reached through the proxy, refusals with reasons,
 * and a lock that ends an open session.
 */
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, connect as netConnect } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  type AgentlessSshd,
  addUserAndLogin,
  freePort,
  registerAgentlessNode,
  requireTool,
  runCli,
  runCommand,
  spawnCli,
  startWarden,
  type WardenProcess,
} from '@warden/testkit';

const PASSWORD = 'correct horse battery staple';
const ssh = requireTool('ssh');
const sshd = requireTool('sshd');

describe('SSH through the proxy', { skip: ssh.skip || sshd.skip }, () => {
  let w: WardenProcess;
  let agentless: AgentlessSshd | undefined;
  /** The ~/.ssh/config written by the Include test (before the agentless node exists). */
  let includeConfig: string | undefined;
  const home = (user: string) => join(w.dir, `home-${user}`);
  const wsh = (user: string, args: string[], input?: string) =>
    runCli('wsh', args, { env: { ...w.env, WARDEN_HOME: home(user) }, input });
  const wctl = (args: string[], input?: string) => runCli('wctl', args, { env: w.env, input });

  async function addUser(user: string, logins: string, roles = 'access'): Promise<void> {
    await addUserAndLogin(w, user, { roles, logins, home: home(user), password: PASSWORD });
  }

  before(async () => {
    w = await startWarden({ nodeName: 'node-1' });
    await addUser('alice', 'root');
    await addUser('bob', 'bob');
  });
  after(async () => {
    await agentless?.stop();
    await w?.stop();
  });

  test('wsh ls shows the local node', async () => {
    const res = await wsh('alice', ['ls']);
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stdout, /^Node Name +Address +Labels/);
    assert.match(res.stdout, new RegExp(`node-1 +${w.sshAddr.replace(/\./g, '\\.')} +env=test`));
    const json = JSON.parse((await wsh('alice', ['ls', '--format=json'])).stdout) as {
      spec: { hostname: string };
    }[];
    assert.deepEqual(
      json.map((n) => n.spec.hostname),
      ['node-1'],
    );
  });

  test('wsh ssh root@node-1 runs a command; exit status and stdin pass through', async () => {
    const up = await wsh('alice', ['ssh', 'root@node-1', 'uptime']);
    assert.equal(up.code, 0, up.stderr);
    assert.match(up.stdout, /load average/);
    const f = await runCommand(
      'sh',
      ['-c', `"${process.execPath}" dist/wsh.js ssh node-1 false; echo "status=$?"`],
      { cwd: join(import.meta.dirname, '..'), env: { ...process.env, ...w.env, WARDEN_HOME: home('alice') } },
    );
    assert.match(f.stdout, /status=1/);
    const cat = await wsh('alice', ['ssh', 'node-1', 'cat'], 'hi\n');
    assert.equal(cat.stdout, 'hi\n');
    const args = await wsh('alice', ['ssh', 'node-1', 'ls', '-d', '/tmp']);
    assert.equal(args.stdout.trim(), '/tmp');
  });

  test('a role without root in logins is refused with the reason, exit 255 (not a remote exit)', async () => {
    const res = await wsh('bob', ['ssh', 'root@node-1', 'id']);
    // 255 as in OpenSSH: the proxy refused; a remote `exit 1` is 1 (the test above).
    assert.equal(res.code, 255);
    assert.match(
      res.stderr,
      /^ERROR: ssh: rejected: administratively prohibited \(access denied: user "bob" may not log in as "root" on node "node-1"/,
    );
    const audit = await wctl(['audit', 'search', '--type=access.denied', '--user=bob', '--format=json']);
    assert.match(audit.stdout, /may not log in as/);
  });

  test('plain OpenSSH ssh and scp reach the node with `wsh config`', async () => {
    const cfg = await wsh('alice', ['config']);
    assert.equal(cfg.code, 0, cfg.stderr);
    const file = join(w.dir, 'ssh_config');
    writeFileSync(file, cfg.stdout);
    const run = await runCommand('ssh', ['-F', file, 'root@node-1', 'echo', 'via-openssh'], {
      env: { ...process.env, ...w.env, WARDEN_HOME: home('alice') },
    });
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, 'via-openssh\n');
    const src = join(w.dir, 'payload.bin');
    writeFileSync(src, Buffer.alloc(256 * 1024, 7));
    const scp = await runCommand('scp', ['-F', file, src, 'root@node-1:/tmp/warden-e2e-payload.bin'], {
      env: { ...process.env, ...w.env, WARDEN_HOME: home('alice') },
    });
    assert.equal(scp.code, 0, scp.stderr);
    assert.deepEqual(readFileSync('/tmp/warden-e2e-payload.bin'), readFileSync(src));
    // Refusals reach OpenSSH with the reason, too.
    const bobCfg = join(w.dir, 'ssh_config_bob');
    writeFileSync(bobCfg, (await wsh('bob', ['config'])).stdout);
    const denied = await runCommand('ssh', ['-F', bobCfg, 'root@node-1', 'id'], {
      env: { ...process.env, ...w.env, WARDEN_HOME: home('bob') },
    });
    assert.notEqual(denied.code, 0);
    assert.match(denied.stderr, /administratively prohibited/);
  });

  test('wsh config works from Include in ~/.ssh/config (OpenSSH 9.2), by bare name and NAME.<cluster>; so does wsh ssh', async () => {
    const cluster = JSON.parse((await wsh('alice', ['status', '--format=json'])).stdout).cluster as string;
    const cfg = await wsh('alice', ['config']);
    assert.equal(cfg.code, 0, cfg.stderr);
    assert.match(cfg.stdout, new RegExp(`Include warden-${cluster}\\.conf`));
    assert.doesNotMatch(cfg.stdout, /<\(wsh config\)/, 'no form that OpenSSH 9.2 cannot read');
    const sshDir = join(w.dir, 'dot-ssh-alice');
    mkdirSync(sshDir, { recursive: true });
    writeFileSync(join(sshDir, `warden-${cluster}.conf`), cfg.stdout);
    // The user's own config: the Include first, then their other hosts.
    const main = join(sshDir, 'config');
    writeFileSync(main, `Include ${join(sshDir, `warden-${cluster}.conf`)}\n\nHost other\n    User nobody\n`);
    for (const host of ['root@node-1', `root@node-1.${cluster}`]) {
      const run = await runCommand('ssh', ['-F', main, host, 'echo', 'via-include'], {
        env: { ...process.env, ...w.env, WARDEN_HOME: home('alice') },
      });
      assert.equal(run.code, 0, `${host}: ${run.stderr}`);
      assert.equal(run.stdout, 'via-include\n');
    }
    includeConfig = main;
    const fq = await wsh('alice', ['ssh', `root@node-1.${cluster}`, 'echo', 'fq-ok']);
    assert.equal(fq.code, 0, fq.stderr);
    assert.equal(fq.stdout, 'fq-ok\n');
    // A node that does not exist: wsh's own failure, 255.
    const missing = await wsh('alice', ['ssh', `root@nope.${cluster}`, 'true']);
    assert.equal(missing.code, 255, missing.stderr);
  });

  test('-L forwards a local port through the node', async () => {
    const echo = createServer((s) => s.pipe(s));
    await new Promise<void>((r) => echo.listen(0, '127.0.0.1', () => r()));
    const target = (echo.address() as { port: number }).port;
    const local = await freePort();
    const fwd = spawnCli('wsh', ['ssh', '-N', '-L', `${local}:127.0.0.1:${target}`, 'root@node-1'], {
      env: { ...w.env, WARDEN_HOME: home('alice') },
    });
    try {
      let reply = '';
      for (let i = 0; i < 100 && !reply; i++) {
        reply = await new Promise<string>((res) => {
          const s = netConnect({ host: '127.0.0.1', port: local }, () => s.write('ping through warden'));
          s.on('data', (d) => {
            res(d.toString());
            s.destroy();
          });
          s.on('error', () => res(''));
        });
        if (!reply) await new Promise((r) => setTimeout(r, 100));
      }
      assert.equal(reply, 'ping through warden');
    } finally {
      fwd.child.kill('SIGTERM');
      echo.close();
    }
  });

  test('an agentless OpenSSH sshd registered as a node is reached through the proxy', async () => {
    agentless = await registerAgentlessNode(w, {
      hostname: 'agentless-1',
      id: '5f0e3c1a-6a2b-4c1d-9e8f-0a1b2c3d4e5f',
      labels: 'env: test, kind: agentless',
    });
    const ls = await wsh('alice', ['ls']);
    assert.match(ls.stdout, /agentless-1/);
    const res = await wsh('alice', ['ssh', 'root@agentless-1', 'echo', 'agentless-ok']);
    assert.equal(res.code, 0, `${res.stderr}\n${agentless.log()}`);
    assert.equal(res.stdout, 'agentless-ok\n');
    // The proxy is the gate: bob is refused before sshd sees him.
    const bob = await wsh('bob', ['ssh', 'root@agentless-1', 'id']);
    assert.match(bob.stderr, /administratively prohibited \(access denied/);
    // A node added after `wsh config` ran is reachable as NAME.<cluster> with the saved config.
    if (includeConfig) {
      const cluster = JSON.parse((await wsh('alice', ['status', '--format=json'])).stdout).cluster as string;
      const later = await runCommand(
        'ssh',
        ['-F', includeConfig, `root@agentless-1.${cluster}`, 'echo', 'later-ok'],
        { env: { ...process.env, ...w.env, WARDEN_HOME: home('alice') } },
      );
      assert.equal(later.code, 0, `${later.stderr}\n${agentless.log()}`);
      assert.equal(later.stdout, 'later-ok\n');
    }
  });

  test('wctl lock --user=alice ends her open session with the lock message', async () => {
    const session = spawnCli('wsh', ['ssh', '-t', 'root@node-1', 'echo ready; sleep 60'], {
      env: { ...w.env, WARDEN_HOME: home('alice') },
    });
    for (let i = 0; i < 200 && !session.stdout().includes('ready'); i++)
      await new Promise((r) => setTimeout(r, 50));
    assert.match(session.stdout(), /ready/, session.stderr());
    const lock = await wctl(['lock', '--user=alice', '--message=incident 42', '--ttl=1h']);
    assert.equal(lock.code, 0, lock.stderr);
    const code = await Promise.race([
      session.exited,
      new Promise<string>((r) => setTimeout(() => r('still running'), 10_000)),
    ]);
    assert.notEqual(code, 'still running', 'the lock ended the session');
    assert.match(session.stdout() + session.stderr(), /lock targeting User:"alice" is in force: incident 42/);
    // New sessions are refused with the lock message.
    const again = await wsh('alice', ['ssh', 'root@node-1', 'true']);
    assert.equal(again.code, 255);
    assert.match(
      again.stderr,
      /administratively prohibited \(lock targeting User:"alice" is in force: incident 42\)/,
    );
  });
});
