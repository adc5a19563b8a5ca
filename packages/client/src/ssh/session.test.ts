import assert from 'node:assert/strict';
import { Duplex, PassThrough } from 'node:stream';
import { test } from 'node:test';
import type { SshChannel } from './connect';
import { attachSession, ptyRequest, type SessionIo, signalExitCode, type WindowSize } from './session';

/** Test double of an ssh2 session channel: what it receives, and controls to end it. */
class FakeChannel extends Duplex {
  readonly stderr = new PassThrough();
  received = '';
  gotEof = false;
  windows: number[][] = [];
  override _read(): void {}
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: () => void): void {
    this.received += chunk.toString();
    cb();
  }
  override _final(cb: () => void): void {
    this.gotEof = true;
    cb();
  }
  setWindow(rows: number, cols: number): void {
    this.windows.push([rows, cols]);
  }
  finish(status: number | null, signal?: string): void {
    this.push(null);
    if (status !== null || signal) this.emit('exit', status, signal);
    this.emit('close');
  }
}

function io(tty = false): SessionIo & { out: () => string } {
  const stdout = Object.assign(new PassThrough(), { isTTY: tty, rows: 50, columns: 132 });
  const stdin = Object.assign(new PassThrough(), { isTTY: tty });
  let out = '';
  stdout.on('data', (d: Buffer) => {
    out += d.toString();
  });
  return { stdin, stdout, stderr: new PassThrough(), out: () => out };
}

test('ptyRequest: a PTY for an interactive shell on a terminal only, unless forced', () => {
  const env = { TERM: 'screen' };
  assert.deepEqual(ptyRequest(io(true), env, {}), { term: 'screen', rows: 50, cols: 132 });
  assert.equal(ptyRequest(io(true), env, { command: 'ls' }), undefined);
  assert.equal(ptyRequest(io(false), env, {}), undefined);
  assert.equal(ptyRequest(io(true), env, { force: false }), undefined);
  assert.deepEqual(ptyRequest(io(false), {}, { command: 'top', force: true }), {
    term: 'xterm',
    rows: 24,
    cols: 80,
  });
});

test('signalExitCode is 128 + the signal number, with or without the SIG prefix', () => {
  assert.equal(signalExitCode('SIGTERM'), 143);
  assert.equal(signalExitCode('KILL'), 137);
  assert.equal(signalExitCode('SIGHUP'), 129);
  assert.equal(signalExitCode('NOSUCH'), 128);
});

test('the exit status, a signal, or 255 when the node sent neither', async () => {
  for (const [status, signal, want] of [
    [3, undefined, 3],
    [0, undefined, 0],
    [null, 'SIGINT', 130],
    [null, undefined, 255],
  ] as const) {
    const ch = new FakeChannel();
    const s = io();
    const done = attachSession(ch as unknown as SshChannel, {}, s);
    ch.push('out');
    ch.stderr.write('err');
    setImmediate(() => ch.finish(status, signal));
    assert.equal(await done, want);
    assert.equal(s.out(), 'out');
  }
});

test('stdin is streamed to the channel and its end is forwarded as EOF', async () => {
  const ch = new FakeChannel();
  const s = io();
  const done = attachSession(ch as unknown as SshChannel, {}, s);
  const stdin = s.stdin as PassThrough;
  stdin.write('a');
  stdin.end('b');
  await new Promise((r) => ch.once('finish', r));
  assert.equal(ch.received, 'ab');
  assert.ok(ch.gotEof);
  ch.finish(0);
  assert.equal(await done, 0);
});

test('with a PTY, window changes reach the channel until the session ends; raw mode is restored', async () => {
  const ch = new FakeChannel();
  const s = io(true);
  const modes: boolean[] = [];
  Object.assign(s.stdin, { setRawMode: (raw: boolean) => modes.push(raw) });
  let listener: ((w: WindowSize) => void) | undefined;
  let unsubscribed = false;
  const done = attachSession(
    ch as unknown as SshChannel,
    {
      pty: { term: 'xterm', rows: 24, cols: 80 },
      onResize: (l) => {
        listener = l;
        return () => {
          unsubscribed = true;
        };
      },
    },
    s,
  );
  listener?.({ rows: 30, cols: 100 });
  ch.finish(0);
  assert.equal(await done, 0);
  assert.deepEqual(ch.windows, [[30, 100]]);
  assert.ok(unsubscribed);
  assert.deepEqual(modes, [true, false]);
});

test('without a PTY the local terminal stays in cooked mode and resizes are not sent', async () => {
  const ch = new FakeChannel();
  const s = io(true);
  const modes: boolean[] = [];
  Object.assign(s.stdin, { setRawMode: (raw: boolean) => modes.push(raw) });
  const done = attachSession(ch as unknown as SshChannel, {}, s);
  s.stdout.emit('resize');
  ch.finish(0);
  await done;
  assert.deepEqual(modes, []);
  assert.deepEqual(ch.windows, []);
});

test('the TTY resize events of stdout are the default window-size source', async () => {
  const ch = new FakeChannel();
  const s = io(true);
  const done = attachSession(ch as unknown as SshChannel, { pty: { term: 'xterm', rows: 50, cols: 132 } }, s);
  Object.assign(s.stdout, { rows: 20, columns: 60 });
  s.stdout.emit('resize');
  ch.finish(0);
  await done;
  s.stdout.emit('resize');
  assert.deepEqual(ch.windows, [[20, 60]]);
});
