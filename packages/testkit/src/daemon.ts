/**
 * A database server (or any daemon) run by a test: wait until its log says it is ready,
 * keeping its last lines for failure messages, and stop it with a signal (SIGKILL after 10 s).
 * Used by mariadb.ts and postgres.ts, which also share how a started server is let go
 * (`daemonHold`).
 */
import type { ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';

/**
 * Resolves when a line of the child's stderr contains `readyLine`; rejects when it exits first
 * or after `timeoutMs` (30 s), with the log. Every line is appended to `lines` (at most
 * `maxLines`, oldest dropped).
 */
export function waitForReadyLine(
  child: ChildProcess,
  o: { name: string; readyLine: string; lines: string[]; maxLines: number; timeoutMs?: number },
): Promise<void> {
  const timeoutMs = o.timeoutMs ?? 30_000;
  return new Promise<void>((resolve, reject) => {
    let ready = false;
    const timer = setTimeout(
      () => reject(new Error(`${o.name} did not start in ${timeoutMs / 1000} s:\n${o.lines.join('\n')}`)),
      timeoutMs,
    );
    let partial = '';
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (chunk: string) => {
      const parts = (partial + chunk).split('\n');
      partial = parts.pop() ?? '';
      for (const line of parts) {
        o.lines.push(line);
        if (o.lines.length > o.maxLines) o.lines.shift();
        if (!ready && line.includes(o.readyLine)) {
          ready = true;
          clearTimeout(timer);
          resolve();
        }
      }
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      if (!ready)
        reject(new Error(`${o.name} exited (${code ?? signal}) before it was ready:\n${o.lines.join('\n')}`));
    });
  });
}

/** Sends `signal` and waits for the exit; SIGKILL after 10 s. Nothing if it already exited. */
export async function stopProcess(child: ChildProcess | undefined, signal: NodeJS.Signals): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill(signal);
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

/**
 * A started daemon's hold on this process and its temp `dir`: `kill` runs if this process
 * exits while the daemon is up. `fail(err)` (a start that went wrong) and `stop()` (once;
 * idempotent) halt it, drop that exit hook and delete `dir`; `stopped` says whether `stop()` ran.
 */
export function daemonHold(dir: string, o: { kill(): void; halt(): Promise<void> }) {
  process.once('exit', o.kill);
  let stopped = false;
  const release = async () => {
    await o.halt();
    process.removeListener('exit', o.kill);
    rmSync(dir, { recursive: true, force: true });
  };
  return {
    get stopped() {
      return stopped;
    },
    /** Releases everything, then rethrows `err`. */
    async fail(err: unknown): Promise<never> {
      await release();
      throw err;
    },
    async stop(): Promise<void> {
      if (stopped) return;
      stopped = true;
      await release();
    },
  };
}
