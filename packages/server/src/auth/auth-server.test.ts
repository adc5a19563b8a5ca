/**
 * The auth service in process (`test/support/auth-cluster.ts`): signup, login and its certificates,
 * locks, identification of API callers, permissions, resources and the audit trail. Time is
 * a FakeClock, so TOTP codes, invite expiry, lockouts and lock expiry are exact.
 */
import assert from 'node:assert/strict';
import { createPublicKey, generateKeyPairSync, X509Certificate } from 'node:crypto';
import { describe, test } from 'node:test';
import {
  AUTH_PREFERENCE_NAME,
  formatAuthorizedKey,
  INVITE_TOKEN_TTL_MS,
  isWardenError,
  MAX_CERT_TTL_MS,
  parseIdentityFromCertificate,
  parseSshCertificate,
  type RoleResource,
} from '@warden/api';
import {
  CLIENT_ADDR,
  CLUSTER_NAME,
  certDer,
  newUserKey,
  PASSWORD,
  PROXY_ADDR,
  STEP_MS,
  startTestCluster,
  type TestCluster,
} from '../../../../test/support/auth-cluster';
import { rejectsWith } from '../../../../test/support/warden-errors';
import { AccessChecker, type Identity, makeIdentity, ROLE_VIEW_STALE, STALE_LOCK_VIEW } from '../access';
import { MemoryBackend } from '../backend';
import { createAuthServer } from '../bin';
import { CertAuthorities } from '../ca';
import { ADMIN_USER } from '.';
import { LOGIN_RATE_LIMIT_DEFAULTS } from './rate-limit';
import { generateTotp } from './totp';

const LOGIN_FAILED = 'invalid user name, password or OTP code';
const HOUR = 60 * 60 * 1000;

/** Asserts that `p` rejects with a WardenError of `code` whose message matches. */
/** A 6-digit code that no step in the verification window (±1) of `now` accepts. */
function wrongCode(secret: string, now: number): string {
  const valid = [-1, 0, 1].map((i) => generateTotp(secret, now + i * STEP_MS));
  return ['000000', '111111', '222222', '333333'].find((x) => !valid.includes(x))!;
}

/** Asserts that each field of `expected` is deep-equal in `actual` (other fields may exist). */
function assertFields(actual: Record<string, unknown> | undefined, expected: Record<string, unknown>): void {
  assert.ok(actual, 'no event');
  for (const [k, v] of Object.entries(expected))
    assert.deepEqual(actual[k], v, `${String(actual.type)}.${k}`);
}

function role(name: string, spec: Record<string, unknown>): Record<string, unknown> {
  return { kind: 'role', version: 'v7', metadata: { name }, spec };
}

/** Signs up `name` and returns a caller holding that user's certificate. */
async function userCaller(c: TestCluster, name: string, roles: string[]): Promise<Identity> {
  const { totpSecret } = await c.signUp(name, roles);
  const res = await c.auth.login(c.loginRequest(name, c.nextOtp(totpSecret!)), CLIENT_ADDR);
  return c.callerOf(res);
}

/** The cluster's auth server, but with `identify` asking the given lock view (as at the proxy). */
function withLockView(
  c: TestCluster,
  access: Pick<AccessChecker, 'lockReason'> & Partial<Pick<AccessChecker, 'liveRoles'>>,
) {
  return createAuthServer({
    clock: c.clock,
    backend: c.backend,
    services: c.services,
    cas: c.cas,
    audit: c.audit,
    logger: c.logger,
    clusterName: CLUSTER_NAME,
    proxyPublicAddr: PROXY_ADDR,
    serverVersion: '0.0.0-test',
    access,
  });
}

// ---- Signup ------------------------------------------------------------------------------

