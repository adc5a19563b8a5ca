/**
 * The diagnostics listener (`diag_addr`, off by default; `127.0.0.1:3000` is the usual
 * choice): plain HTTP for Prometheus and orchestrators, never the proxy's port.
 *
 *   GET /metrics   Prometheus text exposition (Warden's metrics and Node's process metrics)
 *   GET /healthz   200 "ok" while the process serves requests (liveness)
 *   GET /readyz    200 when every readiness check passes, else 503 with the failing ones
 *                  (JSON: {"ready": false, "checks": {"backend": "…", "lock_view": "…"}})
 *
 * It answers nothing else (404) and takes no input beyond the path, so it holds no secrets;
 * still, bind it to loopback or a private network.
 *
 * Who may import: `bin/`. Tested by test/diag.e2e.test.ts.
 */
import { createServer, type Server } from 'node:http';
import type { Logger } from '../log';
import type { MetricsRegistry } from './metrics';

/** One readiness check: resolves with undefined when ready, or the reason it is not. */
export type ReadinessCheck = () => Promise<string | undefined>;

export interface DiagServerOptions {
  host: string;
  port: number;
  metrics: MetricsRegistry;
  /** Named checks for /readyz, e.g. { backend, lock_view }. */
  readiness: Record<string, ReadinessCheck>;
  logger: Logger;
  /** How long one readiness check may take before it counts as failed (default 2000 ms). */
  checkTimeoutMs?: number;
}

export interface DiagServer {
  /** The address it listens on (the real port when 0 was asked for). */
  readonly address: { host: string; port: number };
  close(): Promise<void>;
}

async function runCheck(check: ReadinessCheck, timeoutMs: number): Promise<string | undefined> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      check(),
      new Promise<string>((resolve) => {
        timer = setTimeout(() => resolve(`no answer in ${timeoutMs} ms`), timeoutMs);
      }),
    ]);
  } catch (e) {
    return (e as Error)?.message ?? String(e);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * @example
 *   const diag = await startDiagServer({ host: '127.0.0.1', port: 3000, metrics, logger,
 *     readiness: { backend: async () => undefined } });
 */
export async function startDiagServer(o: DiagServerOptions): Promise<DiagServer> {
  const timeoutMs = o.checkTimeoutMs ?? 2000;
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (path === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
    } else if (path === '/readyz') {
      const names = Object.keys(o.readiness);
      Promise.all(names.map((n) => runCheck(o.readiness[n]!, timeoutMs))).then((results) => {
        const checks = Object.fromEntries(names.map((n, i) => [n, results[i] ?? 'ok']));
        const ready = results.every((r) => r === undefined);
        res
          .writeHead(ready ? 200 : 503, { 'content-type': 'application/json' })
          .end(`${JSON.stringify({ ready, checks })}\n`);
      });
    } else if (path === '/metrics') {
      o.metrics.render().then(
        (text) => res.writeHead(200, { 'content-type': o.metrics.contentType }).end(text),
        (e) => {
          o.logger.error({ err: e }, 'cannot render metrics');
          res.writeHead(500).end();
        },
      );
    } else {
      res
        .writeHead(404, { 'content-type': 'text/plain' })
        .end('not found: try /metrics, /healthz or /readyz\n');
    }
  });
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port, o.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address() as { port: number };
  return {
    address: { host: o.host, port: addr.port },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
