/**
 * One SSH session wired to local streams, as `ssh` does it: stdout/stderr copied out, stdin
 * streamed in (EOF forwarded), a PTY for interactive shells (local TTY in raw mode, TERM,
 * window-size changes), and the remote exit status as the result (a signal → 128+n; no status
 * → 255, like OpenSSH). Who may import: this folder (index.ts re-exports). Tested in
 * test/ssh-client/ against a real sshd and by session.test.ts.
 */
import { constants } from 'node:os';
import type { NodeSsh, PtyRequest, SshChannel } from './connect';

export interface SessionIo {
  stdin: NodeJS.ReadableStream & { isTTY?: boolean; setRawMode?: (raw: boolean) => unknown };
  stdout: NodeJS.WritableStream & { isTTY?: boolean; columns?: number; rows?: number };
  stderr: NodeJS.WritableStream;
}

export interface WindowSize {
  rows: number;
  cols: number;
}

export interface SessionOptions {
  /** The remote command; the login shell when undefined. */
  command?: string;
  /** Ask for a PTY (see ptyRequest()). */
  pty?: PtyRequest;
  /**
   * Subscribes to local window-size changes; returns the unsubscribe function. Default: the
   * `resize` events of a TTY stdout (Node raises them on SIGWINCH).
   */
  onResize?: (listener: (size: WindowSize) => void) => () => void;
}

/**
 * Whether and how to ask for a PTY, as `ssh` decides: `-t` (force true) always, `-T` (force
 * false) never, otherwise only for an interactive shell (no command) with a TTY on stdin.
 * TERM comes from the environment (`xterm` if unset), the size from the local terminal.
 */
export function ptyRequest(
  io: Pick<SessionIo, 'stdin' | 'stdout'>,
  env: NodeJS.ProcessEnv,
  opts: { command?: string; force?: boolean },
): PtyRequest | undefined {
  const want = opts.force ?? (opts.command === undefined && io.stdin.isTTY === true);
  if (!want) return undefined;
  return {
    term: env.TERM || 'xterm',
    rows: io.stdout.isTTY && io.stdout.rows ? io.stdout.rows : 24,
    cols: io.stdout.isTTY && io.stdout.columns ? io.stdout.columns : 80,
  };
}

/** 128 + the signal's number (OpenSSH's convention for a command killed by a signal). */
export function signalExitCode(signal: string): number {
  const name = (signal.startsWith('SIG') ? signal : `SIG${signal}`) as keyof typeof constants.signals;
  const n = constants.signals[name];
  return 128 + (typeof n === 'number' ? n : 0);
}

/**
 * Runs a command (or the login shell) on the node with local streams attached; resolves with
 * the exit code. Channel refusals reject with `ssh: rejected: …` WardenErrors.
 *
 * @example
 *   const code = await runSession(ssh, { command: 'ls -la' }, process);
 */
export async function runSession(ssh: NodeSsh, opts: SessionOptions, io: SessionIo): Promise<number> {
  const channel =
    opts.command === undefined ? await ssh.shell(opts.pty) : await ssh.exec(opts.command, opts.pty);
  return attachSession(channel, opts, io, ssh.closed);
}

/** Wires an open session channel to local streams until it closes; resolves with the exit code. */
export function attachSession(
  channel: SshChannel,
  opts: Pick<SessionOptions, 'pty' | 'onResize'>,
  io: SessionIo,
  connectionClosed?: Promise<void>,
): Promise<number> {
  return new Promise((resolve) => {
    let code: number | undefined;
    channel.on('exit', (status: number | null, signal?: string) => {
      if (typeof status === 'number') code = status;
      else if (signal) code = signalExitCode(signal);
    });
    channel.on('error', () => {
      // The close that follows ends the session; the exit code says what happened.
    });
    channel.pipe(io.stdout, { end: false });
    channel.stderr.pipe(io.stderr, { end: false });

    const raw =
      opts.pty !== undefined && io.stdin.isTTY === true && typeof io.stdin.setRawMode === 'function';
    if (raw) io.stdin.setRawMode?.(true);
    io.stdin.pipe(channel);

    let unsubscribe = () => {};
    if (opts.pty) {
      const resize = (s: WindowSize) => channel.setWindow(s.rows, s.cols, 0, 0);
      unsubscribe = (opts.onResize ?? ttyResize(io.stdout))(resize);
    }

    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      unsubscribe();
      io.stdin.unpipe(channel);
      io.stdin.pause();
      if (raw) io.stdin.setRawMode?.(false);
      resolve(code ?? 255);
    };
    channel.once('close', finish);
    connectionClosed?.then(finish);
  });
}

function ttyResize(stdout: SessionIo['stdout']): NonNullable<SessionOptions['onResize']> {
  return (listener) => {
    if (!stdout.isTTY) return () => {};
    const onResize = () => listener({ rows: stdout.rows ?? 24, cols: stdout.columns ?? 80 });
    stdout.on('resize', onResize);
    return () => stdout.off('resize', onResize);
  };
}
