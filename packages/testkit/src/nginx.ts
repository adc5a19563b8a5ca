/**
 * A throwaway nginx (Debian `nginx-light`) in a temp dir on a free port: either serving a
 * static site (`root`) or as a reverse proxy to an upstream (`proxyPass`, with keep-alive
 * upstream connections: the baseline an operator would deploy instead of Warden), optionally
 * over TLS. Started in the foreground (`daemon off`), stopped with SIGQUIT/SIGKILL.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, waitForListener } from './ports';
import { requireTool, type ToolCheck } from './tools';

export interface NginxOptions {
  /** Serve these files (name → content) as a static site. */
  files?: Record<string, string>;
  /** Reverse proxy everything to this `http://host:port`. */
  proxyPass?: string;
  /** Terminate TLS with this certificate and key (PEM). */
  tls?: { cert: string; key: string };
  workers?: number;
}

export interface NginxServer {
  port: number;
  url: string;
  dir: string;
  /** The master process (its workers are its children: benchmarks read their CPU time). */
  pid: number | undefined;
  stop(): Promise<void>;
}

export function requireNginx(): ToolCheck {
  return requireTool('nginx');
}

export async function startNginx(o: NginxOptions): Promise<NginxServer> {
  const dir = mkdtempSync(join(tmpdir(), 'warden-nginx-'));
  chmodSync(dir, 0o755);
  const port = await freePort();
  const site = join(dir, 'site');
  mkdirSync(site, { mode: 0o755 });
  for (const [name, content] of Object.entries(o.files ?? {})) {
    writeFileSync(join(site, name), content, { mode: 0o644 });
  }
  let tls = '';
  if (o.tls) {
    writeFileSync(join(dir, 'cert.pem'), o.tls.cert, { mode: 0o644 });
    writeFileSync(join(dir, 'key.pem'), o.tls.key, { mode: 0o600 });
    tls = ` ssl http2;\n    ssl_certificate ${join(dir, 'cert.pem')};\n    ssl_certificate_key ${join(dir, 'key.pem')}`;
  }
  const location = o.proxyPass
    ? `location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header X-Forwarded-For $remote_addr;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_set_header X-Forwarded-Host $host;
      proxy_buffering off;
    }`
    : `location / { root ${site}; index index.html; }`;
  const upstream = o.proxyPass
    ? `upstream app { server ${new URL(o.proxyPass).host}; keepalive 64; }\n  `
    : '';
  const conf = `worker_processes ${o.workers ?? 1};
error_log ${join(dir, 'error.log')} warn;
pid ${join(dir, 'nginx.pid')};
${process.getuid?.() === 0 ? 'user root root;\n' : ''}events { worker_connections 1024; }
http {
  access_log off;
  default_type application/octet-stream;
  client_body_temp_path ${join(dir, 'body')};
  proxy_temp_path ${join(dir, 'proxy')};
  ${upstream}server {
    listen 127.0.0.1:${port}${tls};
    ${location}
  }
}
`;
  writeFileSync(join(dir, 'nginx.conf'), conf);
  const child: ChildProcess = spawn(
    'nginx',
    ['-p', dir, '-c', join(dir, 'nginx.conf'), '-g', 'daemon off;'],
    {
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  let err = '';
  child.stderr!.on('data', (c) => {
    err += c;
  });
  await waitForListener(port, {
    name: 'nginx',
    log: () => err,
    exited: () => child.exitCode !== null || child.signalCode !== null,
  });
  return {
    port,
    url: `${o.tls ? 'https' : 'http'}://127.0.0.1:${port}`,
    dir,
    pid: child.pid,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        const gone = new Promise<void>((r) => child.once('exit', () => r()));
        child.kill('SIGQUIT');
        const t = setTimeout(() => child.kill('SIGKILL'), 3000);
        await gone;
        clearTimeout(t);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
