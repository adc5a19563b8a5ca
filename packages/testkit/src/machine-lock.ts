/**
 * A lock shared by every test run on this machine (all worktrees, all users of /tmp): for
 * the few tests that must use a fixed resource, such as the zero-config `warden start` on the
 * default ports 127.0.0.1:3080 and :3022. Concurrent runs wait their turn instead of failing
 * with "address in use"; a port taken by anything else still fails at once.
 * The lock is a file holding the owner's PID, created exclusively; a lock whose owner died is
 * taken over.
 */
import { mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Runs `fn` holding the machine-wide lock `name`; waits (polling every 200 ms) up to
 * `timeoutMs` for another run to release it, then fails naming the holder.
 *
 * @example
 *   await withMachineLock('default-ports', async () => { … warden start without config … });
 */
export async function withMachineLock<T>(
  name: string,
  fn: () => Promise<T>,
  timeoutMs = 180_000,
): Promise<T> {
  const dir = join(tmpdir(), 'warden-test-locks');
  mkdirSync(dir, { recursive: true });
  const path = join(dir, `${name}.lock`);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      writeFileSync(path, String(process.pid), { flag: 'wx' });
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    let holder = Number.NaN;
    let age = 0;
    try {
      holder = Number.parseInt(readFileSync(path, 'utf8'), 10);
      age = Date.now() - statSync(path).mtimeMs;
    } catch {
      continue; // released meanwhile
    }
    // A dead owner's lock (or one never written, left by a crash between create and write).
    if ((Number.isInteger(holder) && !alive(holder)) || (!Number.isInteger(holder) && age > 10_000)) {
      rmSync(path, { force: true });
      continue;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `another test run (pid ${holder}) has held the machine lock "${name}" for ${timeoutMs} ms`,
      );
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  try {
    return await fn();
  } finally {
    rmSync(path, { force: true });
  }
}
