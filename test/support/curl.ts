/**
 * Test-only: the real `curl` against Warden's HTTPS ports (apps, the proxy's API), and the
 * curl arguments and TLS options that present an app certificate (`wsh app config NAME
 * --format=json`) the way a user's curl or program does.
 * Who may import: `*.test.ts` files and test/ helpers.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';

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

/** What `wsh app config NAME --format=json` says: the app's URI and the certificate's files. */
export interface AppCertConfig {
  uri: string;
  ca: string;
  cert: string;
  key: string;
}

/**
 * curl arguments that trust the cluster's CA, present the app certificate, and resolve the
 * app's host name to the proxy on 127.0.0.1:`port`.
 */
export function appCurlArgs(cfg: AppCertConfig, port: number): string[] {
  const host = new URL(cfg.uri).hostname;
  return ['--cacert', cfg.ca, '--cert', cfg.cert, '--key', cfg.key, '--resolve', `${host}:${port}:127.0.0.1`];
}

/** node:tls options (https, http2, ws) that trust the cluster's CA and present the app certificate. */
export function appTlsOptions(cfg: AppCertConfig): {
  ca: Buffer;
  cert: Buffer;
  key: Buffer;
  servername: string;
} {
  return {
    ca: readFileSync(cfg.ca),
    cert: readFileSync(cfg.cert),
    key: readFileSync(cfg.key),
    servername: new URL(cfg.uri).hostname,
  };
}
