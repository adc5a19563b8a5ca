/**
 * Sessions and forwarding against a real OpenSSH sshd: exit status (and signal → 128+n),
 * stdout/stderr apart, stdin streamed with EOF, PTY allocation with TERM and window-size
 * changes, `-L` forwarding to a local echo server, and a forward the node refuses.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createServer, connect as netConnect, type Server } from 'node:net';
import { PassThrough } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { isWardenError } from '@warden/api';
import {
  type NodeSsh,
  type PtyRequest,
  parseForwardSpec,
  runSession,
  startLocalForward,
  type WindowSize,
} from '@warden/client';
import { requireTool } from '@warden/testkit';
import { type Sshd, startSshd } from './sshd-fixture';

const skip = requireTool('sshd').skip || requireTool('ssh-keygen').skip;

interface Run {
  code: number;
  out: string;
  err: string;
}

/** Runs a command with a stdin we control; `onOut` sees stdout as it arrives. */
async function run(
  ssh: NodeSsh,
  command: string | undefined,
  opts: {
    input?: Buffer | string;
    pty?: PtyRequest;
    onResize?: (l: (s: WindowSize) => void) => () => void;
    onOut?: (soFar: string) => void;
  } = {},
): Promise<Run> {
  const stdin = new PassThrough();
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (d: Buffer) => {
    out += d.toString();
    opts.onOut?.(out);
  });
  stderr.on('data', (d: Buffer) => {
    err += d.toString();
  });
  if (opts.input !== undefined) stdin.end(opts.input);
  else if (!opts.pty) stdin.end();
  const code = await runSession(
    ssh,
    { command, pty: opts.pty, onResize: opts.onResize },
    { stdin, stdout, stderr },
  );
  return { code, out, err };
}

describe('SSH sessions against a real sshd', { skip, timeout: 60_000 }, () => {
  let node: Sshd;
  let ssh: NodeSsh;
  before(async () => {
    node = await startSshd();
    ssh = await node.connect();
  });
  after(async () => {
    ssh?.end();
    await node?.stop();
  });

  test('the exit status is the remote exit status', async () => {
    assert.equal((await run(ssh, 'false')).code, 1);
    assert.equal((await run(ssh, 'exit 42')).code, 42);
  });

  test('a command killed by a signal exits with 128+n', async () => {
    assert.equal((await run(ssh, 'kill -TERM $$')).code, 128 + 15);
  });

  test('stdout and stderr stay apart, and large output arrives whole', async () => {
    const r = await run(ssh, 'head -c 2000000 /dev/zero | tr "\\0" x; echo err >&2');
    assert.equal(r.code, 0);
    assert.equal(r.out.length, 2_000_000);
    assert.match(r.out, /^x+$/);
    assert.equal(r.err, 'err\n');
  });

  test('stdin streams to the command, EOF included', async () => {
    const input = randomBytes(3 * 1024 * 1024);
    const r = await run(ssh, 'sha256sum', { input });
    assert.equal(r.code, 0);
    assert.equal(r.out.split(' ')[0], createHash('sha256').update(input).digest('hex'));
  });

  test('no PTY unless asked', async () => {
    const r = await run(ssh, 'tty');
    assert.equal(r.code, 1);
    assert.match(r.out, /not a tty/);
  });

  test('a PTY carries TERM and the window size, and follows window changes', async () => {
    let resize: ((s: WindowSize) => void) | undefined;
    let unsubscribed = false;
    const onResize = (l: (s: WindowSize) => void) => {
      resize = l;
      return () => {
        unsubscribed = true;
      };
    };
    let resized = false;
    const r = await run(
      ssh,
      // The trap is set before the size is printed, so the resize (sent on seeing it) is caught.
      'trap \'stty size; exit 7\' WINCH; tty; echo "term=$TERM"; stty size; while :; do sleep 0.05; done',
      {
        pty: { term: 'xterm-256color', rows: 33, cols: 101 },
        onResize,
        onOut: (soFar) => {
          if (!resized && soFar.includes('33 101')) {
            resized = true;
            resize?.({ rows: 40, cols: 120 });
          }
        },
      },
    );
    assert.equal(r.code, 7);
    assert.match(r.out, /\/dev\/pts\/\d+/);
    assert.match(r.out, /term=xterm-256color/);
    assert.match(r.out, /33 101\r?\n[\s\S]*40 120/);
    assert.ok(unsubscribed, 'the resize listener is removed when the session ends');
  });

  test('an interactive shell with a PTY reads commands from stdin', async () => {
    const stdin = new PassThrough();
    const stdout = new PassThrough();
    let out = '';
    stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    stdin.write('echo shell-$((6*7))\nexit 5\n');
    const code = await runSession(
      ssh,
      { pty: { term: 'dumb', rows: 24, cols: 80 } },
      { stdin, stdout, stderr: new PassThrough() },
    );
    assert.equal(code, 5);
    assert.match(out, /shell-42/);
  });
});

describe('-L forwarding against a real sshd', { skip, timeout: 60_000 }, () => {
  let node: Sshd;
  let echo: Server;
  let echoPort: number;
  before(async () => {
    node = await startSshd();
    echo = createServer((s) => s.pipe(s));
    echo.listen(0, '127.0.0.1');
    await once(echo, 'listening');
    echoPort = (echo.address() as { port: number }).port;
  });
  after(async () => {
    echo?.close();
    await node?.stop();
  });

  async function roundTrip(port: number, payload: string): Promise<string> {
    const sock = netConnect(port, '127.0.0.1');
    let got = '';
    sock.on('data', (d: Buffer) => {
      got += d.toString();
      if (got.length >= payload.length) sock.end();
    });
    sock.write(payload);
    await once(sock, 'close');
    return got;
  }

  test('forwards a local port to host:port as seen from the node', async () => {
    const ssh = await node.connect();
    const fwd = await startLocalForward(ssh, parseForwardSpec(`0:127.0.0.1:${echoPort}`));
    try {
      assert.equal(fwd.address.address, '127.0.0.1');
      assert.notEqual(fwd.address.port, 0);
      const [a, b] = await Promise.all([
        roundTrip(fwd.address.port, 'ping-1'),
        roundTrip(fwd.address.port, 'ping-2'),
      ]);
      assert.deepEqual([a, b], ['ping-1', 'ping-2']);
    } finally {
      await fwd.close();
      ssh.end();
    }
  });

  test('a forward the node refuses is reported as administratively prohibited', async () => {
    // No permit-port-forwarding in the certificate: sshd refuses direct-tcpip channels.
    const ssh = await node.connect({ sshCert: node.signUserCert(['-O', 'clear', '-O', 'permit-pty']) });
    const errors: unknown[] = [];
    const refused = new Promise<void>((resolve) => {
      void startLocalForward(ssh, parseForwardSpec(`0:127.0.0.1:${echoPort}`), (e) => {
        errors.push(e);
        resolve();
      }).then(async (fwd) => {
        const sock = netConnect(fwd.address.port, '127.0.0.1');
        sock.on('error', () => {});
        await once(sock, 'close');
        await refused;
        await fwd.close();
      });
    });
    await refused;
    ssh.end();
    assert.equal(errors.length, 1);
    assert.ok(isWardenError(errors[0], 'WARDEN_ERR_ACCESS_DENIED'));
    assert.match((errors[0] as Error).message, /^ssh: rejected: administratively prohibited \(.+\)$/);
  });
});
