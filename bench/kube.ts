/**
 * Kubernetes benchmark (issue 13 item 7): real `kubectl` through Warden (a real `warden start`,
 * kube_service, `wsh kube login`) against real `kubectl` straight to testkit's fake API server
 * (a test double; both paths reach the same one), in the same run, printed as ratios with the
 * goals: `kubectl get pods` latency ≤ 1.3× direct, a 64 MiB `kubectl exec … cat` stream ≥ 0.8×
 * direct throughput. Rounds alternate the paths. The Warden path's `kubectl` also runs the exec
 * credential plugin (`wsh kube credentials`, a cached kube certificate) once per command: part of
 * what a user waits for, so it is measured. Asserts nothing.
 *
 *   npm run build && npm run bench:kube [-- --rounds 5 --mib 64]
 */
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Authenticator, runCli, signupWithTotp, startFakeKubeApiServer, startWarden } from '@warden/testkit';

const { values } = parseArgs({
  options: { rounds: { type: 'string', default: '5' }, mib: { type: 'string', default: '64' } },
});
const rounds = Number(values.rounds);
const mib = Number(values.mib);
const PASSWORD = 'correct horse battery staple';

function run(
  kubeconfig: string,
  args: string[],
  env: NodeJS.ProcessEnv,
): Promise<{ ms: number; bytes: number; code: number | null }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn('kubectl', args, {
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
      if (code !== 0) reject(new Error(`kubectl ${args.join(' ')} failed: ${err}`));
      else resolve({ ms: performance.now() - t0, bytes, code });
    });
  });
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const fake = await startFakeKubeApiServer({
  rules: [{ groups: ['developers'], verbs: ['*'], resources: ['*'] }],
});
fake.create('pods', { metadata: { name: 'bench' }, spec: { containers: [{ name: 'main', image: 'none' }] } });
const w = await startWarden({
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
  const direct = fake.writeKubeconfig(join(w.dir, 'direct.kubeconfig'));
  const paths = { direct: { kc: direct, env: {} }, warden: { kc: env.KUBECONFIG, env } };
  const get: Record<string, number[]> = { direct: [], warden: [] };
  const stream: Record<string, number[]> = { direct: [], warden: [] };
  const cat = ['exec', 'bench', '--', 'head', '-c', String(mib * 1024 * 1024), '/dev/zero'];
  for (const p of ['direct', 'warden'] as const) await run(paths[p].kc, ['get', 'pods'], paths[p].env); // warm-up
  for (let r = 0; r < rounds; r++) {
    for (const p of ['direct', 'warden'] as const) {
      get[p]!.push((await run(paths[p].kc, ['get', 'pods'], paths[p].env)).ms);
      const x = await run(paths[p].kc, cat, paths[p].env);
      if (x.bytes !== mib * 1024 * 1024) throw new Error(`${p}: got ${x.bytes} bytes`);
      stream[p]!.push(x.bytes / 1024 / 1024 / (x.ms / 1000));
    }
  }
  const gd = median(get.direct!);
  const gw = median(get.warden!);
  const sd = median(stream.direct!);
  const sw = median(stream.warden!);
  console.log(
    `kubectl get pods (median of ${rounds}): direct ${gd.toFixed(0)} ms, Warden ${gw.toFixed(0)} ms, ratio ${(gw / gd).toFixed(2)}× (goal ≤ 1.3×) ${gw / gd <= 1.3 ? 'met' : 'NOT met'}`,
  );
  console.log(
    `kubectl exec cat ${mib} MiB (median): direct ${sd.toFixed(0)} MiB/s, Warden ${sw.toFixed(0)} MiB/s, ratio ${(sw / sd).toFixed(2)}× (goal ≥ 0.8×) ${sw / sd >= 0.8 ? 'met' : 'NOT met'}`,
  );
} finally {
  await w.stop();
  await fake.close();
}
