/**
 * The operational parts of `warden`: `warden configure --check FILE`, the start-up check
 * that every listen port is free (before the data dir is touched), and the diagnostics
 * listener's readiness checks. Part of the composition root (`bin/`).
 */
import { createServer } from 'node:net';
import { parseArgs } from 'node:util';
import { isWardenError, WardenError } from '@warden/api';
import type { Backend } from '../backend';
import type { Clock } from '../clock';
import { formatHostPort, type HostPort, loadConfig, problemLines, type WardenConfig } from '../config';
import { type DiagServer, type MetricsRegistry, startDiagServer } from '../diag';
import type { Logger } from '../log';

interface Io {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
}

const CONFIGURE_HELP = `Usage: warden configure --check FILE [--format=text|json]

Checks a warden.yaml without starting anything: the YAML, every field and value, the CA
files it names. Reports every problem at once (with "did you mean" for typos) and exits 1
when there is any, 0 when the file is good.

Flags:
      --check=FILE          the file to check
      --format=text|json    output format (default text)
  -h, --help                show this help
`;

/** `warden configure --check FILE`: every problem of a config file, or that it is fine. */
export function runConfigure(argv: string[], io: Io): number {
  let values: { check?: string; format?: string; help?: boolean };
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args: argv,
      options: {
        check: { type: 'string' },
        format: { type: 'string', default: 'text' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: true,
    }));
  } catch (e) {
    io.stderr.write(`ERROR: ${(e as Error).message.split('\n')[0]}\n\n${CONFIGURE_HELP}`);
    return 1;
  }
  if (values.help) {
    io.stdout.write(CONFIGURE_HELP);
    return 0;
  }
  const file = values.check ?? positionals[0];
  if (!file || positionals.length > (values.check ? 0 : 1)) {
    io.stderr.write(`ERROR: give the file to check: warden configure --check FILE\n\n${CONFIGURE_HELP}`);
    return 1;
  }
  if (values.format !== 'text' && values.format !== 'json') {
    io.stderr.write(`ERROR: invalid --format "${values.format}": expected text or json\n`);
    return 1;
  }
  let problems: string[] = [];
  try {
    loadConfig({ path: file });
  } catch (e) {
    problems = isWardenError(e) ? problemLines(e) : [(e as Error).message];
  }
  if (values.format === 'json') {
    io.stdout.write(`${JSON.stringify({ file, ok: problems.length === 0, problems }, null, 2)}\n`);
  } else if (problems.length === 0) {
    io.stdout.write(`${file}: OK\n`);
  } else {
    io.stderr.write(
      `${problems.map((p) => `ERROR: ${p}`).join('\n')}\n${problems.length} problem${problems.length === 1 ? '' : 's'} in ${file}\n`,
    );
  }
  return problems.length === 0 ? 0 : 1;
}

/** Listens on `addr` and closes at once: undefined when free, else why not. */
function tryListen(addr: HostPort): Promise<NodeJS.ErrnoException | undefined> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', (e: NodeJS.ErrnoException) => resolve(e));
    s.listen({ port: addr.port, host: addr.host, exclusive: true }, () => s.close(() => resolve(undefined)));
  });
}

/**
 * Fails with WARDEN_ERR_BAD_CONFIG naming the setting when a listen address is taken or
 * cannot be bound, so a second `warden start` changes nothing on disk.
 */
export async function checkPortsFree(config: WardenConfig): Promise<void> {
  const wanted: [string, HostPort][] = [];
  if (config.proxyService.enabled) wanted.push(['proxy_service.listen_addr', config.proxyService.listenAddr]);
  if (config.proxyService.enabled && config.proxyService.mysqlListenAddr)
    wanted.push(['proxy_service.mysql_listen_addr', config.proxyService.mysqlListenAddr]);
  if (config.sshService.enabled) wanted.push(['ssh_service.listen_addr', config.sshService.listenAddr]);
  if (config.diagAddr) wanted.push(['diag_addr', config.diagAddr]);
  for (const [name, addr] of wanted) {
    if (addr.port === 0) continue;
    const e = await tryListen(addr);
    if (!e) continue;
    throw new WardenError(
      'WARDEN_ERR_BAD_CONFIG',
      e.code === 'EADDRINUSE'
        ? `${name} ${formatHostPort(addr)} is already in use (is another warden running?)`
        : `${name}: cannot listen on ${formatHostPort(addr)}: ${e.message}`,
    );
  }
}

/** How long a readiness probe waits for the backend before calling it not ready. */
const BACKEND_PROBE_MS = 2000;

/**
 * Starts the diagnostics listener. Ready when the backend answers (and a shared store's
 * watch is in contact) and the lock view is current: a replica that cannot enforce locks
 * must not take traffic.
 */
export function startDiag(
  addr: HostPort,
  o: {
    backend: Backend;
    lockCache: { healthy: boolean; staleForMs(now: number): number };
    metrics: MetricsRegistry;
    logger: Logger;
    clock: Clock;
  },
): Promise<DiagServer> {
  return startDiagServer({
    host: addr.host,
    port: addr.port,
    metrics: o.metrics,
    logger: o.logger,
    checkTimeoutMs: BACKEND_PROBE_MS,
    readiness: {
      backend: async () => {
        await o.backend.currentRev();
        const stale = o.backend.staleForMs?.(o.clock.now()) ?? 0;
        return stale > 0 ? `out of contact with the shared store for ${stale} ms` : undefined;
      },
      lock_view: async () => {
        const stale = o.lockCache.staleForMs(o.clock.now());
        if (!o.lockCache.healthy)
          return 'the lock view is not current (its watch broke or an item is invalid)';
        return stale > 0 ? `the lock view is ${stale} ms stale` : undefined;
      },
    },
  });
}
