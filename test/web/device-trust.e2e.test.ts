/**
 * Browser device trust end to end, with real parts: a `warden start` whose cluster requires a
 * trusted device, a machine with its own swtpm (enrolled with `wsh device enroll`), the built
 * `wsh device web-helper`, and Chromium signed in to the Web UI.
 *
 *   no helper: the page says the helper is not running (and offers the wsh:// link);
 *   helper running: "Trust this device" makes the web session device-trusted (from the server);
 *   the helper refuses foreign origins, a wrong Host (DNS rebinding) and a missing custom header;
 *   a replayed challenge and a challenge of another browser session are refused;
 *   the wsh:// link (`wsh device web-auth`) does the same as the helper;
 *   a device lock ends the trusted web session at its next request.
 * The expiry of a challenge is tested with a fake clock in packages/server/src/web/web.test.ts.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  freePort,
  type HttpApp,
  launchChromium,
  newBrowserContext,
  type RunningCli,
  requireChromium,
  requireSwtpm,
  runCli,
  screenshot,
  setDeviceTrust,
  spawnCli,
  startHttpApp,
  type WardenProcess,
} from '@warden/testkit';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { DeviceFleet, PASSWORD } from '../support/device-fleet';

const chromium = requireChromium();
const skip = chromium.skip || requireSwtpm().skip;

describe('browser device trust (Chromium, swtpm, wsh device web-helper)', { skip }, () => {
  let w: WardenProcess;
  let app: HttpApp;
  let appBase = '';
  const fleet = new DeviceFleet();
  let browser: Browser;
  let base: string;
  let env: NodeJS.ProcessEnv;
  let deviceId = '';
  let helper: RunningCli | undefined;
  /** A free port (WARDEN_WEB_HELPER_PORTS, for the proxy and wsh alike): parallel runs cannot collide. */
  let helperPort = 0;

  const wctl = (args: string[]) => runCli('wctl', args, { env: w.env });
  const wsh = (args: string[], input?: string) => runCli('wsh', args, { env, input });

  async function audit(type: string) {
    const r = await wctl(['audit', 'search', `--type=${type}`, '--format=json']);
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout) as Record<string, unknown>[];
  }

  async function startHelper(): Promise<void> {
    helper = spawnCli('wsh', ['device', 'web-helper'], { env });
    for (let i = 0; i < 100 && !/listening on 127\.0\.0\.1:(\d+)/.test(helper.stdout()); i++)
      await new Promise((r) => setTimeout(r, 50));
    const m = /listening on 127\.0\.0\.1:(\d+)/.exec(helper.stdout());
    assert.ok(m, `the helper started:\n${helper.stdout()}${helper.stderr()}`);
    assert.equal(Number(m[1]), helperPort, 'first port of the range');
  }
  async function stopHelper(): Promise<void> {
    if (!helper) return;
    helper.child.kill('SIGTERM');
    await helper.exited;
    helper = undefined;
  }

  async function signIn(ctx: BrowserContext, origin = base): Promise<Page> {
    const page = await ctx.newPage();
    await page.goto(`${origin}/web/login`);
    await page.fill('#user', 'alice');
    await page.fill('#password', PASSWORD);
    await page.click('button[type=submit]');
    // Device trust is required: the page goes to "This device" first.
    await page.waitForSelector('#page-device #trust-device');
    return page;
  }

  /** Sends to the helper as a page (or an attacker) would; node:http, so any Host header goes out. */
  function toHelper(opts: {
    origin?: string;
    host?: string;
    header?: boolean;
    body?: unknown;
    method?: string;
  }): Promise<{
    status: number;
    headers: Record<string, unknown>;
    json: () => { error?: { message: string } };
  }> {
    return new Promise((resolve, reject) => {
      const data = opts.method === 'OPTIONS' ? '' : JSON.stringify(opts.body ?? {});
      const req = request(
        {
          host: '127.0.0.1',
          port: helperPort,
          path: '/v1/prove',
          method: opts.method ?? 'POST',
          headers: {
            host: opts.host ?? `127.0.0.1:${helperPort}`,
            'content-type': 'application/json',
            'content-length': Buffer.byteLength(data),
            ...(opts.origin ? { origin: opts.origin } : {}),
            ...(opts.header === false ? {} : { 'x-warden-helper': '1' }),
            ...(opts.method === 'OPTIONS'
              ? {
                  'access-control-request-method': 'POST',
                  'access-control-request-headers': 'content-type,x-warden-helper',
                }
              : {}),
          },
        },
        (res) => {
          let text = '';
          res.on('data', (c) => {
            text += c;
          });
          res.on('end', () =>
            resolve({
              status: res.statusCode ?? 0,
              headers: res.headers,
              json: () => (text ? JSON.parse(text) : {}),
            }),
          );
        },
      );
      req.on('error', reject);
      req.end(data);
    });
  }

  before(async () => {
    app = await startHttpApp();
    helperPort = await freePort();
    // An app whose role requires a trusted device (apps follow roles, not the cluster mode).
    w = await fleet.start({
      nodeName: 'node-1',
      env: { WARDEN_WEB_HELPER_PORTS: String(helperPort) },
      configYaml:
        `app_service:\n  apps:\n    - name: prod\n      uri: ${app.url}\n      labels: { env: production }\n` +
        `    - name: dev\n      uri: ${app.url}\n      labels: { env: dev }\n`,
    });
    base = `https://${w.proxy}`;
    appBase = `https://prod.localhost:${w.proxy.split(':')[1]}`;
    const role = join(w.dir, 'require-trusted-device-apps.yaml');
    writeFileSync(
      role,
      'kind: role\nversion: v7\nmetadata:\n  name: require-trusted-device-apps\nspec:\n  options:\n    device_trust_mode: "required"\n  allow:\n    app_labels:\n      env: production\n',
    );
    assert.equal((await wctl(['create', role])).code, 0);
    await setDeviceTrust(w, 'optional');
    env = fleet.env(await fleet.machine('alice'), 'alice', {
      WARDEN_WEB_HELPER_PORTS: String(helperPort),
      XDG_CONFIG_HOME: join(w.dir, 'xdg-config'),
      XDG_DATA_HOME: join(w.dir, 'xdg-data'),
    });
    await fleet.signUp('alice', env, { roles: 'access,editor,require-trusted-device-apps', logins: 'root' });
    const l = await fleet.login(env, 'alice');
    assert.equal(l.code, 0, l.stderr);
    ({ deviceId } = await fleet.enroll(env));
    await setDeviceTrust(w, 'required');
    browser = await launchChromium();
  });
  after(async () => {
    await stopHelper();
    await browser?.close();
    await fleet.stop();
    await app?.close();
  });

  test('without the helper: not trusted, and the page says the helper is not running', async () => {
    const ctx = await newBrowserContext(browser);
    const page = await signIn(ctx);
    assert.match((await page.textContent('#device-state'))!, /not device-trusted/);
    assert.match((await page.textContent('#page-device'))!, /require a trusted device/);
    await page.click('#trust-device');
    await page.waitForSelector('#device-status .msg.error');
    assert.match((await page.textContent('#device-status'))!, /device helper is not running/);
    assert.match((await page.getAttribute('#wsh-link', 'href'))!, /^wsh:\/\/device-trust\?proxy=/);
    await screenshot(page, '10-device-helper-not-running');
    const s = await page.evaluate("fetch('/v1/web/session').then((r) => r.json())");
    assert.equal((s as { device?: unknown }).device, undefined);
    // Launching the app that requires a trusted device: the 403 page, with a link to "This device".
    await page.click('a[href="/web/resources"]');
    await page.click('button[data-app="prod"]');
    await page.waitForURL(`${appBase}/`);
    assert.equal(await page.textContent('h1'), 'Access to this app requires a trusted device.');
    assert.equal(await page.getAttribute('#help-link', 'href'), `https://${w.proxy}/web/device`);
    await screenshot(page, '13-app-refused-untrusted');
    assert.equal(app.seen.length, 0, 'nothing reached the app');
    await ctx.close();
  });

  test('with the helper: the enrolled swtpm device makes the web session device-trusted', async () => {
    await startHelper();
    const ctx = await newBrowserContext(browser);
    const page = await signIn(ctx);
    // An app that needs no trusted device, opened before the device is proved: its JWT has no device.
    const devBase = `https://dev.localhost:${w.proxy.split(':')[1]}`;
    const jwtClaims = async () => {
      await page.goto(`${devBase}/headers`);
      const seen = JSON.parse((await page.textContent('body'))!) as { headers: Record<string, string> };
      const jwt = seen.headers['warden-jwt-assertion']!;
      return JSON.stringify(JSON.parse(Buffer.from(jwt.split('.')[1]!, 'base64url').toString()));
    };
    await page.click('a[href="/web/resources"]');
    await page.click('button[data-app="dev"]');
    await page.waitForURL(`${devBase}/`);
    assert.doesNotMatch(await jwtClaims(), new RegExp(deviceId));
    await page.goto(`${base}/web/device`);
    await page.waitForSelector('#page-device #trust-device');
    const posted: string[] = [];
    page.on('request', (r) => {
      if (r.url().startsWith(`http://127.0.0.1:${helperPort}/`) && r.method() === 'POST')
        posted.push(r.postData()!);
    });
    await page.click('#trust-device');
    await page.waitForSelector('#device-id', { timeout: 90_000 });
    assert.equal(await page.textContent('#device-id'), deviceId);
    assert.match((await page.textContent('#whoami'))!, /alice · ✓ trusted device/);
    await screenshot(page, '11-device-trusted');
    const events = await audit('device.web_authenticate');
    assert.ok(events.some((e) => e.success === true && e.device_id === deviceId));
    // The app now opens from this browser session, and its JWT carries the session's device.
    await page.click('a[href="/web/resources"]');
    await page.click('button[data-app="prod"]');
    await page.waitForURL(`${appBase}/`);
    assert.equal(await page.textContent('h1'), 'hello from the test app');
    await screenshot(page, '14-app-launched-trusted');
    await page.goto(`${appBase}/headers`);
    const seen = JSON.parse((await page.textContent('body'))!) as { headers: Record<string, string> };
    const jwt = seen.headers['warden-jwt-assertion']!;
    const claims = JSON.parse(Buffer.from(jwt.split('.')[1]!, 'base64url').toString()) as Record<
      string,
      unknown
    >;
    assert.equal(claims.sub ?? claims.username, 'alice');
    assert.match(JSON.stringify(claims), new RegExp(deviceId));
    // The app session opened before the device was proved now speaks for the trusted session.
    assert.match(await jwtClaims(), new RegExp(deviceId));
    const replaced = await audit('app.session.end');
    assert.ok(replaced.some((e) => e.terminated_by === 'the web session became device-trusted'));

    // The same challenge again (replayed to the helper, as a page could): refused by the server.
    assert.equal(posted.length, 1);
    const replay = await toHelper({ origin: base, body: JSON.parse(posted[0]!) });
    assert.equal(replay.status, 401);
    assert.match(replay.json().error!.message, /expired or was already used/);

    // A second browser session cannot read the first one's challenge.
    const id = (JSON.parse(posted[0]!) as { challenge_id: string }).challenge_id;
    const other = await newBrowserContext(browser);
    const otherPage = await signIn(other);
    const st = await otherPage.evaluate(`fetch('/v1/web/device/challenge/${id}').then((r) => r.json())`);
    assert.equal((st as { state: string }).state, 'expired');
    await other.close();
    await ctx.close();
  });

  test('the helper refuses foreign origins, a rebound Host and requests without the custom header', async () => {
    assert.ok(helper, 'running');
    const body = { proxy: w.proxy, challenge_id: 'x', challenge_secret: 'y' };
    const evil = await toHelper({ origin: 'https://evil.example', body });
    assert.equal(evil.status, 403);
    assert.equal(evil.headers['access-control-allow-origin'], undefined);
    const pre = await toHelper({ origin: 'https://evil.example', method: 'OPTIONS' });
    assert.equal(pre.status, 403);
    assert.equal(pre.headers['access-control-allow-origin'], undefined);
    // The page's own origin gets its preflight answered, for exactly that origin.
    const ok = await toHelper({ origin: base, method: 'OPTIONS' });
    assert.equal(ok.status, 204);
    assert.equal(ok.headers['access-control-allow-origin'], base);
    const rebound = await toHelper({ origin: base, host: `evil.example:${helperPort}`, body });
    assert.equal(rebound.status, 421);
    const simple = await toHelper({ origin: base, header: false, body });
    assert.equal(simple.status, 403);
    const otherProxy = await toHelper({ origin: base, body: { ...body, proxy: 'evil.example:443' } });
    assert.equal(otherProxy.status, 403);

    // In the browser: the same Web UI reached under another name (another origin) is refused
    // by the helper's CORS checks, so the session stays untrusted.
    const ctx = await newBrowserContext(browser);
    const page = await signIn(ctx, base.replace('127.0.0.1', 'localhost'));
    await page.click('#trust-device');
    await page.waitForSelector('#device-status .msg.error');
    assert.match(helper!.stderr(), /refused OPTIONS from origin https:\/\/localhost:/);
    const s = await page.evaluate("fetch('/v1/web/session').then((r) => r.json())");
    assert.equal((s as { device?: unknown }).device, undefined);
    await ctx.close();
  });

  test('the wsh:// link fallback (wsh device web-auth) trusts the session too', async () => {
    await stopHelper();
    const ctx = await newBrowserContext(browser);
    const page = await signIn(ctx);
    await page.click('#trust-device');
    await page.waitForSelector('#wsh-link');
    const link = (await page.getAttribute('#wsh-link', 'href'))!;
    const r = await wsh(['device', 'web-auth', link]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /proved for alice's browser session/);
    await page.waitForSelector('#device-id', { timeout: 90_000 });
    assert.equal(await page.textContent('#device-id'), deviceId);
    // Spent: the link works once.
    const again = await wsh(['device', 'web-auth', link]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /expired or was already used/);
    await ctx.close();
  });

  test('--install writes the systemd user unit and the wsh:// handler', async () => {
    const r = await wsh(['device', 'web-helper', '--install']);
    assert.equal(r.code, 0, r.stderr);
    const unit = readFileSync(join(env.XDG_CONFIG_HOME!, 'systemd/user/wsh-web-helper.service'), 'utf8');
    assert.match(unit, /^ExecStart=.* device web-helper$/m);
    assert.match(unit, /^WantedBy=default.target$/m);
    const desktop = readFileSync(join(env.XDG_DATA_HOME!, 'applications/wsh-device-trust.desktop'), 'utf8');
    assert.match(desktop, /^MimeType=x-scheme-handler\/wsh;$/m);
    assert.match(desktop, /^Exec=.* device web-auth %u$/m);
  });

  test('wsh login starts the device helper on demand (once); it stops at wsh logout', async () => {
    await stopHelper();
    // The testkit turns the automatic start off (WARDEN_WEB_HELPER=off); this test turns it on.
    const auto = { ...env, WARDEN_WEB_HELPER: 'auto' };
    const login = (e: NodeJS.ProcessEnv, extra: string[] = []) => fleet.login(e, 'alice', extra);
    const first = await login(auto);
    assert.equal(first.code, 0, first.stderr);
    const m = /Device helper for the Web UI: started on 127\.0\.0\.1:(\d+) \(pid (\d+)/.exec(first.stdout);
    assert.ok(m, `${first.stdout}${first.stderr}`);
    assert.equal(Number(m[1]), helperPort);
    const pid = Number(m[2]);
    const alive = () => {
      try {
        process.kill(pid, 0);
        return true;
      } catch {
        return false;
      }
    };
    try {
      // The browser proves the device through the helper wsh login started.
      const ctx = await newBrowserContext(browser);
      const page = await signIn(ctx);
      await page.click('#trust-device');
      const found = await page
        .waitForSelector('#device-id, #device-status .msg.error', { timeout: 90_000 })
        .then((e) => e.textContent());
      const log = join(env.WARDEN_HOME!, 'web-helper.log');
      assert.equal(
        found,
        deviceId,
        `${page.url()}: ${await page.textContent('body')}\nhelper log:\n${readFileSync(log, 'utf8')}\n` +
          JSON.stringify(await audit('web.session.end')),
      );
      await ctx.close();
      // Already running for this wsh home: not started twice.
      const second = await login(auto);
      assert.equal(second.code, 0, second.stderr);
      assert.match(
        second.stdout,
        new RegExp(`Device helper for the Web UI: running on 127\\.0\\.0\\.1:${helperPort}`),
      );
      // --web-helper=off: nothing about the helper.
      const off = await login(auto, ['--web-helper=off']);
      assert.equal(off.code, 0, off.stderr);
      assert.doesNotMatch(off.stdout, /Device helper/);
      // wsh logout: the helper it started stops by itself.
      assert.equal((await runCli('wsh', ['logout'], { env: auto })).code, 0);
      for (let i = 0; i < 200 && alive(); i++) await new Promise((r) => setTimeout(r, 50));
      assert.equal(alive(), false, 'the helper stopped after wsh logout');
    } finally {
      if (alive()) process.kill(pid, 'SIGTERM');
      const back = await login(env);
      assert.equal(back.code, 0, back.stderr);
    }
  });

  test('a device lock ends the device-trusted web session at its next request', async () => {
    await startHelper();
    const ctx = await newBrowserContext(browser);
    const page = await signIn(ctx);
    await page.click('#trust-device');
    await page.waitForSelector('#device-id', { timeout: 90_000 });
    const lock = await wctl(['lock', `--device=${deviceId}`, '--ttl=1h', '--message=laptop reported stolen']);
    assert.equal(lock.code, 0, lock.stderr);
    // At once: the session monitor ends the web session before the browser sends anything.
    let ended = false;
    for (let i = 0; i < 50 && !ended; i++) {
      ended = (await audit('web.session.end')).some((e) => String(e.reason).includes(`Device:"${deviceId}"`));
      if (!ended) await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(ended, 'web.session.end written when the lock arrived, without a request');
    let status = 0;
    for (let i = 0; i < 50 && status !== 403; i++) {
      const res = await ctx.request.get(`${base}/v1/web/resources`);
      status = res.status();
      if (status !== 403) await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(status, 403);
    await page.click('a[href="/web/resources"]');
    await page.waitForSelector('#page-login .msg.error');
    assert.match((await page.textContent('#page-login'))!, /not signed in|sign in again/);
    const ends = await audit('web.session.end');
    assert.ok(ends.some((e) => String(e.reason).includes(`Device:"${deviceId}"`)));
    // A new challenge for the locked device is refused with the lock's message.
    const again = await signIn(ctx);
    await again.click('#trust-device');
    await again.waitForSelector('#device-status .msg.error');
    assert.match((await again.textContent('#device-status'))!, /laptop reported stolen/);
    await screenshot(again, '12-device-locked');
    await ctx.close();
  });
});
