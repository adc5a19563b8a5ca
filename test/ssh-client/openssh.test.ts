/**
 * The config from `wsh config` (openSshConfig) with the real `ssh` and `scp` against a real
 * sshd: the profile's key, certificate and @cert-authority known_hosts are used, host names
 * are checked as <node>.<cluster>, and the ProxyCommand gets `proxy ssh --login=%r %h`. The
 * proxy itself is a test double here (a script that records its argv and pipes to the sshd);
 * the integrator's end-to-end tests run the real `wsh proxy ssh` through the proxy.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { openSshConfig, shellQuote, writeOpenSshIdentityPub } from '@warden/client';
import { requireTool } from '@warden/testkit';
import { type Sshd, startSshd } from './sshd-fixture';

const skip =
  requireTool('sshd').skip ||
  requireTool('ssh-keygen').skip ||
  requireTool('ssh').skip ||
  requireTool('scp').skip;

/** Runs a tool without blocking the event loop (the sshd fixture reads its log meanwhile). */
function tool(
  cmd: string,
  args: string[],
): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    child.once('error', reject);
    child.once('close', (status) => resolve({ status, stdout, stderr }));
  });
}

describe('OpenSSH ssh and scp with the `wsh config` block', { skip }, () => {
  let node: Sshd;
  let cfg: string;
  let argvLog: string;

  before(async () => {
    node = await startSshd();
    argvLog = join(node.dir, 'proxy-argv.log');
    // Test double for `wsh proxy ssh`: records its arguments, pipes stdin/stdout to the sshd.
    const fake = join(node.dir, 'fake-wsh.mjs');
    writeFileSync(
      fake,
      [
        "import { appendFileSync } from 'node:fs';",
        "import { connect } from 'node:net';",
        `appendFileSync(${JSON.stringify(argvLog)}, JSON.stringify(process.argv.slice(2)) + '\\n');`,
        `const s = connect(${node.port}, '127.0.0.1');`,
        'process.stdin.pipe(s);',
        's.pipe(process.stdout);',
        "s.on('close', () => process.exit(0));",
      ].join('\n'),
    );
    writeOpenSshIdentityPub(node.dir, readFileSync(join(node.dir, 'key.pub'), 'utf8'));
    cfg = join(node.dir, 'ssh_config');
    writeFileSync(
      cfg,
      openSshConfig({
        cluster: 'example',
        proxy: 'proxy.example:3080',
        profileDir: node.dir,
        nodes: ['node1', 'node2'],
        wshCommand: `${shellQuote(process.execPath)} ${shellQuote(fake)}`,
      }),
    );
  });
  after(async () => {
    await node?.stop();
  });

  const ssh = (...args: string[]) => tool('ssh', ['-F', cfg, '-o', 'BatchMode=yes', ...args]);
  const lastArgv = () => JSON.parse(readFileSync(argvLog, 'utf8').trim().split('\n').at(-1) ?? '[]');

  test('ssh reaches a node by its bare name; the exit status comes back', async () => {
    const r = await ssh(`${node.login}@node1`, 'echo via-openssh; exit 3');
    assert.equal(r.status, 3, r.stderr);
    assert.equal(r.stdout, 'via-openssh\n');
    assert.deepEqual(lastArgv(), ['proxy', 'ssh', `--login=${node.login}`, 'node1']);
    await node.waitForLog(/Accepted publickey for \S+ .* ECDSA-CERT .* ID alice/);
  });

  test('ssh reaches <node>.<cluster> names through the wildcard', async () => {
    const r = await ssh(`${node.login}@node1.example`, 'echo wildcard');
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, 'wildcard\n');
    assert.deepEqual(lastArgv(), ['proxy', 'ssh', `--login=${node.login}`, 'node1.example']);
  });

  test('scp copies a file both ways', async () => {
    const data = randomBytes(256 * 1024);
    const src = join(node.dir, 'scp-src.bin');
    const remote = join(node.dir, 'scp-remote.bin');
    const back = join(node.dir, 'scp-back.bin');
    writeFileSync(src, data);
    const up = await tool('scp', ['-F', cfg, '-o', 'BatchMode=yes', src, `${node.login}@node1:${remote}`]);
    assert.equal(up.status, 0, up.stderr);
    const down = await tool('scp', ['-F', cfg, '-o', 'BatchMode=yes', `${node.login}@node1:${remote}`, back]);
    assert.equal(down.status, 0, down.stderr);
    assert.ok(readFileSync(back).equals(data));
  });

  test('a node whose host certificate does not name it is refused', async () => {
    // node2's traffic reaches the same sshd, whose certificate lists only node1 names.
    const r = await ssh(`${node.login}@node2`, 'true');
    assert.equal(r.status, 255);
    assert.match(r.stderr, /Host key verification failed/);
  });
});
