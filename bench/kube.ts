/**
 * Kubernetes benchmark (issue 13 item 7): real `kubectl` through Warden (a real `warden start`,
 * kube_service, `wsh kube login`) against real `kubectl` straight to testkit's fake API server
 * (a test double; both paths reach the same one), in the same run, printed as ratios with the
 * goals: `kubectl get pods` latency ≤ 1.3× direct, a 64 MiB `kubectl exec … cat` stream ≥ 0.8×
 * direct throughput. Rounds alternate the paths. Warden is measured twice: with the kubeconfig of
 * `wsh kube login --cert-files` (kubectl reads the kube certificate from files) and with the exec
 * credential plugin (`wsh kube credentials`, a cached kube certificate), which kubectl starts once
 * per command: part of what a user waits for, so it is measured. Next to each ratio it prints
 * the CPU per command / per MiB of warden, of this process (the fake API server) and of kubectl
 * with its plugin, which holds up under load better than wall time. `parts` adds the exec plugin's
 * own time (against a bare `node -e 0`, its floor) and the proxy's cost per API request without
 * kubectl (sequential GETs on one kept-alive connection, kube certificate vs direct). Every line
 * carries the load average. Asserts nothing.
 *
 *   npm run build && npm run bench:kube [-- --rounds 5 --mib 64 --only=get,stream,parts --profile=DIR]
 *
 * `--profile=DIR`: warden writes a V8 CPU profile to DIR when it stops. `--hold`: after the set-up,
 * print the pids and kubeconfigs and wait for Ctrl-C (for strace/perf by hand), then measure.
 * `--baseline=FILE`: another build's warden.js (e.g. main's, built in a copy) runs next to this
 * one, with `--cert-files`, in the same rounds: two builds compared side by side on one machine
 * state, which a loaded machine's run-to-run scatter would hide.
 */
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { Agent, request as httpsRequest } from 'node:https';
import { loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { Authenticator, runCli, signupWithTotp, startFakeKubeApiServer, startWarden } from '@warden/testkit';
import { parse as parseYaml } from 'yaml';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '5' },
    mib: { type: 'string', default: '64' },
    profile: { type: 'string' },
    only: { type: 'string', default: 'get,stream,parts' },
    hold: { type: 'boolean', default: false },
    baseline: { type: 'string' },
  },
});
const only = new Set(values.only.split(','));
const rounds = Number(values.rounds);
const mib = Number(values.mib);
const PASSWORD = 'correct horse battery staple';

function run(
  kubeconfig: string,
  args: string[],
  env: NodeJS.ProcessEnv,
): Promise<{ ms: number; bytes: number; code: number | null; cpuMs: number }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    // bash's `times` prints the CPU its children (kubectl and the exec plugin it runs) used.
    const script = 'kubectl "$@"; s=$?; times >&2; exit $s';
    const child = spawn('bash', ['-c', script, 'kubectl', ...args], {
      env: { ...process.env, ...env, KUBECONFIG: kubeconfig },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let bytes = 0;
    let err = '';
    child.stdout.on('data', (b: Buffer) => {
      bytes += b.length;
    });
    child.stderr.on('data', (b: Buffer) => {
      err += b;
    });
    child.on('error', reject);
    child.on('close', (code) => {
      const ms = performance.now() - t0;
      const times = /(\d+)m([\d.]+)s (\d+)m([\d.]+)s\s*$/.exec(err);
      const cpuMs = times
        ? (Number(times[1]) * 60 + Number(times[2]) + Number(times[3]) * 60 + Number(times[4])) * 1000
        : Number.NaN;
      if (code !== 0) reject(new Error(`kubectl ${args.join(' ')} failed: ${err}`));
      else resolve({ ms, bytes, code, cpuMs });
    });
  });
}

/** CPU milliseconds a process's threads have run so far (/proc/<pid>/task/<tid>/schedstat, in ns). */
function cpuMs(pid: number): number {
  let ns = 0;
  for (const t of readdirSync(`/proc/${pid}/task`)) {
    try {
      ns += Number(readFileSync(`/proc/${pid}/task/${t}/schedstat`, 'utf8').split(' ')[0]);
    } catch {
      // the thread ended
    }
  }
  return ns / 1e6;
}
const selfCpuMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const load = () =>
  `load average ${loadavg()
    .map((l) => l.toFixed(2))
    .join(', ')}`;