describe('signup', () => {
  test('begin shows the TOTP secret, finish sets the password, then login works', async () => {
    const c = await startTestCluster();
    const token = await c.invite('alice', ['access'], ['root']);
    const begun = await c.auth.signupBegin(token);
    assert.equal(begun.user, 'alice');
    const secret = begun.totp?.secret;
    assert.ok(secret && /^[A-Z2-7]{32}$/.test(secret), `base32 secret, got ${secret}`);
    const uri = new URL(begun.totp!.uri);
    assert.equal(uri.protocol, 'otpauth:');
    assert.equal(uri.searchParams.get('secret'), secret);
    assert.equal(uri.searchParams.get('issuer'), CLUSTER_NAME);
    assert.match(decodeURIComponent(uri.pathname), /alice/);

    // Not signed up yet: no password works.
    await rejectsWith(
      c.auth.login(c.loginRequest('alice', c.otp(secret)), CLIENT_ADDR),
      'WARDEN_ERR_LOGIN_FAILED',
    );

    c.clock.advance(STEP_MS);
    assert.deepEqual(
      await c.auth.signupFinish({ token, password: PASSWORD, otp_code: c.otp(secret) }, CLIENT_ADDR),
      { user: 'alice' },
    );
    const res = await c.auth.login(c.loginRequest('alice', c.nextOtp(secret)), CLIENT_ADDR);
    assert.equal(res.user, 'alice');
    assert.deepEqual(res.roles, ['access']);
    assert.deepEqual(res.logins, ['root']);
    // A different password does not.
    await rejectsWith(
      c.auth.login({ ...c.loginRequest('alice', c.nextOtp(secret)), password: `${PASSWORD}!` }, CLIENT_ADDR),
      'WARDEN_ERR_LOGIN_FAILED',
      LOGIN_FAILED,
    );
  });

  test('finish with a key also logs in: certificates for that key; a bad key is refused before the token is spent', async () => {
    const c = await startTestCluster();
    const token = await c.invite('alice', ['access'], ['root']);
    const secret = (await c.auth.signupBegin(token)).totp!.secret;
    c.clock.advance(STEP_MS);
    const key = c.loginRequest('alice');
    const other = c.loginRequest('alice');
    await rejectsWith(
      c.auth.signupFinish(
        {
          token,
          password: PASSWORD,
          otp_code: c.otp(secret),
          ssh_public_key: key.ssh_public_key,
          tls_public_key: other.tls_public_key,
        },
        CLIENT_ADDR,
      ),
      'WARDEN_ERR_BAD_PARAMETER',
    );
    const res = await c.auth.signupFinish(
      {
        token,
        password: PASSWORD,
        otp_code: c.otp(secret),
        ssh_public_key: key.ssh_public_key,
        tls_public_key: key.tls_public_key,
      },
      CLIENT_ADDR,
    );
    assert.equal(res.user, 'alice');
    assert.ok(res.login, 'signup logged in');
    assert.deepEqual(res.login.logins, ['root']);
    const identity = await c.callerOf(res.login);
    assert.equal(identity.user, 'alice');
  });

  test('an unknown or malformed token is refused', async () => {
    const c = await startTestCluster();
    await c.invite('alice', ['access']);
    for (const token of ['A'.repeat(43), 'short', '../../etc/passwd', `${'x'.repeat(30)} y`]) {
      await rejectsWith(
        c.auth.signupBegin(token),
        'WARDEN_ERR_INVALID_TOKEN',
        /invalid or expired invite token/,
      );
      await rejectsWith(
        c.auth.signupFinish({ token, password: PASSWORD, otp_code: '000000' }, CLIENT_ADDR),
        'WARDEN_ERR_INVALID_TOKEN',
      );
    }
  });

  test('an invite expires after INVITE_TOKEN_TTL_MS (1 h)', async () => {
    assert.equal(INVITE_TOKEN_TTL_MS, HOUR);
    const c = await startTestCluster();
    const token = await c.invite('alice', ['access']);
    c.clock.advance(INVITE_TOKEN_TTL_MS - 60_000);
    const secret = (await c.auth.signupBegin(token)).totp!.secret;
    c.clock.advance(60_000 + 1);
    await rejectsWith(c.auth.signupBegin(token), 'WARDEN_ERR_INVALID_TOKEN', /expired/);
    await rejectsWith(
      c.auth.signupFinish({ token, password: PASSWORD, otp_code: c.otp(secret) }, CLIENT_ADDR),
      'WARDEN_ERR_INVALID_TOKEN',
    );
    await rejectsWith(
      c.auth.login(c.loginRequest('alice', c.otp(secret)), CLIENT_ADDR),
      'WARDEN_ERR_LOGIN_FAILED',
    );
  });

  test('a token cannot be used again after a successful signup', async () => {
    const c = await startTestCluster();
    const token = await c.invite('alice', ['access']);
    const secret = (await c.auth.signupBegin(token)).totp!.secret;
    await c.auth.signupFinish({ token, password: PASSWORD, otp_code: c.otp(secret) }, CLIENT_ADDR);
    await rejectsWith(c.auth.signupBegin(token), 'WARDEN_ERR_INVALID_TOKEN');
    await rejectsWith(
      c.auth.signupFinish(
        { token, password: 'another long password', otp_code: c.nextOtp(secret) },
        CLIENT_ADDR,
      ),
      'WARDEN_ERR_INVALID_TOKEN',
    );
    // The first password still stands.
    const res = await c.auth.login(c.loginRequest('alice', c.nextOtp(secret)), CLIENT_ADDR);
    assert.equal(res.user, 'alice');
  });

  test('of two signups racing with one token, exactly one succeeds', async () => {
    const c = await startTestCluster();
    const token = await c.invite('alice', ['access']);
    const secret = (await c.auth.signupBegin(token)).totp!.secret;
    const finish = (password: string) =>
      c.auth.signupFinish({ token, password, otp_code: c.otp(secret) }, CLIENT_ADDR);
    const results = await Promise.allSettled([finish(PASSWORD), finish('the other contender')]);
    const won = results.filter((r) => r.status === 'fulfilled');
    const lost = results.filter((r) => r.status === 'rejected');
    assert.equal(won.length, 1);
    assert.equal(lost.length, 1);
    assert.ok(isWardenError((lost[0] as PromiseRejectedResult).reason, 'WARDEN_ERR_INVALID_TOKEN'));
  });

  test('a wrong or missing OTP code at finish is refused and does not spend the token', async () => {
    const c = await startTestCluster();
    const token = await c.invite('alice', ['access']);
    const secret = (await c.auth.signupBegin(token)).totp!.secret;
    const right = c.otp(secret);
    const wrong = wrongCode(secret, c.clock.now());
    await rejectsWith(
      c.auth.signupFinish({ token, password: PASSWORD, otp_code: wrong }, CLIENT_ADDR),
      'WARDEN_ERR_LOGIN_FAILED',
      /OTP code is not valid/,
    );
    await rejectsWith(
      c.auth.signupFinish({ token, password: PASSWORD }, CLIENT_ADDR),
      'WARDEN_ERR_LOGIN_FAILED',
      /OTP code is not valid/,
    );
    // A code from another secret is wrong too.
    const other = (await c.auth.signupBegin(await c.invite('bob', ['access']))).totp!.secret;
    if (c.otp(other) !== right) {
      await rejectsWith(
        c.auth.signupFinish({ token, password: PASSWORD, otp_code: c.otp(other) }, CLIENT_ADDR),
        'WARDEN_ERR_LOGIN_FAILED',
      );
    }
    await rejectsWith(c.auth.login(c.loginRequest('alice', right), CLIENT_ADDR), 'WARDEN_ERR_LOGIN_FAILED');
    await c.auth.signupFinish({ token, password: PASSWORD, otp_code: right }, CLIENT_ADDR);
    assert.equal((await c.auth.login(c.loginRequest('alice', c.nextOtp(secret)), CLIENT_ADDR)).user, 'alice');
  });

  test('an OTP code with spaces around it is accepted at signup as at login', async () => {
    const c = await startTestCluster();
    const token = await c.invite('alice', ['access']);
    const secret = (await c.auth.signupBegin(token)).totp!.secret;
    await c.auth.signupFinish({ token, password: PASSWORD, otp_code: ` ${c.otp(secret)}\n` }, CLIENT_ADDR);
    const res = await c.auth.login(c.loginRequest('alice', ` ${c.nextOtp(secret)} `), CLIENT_ADDR);
    assert.equal(res.user, 'alice');
  });

  test('a weak password is refused with the policy message and does not spend the token', async () => {
    const c = await startTestCluster();
    const token = await c.invite('alice', ['access']);
    const secret = (await c.auth.signupBegin(token)).totp!.secret;
    await rejectsWith(
      c.auth.signupFinish({ token, password: 'short', otp_code: c.otp(secret) }, CLIENT_ADDR),
      'WARDEN_ERR_BAD_PARAMETER',
      'password must be at least 12 characters long',
    );
    await rejectsWith(
      c.auth.signupFinish({ token, password: ' '.repeat(20), otp_code: c.otp(secret) }, CLIENT_ADDR),
      'WARDEN_ERR_BAD_PARAMETER',
      /password/,
    );
    await c.auth.signupFinish({ token, password: PASSWORD, otp_code: c.otp(secret) }, CLIENT_ADDR);
    assert.equal((await c.auth.login(c.loginRequest('alice', c.nextOtp(secret)), CLIENT_ADDR)).user, 'alice');
  });

  test('with second_factor off, signup asks for no TOTP and login needs no code', async () => {
    const c = await startTestCluster({ secondFactor: 'off' });
    const token = await c.invite('alice', ['access'], ['root']);
    const begun = await c.auth.signupBegin(token);
    assert.equal(begun.user, 'alice');
    assert.equal(begun.totp, undefined);
    assert.deepEqual(begun.password_policy, {
      min_chars: 12,
      max_bytes: 1024,
      text: 'at least 12 characters',
    });
    await c.auth.signupFinish({ token, password: PASSWORD }, CLIENT_ADDR);
    const res = await c.auth.login(c.loginRequest('alice'), CLIENT_ADDR);
    assert.equal(res.user, 'alice');
    // The password still matters.
    await rejectsWith(
      c.auth.login({ ...c.loginRequest('alice'), password: 'not the password' }, CLIENT_ADDR),
      'WARDEN_ERR_LOGIN_FAILED',
      LOGIN_FAILED,
    );
  });
});

// ---- Login -------------------------------------------------------------------------------

