/**
 * Lock benchmark (issue 10 item 8): how fast a lock ends live sessions. `--sessions` (1,000)
 * live sessions through the proxy — SSH to a Warden node, SSH to an agentless OpenSSH `sshd`
 * (trusting the cluster's openssh CA; the proxy ends those sessions), PostgreSQL and MySQL
 * (MariaDB) through db_service — held by four users, then one lock per
 * target kind, one after the other, the way `wctl lock` makes it (the same API call, made
 * here in process so that no CLI start-up is timed):
 *
 *   user    --user=locked-user    ends that user's sessions (all four protocols)
 *   role    --role=bench-locked   ends the sessions of role-user, who holds that role
 *   device  --device=<id>         ends device-user's sessions: certificates from a `wsh login`
 *                                 on a machine with an enrolled swtpm (device extensions)
 *   node    --node=node-1         ends node-user's SSH sessions on the Warden node
 *
 * Each session's latency runs from the lock's write (its `created_at`, stamped by the auth
 * service just before it stores the lock) to the moment the client sees the session end:
 * the SSH channel or connection closing, the PostgreSQL or MySQL driver's error or end.
 * The sessions are spread over `--clients` client processes (default 4; bench/locks-client.ts,
 * forked), each recording its sessions' ends on the wall clock (`Date.now()`, the clock of
 * `created_at`): one process would queue every session's end behind the client-side work of
 * the other ~250 that a lock ends (ssh2 closes, driver errors, TLS teardown), which no real
 * deployment does. `--clients=1` holds them all in the bench's own process.
 * Every session must end, and only by its own lock (one that ends before its lock counts as a
 * failure). Before each lock the bench waits until the warden processes, the clients and the
 * whole machine are quiet, so that one lock is not timed while the previous one's sessions are
 * still being torn down. Beside what the clients saw it prints warden's side (the lock's age when
 * the session monitor's pass had ended half, 99 % and all of its sessions).
 *
 * Two backends, each a fresh cluster: SQLite (one `warden start`), and PostgreSQL with two
 * replicas, the lock written through replica A while every session runs through replica B
 * (its proxy, its SSH node, its db_service). Goals (issue 10): p99 ≤ 250 ms and p50 ≤ 50 ms
 * for every target kind on each backend. The figures are absolute (a latency has no same-run
 * baseline); next to them the load average and the round trip of the lock's API call itself.
 * Exits 1 when a session did not end or ended early. Smoke-tested by
 * test/bench/locks.e2e.test.ts (8 sessions, 2 client processes).
 *
 *   npm run build && npm run bench:locks
 *   npm run bench:locks -- --sessions=200 --backend=postgres --json=/tmp/locks.json
 *
 * Needs OpenSSH's sshd, swtpm + swtpm_setup, PostgreSQL's server binaries, MariaDB.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { parseSshCertificate } from '@warden/api';
import { ApiClient, type LoadedProfile, ProfileStore } from '@warden/client';
import {
  type AgentlessSshd,
  freePort,
  type MariaDbServer,
  type PostgresServer,
  registerAgentlessNode,
  requireMariaDb,
  requirePostgres,
  requireTool,
  runCli,
  signupWithTotp,
  startMariaDb,
  startPostgres,
  startSwtpm,
  startWarden,
  type WardenProcess,
  wardenStorage,
} from '@warden/testkit';
import { cpuMs, type Goal, goal, verdict } from './goals';
import {
  AGENTLESS,
  CLIENT_ENV,
  DB,
  DB_NAME,
  DB_USER,
  type Ended,
  type FromClient,
  fullGc,
  type Item,
  KINDS,
  type Kind,
  NODE,
  ownCpuMs,
  PROTOCOLS,
  type Protocol,
  SessionHolder,
  type ToClient,
} from './locks-client';

const HELP = `Usage: npm run bench:locks -- [--sessions=N] [--backend=sqlite,postgres] [--clients=N]
                                [--concurrency=N] [--kinds=LIST] [--timeout-s=S] [--json=FILE]

  --sessions=N      live sessions per backend (default 1000; 16 covers every kind × protocol)
  --backend=LIST    sqlite, postgres (two replicas), or both (default sqlite,postgres)
  --clients=N       client processes holding the sessions, each the same mix of kinds and
                    protocols (default 4; 1: all in the bench's own process, as before)
  --concurrency=N   sessions opened at once, over all clients (default 8; sshd's MaxStartups
                    starts dropping at 10)
  --kinds=LIST      the order of the locks, a permutation of user,role,device,node (default
                    that order): the first lock of a run meets every path cold
  --warm-up=N       before the locks, N sessions per protocol in each client process are ended
                    by the server without a lock (the command exits, the database closes the
                    connection), and N locks on a user with no sessions are made and removed,
                    so that the first lock does not also time the clients' first, unoptimized
                    runs of their own end paths, nor the bench's (wctl's) and the auth API's
                    first lock request; warden's session-ending path stays cold (default 10;
                    0: none)
  --timeout-s=S     how long a lock may take to end its sessions before they count as not ended (default 30)
  --json=FILE       also write every session's result to FILE
  --profile=DIR     the warden processes write V8 CPU profiles to DIR (node --cpu-prof); the
                    JSON output has each lock's created_at to find the window in them
`;

const { values: args } = parseArgs({
  options: {
    sessions: { type: 'string', default: '1000' },
    backend: { type: 'string', default: 'sqlite,postgres' },
    clients: { type: 'string', default: '4' },
    concurrency: { type: 'string', default: '8' },
    kinds: { type: 'string', default: KINDS.join(',') },
    'warm-up': { type: 'string', default: '10' },
    'timeout-s': { type: 'string', default: '30' },
    json: { type: 'string' },
    profile: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  },
});
if (args.help) {
  process.stdout.write(HELP);
  process.exit(0);
}
const SESSIONS = Number(args.sessions);
const CONCURRENCY = Number(args.concurrency);
/** Client processes holding the sessions (no more than there are sessions). */
const CLIENTS = Math.min(Number(args.clients), SESSIONS);
const TIMEOUT_MS = Number(args['timeout-s']) * 1000;
/** `--warm-up`: sessions per protocol and client process ended by the server before the locks. */
const WARM_UP = Number(args['warm-up']);
/** `--profile=DIR`: every warden process writes a V8 CPU profile there (`node --cpu-prof`). */
/** Sampling interval of `--profile` (µs): V8's default 1 ms is coarse against a 50 ms goal. */
const PROFILE_INTERVAL_US = 200;
const nodeArgs = args.profile
  ? ['--cpu-prof', `--cpu-prof-dir=${resolve(args.profile)}`, `--cpu-prof-interval=${PROFILE_INTERVAL_US}`]
  : [];
