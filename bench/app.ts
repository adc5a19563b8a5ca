/**
 * Web app benchmark (issue 11 point 8): `wrk -c32` against a real node:http app directly,
 * through nginx as a reverse proxy (the baseline an operator would otherwise deploy: keep-alive
 * upstream, no buffering) and through Warden's `wsh proxy app`; and — because wrk cannot send a
 * TLS client certificate — a small Node load generator (bench/app-load.ts, its own process,
 * 32 keep-alive connections) against nginx over TLS and against Warden's proxy port with the
 * app certificate. Same run, same app, interleaved paths; requests/s and p99 latency as ratios
 * against nginx, with the goals (≥ 0.80× nginx's requests/s, p99 ≤ 2× nginx's). CPU time of
 * each Warden process per request says what limits it. Asserts nothing.
 *
 *   npm run build && npm run bench:app      (needs wrk, nginx, openssl)
 *   npm run bench:app -- --seconds 5 --rounds 2 --nginx-workers 1
 *   npm run bench:app -- --only=wshProxyApp,wardenCert --profile=/tmp/prof   (V8 CPU profiles of warden and wsh)
 *   npm run bench:app -- --node-http   (also a second warden with the lean HTTP/1.1 path off, WARDEN_APP_LEAN_HTTP1=0:
 *                                       node:http for every request; same run, rows marked "node:http")
 *   npm run bench:app -- --hold   (sets everything up, prints the addresses, pids and the load
 *                                  generator's command line as JSON, waits for Ctrl-C: for strace/perf)
 */
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import {
  type HttpApp,
  type NginxServer,
  requireTool,
  runCli,
  selfSignedCert,
  signupWithTotp,
  spawnCli,
  startHttpApp,
  startNginx,
  startWarden,
  type WardenProcess,
} from '@warden/testkit';
import { cpuMs, goal, verdict } from './goals';

const { values: args } = parseArgs({
  options: {
    seconds: { type: 'string', default: '10' },
    connections: { type: 'string', default: '32' },
    rounds: { type: 'string', default: '1' },
    'nginx-workers': { type: 'string', default: '1' },
    only: { type: 'string' },
    profile: { type: 'string' },
    hold: { type: 'boolean', default: false },
    'node-http': { type: 'boolean', default: false },
  },
});
const SECONDS = Number(args.seconds);
const CONNECTIONS = Number(args.connections);
const ROUNDS = Number(args.rounds);
const NGINX_WORKERS = Number(args['nginx-workers']);
const PASSWORD = 'correct horse battery staple';
const LOAD = resolve(import.meta.dirname, 'app-load.ts');
/** `--profile=DIR`: warden and wsh write V8 CPU profiles there (`node --cpu-prof`). */
const nodeArgs = args.profile ? ['--cpu-prof', `--cpu-prof-dir=${args.profile}`] : [];
const ONLY = args.only ? new Set(args.only.split(',')) : undefined;
/** `--node-http`: also a second warden with the lean HTTP/1.1 path off (node:http for every request), same run. */
const NODE_HTTP = args['node-http'];

interface Measure {
  rps: number;
  p99: number;
  /** The load generator's own CPU time over the run (ms). */
  genCpuMs: number;
}

function sh(cmd: string, argv: string[]): Promise<{ stdout: string; stderr: string; code: number }> {
  return new Promise((res) => {
    execFile(cmd, argv, { maxBuffer: 1 << 20 }, (err, stdout, stderr) =>
      res({ stdout, stderr, code: err ? ((err as { code?: number }).code ?? 1) : 0 }),
    );
  });
}

/**
 * `wrk -t2 -cN -dS --latency URL`: requests/s, the 99th percentile (ms) and wrk's own CPU time
 * (bash's `times` after it: the children's user and system time).
 */
async function wrk(url: string): Promise<Measure> {
  const r = await sh('bash', [
    '-c',
    `wrk -t${Math.min(2, CONNECTIONS)} -c${CONNECTIONS} -d${SECONDS}s --latency "$0"; times`,
    url,
  ]);
  const t = [...r.stdout.matchAll(/(\d+)m([\d.]+)s/g)].map(
    (m) => Number(m[1]) * 60_000 + Number(m[2]) * 1000,
  );
  const genCpuMs = (t[2] ?? Number.NaN) + (t[3] ?? Number.NaN);
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(r.stdout)?.[1]);
  const m = /\s99%\s+([\d.]+)(us|ms|s)\b/.exec(r.stdout);
  const p99 = m ? Number(m[1]) * (m[2] === 'us' ? 0.001 : m[2] === 's' ? 1000 : 1) : Number.NaN;
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(r.stdout)?.[1];
  if (non2xx) process.stderr.write(`warning: ${url}: ${non2xx} non-2xx responses\n`);
  return { rps, p99, genCpuMs };
}

