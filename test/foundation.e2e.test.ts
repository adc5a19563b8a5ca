/**
 * The foundation as a new user meets it (issue 2's "done when"): a real `warden start`
 * process, then `wctl` on the auth host and `wsh` as users, exactly as the README says.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  Authenticator,
  requireTool,
  runCli,
  signupWithTotp,
  startWarden,
  type WardenProcess,
} from '@warden/testkit';

const fixtures = join(import.meta.dirname, 'fixtures', 'guide');
const PASSWORD = 'correct horse battery staple';

describe('foundation end to end', () => {
  let w: WardenProcess;
  const wctl = (args: string[], input?: string) => runCli('wctl', args, { env: w.env, input });
  const wsh = (args: string[], opts: { input?: string; home?: string } = {}) =>
    runCli('wsh', args, {
      env: { ...w.env, ...(opts.home ? { WARDEN_HOME: opts.home } : {}) },
      input: opts.input,
    });
  const otps = new Map<string, Authenticator>();

  /** Adds a user, signs them up through `wsh signup`, returns their authenticator. */
  async function addAndSignUp(user: string, roles: string, logins = 'root'): Promise<Authenticator> {
    const add = await wctl(['users', 'add', user, `--roles=${roles}`, `--logins=${logins}`]);
    assert.equal(add.code, 0, add.stderr);
    const token = /--token=(\S+)/.exec(add.stdout)![1]!;
    assert.match(add.stdout, new RegExp(`--ca-pin=${w.caPin}`));
    const res = await signupWithTotp(
      [`--proxy=${w.proxy}`, `--token=${token}`, `--ca-pin=${w.caPin}`],
      PASSWORD,
      {
        ...w.env,
        WARDEN_HOME: join(w.dir, `home-${user}`),
      },
    );
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stdout, new RegExp(`Signed up as "${user}"`));
    const auth = new Authenticator(res.uri!);
    auth.markUsed();
    otps.set(user, auth);
    return auth;
  }

  async function login(user: string, extra: string[] = []) {
    const code = await otps.get(user)!.code();
    return wsh(['login', `--proxy=${w.proxy}`, `--user=${user}`, ...extra], {
      input: `${PASSWORD}\n${code}\n`,
      home: join(w.dir, `home-${user}`),
    });
  }

  before(async () => {
    // The JSON-lines sink is on, so the audit test can compare it with the searchable log.
    w = await startWarden({ configYaml: 'auth_service:\n  audit:\n    jsonl_path: audit.jsonl\n' });
  });
  after(async () => {
    await w?.stop();
  });

  test('first start prints the CA pin and how to create the first user, and writes the admin identity 0600', () => {
    assert.match(w.output(), /No users yet/);
    assert.match(w.output(), /wctl users add alice --roles=access,editor/);
    const st = statSync(join(w.dataDir, 'admin-identity.json'));
    assert.equal(st.mode & 0o777, 0o600);
    // The data dir holds no private key in the log output.
    assert.doesNotMatch(w.output(), /PRIVATE KEY/);
  });

  test('a user is added, signs up, logs in, and wsh status shows the certificate', async () => {
    await addAndSignUp('alice', 'access,editor', 'root,alice');
    const res = await login('alice');
    assert.equal(res.code, 0, res.stderr);
    const status = await wsh(['status'], { home: join(w.dir, 'home-alice') });
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, /Logged in as: +alice/);
    assert.match(status.stdout, /Roles: +access, editor/);
    assert.match(status.stdout, /Logins: +root, alice/);
    assert.match(status.stdout, /Valid until: .*valid for 1[12]h/);
    assert.match(status.stdout, /permit-pty/);
    const json = JSON.parse(
      (await wsh(['status', '--format=json'], { home: join(w.dir, 'home-alice') })).stdout,
    );
    assert.equal(json.user, 'alice');
    assert.deepEqual(json.logins, ['root', 'alice']);
    // Keys live under WARDEN_HOME with a private key readable only by the user.
    const key = join(w.dir, 'home-alice', 'profiles', w.proxy.replace(':', '_'), 'key.pem');
    assert.equal(statSync(key).mode & 0o777, 0o600);
  });

  test('OpenSSH reads the SSH certificate: key id, principals, extensions, signed by the exported user CA', async (t) => {
    const tool = requireTool('ssh-keygen');
    if (tool.skip) return t.skip(tool.skip);
    const dir = join(w.dir, 'home-alice', 'profiles', w.proxy.replace(':', '_'));
    const text = execFileSync('ssh-keygen', ['-L', '-f', join(dir, 'key-cert.pub')], { encoding: 'utf8' });
    assert.match(text, /Type: ecdsa-sha2-nistp256-cert-v01@openssh.com user certificate/);
    assert.match(text, /Key ID: "alice"/);
    assert.match(text, /Principals: \n\s+root\n\s+alice/);
    assert.match(text, /permit-pty/);
    const exported = await wctl(['auth', 'export', '--type=user']);
    assert.equal(exported.code, 0, exported.stderr);
    assert.match(exported.stdout, /^ssh-ed25519 AAAA\S+/);
    const caFile = join(w.dir, 'user-ca.pub');
    writeFileSync(caFile, exported.stdout);
    const caFp = execFileSync('ssh-keygen', ['-l', '-f', caFile], { encoding: 'utf8' }).split(' ')[1]!;
    assert.match(text, new RegExp(`Signing CA: ED25519 ${caFp.replace(/[+/]/g, '\\$&')}`));
    const host = await wctl(['auth', 'export', '--type=host']);
    assert.match(host.stdout, /^@cert-authority \S+ ssh-ed25519 AAAA\S+/);
  });

  test('wctl create accepts the guide examples: role, cap.yaml and user', async () => {
    const enforce = await wctl(['create', '-f', join(fixtures, 'device-enforcement.yaml')]);
    assert.equal(enforce.code, 0, enforce.stderr);
    assert.match(enforce.stdout, /role "require-trusted-device" has been updated/);
    const apps = await wctl(['create', join(fixtures, 'require-trusted-device-apps.yaml')]);
    assert.equal(apps.code, 0, apps.stderr);
    assert.match(apps.stdout, /role "require-trusted-device-apps" has been created/);
    // Without -f, an existing resource is not overwritten.
    const again = await wctl(['create', join(fixtures, 'require-trusted-device-apps.yaml')]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /already exists.*-f/);
    const cap = await wctl(['create', '-f', join(fixtures, 'cap.yaml')]);
    assert.equal(cap.code, 0, cap.stderr);
    assert.equal(cap.stdout, 'cluster auth preference has been updated\n');
    const got = await wctl(['get', 'cluster_auth_preference', '--format=json']);
    assert.equal(JSON.parse(got.stdout).spec.device_trust.mode, 'required');
    const user = await wctl(['create', '-f', join(fixtures, 'user-alice.yaml')]);
    assert.equal(user.code, 0, user.stderr);
    const alice = JSON.parse((await wctl(['get', 'users/alice', '--format=json'])).stdout);
    assert.deepEqual(alice.spec.roles, ['access', 'editor', 'require-trusted-device-apps']);
    const roles = await wctl(['get', 'roles', '--format=yaml']);
    assert.match(roles.stdout, /name: require-trusted-device-apps/);
    assert.match(roles.stdout, /device_trust_mode: required/);
    // Put the cluster back to "off" for the rest of the tests.
    const off = await wctl(
      ['create', '-f', '-'],
      'kind: cluster_auth_preference\nversion: v2\nmetadata:\n  name: cluster-auth-preference\nspec:\n  type: local\n  second_factor: otp\n  device_trust:\n    mode: "off"\n',
    );
    assert.equal(off.code, 0, off.stderr);
  });

  test('a bad resource is refused with the field and its line, and nothing changes', async () => {
    const bad = await wctl(
      ['create', '-'],
      'kind: role\nversion: v7\nmetadata:\n  name: dev\nspec:\n  allow:\n    loginz: [root]\n',
    );
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /spec\.allow\.loginz.*line 7/);
    const malformed = await wctl(['create', '-'], 'kind: role\nversion: v7\nmetadata: [\n');
    assert.equal(malformed.code, 1);
    assert.match(malformed.stderr, /line \d/);
    const wrongType = await wctl(
      ['create', '-'],
      'kind: role\nversion: v7\nmetadata:\n  name: dev\nspec:\n  options:\n    max_session_ttl: forever\n',
    );
    assert.equal(wrongType.code, 1);
    assert.match(wrongType.stderr, /max_session_ttl.*line 7/);
    const missing = await wctl(['get', 'roles/dev']);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /role "dev" not found/);
  });

  test('wctl get cert_authorities shows public parts only', async () => {
    const res = await wctl(['get', 'cert_authorities', '--format=json']);
    assert.equal(res.code, 0, res.stderr);
    const cas = JSON.parse(res.stdout) as { spec: { type: string } }[];
    assert.deepEqual(cas.map((c) => c.spec.type).sort(), ['db', 'host', 'jwt', 'openssh', 'user']);
    assert.doesNotMatch(res.stdout, /PRIVATE/);
    const text = await wctl(['get', 'cas']);
    assert.match(text.stdout, /^Type +Cluster/);
  });

  test('a lock on alice makes her next login fail with the lock message; removing it lets her in', async () => {
    await addAndSignUp('carol', 'access');
    const lock = await wctl(['lock', '--user=carol', '--ttl=1h', '--message=security review']);
    assert.equal(lock.code, 0, lock.stderr);
    const name = /Created a lock with name "([0-9a-f-]{36})"\./.exec(lock.stdout)?.[1];
    assert.ok(name, lock.stdout);
    const denied = await login('carol');
    assert.equal(denied.code, 1);
    assert.match(denied.stderr, /ERROR: lock targeting User:"carol" is in force: security review/);
    const locks = await wctl(['get', 'locks']);
    assert.match(locks.stdout, new RegExp(`${name} +user=carol +security review`));
    const rm = await wctl(['rm', `locks/${name}`]);
    assert.equal(rm.code, 0, rm.stderr);
    const ok = await login('carol');
    assert.equal(ok.code, 0, ok.stderr);
  });

  test('bad lock flags are refused before anything is written', async () => {
    const none = await wctl(['lock', '--message=x']);
    assert.equal(none.code, 1);
    assert.match(none.stderr, /needs a target/);
    const both = await wctl(['lock', '--user=bob', '--ttl=1h', '--expires=2030-01-01T00:00:00Z']);
    assert.equal(both.code, 1);
    assert.match(both.stderr, /--ttl or --expires, not both/);
    const past = await wctl(['lock', '--user=bob', '--expires=2001-01-01T00:00:00Z']);
    assert.equal(past.code, 1);
    assert.match(past.stderr, /in the past/);
    const list = await wctl(['get', 'locks', '--format=json']);
    assert.deepEqual(JSON.parse(list.stdout), []);
  });

  test('a user without editor is told which permission is missing', async () => {
    await addAndSignUp('dave', 'access');
    const res = await login('dave');
    assert.equal(res.code, 0, res.stderr);
    const denied = await runCli('wctl', ['create', join(fixtures, 'require-trusted-device-apps.yaml')], {
      env: { WARDEN_HOME: join(w.dir, 'home-dave'), WARDEN_DATA_DIR: '' },
      cwd: w.dir,
    });
    assert.equal(denied.code, 1);
    assert.match(denied.stderr, /dave.*(update|create).*role/);
    // With editor (alice), the same profile-based wctl works.
    const ok = await runCli('wctl', ['get', 'users'], {
      env: { WARDEN_HOME: join(w.dir, 'home-alice'), WARDEN_DATA_DIR: '' },
      cwd: w.dir,
    });
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /alice/);
  });

  test('a tampered client certificate is refused', async () => {
    const dir = join(w.dir, 'home-dave', 'profiles', w.proxy.replace(':', '_'));
    const pem = readFileSync(join(dir, 'tls.pem'), 'utf8');
    const b64 = pem.replace(/-----[A-Z ]+-----|\s/g, '');
    const der = Buffer.from(b64, 'base64');
    der[der.length - 10]! ^= 0xff; // inside the signature
    const lines = der
      .toString('base64')
      .match(/.{1,64}/g)!
      .join('\n');
    writeFileSync(join(dir, 'tls.pem'), `-----BEGIN CERTIFICATE-----\n${lines}\n-----END CERTIFICATE-----\n`);
    const res = await runCli('wctl', ['get', 'users'], {
      env: { WARDEN_HOME: join(w.dir, 'home-dave'), WARDEN_DATA_DIR: '' },
      cwd: w.dir,
    });
    assert.equal(res.code, 1);
    assert.match(res.stderr, /ERROR: .*(certificate|log ?in)/i);
  });

  test('wrong password, wrong OTP and an unknown user all fail the same way, then the rate limit answers', async () => {
    const home = join(w.dir, 'home-eve');
    const attempt = (user: string, input: string) =>
      wsh(['login', `--proxy=${w.proxy}`, `--user=${user}`, `--ca-pin=${w.caPin}`], { input, home });
    const wrongPw = await attempt('alice', 'not the password\n123456\n');
    assert.match(wrongPw.stderr, /ERROR: invalid user name, password or OTP code/);
    const wrongOtp = await attempt('alice', `${PASSWORD}\n000000\n`);
    assert.match(wrongOtp.stderr, /ERROR: invalid user name, password or OTP code/);
    const unknown = await attempt('mallory', `${PASSWORD}\n000000\n`);
    assert.match(unknown.stderr, /ERROR: invalid user name, password or OTP code/);
    let last = unknown;
    for (let i = 0; i < 5; i++) last = await attempt('mallory', 'x\n000000\n');
    assert.equal(last.code, 1);
    assert.match(
      last.stderr,
      /too many failed login attempts for user "mallory" from 127\.0\.0\.1; try again in/,
    );
  });

  test('an invite works once; a reused or unknown token is refused', async () => {
    const add = await wctl(['users', 'add', 'frank', '--roles=access']);
    const token = /--token=(\S+)/.exec(add.stdout)![1]!;
    const home = join(w.dir, 'home-frank');
    const first = await signupWithTotp(
      [`--proxy=${w.proxy}`, `--token=${token}`, `--ca-pin=${w.caPin}`],
      PASSWORD,
      { ...w.env, WARDEN_HOME: home },
    );
    assert.equal(first.code, 0, first.stderr);
    const reuse = await runCli('wsh', ['signup', `--proxy=${w.proxy}`, `--token=${token}`], {
      env: { ...w.env, WARDEN_HOME: home },
      input: `${PASSWORD}\n`,
    });
    assert.equal(reuse.code, 1);
    assert.match(reuse.stderr, /invalid or expired invite token/);
    const weak = await wctl(['users', 'add', 'gina', '--roles=access']);
    const t2 = /--token=(\S+)/.exec(weak.stdout)![1]!;
    const short = await signupWithTotp(
      [`--proxy=${w.proxy}`, `--token=${t2}`, `--ca-pin=${w.caPin}`],
      'short',
      { ...w.env, WARDEN_HOME: join(w.dir, 'home-gina') },
    );
    assert.equal(short.code, 1);
    assert.match(short.stderr, /at least 12 characters/);
  });

  test('without a pin, first contact is refused with advice; a wrong pin is refused', async () => {
    const home = join(w.dir, 'home-new');
    const noPin = await wsh(['login', `--proxy=${w.proxy}`, '--user=alice'], { input: 'x\n1\n', home });
    assert.equal(noPin.code, 1);
    assert.match(noPin.stderr, /not trusted yet: pass --ca-pin/);
    const wrong = await wsh(
      ['login', `--proxy=${w.proxy}`, '--user=alice', `--ca-pin=sha256:${'0'.repeat(64)}`],
      { input: 'x\n1\n', home },
    );
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /does not present a host CA matching --ca-pin/);
  });

  test('wctl users reset issues a new invite and the old password stops working', async () => {
    const reset = await wctl(['users', 'reset', 'dave']);
    assert.equal(reset.code, 0, reset.stderr);
    assert.match(reset.stdout, /User "dave" has been reset/);
    assert.match(reset.stdout, /wsh signup --proxy=\S+ --token=\S+ --ca-pin=sha256:/);
    const old = await login('dave');
    assert.equal(old.code, 1);
    assert.match(old.stderr, /invalid user name, password or OTP code/);
  });

  test('wctl users ls and rm; wsh logout removes the profile', async () => {
    const ls = await wctl(['users', 'ls']);
    assert.match(ls.stdout, /^User +Roles +Logins/);
    assert.match(ls.stdout, /alice +access,editor,require-trusted-device-apps +root,alice/);
    const json = JSON.parse((await wctl(['users', 'ls', '--format=json'])).stdout) as {
      metadata: { name: string };
    }[];
    assert.ok(json.some((u) => u.metadata.name === 'frank'));
    const rm = await wctl(['users', 'rm', 'frank']);
    assert.equal(rm.code, 0, rm.stderr);
    const gone = await wctl(['get', 'users/frank']);
    assert.match(gone.stderr, /user "frank" not found/);
    const out = await wsh(['logout'], { home: join(w.dir, 'home-carol') });
    assert.match(out.stdout, /Logged out/);
    const status = await wsh(['status'], { home: join(w.dir, 'home-carol') });
    assert.equal(status.code, 1);
    assert.match(status.stderr, /not logged in/);
  });

  test('wctl edit validates and reopens on error, then saves', async () => {
    // The "editor" first writes an invalid field, then (when reopened) a valid change.
    const script = join(w.dir, 'editor.sh');
    writeFileSync(
      script,
      `#!/bin/sh\nif grep -q '^# ERROR' "$1"; then sed -i 's/loginz:/logins:/' "$1"; else sed -i 's/^  allow:/  allow:\\n    loginz: [ubuntu]/' "$1"; fi\n`,
      { mode: 0o755 },
    );
    const res = await runCli('wctl', ['edit', 'roles/require-trusted-device-apps'], {
      env: { ...w.env, EDITOR: script, WARDEN_EDIT_RETRY: '1' },
    });
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stdout, /role "require-trusted-device-apps" has been updated/);
    const role = JSON.parse(
      (await wctl(['get', 'roles/require-trusted-device-apps', '--format=json'])).stdout,
    );
    assert.deepEqual(role.spec.allow.logins, ['ubuntu']);
  });

  test('wctl audit search shows all of it', async () => {
    const res = await wctl(['audit', 'search', '--format=json']);
    assert.equal(res.code, 0, res.stderr);
    const events = JSON.parse(res.stdout) as {
      type: string;
      user?: string;
      success: boolean;
      code: string;
      error?: string;
    }[];
    const has = (type: string, pred: (e: (typeof events)[number]) => boolean = () => true) =>
      assert.ok(
        events.some((e) => e.type === type && pred(e)),
        `no ${type} event`,
      );
    has('user.create', (e) => e.code === 'W1001I');
    has('user.signup', (e) => e.user === 'alice');
    has('user.login', (e) => e.user === 'alice' && e.success);
    has('user.login', (e) => e.user === 'carol' && !e.success && /lock targeting/.test(e.error ?? ''));
    has('user.login', (e) => e.user === 'mallory' && !e.success);
    has('cert.create', (e) => e.user === 'alice');
    has('role.updated');
    has('role.created');
    has('cluster_auth_preference.updated');
    has('lock.created');
    has('lock.deleted');
    has('access.denied', (e) => e.user === 'dave');
    assert.doesNotMatch(res.stdout, new RegExp(PASSWORD));
    const filtered = JSON.parse(
      (await wctl(['audit', 'search', '--type=user.login', '--user=carol', '--format=json'])).stdout,
    ) as typeof events;
    assert.ok(filtered.length >= 2);
    assert.ok(filtered.every((e) => e.type === 'user.login' && e.user === 'carol'));
    const text = await wctl(['audit', 'search', '--type=lock.created']);
    assert.match(text.stdout, /lock\.created +W3200I/);
    // The JSON-lines sink holds the same events, one JSON object per line, file mode 0600.
    const sink = join(w.dir, 'audit.jsonl');
    assert.equal(statSync(sink).mode & 0o777, 0o600);
    const lines = readFileSync(sink, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { id: string });
    const ids = new Set(lines.map((e) => e.id));
    assert.ok(
      events.every((e) => ids.has((e as unknown as { id: string }).id)),
      'every searchable event is in the sink',
    );
    const bad = await wctl(['audit', 'search', '--from=yesterday']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /invalid --from/);
  });

  test('SIGTERM shuts warden down cleanly with exit code 0', async () => {
    const code = await w.stop();
    assert.equal(code, 0);
  });
});
