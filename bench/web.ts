/**
 * Benchmark: from sign-in to a device-trusted web session (browser device trust, DESIGN §7).
 * Prints, asserts nothing (numbers depend on the machine).
 *
 * Against a real `warden start` and an swtpm-backed machine enrolled with `wsh device enroll`:
 *
 *   1. Web UI sign-in (POST /v1/web/login: password hash + session in the backend), alone.
 *   2. Sign-in → device-trusted session, the page's steps driven over HTTPS as the page would:
 *      a web device challenge, the POST to `wsh device web-helper` (the real helper code on a
 *      loopback port, in process), the helper's TPM ceremony over its own mTLS channel, and
 *      the status poll that tells the page "trusted". Split into the TPM's time (swtpm: load
 *      the AK, quote, PCRs) and Warden's own (everything else: HTTP, checks, verification).
 *   3. Baseline, same run: device authentication at `wsh login` (the same TPM ceremony with
 *      certificates as the answer), split the same way. The ratio compares Warden's own time.
 *
 * Goal: Warden's own part of step 2 ≤ 50 ms (median).
 *
 *   npm run bench:web -- [--n=N] [--profile=DIR]   (needs swtpm, swtpm_setup; --profile: warden's V8 CPU profile)
 */

import { mkdtempSync, rmSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import {
  type CeremonyTimings,
  establishTrust,
  login,
  ProfileStore,
  proveWebDevice,
  startWebHelper,
} from '@warden/client';
import {
  enrollMachine,
  freePort,
  inviteAndSignUp,
  setDeviceTrust,
  startMachine,
  startWarden,
} from '@warden/testkit';
import { timeDeviceLogins } from './device-login';

const PASSWORD = 'correct horse battery staple';
const { values } = parseArgs({
  options: { n: { type: 'string', default: '20' }, profile: { type: 'string' } },
});
const N = Number(values.n);

function median(ms: number[]): number {
  const s = [...ms].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}
function stats(ms: number[]): string {
  const s = [...ms].sort((a, b) => a - b);
  const p90 = s[Math.min(s.length - 1, Math.floor(0.9 * s.length))]!;
  return `median ${median(ms).toFixed(1)} ms, p90 ${p90.toFixed(1)} ms (n=${s.length})`;
}

interface Reply {
  status: number;
  body: Record<string, unknown>;
  cookie?: string;
}

async function main(): Promise<void> {
  const w = await startWarden({
    nodeName: 'node-1',
    ...(values.profile ? { nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${values.profile}`] } : {}),
  });
  const work = mkdtempSync(join(tmpdir(), 'warden-bench-web-'));
  const m = await startMachine(w, 'bench');
  try {
    const machine = { ...m.env, WARDEN_HOME: join(work, 'home') };
    await setDeviceTrust(w, 'required');
    await inviteAndSignUp(w, 'alice', { roles: 'access', logins: 'root', password: PASSWORD, env: machine });
    await enrollMachine(w, machine);

    // wsh logged in on the machine (a plain certificate: the helper's identity).
    const trust = await establishTrust({ proxy: w.proxy, caPin: w.caPin });
    const store = new ProfileStore(join(work, 'home-inproc'));
    // The profile the helper uses (in `store`).
    await login(
      store,
      { proxy: w.proxy, user: 'alice', caPin: w.caPin },
      { password: async () => PASSWORD, otp: async () => '' },
    );
    const origin = `https://${w.proxy}`;
    const [host, port] = [w.proxy.split(':')[0]!, Number(w.proxy.split(':')[1])];
    const call = (method: string, path: string, body?: unknown, session?: { cookie: string; csrf: string }) =>
      new Promise<Reply>((resolve, reject) => {
        const data = body === undefined ? '' : JSON.stringify(body);
        const req = httpsRequest(
          {
            host,
            port,
            path,
            method,
            ca: trust.hostCaPems,
            headers: {
              origin,
              'x-warden-csrf': session?.csrf ?? 'sign-in',
              ...(data
                ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) }
                : {}),
              ...(session ? { cookie: session.cookie } : {}),
            },
          },
          (res) => {
            let text = '';
            res.on('data', (c) => {
              text += c;
            });
            res.on('end', () => {
              const set = res.headers['set-cookie']?.[0];
              resolve({
                status: res.statusCode ?? 0,
                body: JSON.parse(text || '{}') as Record<string, unknown>,
                ...(set ? { cookie: set.split(';')[0]! } : {}),
              });
            });
          },
        );
        req.on('error', reject);
        req.end(data);
      });

    // The helper, in process on a free loopback port, timing each ceremony's TPM part.
    const ceremonyTimings: CeremonyTimings[] = [];
    const helperPort = await freePort();
    const helper = await startWebHelper({
      store,
      env: machine,
      ports: [helperPort],
      rateLimit: { burst: 1000, refillMs: 1 },
      prove: async (p, challenge) => {
        const r = await proveWebDevice(p, challenge, { env: machine });
        ceremonyTimings.push(r.timings);
        return r;
      },
    });
    const toHelper = (body: unknown) =>
      new Promise<number>((resolve, reject) => {
        const data = JSON.stringify(body);
        const req = httpRequest(
          {
            host: '127.0.0.1',
            port: helperPort,
            path: '/v1/prove',
            method: 'POST',
            headers: {
              origin,
              'x-warden-helper': '1',
              'content-type': 'application/json',
              'content-length': Buffer.byteLength(data),
            },
          },
          (res) => {
            res.resume();
            res.on('end', () => resolve(res.statusCode ?? 0));
          },
        );
        req.on('error', reject);
        req.end(data);
      });

    const signIns: number[] = [];
    const totals: number[] = [];
    const tpm: number[] = [];
    const own: number[] = [];
    for (let i = 0; i <= N; i++) {
      // 1. Sign-in.
      const t0 = performance.now();
      const signed = await call('POST', '/v1/web/login', { user: 'alice', password: PASSWORD });
      const t1 = performance.now();
      if (signed.status !== 200 || !signed.cookie)
        throw new Error(`sign-in failed: ${JSON.stringify(signed.body)}`);
      const session = { cookie: signed.cookie, csrf: String(signed.body.csrf_token) };
      // 2. Challenge → helper → TPM ceremony → the page polls the status.
      const ch = await call('POST', '/v1/web/device/challenge', {}, session);
      const before = ceremonyTimings.length;
      const helped = await toHelper({
        proxy: w.proxy,
        challenge_id: ch.body.id,
        challenge_secret: ch.body.secret,
      });
      if (helped !== 200) throw new Error(`the helper answered ${helped}`);
      const st = await call('GET', `/v1/web/device/challenge/${ch.body.id}`, undefined, session);
      if (st.body.state !== 'trusted') throw new Error(`not trusted: ${JSON.stringify(st.body)}`);
      const t2 = performance.now();
      if (i === 0) continue; // warm-up
      const device = ceremonyTimings[before]!.deviceMs;
      signIns.push(t1 - t0);
      totals.push(t2 - t1);
      tpm.push(device);
      own.push(t2 - t1 - device);
      await call('POST', '/v1/web/logout', {}, session);
    }
    await helper.close();

    // 3. Baseline: device authentication at wsh login (same TPM ceremony, certificates as the answer).
    const { totals: baseTotals, timings: baseSplit } = await timeDeviceLogins({
      store,
      proxy: w.proxy,
      caPin: w.caPin,
      hostCaPems: trust.hostCaPems,
      user: 'alice',
      password: PASSWORD,
      env: machine,
      n: N,
    });
    const baseOwn = baseTotals.map((t, i) => t - baseSplit[i]!.deviceMs);

    console.log(
      `load average: ${loadavg()
        .map((l) => l.toFixed(2))
        .join(' ')} (shared machine: see bench/README.md)`,
    );
    console.log('1. Web UI sign-in (password hash, session in the backend)');
    console.log(`   ${stats(signIns)}`);
    console.log('2. sign-in → device-trusted web session (challenge, helper, TPM ceremony, status)');
    console.log(`   total:                 ${stats(totals)}`);
    console.log(`   TPM (swtpm):           ${stats(tpm)}`);
    console.log(`   Warden's own:          ${stats(own)}   (goal: median ≤ 50 ms)`);
    console.log('3. baseline, same run: device authentication at wsh login');
    console.log(`   total:                 ${stats(baseTotals)}`);
    console.log(`   TPM (swtpm):           ${stats(baseSplit.map((t) => t.deviceMs))}`);
    console.log(`   Warden's own:          ${stats(baseOwn)}`);
    console.log(
      `   ratio, Warden's own (web / wsh login): ${(median(own) / median(baseOwn)).toFixed(2)}; ` +
        `goal met: ${median(own) <= 50 ? 'yes' : 'no'}`,
    );
  } finally {
    await m.tpm.stop();
    await w.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

await main();