/** The Node load generator (TLS, optional client certificate), in its own process. */
function nodeLoad(opts: Record<string, string>): Promise<Measure> {
  return new Promise((res, rej) => {
    const argv = ['--import', 'tsx', LOAD, `--connections=${CONNECTIONS}`, `--seconds=${SECONDS}`];
    for (const [k, v] of Object.entries(opts)) argv.push(`--${k}=${v}`);
    const child = spawn(process.execPath, argv, { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (c) => {
      out += c;
    });
    child.on('error', rej);
    child.on('close', () => {
      try {
        const r = JSON.parse(out) as { rps: number; p99: number; errors: number; cpuMs: number };
        if (r.errors) process.stderr.write(`warning: ${opts.url}: ${r.errors} failed requests\n`);
        res({ rps: r.rps, p99: r.p99, genCpuMs: r.cpuMs });
      } catch {
        rej(new Error(`load generator failed: ${out}`));
      }
    });
  });
}

/** The CPU time (ms) of nginx's workers (the master's children) — they do the proxying. */
function nginxCpuMs(n: NginxServer | undefined): number | undefined {
  if (n?.pid === undefined) return undefined;
  try {
    const kids = readFileSync(`/proc/${n.pid}/task/${n.pid}/children`, 'utf8')
      .trim()
      .split(/\s+/)
      .filter(Boolean);
    return kids.reduce((sum, k) => sum + (cpuMs(Number(k)) ?? 0), 0);
  } catch {
    return undefined;
  }
}

/**
 * The main thread's time on a CPU and time runnable but waiting for one (ms), from
 * /proc/<pid>/task/<pid>/schedstat. On a loaded machine the wait says whether a slow path is
 * starved of CPU (long waits) or waiting on something else (short waits, idle).
 */
function schedMs(pid: number | undefined): { run: number; wait: number } | undefined {
  if (pid === undefined) return undefined;
  try {
    const [run, wait] = readFileSync(`/proc/${pid}/task/${pid}/schedstat`, 'utf8').split(' ').map(Number);
    return { run: (run ?? 0) / 1e6, wait: (wait ?? 0) / 1e6 };
  } catch {
    return undefined;
  }
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor(s.length / 2)]! : Number.NaN;
};

interface WardenPath {
  w: WardenProcess;
  proxy: ReturnType<typeof spawnCli>;
  /** `wsh proxy app`'s local URL. */
  local: string;
  /** The proxy port. */
  port: number;
  /** `wsh app config --format=json`: ca, cert, key files. */
  cfg: Record<string, string>;
}

/** A warden with the bench app, alice logged in with an app certificate, and `wsh proxy app` running. */
async function startWardenPath(appUrl: string, env: NodeJS.ProcessEnv): Promise<WardenPath> {
  const w = await startWarden({
    publicHost: 'localhost',
    configYaml:
      'auth_service:\n  authentication:\n    second_factor: "off"\n' +
      `ssh_service:\n  enabled: false\napp_service:\n  apps:\n    - { name: bench, uri: "${appUrl}" }\n`,
    nodeArgs,
    env,
  });
  const port = Number(w.proxy.split(':')[1]);
  const cliEnv = { ...w.env, WARDEN_HOME: join(w.dir, 'home-alice') };
  const add = await runCli('wctl', ['users', 'add', 'alice', '--roles=access'], { env: w.env });
  const token = /--token=(\S+)/.exec(add.stdout)?.[1];
  if (!token) throw new Error(`wctl users add: ${add.stderr}`);
  const s = await signupWithTotp(
    [`--proxy=${w.proxy}`, `--token=${token}`, `--ca-pin=${w.caPin}`],
    PASSWORD,
    cliEnv,
  );
  if (s.code !== 0) throw new Error(`signup: ${s.stderr}`);
  const l = await runCli('wsh', ['login', `--proxy=${w.proxy}`, '--user=alice'], {
    env: cliEnv,
    input: `${PASSWORD}\n`,
  });
  if (l.code !== 0) throw new Error(`login: ${l.stderr}`);
  const al = await runCli('wsh', ['app', 'login', 'bench'], { env: cliEnv });
  if (al.code !== 0) throw new Error(`app login: ${al.stderr}`);
  const cfg = JSON.parse(
    (await runCli('wsh', ['app', 'config', 'bench', '--format=json'], { env: cliEnv })).stdout,
  ) as Record<string, string>;
  const proxy = spawnCli('wsh', ['proxy', 'app', 'bench', '-p', '0'], { env: cliEnv, nodeArgs });
  const until = Date.now() + 20_000;
  let local = '';
  while (!local && Date.now() < until) {
    local = /on (http:\/\/127\.0\.0\.1:\d+)/.exec(proxy.stdout())?.[1] ?? '';
    if (!local) await new Promise((r) => setTimeout(r, 50));
  }
  if (!local) throw new Error(`wsh proxy app did not start: ${proxy.stderr()}`);
  return { w, proxy, local, port, cfg };
}