const BACKENDS = args.backend.split(',').map((b) => b.trim());
/** `--kinds`: the order the locks are written in (every kind once). */
const LOCK_ORDER = args.kinds.split(',').map((k) => k.trim()) as Kind[];
if (LOCK_ORDER.length !== KINDS.length || KINDS.some((k) => !LOCK_ORDER.includes(k)))
  throw new Error(`--kinds must name each of ${KINDS.join(', ')} once (got "${args.kinds}")`);
for (const [name, n] of [
  ['--sessions', SESSIONS],
  ['--clients', Number(args.clients)],
  ['--concurrency', CONCURRENCY],
  ['--timeout-s', TIMEOUT_MS],
] as const) {
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a positive integer`);
}
if (!Number.isInteger(WARM_UP) || WARM_UP < 0) throw new Error('--warm-up must be a whole number (0: none)');
for (const b of BACKENDS) {
  if (b !== 'sqlite' && b !== 'postgres')
    throw new Error(`--backend: unknown backend "${b}" (sqlite, postgres)`);
}

const PASSWORD = 'correct horse battery staple';
const DB_PASSWORD = 'bench-locks-backend-pw';
const CLUSTER = 'bench';
const AGENTLESS_ID = '0b7e5a52-3c1f-4d2e-8a9b-6c5d4e3f2a10';
/** Who holds each kind's sessions. */
const USERS: Record<Kind, string> = {
  user: 'locked-user',
  role: 'role-user',
  device: 'device-user',
  node: 'node-user',
};
const LOCKED_ROLE = 'bench-locked';
const PROTOCOL_LABELS: Record<Protocol, string> = {
  ssh: 'SSH → Warden node',
  openssh: 'SSH → OpenSSH (agentless)',
  postgres: 'PostgreSQL',
  mysql: 'MySQL (MariaDB)',
};

/**
 * Which session is of which kind and protocol: a quarter per kind; the node kind is SSH to
 * the Warden node only (a node lock names a node), the others cycle through the four
 * protocols (one counter across kinds, so a small run still covers every protocol).
 */
function plan(n: number): Item[] {
  const out: Item[] = [];
  let j = 0;
  KINDS.forEach((kind, k) => {
    const count = Math.floor(n / 4) + (k < n % 4 ? 1 : 0);
    for (let i = 0; i < count; i++) {
      out.push({
        index: out.length,
        kind,
        protocol: kind === 'node' ? 'ssh' : PROTOCOLS[j++ % PROTOCOLS.length]!,
      });
    }
  });
  return out;
}

/**
 * The layout dealt to `n` clients so that each holds the same mix: every (kind, protocol)
 * group dealt round robin, the deal going on from one group to the next (so the shares differ
 * by one session at most). A plain `index % n` would give one client all of a protocol when
 * `n` divides the protocols' cycle.
 */
function deal(layout: Item[], n: number): Item[][] {
  const out = Array.from({ length: n }, () => [] as Item[]);
  const rank = (i: Item) => KINDS.indexOf(i.kind) * PROTOCOLS.length + PROTOCOLS.indexOf(i.protocol);
  const sorted = [...layout].sort((a, b) => rank(a) - rank(b));
  for (const [i, item] of sorted.entries()) out[i % n]!.push(item);
  for (const share of out) share.sort((a, b) => a.index - b.index);
  return out;
}

/** What the JSON output and the report hold per session. */
interface SessionResult {
  backend: string;
  kind: Kind;
  protocol: Protocol;
  /** Which client process held it (0 … --clients − 1). */
  client: number;
  ended: boolean;
  /** From the lock's created_at to the end the client saw (ms); undefined if it did not end. */
  ms?: number;
  /** Ended before its own lock was requested (another lock, or something else, ended it). */
  early: boolean;
  message?: string;
}

interface LockResult {
  backend: string;
  kind: Kind;
  target: Record<string, string>;
  /** Round trip of the API call that wrote the lock (what `wctl lock` waits for). */
  apiMs: number;
  /** The lock's created_at (ms since the epoch): where its window starts in a CPU profile. */
  createdAt: number;
  /** Date.now() when the lock was requested (taken with `monotonicUs`: maps epoch to profile time). */
  requestedAt: number;
  /** How long the warden processes took to go quiet before the lock (see `settle`). */
  settleMs: number;
  /** The whole machine's CPU use, % of one core, in the quarter second before the lock. */
  machineBusyPct?: number;
  /**
   * CLOCK_MONOTONIC (µs) when the lock was requested: the clock of V8's CPU profiles, to cut
   * the lock's window out of a `--profile` run.
   */
  monotonicUs: number;
  /** CPU the warden processes used from the request to the last session's end (ms). */
  serverCpuMs: number;
  /** … and on until they were quiet again (teardown, audit). */
  serverCpuQuietMs: number;
  /**
   * With two replicas, from the request to the last end: each one's CPU (all threads) and its
   * main thread's wait for a core (runnable, not running), from schedstat: A writes the lock,
   * B ends the sessions.
   */
  replicas?: { a: Sched; b: Sched };
  /**
   * CPU the client processes used from the request to the last session's end (ms): the sum
   * over the `--clients` processes holding sessions (with `--clients=1`, the bench's own, which
   * also writes the lock).
   */
  clientCpuMs: number;
  /**
   * The rest of the machine's CPU from the request to the last end (ms): sshd, PostgreSQL,
   * MariaDB, the sessions' processes, the kernel's own work — the whole machine's busy time
   * (/proc/stat, 10 ms ticks) less the warden processes, the clients and the bench.
   */
  otherCpuMs?: number;
  /**
   * The session monitor's pass in the process holding the sessions, from its log line: the
   * lock's age when the pass began (its created_at against that process's clock), the pass's
   * wall time and CPU. Undefined when no line was found.
   */
  pass?: {
    lockAgeMs?: number;
    ms: number;
    cpuMs: number;
    waitMs?: number;
    /** The lock's age when the pass had ended half, 99 % and all of its sessions (ms). */
    endAge?: { p50: number; p99: number; max: number };
  };
}

// ---- small helpers ---------------------------------------------------------------------------

function percentile(sorted: number[], p: number): number {
  return sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)] ?? Number.NaN;
}

function must<T extends { code: number; stderr: string }>(what: string, r: T): T {
  if (r.code !== 0) throw new Error(`${what} exited with ${r.code}:\n${r.stderr}`);
  return r;
}

/**
 * The whole machine's busy CPU so far (ms, every core; /proc/stat's ticks of 10 ms, idle and
 * iowait left out). Undefined off Linux.
 */
function machineBusyMs(): number | undefined {
  try {
    const cpu = readFileSync('/proc/stat', 'latin1')
      .split('\n', 1)[0]!
      .trim()
      .split(/\s+/)
      .slice(1)
      .map(Number);
    const idle = (cpu[3] ?? 0) + (cpu[4] ?? 0);
    return (cpu.slice(0, 8).reduce((sum, t) => sum + t, 0) - idle) * 10;
  } catch {
    return undefined;
  }
}

/** What `settle` waited for, and the machine's busy share of one core over its last quarter second. */
interface Settled {
  ms: number;
  machineBusyPct?: number;
}

/**
 * Waits until the given processes are quiet — under 5 % of a core over a quarter second — and,
 * with `machine`, every process on the machine too (under 25 % of one core: the previous lock's
 * sshd, PostgreSQL and MariaDB teardown, the session processes' exits, the clients' GC), at most
 * `limitMs`, so that a lock is not measured while the previous one's sessions (or the opening of
 * all of them) are still being torn down or audited. Returns the time waited.
 */
async function settle(pids: number[], o: { machine?: boolean; limitMs?: number } = {}): Promise<Settled> {
  const start = performance.now();
  const limitMs = o.limitMs ?? 20_000;
  const used = () => serverCpu(pids);
  let last = used();
  let lastMachine = machineBusyMs();
  let machineBusyPct: number | undefined;
  while (performance.now() - start < limitMs) {
    const t = performance.now();
    await new Promise((r) => setTimeout(r, 250));
    const now = used();
    const machine = machineBusyMs();
    const elapsed = performance.now() - t;
    machineBusyPct =
      machine !== undefined && lastMachine !== undefined
        ? ((machine - lastMachine) / elapsed) * 100
        : undefined;
    const quiet = now - last <= 12.5 && (!o.machine || machineBusyPct === undefined || machineBusyPct <= 25);
    last = now;
    lastMachine = machine;
    if (quiet) break;
  }
  return { ms: performance.now() - start, ...(machineBusyPct !== undefined ? { machineBusyPct } : {}) };
}

/** A process's CPU so far (all threads) and its main thread's time runnable but not running (ms). */
interface Sched {
  cpuMs: number;
  waitMs: number;
}

/** `Sched` from /proc/<pid>/task/<tid>/schedstat (ns; finer than /proc/<pid>/stat's 10 ms ticks). */
function sched(pid: number): Sched {
  const read = (tid: string) => {
    try {
      return readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ').map(Number);
    } catch {
      return [0, 0]; // the thread ended
    }
  };
  let ns = 0;
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) ns += read(tid)[0] ?? 0;
  } catch {
    // the process ended
  }
  return { cpuMs: ns / 1e6, waitMs: (read(String(pid))[1] ?? 0) / 1e6 };
}

const schedDiff = (a: Sched, b: Sched): Sched => ({ cpuMs: b.cpuMs - a.cpuMs, waitMs: b.waitMs - a.waitMs });

/** CPU time (ms) the processes used so far. */
const serverCpu = (pids: number[]) => pids.reduce((sum, pid) => sum + (cpuMs(pid) ?? 0), 0);

const load = () =>
  loadavg()
    .map((l) => l.toFixed(2))
    .join(', ');

/**
 * The session monitor's "ended live sessions" line(s) in a warden's log (text or JSON): the
 * lock's age when the pass began, and the pass's wall time and CPU (summed over lines).
 */
function monitorPass(log: string): { pass?: LockResult['pass'] } {
  const lines = log.split('\n').filter((l) => l.includes('ended live sessions'));
  if (lines.length === 0) return {};
  const field = (line: string, name: string) => {
    const m = new RegExp(`"?${name}"?[=:]\\s*(-?[0-9.]+)`).exec(line);
    return m ? Number(m[1]) : undefined;
  };
  /** A field's values over the lines that have it. */
  const values = (name: string) =>
    lines.map((l) => field(l, name)).filter((v): v is number => v !== undefined);
  const total = (vs: number[]) => vs.reduce((sum, v) => sum + v, 0);
  const ages = values('lock_age_ms');
  const waits = values('sweep_wait_ms');
  // One pass a lock; should there be more, the latest figures of each.
  const latest = (name: string) => {
    const vs = values(name);
    return vs.length ? Math.max(...vs) : undefined;
  };
  const [p50, p99, max] = ['end_age_p50_ms', 'end_age_p99_ms', 'end_age_max_ms'].map(latest);
  return {
    pass: {
      ...(ages.length ? { lockAgeMs: Math.min(...ages) } : {}),
      ms: total(values('sweep_ms')),
      cpuMs: total(values('sweep_cpu_ms')),
      ...(waits.length ? { waitMs: total(waits) } : {}),
      ...(p50 !== undefined && p99 !== undefined && max !== undefined ? { endAge: { p50, p99, max } } : {}),
    },
  };
}

// ---- one cluster -----------------------------------------------------------------------------

interface Cluster {
  backend: string;
  label: string;
  /** wctl's API with the admin identity of the replica that writes locks. */
  lockApi: ApiClient;
  /** The logged-in profile of each kind's user (through the replica that serves sessions). */
  profiles: Record<Kind, LoadedProfile>;
  /** Each kind's user's WARDEN_HOME (where a forked client loads the profile). */
  homes: Record<Kind, string>;
  deviceId: string;
  /** The warden processes (for `settle`). */
  pids: number[];
  /** With two replicas: A's pid (writes the locks) and B's (holds the sessions). */
  replicas?: { writer: number; server: number };
  /** What the process holding the sessions logged so far. */
  serverOutput(): string;
  stop(): Promise<void>;
}

function adminApi(w: WardenProcess): ApiClient {
  const id = JSON.parse(readFileSync(join(w.dataDir, 'admin-identity.json'), 'utf8')) as {
    proxy: string;
    cert_pem: string;
    key_pem: string;
    host_ca_pems: string[];
  };
  return new ApiClient({
    proxy: id.proxy,
    caPems: id.host_ca_pems,
    identity: { certPem: id.cert_pem, keyPem: id.key_pem },
  });
}

/**
 * A cluster with everything the sessions need: on `sqlite` one `warden start` (writer and
 * server alike); on `postgres` replica A (no SSH node; locks are written through it) and
 * replica B (SSH node, db_service, every session), sharing one PostgreSQL backend.
 */
async function startCluster(backend: string, sessions: number): Promise<Cluster> {
  const dir = await mkdtemp(join(tmpdir(), 'warden-bench-locks-'));
  const stops: (() => Promise<unknown>)[] = [];
  const stop = async () => {
    for (const s of stops.reverse()) await s().catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  };
  try {
    const [pgPort, mariaPort] = await Promise.all([freePort(), freePort()]);
    const auth = [
      'auth_service:',
      `  cluster_name: ${CLUSTER}`,
      '  authentication:',
      '    second_factor: "off"',
      '    device_trust: { mode: optional }',
      '',
    ].join('\n');
    const dbService = [
      'db_service:',
      '  enabled: true',
      '  databases:',
      `    - { name: ${DB.postgres}, protocol: postgres, uri: "127.0.0.1:${pgPort}", static_labels: { env: bench } }`,
      `    - { name: ${DB.mysql}, protocol: mysql, uri: "127.0.0.1:${mariaPort}", static_labels: { env: bench } }`,
      '',
    ].join('\n');
    let writer: WardenProcess;
    let server: WardenProcess;
    let label: string;
    if (backend === 'sqlite') {
      server = await startWarden({ nodeName: NODE, configYaml: auth + dbService, nodeArgs });
      stops.push(() => server.stop());
      writer = server;
      label = 'SQLite, one warden process';
    } else {
      const store: PostgresServer = await startPostgres({ password: DB_PASSWORD });
      stops.push(() => store.stop());
      const { yaml: storage, env } = wardenStorage(store, DB_PASSWORD, 'bench_locks');
      const a = startWarden({
        configYaml: `${auth}${storage}ssh_service:\n  enabled: false\n`,
        env,
        nodeArgs,
      });
      const b = startWarden({ nodeName: NODE, configYaml: auth + storage + dbService, env, nodeArgs });
      const started = await Promise.allSettled([a, b]);
      for (const s of started) if (s.status === 'fulfilled') stops.push(() => s.value.stop());
      for (const s of started) if (s.status === 'rejected') throw s.reason;
      [writer, server] = started.map((s) => (s as PromiseFulfilledResult<WardenProcess>).value) as [
        WardenProcess,
        WardenProcess,
      ];
      label = 'PostgreSQL, 2 replicas (lock written through A, sessions on B)';
    }
    const adminEnv = { WARDEN_DATA_DIR: writer.dataDir, WARDEN_HOME: join(dir, 'home-admin') };
    const wctl = (argv: string[], input?: string) => runCli('wctl', argv, { env: adminEnv, input });
    const home = (kind: Kind) => join(dir, `home-${kind}`);

    // Certificates for the databases, roles, a TPM (the agentless node: registerAgentlessNode below).
    const role = (name: string) =>
      [
        'kind: role',
        'version: v7',
        `metadata: { name: ${name} }`,
        'spec:',
        '  allow:',
        '    logins: [root]',
        '    node_labels: { "*": "*" }',
        '    db_labels: { "*": "*" }',
        `    db_users: [${DB_USER}]`,
        `    db_names: [${DB_NAME}]`,
        '',
      ].join('\n');
    const [, tpm] = await Promise.all([
      wctl(['auth', 'sign', '--format=db', '--host=localhost,127.0.0.1', `--out=${join(dir, 'db')}`]).then(
        (r) => must('wctl auth sign --format=db', r),
      ),
      startSwtpm({ ekCert: true }),
      wctl(['create', '-'], role('bench-sessions')).then((r) => must('wctl create role', r)),
      wctl(['create', '-'], role(LOCKED_ROLE)).then((r) => must('wctl create role', r)),
    ]);
    stops.push(() => tpm.stop());
    const tls = {
      cert: readFileSync(join(dir, 'db.crt'), 'utf8'),
      key: readFileSync(join(dir, 'db.key'), 'utf8'),
      ca: readFileSync(join(dir, 'db.cas'), 'utf8'),
    };
    const maxConnections = String(Math.max(300, sessions + 50));
    const machine = join(dir, 'machine');
    await mkdir(join(machine, 'dmi'), { recursive: true });
    const machineEnv = {
      WARDEN_TPM: tpm.address,
      WARDEN_DEVICE_CACHE: join(machine, 'device-cache'),
      WARDEN_DEVICE_DMI_DIR: join(machine, 'dmi'),
    };
    const wsh = (kind: Kind, argv: string[], input?: string) =>
      runCli('wsh', argv, {
        env: { ...(kind === 'device' ? machineEnv : {}), WARDEN_HOME: home(kind) },
        input,
      });
    const login = (kind: Kind) =>
      wsh(
        kind,
        ['login', `--proxy=${server.proxy}`, `--user=${USERS[kind]}`, `--ca-pin=${server.caPin}`],
        `${PASSWORD}\n`,
      ).then((r) => must(`wsh login ${USERS[kind]}`, r));

    /** device-user's machine: its TPM registered and enrolled, then a login with the device. */
    const assetTag = wsh('device', ['device', 'asset-tag']);
    const enrollDevice = async (): Promise<string> => {
      const tag = must('wsh device asset-tag', await assetTag).stdout.trim();
      const add = must(
        'wctl devices add',
        await wctl(['devices', 'add', '--os=linux', `--asset-tag=${tag}`, '--enroll']),
      );
      const enrollToken = /wsh device enroll --token=(\S+)/.exec(add.stdout)?.[1];
      if (!enrollToken) throw new Error(`wctl devices add printed no enroll token:\n${add.stdout}`);
      must(
        'wsh device enroll',
        await wsh('device', ['device', 'enroll', `--token=${enrollToken}`, `--proxy=${server.proxy}`]),
      );
      await login('device');
      const devices = (await adminApi(writer).listResources('device')).items as {
        metadata: { name: string };
        spec: { asset_tag: string };
      }[];
      const id = devices.find((d) => d.spec.asset_tag === tag)?.metadata.name;
      if (!id) throw new Error(`device ${tag} is not in the inventory`);
      return id;
    };
    let deviceId: string | undefined;

    await Promise.all([
      (async (): Promise<PostgresServer> => {
        const s = await startPostgres({
          tls,
          hba: ['hostssl all all 127.0.0.1/32 cert'],
          port: pgPort,
          settings: { max_connections: maxConnections },
        });
        stops.push(() => s.stop());
        s.psql(`CREATE ROLE ${DB_USER} LOGIN`);
        s.psql(`CREATE DATABASE ${DB_NAME} OWNER ${DB_USER}`);
        return s;
      })(),
      (async (): Promise<MariaDbServer> => {
        const s = await startMariaDb({
          tls,
          port: mariaPort,
          settings: { 'max-connections': maxConnections },
        });
        stops.push(() => s.stop());
        s.sql(
          [
            `CREATE USER '${DB_USER}'@'%' REQUIRE SUBJECT '/CN=${DB_USER}/O=${CLUSTER}'`,
            `CREATE DATABASE ${DB_NAME}`,
            `GRANT ALL ON ${DB_NAME}.* TO '${DB_USER}'@'%'`,
          ].join(';'),
        );
        return s;
      })(),
      (async (): Promise<AgentlessSshd> => {
        const sshdDir = join(dir, 'sshd');
        await mkdir(sshdDir);
        const s = await registerAgentlessNode(
          { dir: sshdDir, env: adminEnv },
          { hostname: AGENTLESS, id: AGENTLESS_ID, labels: 'env: bench' },
        );
        stops.push(() => s.stop());
        return s;
      })(),
      // Users: added through the writer, signed up and logged in through the serving replica.
      ...KINDS.map(async (kind) => {
        const roles = kind === 'role' ? LOCKED_ROLE : 'bench-sessions';
        const add = must(
          `wctl users add ${USERS[kind]}`,
          await wctl(['users', 'add', USERS[kind], `--roles=${roles}`]),
        );
        const token = /--token=(\S+)/.exec(add.stdout)?.[1];
        if (!token) throw new Error(`wctl users add printed no token:\n${add.stdout}`);
        const signup = await signupWithTotp(
          [`--proxy=${server.proxy}`, `--token=${token}`, `--ca-pin=${server.caPin}`],
          PASSWORD,
          { ...(kind === 'device' ? machineEnv : {}), WARDEN_HOME: home(kind) },
        );
        must(`wsh signup ${USERS[kind]}`, signup);
        if (!/and logged in/.test(signup.stdout)) await login(kind);
        if (kind === 'device') deviceId = await enrollDevice();
      }),
    ]);

    if (!deviceId) throw new Error('the device was not enrolled');

    const profiles = Object.fromEntries(
      KINDS.map((kind) => {
        const p = new ProfileStore(home(kind)).load();
        if (!p) throw new Error(`no profile for ${USERS[kind]}`);
        return [kind, p];
      }),
    ) as Record<Kind, LoadedProfile>;
    // The device's sessions must carry it: their certificates have the device extensions.
    const extensions = parseSshCertificate(profiles.device.sshCert).extensions;
    if (extensions['warden-device-id'] !== deviceId)
      throw new Error(
        `device-user's certificate does not carry device ${deviceId}: ${Object.keys(extensions)}`,
      );
    const pids = [...new Set([writer.child.pid, server.child.pid])].filter(
      (p): p is number => p !== undefined,
    );
    return {
      backend,
      label,
      lockApi: adminApi(writer),
      profiles,
      homes: Object.fromEntries(KINDS.map((kind) => [kind, home(kind)])) as Record<Kind, string>,
      deviceId,
      pids,
      ...(pids.length === 2 ? { replicas: { writer: pids[0]!, server: pids[1]! } } : {}),
      serverOutput: () => server.output(),
      stop,
    };
  } catch (e) {
    await stop();
    throw e;
  }
}

