/**
 * SSH benchmark (issue 3 point 7, issue 14 point 6): session setup latency and bulk `scp`
 * throughput through Warden against OpenSSH straight to a plain `sshd` (direct, the baseline
 * of the goals: setup ≤ 1.1×, scp ≥ 0.9×) and through a `ProxyJump` host, measured in the
 * same run and printed as ratios with the goals and a verdict. Asserts nothing (numbers depend on the machine and its load).
 *
 * Warden: a real `warden start` (proxy + built-in SSH node `node-1`), a user with the `root`
 * login who signed up and logged in; plain OpenSSH goes through `wsh config` (ProxyCommand
 * `wsh proxy ssh`), and `wsh ssh` is Warden's own client. Baseline: two throwaway `sshd`s on
 * 127.0.0.1 (a jump host and a target, key auth, host keys checked), `ssh target` and `ssh -J`. Both
 * targets serve `scp` with the same OpenSSH sftp-server, and every path uses the cipher order
 * `wsh config` writes (AES-GCM first where the CPU has AES instructions). Session runs are interleaved
 * (baseline, Warden/OpenSSH, wsh) so that load from other processes hits every path alike;
 * each figure includes starting the client process, as a user pays it. Session rounds stop
 * after --sessions or once --session-budget-s has passed (at least 5 rounds), so that a busy
 * machine still finishes in about two minutes; the table says how many ran.
 *
 * scp also reports the CPU time per MiB of each side, which moves far less with the load than
 * MB/s: the client (scp, ssh and, through Warden, the ProxyCommand; /usr/bin/time over the
 * whole command) and the server (warden, or the sshd(s), with the sftp-server they reaped; from
 * /proc/<pid>/stat).
 *
 *   npm run build && npm run bench:ssh        (needs OpenSSH ssh, scp, sshd, ssh-keygen, sftp-server)
 *   npm run bench:ssh -- --sessions 10 --size-mib 16 --scp-runs 1 [--only=setup|scp] [--profile=DIR] [--hold]
 *
 * `--profile=DIR`: warden writes a V8 CPU profile to DIR when it stops. `--hold`: after the
 * set-up, prints the pids and the commands of each path and waits for Ctrl-C (perf, strace).
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  appendFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { addUserAndLogin, requireTool, runCli, startWarden, type WardenProcess } from '@warden/testkit';
import { cpuMs, type Goal, goal, loadAverage, verdict } from './goals';

const { values: args } = parseArgs({
  options: {
    sessions: { type: 'string', default: '20' },
    'session-budget-s': { type: 'string', default: '50' },
    'size-mib': { type: 'string', default: '64' },
    'scp-runs': { type: 'string', default: '2' },
    only: { type: 'string', default: 'setup,scp' },
    profile: { type: 'string' },
    hold: { type: 'boolean', default: false },
  },
});
const ONLY = new Set(args.only.split(','));
const SESSIONS = Number(args.sessions);
/** Session rounds stop once they have run this long (after at least 5), to bound a busy machine's run. */
const SESSION_BUDGET_MS = Number(args['session-budget-s']) * 1000;
const SIZE_MIB = Number(args['size-mib']);
const SCP_RUNS = Number(args['scp-runs']);
const PASSWORD = 'correct horse battery staple';
const WSH = resolve(import.meta.dirname, '../dist/wsh.js');
const SFTP_SERVER = '/usr/lib/openssh/sftp-server';

interface Run {
  code: number;
  stderr: string;
  ms: number;
}