describe('login', () => {
  test('issues SSH and X.509 certificates for the request key with logins from roles and traits', async () => {
    const c = await startTestCluster();
    await c.auth.putResource(c.admin, role('ops', { allow: { logins: ['ubuntu', '{{internal.logins}}'] } }), {
      force: false,
    });
    const { totpSecret } = await c.signUp('alice', ['access', 'ops'], ['root', 'alice']);
    const req = c.loginRequest('alice', c.nextOtp(totpSecret!));
    const now = c.clock.now();
    const res = await c.auth.login(req, CLIENT_ADDR);

    const expectedLogins = ['alice', 'root', 'ubuntu'];
    assert.deepEqual([...res.logins].sort(), expectedLogins);
    assert.deepEqual(res.roles, ['access', 'ops']);
    assert.equal(res.cluster_name, CLUSTER_NAME);
    const notAfterS = Math.floor((now + MAX_CERT_TTL_MS) / 1000);
    assert.equal(res.expires, new Date(notAfterS * 1000).toISOString());

    const ssh = parseSshCertificate(res.ssh_cert);
    assert.equal(ssh.type, 'user');
    assert.equal(ssh.keyId, 'alice');
    assert.deepEqual([...ssh.validPrincipals].sort(), expectedLogins);
    assert.equal(ssh.validBefore, BigInt(notAfterS));
    assert.ok(ssh.validAfter <= BigInt(Math.floor(now / 1000)));
    const spki = (k: ReturnType<typeof createPublicKey>) => k.export({ type: 'spki', format: 'der' });
    assert.deepEqual(spki(ssh.publicKey), spki(createPublicKey(req.tls_public_key)));
    // Signed by this cluster's user CA, valid for one of its logins now.
    c.cas.verifyUserSshCert(res.ssh_cert, { principal: 'ubuntu' });

    const id = parseIdentityFromCertificate(res.tls_cert);
    assert.equal(id.user, 'alice');
    assert.deepEqual(id.roles, ['access', 'ops']);
    assert.deepEqual([...id.logins].sort(), expectedLogins);
    assert.deepEqual(id.traits, { logins: ['root', 'alice'] });
    const x509 = new X509Certificate(res.tls_cert);
    assert.equal(new Date(x509.validTo).getTime(), notAfterS * 1000);
    assert.deepEqual(spki(x509.publicKey), spki(createPublicKey(req.tls_public_key)));
    assert.ok(x509.verify(new X509Certificate(res.user_ca_pems[0]!).publicKey));
    assert.deepEqual(res.host_ca_pems, c.cas.tlsCertPems('host'));
    assert.match(res.host_ca_known_hosts, /^@cert-authority /);
  });

  test('wrong password, wrong, missing or replayed OTP, unknown and not-signed-up users get one answer', async () => {
    const c = await startTestCluster();
    const { totpSecret } = await c.signUp('alice', ['access']);
    const secret = totpSecret!;
    await c.invite('bob', ['access']); // invited, never signed up

    const code = c.nextOtp(secret);
    const previous = generateTotp(secret, c.clock.now() - STEP_MS);
    const wrong = wrongCode(secret, c.clock.now());
    const attempts: [string, ReturnType<TestCluster['loginRequest']>][] = [
      ['wrong password', { ...c.loginRequest('alice', code), password: 'not the password at all' }],
      ['wrong OTP', c.loginRequest('alice', wrong)],
      ['missing OTP', c.loginRequest('alice')],
      ['unknown user', c.loginRequest('mallory', code)],
      ['invalid user name', c.loginRequest('../alice', code)],
      ['never signed up', c.loginRequest('bob', code)],
    ];
    for (const [what, req] of attempts) {
      const e = await rejectsWith(c.auth.login(req, CLIENT_ADDR), 'WARDEN_ERR_LOGIN_FAILED');
      assert.equal(e.message, LOGIN_FAILED, what);
    }
    // The right code works once; the same code again is a replay.
    assert.equal((await c.auth.login(c.loginRequest('alice', code), CLIENT_ADDR)).user, 'alice');
    await rejectsWith(
      c.auth.login(c.loginRequest('alice', code), CLIENT_ADDR),
      'WARDEN_ERR_LOGIN_FAILED',
      LOGIN_FAILED,
    );
    // So is the previous step's code, still inside the verification window.
    await rejectsWith(
      c.auth.login(c.loginRequest('alice', previous), CLIENT_ADDR),
      'WARDEN_ERR_LOGIN_FAILED',
      LOGIN_FAILED,
    );
    assert.equal((await c.auth.login(c.loginRequest('alice', c.nextOtp(secret)), CLIENT_ADDR)).user, 'alice');
  });

  test('of two logins racing with one OTP code, exactly one succeeds', async () => {
    const c = await startTestCluster();
    const { totpSecret } = await c.signUp('alice', ['access']);
    const code = c.nextOtp(totpSecret!);
    const results = await Promise.allSettled([
      c.auth.login(c.loginRequest('alice', code), CLIENT_ADDR),
      c.auth.login(c.loginRequest('alice', code), CLIENT_ADDR),
    ]);
    assert.deepEqual(results.map((r) => r.status).sort(), ['fulfilled', 'rejected']);
    const lost = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
    assert.ok(isWardenError(lost.reason, 'WARDEN_ERR_LOGIN_FAILED'));
    assert.equal(lost.reason.message, LOGIN_FAILED);
  });

  test('the OTP code used to finish signup cannot be used to log in', async () => {
    const c = await startTestCluster();
    const token = await c.invite('alice', ['access']);
    const secret = (await c.auth.signupBegin(token)).totp!.secret;
    const code = c.otp(secret);
    await c.auth.signupFinish({ token, password: PASSWORD, otp_code: code }, CLIENT_ADDR);
    await rejectsWith(
      c.auth.login(c.loginRequest('alice', code), CLIENT_ADDR),
      'WARDEN_ERR_LOGIN_FAILED',
      LOGIN_FAILED,
    );
    assert.equal((await c.auth.login(c.loginRequest('alice', c.nextOtp(secret)), CLIENT_ADDR)).user, 'alice');
  });

  test('repeated failures lock the user out until the lockout time has passed', async () => {
    const c = await startTestCluster();
    const { totpSecret } = await c.signUp('alice', ['access']);
    const { totpSecret: bobSecret } = await c.signUp('bob', ['access']);
    const { maxFailures, lockoutMs } = LOGIN_RATE_LIMIT_DEFAULTS;
    for (let i = 0; i < maxFailures; i++) {
      await rejectsWith(
        c.auth.login({ ...c.loginRequest('alice'), password: `wrong password ${i}` }, CLIENT_ADDR),
        'WARDEN_ERR_LOGIN_FAILED',
        LOGIN_FAILED,
      );
    }
    // Even the right password and code are refused now, without saying whether they were right.
    await rejectsWith(
      c.auth.login(c.loginRequest('alice', c.nextOtp(totpSecret!)), CLIENT_ADDR),
      'WARDEN_ERR_RATE_LIMITED',
      new RegExp(
        `too many failed login attempts for user "alice" from ${CLIENT_ADDR.replace(/\./g, '\\.')}; try again in \\d+m`,
      ),
    );
    // The refusal is audited too, so a brute force shows up in the log.
    const refused = await c.audit.search({ types: ['user.login'], user: 'alice' });
    assert.ok(refused.some((e) => !e.success && /too many failed login attempts/.test(String(e.error))));
    // Another user (from another address) is not affected.
    assert.equal((await c.auth.login(c.loginRequest('bob', c.otp(bobSecret!)), '198.51.100.7')).user, 'bob');
    c.clock.advance(lockoutMs - 3 * STEP_MS);
    await rejectsWith(
      c.auth.login(c.loginRequest('alice', c.nextOtp(totpSecret!)), CLIENT_ADDR),
      'WARDEN_ERR_RATE_LIMITED',
    );
    c.clock.advance(STEP_MS);
    assert.equal(
      (await c.auth.login(c.loginRequest('alice', c.otp(totpSecret!)), CLIENT_ADDR)).user,
      'alice',
    );
  });

  test('an invite made while second factors were off cannot finish once they are on', async () => {
    const c = await startTestCluster({ secondFactor: 'off' });
    const token = await c.invite('alice', ['access']);
    await c.setSecondFactor('otp');
    await rejectsWith(
      c.auth.signupFinish({ token, password: PASSWORD }, CLIENT_ADDR),
      'WARDEN_ERR_INVALID_TOKEN',
      /wctl users reset/,
    );
    // Nothing was spent or written: no secrets exist, so login still fails like an unknown user.
    await rejectsWith(c.auth.login(c.loginRequest('alice'), CLIENT_ADDR), 'WARDEN_ERR_LOGIN_FAILED');
  });

  test('SSH and TLS keys that differ, or are not keys, are refused', async () => {
    const c = await startTestCluster();
    const { totpSecret } = await c.signUp('alice', ['access']);
    const a = newUserKey();
    const b = newUserKey();
    await rejectsWith(
      c.auth.login(
        c.loginRequest('alice', c.nextOtp(totpSecret!), {
          ssh_public_key: a.ssh_public_key,
          tls_public_key: b.tls_public_key,
        }),
        CLIENT_ADDR,
      ),
      'WARDEN_ERR_BAD_PARAMETER',
      'the SSH and TLS public keys in the login request differ',
    );
    await rejectsWith(
      c.auth.login(
        c.loginRequest('alice', c.nextOtp(totpSecret!), {
          ssh_public_key: 'ssh-ed25519 AAAA',
          tls_public_key: 'x',
        }),
        CLIENT_ADDR,
      ),
      'WARDEN_ERR_BAD_PARAMETER',
      /invalid public key/,
    );
    // Ed25519 keys work as well as ECDSA ones.
    const { publicKey } = generateKeyPairSync('ed25519');
    const res = await c.auth.login(
      c.loginRequest('alice', c.nextOtp(totpSecret!), {
        ssh_public_key: formatAuthorizedKey(publicKey),
        tls_public_key: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
      }),
      CLIENT_ADDR,
    );
    assert.equal(parseSshCertificate(res.ssh_cert).keyType, 'ssh-ed25519');
  });

  test('the certificate TTL is the least of the request, the roles’ max_session_ttl and 12 h', async () => {
    const c = await startTestCluster();
    await c.auth.putResource(c.admin, role('short', { options: { max_session_ttl: '1h' } }), {
      force: false,
    });
    const { totpSecret: a } = await c.signUp('alice', ['access', 'short']);
    const { totpSecret: b } = await c.signUp('bob', ['access']);
    const cases: [string, string, number | undefined, number][] = [
      ['alice', a!, undefined, HOUR],
      ['alice', a!, 30 * 60_000, 30 * 60_000],
      ['alice', a!, 2 * HOUR, HOUR],
      ['bob', b!, undefined, 12 * HOUR],
      ['bob', b!, 24 * HOUR, 12 * HOUR],
      ['bob', b!, 2 * HOUR, 2 * HOUR],
    ];
    for (const [user, secret, ttl, want] of cases) {
      const req = c.loginRequest(user, c.nextOtp(secret), ttl === undefined ? {} : { ttl_ms: ttl });
      const now = c.clock.now();
      const res = await c.auth.login(req, CLIENT_ADDR);
      const label = `${user} asking for ${ttl}`;
      assert.equal(Date.parse(res.expires), Math.floor((now + want) / 1000) * 1000, label);
      assert.equal(
        parseSshCertificate(res.ssh_cert).validBefore,
        BigInt(Math.floor((now + want) / 1000)),
        label,
      );
      assert.equal(
        new Date(new X509Certificate(res.tls_cert).validTo).getTime(),
        Date.parse(res.expires),
        label,
      );
    }
  });
});

