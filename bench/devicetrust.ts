/**
 * Benchmark: device trust at login. Prints, asserts nothing (numbers depend on the machine).
 *
 *   1. `wsh login` as a user runs it (a new process each time), on an enrolled machine (device
 *      authentication included) and on one that is not (no device step); and the device step
 *      as `wsh login --debug` times it inside the process: the whole step, the time it waited
 *      for the TPM alone, and the rest — Warden's own time (goal: ≤ 30 ms, median).
 *   2. The device step alone, in process against the same warden, split into the device's
 *      time (swtpm: load the AK, quote, read PCRs) and Warden's own (two RPCs over TLS: checks,
 *      quote verification, certificate issuance).
 *   3. Ceremonies per CPU-second at the auth service: `DeviceAuthentication` in process over
 *      SQLite, counting only the server's time (begin + finish), the quotes coming from swtpm,
 *      each ceremony on a device of its own (as a busy auth service sees them: each finish
 *      writes its device's collected data); judged against 2,000/s and against the crypto
 *      limit probed in the same run (goal 0.43).
 *   4. Enrollments at the auth service: `DeviceEnrollment` in process, one at a time, each
 *      for a new device and a new credential of the same swtpm (the previous device removed
 *      first, untimed: one EK backs one device), counting the server's time and CPU.
 *
 *   npm run bench:devicetrust -- [--logins=N] [--ceremonies=N] [--rounds=N] [--warmup=N]
 *     [--enrollments=N] [--devices=N] [--only=service|login] [--profile=FILE] [--wsh-profile=DIR]
 *                                                              (needs swtpm, swtpm_setup)
 *   `--only=service` runs parts 3 and 4 alone, `--only=login` parts 1 and 2; `--rounds` is how
 *   often part 3 runs its many ceremonies at once (default 5; the median of the rounds' figures
 *   is reported and judged, each figure's own median), after `--warmup`
 *   untimed rounds (a running auth service has its code compiled; the first rounds spend a
 *   third of their CPU in V8's compiler threads; after the default 2 V8 was still optimising the
 *   finish path in the timed rounds — 68 functions compiled and 4 deoptimised during the first
 *   one, `--trace-opt --trace-deopt` — so the default is 10); `--profile=FILE` writes V8 CPU profiles of
 *   the first timed round's phases (the begins, the finishes) to FILE.begin/.finish.cpuprofile
 *   and of the enrollments to FILE.enroll.cpuprofile;
 *   `--wsh-profile=DIR` one of each `wsh login` process to DIR (bench/cpu-profile-preload.mjs);
 *   `--devices=N` spreads part 3's ceremonies over N devices (default: one per ceremony;
 *   `--devices=1` is the earlier rounds' set-up, where finishes share their device's write).
 */
import {
  constants,
  generateKeyPairSync,
  publicEncrypt,
  randomUUID,
  sign,
  verify,
  X509Certificate,
} from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { AUTH_PREFERENCE_NAME } from '@warden/api';
import { AuthnCeremony, EnrollCeremony, establishTrust, ProfileStore, UserKey } from '@warden/client';
import {
  CertAuthorities,
  createAuthServer,
  createServices,
  DeviceAuthentication,
  DeviceEnrollment,
  DeviceInventory,
  liveAccessChecker,
  SqliteAuditLog,
  SqliteBackend,
  silentLogger,
  systemClock,
} from '@warden/server';
import { runCli, signupWithTotp, startSwtpm, startWarden } from '@warden/testkit';
import { timeDeviceLogins } from './device-login';
import { type Goal, goal, loadAverage, verdict } from './goals';

const PASSWORD = 'correct horse battery staple';
const PROFILE_PRELOAD = join(import.meta.dirname, 'cpu-profile-preload.mjs');

const { values } = parseArgs({
  options: {
    logins: { type: 'string', default: '10' },
    ceremonies: { type: 'string', default: '200' },
    rounds: { type: 'string', default: '5' },
    warmup: { type: 'string', default: '10' },
    enrollments: { type: 'string', default: '20' },
    devices: { type: 'string' },
    only: { type: 'string' },
    profile: { type: 'string' },
    'wsh-profile': { type: 'string' },
  },
});
if (values.only !== undefined && values.only !== 'service' && values.only !== 'login')
  throw new Error('--only takes "service" or "login"');
