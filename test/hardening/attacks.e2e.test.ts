/**
 * Issue 15's attacks, each against a real `warden start` (one process for the file): every
 * test performs the attack the security review found and checks that it is refused. One
 * test per item, named after it.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  Authenticator,
  requireTool,
  runCli,
  signupWithTotp,
  startWarden,
  type WardenProcess,
} from '@warden/testkit';

const PASSWORD = 'correct horse battery staple';
const ssh = requireTool('ssh');

describe('issue 15 attacks against a real warden', () => {
  let w: WardenProcess;
  const home = (user: string) => join(w.dir, `home-${user}`);
  const wsh = (user: string, args: string[], input?: string) =>
    runCli('wsh', args, { env: { ...w.env, WARDEN_HOME: home(user) }, input });
  const wctl = (args: string[], input?: string) => runCli('wctl', args, { env: w.env, input });

  async function addUser(user: string, logins: string, roles = 'access'): Promise<void> {
    const add = await wctl(['users', 'add', user, `--roles=${roles}`, `--logins=${logins}`]);
    assert.equal(add.code, 0, add.stderr);
    const token = /--token=(\S+)/.exec(add.stdout)![1]!;
    const env = { ...w.env, WARDEN_HOME: home(user) };
    const s = await signupWithTotp(
      [`--proxy=${w.proxy}`, `--token=${token}`, `--ca-pin=${w.caPin}`],
      PASSWORD,
      env,
    );
    assert.equal(s.code, 0, s.stderr);
    const otp = new Authenticator(s.uri!);
    otp.markUsed();
    const l = await wsh(
      user,
      ['login', `--proxy=${w.proxy}`, `--user=${user}`],
      `${PASSWORD}\n${await otp.code()}\n`,
    );
    assert.equal(l.code, 0, l.stderr);
  }

  before(async () => {
    w = await startWarden({ nodeName: 'node-1' });
    await addUser('alice', 'root');
  });
  after(async () => {
    await w?.stop();
  });

  test('item 10: control characters in a lock message never reach the terminal', {
    skip: ssh.skip,
  }, async () => {
    // Clear the screen, retitle the terminal, and a C1 CSI: as typed by whoever made the lock.
    const evil = 'see \x1b]0;owned\x07\x1b[2J\r\nroot# \u009b31m';
    const lock = await wctl(['lock', '--user=alice', `--message=${evil}`, '--ttl=1h']);
    assert.equal(lock.code, 0, lock.stderr);
    const stored = JSON.parse((await wctl(['get', 'locks', '--format=json'])).stdout) as {
      spec: { message?: string };
    }[];
    assert.deepEqual(
      stored.map((l) => l.spec.message),
      ['see \\x1b]0;owned\\x07\\x1b[2J\\r\\nroot# \\x9b31m'],
    );
    const res = await wsh('alice', ['ssh', 'root@node-1', 'true']);
    assert.notEqual(res.code, 0);
    assert.doesNotMatch(res.stderr, /[\x00-\x09\x0b-\x1f\x7f-\x9f]/u, JSON.stringify(res.stderr));
    assert.match(res.stderr, /is in force: see \\x1b\]0;owned\\x07\\x1b\[2J\\r\\nroot# \\x9b31m/);
    // A lock written as a resource gets the same treatment.
    const file = [
      'kind: lock',
      'version: v2',
      'metadata:',
      '  name: 0d4f7a52-3b8e-4c55-9a61-2f1e0c9b8a77',
      'spec:',
      '  target: { user: bob }',
      '  message: "bell\\a and \\e[5m"',
      '',
    ].join('\n');
    const created = await wctl(['create', '-'], file);
    assert.equal(created.code, 0, created.stderr);
    const all = JSON.parse((await wctl(['get', 'locks', '--format=json'])).stdout) as {
      spec: { target: { user?: string }; message?: string };
    }[];
    assert.equal(all.find((l) => l.spec.target.user === 'bob')?.spec.message, 'bell\\x07 and \\x1b[5m');
    await wctl(['rm', 'lock/0d4f7a52-3b8e-4c55-9a61-2f1e0c9b8a77']);
    for (const l of JSON.parse((await wctl(['get', 'locks', '--format=json'])).stdout) as {
      metadata: { name: string };
    }[])
      await wctl(['rm', `lock/${l.metadata.name}`]);
  });
});