// ---- Locks -------------------------------------------------------------------------------

describe('locks', () => {
  test('a lock on the user stops their next login, with and without a message', async () => {
    const c = await startTestCluster();
    const { totpSecret } = await c.signUp('alice', ['access']);
    const { totpSecret: bobSecret } = await c.signUp('bob', ['access']);
    const plain = await c.auth.createLock(c.admin, { target: { user: 'alice' } });
    await rejectsWith(
      c.auth.login(c.loginRequest('alice', c.nextOtp(totpSecret!)), CLIENT_ADDR),
      'WARDEN_ERR_LOCKED',
      'lock targeting User:"alice" is in force',
    );
    assert.equal((await c.auth.login(c.loginRequest('bob', c.otp(bobSecret!)), CLIENT_ADDR)).user, 'bob');
    await c.auth.deleteResource(c.admin, 'lock', plain.name);
    assert.equal(
      (await c.auth.login(c.loginRequest('alice', c.nextOtp(totpSecret!)), CLIENT_ADDR)).user,
      'alice',
    );

    await c.auth.createLock(c.admin, { target: { user: 'alice' }, message: 'security review, call IT' });
    await rejectsWith(
      c.auth.login(c.loginRequest('alice', c.nextOtp(totpSecret!)), CLIENT_ADDR),
      'WARDEN_ERR_LOCKED',
      'lock targeting User:"alice" is in force: security review, call IT',
    );
  });

  test('a lock on a role stops the login of its holders', async () => {
    const c = await startTestCluster();
    const { totpSecret } = await c.signUp('alice', ['access', 'auditor']);
    const { totpSecret: bobSecret } = await c.signUp('bob', ['access']);
    await c.auth.createLock(c.admin, { target: { role: 'auditor' }, message: 'audit freeze' });
    await rejectsWith(
      c.auth.login(c.loginRequest('alice', c.nextOtp(totpSecret!)), CLIENT_ADDR),
      'WARDEN_ERR_LOCKED',
      'lock targeting Role:"auditor" is in force: audit freeze',
    );
    assert.equal((await c.auth.login(c.loginRequest('bob', c.otp(bobSecret!)), CLIENT_ADDR)).user, 'bob');
  });

  test('an expired lock no longer applies (--ttl and --expires)', async () => {
    const c = await startTestCluster();
    const { totpSecret } = await c.signUp('alice', ['access']);
    await c.auth.createLock(c.admin, { target: { user: 'alice' }, ttl_ms: 10 * 60_000 });
    c.clock.advance(10 * 60_000 - 2 * STEP_MS);
    await rejectsWith(
      c.auth.login(c.loginRequest('alice', c.nextOtp(totpSecret!)), CLIENT_ADDR),
      'WARDEN_ERR_LOCKED',
    );
    c.clock.advance(STEP_MS);
    assert.equal(
      (await c.auth.login(c.loginRequest('alice', c.otp(totpSecret!)), CLIENT_ADDR)).user,
      'alice',
    );

    const expires = new Date(c.clock.now() + HOUR).toISOString();
    await c.auth.createLock(c.admin, { target: { user: 'alice' }, expires });
    await rejectsWith(
      c.auth.login(c.loginRequest('alice', c.nextOtp(totpSecret!)), CLIENT_ADDR),
      'WARDEN_ERR_LOCKED',
    );
    c.clock.set(Date.parse(expires));
    assert.equal(
      (await c.auth.login(c.loginRequest('alice', c.nextOtp(totpSecret!)), CLIENT_ADDR)).user,
      'alice',
    );
  });

  test('--ttl with --expires, or an expiry in the past, is refused and creates nothing', async () => {
    const c = await startTestCluster();
    const future = new Date(c.clock.now() + HOUR).toISOString();
    await rejectsWith(
      c.auth.createLock(c.admin, { target: { user: 'alice' }, ttl_ms: HOUR, expires: future }),
      'WARDEN_ERR_BAD_PARAMETER',
      'use --ttl or --expires, not both',
    );
    for (const expires of [
      new Date(c.clock.now() - 1000).toISOString(),
      new Date(c.clock.now()).toISOString(),
    ]) {
      await rejectsWith(
        c.auth.createLock(c.admin, { target: { user: 'alice' }, expires }),
        'WARDEN_ERR_BAD_PARAMETER',
        /expire in the past/,
      );
    }
    await rejectsWith(
      c.auth.createLock(c.admin, { target: { user: 'alice' }, expires: 'next tuesday' }),
      'WARDEN_ERR_BAD_RESOURCE',
      /RFC 3339/,
    );
    assert.deepEqual(await c.services.locks.list(), []);
  });

  test('identify() refuses a still-valid certificate of a locked user or role', async () => {
    const c = await startTestCluster();
    const { totpSecret } = await c.signUp('alice', ['access', 'editor']);
    const res = await c.auth.login(c.loginRequest('alice', c.nextOtp(totpSecret!)), CLIENT_ADDR);
    const der = certDer(res.tls_cert);
    assert.equal((await c.auth.identify(der)).user, 'alice');

    const lock = await c.auth.createLock(c.admin, { target: { user: 'alice' }, message: 'stolen laptop' });
    await rejectsWith(
      c.auth.identify(der),
      'WARDEN_ERR_LOCKED',
      'lock targeting User:"alice" is in force: stolen laptop',
    );
    await c.auth.deleteResource(c.admin, 'lock', lock.name);
    assert.equal((await c.auth.identify(der)).user, 'alice');

    await c.auth.createLock(c.admin, { target: { role: 'editor' } });
    await rejectsWith(c.auth.identify(der), 'WARDEN_ERR_LOCKED', 'lock targeting Role:"editor" is in force');
  });

  test('with a lock view, identify() reads it, while login still reads the backend', async () => {
    const c = await startTestCluster();
    const { totpSecret } = await c.signUp('alice', ['access']);
    const res = await c.auth.login(c.loginRequest('alice', c.nextOtp(totpSecret!)), CLIENT_ADDR);
    await c.auth.createLock(c.admin, { target: { user: 'alice' }, message: 'stolen laptop' });
    // A view that has not seen the lock yet (a stand-in for the proxy's cache).
    const viewed = withLockView(c, { lockReason: () => undefined });
    assert.equal((await viewed.identify(certDer(res.tls_cert))).user, 'alice');
    await rejectsWith(
      viewed.login(c.loginRequest('alice', c.nextOtp(totpSecret!)), CLIENT_ADDR),
      'WARDEN_ERR_LOCKED',
      'lock targeting User:"alice" is in force: stolen laptop',
    );
  });

  test('in strict locking mode, identify() refuses while the lock view is stale: LOCK_VIEW_STALE, not LOCKED', async () => {
    const c = await startTestCluster();
    const { totpSecret } = await c.signUp('alice', ['access']);
    const res = await c.auth.login(c.loginRequest('alice', c.nextOtp(totpSecret!)), CLIENT_ADDR);
    const der = certDer(res.tls_cert);
    const locks = c.services.lockCache();
    await locks.start();
    let lockingMode = 'strict';
    const checker = new AccessChecker({
      clock: c.clock,
      locks,
      role: () => undefined,
      clusterSettings: () => ({ deviceTrustMode: 'off', lockingMode }),
      lockMaxStalenessMs: 1000,
    });
    const viewed = withLockView(c, checker);
    assert.equal((await viewed.identify(der)).user, 'alice');
    locks.close(); // the watch is gone: the view is stale from now on
    c.clock.advance(999);
    assert.equal((await viewed.identify(der)).user, 'alice', 'within the bound');
    c.clock.advance(2);
    await rejectsWith(viewed.identify(der), 'WARDEN_ERR_LOCK_VIEW_STALE', STALE_LOCK_VIEW);
    lockingMode = 'best_effort';
    assert.equal((await viewed.identify(der)).user, 'alice', 'best_effort keeps the last view');
  });
});