/** Wall time of a command that must succeed. */
function timeCommand(cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  return new Promise((done, reject) => {
    const t0 = performance.now();
    const c = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'inherit'] });
    c.on('error', reject);
    c.on('close', (code) => (code === 0 ? done(performance.now() - t0) : reject(new Error(`${cmd} failed`))));
  });
}

/** Median milliseconds of `n` sequential GETs of `path` on one kept-alive connection. */
async function perRequest(base: string, agent: Agent, servername: string | undefined, n: number) {
  const u = new URL(base);
  const get = () =>
    new Promise<void>((done, reject) => {
      const r = httpsRequest(
        {
          host: u.hostname,
          port: u.port,
          path: `${u.pathname.replace(/\/$/, '')}/api/v1/namespaces/default/pods?limit=500`,
          agent,
          ...(servername ? { servername } : {}),
          headers: { accept: 'application/json' },
        },
        (res) => {
          res.resume();
          res.on('end', () =>
            res.statusCode === 200 ? done() : reject(new Error(`status ${res.statusCode}`)),
          );
        },
      );
      r.on('error', reject);
      r.end();
    });
  for (let i = 0; i < 20; i++) await get();
  const ms: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await get();
    ms.push(performance.now() - t0);
  }
  return median(ms);
}

console.log(`start: ${load()}`);
const fake = await startFakeKubeApiServer({
  rules: [{ groups: ['developers'], verbs: ['*'], resources: ['*'] }],
});
fake.create('pods', { metadata: { name: 'bench' }, spec: { containers: [{ name: 'main', image: 'none' }] } });
/** A warden (this build, or `js`) serving the fake, a user logged in, its two kubeconfigs. */
async function startBenchWarden(js?: string) {
  const w = await startWarden({
    ...(values.profile && !js
      ? { nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${resolve(values.profile)}`] }
      : {}),
    ...(js ? { wardenJs: resolve(js) } : {}),
    configYaml:
      'kube_service:\n  clusters:\n' +
      `    - name: fake\n      server: ${fake.url}\n      ca_file: ${fake.ca.certFile}\n` +
      `      cert_file: ${fake.admin.certFile}\n      key_file: ${fake.admin.keyFile}\n      labels: { env: bench }\n`,
  });
  try {
    writeFileSync(
      join(w.dir, 'role.yaml'),
      'kind: role\nversion: v7\nmetadata: { name: kube-bench }\nspec:\n  allow:\n    kubernetes_labels: { "*": "*" }\n    kubernetes_groups: [developers]\n',
    );
    const wctl = (args: string[]) => runCli('wctl', args, { env: w.env });
    await wctl(['create', join(w.dir, 'role.yaml')]);
    const add = await wctl(['users', 'add', 'bench', '--roles=kube-bench', '--logins=nobody']);
    const token = /--token=(\S+)/.exec(add.stdout)![1]!;
    const env = { ...w.env, WARDEN_HOME: join(w.dir, 'home'), KUBECONFIG: join(w.dir, 'kubeconfig') };
    const s = await signupWithTotp(
      [`--proxy=${w.proxy}`, `--token=${token}`, `--ca-pin=${w.caPin}`],
      PASSWORD,
      env,
    );
    const otp = new Authenticator(s.uri!);
    otp.markUsed();
    await runCli('wsh', ['login', `--proxy=${w.proxy}`, '--user=bench'], {
      env,
      input: `${PASSWORD}\n${await otp.code()}\n`,
    });
    const login = await runCli('wsh', ['kube', 'login', 'fake'], { env });
    if (login.code !== 0) throw new Error(login.stderr);
    // The same user and cluster with `--cert-files` (no exec plugin) in a kubeconfig of its own.
    const filesEnv = { ...env, KUBECONFIG: join(w.dir, 'files.kubeconfig') };
    const loginFiles = await runCli('wsh', ['kube', 'login', 'fake', '--cert-files'], { env: filesEnv });
    if (loginFiles.code !== 0) throw new Error(loginFiles.stderr);
    return { w, env, filesEnv };
  } catch (e) {
    await w.stop();
    throw e;
  }
}

const { w, env, filesEnv } = await startBenchWarden();
const base = values.baseline
  ? await startBenchWarden(values.baseline).catch(async (e) => {
      await w.stop();
      throw e;
    })
  : undefined;
try {
  const direct = fake.writeKubeconfig(join(w.dir, 'direct.kubeconfig'));
  const paths = {
    direct: { kc: direct, env: {} },
    files: { kc: filesEnv.KUBECONFIG, env: filesEnv },
    plugin: { kc: env.KUBECONFIG, env },
    base: { kc: base?.filesEnv.KUBECONFIG ?? '', env: base?.filesEnv ?? {} },
  };
  type PathName = 'direct' | 'files' | 'plugin' | 'base';
  const names: PathName[] = ['direct', 'files', 'plugin', ...(base ? (['base'] as const) : [])];
  const get: Record<PathName, number[]> = { direct: [], files: [], plugin: [], base: [] };
  const stream: Record<PathName, number[]> = { direct: [], files: [], plugin: [], base: [] };
  // CPU per kubectl command of warden and of this process (the fake API server), summed.
  const wardenPid = w.child.pid!;
  const pidOf = (p: PathName) => (p === 'base' ? base!.w.child.pid! : wardenPid);
  type Cpu = { warden: number; fake: number; kubectl: number };
  const zero = (): Cpu => ({ warden: 0, fake: 0, kubectl: 0 });
  const cpu = {
    get: { direct: zero(), files: zero(), plugin: zero(), base: zero() },
    stream: { direct: zero(), files: zero(), plugin: zero(), base: zero() },
  };
  const measured = async <T>(into: Cpu, f: () => Promise<T>, pid = wardenPid): Promise<T> => {
    const w0 = cpuMs(pid);
    const f0 = selfCpuMs();
    const out = await f();
    into.warden += cpuMs(pid) - w0;
    into.fake += selfCpuMs() - f0;
    into.kubectl += (out as { cpuMs?: number }).cpuMs ?? 0;
    return out;
  };
  const cat = ['exec', 'bench', '--', 'head', '-c', String(mib * 1024 * 1024), '/dev/zero'];
  if (values.hold) {
    // Everything stays up for strace/perf by hand: print how to reach it, wait for Ctrl-C.
    console.log(
      `warden pid ${wardenPid}${base ? `, baseline warden pid ${base.w.child.pid}` : ''}, fake API server (this process) pid ${process.pid}`,
    );
    for (const p of names)
      console.log(
        `${p}: env KUBECONFIG=${paths[p].kc} WARDEN_HOME=${(paths[p].env as { WARDEN_HOME?: string }).WARDEN_HOME ?? ''}`,
      );
    await new Promise((done) => process.once('SIGINT', done));
  }
  const label = {
    direct: 'direct',
    files: 'Warden (--cert-files)',
    plugin: 'Warden (exec plugin)',
    base: 'Warden, baseline build (--cert-files)',
  } as const;
  const wardens = names.filter((p) => p !== 'direct');
  const per = (c: Cpu, n: number) =>
    `warden ${(c.warden / n).toFixed(2)}, fake API server (+ this bench) ${(c.fake / n).toFixed(2)}` +
    (c.kubectl
      ? `, kubectl (+ plugin) ${(c.kubectl / n).toFixed(2)}; all ${((c.warden + c.fake + c.kubectl) / n).toFixed(2)}`
      : '');
  for (const p of names) await run(paths[p].kc, ['get', 'pods'], paths[p].env); // warm-up

  if (only.has('get')) {
    for (let r = 0; r < rounds; r++) {
      for (const p of names) {
        get[p].push(
          (await measured(cpu.get[p], () => run(paths[p].kc, ['get', 'pods'], paths[p].env), pidOf(p))).ms,
        );
      }
    }
    const gd = median(get.direct);
    console.log(`kubectl get pods (median of ${rounds}): direct ${gd.toFixed(0)} ms   [${load()}]`);
    for (const p of wardens) {
      const g = median(get[p]);
      console.log(
        `  ${label[p]} ${g.toFixed(0)} ms, ratio ${(g / gd).toFixed(2)}× (goal ≤ 1.3×) ${g / gd <= 1.3 ? 'met' : 'NOT met'}`,
      );
    }
    for (const p of names)
      console.log(`  CPU ms per kubectl get pods, ${label[p]}: ${per(cpu.get[p], rounds)}`);
  }

  if (only.has('stream')) {
    for (let r = 0; r < rounds; r++) {
      for (const p of names) {
        const x = await measured(cpu.stream[p], () => run(paths[p].kc, cat, paths[p].env), pidOf(p));
        if (x.bytes !== mib * 1024 * 1024) throw new Error(`${p}: got ${x.bytes} bytes`);
        stream[p].push(x.bytes / 1024 / 1024 / (x.ms / 1000));
      }
    }
    const sd = median(stream.direct);
    console.log(
      `kubectl exec cat ${mib} MiB (median of ${rounds}): direct ${sd.toFixed(0)} MiB/s   [${load()}]`,
    );
    for (const p of wardens) {
      const x = median(stream[p]);
      console.log(
        `  ${label[p]} ${x.toFixed(0)} MiB/s, ratio ${(x / sd).toFixed(2)}× (goal ≥ 0.8×) ${x / sd >= 0.8 ? 'met' : 'NOT met'}`,
      );
    }
    for (const p of names) console.log(`  CPU ms per MiB, ${label[p]}: ${per(cpu.stream[p], rounds * mib)}`);
  }

  if (only.has('parts')) {
    // The parts: the exec plugin alone, as kubectl runs it (the kubeconfig's command and args:
    // the shell script serving the cached credential), `wsh kube credentials` itself (what the
    // script falls back to, and what the plugin was before), and node's own start as a floor.
    const wshJs = resolve(import.meta.dirname, '..', 'dist', 'wsh.js');
    const kcText = readFileSync(env.KUBECONFIG, 'utf8');
    const exec = (parseYaml(kcText) as { users: { user: { exec: { command: string; args: string[] } } }[] })
      .users[0]!.user.exec;
    const pluginArgs = [wshJs, 'kube', 'credentials', `--proxy=${w.proxy}`, '--cluster=fake'];
    const script: number[] = [];
    const plugin: number[] = [];
    const bare: number[] = [];
    for (let r = 0; r < rounds * 2; r++) {
      script.push(await timeCommand(exec.command, exec.args, env));
      plugin.push(await timeCommand(process.execPath, pluginArgs, env));
      bare.push(await timeCommand(process.execPath, ['-e', '0'], {}));
    }
    console.log(
      `the exec plugin alone (cached credential): as kubectl runs it (${exec.command} script) median ${median(script).toFixed(1)} ms; ` +
        `\`wsh kube credentials\` ${median(plugin).toFixed(0)} ms; a bare \`node -e 0\` ${median(bare).toFixed(0)} ms   [${load()}]`,
    );
    // … and the proxy per API request, without kubectl, on kept-alive connections.
    const filesKc = readFileSync(filesEnv.KUBECONFIG, 'utf8');
    const wardenAgent = new Agent({
      keepAlive: true,
      maxSockets: 1,
      ca: Buffer.from(/certificate-authority-data: (\S+)/.exec(kcText)![1]!, 'base64').toString(),
      cert: readFileSync(/client-certificate: (\S+)/.exec(filesKc)![1]!),
      key: readFileSync(/client-key: (\S+)/.exec(filesKc)![1]!),
    });
    const directAgent = new Agent({
      keepAlive: true,
      maxSockets: 1,
      ca: readFileSync(fake.ca.certFile),
      cert: readFileSync(fake.admin.certFile),
      key: readFileSync(fake.admin.keyFile),
    });
    const n = 500;
    const reqCpu = { direct: zero(), files: zero() };
    const rd = await measured(reqCpu.direct, () => perRequest(fake.url, directAgent, undefined, n));
    const rw = await measured(reqCpu.files, () =>
      perRequest(
        /server: (\S+)/.exec(kcText)![1]!,
        wardenAgent,
        /tls-server-name: (\S+)/.exec(kcText)![1]!,
        n,
      ),
    );
    wardenAgent.destroy();
    directAgent.destroy();
    console.log(
      `API request on a kept-alive connection, no kubectl (median of ${n}): direct ${rd.toFixed(2)} ms, Warden ${rw.toFixed(2)} ms, +${(rw - rd).toFixed(2)} ms per request   [${load()}]`,
    );
    // 20 warm-up requests + n measured ones each.
    console.log(`  CPU ms per request, direct: ${per(reqCpu.direct, n + 20)}`);
    console.log(`  CPU ms per request, Warden: ${per(reqCpu.files, n + 20)}`);
  }
} finally {
  await w.stop();
  await base?.w.stop();
  await fake.close();
}