/** Runs a command to completion; `ms` is wall time from spawn to exit. */
function run(command: string, argv: string[], env: NodeJS.ProcessEnv = {}): Promise<Run> {
  return new Promise((res, rej) => {
    const start = performance.now();
    const child = spawn(command, argv, {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (c) => {
      stderr += c;
    });
    child.on('error', rej);
    child.on('close', (code) => res({ code: code ?? -1, stderr, ms: performance.now() - start }));
  });
}

/** Like `run`, but a failure ends the benchmark with the command's stderr. */
async function must(command: string, argv: string[], env?: NodeJS.ProcessEnv): Promise<number> {
  const r = await run(command, argv, env);
  if (r.code !== 0) throw new Error(`${command} ${argv.join(' ')} exited with ${r.code}:\n${r.stderr}`);
  return r.ms;
}

interface Scp {
  /** Wall time of the whole scp command. */
  ms: number;
  /** The ssh session's own time from after login to the end, as `ssh -v` reports it. */
  sessionMs: number;
  /** CPU time (user + system) of scp and everything it started (ssh, the ProxyCommand). */
  clientCpuMs: number;
  /** CPU time of the server side (warden or the sshd(s), with what they reaped). */
  serverCpuMs: number;
  /** CPU time of the server processes themselves, without what they reaped (warden's own work). */
  serverOwnCpuMs: number;
}

/**
 * User + system ms from a `/usr/bin/time -f '%U %S' -o FILE` file, once written (NaN after 2 s
 * without); the file is removed. /usr/bin/time creates the file at start and fills it at exit.
 */
async function timeFile(file: string): Promise<number> {
  try {
    for (let i = 0; i < 100; i++) {
      const text = existsSync(file) ? readFileSync(file, 'utf8') : '';
      const m = /^([\d.]+) ([\d.]+)$/m.exec(text);
      if (m) return (Number(m[1]) + Number(m[2])) * 1000;
      await new Promise((r) => setTimeout(r, 20));
    }
    return Number.NaN;
  } finally {
    rmSync(file, { force: true });
  }
}

/** CPU time of `pids` and the children they reaped, once it stops growing (sshd reaps after scp exits). */
async function settledCpu(pids: number[]): Promise<number> {
  const now = () => pids.reduce((sum, pid) => sum + (cpuMs(pid, true) ?? 0), 0);
  let last = now();
  for (let i = 0; i < 20; i++) {
    await new Promise((r) => setTimeout(r, 50));
    const v = now();
    if (v === last && i >= 2) break;
    last = v;
  }
  return last;
}

/**
 * Runs `scp -v` under /usr/bin/time. Its ssh prints "Transferred: … in N seconds" for the time
 * after login; with ProxyJump the jump host's ssh prints one too, over a longer span, so the
 * shortest is ours. `server` are the pids whose CPU is the server side's.
 */
async function scp(
  argv: string[],
  server: number[],
  env: NodeJS.ProcessEnv = {},
  timedProxy = false,
): Promise<Scp> {
  const s0 = await settledCpu(server);
  const own0 = server.reduce((sum, pid) => sum + (cpuMs(pid) ?? 0), 0);
  const timing = join(tmpdir(), `warden-bench-ssh-time-${process.pid}`);
  const proxyTiming = `${timing}-proxy`;
  rmSync(proxyTiming, { force: true });
  const r = await run(
    '/usr/bin/time',
    ['-f', '%U %S', '-o', timing, 'scp', '-v', '-o', 'BatchMode=yes', ...argv],
    { ...env, WARDEN_BENCH_PROXY_TIME: proxyTiming },
  );
  if (r.code !== 0) throw new Error(`scp ${argv.join(' ')} exited with ${r.code}:\n${r.stderr}`);
  const spans = [...r.stderr.matchAll(/Transferred: sent \d+, received \d+ bytes, in ([\d.]+) seconds/g)];
  if (spans.length === 0) throw new Error(`scp -v printed no "Transferred:" line:\n${r.stderr}`);
  let clientCpuMs = await timeFile(timing);
  // The relay exits on its own once ssh is gone, and /usr/bin/time writes its figures then.
  if (timedProxy) clientCpuMs += await timeFile(proxyTiming);
  return {
    ms: r.ms,
    sessionMs: Math.min(...spans.map((m) => Number(m[1]) * 1000)),
    clientCpuMs,
    serverCpuMs: (await settledCpu(server)) - s0,
    serverOwnCpuMs: server.reduce((sum, pid) => sum + (cpuMs(pid) ?? 0), 0) - own0,
  };
}

async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => res(port));
    });
    s.on('error', rej);
  });
}