// ---- Identify ----------------------------------------------------------------------------

describe('identify', () => {
  test('the admin identity from issueAdminIdentity() is admin until it expires', async () => {
    const c = await startTestCluster();
    assert.deepEqual(c.admin, {
      user: ADMIN_USER,
      kind: 'human',
      roles: [],
      logins: [],
      traits: {},
      admin: true,
      clientAddr: '127.0.0.1',
    });
    const id = await c.auth.issueAdminIdentity();
    assert.match(id.keyPem, /BEGIN PRIVATE KEY/);
    const der = certDer(id.certPem);
    assert.equal((await c.auth.identify(der)).admin, true);
    c.clock.set(id.expires.getTime() + 1000);
    await rejectsWith(c.auth.identify(der), 'WARDEN_ERR_BAD_CERTIFICATE');
  });

  test('a new admin identity revokes the one it replaces (regression: both stayed valid for 24 h)', async () => {
    const c = await startTestCluster();
    const first = await c.auth.issueAdminIdentity();
    const other = await c.auth.issueAdminIdentity(); // another replica's, on the same backend
    const second = await c.auth.issueAdminIdentity({ replaces: first.certPem });
    await rejectsWith(
      c.auth.identify(certDer(first.certPem)),
      'WARDEN_ERR_BAD_CERTIFICATE',
      /not valid any more .*refresh or restart/,
    );
    assert.equal((await c.auth.identify(certDer(second.certPem))).admin, true);
    assert.equal((await c.auth.identify(certDer(other.certPem))).admin, true);
    // Garbage where the previous certificate should be: the new one is issued all the same.
    const third = await c.auth.issueAdminIdentity({ replaces: 'not a certificate' });
    assert.equal((await c.auth.identify(certDer(third.certPem))).admin, true);
  });

  test('an @admin certificate whose fingerprint auth did not record is refused', async () => {
    const c = await startTestCluster();
    const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const forged = await c.cas.issueUserCertificates({
      user: ADMIN_USER,
      roles: [],
      logins: [],
      traits: {},
      publicKey,
      ttlMs: HOUR,
    });
    await rejectsWith(
      c.auth.identify(certDer(forged.tlsCert)),
      'WARDEN_ERR_BAD_CERTIFICATE',
      /admin identity/,
    );

    // Nor can a user be called "@admin" (names starting with "@" are reserved), either way.
    await rejectsWith(
      c.auth.addUser(c.admin, { name: ADMIN_USER, roles: ['access'], logins: [] }),
      'WARDEN_ERR_BAD_PARAMETER',
      /reserved/,
    );
    await rejectsWith(
      c.auth.putResource(
        c.admin,
        { kind: 'user', version: 'v2', metadata: { name: ADMIN_USER }, spec: { roles: ['access'] } },
        { force: false },
      ),
      'WARDEN_ERR_BAD_PARAMETER',
      /reserved/,
    );
  });

  test('a user certificate yields the user, roles, logins and traits', async () => {
    const c = await startTestCluster();
    const { totpSecret } = await c.signUp('alice', ['access', 'auditor'], ['root']);
    const res = await c.auth.login(c.loginRequest('alice', c.nextOtp(totpSecret!)), CLIENT_ADDR);
    const x509 = new X509Certificate(res.tls_cert);
    assert.deepEqual(await c.auth.identify(certDer(res.tls_cert)), {
      user: 'alice',
      kind: 'human',
      roles: ['access', 'auditor'],
      logins: ['root'],
      traits: { logins: ['root'] },
      admin: false,
      // Sessions opened with it end then.
      expires: new Date(res.expires),
      // The certificate's key and expiry (device authentication augments this certificate).
      cert: {
        publicKeyDer: x509.publicKey.export({ type: 'spki', format: 'der' }),
        notAfter: new Date(res.expires),
      },
    });
  });

  test('a tampered, foreign or expired certificate is refused', async () => {
    const c = await startTestCluster();
    const { totpSecret } = await c.signUp('alice', ['access']);
    const res = await c.auth.login(c.loginRequest('alice', c.nextOtp(totpSecret!)), CLIENT_ADDR);
    const der = certDer(res.tls_cert);

    const tampered = Buffer.from(der);
    tampered[tampered.length - 1]! ^= 0x01; // last byte of the signature
    await rejectsWith(c.auth.identify(tampered), 'WARDEN_ERR_BAD_CERTIFICATE', /not signed by the user CA/);
    // Bytes that are not a certificate at all get the same code, not an internal error.
    for (const junk of [Buffer.alloc(0), Buffer.from('not a certificate'), der.subarray(0, 100)]) {
      await rejectsWith(c.auth.identify(junk), 'WARDEN_ERR_BAD_CERTIFICATE', /not an X\.509 certificate/);
    }

    const otherCas = await CertAuthorities.init({
      backend: new MemoryBackend({ clock: c.clock }),
      clusterName: CLUSTER_NAME,
      clock: c.clock,
    });
    const foreign = await otherCas.issueUserCertificates({
      user: 'alice',
      roles: ['editor'],
      logins: ['root'],
      traits: {},
      publicKey: createPublicKey(newUserKey().tls_public_key),
      ttlMs: HOUR,
    });
    await rejectsWith(c.auth.identify(certDer(foreign.tlsCert)), 'WARDEN_ERR_BAD_CERTIFICATE');

    c.clock.set(Date.parse(res.expires) + 1000);
    await rejectsWith(c.auth.identify(der), 'WARDEN_ERR_BAD_CERTIFICATE', /expired/);
  });
});