// ---- the client processes --------------------------------------------------------------------

/** The processes holding the sessions: the bench's own (`--clients=1`) or forked ones. */
interface Clients {
  /** Their pids, watched by `settle` (none when the bench holds the sessions itself). */
  pids: number[];
  /** Opens the layout (`concurrency` at a time over all clients); `onOpened` per session. */
  open(layout: Item[], concurrency: number, onOpened: () => void): Promise<void>;
  /** CPU (ms) used so far by the processes holding sessions, summed. */
  cpu(): Promise<number>;
  /** A full garbage collection in each of them (`fullGc`), before a lock. */
  gc(): Promise<void>;
  /** `perProtocol` sessions per protocol in each of them, ended by the server (`warmUp`); how many. */
  warmUp(perProtocol: number): Promise<number>;
  /**
   * Each session of `kind` (with the client that holds it) once all of them ended or
   * `timeoutMs` passed, and `cpu()` at that moment.
   */
  wait(kind: Kind, timeoutMs: number): Promise<{ ends: (Ended & { client: number })[]; cpuMs: number }>;
  close(): Promise<void>;
}

/** `--clients=1`: every session in the bench's own process (the bench before `--clients`). */
function inProcess(c: Cluster): Clients {
  const holder = new SessionHolder(c.profiles);
  return {
    pids: [],
    open: (layout, concurrency, onOpened) => holder.open(layout, concurrency, onOpened),
    cpu: async () => ownCpuMs(),
    gc: async () => fullGc(),
    warmUp: (perProtocol) => holder.warmUp(perProtocol),
    wait: async (kind, timeoutMs) => {
      const ends = await holder.wait(kind, timeoutMs);
      return { ends: ends.map((e) => ({ ...e, client: 0 })), cpuMs: ownCpuMs() };
    },
    close: () => holder.close(),
  };
}

