/**
 * One SSH `session` channel on the node (RFC 4254 §6), run as a local login:
 *
 *   client                                  node
 *     │ pty-req (term, size)?  ──────────▶  │ kept for the process (needs permit-pty)
 *     │ env NAME=value*        ──────────▶  │ allow-listed (login.ts)
 *     │ auth-agent-req?        ──────────▶  │ SSH_AUTH_SOCK (needs permit-agent-forwarding)
 *     │ x11-req?               ──────────▶  │ refused (X11 forwarding is not offered)
 *     │ shell | exec CMD | subsystem sftp ▶ │ spawn: node-pty with a PTY, else pipes
 *     │                                     │   (once the audit log has the start: onStart)
 *     │ data ◀────────────────────────────▶ │ stdin / stdout; stderr as extended data
 *     │ window-change          ──────────▶  │ resize the PTY
 *     │ signal NAME            ──────────▶  │ forwarded to the process group
 *     │ ◀── exit-status N | exit-signal S, EOF, close
 *
 * `terminate(message)` ends it from our side (a lock): the message goes to the client as
 * `\r\nERROR: <message>\r\n` (stderr, or stdout for PTY sessions, whose stderr is the same
 * terminal) followed by EOF and close, then — after every session the same lock ends has
 * written its message — the process gets SIGHUP and, a second later, SIGKILL.
 * PTYs come from node-pty (native, built from source at install; loaded on the first PTY
 * session), the field's usual choice: it allocates the terminal, makes the process its
 * session leader and resizes it. User switching stays with setpriv (login.ts), which node-pty
 * runs like any program.
 * Who may import: this folder (service.ts). Tested end to end in `test/ssh-node/`.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { constants as osConstants } from 'node:os';
import type { IPty } from 'node-pty';
import type { ServerChannel, Session } from 'ssh2';
import type { Logger } from '../../log';
import {
  asUser,
  type DaemonUser,
  isAllowedEnv,
  type LocalUser,
  sessionCwd,
  sessionEnv,
  shellCommand,
} from './login';
import { afterMessagesLeave, endWithMessage } from './session-end';

export type SessionKind = 'shell' | 'exec' | 'subsystem';

export interface SessionStart {
  id: string;
  kind: SessionKind;
  /** The exec command, or the subsystem name. */
  command?: string;
  pty: boolean;
}

export interface SessionEnd extends SessionStart {
  exitCode?: number;
  exitSignal?: string;
  durationMs: number;
  /** Set when we ended it (a lock's message). */
  terminatedBy?: string;
}

export interface SessionDeps {
  user: LocalUser;
  daemon: DaemonUser;
  setpriv: string | undefined;
  sftpServer: string | undefined;
  /** `permit-pty` is in the certificate. */
  permitPty: boolean;
  /**
   * The agent socket's path for `auth-agent-req@openssh.com`; undefined when the certificate
   * lacks `permit-agent-forwarding` (the request is refused). X11 forwarding is never offered.
   */
  agentSocket?: (() => string) | undefined;
  sshClient: string;
  sshConnection: string;
  logger: Logger;
  now: () => number;
  /**
   * Records the start; resolves with why the session must not start (its audit events could
   * not be recorded), or undefined to start it. Nothing runs before it resolves.
   */
  onStart: (s: SessionStart) => Promise<string | undefined>;
  onEnd: (s: SessionEnd) => void;
}

/**
 * Signals an SSH client may send and an exit-signal may name (RFC 4254 §6.10); also what the
 * proxy relays for agentless sessions (`agentless.ts`).
 */
export const SSH_SIGNALS = new Set([
  'ABRT',
  'ALRM',
  'FPE',
  'HUP',
  'ILL',
  'INT',
  'KILL',
  'PIPE',
  'QUIT',
  'SEGV',
  'TERM',
  'USR1',
  'USR2',
]);

const KILL_GRACE_MS = 1000;

let ptyModule: Promise<typeof import('node-pty')> | undefined;
/** node-pty is native: loaded on the first PTY session, so a broken build fails only PTYs. */
function loadPty(): Promise<typeof import('node-pty')> {
  ptyModule ??= import('node-pty');
  return ptyModule;
}

function signalName(signal: number | string | null | undefined): string | undefined {
  if (signal === null || signal === undefined || signal === 0) return undefined;
  if (typeof signal === 'string') return signal.replace(/^SIG/, '');
  const entry = Object.entries(osConstants.signals).find(([, n]) => n === signal);
  return entry ? entry[0].replace(/^SIG/, '') : String(signal);
}

function signalNumber(name: string): number {
  return (osConstants.signals as Record<string, number>)[`SIG${name}`] ?? 0;
}

/**
 * @example
 *   conn.on('session', (accept) => sessions.add(new SshSession(accept(), deps)));
 */
