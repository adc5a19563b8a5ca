/** Runs the built `wsh`/`wctl`/`warden` (dist/) as a user would: argv, stdin, env, exit code. */
import { spawn } from 'node:child_process';
import { join, resolve } from 'node:path';
import { runningWardenOutput } from './warden';

const root = resolve(import.meta.dirname, '../../..');

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function runCli(
  command: 'wsh' | 'wctl' | 'warden' | 'wbot',
  args: string[],
  opts: { input?: string; env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number } = {},
): Promise<CliResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [join(root, 'dist', `${command}.js`), ...args], {
      cwd: opts.cwd ?? root,
      env: { ...process.env, ...opts.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => {
      stdout += c;
    });
    child.stderr.on('data', (c) => {
      stderr += c;
    });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      const servers = runningWardenOutput()
        .map((text) => `\n--- the end of a running warden's output ---\n${text}`)
        .join('');
      reject(
        new Error(`${command} ${args.join(' ')} timed out\nstdout: ${stdout}\nstderr: ${stderr}${servers}`),
      );
    }, opts.timeoutMs ?? 30_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolvePromise({ code: code ?? -1, stdout, stderr });
    });
    child.stdin.end(opts.input ?? '');
  });
}

export interface RunningCli {
  child: import('node:child_process').ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Resolves with the exit code. */
  exited: Promise<number>;
}

/** Starts a built command in the background (for sessions that must stay open during a test). */
export function spawnCli(
  command: 'wsh' | 'wctl' | 'warden' | 'wbot',
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; cwd?: string; nodeArgs?: string[] } = {},
): RunningCli {
  const child = spawn(
    process.execPath,
    [...(opts.nodeArgs ?? []), join(root, 'dist', `${command}.js`), ...args],
    {
      cwd: opts.cwd ?? root,
      env: { ...process.env, ...opts.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    },
  );
  let out = '';
  let err = '';
  child.stdout.on('data', (c) => {
    out += c;
  });
  child.stderr.on('data', (c) => {
    err += c;
  });
  const exited = new Promise<number>((res) =>
    child.on('close', (code, signal) => res(code ?? (signal ? 128 : -1))),
  );
  return { child, stdout: () => out, stderr: () => err, exited };
}

/**
 * Runs a built command whose reader goes away before it writes anything (as `cmd | true` or
 * `cmd | head -1` do): stdout is closed at once; stderr and the exit code are collected.
 */
export function runCliClosedStdout(
  command: 'wsh' | 'wctl' | 'warden' | 'wbot',
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number } = {},
): Promise<{ code: number; stderr: string }> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [join(root, 'dist', `${command}.js`), ...args], {
      cwd: opts.cwd ?? root,
      env: { ...process.env, ...opts.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    child.stdout.destroy();
    let stderr = '';
    child.stderr.on('data', (c) => {
      stderr += c;
    });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${command} ${args.join(' ')} timed out\nstderr: ${stderr}`));
    }, opts.timeoutMs ?? 30_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolvePromise({ code: code ?? -1, stderr });
    });
    child.stdin.end();
  });
}
