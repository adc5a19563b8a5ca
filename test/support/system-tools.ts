/**
 * Test-only: run a real system tool (`ssh-keygen`, `openssl`) from a unit test and skip
 * loudly when it is missing, unless WARDEN_TEST_STRICT=1 (then a missing tool fails).
 * Who may import: `*.test.ts` files (the certificate tests of api and server/ca).
 */

import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** `{ skip }` for node:test: a reason when `tool` is missing (and strict mode is off). */
export function needs(tool: string): { skip: string | false } {
  const missing = spawnSync(tool, ['-h'], { stdio: 'ignore' }).error !== undefined;
  if (!missing) return { skip: false };
  if (process.env.WARDEN_TEST_STRICT === '1') throw new Error(`${tool} is required (WARDEN_TEST_STRICT=1)`);
  console.warn(`\n!!! SKIPPING tests that need ${tool}: it is not installed !!!\n`);
  return { skip: `${tool} is not installed` };
}

/** Runs a tool with TZ=UTC; returns status, stdout and stderr. */
export function run(
  tool: string,
  args: string[],
  input?: string,
): { status: number; stdout: string; stderr: string } {
  const res = spawnSync(tool, args, { input, encoding: 'utf8', env: { ...process.env, TZ: 'UTC' } });
  if (res.error) throw res.error;
  return { status: res.status ?? -1, stdout: res.stdout, stderr: res.stderr };
}

/** A fresh temporary directory and its cleanup. */
export function tempDir(): { dir: string; path: (name: string) => string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'warden-tools-'));
  return {
    dir,
    path: (name) => join(dir, name),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}
