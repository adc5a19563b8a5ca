/**
 * The Web UI in a real Chromium (playwright-core driving Debian's chromium) against a real
 * `warden start`: security headers and CSP (an injected inline script does not run), sign-up
 * from the invite link, sign-in with TOTP (wrong code refused), the session cookie's
 * attributes, the resource list and its search, editor pages (locks created and removed in
 * the page), CSRF defence, sign-out, and a lock that ends a web session at its next request —
 * each outcome checked in the audit log. Screenshots of every page go to .tmp/screenshots/.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  Authenticator,
  launchChromium,
  newBrowserContext,
  requireChromium,
  runCli,
  screenshot,
  startWarden,
  type WardenProcess,
} from '@warden/testkit';
import type { Browser, BrowserContext, Page } from 'playwright-core';

const PASSWORD = 'correct horse battery staple';
const chromium = requireChromium();

describe('Web UI in Chromium', { skip: chromium.skip }, () => {
  let w: WardenProcess;
  let browser: Browser;
  let base: string;
  const otps = new Map<string, Authenticator>();
  const wctl = (args: string[]) => runCli('wctl', args, { env: w.env });

  async function audit(type: string, user?: string) {
    const r = await wctl([
      'audit',
      'search',
      `--type=${type}`,
      ...(user ? [`--user=${user}`] : []),
      '--format=json',
    ]);
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout) as Record<string, unknown>[];
  }

  /** Adds a user and signs them up in the browser with the invite link `wctl users add` prints. */
  async function signUpInBrowser(ctx: BrowserContext, user: string, roles: string, shot?: string) {
    const add = await wctl(['users', 'add', user, `--roles=${roles}`, '--logins=root']);
    assert.equal(add.code, 0, add.stderr);
    const url = /https:\/\/\S+\/web\/signup#token=\S+/.exec(add.stdout)?.[0];
    assert.ok(url, `wctl users add prints the sign-up link:\n${add.stdout}`);
    assert.match(add.stdout, /wsh signup --proxy=/, 'next to the wsh signup command');
    const page = await ctx.newPage();
    await page.goto(url);
    assert.equal(await page.textContent('#signup-user'), user);
    const uri = (await page.textContent('#totp-uri'))!;
    const otp = new Authenticator(uri);
    otps.set(user, otp);
    await page.fill('#password', PASSWORD);
    await page.fill('#password2', PASSWORD);
    await page.fill('#otp', await otp.code());
    if (shot) await screenshot(page, shot);
    await page.click('button[type=submit]');
    await page.waitForSelector('#page-login .msg.ok');
    assert.match((await page.textContent('#page-login .msg.ok'))!, new RegExp(`Welcome, ${user}`));
    await page.close();
  }

  /** Turns `device_trust.bind_owner` on or off, keeping the rest of the cluster auth preference. */
  async function setBindOwner(on: boolean): Promise<void> {
    const got = await wctl(['get', 'cluster_auth_preference', '--format=json']);
    assert.equal(got.code, 0, got.stderr);
    const parsed = JSON.parse(got.stdout) as unknown;
    const cap = (Array.isArray(parsed) ? parsed[0] : parsed) as {
      spec: { device_trust?: Record<string, unknown> };
    };
    cap.spec.device_trust = { ...cap.spec.device_trust, bind_owner: on };
    const file = join(w.dir, 'cap-bind-owner.json');
    writeFileSync(file, JSON.stringify(cap));
    const set = await wctl(['create', '-f', file]);
    assert.equal(set.code, 0, set.stderr);
  }

  async function signIn(page: Page, user: string, otp?: string): Promise<void> {
    await page.goto(`${base}/web/login`);
    await page.fill('#user', user);
    await page.fill('#password', PASSWORD);
    await page.fill('#otp', otp ?? (await otps.get(user)!.code()));
    await page.click('button[type=submit]');
  }

  before(async () => {
    w = await startWarden({ nodeName: 'node-1' });
    base = `https://${w.proxy}`;
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
    await w?.stop();
  });

  test('/ redirects to /web/; every page has a strict CSP and may not be framed', async () => {
    const ctx = await newBrowserContext(browser);
    const res = await ctx.request.get(`${base}/`, { maxRedirects: 0 });
    assert.equal(res.status(), 302);
    assert.equal(res.headers().location, '/web/');
    const page = await ctx.newPage();
    const doc = await page.goto(`${base}/web/`);
    const h = doc!.headers();
    assert.match(h['content-security-policy']!, /default-src 'none'/);
    assert.match(h['content-security-policy']!, /script-src 'self'(;|$)/);
    assert.doesNotMatch(h['content-security-policy']!, /unsafe-inline|unsafe-eval/);
    assert.match(h['content-security-policy']!, /frame-ancestors 'none'/);
    assert.equal(h['x-frame-options'], 'DENY');
    assert.equal(h['x-content-type-options'], 'nosniff');
    // Not signed in: the sign-in page.
    await page.waitForSelector('#page-login');
    assert.equal(new URL(page.url()).pathname, '/web/login');
    await screenshot(page, '01-sign-in');
    await ctx.close();
  });

  test('CSP blocks an injected inline script (and an inline event handler)', async () => {
    const ctx = await newBrowserContext(browser);
    const page = await ctx.newPage();
    await page.goto(`${base}/web/login`);
    await page.waitForSelector('#page-login');
    // Runs in the page (a string: this file is type-checked without the DOM library).
    const violations = (await page.evaluate(`(async () => {
      const seen = [];
      document.addEventListener('securitypolicyviolation', (e) => seen.push(e.violatedDirective));
      const s = document.createElement('script');
      s.textContent = 'window.__injected = true;';
      document.body.appendChild(s);
      const img = document.createElement('img');
      img.setAttribute('onerror', 'window.__handler = true');
      img.src = 'data:,x';
      document.body.appendChild(img);
      await new Promise((r) => setTimeout(r, 200));
      return { seen, injected: window.__injected, handler: window.__handler };
    })()`)) as { seen: string[]; injected?: boolean; handler?: boolean };
    assert.equal(violations.injected, undefined, 'the inline script did not run');
    assert.equal(violations.handler, undefined, 'the inline handler did not run');
    assert.ok(
      violations.seen.some((d) => d.startsWith('script-src')),
      `violations: ${violations.seen}`,
    );
    await ctx.close();
  });

  test('sign-up from the invite link, then sign-in with TOTP; a wrong code is refused and audited', async () => {
    const ctx = await newBrowserContext(browser);
    await signUpInBrowser(ctx, 'alice', 'access,editor', '02-sign-up');
    const page = await ctx.newPage();
    await signIn(page, 'alice', '000000');
    await page.waitForSelector('#page-login .msg.error');
    assert.match(
      (await page.textContent('#page-login .msg.error'))!,
      /invalid user name, password or OTP code/,
    );
    await signIn(page, 'alice');
    await page.waitForSelector('#page-resources');
    assert.match((await page.textContent('#whoami'))!, /alice · device not trusted/);
    // The cookie: HttpOnly, Secure, SameSite=Strict, host-only.
    const cookies = await ctx.cookies(base);
    const c = cookies.find((x) => x.name === '__Host-warden_web');
    assert.ok(c, 'session cookie set');
    assert.equal(c.httpOnly, true);
    assert.equal(c.secure, true);
    assert.equal(c.sameSite, 'Strict');
    assert.equal(c.path, '/');
    assert.equal(await page.evaluate('document.cookie'), '', 'scripts cannot read it');
    const logins = await audit('user.login', 'alice');
    assert.ok(
      logins.some((e) => e.success === false && e.method === 'web'),
      'failure audited',
    );
    assert.ok(
      logins.some((e) => e.success === true && e.method === 'web'),
      'sign-in audited',
    );
    await ctx.close();
  });

  // Each test signs in as its own user: one TOTP step per sign-in, no waiting for the next one.
  test('resources: the node the user may reach, with labels; the search box filters', async () => {
    const ctx = await newBrowserContext(browser);
    await signUpInBrowser(ctx, 'carol', 'access,editor');
    const page = await ctx.newPage();
    await signIn(page, 'carol');
    await page.waitForSelector('#page-resources tr[data-name="node-1"]');
    const row = (await page.textContent('tr[data-name="node-1"]'))!;
    assert.match(row, /env=test/);
    assert.match(row, /wsh ssh root@node-1/);
    await screenshot(page, '03-resources');
    await page.fill('#search', 'env=test');
    assert.equal(await page.locator('tr[data-name="node-1"]').count(), 1);
    await page.fill('#search', 'no-such-thing');
    await page.waitForSelector('#empty');
    assert.equal(await page.locator('tr[data-name="node-1"]').count(), 0);
    // "This device": not trusted, and why/how.
    await page.click('a[href="/web/device"]');
    await page.waitForSelector('#device-state');
    assert.match((await page.textContent('#device-state'))!, /not device-trusted/);
    assert.match((await page.textContent('#page-device'))!, /wsh device web-helper/);
    await screenshot(page, '04-this-device');
    // Devices: the owner of each, and whether the owner binding is on.
    const csv = join(w.dir, 'devices.csv');
    writeFileSync(csv, 'asset_tag,os,owner\nLAPTOP-CAROL,linux,carol\nLAPTOP-SPARE,linux,\n');
    const imported = await wctl(['devices', 'import', csv]);
    assert.equal(imported.code, 0, imported.stderr);
    await page.click('a[href="/web/devices"]');
    await page.waitForSelector('#page-devices tr[data-device="LAPTOP-CAROL"]');
    assert.equal(await page.textContent('tr[data-device="LAPTOP-CAROL"] td.owner'), 'carol');
    assert.equal(await page.textContent('tr[data-device="LAPTOP-SPARE"] td.owner'), 'none');
    assert.match((await page.textContent('#owner-binding'))!, /Owner binding is off/);
    await setBindOwner(true);
    try {
      await page.reload();
      await page.waitForSelector('#page-devices #owner-binding');
      assert.match(
        (await page.textContent('#owner-binding'))!,
        /Owner binding is on \(device_trust\.bind_owner\): a device authenticates only for its owner/,
      );
    } finally {
      await setBindOwner(false);
    }
    // Editor pages.
    for (const [name, shot] of [
      ['devices', '05-devices'],
      ['users', '07-users'],
      ['roles', '08-roles'],
    ] as const) {
      await page.click(`a[href="/web/${name}"]`);
      await page.waitForSelector(`#page-${name} h1`);
      await screenshot(page, shot);
    }
    assert.match((await page.textContent('#page-roles'))!, /require-trusted-device/);
    await page.click('#page-roles summary >> text=editor');
    assert.match((await page.textContent('#page-roles'))!, /kind: role/);
    // Locks: create one in the page, see it, remove it.
    await page.click('a[href="/web/locks"]');
    await page.waitForSelector('#page-locks h1');
    await page.selectOption('#lock-kind', 'user');
    await page.fill('#lock-target', 'nobody');
    await page.fill('#lock-message', 'web ui test');
    await page.click('#lock-create');
    await page.waitForSelector('#page-locks .msg.ok');
    // The flash shows at once; the list follows when its request answers.
    const lockRow = page.locator('tr[data-lock]', { hasText: 'user=nobody' });
    await page.waitForSelector('#page-locks table');
    assert.equal(await lockRow.count(), 1);
    await screenshot(page, '06-locks');
    await lockRow.locator('button').click();
    await page.waitForSelector('#page-locks >> text=No locks in force.');
    const created = await audit('lock.created', 'carol');
    assert.ok(created.some((e) => e.message === 'web ui test'));
    assert.ok((await audit('lock.deleted', 'carol')).length >= 1);
    // Audit log: filters and the detail view.
    await page.click('a[href="/web/audit"]');
    await page.waitForSelector('#page-audit table');
    await page.fill('#audit-type', 'lock.created');
    await page.fill('#audit-user', 'carol');
    await page.click('#audit-search');
    // Polled from here: a string predicate would be eval'd in the page, which the CSP forbids.
    for (let i = 0; i < 100; i++) {
      const rows = await page.locator('#page-audit tbody tr').allTextContents();
      if (rows.length > 0 && rows.every((r) => r.includes('lock.created'))) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(
      (await page.locator('#page-audit tbody tr').allTextContents()).every((r) => r.includes('lock.created')),
    );
    await page.click('#page-audit tbody tr');
    await page.waitForSelector('#audit-detail');
    assert.match((await page.textContent('#audit-detail'))!, /"message": "web ui test"/);
    await screenshot(page, '09-audit');
    await ctx.close();
  });

  test('CSRF: a state-changing request without the token, or from another origin, is refused', async () => {
    const ctx = await newBrowserContext(browser);
    await signUpInBrowser(ctx, 'dave', 'access,editor');
    const page = await ctx.newPage();
    await signIn(page, 'dave');
    await page.waitForSelector('#page-resources');
    const body = { target: { user: 'mallory' } };
    const noToken = await ctx.request.post(`${base}/v1/web/locks`, {
      data: body,
      headers: { origin: base, 'x-warden-csrf': 'wrong' },
    });
    assert.equal(noToken.status(), 403);
    assert.match((await noToken.json()).error.message, /CSRF token/);
    const csrf = (await page.evaluate(
      "fetch('/v1/web/session').then((r) => r.json()).then((s) => s.csrf_token)",
    )) as string;
    const foreign = await ctx.request.post(`${base}/v1/web/locks`, {
      data: body,
      headers: { origin: 'https://evil.example', 'x-warden-csrf': csrf },
    });
    assert.equal(foreign.status(), 403);
    assert.match((await foreign.json()).error.message, /Origin/);
    const ok = await ctx.request.post(`${base}/v1/web/locks`, {
      data: { ...body, ttl_ms: 60_000 },
      headers: { origin: base, 'x-warden-csrf': csrf },
    });
    assert.equal(ok.status(), 200, await ok.text());
    await ctx.close();
  });

  test('sign-out ends the session server side; a lock on the user ends it at the next request', async () => {
    const ctx = await newBrowserContext(browser);
    await signUpInBrowser(ctx, 'bob', 'access');
    const page = await ctx.newPage();
    await signIn(page, 'bob');
    await page.waitForSelector('#page-resources');
    // Not an editor: no editor pages.
    assert.equal(await page.locator('a[href="/web/locks"]').count(), 0);
    const cookie = (await ctx.cookies(base)).find((c) => c.name === '__Host-warden_web')!;
    await page.click('#sign-out');
    await page.waitForSelector('#page-login .msg.ok');
    // The old cookie opens nothing any more.
    const replay = await ctx.request.get(`${base}/v1/web/session`, {
      headers: { cookie: `${cookie.name}=${cookie.value}` },
    });
    assert.equal(replay.status(), 401);
    const ends = await audit('web.session.end', 'bob');
    assert.ok(ends.some((e) => e.reason === 'sign-out'));

    await signUpInBrowser(ctx, 'erin', 'access');
    await signIn(page, 'erin');
    await page.waitForSelector('#page-resources');
    const lock = await wctl(['lock', '--user=erin', '--message=offboarding', '--ttl=1h']);
    assert.equal(lock.code, 0, lock.stderr);
    // The lock reaches the proxy's watch-fed view; the next request ends the session.
    let status = 0;
    for (let i = 0; i < 50 && status !== 403; i++) {
      const r = await ctx.request.get(`${base}/v1/web/resources`);
      status = r.status();
      if (status === 403)
        assert.match((await r.json()).error.message, /offboarding; your web session was ended/);
      else await new Promise((res) => setTimeout(res, 100));
    }
    assert.equal(status, 403);
    assert.equal((await ctx.request.get(`${base}/v1/web/session`)).status(), 401, 'the session is gone');
    assert.ok((await audit('web.session.end', 'erin')).some((e) => String(e.reason).startsWith('locked: ')));
    await ctx.close();
  });
});