export class SshSession {
  readonly id = randomUUID();
  readonly #deps: SessionDeps;
  readonly #env: Record<string, string> = {};
  #agentSocket: string | undefined;
  #pty: { term: string; cols: number; rows: number } | undefined;
  #channel: ServerChannel | undefined;
  #child: ChildProcess | undefined;
  #ptyProc: IPty | undefined;
  #start: SessionStart | undefined;
  #startedAt = 0;
  #terminatedBy: string | undefined;
  #finished = false;
  #killTimer: NodeJS.Timeout | undefined;

  constructor(session: Session, deps: SessionDeps) {
    this.#deps = deps;
    session.on('pty', (accept, reject, info) => {
      if (!deps.permitPty || this.#start) return reject?.();
      this.#pty = { term: info.term || 'xterm', cols: info.cols || 80, rows: info.rows || 24 };
      accept?.();
    });
    session.on('window-change', (accept, _reject, info) => {
      if (this.#pty) {
        this.#pty.cols = info.cols || this.#pty.cols;
        this.#pty.rows = info.rows || this.#pty.rows;
        this.#ptyProc?.resize(this.#pty.cols, this.#pty.rows);
      }
      accept?.();
    });
    session.on('env', (accept, reject, info) => {
      if (this.#start || !isAllowedEnv(info.key, info.val)) return reject?.();
      this.#env[info.key] = info.val;
      accept?.();
    });
    session.on('auth-agent', (accept, reject) => {
      if (!deps.agentSocket || this.#start) return reject?.();
      try {
        this.#agentSocket = deps.agentSocket();
      } catch (e) {
        deps.logger.warn({ err: e }, 'cannot set up agent forwarding');
        return reject?.();
      }
      accept?.();
    });
    // Named so that the refusal is explicit (ssh2 also refuses requests nobody listens for).
    session.on('x11', (_accept, reject) => reject?.());
    session.on('signal', (accept, reject, info) => {
      const name = String(info.name).replace(/^SIG/, '');
      if (!SSH_SIGNALS.has(name) || !this.#start) return reject?.();
      this.#signal(`SIG${name}` as NodeJS.Signals);
      accept?.();
    });
    session.on('shell', (accept) => this.#run(accept(), { id: this.id, kind: 'shell', pty: !!this.#pty }));
    session.on('exec', (accept, _reject, info) =>
      this.#run(accept(), { id: this.id, kind: 'exec', command: info.command, pty: !!this.#pty }),
    );
    session.on('subsystem', (accept, reject, info) => {
      if (info.name !== 'sftp' || !deps.sftpServer) return reject();
      this.#run(accept(), { id: this.id, kind: 'subsystem', command: info.name, pty: false });
    });
    session.on('close', () => this.#kill());
  }

  /** Hangs up the process (the channel or the connection went away). */
  hangup(): void {
    this.#kill();
  }

  /** Whether a process was started (and its end not yet reported). */
  get running(): boolean {
    return this.#start !== undefined && !this.#finished;
  }

  /**
   * Ends the session from the node's side: writes `ERROR: <message>`, EOF and close to the
   * client (the caller corks the connection, so they leave in one write), then — once every
   * session the same pass ends has written its message — hangs up the process. The caller
   * closes the connection.
   */
  terminate(message: string): void {
    if (this.#finished) return;
    this.#terminatedBy = message;
    endWithMessage(this.#channel, this.#start?.pty === true, message);
    afterMessagesLeave(() => this.#kill());
  }

  #program(start: SessionStart): string[] {
    const { user, sftpServer } = this.#deps;
    if (start.kind === 'shell') return shellCommand(user, { shell: true });
    if (start.kind === 'exec') return shellCommand(user, { exec: start.command ?? '' });
    // As sshd: subsystems run through the login shell (an account with nologin gets none).
    return shellCommand(user, { exec: sftpServer ?? '/bin/false' });
  }

  #run(channel: ServerChannel, start: SessionStart): void {
    if (!channel) return;
    this.#channel = channel;
    this.#start = start;
    this.#startedAt = this.#deps.now();
    // Nothing runs before the audit log has the access decision and this start (issue 15
    // item 5): a command shorter than one audit write would otherwise finish unaudited.
    this.#deps.onStart(start).then(
      (refusal) => this.#startAudited(channel, start, refusal),
      (e) => this.#startAudited(channel, start, `cannot start the session: ${(e as Error).message}`),
    );
  }

  #startAudited(channel: ServerChannel, start: SessionStart, refusal: string | undefined): void {
    if (this.#finished) return;
    // Ended while the start was being recorded (terminate wrote its message; a hang-up).
    if (this.#terminatedBy !== undefined || this.#killTimer) {
      this.#finish(undefined, 'HUP');
      return;
    }
    if (refusal !== undefined) {
      this.#fail(refusal);
      return;
    }
    const { user, daemon, setpriv } = this.#deps;
    let cmd: ReturnType<typeof asUser>;
    try {
      cmd = asUser(user, daemon, setpriv, this.#program(start));
    } catch (e) {
      this.#fail((e as Error).message);
      return;
    }
    const env = sessionEnv(user, {
      sshClient: this.#deps.sshClient,
      sshConnection: this.#deps.sshConnection,
      requested: this.#env,
      ...(start.pty && this.#pty ? { term: this.#pty.term } : {}),
    });
    if (this.#agentSocket) env.SSH_AUTH_SOCK = this.#agentSocket;
    const cwd = sessionCwd(user);
    if (start.pty && this.#pty) void this.#runPty(channel, cmd, env, cwd, this.#pty);
    else this.#runPipes(channel, cmd, env, cwd);
  }

  #runPipes(
    channel: ServerChannel,
    cmd: { file: string; args: string[] },
    env: Record<string, string>,
    cwd: string,
  ) {
    // Its own process group, so signals and hang-ups reach the whole command.
    const child = spawn(cmd.file, cmd.args, { cwd, env, detached: true, stdio: 'pipe' });
    this.#child = child;
    child.stdin.on('error', () => undefined); // EPIPE when the command doesn't read its input
    channel.on('error', () => undefined);
    channel.pipe(child.stdin);
    child.stdout.pipe(channel, { end: false });
    child.stderr.pipe(channel.stderr, { end: false });
    child.once('error', (e) => this.#fail(`cannot start the session: ${e.message}`));
    child.once('close', (code, signal) => this.#finish(code ?? undefined, signalName(signal)));
  }

  async #runPty(
    channel: ServerChannel,
    cmd: { file: string; args: string[] },
    env: Record<string, string>,
    cwd: string,
    size: { term: string; cols: number; rows: number },
  ): Promise<void> {
    let proc: IPty;
    try {
      const pty = await loadPty();
      proc = pty.spawn(cmd.file, cmd.args, {
        name: size.term,
        cols: size.cols,
        rows: size.rows,
        cwd,
        env,
        encoding: null,
      });
    } catch (e) {
      this.#fail(`cannot start a terminal: ${(e as Error).message}`);
      return;
    }
    this.#ptyProc = proc;
    // Hung up while node-pty was loading: deliver the hang-up now.
    if (this.#killTimer) this.#signal('SIGHUP');
    channel.on('error', () => undefined);
    proc.onData((data) => {
      if (!channel.writable) return;
      if (!channel.write(data)) {
        proc.pause();
        channel.once('drain', () => proc.resume());
      }
    });
    channel.on('data', (data: Buffer) => {
      if (this.#finished) return;
      try {
        proc.write(data);
      } catch {
        // The terminal closed under us; onExit reports the end.
      }
    });
    proc.onExit(({ exitCode, signal }) => this.#finish(signal ? undefined : exitCode, signalName(signal)));
  }

  #signal(signal: NodeJS.Signals): void {
    try {
      if (this.#ptyProc) this.#ptyProc.kill(signal);
      else if (this.#child?.pid !== undefined) process.kill(-this.#child.pid, signal);
    } catch {
      // Already gone.
    }
  }

  /** SIGHUP now, SIGKILL after a grace period if still running. */
  #kill(): void {
    if (!this.running || this.#killTimer) return;
    this.#signal('SIGHUP');
    this.#killTimer = setTimeout(() => {
      if (this.running) this.#signal('SIGKILL');
    }, KILL_GRACE_MS);
    this.#killTimer.unref();
  }

  #fail(message: string): void {
    this.#deps.logger.warn({ session: this.id, err: message }, 'ssh session failed to start');
    try {
      this.#channel?.stderr.write(`ERROR: ${message}\r\n`);
    } catch {
      // Channel gone.
    }
    this.#finish(255, undefined);
  }

  #finish(exitCode: number | undefined, exitSignal: string | undefined): void {
    if (this.#finished || !this.#start) return;
    this.#finished = true;
    if (this.#killTimer) clearTimeout(this.#killTimer);
    const ch = this.#channel;
    if (ch) {
      try {
        if (exitSignal !== undefined && SSH_SIGNALS.has(exitSignal)) ch.exit(exitSignal, false, '');
        else if (exitSignal !== undefined) ch.exit(128 + signalNumber(exitSignal));
        else ch.exit(exitCode ?? 255);
        ch.end();
      } catch {
        // The client went away first.
      }
    }
    this.#deps.onEnd({
      ...this.#start,
      ...(exitCode !== undefined && exitSignal === undefined && { exitCode }),
      ...(exitSignal !== undefined && { exitSignal }),
      durationMs: Math.max(0, this.#deps.now() - this.#startedAt),
      ...(this.#terminatedBy !== undefined && { terminatedBy: this.#terminatedBy }),
    });
  }
}