/** Nearest-rank percentile of an ascending list. */
function percentile(sorted: number[], p: number): number {
  return sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)] ?? Number.NaN;
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** Warden with its SSH node, one user (login root) signed up and logged in; `config` is `wsh config`. */
async function startWardenPath(): Promise<{
  w: WardenProcess;
  env: NodeJS.ProcessEnv;
  config: string;
  timedConfig: string;
}> {
  const w = await startWarden({
    nodeName: 'node-1',
    ...(args.profile ? { nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${resolve(args.profile)}`] } : {}),
  });
  try {
    const { env } = await addUserAndLogin(w, 'bench', {
      roles: 'access',
      logins: 'root',
      home: join(w.dir, 'home-bench'),
      password: PASSWORD,
    });
    const cfg = await runCli('wsh', ['config'], { env });
    if (cfg.code !== 0) throw new Error(`wsh config failed:\n${cfg.stderr}`);
    const config = join(w.dir, 'ssh_config');
    writeFileSync(config, cfg.stdout);
    // For scp's CPU figures: the same config with the ProxyCommand under /usr/bin/time. ssh
    // does not wait for its ProxyCommand (it sends SIGHUP and exits), so /usr/bin/time over scp
    // misses it; the wrapper ignores the hang-up (the relay still ends on EOF) and writes the
    // relay's CPU time to $WARDEN_BENCH_PROXY_TIME.
    const wrapper = join(w.dir, 'timed-proxy-command');
    writeFileSync(
      wrapper,
      `#!/bin/sh\ntrap '' HUP\nexec /usr/bin/time -o "$WARDEN_BENCH_PROXY_TIME" -f '%U %S' "$@"\n`,
      { mode: 0o755 },
    );
    const timedConfig = join(w.dir, 'ssh_config_timed');
    writeFileSync(timedConfig, cfg.stdout.replaceAll('ProxyCommand ', `ProxyCommand ${wrapper} `));
    return { w, env, config, timedConfig };
  } catch (err) {
    await w.stop();
    throw err;
  }
}

interface Sshd {
  pid: number;
  stop(): Promise<void>;
}

/** A plain OpenSSH sshd on 127.0.0.1 that lets the holder of `authorizedKeys` in as root. */
async function startSshd(dir: string, name: string, hostKey: string, authorizedKeys: string) {
  const port = await freePort();
  const cfg = join(dir, `${name}_sshd_config`);
  writeFileSync(
    cfg,
    [
      `Port ${port}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${hostKey}`,
      `AuthorizedKeysFile ${authorizedKeys}`,
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'PermitRootLogin prohibit-password',
      'StrictModes no',
      'UsePAM no',
      `PidFile ${join(dir, `${name}.pid`)}`,
      `Subsystem sftp ${SFTP_SERVER}`,
      'LogLevel ERROR',
      '',
    ].join('\n'),
  );
  const child = spawn('/usr/sbin/sshd', ['-D', '-e', '-f', cfg], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  child.stderr.on('data', (c) => {
    log += c;
  });
  const sshd: Sshd = {
    pid: child.pid ?? -1,
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    },
  };
  // Ready once the port accepts connections.
  const deadline = Date.now() + 10_000;
  for (;;) {
    const ok = await new Promise<boolean>((res) => {
      const c = connect({ host: '127.0.0.1', port }, () => {
        c.destroy();
        res(true);
      });
      c.on('error', () => res(false));
    });
    if (ok) return { port, sshd };
    if (child.exitCode !== null || Date.now() > deadline) {
      await sshd.stop();
      throw new Error(`sshd ${name} did not start:\n${log}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The baseline: a jump host and a target sshd, and an ssh_config naming both (`ssh -J jumphost target`). */
async function startProxyJumpPath(
  dir: string,
): Promise<{ config: string; jumpPid: number; targetPid: number; stop: () => Promise<void> }> {
  if (!existsSync('/run/sshd')) mkdirSync('/run/sshd', { mode: 0o755 });
  const hostKey = join(dir, 'host_ed25519');
  const userKey = join(dir, 'user_ed25519');
  await must('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'bench-host', '-f', hostKey]);
  await must('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'bench-user', '-f', userKey]);
  const authorizedKeys = join(dir, 'authorized_keys');
  writeFileSync(authorizedKeys, readFileSync(`${userKey}.pub`));
  const hostPub = readFileSync(`${hostKey}.pub`, 'utf8').trim();
  writeFileSync(join(dir, 'known_hosts'), `jumphost ${hostPub}\ntarget ${hostPub}\n`);
  const jump = await startSshd(dir, 'jumphost', hostKey, authorizedKeys);
  const stops = [jump.sshd.stop];
  try {
    const target = await startSshd(dir, 'target', hostKey, authorizedKeys);
    stops.push(target.sshd.stop);
    const config = join(dir, 'ssh_config');
    writeFileSync(
      config,
      [
        ...['jumphost', 'target'].flatMap((name, i) => [
          `Host ${name}`,
          '    HostName 127.0.0.1',
          `    Port ${i === 0 ? jump.port : target.port}`,
          `    HostKeyAlias ${name}`,
        ]),
        'Host *',
        '    User root',
        `    IdentityFile ${userKey}`,
        '    IdentitiesOnly yes',
        `    UserKnownHostsFile ${join(dir, 'known_hosts')}`,
        '    GlobalKnownHostsFile /dev/null',
        '    StrictHostKeyChecking yes',
        '',
      ].join('\n'),
    );
    return {
      config,
      jumpPid: jump.sshd.pid,
      targetPid: target.sshd.pid,
      stop: async () => void (await Promise.all(stops.map((s) => s()))),
    };
  } catch (err) {
    await Promise.all(stops.map((s) => s()));
    throw err;
  }
}

async function main(): Promise<void> {
  for (const tool of ['ssh', 'scp', 'sshd', 'ssh-keygen']) {
    if (!requireTool(tool).ok) throw new Error(`bench:ssh needs ${tool} (apt-get install openssh-server)`);
  }
  if (!existsSync(WSH)) throw new Error('dist/wsh.js is missing: run `npm run build` first');
  if (!existsSync(SFTP_SERVER)) throw new Error(`${SFTP_SERVER} is missing (scp needs it)`);
  const started = performance.now();
  const dir = mkdtempSync(join(tmpdir(), 'warden-bench-ssh-'));
  let baseline: Awaited<ReturnType<typeof startProxyJumpPath>> | undefined;
  let warden: Awaited<ReturnType<typeof startWardenPath>> | undefined;
  try {
    [baseline, warden] = await Promise.all([startProxyJumpPath(dir), startWardenPath()]);
    const jumpCfg = baseline.config;
    const { env, config: wardenCfg, timedConfig } = warden;
    // Same cipher order on every path: `wsh config` puts AES-GCM first on a CPU with AES
    // instructions (OpenSSH's default starts with ChaCha20-Poly1305, about twice the CPU per
    // MiB), so the baselines get its Ciphers line too, and the ratios compare the hops alone.
    const ciphers = /^\s*Ciphers\s+(\S+)\s*$/m.exec(readFileSync(wardenCfg, 'utf8'))?.[1];
    if (ciphers) appendFileSync(jumpCfg, `    Ciphers ${ciphers}\n`);
    console.log(`ciphers, every path: ${ciphers ?? "OpenSSH's default order"}`);
    const batch = ['-o', 'BatchMode=yes'];

    // 1. Session setup: `… true`, interleaved; the first round warms caches and is dropped.
    const paths = {
      direct: () => must('ssh', ['-F', jumpCfg, ...batch, 'target', 'true']),
      jump: () => must('ssh', ['-F', jumpCfg, ...batch, '-J', 'jumphost', 'target', 'true']),
      openssh: () => must('ssh', ['-F', wardenCfg, ...batch, 'root@node-1', 'true'], env),
      wsh: () => must(process.execPath, [WSH, 'ssh', 'root@node-1', 'true'], env),
    };
    const times: Record<keyof typeof paths, number[]> = { direct: [], jump: [], openssh: [], wsh: [] };
    const src = join(dir, 'payload.bin');
    writeFileSync(src, randomBytes(SIZE_MIB * 1024 * 1024));
    const wardenPid = warden.w.child.pid ?? -1;
    if (args.hold) {
      // Everything stays up for perf/strace by hand: print how to reach it, wait for Ctrl-C.
      console.log(
        `warden pid ${wardenPid}; sshd pids: jump host ${baseline.jumpPid}, target ${baseline.targetPid}`,
      );
      console.log(`direct:  scp -F ${jumpCfg} ${src} target:${join(dir, 'direct.bin')}`);
      console.log(
        `Warden:  env WARDEN_HOME=${env.WARDEN_HOME} WARDEN_PROXY=${env.WARDEN_PROXY} scp -F ${wardenCfg} ${src} root@node-1:${join(dir, 'via-warden.bin')}`,
      );
      console.log(
        `wsh ssh: env WARDEN_HOME=${env.WARDEN_HOME} WARDEN_PROXY=${env.WARDEN_PROXY} ${process.execPath} ${WSH} ssh root@node-1`,
      );
      await new Promise((done) => process.once('SIGINT', done));
    }
    const sessionsStart = performance.now();
    for (let i = 0; i <= (ONLY.has('setup') ? SESSIONS : -1); i++) {
      if (i > 5 && performance.now() - sessionsStart > SESSION_BUDGET_MS) break;
      for (const key of Object.keys(paths) as (keyof typeof paths)[]) {
        const ms = await paths[key]();
        if (i > 0) times[key].push(ms);
      }
    }

    // 2. Bulk: scp of one random file to the target's disk, each path in turn.
    const bytes = statSync(src).size;
    const copies = {
      direct: { runs: [] as Scp[], dst: join(dir, 'direct.bin') },
      jump: { runs: [] as Scp[], dst: join(dir, 'via-jump.bin') },
      openssh: { runs: [] as Scp[], dst: join(dir, 'via-warden.bin') },
    };
    const loads: string[] = [];
    for (let i = 0; i < (ONLY.has('scp') ? SCP_RUNS : 0); i++) {
      loads.push(loadAverage());
      copies.direct.runs.push(
        await scp(['-F', jumpCfg, src, `target:${copies.direct.dst}`], [baseline.targetPid]),
      );
      copies.jump.runs.push(
        await scp(
          ['-F', jumpCfg, '-J', 'jumphost', src, `target:${copies.jump.dst}`],
          [baseline.jumpPid, baseline.targetPid],
        ),
      );
      copies.openssh.runs.push(
        await scp(['-F', timedConfig, src, `root@node-1:${copies.openssh.dst}`], [wardenPid], env, true),
      );
      for (const c of Object.values(copies)) {
        if (statSync(c.dst).size !== bytes) throw new Error(`scp to ${c.dst} copied a short file`);
        rmSync(c.dst);
      }
    }

    // Report: one table per measurement, ratios against OpenSSH direct (no jump host).
    const row = (cells: string[]) =>
      console.log(cells.map((c, i) => (i ? c.padStart(13) : c.padEnd(34))).join(''));
    const ms = (v: number) => `${v.toFixed(0)} ms`;
    const ratio = (v: number) => (Number.isFinite(v) && v > 0 ? `${v.toFixed(2)}x` : '-');
    const rate = (mb: number, t: number) => (t > 0 ? (mb / (t / 1000)).toFixed(1) : '-');
    const labels = {
      direct: 'ssh target (OpenSSH, direct)',
      jump: 'ssh -J jumphost target (OpenSSH)',
      openssh: 'ssh -F <(wsh config) (Warden)',
      wsh: 'wsh ssh (Warden)',
    };
    const p = (key: keyof typeof times, q: number) =>
      percentile(
        [...times[key]].sort((a, b) => a - b),
        q,
      );
    console.log(`\nSSH through Warden vs OpenSSH direct and ProxyJump, same machine, same run\n`);
    row([`session setup, ${times.direct.length}× \`… true\``, 'p50', 'p95', 'p50 ratio', 'p95 ratio']);
    for (const key of Object.keys(times) as (keyof typeof times)[]) {
      row([
        labels[key],
        ms(p(key, 50)),
        ms(p(key, 95)),
        ratio(p(key, 50) / p('direct', 50)),
        ratio(p(key, 95) / p('direct', 95)),
      ]);
    }
    const mb = bytes / 1e6;
    const mib = bytes / (1024 * 1024);
    const wall = (key: keyof typeof copies) => median(copies[key].runs.map((r) => r.ms));
    const session = (key: keyof typeof copies) => median(copies[key].runs.map((r) => r.sessionMs));
    const perMib = (key: keyof typeof copies, side: 'clientCpuMs' | 'serverCpuMs' | 'serverOwnCpuMs') =>
      median(copies[key].runs.map((r) => r[side] / mib));
    console.log('');
    row([`scp ${SIZE_MIB} MiB, median of ${SCP_RUNS}`, 'time', 'MB/s', 'ratio', 'session MB/s', 'ratio']);
    for (const key of ['direct', 'jump', 'openssh'] as const) {
      row([
        labels[key].replace('ssh', 'scp'),
        ms(wall(key)),
        rate(mb, wall(key)),
        ratio(wall('direct') / wall(key)),
        rate(mb, session(key)),
        ratio(session('direct') / session(key)),
      ]);
    }
    console.log('');
    row(['scp CPU per MiB (median)', 'client ms', 'server ms', 'both ms', 'ratio']);
    const both = (key: keyof typeof copies) => perMib(key, 'clientCpuMs') + perMib(key, 'serverCpuMs');
    for (const key of ['direct', 'jump', 'openssh'] as const) {
      row([
        labels[key].replace('ssh', 'scp'),
        perMib(key, 'clientCpuMs').toFixed(2),
        perMib(key, 'serverCpuMs').toFixed(2),
        both(key).toFixed(2),
        ratio(both(key) / both('direct')),
      ]);
    }
    console.log(
      "client: scp + ssh (+ the ProxyCommand; without the jump host's ssh -W), /usr/bin/time; server: warden or\n" +
        'the sshd(s) with the session processes they reaped (login shell, sftp-server), /proc/<pid>/stat (10 ms ticks);\n' +
        `warden itself, without them: ${perMib('openssh', 'serverOwnCpuMs').toFixed(2)} ms per MiB.`,
    );
    for (const [i, l] of loads.entries()) console.log(`scp round ${i + 1}: ${l}`);
    const goals: Goal[] = [
      ...(ONLY.has('setup')
        ? [
            goal('session setup p50, ssh via Warden ÷ direct', p('openssh', 50) / p('direct', 50), {
              max: 1.1,
            }),
            goal('session setup p50, wsh ssh ÷ direct', p('wsh', 50) / p('direct', 50), { max: 1.1 }),
          ]
        : []),
      ...(ONLY.has('scp')
        ? [goal('scp throughput via Warden ÷ direct', wall('direct') / wall('openssh'), { min: 0.9 })]
        : []),
    ];
    console.log('');
    for (const g of goals) console.log(`${g.what}: ${g.text}`);
    console.log(verdict('bench:ssh', goals));
    console.log(
      '\nratio: path ÷ OpenSSH direct; for latency lower is better, for MB/s higher is better. Times' +
        '\ninclude starting the client; scp MB/s is over the whole command, session MB/s over the' +
        '\nsession after login (ssh -v "Transferred: … in N seconds", 0.1 s resolution).',
    );
    console.log(`whole run: ${((performance.now() - started) / 1000).toFixed(0)} s`);
  } finally {
    await Promise.all([baseline?.stop(), warden?.w.stop()]);
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