// ---- Permissions -------------------------------------------------------------------------

describe('permissions', () => {
  test('a caller with only `access` cannot write roles, users, locks or read the audit log', async () => {
    const c = await startTestCluster();
    const alice = await userCaller(c, 'alice', ['access']);
    await rejectsWith(
      c.auth.putResource(alice, role('mine', { allow: { logins: ['root'] } }), { force: false }),
      'WARDEN_ERR_ACCESS_DENIED',
      /lacks permission "create" on "role"/,
    );
    // Whether the role exists or not, with or without force, the denial is the same
    // (regression: it said "update" for existing names, revealing them).
    for (const name of ['editor', 'no-such-role']) {
      for (const force of [false, true]) {
        await rejectsWith(
          c.auth.putResource(alice, role(name, { allow: { logins: ['root'] } }), { force }),
          'WARDEN_ERR_ACCESS_DENIED',
          'access denied: user "alice" lacks permission "create" on "role" (roles: access)',
        );
      }
    }
    await rejectsWith(
      c.auth.addUser(alice, { name: 'eve', roles: ['editor'], logins: [] }),
      'WARDEN_ERR_ACCESS_DENIED',
      /"create" on "user"/,
    );
    await rejectsWith(
      c.auth.createLock(alice, { target: { user: 'bob' } }),
      'WARDEN_ERR_ACCESS_DENIED',
      /"create" on "lock"/,
    );
    await rejectsWith(
      c.auth.deleteResource(alice, 'role', 'editor'),
      'WARDEN_ERR_ACCESS_DENIED',
      /"delete" on "role"/,
    );
    await rejectsWith(c.auth.searchAudit(alice, {}), 'WARDEN_ERR_ACCESS_DENIED', /"list" on "event"/);
    await rejectsWith(c.auth.resetUser(alice, 'alice'), 'WARDEN_ERR_ACCESS_DENIED', /"update" on "user"/);
    // Nothing changed.
    assert.equal(await c.services.roles.find('mine'), undefined);
    assert.equal(await c.services.users.find('eve'), undefined);
    assert.ok(await c.services.roles.find('editor'));
    assert.deepEqual(await c.services.locks.list(), []);
    const denied = await c.audit.search({ types: ['access.denied'], user: 'alice' });
    assert.equal(denied.length, 10);
  });

  test('an editor manages roles, users and locks', async () => {
    const c = await startTestCluster();
    const ed = await userCaller(c, 'ed', ['editor']);
    assert.equal(
      (await c.auth.putResource(ed, role('mine', { allow: { logins: ['root'] } }), { force: false })).outcome,
      'created',
    );
    assert.equal(
      (await c.auth.putResource(ed, role('mine', { allow: { logins: ['admin'] } }), { force: true })).outcome,
      'updated',
    );
    const invite = await c.auth.addUser(ed, { name: 'bob', roles: ['mine'], logins: [] });
    assert.equal(invite.user, 'bob');
    assert.match(invite.signup_command, new RegExp(`--token=${invite.token} `));
    await c.auth.createLock(ed, { target: { user: 'bob' } });
    assert.equal((await c.auth.listResources(ed, 'cert_authority')).length, 5);
    // But CAs stay read-only for editors.
    await rejectsWith(c.auth.deleteResource(ed, 'cert_authority', 'user'), 'WARDEN_ERR_ACCESS_DENIED');
  });

  test('with a live role view, permissions read it (no backend read per call); a denial is confirmed by the backend; a stale view refuses', async () => {
    const c = await startTestCluster();
    const ed = await userCaller(c, 'ed', ['editor']);
    // The process's role view, controlled here: what it holds, how stale it is.
    const view = new Map((await c.services.roles.list()).map((r) => [r.metadata.name, r]));
    let staleFor = 0;
    const checker = new AccessChecker({
      clock: c.clock,
      locks: { values: () => [], staleForMs: () => 0 },
      role: (name) => view.get(name),
      roleViewStaleForMs: () => staleFor,
      clusterSettings: () => ({ deviceTrustMode: 'off', lockingMode: 'best_effort' }),
      lockMaxStalenessMs: 1000,
    });
    const viewed = withLockView(c, checker);
    let reads = 0;
    const find = c.services.roles.find.bind(c.services.roles);
    c.services.roles.find = (name: string) => {
      reads++;
      return find(name);
    };

    assert.ok((await viewed.listResources(ed, 'role')).length > 0);
    await viewed.createLock(ed, { target: { user: 'bob' } });
    assert.equal(reads, 0, 'allowed by the live view: no role read from the backend');

    // A role stored a moment ago that the view has not seen yet: the backend confirms the grant.
    await c.auth.putResource(
      c.admin,
      role('reader', { allow: { rules: [{ resources: ['event'], verbs: ['list'] }] } }),
      { force: false },
    );
    const alice = makeIdentity({ user: 'alice', roles: ['access', 'reader'], clientAddr: CLIENT_ADDR });
    await viewed.searchAudit(alice, {});
    assert.ok(reads > 0, 'the denial by the view was asked of the backend');
    view.set('reader', (await find('reader'))!);
    reads = 0;
    await viewed.searchAudit(alice, {});
    assert.equal(reads, 0, 'once the view has it, the backend is not asked');

    // A role of the certificate that no longer exists grants nothing, and the event names it.
    const gone = makeIdentity({ user: 'gina', roles: ['access', 'gone'], clientAddr: CLIENT_ADDR });
    await rejectsWith(
      viewed.createLock(gone, { target: { user: 'bob' } }),
      'WARDEN_ERR_ACCESS_DENIED',
      /lacks permission "create" on "lock" \(roles: access\)/,
    );
    const [event] = await c.audit.search({ types: ['access.denied'], user: 'gina' });
    assertFields(event, { roles: ['access', 'gone'], missing_roles: ['gone'], protocol: 'api' });

    // A view stale beyond the bound (or never listed) cannot grant anything: refused.
    staleFor = 1001;
    await rejectsWith(viewed.listResources(ed, 'role'), 'WARDEN_ERR_ROLE_VIEW_STALE', ROLE_VIEW_STALE);
    staleFor = Number.POSITIVE_INFINITY;
    await rejectsWith(
      viewed.putResource(ed, role('mine', {}), { force: false }),
      'WARDEN_ERR_ROLE_VIEW_STALE',
      ROLE_VIEW_STALE,
    );
    assert.equal(await find('mine'), undefined, 'nothing written');
    assert.ok((await viewed.listResources(c.admin, 'role')).length > 0, 'the admin identity needs no roles');
    staleFor = 1000;
    assert.ok((await viewed.listResources(ed, 'role')).length > 0, 'within the bound');
  });

  test('an auditor can search the audit log but not create users', async () => {
    const c = await startTestCluster();
    const au = await userCaller(c, 'au', ['auditor']);
    const events = await c.auth.searchAudit(au, { types: ['user.login'] });
    assert.ok(events.some((e) => e.user === 'au' && e.success === true));
    await rejectsWith(
      c.auth.addUser(au, { name: 'eve', roles: ['access'], logins: [] }),
      'WARDEN_ERR_ACCESS_DENIED',
      /lacks permission "create" on "user"/,
    );
    await rejectsWith(
      c.auth.putResource(au, role('mine', {}), { force: false }),
      'WARDEN_ERR_ACCESS_DENIED',
      /"create" on "role"/,
    );
  });

  test('the admin can do everything', async () => {
    const c = await startTestCluster();
    const a = c.admin;
    assert.equal((await c.auth.putResource(a, role('mine', {}), { force: false })).outcome, 'created');
    await c.auth.addUser(a, { name: 'bob', roles: ['mine'], logins: [] });
    await c.auth.resetUser(a, 'bob');
    const { name } = await c.auth.createLock(a, { target: { user: 'bob' } });
    assert.ok((await c.auth.listResources(a, 'lock')).some((l) => l.metadata.name === name));
    await c.auth.deleteResource(a, 'lock', name);
    await c.auth.deleteResource(a, 'user', 'bob');
    await c.auth.deleteResource(a, 'role', 'mine');
    assert.ok((await c.auth.searchAudit(a, {})).length > 0);
    assert.equal(
      (await c.auth.getResource(a, 'cluster_auth_preference', AUTH_PREFERENCE_NAME)).kind,
      'cluster_auth_preference',
    );
  });
});

