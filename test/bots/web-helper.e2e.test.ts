/**
 * Issue 17: `required-for-humans` for a person in the Web UI, with real parts — a `warden start`
 * whose cluster is at `required-for-humans`, a machine with its own swtpm (enrolled with `wsh
 * device enroll`), the built wsh, and Chromium. `wsh login` decides that this person's Web UI
 * sessions need a trusted device and starts `wsh device web-helper` itself; the signed-in page
 * goes to "This device", and "Trust this device" makes the web session device-trusted through
 * that helper; `wsh logout` stops it. The helper listens on a free port
 * (WARDEN_WEB_HELPER_PORTS, given to the proxy and to wsh alike, as test/web does), so parallel
 * runs cannot collide. The decision's negative side (`optional`: no helper started) is in
 * bots.e2e.test.ts.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { web } from '@warden/api';
import {
  freePort,
  launchChromium,
  newBrowserContext,
  requireChromium,
  requireSwtpm,
  runCli,
  type WardenProcess,
} from '@warden/testkit';
import type { Browser } from 'playwright-core';
import { DeviceFleet, PASSWORD } from '../support/device-fleet';

const chromium = requireChromium();
const skip = chromium.skip || requireSwtpm().skip;

test('WARDEN_WEB_HELPER_PORTS: the default range, a list, and a clear error for anything else', () => {
  assert.deepEqual(web.webHelperPorts({}), [41780, 41781, 41782, 41783]);
  assert.deepEqual(web.webHelperPorts({ WARDEN_WEB_HELPER_PORTS: ' 50123, 50124 ' }), [50123, 50124]);
  for (const bad of ['0', '65536', 'http', '41780,', '1.5'])
    assert.throws(
      () => web.webHelperPorts({ WARDEN_WEB_HELPER_PORTS: bad }),
      (e: Error & { code?: string }) =>
        e.code === 'WARDEN_ERR_BAD_PARAMETER' && /WARDEN_WEB_HELPER_PORTS/.test(e.message),
      bad,
    );
});

describe('required-for-humans in the Web UI: wsh login starts the helper, the browser session becomes device-trusted', {
  skip,
}, () => {
  let w: WardenProcess;
  const fleet = new DeviceFleet();
  let browser: Browser;
  let env: NodeJS.ProcessEnv;
  let port = 0;
  let deviceId = '';
  const helperPids: number[] = [];
  const wctl = (args: string[]) => runCli('wctl', args, { env: w.env });
  const wsh = (args: string[], input?: string) => runCli('wsh', args, { env, ...(input ? { input } : {}) });

  before(async () => {
    port = await freePort();
    w = await fleet.start({
      env: { WARDEN_WEB_HELPER_PORTS: String(port) },
      deviceTrust: 'required-for-humans',
    });
    env = fleet.env(await fleet.machine('alice'), 'alice', { WARDEN_WEB_HELPER_PORTS: String(port) });
    await fleet.signUp('alice', env, { roles: 'access', logins: 'root' });
    // Enroll this machine's swtpm (the login before it starts no helper: WARDEN_WEB_HELPER=off).
    ({ deviceId } = await fleet.enroll(env));
    browser = await launchChromium();
  });

  after(async () => {
    // Only the helpers this test's `wsh login` started (it printed their pids).
    for (const pid of helperPids) {
      try {
        process.kill(pid, 'SIGTERM');
      } catch {
        // already stopped (wsh logout)
      }
    }
    await browser?.close();
    await fleet.stop();
  });

  test('wsh login starts the helper on the configured port; Trust this device proves the browser session; wsh logout stops it', async () => {
    const login = await fleet.login({ ...env, WARDEN_WEB_HELPER: 'auto' }, 'alice');
    assert.equal(login.code, 0, login.stderr);
    const started = new RegExp(
      `Device helper for the Web UI: started on 127\\.0\\.0\\.1:${port} \\(pid (\\d+);`,
    ).exec(login.stdout);
    assert.ok(started, `the login started the helper on ${port}:\n${login.stdout}${login.stderr}`);
    const pid = Number(started[1]);
    helperPids.push(pid);
    assert.equal(loginProfile(env).webDeviceTrustMode, 'required-for-humans');
    // The CLI login itself is device-trusted (the swtpm ceremony ran).
    const status = await wsh(['status', '--format=json']);
    assert.match(status.stdout, /"warden-device-id"/, status.stderr);

    // The page learns the same port from the proxy, and the helper proves the browser session.
    const ctx = await newBrowserContext(browser);
    try {
      const page = await ctx.newPage();
      await page.goto(`https://${w.proxy}/web/login`);
      const config = (await page.evaluate("fetch('/v1/web/config').then((r) => r.json())")) as {
        helper_ports: number[];
        device_trust_mode: string;
      };
      assert.deepEqual(config.helper_ports, [port]);
      assert.equal(config.device_trust_mode, 'required-for-humans');
      await page.fill('#user', 'alice');
      await page.fill('#password', PASSWORD);
      await page.click('button[type=submit]');
      // required-for-humans demands a device of a person: "This device" comes first.
      await page.waitForSelector('#page-device #trust-device');
      assert.match((await page.textContent('#device-state'))!, /not device-trusted/);
      await page.click('#trust-device');
      await page.waitForSelector('#device-id', { timeout: 90_000 });
      assert.equal(await page.textContent('#device-id'), deviceId);
      assert.match((await page.textContent('#whoami'))!, /alice · ✓ trusted device/);
      const session = (await page.evaluate("fetch('/v1/web/session').then((r) => r.json())")) as {
        device?: { id: string };
      };
      assert.equal(session.device?.id, deviceId);
    } finally {
      await ctx.close();
    }
    const events = JSON.parse(
      (await wctl(['audit', 'search', '--type=device.web_authenticate', '--format=json'])).stdout,
    ) as { success: boolean; device_id?: string; user?: string }[];
    assert.ok(
      events.some((e) => e.success && e.device_id === deviceId && e.user === 'alice'),
      JSON.stringify(events),
    );

    // A second login finds the running helper instead of starting another one.
    const again = await fleet.login({ ...env, WARDEN_WEB_HELPER: 'auto' }, 'alice');
    assert.equal(again.code, 0, again.stderr);
    assert.match(
      again.stdout,
      new RegExp(`Device helper for the Web UI: running on 127\\.0\\.0\\.1:${port}\\.`),
    );

    // wsh logout: the helper notices (it checks every 2 s) and stops.
    const logout = await wsh(['logout']);
    assert.equal(logout.code, 0, logout.stderr);
    const end = Date.now() + 15_000;
    while (alive(pid) && Date.now() < end) await new Promise((r) => setTimeout(r, 100));
    assert.equal(alive(pid), false, 'the helper stopped at wsh logout');
  });
});

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The `wsh login` profile in a WARDEN_HOME (one proxy). */
function loginProfile(env: NodeJS.ProcessEnv): { webDeviceTrustMode?: string } {
  const dir = join(env.WARDEN_HOME!, 'profiles');
  const [name] = readdirSync(dir);
  return JSON.parse(readFileSync(join(dir, name!, 'profile.json'), 'utf8')) as {
    webDeviceTrustMode?: string;
  };
}