const LOGINS = Number(values.logins);
const goals: Goal[] = [];
const CEREMONIES = Number(values.ceremonies);
const ROUNDS = Math.max(1, Number(values.rounds));
const WARMUP = Math.max(0, Number(values.warmup));
const ENROLLMENTS = Math.max(1, Number(values.enrollments));
/** Devices the many-at-once rounds spread their ceremonies over (default: one each). */
const DEVICES = Math.max(1, Math.min(CEREMONIES, Number(values.devices ?? CEREMONIES)));

/** The median (the mean of the middle two for an even count). */
function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

function stats(ms: number[]): string {
  const s = [...ms].sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.floor(p * s.length))]!;
  const mean = s.reduce((a, b) => a + b, 0) / s.length;
  return `median ${q(0.5).toFixed(1)} ms, p90 ${q(0.9).toFixed(1)} ms, mean ${mean.toFixed(1)} ms (n=${s.length})`;
}

/**
 * CPU time (ms) of this process's threads so far: the main (JavaScript) thread and all the
 * others together (V8's compiler and GC helpers, libuv's pool), from /proc (ns precision);
 * undefined where there is no /proc.
 */
function threadCpuMs(): { main: number; others: number } | undefined {
  try {
    let main = 0;
    let others = 0;
    for (const tid of readdirSync('/proc/self/task')) {
      let ns: number;
      try {
        ns = Number(readFileSync(`/proc/self/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
      } catch {
        continue; // the thread ended meanwhile
      }
      if (tid === String(process.pid)) main += ns / 1e6;
      else others += ns / 1e6;
    }
    return { main, others };
  } catch {
    return undefined;
  }
}

async function timed(f: () => Promise<unknown>): Promise<number> {
  const start = performance.now();
  await f();
  return performance.now() - start;
}

/** Parts 1 and 2: `wsh login` with and without the device step, and the device step in process. */
async function loginPhases(
  w: Awaited<ReturnType<typeof startWarden>>,
  machine: NodeJS.ProcessEnv,
  work: string,
): Promise<void> {
  // 1. wsh login, a process per login, with and without the device step.
  const steps: { ms: number; tpm: number; own: number; rpc: number; tpmAll: number; cpu: number }[] = [];
  const wshLogin = (env: NodeJS.ProcessEnv) =>
    timed(async () => {
      const r = await runCli('wsh', ['login', `--proxy=${w.proxy}`, '--user=alice'], {
        env: {
          ...env,
          WARDEN_DEBUG: '1',
          ...(values['wsh-profile']
            ? { NODE_OPTIONS: `--import=${PROFILE_PRELOAD}`, CPUPROF_DIR: resolve(values['wsh-profile']) }
            : {}),
        },
        input: `${PASSWORD}\n`,
      });
      if (r.code !== 0) throw new Error(r.stderr);
      const m =
        /debug: device authentication ([\d.]+) ms: TPM alone ([\d.]+) ms, Warden ([\d.]+) ms \(RPCs ([\d.]+) ms, TPM in all ([\d.]+) ms\); wsh CPU ([\d.]+) ms/.exec(
          r.stderr,
        );
      if (m) {
        const [ms, tpm, own, rpc, tpmAll, cpu] = m.slice(1).map(Number) as [
          number,
          number,
          number,
          number,
          number,
          number,
        ];
        steps.push({ ms, tpm, own, rpc, tpmAll, cpu });
      }
    });
  const notEnrolled = { ...machine, WARDEN_DEVICE_CACHE: join(work, 'empty-cache') };
  await wshLogin(machine);
  const withDevice: number[] = [];
  const without: number[] = [];
  for (let i = 0; i < LOGINS; i++) {
    withDevice.push(await wshLogin(machine));
    without.push(await wshLogin(notEnrolled));
  }
  console.log(`1. wsh login (new process each time; swtpm as the TPM; ${loadAverage()})`);
  console.log(`   with device authentication:    ${stats(withDevice)}`);
  console.log(`   without (machine not enrolled): ${stats(without)}`);
  steps.splice(0, 1); // the warm-up login
  console.log('   the device step inside wsh login (its own --debug line):');
  console.log(`     whole step:                  ${stats(steps.map((s) => s.ms))}`);
  console.log(`     waiting for the TPM alone:   ${stats(steps.map((s) => s.tpm))}`);
  console.log(`     Warden's own (the rest):     ${stats(steps.map((s) => s.own))}`);
  console.log(`     the 2 RPCs (may overlap the TPM): ${stats(steps.map((s) => s.rpc))}`);
  console.log(`     wsh's CPU during the step:   ${stats(steps.map((s) => s.cpu))}`);
  const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  // The issue's "wsh login with device authentication stays within 30 ms of Warden's own
  // time": what the device step adds to a login beyond the TPM's own work (module loading,
  // key parsing, TLS, both RPCs with the server's work, saving the certificates).
  const g = goal(
    "wsh login: device step, Warden's own time (median)",
    med(steps.map((s) => s.own)),
    { max: 30 },
    ' ms',
  );
  goals.push(g);
  console.log(`   goal (device step beyond the TPM ≤ 30 ms): ${g.text}`);
  console.log(
    `   cross-check, difference of medians (with − without − TPM alone): ` +
      `${(med(withDevice) - med(without) - med(steps.map((s) => s.tpm))).toFixed(1)} ms ` +
      '(two process runs of hundreds of ms each: noisier than the step timed inside wsh)',
  );

  // 2. The device step alone, in process: TPM time vs Warden's own.
  const trust = await establishTrust({ proxy: w.proxy, caPin: w.caPin });
  const { totals, timings: split } = await timeDeviceLogins({
    store: new ProfileStore(join(work, 'home-inproc')),
    proxy: w.proxy,
    caPin: w.caPin,
    hostCaPems: trust.hostCaPems,
    user: 'alice',
    password: PASSWORD,
    env: machine,
    n: LOGINS,
  });
  console.log(`2. device authentication in process (after the password login; ${loadAverage()})`);
  console.log(`   total:                         ${stats(totals)}`);
  console.log(`   TPM (DMI, cache, TPM commands): ${stats(split.map((t) => t.deviceMs))}`);
  console.log(`     of it waited for alone:      ${stats(split.map((t) => t.deviceOnlyMs))}`);
  console.log(`   Warden (2 RPCs over TLS):      ${stats(split.map((t) => t.serverMs))}`);
}

/** Stops the profiler and writes what it took to `<file>.<phase>.cpuprofile`. */
async function writeProfile(profiler: Session | undefined, file: string | undefined, phase: string) {
  if (!profiler || !file) return;
  const { profile } = await profiler.post('Profiler.stop');
  const out = `${file.replace(/\.cpuprofile$/, '')}.${phase}.cpuprofile`;
  writeFileSync(out, JSON.stringify(profile));
  console.log(`   CPU profile of the ${phase} phase: ${out}`);
}

async function main(): Promise<void> {
  const w = await startWarden({ nodeName: 'node-1' });
  const sw = await startSwtpm({ ekCert: true });
  const work = mkdtempSync(join(tmpdir(), 'warden-bench-dt-'));
  try {
    const dmi = join(work, 'dmi');
    mkdirSync(dmi);
    const machine = {
      ...w.env,
      WARDEN_TPM: sw.address,
      WARDEN_DEVICE_CACHE: join(work, 'device-cache'),
      WARDEN_DEVICE_DMI_DIR: dmi,
      WARDEN_HOME: join(work, 'home'),
    };
    const wctl = (args: string[]) => runCli('wctl', args, { env: w.env });
    const cap = join(work, 'cap.yaml');
    writeFileSync(
      cap,
      `kind: cluster_auth_preference\nversion: v2\nmetadata:\n  name: ${AUTH_PREFERENCE_NAME}\nspec:\n  second_factor: "off"\n  device_trust:\n    mode: optional\n`,
    );
    await wctl(['create', '-f', cap]);
    const add = await wctl(['users', 'add', 'alice', '--roles=access', '--logins=root']);
    const invite = /--token=(\S+)/.exec(add.stdout)![1]!;
    await signupWithTotp(
      [`--proxy=${w.proxy}`, `--token=${invite}`, `--ca-pin=${w.caPin}`],
      PASSWORD,
      machine,
    );
    const tag = (await runCli('wsh', ['device', 'asset-tag'], { env: machine })).stdout.trim();
    const dev = await wctl(['devices', 'add', '--os=linux', `--asset-tag=${tag}`, '--enroll']);
    const token = /--token=(\S+)/.exec(dev.stdout)![1]!;
    const enroll = await runCli('wsh', ['device', 'enroll', `--token=${token}`, `--ca-pin=${w.caPin}`], {
      env: machine,
    });
    if (enroll.code !== 0) throw new Error(`enroll failed: ${enroll.stderr}`);

    if (values.only !== 'service') await loginPhases(w, machine, work);
    if (values.only === 'login') return;

    // 3. The auth service alone: begin + finish in process over SQLite.
    const backend = await SqliteBackend.open({ path: join(work, 'bench.sqlite') });
    const audit = await SqliteAuditLog.open({ path: join(work, 'audit.sqlite'), clock: systemClock });
    const clock = systemClock;
    const services = createServices({ backend, clock });
    await services.ensurePresets();
    const cas = await CertAuthorities.init({ backend, clusterName: 'bench', clock });
    const inventory = new DeviceInventory({ services, backend, clock, audit, logger: silentLogger });
    const o = { inventory, services, backend, clock, audit, logger: silentLogger };
    // As `warden start`: the stored cluster settings, and the ceremonies ask the live checker.
    await services.authPreference.upsert(await services.authPreference.get());
    const views = services.accessViews({ logger: silentLogger });
    await views.start();
    const checker = liveAccessChecker(views, { clock });
    const enrollment = new DeviceEnrollment({ ...o, checker });
    const authn = new DeviceAuthentication({ ...o, cas, checker });
    const auth = createAuthServer({
      clock,
      backend,
      services,
      cas,
      audit,
      logger: silentLogger,
      clusterName: 'bench',
      proxyPublicAddr: 'bench:3080',
      serverVersion: 'bench',
      inventory,
    });
    const benchDevice = await inventory.add({ user: 'bench' }, { osType: 'linux', assetTag: tag });
    const { token: t2 } = await inventory.createEnrollToken({ user: 'bench' }, benchDevice.metadata.name);
    const local = {
      deviceEnrollBegin: (r: Parameters<DeviceEnrollment['begin']>[0]) => enrollment.begin(r),
      deviceEnrollFinish: (r: Parameters<DeviceEnrollment['finish']>[0]) => enrollment.finish(r),
    };
    const enrolled = await new EnrollCeremony({ env: machine }).run(local, {
      token: t2,
      cluster: `bench-${randomUUID()}`,
      proxy: 'bench:3080',
    });
    const key = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const certs = await cas.issueUserCertificates({
      user: 'alice',
      roles: ['access'],
      logins: ['root'],
      traits: {},
      publicKey: key.publicKey,
      ttlMs: 3600_000,
    });
    const caller = {
      ...(await auth.identify(new X509Certificate(certs.tlsCert).raw)),
      clientAddr: '127.0.0.1',
    };
    const ceremony = new AuthnCeremony({ userKey: new UserKey(key.privateKey), env: machine });

    // 3a. One at a time: the server's time per ceremony (begin + finish), the swtpm not counted.
    let serverMs = 0;
    const serverApi = {
      deviceAuthnBegin: async (r: Parameters<DeviceAuthentication['begin']>[1]) => {
        const s = performance.now();
        const out = await authn.begin(caller, r);
        serverMs += performance.now() - s;
        return out;
      },
      deviceAuthnFinish: async (r: Parameters<DeviceAuthentication['finish']>[1]) => {
        const s = performance.now();
        const out = await authn.finish(caller, r);
        serverMs += performance.now() - s;
        return out;
      },
    };
    await ceremony.run(serverApi); // warm-up
    serverMs = 0;
    let deviceMs = 0;
    const serial = Math.min(CEREMONIES, 50);
    for (let i = 0; i < serial; i++) deviceMs += (await ceremony.run(serverApi)).timings.deviceMs;

    // 3b. Many at once, as a busy auth service sees them (many users, up to 8 ceremonies open
    //     each): every begin at once, then (untimed) the swtpm answers each challenge, then
    //     every finish at once. Throughput is
    //     ceremonies over the wall time of the two timed phases; the process runs on one core
    //     (one JS thread; the audit log's fsync on libuv's pool), and its CPU time is counted.
    let beginReq: Parameters<DeviceAuthentication['begin']>[1] | undefined;
    const NOT_SENT = new Error('captured');
    await ceremony
      .run({
        deviceAuthnBegin: async (r) => {
          beginReq = r;
          throw NOT_SENT;
        },
        deviceAuthnFinish: async () => {
          throw NOT_SENT;
        },
      })
      .catch((e) => {
        if (e !== NOT_SENT) throw e;
      });
    // One user may have only a few ceremonies open at once: spread them over enough users.
    const PER_USER = 8;
    const users = await Promise.all(
      Array.from({ length: Math.ceil(CEREMONIES / PER_USER) }, async (_, u) => {
        const k = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
        const c = await cas.issueUserCertificates({
          user: `user${u}`,
          roles: ['access'],
          logins: ['root'],
          traits: {},
          publicKey: k.publicKey,
          ttlMs: 3600_000,
        });
        return {
          caller: { ...(await auth.identify(new X509Certificate(c.tlsCert).raw)), clientAddr: '127.0.0.1' },
          ceremony: new AuthnCeremony({ userKey: new UserKey(k.privateKey), env: machine }),
        };
      }),
    );
    const userOf = (i: number) => users[Math.floor(i / PER_USER)]!;
    // A busy auth service sees a different device in (nearly) every ceremony: each finish then
    // writes its own device's collected data, where ceremonies of one device that finish
    // together share one write. The devices are registered here directly in the inventory
    // (untimed, not an enrollment: one swtpm has one EK), each with a credential of its own ID
    // and the enrolled AK, so the swtpm's quotes verify for all of them.
    const credential = (await inventory.findByCredentialId(beginReq!.credential_id))!.spec.credential!;
    const deviceReqs = await Promise.all(
      Array.from({ length: DEVICES }, async (_, d) => {
        if (d === 0) return beginReq!;
        const added = await inventory.add(
          { user: 'bench' },
          { osType: 'linux', assetTag: `bench-device-${d}` },
        );
        const id = randomUUID();
        await services.devices.update({
          ...added,
          spec: { ...added.spec, enroll_status: 'enrolled', credential: { ...credential, id } },
        });
        return {
          ...beginReq!,
          credential_id: id,
          device_data: { ...beginReq!.device_data, serial_number: added.spec.asset_tag },
        };
      }),
    );
    const deviceReqOf = (i: number) => deviceReqs[i % DEVICES]!;
    const profiler = values.profile ? new Session() : undefined;
    if (profiler) {
      profiler.connect();
      await profiler.post('Profiler.enable');
      await profiler.post('Profiler.setSamplingInterval', { interval: 100 });
    }
    const profiling = (on: boolean) =>
      profiler ? profiler.post(on ? 'Profiler.start' : 'Profiler.stop') : Promise.resolve();
    /** One round: every begin at once, the swtpm's answers (untimed), every finish at once. */
    const manyAtOnce = async (profile: boolean) => {
      if (profile) await profiling(true);
      const threads0 = threadCpuMs();
      const cpu0 = process.cpuUsage();
      const t0 = performance.now();
      const begun = await Promise.all(
        Array.from({ length: CEREMONIES }, (_, i) => authn.begin(userOf(i).caller, deviceReqOf(i))),
      );
      const beginWall = performance.now() - t0;
      const beginCpu = process.cpuUsage(cpu0);
      const threads1 = threadCpuMs();
      // The swtpm's answers are not profiled: V8 keeps one profile per start, so the begins'
      // samples are written now and the finishes' in a second file.
      if (profile) await writeProfile(profiler, values.profile, 'begin');
      const finishes: Parameters<DeviceAuthentication['finish']>[1][] = [];
      for (const [i, challenge] of begun.entries()) {
        await userOf(i)
          .ceremony.run({
            deviceAuthnBegin: async () => challenge,
            deviceAuthnFinish: async (r) => {
              finishes.push(r);
              throw NOT_SENT;
            },
          })
          .catch((e) => {
            if (e !== NOT_SENT) throw e;
          });
      }
      if (profile) await profiling(true);
      const threads2 = threadCpuMs();
      const cpu1 = process.cpuUsage();
      const t1 = performance.now();
      const finished = await Promise.allSettled(finishes.map((r, i) => authn.finish(userOf(i).caller, r)));
      const finishWall = performance.now() - t1;
      const finishCpu = process.cpuUsage(cpu1);
      const threads3 = threadCpuMs();
      if (profile) await writeProfile(profiler, values.profile, 'finish');
      const failed = finished.filter((r) => r.status === 'rejected');
      if (failed.length > 0) throw (failed[0] as PromiseRejectedResult).reason;
      const cpuMs = (beginCpu.user + beginCpu.system + finishCpu.user + finishCpu.system) / 1000;
      // The main thread's share of it (the rest: V8's compiler and GC threads, libuv's pool).
      const mainMs =
        threads0 && threads1 && threads2 && threads3
          ? threads1.main - threads0.main + threads3.main - threads2.main
          : undefined;
      return { beginWall, finishWall, cpuMs, mainMs };
    };
    // The crypto limit, probed in this process right after each round: the node:crypto work
    // one ceremony cannot do without, done alone in a tight loop — two ECDSA P-256 verifies
    // (the AK's quote, the user's signature over nonce and session) and two signs (the user
    // CA's Ed25519 SSH key and its P-256 X.509 key). That is the issue's "node:crypto limit
    // ≈ 4,700 ceremonies/s/core (ECDSA verify + Ed25519/ECDSA sign)": this probe measures
    // 4,400–4,800/s on this machine when it is quiet. The issue's goal, 2,000/s on one core,
    // is 0.43 of that limit; both are judged on CPU time, so the machine's other load (it
    // slows the probe and the ceremonies alike) neither fails nor passes the ratio, while the
    // absolute figure suffers from it. The probe of the earlier rounds (one P-256 verify and
    // one sign: 9,000–10,400/s) is printed too, for comparison with their figures.
    const probe = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const edProbe = generateKeyPairSync('ed25519');
    const data = Buffer.alloc(64, 1);
    const sig = sign('sha256', data, probe.privateKey);
    /** CPU-µs of `n` runs of `f`. */
    const cpuOf = (n: number, f: () => void) => {
      const c0 = process.cpuUsage();
      for (let i = 0; i < n; i++) f();
      const c = process.cpuUsage(c0);
      return c.user + c.system;
    };
    const ceremonyCrypto = () => {
      verify('sha256', data, probe.publicKey, sig);
      verify('sha256', data, probe.publicKey, sig);
      sign('sha256', data, probe.privateKey);
      sign(null, data, edProbe.privateKey);
    };
    const pair = () => {
      verify('sha256', data, probe.publicKey, sig);
      sign('sha256', data, probe.privateKey);
    };
    /** Per CPU-second: the ceremony's crypto alone, and the old pair; alternating blocks. */
    const cryptoProbe = () => {
      let ceremonyUs = 0;
      let pairUs = 0;
      const BLOCKS = 10;
      const PER_BLOCK = 50;
      for (let b = 0; b < BLOCKS; b++) {
        ceremonyUs += cpuOf(PER_BLOCK, ceremonyCrypto);
        pairUs += cpuOf(PER_BLOCK, pair);
      }
      return {
        limit: (BLOCKS * PER_BLOCK) / (ceremonyUs / 1e6),
        pair: (BLOCKS * PER_BLOCK) / (pairUs / 1e6),
      };
    };
    // Several rounds, each judged against the crypto limit probed right after it; the figures
    // reported and judged are the medians over the rounds, each figure's own (the rounds'
    // spread is printed next to them). The earlier rounds of this bench reported the round of
    // the best ratio, which could be a round with fewer ceremonies per CPU-second than others
    // (a slow probe raises the ratio) and was the luckiest of N, not a typical round.
    const rounds: {
      beginWall: number;
      finishWall: number;
      cpuMs: number;
      mainMs: number | undefined;
      limit: number;
      pair: number;
      ratio: number;
      perCpuSecond: number;
    }[] = [];
    for (let r = 0; r < WARMUP; r++) await manyAtOnce(false);
    for (let r = 0; r < ROUNDS; r++) {
      const m = await manyAtOnce(r === 0 && profiler !== undefined);
      const probed = cryptoProbe();
      const perCpuSecond = CEREMONIES / (m.cpuMs / 1000);
      rounds.push({ ...m, ...probed, perCpuSecond, ratio: perCpuSecond / probed.limit });
    }
    const of = (f: (r: (typeof rounds)[number]) => number) => rounds.map(f);
    const spread = (xs: number[], digits = 0) =>
      `${Math.min(...xs).toFixed(digits)}–${Math.max(...xs).toFixed(digits)}`;
    const perCpuSecond = median(of((r) => r.perCpuSecond));
    const ratio = median(of((r) => r.ratio));
    const limit = median(of((r) => r.limit));
    const pairLimit = median(of((r) => r.pair));
    const rate = median(of((r) => CEREMONIES / ((r.beginWall + r.finishWall) / 1000)));

    console.log(
      `3. the auth service alone (in process, SQLite backend and audit log; ${DEVICES} devices; ${loadAverage()})`,
    );
    console.log(
      `   one at a time: ${(serial / (serverMs / 1000)).toFixed(0)} ceremonies/s of server time ` +
        `(${(serverMs / serial).toFixed(2)} ms each; the swtpm took ${(deviceMs / serial).toFixed(1)} ms each, not counted)`,
    );
    for (const [i, r] of rounds.entries()) {
      console.log(
        `   ${CEREMONIES} at once, round ${i + 1}: ${(CEREMONIES / ((r.beginWall + r.finishWall) / 1000)).toFixed(0)} ceremonies/s ` +
          `(begin ${r.beginWall.toFixed(0)} ms + finish ${r.finishWall.toFixed(0)} ms of wall time), ` +
          `${((r.cpuMs * 1000) / CEREMONIES).toFixed(0)} µs of CPU each` +
          (r.mainMs !== undefined
            ? ` (main thread ${((r.mainMs * 1000) / CEREMONIES).toFixed(0)} µs, other threads ${(((r.cpuMs - r.mainMs) * 1000) / CEREMONIES).toFixed(0)} µs)`
            : '') +
          ` = ${r.perCpuSecond.toFixed(0)} per CPU-second; ` +
          `crypto limit ${r.limit.toFixed(0)}/s: ${r.ratio.toFixed(3)} of it`,
      );
    }
    console.log(
      `   median of the ${ROUNDS} rounds (each figure's own median; the rounds' range in brackets): ` +
        `${perCpuSecond.toFixed(0)} per CPU-second [${spread(of((r) => r.perCpuSecond))}] ` +
        `(${(1e6 / perCpuSecond).toFixed(0)} µs of CPU each, of it ${(1e6 / limit).toFixed(0)} µs the crypto alone ` +
        `would take), ${ratio.toFixed(3)} of the crypto limit [${spread(
          of((r) => r.ratio),
          3,
        )}], ` +
        `${rate.toFixed(0)} ceremonies/s of wall time`,
    );
    const gAbs = goal(
      'device authentication per CPU-second (one core), median round',
      perCpuSecond,
      { min: 2000 },
      '/s',
      0,
    );
    // Three decimals: the line is 2,000 / 4,700 = 0.4255, and 0.425 must not print as 0.43.
    const gRatio = goal(
      'device authentication ÷ crypto limit, median round',
      ratio,
      { min: 2000 / 4700 },
      '×',
      3,
    );
    goals.push(gAbs, gRatio);
    console.log(`   goal, the issue's absolute figure (2,000/s on one core): ${gAbs.text}`);
    console.log(
      `   goal, against the crypto limit probed in the run (the ceremony's 2 P-256 verifies, P-256 and Ed25519 ` +
        `signs alone: ${limit.toFixed(0)}/s; the issue's ≈ 4,700/s; 2,000 / 4,700 = 0.43): ${gRatio.text}`,
    );
    console.log(
      `   (against the earlier rounds' probe, one P-256 verify + sign: ${pairLimit.toFixed(0)}/s, ` +
        `${(perCpuSecond / pairLimit).toFixed(2)} of it)`,
    );

    // The extra devices hold the enrolled AK's credential copied: they go before enrollment.
    for (const r of deviceReqs.slice(1)) {
      const d = await inventory.findByCredentialId(r.credential_id);
      if (d) await inventory.remove({ user: 'bench' }, d.metadata.name);
    }

    // 4. Enrollment, one at a time: each for a new device (the one before removed, untimed)
    //    and a new credential (a new device cache, so a new AK in the same swtpm).
    const enrollTimes: number[] = [];
    let enrollCpuMs = 0;
    let enrollBeginMs = 0;
    let attestation = enrolled.device.attestation_type;
    let previous = benchDevice.metadata.name;
    // The enrollments' profile also holds the client side and the swtpm's waits (untimed):
    // read DeviceEnrollment.begin and .finish in it.
    if (profiler) await profiling(true);
    for (let i = 0; i <= ENROLLMENTS; i++) {
      await inventory.remove({ user: 'bench' }, previous);
      const d = await inventory.add({ user: 'bench' }, { osType: 'linux', assetTag: tag });
      previous = d.metadata.name;
      const { token } = await inventory.createEnrollToken({ user: 'bench' }, d.metadata.name);
      let ms = 0;
      let cpu = 0;
      const timedPhase = async <T>(f: () => Promise<T>): Promise<T> => {
        const c0 = process.cpuUsage();
        const s = performance.now();
        try {
          return await f();
        } finally {
          ms += performance.now() - s;
          const c = process.cpuUsage(c0);
          cpu += (c.user + c.system) / 1000;
        }
      };
      let beginMs = 0;
      const out = await new EnrollCeremony({
        env: { ...machine, WARDEN_DEVICE_CACHE: join(work, `enroll-cache-${i}`) },
      }).run(
        {
          deviceEnrollBegin: (r) =>
            timedPhase(() => enrollment.begin(r, { clientAddr: '127.0.0.1' })).finally(() => {
              beginMs = ms;
            }),
          deviceEnrollFinish: (r) => timedPhase(() => enrollment.finish(r, { clientAddr: '127.0.0.1' })),
        },
        { token, cluster: `bench-${randomUUID()}`, proxy: 'bench:3080' },
      );
      attestation = out.device.attestation_type;
      if (i === 0) continue; // warm-up
      enrollTimes.push(ms);
      enrollBeginMs += beginMs;
      enrollCpuMs += cpu;
    }
    await writeProfile(profiler, values.profile, 'enroll');
    profiler?.disconnect();
    // Enrollment's own crypto, probed the same way: two P-256 verifies (the AK's certified
    // creation, the quote over the nonce) and MakeCredential's RSA-2048 OAEP encryption to the
    // EK (swtpm's EK is RSA-2048).
    const rsaEk = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const seed = Buffer.alloc(32, 7);
    const enrollCrypto = () => {
      verify('sha256', data, probe.publicKey, sig);
      verify('sha256', data, probe.publicKey, sig);
      publicEncrypt(
        { key: rsaEk.publicKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' },
        seed,
      );
    };
    const enrollLimit = 500 / (cpuOf(500, enrollCrypto) / 1e6);
    const enrollPerCpuSecond = ENROLLMENTS / (enrollCpuMs / 1000);
    console.log(
      `4. enrollment at the auth service, one at a time (in process; swtpm's time not counted; ${loadAverage()})`,
    );
    console.log(`   server time (begin + finish):  ${stats(enrollTimes)}`);
    console.log(
      `   CPU: ${(enrollCpuMs / ENROLLMENTS).toFixed(2)} ms per enrollment = ` +
        `${enrollPerCpuSecond.toFixed(0)} enrollments per CPU-second ` +
        `(${attestation}; begin ${(enrollBeginMs / ENROLLMENTS).toFixed(2)} ms of server time on average); ` +
        `${(ENROLLMENTS / (enrollTimes.reduce((a, b) => a + b, 0) / 1000)).toFixed(0)} per second of server time`,
    );
    // The issue sets no figure for enrollment ("likewise measured"): it is judged like device
    // authentication, against the crypto it cannot do without, probed now.
    const gEnroll = goal('enrollment ÷ its crypto limit', enrollPerCpuSecond / enrollLimit, {
      min: 2000 / 4700,
    });
    goals.push(gEnroll);
    console.log(
      `   goal, against its crypto limit (2 P-256 verifies + an RSA-2048 OAEP encryption alone: ` +
        `${enrollLimit.toFixed(0)}/s; the issue sets no figure, judged as device authentication): ${gEnroll.text}`,
    );
    views.close();
    await audit.close();
    await backend.close();
  } finally {
    await sw.stop();
    await w.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

await main();
console.log(`\n${verdict('bench:devicetrust', goals)}`);