// ---- Resources ---------------------------------------------------------------------------

describe('resources', () => {
  test('an existing role needs force; with force it is updated', async () => {
    const c = await startTestCluster();
    const first = role('ops', { allow: { logins: ['ubuntu'] } });
    assert.equal((await c.auth.putResource(c.admin, first, { force: false })).outcome, 'created');
    await rejectsWith(
      c.auth.putResource(c.admin, role('ops', { allow: { logins: ['root'] } }), { force: false }),
      'WARDEN_ERR_ALREADY_EXISTS',
      'role "ops" already exists; use -f/--force to overwrite it',
    );
    assert.deepEqual((await c.services.roles.get('ops')).spec.allow.logins, ['ubuntu']);
    const { outcome, resource } = await c.auth.putResource(
      c.admin,
      role('ops', { allow: { logins: ['root'] } }),
      {
        force: true,
      },
    );
    assert.equal(outcome, 'updated');
    assert.deepEqual((resource as RoleResource).spec.allow.logins, ['root']);
    assert.deepEqual((await c.services.roles.get('ops')).spec.allow.logins, ['root']);
    // A preset role too (`wctl create -f`).
    assert.equal(
      (await c.auth.putResource(c.admin, role('access', { allow: { logins: ['x'] } }), { force: true }))
        .outcome,
      'updated',
    );
  });

  test('a stale expectedRevision is refused with COMPARE_FAILED', async () => {
    const c = await startTestCluster();
    await c.auth.putResource(c.admin, role('ops', { allow: { logins: ['ubuntu'] } }), { force: false });
    const read = (await c.auth.getResource(c.admin, 'role', 'ops')) as RoleResource;
    const rev = read.metadata.revision!;
    const edited = { ...read, spec: { ...read.spec, allow: { logins: ['root'] } } };
    const r = await c.auth.putResource(c.admin, edited, { force: true, expectedRevision: rev });
    assert.equal(r.outcome, 'updated');
    await rejectsWith(
      c.auth.putResource(
        c.admin,
        { ...edited, spec: { ...read.spec, allow: { logins: ['other'] } } },
        {
          force: true,
          expectedRevision: rev,
        },
      ),
      'WARDEN_ERR_COMPARE_FAILED',
      /changed since it was read/,
    );
    assert.deepEqual((await c.services.roles.get('ops')).spec.allow.logins, ['root']);
  });

  test('a cluster_auth_preference update is reported as updated and ping() shows it', async () => {
    const c = await startTestCluster();
    const before = await c.auth.ping();
    assert.equal(before.cluster_name, CLUSTER_NAME);
    // A new cluster: device trust optional (issue 5).
    assert.deepEqual(before.auth, {
      type: 'local',
      second_factor: 'otp',
      device_trust_mode: 'optional',
      auto_enroll: false,
    });
    const cap = {
      kind: 'cluster_auth_preference',
      version: 'v2',
      metadata: { name: AUTH_PREFERENCE_NAME },
      spec: { type: 'local', second_factor: 'off', device_trust: { mode: 'required' } },
    };
    const first = await c.auth.putResource(c.admin, cap, { force: false });
    assert.equal(first.outcome, 'updated');
    assert.equal(first.resource.metadata.labels?.['warden.dev/origin'], 'dynamic');
    assert.deepEqual((await c.auth.ping()).auth, {
      type: 'local',
      second_factor: 'off',
      device_trust_mode: 'required',
      auto_enroll: false,
    });
    // Again, now that one is stored, without force (there is always exactly one).
    const again = await c.auth.putResource(
      c.admin,
      { ...cap, spec: { ...cap.spec, device_trust: { mode: 'optional' } } },
      { force: false },
    );
    assert.equal(again.outcome, 'updated');
    assert.equal((await c.auth.ping()).auth.device_trust_mode, 'optional');
    // With a stale revision: refused.
    await rejectsWith(
      c.auth.putResource(c.admin, cap, { force: true, expectedRevision: first.resource.metadata.revision! }),
      'WARDEN_ERR_COMPARE_FAILED',
    );
  });

  test('cert_authority cannot be written or deleted; cluster_auth_preference cannot be deleted', async () => {
    const c = await startTestCluster();
    const ca = await c.auth.getResource(c.admin, 'cert_authority', 'user');
    for (const force of [false, true]) {
      await rejectsWith(
        c.auth.putResource(c.admin, ca as unknown as Record<string, unknown>, { force }),
        'WARDEN_ERR_BAD_PARAMETER',
        /certificate authorities are managed by warden/,
      );
    }
    await rejectsWith(
      c.auth.deleteResource(c.admin, 'cert_authority', 'user'),
      'WARDEN_ERR_BAD_PARAMETER',
      /cannot be deleted/,
    );
    await rejectsWith(
      c.auth.deleteResource(c.admin, 'cluster_auth_preference', AUTH_PREFERENCE_NAME),
      'WARDEN_ERR_BAD_PARAMETER',
      /cannot be deleted/,
    );
    assert.deepEqual(c.cas.tlsCertPems('user').length, 1);
    assert.equal(c.auth.exportAuthority('user').line, c.cas.exportUserLine());
    assert.throws(
      () => c.auth.exportAuthority('db'),
      (e) => isWardenError(e, 'WARDEN_ERR_BAD_PARAMETER'),
    );
  });

  test('users: unknown roles and duplicates are refused; listings carry no secret', async () => {
    const c = await startTestCluster();
    await rejectsWith(
      c.auth.addUser(c.admin, { name: 'alice', roles: ['access', 'no-such-role'], logins: [] }),
      'WARDEN_ERR_NOT_FOUND',
      /role "no-such-role" does not exist/,
    );
    assert.equal(await c.services.users.find('alice'), undefined);
    const { totpSecret } = await c.signUp('alice', ['access'], ['root']);
    await rejectsWith(
      c.auth.addUser(c.admin, { name: 'alice', roles: ['editor'], logins: [] }),
      'WARDEN_ERR_ALREADY_EXISTS',
    );
    const listed = JSON.stringify([
      await c.auth.listResources(c.admin, 'user'),
      await c.auth.getResource(c.admin, 'user', 'alice'),
    ]);
    assert.match(listed, /"alice"/);
    assert.ok(!listed.includes(totpSecret!));
    assert.ok(!/password|totp|\$scrypt\$/.test(listed), listed);
    // The one from the failed duplicate did not replace alice's roles.
    assert.deepEqual((await c.services.users.get('alice')).spec.roles, ['access']);
  });

  test('deleting a user removes their secrets and invites', async () => {
    const c = await startTestCluster();
    const { totpSecret } = await c.signUp('alice', ['access']);
    const bobToken = await c.invite('bob', ['access']);
    await c.auth.deleteResource(c.admin, 'user', 'alice');
    await c.auth.deleteResource(c.admin, 'user', 'bob');
    assert.deepEqual((await c.backend.range('/local_auth/')).items, []);
    await rejectsWith(
      c.auth.login(c.loginRequest('alice', c.nextOtp(totpSecret!)), CLIENT_ADDR),
      'WARDEN_ERR_LOGIN_FAILED',
      LOGIN_FAILED,
    );
    await rejectsWith(c.auth.signupBegin(bobToken), 'WARDEN_ERR_INVALID_TOKEN');
    // A new alice starts from scratch: the old password is gone.
    await c.invite('alice', ['access']);
    await rejectsWith(
      c.auth.login(c.loginRequest('alice', c.nextOtp(totpSecret!)), CLIENT_ADDR),
      'WARDEN_ERR_LOGIN_FAILED',
    );
    await rejectsWith(c.auth.deleteResource(c.admin, 'user', 'nobody'), 'WARDEN_ERR_NOT_FOUND');
  });

  test('resetUser issues a new invite, kills the old password and the old invite', async () => {
    const c = await startTestCluster();
    const { totpSecret } = await c.signUp('alice', ['access']);
    const pendingToken = await c.invite('bob', ['access']);

    const reset = await c.auth.resetUser(c.admin, 'alice');
    assert.equal(reset.user, 'alice');
    await rejectsWith(
      c.auth.login(c.loginRequest('alice', c.nextOtp(totpSecret!)), CLIENT_ADDR),
      'WARDEN_ERR_LOGIN_FAILED',
      LOGIN_FAILED,
    );
    const begun = await c.auth.signupBegin(reset.token);
    assert.notEqual(begun.totp!.secret, totpSecret, 'a new TOTP secret');
    const newPassword = 'a brand new passphrase';
    await c.auth.signupFinish(
      { token: reset.token, password: newPassword, otp_code: c.otp(begun.totp!.secret) },
      CLIENT_ADDR,
    );
    await rejectsWith(
      c.auth.login(c.loginRequest('alice', c.nextOtp(begun.totp!.secret)), CLIENT_ADDR),
      'WARDEN_ERR_LOGIN_FAILED',
    );
    const ok = await c.auth.login(
      { ...c.loginRequest('alice', c.nextOtp(begun.totp!.secret)), password: newPassword },
      CLIENT_ADDR,
    );
    assert.equal(ok.user, 'alice');

    // Resetting a user who has not signed up yet replaces their invite.
    const bobReset = await c.auth.resetUser(c.admin, 'bob');
    await rejectsWith(c.auth.signupBegin(pendingToken), 'WARDEN_ERR_INVALID_TOKEN');
    assert.equal((await c.auth.signupBegin(bobReset.token)).user, 'bob');
    await rejectsWith(c.auth.resetUser(c.admin, 'nobody'), 'WARDEN_ERR_NOT_FOUND');
  });
});

