/**
 * Child processes as the tests drive them: what one printed so far (to wait on), one that runs
 * in the background until the test ends it, and one run to the end with its input on stdin and
 * its output and exit code collected (killed when it overstays).
 *
 * @example
 *   const r = await collectProcess(spawn('psql', ['-c', 'select 1']), { timeout: 'kill' });
 *   const ssh = await runCommand('ssh', ['-F', config, 'node-1', 'true'], { env });
 *   const bg = trackProcess(spawn('ssh', args));
 *   await waitForText(bg.stdout, /started/); // ./wait
 */
import { type ChildProcess, type SpawnOptions, spawn } from 'node:child_process';

/** What a process printed so far: each stream, and both in the order they came. */
export interface ProcessOutput {
  stdout(): string;
  stderr(): string;
  all(): string;
}

export function captureOutput(child: ChildProcess): ProcessOutput {
  let stdout = '';
  let stderr = '';
  let all = '';
  child.stdout?.on('data', (c) => {
    stdout += c;
    all += c;
  });
  child.stderr?.on('data', (c) => {
    stderr += c;
    all += c;
  });
  return { stdout: () => stdout, stderr: () => stderr, all: () => all };
}

export interface TrackedProcess extends ProcessOutput {
  child: ChildProcess;
  /** Resolves with the exit code (128 when a signal ended it, -1 when neither is known). */
  exited: Promise<number>;
}

/** A process left running in the background (a session that must stay open during a test). */
export function trackProcess(child: ChildProcess): TrackedProcess {
  const output = captureOutput(child);
  const exited = new Promise<number>((res) =>
    child.on('close', (code, signal) => res(code ?? (signal ? 128 : -1))),
  );
  return { child, ...output, exited };
}

export interface ProcessResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface CollectOptions {
  /** Written to stdin, which is then closed (closed at once without it). */
  input?: string;
  /** Default 30 s. */
  timeoutMs?: number;
  /**
   * When the time is up the process is killed (SIGKILL); then `reject` (the default) fails
   * with what it printed, `kill` resolves with its exit (code -1).
   */
  timeout?: 'reject' | 'kill';
  /** For `reject`: what the error says (the command, and anything else worth showing). */
  describe?: (out: { stdout: string; stderr: string }) => string;
}

/** Runs `child` to its end and collects its output; rejects if it cannot start. */
export function collectProcess(child: ChildProcess, o: CollectOptions = {}): Promise<ProcessResult> {
  return new Promise((resolve, reject) => {
    const out = captureOutput(child);
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      if (o.timeout === 'kill') return;
      const printed = { stdout: out.stdout(), stderr: out.stderr() };
      reject(
        new Error(o.describe?.(printed) ?? `timed out\nstdout: ${printed.stdout}\nstderr: ${printed.stderr}`),
      );
    }, o.timeoutMs ?? 30_000);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stdout: out.stdout(), stderr: out.stderr() });
    });
    // A process that exits without reading its input must not fail the run with EPIPE.
    child.stdin?.on('error', () => undefined);
    child.stdin?.end(o.input ?? '');
  });
}

/**
 * Runs `command` to its end, as spawnSync would but without blocking the event loop: the
 * pipes of the processes a test started (a warden's log) go on draining meanwhile, where a
 * spawnSync could stall such a process on a full pipe until its timeout. Killed after
 * `timeoutMs` (30 s), then resolved with code -1.
 */
export function runCommand(
  command: string,
  args: string[],
  o: Pick<SpawnOptions, 'cwd' | 'env'> & { input?: string; timeoutMs?: number } = {},
): Promise<ProcessResult> {
  const { input, timeoutMs, ...options } = o;
  return collectProcess(spawn(command, args, options), {
    timeout: 'kill',
    timeoutMs: timeoutMs ?? 30_000,
    ...(input !== undefined ? { input } : {}),
  });
}
