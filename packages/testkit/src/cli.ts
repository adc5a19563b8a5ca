/** Runs the built `wsh`/`wctl`/`warden` (dist/) as a user would: argv, stdin, env, exit code. */
import { spawn } from 'node:child_process';
import { join, resolve } from 'node:path';
import { collectProcess, type ProcessResult, type TrackedProcess, trackProcess } from './process';
import { runningWardenOutput } from './warden';

const root = resolve(import.meta.dirname, '../../..');

export type CliResult = ProcessResult;

/** `r`, when the command succeeded; else an error naming `what` with its exit code and stderr. */
export function succeeded(what: string, r: CliResult): CliResult {
  if (r.code !== 0) throw new Error(`${what} failed (${r.code}):\n${r.stderr}`);
  return r;
}

export function runCli(
  command: 'wsh' | 'wctl' | 'warden' | 'wbot',
  args: string[],
  opts: { input?: string; env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number } = {},
): Promise<CliResult> {
  return collectProcess(spawnBuilt(command, args, opts), {
    ...(opts.input !== undefined && { input: opts.input }),
    ...(opts.timeoutMs !== undefined && { timeoutMs: opts.timeoutMs }),
    describe: ({ stdout, stderr }) => {
      const servers = runningWardenOutput()
        .map((text) => `\n--- the end of a running warden's output ---\n${text}`)
        .join('');
      return `${command} ${args.join(' ')} timed out\nstdout: ${stdout}\nstderr: ${stderr}${servers}`;
    },
  });
}

export type RunningCli = TrackedProcess;

/** Starts a built command in the background (for sessions that must stay open during a test). */
export function spawnCli(
  command: 'wsh' | 'wctl' | 'warden' | 'wbot',
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; cwd?: string; nodeArgs?: string[] } = {},
): RunningCli {
  return trackProcess(spawnBuilt(command, args, opts));
}

/**
 * Runs a built command whose reader goes away before it writes anything (as `cmd | true` or
 * `cmd | head -1` do): stdout is closed at once; stderr and the exit code are collected.
 */
export async function runCliClosedStdout(
  command: 'wsh' | 'wctl' | 'warden' | 'wbot',
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number } = {},
): Promise<{ code: number; stderr: string }> {
  const child = spawnBuilt(command, args, opts);
  child.stdout.destroy();
  const { code, stderr } = await collectProcess(child, {
    ...(opts.timeoutMs !== undefined && { timeoutMs: opts.timeoutMs }),
    describe: (out) => `${command} ${args.join(' ')} timed out\nstderr: ${out.stderr}`,
  });
  return { code, stderr };
}

/** dist/<command>.js under this node, with piped stdio. */
function spawnBuilt(
  command: 'wsh' | 'wctl' | 'warden' | 'wbot',
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; cwd?: string; nodeArgs?: string[] },
) {
  return spawn(process.execPath, [...(opts.nodeArgs ?? []), join(root, 'dist', `${command}.js`), ...args], {
    cwd: opts.cwd ?? root,
    env: { ...process.env, ...opts.env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
}
