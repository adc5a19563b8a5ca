/**
 * External tools the tests use. Missing tools skip the test with a loud notice, unless
 * WARDEN_TEST_STRICT=1 (set by .ci/run after installing them): then they fail the run.
 */
import { spawnSync } from 'node:child_process';

export interface ToolCheck {
  ok: boolean;
  /** Pass to node:test's `skip` option: false, or the reason. */
  skip: string | false;
}

export function requireTool(name: string): ToolCheck {
  const found = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' }).status === 0;
  if (found) return { ok: true, skip: false };
  if (process.env.WARDEN_TEST_STRICT === '1') {
    throw new Error(`required tool "${name}" is missing and WARDEN_TEST_STRICT=1 (install it; see .ci/run)`);
  }
  const reason = `SKIPPED: "${name}" is not installed (install it, or run .ci/run)`;
  process.stderr.write(`\n*** ${reason} ***\n`);
  return { ok: false, skip: reason };
}
