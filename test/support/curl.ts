/**
 * Test-only: the real `curl` against Warden's HTTPS ports (apps, the proxy's API).
 * Who may import: `*.test.ts` files and test/ helpers.
 */
import { execFile } from 'node:child_process';

/** What curl did: its exit code, the HTTP status (0 when none came), the body and stderr. */
export interface Curl {
  code: number;
  status: number;
  body: string;
  stderr: string;
}

/**
 * curl `args`, asynchronously (the proxy may run in this process), quiet but for errors, given
 * up after `timeoutMs` (15 s); `-w` appends the status, which is split off the body.
 */
export function curl(args: string[], timeoutMs = 15_000): Promise<Curl> {
  return new Promise((resolve) => {
    execFile(
      'curl',
      ['-sS', '-m', String(timeoutMs / 1000), '-w', '\n%{http_code}', ...args],
      { maxBuffer: 16 << 20 },
      (err, stdout, stderr) => {
        const nl = stdout.lastIndexOf('\n');
        resolve({
          code: err ? ((err as { code?: number }).code ?? 1) : 0,
          status: Number(stdout.slice(nl + 1)),
          body: stdout.slice(0, nl),
          stderr,
        });
      },
    );
  });
}
