/**
 * CLI start-up benchmark (issue 16 item 13): how long `wsh status` (local files only) and
 * `wctl get roles` (one API call) take against `node -e 0`, measured by hyperfine in the
 * same run and printed as ratios with the goals (≤ 1.5× and ≤ 2.5×) and a verdict each. Also
 * the ratio of CPU time (user + system), which a loaded machine distorts less than wall time,
 * and the load average before and after. Asserts nothing.
 *
 * Setup: a real `warden start` and a user who signed up (signup logs in, so `wsh status`
 * has a profile); `wctl` uses the admin identity in the data dir.
 *
 *   npm run build && npm run bench:cli        (needs hyperfine)
 *   npm run bench:cli -- --runs 50
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { requireTool, runCli, signupWithTotp, startWarden } from '@warden/testkit';

const { values: args } = parseArgs({
  options: { runs: { type: 'string', default: '30' }, warmup: { type: 'string', default: '5' } },
});
const root = resolve(import.meta.dirname, '..');

const tool = requireTool('hyperfine');
if (tool.skip) {
  console.error(`SKIP: ${tool.skip}`);
  process.exit(process.env.WARDEN_TEST_STRICT ? 1 : 0);
}

const w = await startWarden();
try {
  const home = join(w.dir, 'home');
  const add = await runCli('wctl', ['users', 'add', 'bench', '--roles=access,editor', '--logins=root'], {
    env: w.env,
  });
  const token = /--token=(\S+)/.exec(add.stdout)?.[1];
  if (!token) throw new Error(`wctl users add failed: ${add.stderr}`);
  const s = await signupWithTotp(
    [`--proxy=${w.proxy}`, `--token=${token}`, `--ca-pin=${w.caPin}`],
    'correct horse battery staple',
    { ...w.env, WARDEN_HOME: home },
  );
  if (s.code !== 0) throw new Error(`signup failed: ${s.stderr}`);

  const load = () =>
    loadavg()
      .map((l) => l.toFixed(2))
      .join(' ');
  const loadBefore = load();
  const node = process.execPath;
  const cases: [string, string, number | undefined][] = [
    ['node -e 0', `${node} -e 0`, undefined],
    ['wsh status', `${node} ${join(root, 'dist', 'wsh.js')} status`, 1.5],
    ['wsh --help', `${node} ${join(root, 'dist', 'wsh.js')} --help`, undefined],
    ['wctl get roles', `${node} ${join(root, 'dist', 'wctl.js')} get roles`, 2.5],
  ];
  const out = join(w.dir, 'hyperfine.json');
  const res = spawnSync(
    'hyperfine',
    [
      '-N',
      '--warmup',
      String(args.warmup),
      '--runs',
      String(args.runs),
      '--export-json',
      out,
      ...cases.flatMap(([name, cmd]) => ['-n', name, cmd]),
    ],
    { env: { ...process.env, ...w.env, WARDEN_HOME: home }, stdio: ['ignore', 'ignore', 'inherit'] },
  );
  if (res.status !== 0) throw new Error('hyperfine failed');
  const results = (
    JSON.parse(readFileSync(out, 'utf8')) as {
      results: { command: string; median: number; user: number; system: number }[];
    }
  ).results;
  const base = results[0]!.median;
  const baseCpu = results[0]!.user + results[0]!.system;
  console.log('\nCLI start-up (median wall time of hyperfine runs; mean CPU time; this machine, this run)');
  console.log(`load average (1, 5, 15 min): before ${loadBefore}, after ${load()}\n`);
  console.log(
    `${'command'.padEnd(16)} ${'median'.padStart(9)} ${'× node -e 0'.padStart(12)} ${'cpu'.padStart(9)} ${'cpu ×'.padStart(6)}  goal (wall)`,
  );
  for (const [i, [name, , goal]] of cases.entries()) {
    const r = results[i]!;
    const ratio = r.median / base;
    const cpu = r.user + r.system;
    const verdict = goal === undefined ? '' : `≤ ${goal}× ${ratio <= goal ? 'met' : 'NOT met'}`;
    console.log(
      `${name.padEnd(16)} ${`${(r.median * 1000).toFixed(1)} ms`.padStart(9)} ${ratio.toFixed(2).padStart(12)} ${`${(cpu * 1000).toFixed(0)} ms`.padStart(9)} ${(cpu / baseCpu).toFixed(2).padStart(6)}  ${verdict}`,
    );
  }
} finally {
  await w.stop();
  rmSync(join(root, '.tmp-bench-cli'), { recursive: true, force: true });
}