// ---- Audit -------------------------------------------------------------------------------

describe('audit', () => {
  test('every step of a scenario is audited with the right user and outcome, and no secret', async () => {
    const c = await startTestCluster();
    const secrets: string[] = [PASSWORD];
    await c.auth.putResource(c.admin, role('ops', { allow: { logins: ['ubuntu'] } }), { force: false });
    await c.auth.putResource(c.admin, role('ops', { allow: { logins: ['root'] } }), { force: true });
    const token = await c.invite('alice', ['access', 'ops'], ['alice']);
    secrets.push(token);
    const secret = (await c.auth.signupBegin(token)).totp!.secret;
    secrets.push(secret);
    await assert.rejects(
      c.auth.signupFinish({ token, password: 'weak', otp_code: c.otp(secret) }, CLIENT_ADDR),
    );
    const signupCode = c.otp(secret);
    await c.auth.signupFinish({ token, password: PASSWORD, otp_code: signupCode }, CLIENT_ADDR);
    await assert.rejects(
      c.auth.login(
        { ...c.loginRequest('alice', c.nextOtp(secret)), password: 'wrong password!!' },
        CLIENT_ADDR,
      ),
    );
    const loginCode = c.nextOtp(secret);
    await c.auth.login(c.loginRequest('alice', loginCode), CLIENT_ADDR);
    // Quoted: a bare 6-digit string could occur by chance inside an ID.
    secrets.push(JSON.stringify(signupCode), JSON.stringify(loginCode));
    await c.auth.createLock(c.admin, { target: { user: 'alice' }, message: 'gone fishing', ttl_ms: HOUR });
    await assert.rejects(c.auth.login(c.loginRequest('alice', c.nextOtp(secret)), CLIENT_ADDR));
    await c.auth.putResource(
      c.admin,
      {
        kind: 'cluster_auth_preference',
        version: 'v2',
        metadata: { name: AUTH_PREFERENCE_NAME },
        spec: { second_factor: 'otp', device_trust: { mode: 'optional' } },
      },
      { force: false },
    );

    const events = await c.auth.searchAudit(c.admin, { limit: 1000 });
    const find = (type: string, pred: (e: Record<string, unknown>) => boolean = () => true) => {
      const hits = events.filter((e) => e.type === type && pred(e));
      assert.ok(hits.length > 0, `no ${type} event in ${JSON.stringify(events.map((e) => e.type))}`);
      return hits;
    };
    const ADMIN = { user: ADMIN_USER, success: true };
    assertFields(find('role.created')[0], { ...ADMIN, name: 'ops' });
    assertFields(find('role.updated')[0], { ...ADMIN, name: 'ops' });
    assertFields(find('user.create')[0], { ...ADMIN, name: 'alice', roles: ['access', 'ops'] });
    assertFields(find('user.signup', (e) => e.success === false)[0], {
      user: 'alice',
      addr: CLIENT_ADDR,
      error: 'password must be at least 12 characters long',
    });
    assertFields(find('user.signup', (e) => e.success === true)[0], { user: 'alice', addr: CLIENT_ADDR });
    const logins = find('user.login');
    assert.ok(logins.some((e) => e.success === true && e.user === 'alice' && e.method === 'local'));
    assert.ok(logins.some((e) => e.success === false && e.user === 'alice' && e.error === 'wrong password'));
    assert.ok(
      logins.some(
        (e) =>
          e.success === false &&
          e.user === 'alice' &&
          e.error === 'lock targeting User:"alice" is in force: gone fishing',
      ),
    );
    const [cert] = find('cert.create');
    assertFields(cert, { user: 'alice', success: true, cert_type: 'user', roles: ['access', 'ops'] });
    assert.deepEqual([...(cert!.logins as string[])].sort(), ['alice', 'root']);
    assertFields(find('lock.created')[0], {
      ...ADMIN,
      target: { user: 'alice' },
      message: 'gone fishing',
      expires: new Date(Date.parse(String(find('lock.created')[0]!.time)) + HOUR).toISOString(),
    });
    assertFields(find('cluster_auth_preference.updated')[0], {
      ...ADMIN,
      second_factor: 'otp',
      device_trust_mode: 'optional',
    });
    for (const e of events) assert.equal(e.redacted, undefined, `${e.type} carried a secret-named field`);

    const all = JSON.stringify(events);
    for (const s of secrets) assert.ok(!all.includes(s), `an audit event contains the secret ${s}`);
    // The stored secrets of alice (hash included) appear nowhere either.
    const stored = JSON.parse((await c.backend.get('/local_auth/secrets/alice'))!.value) as {
      password_hash: string;
    };
    assert.ok(!all.includes(stored.password_hash.split('$')[4]!));
    assert.deepEqual(
      c.logger.lines.filter((l) => l.level === 'error'),
      [],
    );
  });
});
