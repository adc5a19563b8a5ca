// Runs every test file with node:test: unit tests beside their code (packages/*/src/**/*.test.ts)
// and cross-package tests under test/. Arguments filter files by substring.
//
// Each file runs in its own process (node:test's runner, two at a time) under a time limit
// (WARDEN_TEST_FILE_TIMEOUT_S, 600 s; the slowest file takes about a minute). A file that
// hangs therefore ends as a failure naming it, instead of holding the whole run until CI's own
// limit kills it without a word. While a file makes no progress for HANG_REPORT_S, the process
// tree is printed, so the output shows what hung (a test waiting on a peer, or a process that
// never started). A file that ran out of time — and only that: never a failed assertion — runs
// once more at the end, said loudly in the output; the run passes only if it then passes.
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { finished } from 'node:stream/promises';

function walk(dir, out) {
  for (const name of readdirSync(dir)) {
    if (name === 'node_modules' || name === 'dist' || name.startsWith('.')) continue;
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p, out);
    else if (name.endsWith('.test.ts')) out.push(p);
  }
  return out;
}

const RUNNER_ENV = 'WARDEN_TEST_RUNNER';

if (process.env[RUNNER_ENV] !== '1') {
  // The test files are TypeScript: node:test starts each file's process with this process's
  // flags, so the runner itself runs under tsx.
  const filters = process.argv.slice(2);
  const files = [...walk('packages', []), ...walk('test', [])]
    .filter((f) => filters.length === 0 || filters.some((x) => f.includes(x)))
    .sort();
  if (files.length === 0) {
    console.error('no test files matched');
    process.exit(1);
  }
  const res = spawnSync(process.execPath, ['--import', 'tsx', new URL(import.meta.url).pathname, ...files], {
    stdio: 'inherit',
    env: { ...process.env, NODE_NO_WARNINGS: '1', [RUNNER_ENV]: '1' },
  });
  process.exit(res.status ?? 1);
}

const { run } = await import('node:test');
const { spec } = await import('node:test/reporters');

const FILE_TIMEOUT_S = Number(process.env.WARDEN_TEST_FILE_TIMEOUT_S ?? 600);
const HANG_REPORT_S = Number(process.env.WARDEN_TEST_HANG_REPORT_S ?? Math.min(300, FILE_TIMEOUT_S / 2));

/** Processes under this one, as ps shows them: what a hung file is waiting on. */
function processTree() {
  const ps = spawnSync('ps', ['-e', '-o', 'pid=,ppid=,etimes=,stat=,wchan:24=,args='], {
    encoding: 'utf8',
  });
  if (ps.status !== 0) return '(ps failed)';
  const rows = ps.stdout
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [pid, ppid] = line.trim().split(/\s+/, 2).map(Number);
      return { pid, ppid, line: line.trim().slice(0, 240) };
    });
  const ours = new Set([process.pid]);
  for (let grew = true; grew; ) {
    grew = false;
    for (const r of rows) {
      if (!ours.has(r.pid) && ours.has(r.ppid)) {
        ours.add(r.pid);
        grew = true;
      }
    }
  }
  return rows
    .filter((r) => ours.has(r.pid) && r.pid !== process.pid && r.pid !== ps.pid)
    .map((r) => `  ${r.line}`)
    .join('\n');
}

/** One node:test run over files; resolves to the files that ran out of time and whether anything else failed. */
async function runFiles(files) {
  const timedOut = [];
  let failed = false;
  let lastEvent = Date.now();
  const stream = run({ files, concurrency: 2, timeout: FILE_TIMEOUT_S * 1000 });
  for (const event of ['test:pass', 'test:fail', 'test:start', 'test:diagnostic']) {
    stream.on(event, () => {
      lastEvent = Date.now();
    });
  }
  stream.on('test:fail', (d) => {
    const error = d.details?.error;
    if (d.nesting === 0 && resolve(d.name) === d.file && error?.failureType === 'testTimeoutFailure') {
      timedOut.push(relative(process.cwd(), d.file));
    } else {
      failed = true;
    }
  });
  const watchdog = setInterval(() => {
    const quietS = (Date.now() - lastEvent) / 1000;
    if (quietS < HANG_REPORT_S) return;
    process.stderr.write(
      `\n[test runner] no test has reported for ${Math.round(quietS)} s; processes:\n${processTree()}\n\n`,
    );
    lastEvent = Date.now();
  }, 10_000);
  const out = stream.compose(new spec());
  out.pipe(process.stdout, { end: false });
  await finished(out);
  clearInterval(watchdog);
  return { timedOut, failed };
}

const files = process.argv.slice(2);
const first = await runFiles(files);
let failed = first.failed;
if (first.timedOut.length > 0) {
  const list = first.timedOut.map((f) => `  ${f}`).join('\n');
  console.log(
    `\n[test runner] RETRY: ${first.timedOut.length} file(s) ran out of time (${FILE_TIMEOUT_S} s, a hang — no assertion failed) and run once more:\n${list}\n`,
  );
  const again = await runFiles(first.timedOut);
  if (again.failed || again.timedOut.length > 0) failed = true;
  console.log(
    `\n[test runner] ${again.failed || again.timedOut.length > 0 ? 'still failing' : 'passed on the second run; the hang is worth a look'}:\n${list}\n`,
  );
}
process.exitCode = failed ? 1 : 0;
