/**
 * Test-only: `wsh` and `wctl` bundled from source (as scripts/build.mjs bundles them) into a
 * private folder for one test process, run as real processes the way a user runs them. Quick
 * to start and independent of the shared dist/ (which other runs may be rebuilding). Inside
 * the repo (node_modules/.cache) so that external packages resolve.
 * Who may import: test files and the in-process cluster fixtures (test/app, test/db).
 *
 * @example
 *   const clis = sourceClis('db');
 *   await clis.build();
 *   const res = await clis.run('wsh', ['status'], { env });
 */
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { type CliResult, collectProcess } from '@warden/testkit';

const root = resolve(import.meta.dirname, '../..');

export type { CliResult };

export interface SourceClis {
  /** Bundles the CLIs once per process (later calls wait for the same build). */
  build(): Promise<void>;
  spawn(command: 'wsh' | 'wctl', args: string[], env?: NodeJS.ProcessEnv): ChildProcessWithoutNullStreams;
  /** Runs to the end with `input` on stdin; killed (and rejected) after `timeoutMs` (30 s). */
  run(
    command: 'wsh' | 'wctl',
    args: string[],
    opts?: { env?: NodeJS.ProcessEnv; input?: string; timeoutMs?: number },
  ): Promise<CliResult>;
  /** Removes the bundle. */
  remove(): void;
}

/** `tag` names the folder (`warden-<tag>-test-<pid>`). */
export function sourceClis(tag: string): SourceClis {
  const binDir = join(root, 'node_modules', '.cache', `warden-${tag}-test-${process.pid}`);
  let built: Promise<void> | undefined;
  const spawnCli = (command: 'wsh' | 'wctl', args: string[], env: NodeJS.ProcessEnv = {}) =>
    spawn(process.execPath, [join(binDir, `${command}.js`), ...args], {
      cwd: root,
      env: { ...process.env, ...env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
  return {
    build() {
      built ??= (async () => {
        const { build } = await import('esbuild');
        await build({
          entryPoints: {
            wsh: join(root, 'packages/cli/src/wsh.ts'),
            wctl: join(root, 'packages/cli/src/wctl.ts'),
          },
          outdir: binDir,
          bundle: true,
          splitting: true,
          platform: 'node',
          target: 'node20',
          format: 'esm',
          logLevel: 'error',
          external: ['better-sqlite3', 'pg', 'pg-native', 'ssh2', 'cpu-features', 'node-pty'],
          banner: {
            js: "import { createRequire as __wardenCreateRequire } from 'node:module'; const require = __wardenCreateRequire(import.meta.url);",
          },
        });
      })();
      return built;
    },
    spawn: spawnCli,
    run(command, args, opts = {}) {
      return collectProcess(spawnCli(command, args, opts.env), {
        ...(opts.input !== undefined && { input: opts.input }),
        ...(opts.timeoutMs !== undefined && { timeoutMs: opts.timeoutMs }),
        describe: (out) => `${command} ${args.join(' ')} timed out\n${out.stdout}\n${out.stderr}`,
      });
    },
    remove() {
      rmSync(binDir, { recursive: true, force: true });
    },
  };
}
