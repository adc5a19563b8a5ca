/**
 * Signup and login as a new user meets them (issue 16 items 3–5): the password rule stated
 * and checked before the second factor, signup that logs in, the hint for an OTP code used
 * twice, a remembered proxy and user, `https://` proxy URLs, and "connection refused" told
 * apart from "not trusted".
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  freePort,
  runCli,
  signupWithTotp,
  startWarden,
  totpFromUri,
  type WardenProcess,
} from '@warden/testkit';

const PASSWORD = 'correct horse battery staple';

describe('first hour: signup and login', () => {
  let w: WardenProcess;
  const env = (user: string) => ({ ...w.env, WARDEN_PROXY: '', WARDEN_HOME: join(w.dir, `home-${user}`) });
  const invite = async (user: string) => {
    const add = await runCli('wctl', ['users', 'add', user, '--roles=access', '--logins=root'], {
      env: w.env,
    });
    assert.equal(add.code, 0, add.stderr);
    return /--token=(\S+)/.exec(add.stdout)![1]!;
  };

  before(async () => {
    w = await startWarden();
  });
  after(async () => {
    await w?.stop();
  });

  test('the password rule is stated, and a short password is refused before the second factor; the invite still works', async () => {
    const token = await invite('carol');
    const short = await signupWithTotp(
      [`--proxy=${w.proxy}`, `--token=${token}`, `--ca-pin=${w.caPin}`],
      'short',
      env('carol'),
    );
    assert.equal(short.code, 1);
    assert.match(short.stderr, /Enter a new password \(at least 12 characters\)/);
    assert.match(short.stderr, /ERROR: the password must be at least 12 characters long/);
    assert.equal(short.uri, undefined, 'no QR code / otpauth URI before the password is acceptable');
    const ok = await signupWithTotp(
      [`--proxy=${w.proxy}`, `--token=${token}`, `--ca-pin=${w.caPin}`],
      PASSWORD,
      env('carol'),
    );
    assert.equal(ok.code, 0, ok.stderr);
  });

  test('signup logs the user in; logging in again with the same code says to wait for the next one', async () => {
    const token = await invite('alice');
    let used = '';
    const s = await signupWithTotp(
      [`--proxy=https://${w.proxy}/`, `--token=${token}`, `--ca-pin=${w.caPin}`],
      PASSWORD,
      env('alice'),
      {
        otp: (uri) => {
          used = totpFromUri(uri);
          return used;
        },
      },
    );
    assert.equal(s.code, 0, s.stderr);
    assert.match(s.stdout, /Signed up as "alice" and logged in\./);
    assert.match(s.stdout, /Logged in as: +alice/);
    const status = await runCli('wsh', ['status', '--format=json'], { env: env('alice') });
    assert.equal(status.code, 0, status.stderr);
    assert.equal(JSON.parse(status.stdout).user, 'alice');
    // The same code again (same 30-second window): refused, and the client says why.
    const again = await runCli('wsh', ['login', `--proxy=${w.proxy}`, '--user=alice'], {
      env: env('alice'),
      input: `${PASSWORD}\n${used}\n`,
    });
    assert.equal(again.code, 1);
    assert.match(again.stderr, /that OTP code was already used .* wait for the next one/);
    // A wrong code is not called "already used".
    const wrong = await runCli('wsh', ['login', `--proxy=${w.proxy}`, '--user=alice'], {
      env: env('alice'),
      input: `${PASSWORD}\n${used === '000000' ? '111111' : '000000'}\n`,
    });
    assert.equal(wrong.code, 1);
    assert.doesNotMatch(wrong.stderr, /already used/);
  });

  test('after wsh logout, wsh login remembers the proxy and the user; https:// URLs work', async () => {
    const out = await runCli('wsh', ['logout'], { env: env('alice') });
    assert.match(out.stdout, new RegExp(`Logged out from ${w.proxy.replace(/\./g, '\\.')}`));
    // No --proxy, no WARDEN_PROXY, no --user: the last ones. The password is checked first,
    // so a wrong one proves which user and proxy were asked without needing a fresh OTP code.
    const res = await runCli('wsh', ['login'], { env: env('alice'), input: 'wrong password!\n000000\n' });
    assert.match(res.stderr, /Enter password for Warden user alice:/);
    assert.match(res.stderr, /invalid user name, password or OTP code/);
    assert.doesNotMatch(res.stderr, /--proxy=HOST:PORT is required|not trusted/);
    const url = await runCli('wsh', ['login', `--proxy=https://${w.proxy}`, '--user=alice'], {
      env: env('alice'),
      input: 'wrong password!\n000000\n',
    });
    assert.match(
      url.stderr,
      /invalid user name, password or OTP code/,
      'https:// URL reaches the same proxy',
    );
    const http = await runCli('wsh', ['login', `--proxy=http://${w.proxy}`], { env: env('alice') });
    assert.equal(http.code, 1);
    assert.match(http.stderr, /the proxy speaks HTTPS only/);
  });

  test('a port where nothing listens is "connection refused", not "not trusted"', async () => {
    const port = await freePort();
    const res = await runCli('wsh', ['login', `--proxy=127.0.0.1:${port}`, '--user=alice'], {
      env: env('nobody'),
    });
    assert.equal(res.code, 1);
    assert.match(res.stderr, /refused/i);
    assert.doesNotMatch(res.stderr, /not trusted/);
    // A live proxy without a pin is "not trusted" (with advice).
    const live = await runCli('wsh', ['login', `--proxy=${w.proxy}`, '--user=alice'], { env: env('nobody') });
    assert.match(live.stderr, /is not trusted yet: pass --ca-pin/);
  });
});
