/**
 * ssh_service sessions driven by the real OpenSSH client: host certificate accepted with
 * only the @cert-authority line, exec with output and exit status, stdin streaming, PTY
 * sessions (tty, window size and resize), env allow-list, -L forwarding, scp (sftp), and
 * running as another local login. The interactive client runs inside a real terminal
 * (node-pty), as a user's would.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer, connect as netConnect, type Server } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { requireTool, waitForText } from '@warden/testkit';
import * as pty from 'node-pty';
import { CLUSTER, exited, HOSTNAME, type Identity, type NodeFixture, run, startNode } from './node-fixture';

const tools = ['ssh', 'scp', 'ssh-keygen'].map(requireTool);
const skip = tools.find((t) => t.skip)?.skip ?? false;

/** Waits until `read()` matches, polling; fails with what was read after `timeoutMs`. */
const waitFor = (read: () => string, pattern: RegExp, timeoutMs = 8000) =>
  waitForText(read, pattern, timeoutMs);

describe('ssh_service sessions with OpenSSH', { skip }, () => {
  let f: NodeFixture;
  let alice: Identity;

  before(async () => {
    f = await startNode();
    alice = await f.issue({ logins: ['root', 'nobody'] });
  });
  after(() => f?.close());

  test('exec: output and exit status (false → 1, exit 7 → 7), host certificate trusted by CA line', async () => {
    const ok = await f.ssh(alice, 'root', ['echo', 'hello', '$USER', '$HOME']);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(ok.stdout, 'hello root /root\n');
    assert.equal((await f.ssh(alice, 'root', ['false'])).code, 1);
    const seven = await f.ssh(alice, 'root', ['echo oops >&2; exit 7']);
    assert.equal(seven.code, 7);
    assert.equal(seven.stderr, 'oops\n');
  });

  test('the host certificate: a name it does not list, or another CA, fails strict checking', async () => {
    const wrongName = await f.ssh(alice, 'root', ['true'], {
      extra: ['-o', `HostKeyAlias=other.${CLUSTER}`],
    });
    assert.equal(wrongName.code, 255);
    assert.match(wrongName.stderr, /Host key verification failed/);
    const kh = join(f.dir, 'other_known_hosts');
    const otherCa = execFileSync('ssh-keygen', ['-y', '-f', alice.key], { encoding: 'utf8' }).trim();
    writeFileSync(kh, `@cert-authority *.${CLUSTER} ${otherCa}\n`);
    const wrongCa = await f.ssh(alice, 'root', ['true'], { extra: ['-o', `UserKnownHostsFile=${kh}`] });
    assert.equal(wrongCa.code, 255);
    assert.match(wrongCa.stderr, /Host key verification failed/);
    // The listen IP is a principal too: a CA line for 127.0.0.1 works without an alias.
    const hostCaLine = f.cas.exportHostLine().split(' ').slice(2).join(' ');
    writeFileSync(kh, `@cert-authority 127.0.0.1 ${hostCaLine}\n`);
    const byIp = await run('ssh', [
      ...f.sshArgs(alice, 'root', ['-o', `UserKnownHostsFile=${kh}`, '-o', 'HostKeyAlias=127.0.0.1']),
      'true',
    ]);
    assert.equal(byIp.code, 0, byIp.stderr);
  });

  test('stdin streams to the command', async () => {
    const res = await f.ssh(alice, 'root', ['cat'], { input: 'hi\nthere\n' });
    assert.equal(res.code, 0, res.stderr);
    assert.equal(res.stdout, 'hi\nthere\n');
    // A shell without a PTY reads its commands from stdin.
    const shell = await f.ssh(alice, 'root', [], { input: 'echo "via $0"\nexit 4\n', extra: ['-T'] });
    assert.equal(shell.code, 4, shell.stderr);
    assert.match(shell.stdout, /^via .*bash\n$/);
    const big = randomBytes(300_000).toString('base64');
    const sum = await f.ssh(alice, 'root', ['wc', '-c'], { input: big });
    assert.equal(sum.stdout.trim(), String(big.length));
  });

  test('-tt: a PTY session (tty is /dev/pts/N, TERM passed)', async () => {
    const res = await f.ssh(alice, 'root', ['tty; echo "term=$TERM"'], {
      extra: ['-tt', '-o', 'SetEnv=TERM=vt100'],
    });
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stdout, /^\/dev\/pts\/\d+\r\n/);
  });

  test('env: allow-listed variables pass, others do not', async () => {
    const res = await f.ssh(alice, 'root', ['echo "$LANG|$FOO"'], {
      extra: ['-o', 'SetEnv=LANG=C.UTF-8 FOO=bar'],
    });
    assert.equal(res.stdout, 'C.UTF-8|\n');
  });

  test('interactive shell in a terminal: window size and resize reach the session', async () => {
    const term = pty.spawn('ssh', [...f.sshArgs(alice, 'root'), '-tt'], {
      name: 'xterm',
      cols: 100,
      rows: 30,
      env: { ...process.env, TERM: 'xterm' } as Record<string, string>,
    });
    let out = '';
    term.onData((d) => {
      out += d;
    });
    const exit = new Promise<number>((resolve) => term.onExit(({ exitCode }) => resolve(exitCode)));
    term.write('stty size; echo MARK1\r');
    await waitFor(() => out, /30 100\r\n(?:.*\r\n)?MARK1/);
    term.resize(120, 40);
    await new Promise((r) => setTimeout(r, 200));
    term.write('stty size; echo MARK2\r');
    await waitFor(() => out, /40 120\r\n(?:.*\r\n)?MARK2/);
    term.write('exit 3\r');
    assert.equal(await exit, 3);
  });

  test('-L forwards to a TCP server reachable from the node', async () => {
    const echo: Server = createServer((s) => s.pipe(s));
    await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
    const echoPort = (echo.address() as { port: number }).port;
    const free: Server = createServer();
    await new Promise<void>((r) => free.listen(0, '127.0.0.1', r));
    const localPort = (free.address() as { port: number }).port;
    await new Promise<void>((r) => free.close(() => r()));
    const { spawn } = await import('node:child_process');
    const client = spawn(
      'ssh',
      [
        ...f.sshArgs(alice, 'root', [
          '-N',
          '-o',
          'ExitOnForwardFailure=yes',
          '-L',
          `127.0.0.1:${localPort}:127.0.0.1:${echoPort}`,
        ]),
      ],
      { stdio: 'ignore' },
    );
    try {
      let reply = '';
      const end = Date.now() + 8000;
      while (!reply) {
        reply = await new Promise<string>((resolve) => {
          const s = netConnect(localPort, '127.0.0.1');
          let got = '';
          s.on('data', (d) => {
            got += d;
            if (got.includes('\n')) {
              s.end();
              resolve(got);
            }
          });
          s.on('error', () => resolve(''));
          s.on('connect', () => s.write('ping through warden\n'));
          setTimeout(() => {
            s.destroy();
            resolve(got);
          }, 2000);
        });
        if (!reply && Date.now() > end) assert.fail('the forwarded port never answered');
        if (!reply) await new Promise((r) => setTimeout(r, 100));
      }
      assert.equal(reply, 'ping through warden\n');
    } finally {
      client.kill();
      await exited(client);
      echo.close();
    }
    const events = await f.audit.search({ types: ['session.start'] });
    assert.ok(
      events.some((e) => e.session_type === 'direct-tcpip' && e.forward_addr === `127.0.0.1:${echoPort}`),
    );
  });

  // OpenSSH's sftp-server (Debian: openssh-sftp-server) is what the node runs for scp.
  const sftp = requireTool('/usr/lib/openssh/sftp-server').skip;
  test('scp copies a file up and down (sftp subsystem)', { skip: sftp }, async () => {
    const src = join(f.dir, 'upload.bin');
    const data = randomBytes(200_000);
    writeFileSync(src, data);
    const up = await f.scp(alice, [src, `root@127.0.0.1:${join(f.dir, 'remote.bin')}`]);
    assert.equal(up.code, 0, up.stderr);
    assert.deepEqual(readFileSync(join(f.dir, 'remote.bin')), data);
    const down = await f.scp(alice, [`root@127.0.0.1:${join(f.dir, 'remote.bin')}`, join(f.dir, 'back.bin')]);
    assert.equal(down.code, 0, down.stderr);
    assert.deepEqual(readFileSync(join(f.dir, 'back.bin')), data);
  });

  test('audit: session start and end with exit status, exec with its command, access allowed', async () => {
    const res = await f.ssh(alice, 'root', ['exit 5']);
    assert.equal(res.code, 5);
    // A command killed by a signal: exit-signal (OpenSSH exits 255), audited as such.
    const killed = await f.ssh(alice, 'root', ['kill -TERM $$']);
    assert.equal(killed.code, 255);
    const events = await f.audit.search({ user: 'alice', order: 'asc' });
    const exec = events.filter((e) => e.type === 'session.exec' && e.command === 'exit 5');
    assert.equal(exec.length, 1);
    const end = events.find((e) => e.type === 'session.end' && e.session_id === exec[0]?.session_id);
    assert.equal(end?.exit_code, 5);
    assert.equal(end?.login, 'root');
    assert.equal(end?.node, HOSTNAME);
    assert.deepEqual(end?.roles, ['access']);
    assert.equal(typeof end?.duration_ms, 'number');
    assert.deepEqual(end?.resource, {
      kind: 'node',
      name: f.node.hostId,
      hostname: f.node.hostname,
      labels: { env: 'test' },
    });
    assert.ok(
      events.some((e) => e.type === 'access.allowed' && e.login === 'root' && e.addr === '127.0.0.1'),
    );
    assert.ok(
      events.some(
        (e) => e.type === 'session.end' && e.command === 'kill -TERM $$' && e.exit_signal === 'TERM',
      ),
    );
  });

  test('a login whose shell is nologin gets no shell (as with sshd), run as that user', async () => {
    const res = await f.ssh(alice, 'nobody', ['id', '-un']);
    assert.notEqual(res.code, 0);
    assert.match(res.stdout + res.stderr, /not available/);
  });
});

describe('switching to a non-root login', { skip }, () => {
  const rootOnly = process.getuid?.() !== 0 ? 'the tests do not run as root' : false;
  const name = `wt${randomBytes(3).toString('hex')}`;
  let f: NodeFixture;
  let id: Identity;
  let created = false;

  before(async () => {
    if (rootOnly) return;
    execFileSync('useradd', ['-M', '-d', '/nonexistent', '-s', '/bin/sh', '-G', 'users', name]);
    created = true;
    f = await startNode();
    id = await f.issue({ logins: [name] });
  });
  after(async () => {
    await f?.close();
    if (created) execFileSync('userdel', [name]);
  });

  test('uid, gid, supplementary groups, HOME and cwd of the login', { skip: rootOnly }, async () => {
    const res = await f.ssh(id, name, ['id -un; id -Gn; echo "$HOME"; pwd']);
    assert.equal(res.code, 0, res.stderr);
    const [user, groups, home, cwd] = res.stdout.trim().split('\n');
    assert.equal(user, name);
    assert.deepEqual(groups?.split(' ').sort(), [name, 'users'].sort());
    assert.equal(home, '/nonexistent');
    assert.equal(cwd, '/');
  });
});