async function main(): Promise<number> {
  for (const t of ['wrk', 'nginx', 'openssl']) {
    const c = requireTool(t);
    if (!c.ok) {
      process.stdout.write(`bench:app skipped: ${c.skip}\n`);
      return 0;
    }
  }
  let app: HttpApp | undefined;
  let nginx: NginxServer | undefined;
  let nginxTls: NginxServer | undefined;
  let w: WardenProcess | undefined;
  let proxy: ReturnType<typeof spawnCli> | undefined;
  let viaNode: WardenPath | undefined;
  let dir: string | undefined;
  try {
    app = await startHttpApp();
    nginx = await startNginx({ proxyPass: app.url, workers: NGINX_WORKERS });
    // nginx over TLS with a self-signed certificate (the Node generator pins it).
    dir = mkdtempSync(join(tmpdir(), 'bench-app-'));
    const tls = selfSignedCert({ dir, cn: 'localhost', dnsNames: ['localhost'] });
    const cert = tls.certFile;
    nginxTls = await startNginx({
      proxyPass: app.url,
      workers: NGINX_WORKERS,
      tls: { cert: tls.certPem, key: tls.keyPem },
    });

    const lean = await startWardenPath(app.url, {});
    w = lean.w;
    proxy = lean.proxy;
    if (NODE_HTTP) {
      viaNode = await startWardenPath(app.url, { WARDEN_APP_LEAN_HTTP1: '0' });
    }
    const { local, port, cfg } = lean;
    const certLoad = (p: WardenPath) => () =>
      nodeLoad({
        url: `https://127.0.0.1:${p.port}/hello`,
        ca: p.cfg.ca!,
        cert: p.cfg.cert!,
        key: p.cfg.key!,
        servername: 'bench.localhost',
      });

    const paths = {
      direct: () => wrk(`${app!.url}/hello`),
      nginx: () => wrk(`${nginx!.url}/hello`),
      wshProxyApp: () => wrk(`${local}/hello`),
      nginxTls: () =>
        nodeLoad({ url: `https://127.0.0.1:${nginxTls!.port}/hello`, ca: cert, servername: 'localhost' }),
      wardenCert: certLoad(lean),
      // --node-http: the same two paths through a warden that serves every request with node:http.
      wshProxyAppNode: () => wrk(`${viaNode!.local}/hello`),
      wardenCertNode: () => certLoad(viaNode!)(),
    } as const;
    /** The warden (and wsh) process of each Warden path. */
    const wardenOf: Partial<Record<keyof typeof paths, WardenPath>> = {
      wshProxyApp: lean,
      wardenCert: lean,
      ...(viaNode ? { wshProxyAppNode: viaNode, wardenCertNode: viaNode } : {}),
    };
    if (args.hold) {
      process.stdout.write(
        `${JSON.stringify(
          {
            app: app.url,
            nginx: nginx.url,
            nginxTls: `https://127.0.0.1:${nginxTls.port}`,
            wshProxyApp: local,
            wardenCert: `https://127.0.0.1:${port}`,
            pids: { warden: w.child.pid, wsh: proxy.child.pid },
            ...(viaNode
              ? {
                  nodeHttp: {
                    wshProxyApp: viaNode.local,
                    wardenCert: `https://127.0.0.1:${viaNode.port}`,
                    pids: { warden: viaNode.w.child.pid, wsh: viaNode.proxy.child.pid },
                  },
                }
              : {}),
            load: `node --import tsx ${LOAD} --url=https://127.0.0.1:${port}/hello --ca=${cfg.ca} --cert=${cfg.cert} --key=${cfg.key} --servername=bench.localhost`,
          },
          null,
          2,
        )}\n`,
      );
      await new Promise<void>((r) => {
        process.once('SIGINT', r);
        process.once('SIGTERM', r);
      });
      return 0;
    }
    type Path = keyof typeof paths;
    const results = Object.fromEntries(Object.keys(paths).map((p) => [p, [] as Measure[]])) as Record<
      Path,
      Measure[]
    >;
    type Cpu = { warden: number; wsh: number; requests: number; run: number; wait: number };
    const cpu = Object.fromEntries(
      Object.keys(wardenOf).map((p) => [p, { warden: 0, wsh: 0, requests: 0, run: 0, wait: 0 }]),
    ) as Partial<Record<Path, Cpu>>;
    /** CPU ms of the app and of the proxy hop(s) (nginx's workers; warden + wsh) per path. */
    const budget: Partial<Record<Path, { app: number; proxy: number; gen: number; requests: number }>> = {};
    // Warm-up (JIT, connection pools), not counted.
    await wrk(`${local}/hello`).catch(() => undefined);
    if (viaNode) await wrk(`${viaNode.local}/hello`).catch(() => undefined);
    for (let round = 0; round < ROUNDS; round++) {
      for (const p of Object.keys(paths) as Path[]) {
        if (ONLY && !ONLY.has(p)) continue;
        if ((p === 'wshProxyAppNode' || p === 'wardenCertNode') && !viaNode) continue;
        const wp = wardenOf[p];
        const w0 = cpuMs(wp?.w.child.pid);
        const p0 = cpuMs(wp?.proxy.child.pid);
        const s0 = schedMs(wp?.w.child.pid);
        const nginxOf = p === 'nginx' ? nginx : p === 'nginxTls' ? nginxTls : undefined;
        const n0 = nginxCpuMs(nginxOf);
        const a0 = process.cpuUsage();
        const m = await paths[p]();
        results[p].push(m);
        // The app runs in this process (the bench's own work while a run lasts is small).
        const a1 = process.cpuUsage(a0);
        const b = budget[p] ?? { app: 0, proxy: 0, gen: 0, requests: 0 };
        budget[p] = b;
        b.app += (a1.user + a1.system) / 1000;
        b.gen += m.genCpuMs;
        b.requests += m.rps * SECONDS;
        if (nginxOf) b.proxy += (nginxCpuMs(nginxOf) ?? 0) - (n0 ?? 0);
        if (wp)
          b.proxy += (cpuMs(wp.w.child.pid) ?? 0) - (w0 ?? 0) + (cpuMs(wp.proxy.child.pid) ?? 0) - (p0 ?? 0);
        const c = cpu[p];
        if (wp && c) {
          const s1 = schedMs(wp.w.child.pid);
          c.warden += (cpuMs(wp.w.child.pid) ?? 0) - (w0 ?? 0);
          c.wsh += (cpuMs(wp.proxy.child.pid) ?? 0) - (p0 ?? 0);
          c.requests += m.rps * SECONDS;
          c.run += (s1?.run ?? 0) - (s0?.run ?? 0);
          c.wait += (s1?.wait ?? 0) - (s0?.wait ?? 0);
        }
        process.stderr.write(
          `round ${round + 1}: ${p} ${m.rps.toFixed(0)} req/s, p99 ${m.p99.toFixed(2)} ms\n`,
        );
      }
    }
    const rps = (p: Path) => median(results[p].map((m) => m.rps));
    const p99 = (p: Path) => median(results[p].map((m) => m.p99));
    const row = (name: string, p: Path, base: Path) =>
      `${name.padEnd(44)} ${rps(p).toFixed(0).padStart(8)} ${(rps(p) / rps(base)).toFixed(2).padStart(7)}× ${p99(p).toFixed(2).padStart(9)} ${(p99(p) / p99(base)).toFixed(2).padStart(7)}×`;
    const out: string[] = [];
    out.push(
      `bench:app — ${CONNECTIONS} connections, ${SECONDS} s per path, ${ROUNDS} round(s), GET /hello (5 bytes); nginx ${NGINX_WORKERS} worker(s); medians; load average ${loadavg()
        .map((l) => l.toFixed(2))
        .join(' ')}`,
      '',
      `${'wrk (plain HTTP to the first hop)'.padEnd(44)} ${'req/s'.padStart(8)} ${'vs nginx'.padStart(8)} ${'p99 ms'.padStart(9)} ${'vs nginx'.padStart(8)}`,
      row('app direct', 'direct', 'nginx'),
      row('nginx reverse proxy (baseline)', 'nginx', 'nginx'),
      row('Warden: wsh proxy app (tunnel, TLS to proxy)', 'wshProxyApp', 'nginx'),
      ...(viaNode ? [row('  same, node:http for every request', 'wshProxyAppNode', 'nginx')] : []),
      '',
      `${'Node generator (TLS to the first hop)'.padEnd(44)}`,
      row('nginx reverse proxy, TLS (baseline)', 'nginxTls', 'nginxTls'),
      row('Warden proxy port, app certificate (mTLS)', 'wardenCert', 'nginxTls'),
      ...(viaNode ? [row('  same, node:http for every request', 'wardenCertNode', 'nginxTls')] : []),
      '',
    );
    const names: Partial<Record<Path, string>> = {
      wshProxyApp: 'wsh proxy app',
      wardenCert: 'app certificate',
      wshProxyAppNode: 'wsh proxy app, node:http',
      wardenCertNode: 'app certificate, node:http',
    };
    for (const [p, c] of Object.entries(cpu) as [Path, Cpu][]) {
      if (!c.requests) continue;
      const tunnel = p === 'wshProxyApp' || p === 'wshProxyAppNode';
      out.push(
        `CPU per request, ${names[p]}: warden ${((c.warden * 1000) / c.requests).toFixed(1)} µs` +
          (tunnel ? `, wsh ${((c.wsh * 1000) / c.requests).toFixed(1)} µs` : '') +
          ` (${((c.warden / (SECONDS * ROUNDS * 1000)) * 100).toFixed(0)}% of one core for warden;` +
          ` its main thread ran ${((c.run / (SECONDS * ROUNDS * 1000)) * 100).toFixed(0)}% and waited for a CPU` +
          ` ${((c.wait / (SECONDS * ROUNDS * 1000)) * 100).toFixed(0)}% of the time)`,
      );
    }
    out.push(
      '',
      'CPU per request (µs) of the app, of the proxy hop(s) and of the load generator — it moves much less with',
      'the load than req/s; two cores give 2,000,000 µs a second to share among them:',
    );
    const hop: Partial<Record<Path, string>> = {
      direct: 'none',
      nginx: 'nginx',
      wshProxyApp: 'warden + wsh',
      nginxTls: 'nginx (TLS)',
      wardenCert: 'warden',
      wshProxyAppNode: 'warden + wsh (node:http)',
      wardenCertNode: 'warden (node:http)',
    };
    for (const [p, b] of Object.entries(budget) as [
      Path,
      { app: number; proxy: number; gen: number; requests: number },
    ][]) {
      if (!b.requests) continue;
      const us = (ms: number) => ((ms * 1000) / b.requests).toFixed(1);
      out.push(
        `  ${p.padEnd(16)} app ${us(b.app).padStart(6)}   generator ${us(b.gen).padStart(6)}   ${hop[p]} ${us(b.proxy)}` +
          `   total ${us(b.app + b.gen + b.proxy)}`,
      );
    }
    const goals = [
      goal('wsh proxy app req/s vs nginx', rps('wshProxyApp') / rps('nginx'), { min: 0.8 }),
      goal('wsh proxy app p99 vs nginx', p99('wshProxyApp') / p99('nginx'), { max: 2 }),
      goal('app certificate req/s vs nginx TLS', rps('wardenCert') / rps('nginxTls'), { min: 0.8 }),
      goal('app certificate p99 vs nginx TLS', p99('wardenCert') / p99('nginxTls'), { max: 2 }),
    ];
    out.push('', ...goals.map((g) => `${g.what.padEnd(40)} ${g.text}`), verdict('bench:app', goals));
    out.push(
      '',
      'What limits Warden here: CPU per request (the table above). One Node.js process terminates TLS, reads',
      'HTTP/1.1 (the lean path for plain requests, node:http for the rest), checks access on every request and',
      'relays to the app (its own HTTP/1.1 client on the lean path, undici otherwise); `wsh proxy app` adds a',
      'second process and a TLS hop. Everything shares two cores: a path can do at most 2,000,000 / total',
      "requests a second, so 0.8x nginx needs a Warden total of at most 1.25x nginx's (bench/README.md).",
      'On a loaded machine a process runs only its share of the time: a large "waited for a CPU" above',
      'means the path was starved of CPU, not stuck (bench/README.md). Run with --rounds 3 for steadier medians.',
    );
    process.stdout.write(`${out.join('\n')}\n`);
    return 0;
  } finally {
    if (proxy) {
      proxy.child.kill('SIGTERM');
      await proxy.exited;
    }
    await w?.stop();
    if (viaNode) {
      viaNode.proxy.child.kill('SIGTERM');
      await viaNode.proxy.exited;
      await viaNode.w.stop();
    }
    await nginx?.stop();
    await nginxTls?.stop();
    await app?.close();
    if (dir) (await import('node:fs')).rmSync(dir, { recursive: true, force: true });
  }
}

main().then(
  (code) => process.exit(code),
  (e) => {
    process.stderr.write(`bench:app failed: ${(e as Error).stack ?? e}\n`);
    process.exit(1);
  },
);