/** One forked client (bench/locks-client.ts) and its IPC: one pending answer per type. */
class ForkedClient {
  readonly child: ChildProcess;
  readonly #waiters = new Map<FromClient['type'], { resolve(m: FromClient): void; reject(e: Error): void }>();
  #failure: Error | undefined;
  onOpened: () => void = () => undefined;

  constructor(readonly n: number) {
    this.child = fork(resolve(import.meta.dirname, 'locks-client.ts'), [], {
      env: { ...process.env, [CLIENT_ENV]: '1' },
      // `--profile`: the clients write their profiles next to the wardens' (client pids in the JSON).
      execArgv: [...process.execArgv, ...nodeArgs],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    this.child.on('message', (m: FromClient) => {
      if (m.type === 'opened') return this.onOpened();
      if (m.type === 'error') return this.#fail(new Error(`client ${n}: ${m.message}`));
      const w = this.#waiters.get(m.type);
      this.#waiters.delete(m.type);
      w?.resolve(m);
    });
    this.child.on('error', (e) => this.#fail(e));
    this.child.on('exit', (code, signal) => this.#fail(new Error(`client ${n} exited (${code ?? signal})`)));
  }

  /** Sends `message` (unless `undefined`: just waits) and resolves with the next `answer`. */
  request<T extends FromClient['type']>(
    message: ToClient | undefined,
    answer: T,
  ): Promise<Extract<FromClient, { type: T }>> {
    if (this.#failure) return Promise.reject(this.#failure);
    return new Promise((resolve, reject) => {
      this.#waiters.set(answer, { resolve: resolve as (m: FromClient) => void, reject });
      if (message) this.child.send(message);
    });
  }

  #fail(e: Error): void {
    this.#failure ??= e;
    for (const w of this.#waiters.values()) w.reject(this.#failure);
    this.#waiters.clear();
  }
}

/** `--clients=N`, N > 1: N forked processes, each holding its `deal`t share. */
async function forked(c: Cluster, n: number): Promise<Clients> {
  const clients = Array.from({ length: n }, (_, k) => new ForkedClient(k));
  const kill = () => {
    for (const f of clients) if (f.child.exitCode === null) f.child.kill();
  };
  try {
    await Promise.all(clients.map((f) => f.request(undefined, 'ready')));
  } catch (e) {
    kill();
    throw e;
  }
  const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
  return {
    pids: clients.map((f) => f.child.pid).filter((p): p is number => p !== undefined),
    open: async (layout, concurrency, onOpened) => {
      const shares = deal(layout, n);
      await Promise.all(
        clients.map((f, k) => {
          f.onOpened = onOpened;
          // sshd's MaxStartups bounds the openings in flight over all clients together.
          const own = Math.max(1, Math.floor(concurrency / n) + (k < concurrency % n ? 1 : 0));
          return f.request(
            { type: 'open', homes: c.homes, items: shares[k]!, concurrency: own },
            'open-done',
          );
        }),
      );
    },
    cpu: async () => {
      const answers = await Promise.all(clients.map((f) => f.request({ type: 'cpu' }, 'cpu')));
      return sum(answers.map((a) => a.cpuMs));
    },
    gc: async () => {
      await Promise.all(clients.map((f) => f.request({ type: 'gc' }, 'gc-done')));
    },
    warmUp: async (perProtocol) => {
      const answers = await Promise.all(
        clients.map((f) => f.request({ type: 'warm-up', perProtocol }, 'warm-up-done')),
      );
      return sum(answers.map((a) => a.ended));
    },
    wait: async (kind, timeoutMs) => {
      const answers = await Promise.all(
        clients.map((f) => f.request({ type: 'wait', kind, timeoutMs }, 'ended')),
      );
      return {
        ends: answers.flatMap((a, k) => a.ends.map((e) => ({ ...e, client: k }))),
        cpuMs: sum(answers.map((a) => a.cpuMs)),
      };
    },
    close: async () => {
      await Promise.all(
        clients.map(async (f) => {
          const timer = setTimeout(() => f.child.exitCode === null && f.child.kill(), 10_000);
          try {
            if (f.child.exitCode === null && f.child.connected)
              await f.request({ type: 'close' }, 'closed').catch(() => undefined);
            if (f.child.exitCode === null) await new Promise((r) => f.child.once('exit', r));
          } finally {
            clearTimeout(timer);
          }
        }),
      );
    },
  };
}

// ---- one backend -----------------------------------------------------------------------------

/** The user the warm-up locks target: no session belongs to it (no such user). */
const WARM_UP_USER = 'bench-warm-up-nobody';

/**
 * Before the timed locks: `n` locks on a user no session belongs to, each removed again, made
 * the way the timed ones are. The lock request's path then runs warm at the first timed lock
 * as at the later ones: the bench's own API client (it stands in for `wctl`, which runs on an
 * admin's machine, not on the cores warden shares here), the auth API's lock handler, the
 * backend write, and on PostgreSQL the notification to replica B. At the first lock, `perf`
 * showed the bench process and replica A using ~31 ms of CPU on the two shared cores in the
 * lock's first 100 ms, against 10–15 ms at the later locks (bench/README, twelfth session).
 * No session ends: the session monitor finds none targeted, so warden's session-ending path
 * (the monitor's pass, each protocol's `end`) still runs for the first time at the first lock.
 */
async function warmLockRequests(c: Cluster, n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    const res = await c.lockApi.createLock({
      target: { user: WARM_UP_USER },
      message: 'bench:locks warm-up',
      ttl_ms: 60_000,
    });
    await c.lockApi.deleteResource('lock', res.name);
  }
}

interface BackendRun {
  backend: string;
  label: string;
  /** The processes, for lining a system-wide profile (`perf record -a`) up with the locks. */
  pids: { warden: number[]; clients: number[] };
  sessions: SessionResult[];
  locks: LockResult[];
  openSeconds: number;
  /** Sessions the clients had the server end before the locks (`--warm-up`). */
  warmedUp: number;
  loadBefore: string;
  loadAfter: string;
}

async function runBackend(backend: string): Promise<BackendRun> {
  const setupStart = performance.now();
  const c = await startCluster(backend, SESSIONS);
  let clients: Clients | undefined;
  try {
    process.stderr.write(
      `[${backend}] cluster up in ${((performance.now() - setupStart) / 1000).toFixed(0)} s\n`,
    );
    clients = CLIENTS === 1 ? inProcess(c) : await forked(c, CLIENTS);
    const clientPids = clients.pids;
    const opening = performance.now();
    const layout = plan(SESSIONS);
    let opened = 0;
    // Each client first starts one local tunnel per user and database it needs, as
    // `wsh proxy db --tunnel` runs; then its sessions. It fails if one ended before any lock.
    await clients.open(layout, CONCURRENCY, () => {
      if (++opened % 100 === 0) process.stderr.write(`[${backend}] ${opened} sessions open\n`);
    });
    const openSeconds = (performance.now() - opening) / 1000;
    process.stderr.write(
      `[${backend}] ${opened} sessions live in ${openSeconds.toFixed(0)} s (${CLIENTS} client process${CLIENTS === 1 ? '' : 'es'})\n`,
    );
    // The clients' own end paths, run once before the first lock (see SessionHolder.warmUp),
    // and the lock request's path (see warmLockRequests).
    const warmedUp = await clients.warmUp(WARM_UP);
    await warmLockRequests(c, WARM_UP);
    process.stderr.write(
      `[${backend}] warm-up: ${warmedUp} more sessions ended by the server, none by a lock, and ${WARM_UP} locks on a user with no sessions made and removed; locking\n`,
    );

    const targets: Record<Kind, Record<string, string>> = {
      user: { user: USERS.user },
      role: { role: LOCKED_ROLE },
      device: { device: c.deviceId },
      node: { node: NODE },
    };
    const sessions: SessionResult[] = [];
    const locks: LockResult[] = [];
    let loadBefore = '';
    for (const kind of LOCK_ORDER) {
      // The clients' heap debt (see fullGc), then quiet: the warden processes, and the
      // clients (the previous lock's teardown).
      await clients.gc();
      const settled = await settle([...c.pids, ...clientPids], { machine: true });
      const logFrom = c.serverOutput().length;
      loadBefore ||= load();
      const client0 = await clients.cpu();
      const requested = Date.now();
      const monotonicUs = Number(process.hrtime.bigint() / 1000n);
      const server0 = serverCpu(c.pids);
      const machine0 = machineBusyMs();
      const own0 = ownCpuMs();
      const replica0 = c.replicas && [sched(c.replicas.writer), sched(c.replicas.server)];
      const t0 = performance.now();
      const res = await c.lockApi.createLock({
        target: targets[kind],
        message: `bench:locks ${kind}`,
        ttl_ms: 3_600_000,
      });
      const apiMs = performance.now() - t0;
      const { ends, cpuMs: client1 } = await clients.wait(kind, TIMEOUT_MS);
      const server1 = serverCpu(c.pids);
      const machine1 = machineBusyMs();
      const own1 = ownCpuMs();
      const replica1 = c.replicas && [sched(c.replicas.writer), sched(c.replicas.server)];
      await settle(c.pids);
      const serverQuiet = serverCpu(c.pids);
      const stored = await c.lockApi.getResource('lock', res.name);
      const createdAt = Date.parse(String((stored.resource.spec as { created_at?: string }).created_at));
      if (!Number.isFinite(createdAt)) throw new Error(`lock ${res.name} has no created_at`);
      locks.push({
        backend,
        kind,
        target: targets[kind],
        apiMs,
        createdAt,
        requestedAt: requested,
        settleMs: settled.ms,
        ...(settled.machineBusyPct !== undefined ? { machineBusyPct: settled.machineBusyPct } : {}),
        monotonicUs,
        serverCpuMs: server1 - server0,
        serverCpuQuietMs: serverQuiet - server0,
        ...(replica0 && replica1
          ? {
              replicas: {
                a: schedDiff(replica0[0]!, replica1[0]!),
                b: schedDiff(replica0[1]!, replica1[1]!),
              },
            }
          : {}),
        ...monitorPass(c.serverOutput().slice(logFrom)),
        clientCpuMs: client1 - client0,
        ...(machine0 !== undefined && machine1 !== undefined
          ? {
              otherCpuMs: Math.max(
                0,
                machine1 - machine0 - (server1 - server0) - (client1 - client0) - (own1 - own0),
              ),
            }
          : {}),
      });
      const group = layout.filter((i) => i.kind === kind);
      const byIndex = new Map(ends.map((e) => [e.index, e]));
      if (byIndex.size !== group.length || group.some((i) => !byIndex.has(i.index)))
        throw new Error(
          `the clients reported ${byIndex.size} ${kind} sessions, not the ${group.length} opened`,
        );
      for (const item of group) {
        const e = byIndex.get(item.index)!;
        const ended = e.endedAt !== undefined;
        sessions.push({
          backend,
          kind,
          protocol: item.protocol,
          client: e.client,
          ended,
          ...(ended ? { ms: e.endedAt! - createdAt } : {}),
          early: ended && e.endedAt! < requested,
          ...(e.message ? { message: e.message } : {}),
        });
      }
      const missing = ends.filter((e) => e.endedAt === undefined).length;
      process.stderr.write(
        `[${backend}] ${kind} lock: ${group.length - missing} of ${group.length} sessions ended${missing ? ` (${missing} still live after ${TIMEOUT_MS / 1000} s)` : ''}\n`,
      );
    }
    return {
      backend,
      label: c.label,
      pids: { warden: c.pids, clients: clientPids },
      sessions,
      locks,
      openSeconds,
      warmedUp,
      loadBefore,
      loadAfter: load(),
    };
  } finally {
    await clients?.close().catch(() => undefined);
    await c.stop();
  }
}

// ---- report ----------------------------------------------------------------------------------

const clientsLabel = () =>
  CLIENTS === 1 ? "1 client process (the bench's own)" : `${CLIENTS} client processes`;

function report(runs: BackendRun[]): Goal[] {
  const goals: Goal[] = [];
  const cell = (v: number) => (Number.isFinite(v) ? `${v.toFixed(0)} ms` : '-');
  const row = (cells: string[]) =>
    console.log(cells.map((c, i) => (i === 0 ? c.padEnd(34) : c.padStart(10))).join(''));
  console.log(
    `\nbench:locks: ${SESSIONS} live sessions per backend held by ${clientsLabel()}, one lock per` +
      "\ntarget kind; time from the lock's write (its created_at) to each session's end as the client sees it",
  );
  for (const run of runs) {
    console.log(`\n${run.label}`);
    console.log(
      `load average before the locks ${run.loadBefore}, after ${run.loadAfter}; sessions opened in ${run.openSeconds.toFixed(0)} s; ${run.warmedUp} more ended by the server and ${WARM_UP} locks on a user with no sessions made and removed before the locks (--warm-up); locks in the order ${run.locks.map((l) => l.kind).join(', ')}`,
    );
    row(['kind / protocol', 'sessions', 'p50', 'p95', 'p99', 'max', 'not ended']);
    for (const kind of KINDS) {
      const of = run.sessions.filter((s) => s.kind === kind);
      const line = (label: string, list: SessionResult[]) => {
        const ms = list
          .filter((s) => s.ended)
          .map((s) => s.ms!)
          .sort((a, b) => a - b);
        row([
          label,
          String(list.length),
          cell(percentile(ms, 50)),
          cell(percentile(ms, 95)),
          cell(percentile(ms, 99)),
          cell(ms.at(-1) ?? Number.NaN),
          String(list.filter((s) => !s.ended).length),
        ]);
        return ms;
      };
      const lock = run.locks.find((l) => l.kind === kind);
      const target = lock
        ? Object.entries(lock.target)
            .map(([k, v]) => `--${k}=${v}`)
            .join(' ')
        : '';
      const all = line(`${kind} (${target.length > 24 ? `${target.slice(0, 23)}…` : target})`, of);
      for (const protocol of PROTOCOLS) {
        const list = of.filter((s) => s.protocol === protocol);
        if (list.length) line(`  ${PROTOCOL_LABELS[protocol]}`, list);
      }
      // A session that never ended counts as infinitely late.
      const complete = of.every((s) => s.ended) && of.length > 0;
      const p = (q: number) => (complete ? percentile(all, q) : Number.NaN);
      goals.push(goal(`${run.backend} ${kind} p99`, p(99), { max: 250 }, ' ms'));
      goals.push(goal(`${run.backend} ${kind} p50`, p(50), { max: 50 }, ' ms'));
    }
    console.log(
      `lock API round trip (what \`wctl lock\` waits for): ${run.locks.map((l) => `${l.kind} ${l.apiMs.toFixed(0)} ms`).join(', ')}` +
        `\nwaited for the machine to go quiet before each lock (and its CPU use then, % of one core): ${run.locks.map((l) => `${l.kind} ${(l.settleMs / 1000).toFixed(1)} s (${l.machineBusyPct?.toFixed(0) ?? '?'} %)`).join(', ')}` +
        `\nCPU per ended session, warden (to the last end / to quiet again) and the client${CLIENTS === 1 ? " (the bench's process)" : ` processes (${CLIENTS}, summed)`}: ${run.locks
          .map((l) => {
            const n = run.sessions.filter((s) => s.kind === l.kind && s.ended).length || 1;
            const f = (ms: number) => (ms / n).toFixed(2);
            return `${l.kind} ${f(l.serverCpuMs)} / ${f(l.serverCpuQuietMs)} and ${f(l.clientCpuMs)} ms`;
          })
          .join(', ')}` +
        `\nthe rest of the machine (sshd, PostgreSQL, MariaDB, the sessions' processes, the kernel) from the request to the last end: ${run.locks
          .map((l) => `${l.kind} ${l.otherCpuMs?.toFixed(0) ?? '?'} ms`)
          .join(', ')}`,
    );
    if (run.locks.some((l) => l.replicas))
      console.log(
        `to the last end, replica A (writes the lock) / B (holds the sessions): CPU, and the main thread's wait for a core: ${run.locks
          .filter((l) => l.replicas)
          .map(
            (l) =>
              `${l.kind} ${l.replicas!.a.cpuMs.toFixed(1)} / ${l.replicas!.b.cpuMs.toFixed(1)} ms and ${l.replicas!.a.waitMs.toFixed(1)} / ${l.replicas!.b.waitMs.toFixed(1)} ms`,
          )
          .join(', ')}`,
      );
    console.log(
      `the session monitor's pass (lock age when it began / wall / CPU / main thread waiting for a core): ${run.locks
        .map((l) =>
          l.pass
            ? `${l.kind} ${l.pass.lockAgeMs ?? '?'} / ${l.pass.ms.toFixed(1)} / ${l.pass.cpuMs.toFixed(1)} / ${l.pass.waitMs?.toFixed(1) ?? '?'} ms`
            : `${l.kind} not logged`,
        )
        .join(', ')}` +
        `\nwarden's side: the lock's age when the pass had ended half / 99 % / all of its sessions (each end written to the client's socket; a session through the proxy to the Warden node counts twice): ${run.locks
          .map((l) =>
            l.pass?.endAge
              ? `${l.kind} ${l.pass.endAge.p50} / ${l.pass.endAge.p99} / ${l.pass.endAge.max} ms`
              : `${l.kind} not logged`,
          )
          .join(', ')}`,
    );
    const early = run.sessions.filter((s) => s.early).length;
    if (early) console.log(`${early} sessions ended before their own lock was requested`);
  }
  console.log('');
  for (const g of goals) console.log(`${g.what}: ${g.text}`);
  console.log(verdict('bench:locks', goals));
  return goals;
}

async function main(): Promise<number> {
  if (!process.env.WARDEN_BENCH_SKIP_BUILD_CHECK) {
    try {
      readFileSync(resolve(import.meta.dirname, '../dist/warden.js'));
    } catch {
      throw new Error('dist/warden.js is missing: run `npm run build` first');
    }
  }
  for (const check of [
    requireTool('sshd'),
    requireTool('swtpm'),
    requireTool('swtpm_setup'),
    requirePostgres(),
    requireMariaDb(),
  ]) {
    if (!check.ok) throw new Error(`bench:locks: ${check.skip}`);
  }
  const started = performance.now();
  const runs: BackendRun[] = [];
  for (const backend of BACKENDS) runs.push(await runBackend(backend));
  report(runs);
  if (args.json) {
    writeFileSync(
      args.json,
      JSON.stringify(
        {
          clients: CLIENTS,
          pids: Object.fromEntries(runs.map((r) => [r.backend, r.pids])),
          sessions: runs.flatMap((r) => r.sessions),
          locks: runs.flatMap((r) => r.locks),
        },
        null,
        2,
      ),
    );
  }
  console.log(`whole run: ${((performance.now() - started) / 1000).toFixed(0)} s`);
  const bad = runs.flatMap((r) => r.sessions).filter((s) => !s.ended || s.early).length;
  if (bad) {
    console.error(`ERROR: ${bad} sessions did not end, or ended before their lock`);
    return 1;
  }
  return 0;
}

process.exitCode = await main();
