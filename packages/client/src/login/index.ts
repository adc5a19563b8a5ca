/**
 * Client ceremonies for signup and login. Each step is one message of the protocol; the
 * questions (password, OTP) come from callbacks so the CLI can prompt or read stdin and tests
 * can answer directly.
 *
 *   signup: 1. trust the proxy  2. begin (token → user, TOTP secret)  3. ask password (+ OTP)
 *           4. finish (token spent, password and TOTP set)
 *   login:  1. trust the proxy  2. new key  3. ask password (+ OTP)  4. login → certificates
 *           5. save the profile
 */
import { createHash } from 'node:crypto';
import { type rpc, WardenError } from '@warden/api';
import { ApiClient, establishTrust } from '../api';
import { UserKey } from '../keys';
import { type LoadedProfile, loginProfile, type ProfileStore, requireUnexpired } from '../profile';

export interface TrustFlags {
  proxy: string;
  caPin?: string;
  insecure?: boolean;
}

export interface SignupQuestions {
  /** Called once with the otpauth:// URI (when the cluster uses TOTP) before asking for a code. */
  showTotp(uri: string, secret: string): void | Promise<void>;
  /**
   * Asks for the new password; `policy` states the rule ("at least 12 characters"), and
   * `problem` why the last answer was refused. Called again after a refused answer.
   */
  password(policy: string, problem?: string): Promise<string>;
  otp(): Promise<string>;
}

const DEFAULT_POLICY: rpc.PasswordPolicy = { min_chars: 12, max_bytes: 1024, text: 'at least 12 characters' };

/** Why `password` breaks the server's policy (the server checks again), or undefined. */
export function passwordProblem(
  password: string,
  policy: rpc.PasswordPolicy = DEFAULT_POLICY,
): string | undefined {
  if (Buffer.byteLength(password, 'utf8') > policy.max_bytes)
    return `the password must be at most ${policy.max_bytes} bytes long`;
  if (/\p{Cc}/u.test(password)) return 'the password must not contain control characters';
  if ([...password.normalize('NFKC')].length < policy.min_chars)
    return `the password must be at least ${policy.min_chars} characters long`;
  if (password.trim().length === 0) return 'the password must not be only whitespace';
  return undefined;
}

/** How many times a refused password is asked again before signup gives up. */
const PASSWORD_TRIES = 3;

/**
 * Signs up with an invite token and, unless `login: false`, logs in at the end (the server
 * issues the certificates with the signup, so no second OTP code is needed): returns the
 * saved profile then.
 */
export async function signup(
  store: ProfileStore,
  flags: TrustFlags & { token: string; ttlMs?: number },
  ask: SignupQuestions,
): Promise<{ user: string; profile?: LoadedProfile; ping: rpc.PingResponse }> {
  // 1. Trust the proxy (its ping also says what follows a login: e.g. auto-enrollment).
  const trust = await establishTrust({ ...flags, knownCaPems: store.trustedCas(flags.proxy) });
  const api = new ApiClient({ proxy: flags.proxy, caPems: trust.hostCaPems, insecure: trust.insecure });
  // 2. Begin: the server checks the token and proposes a TOTP secret.
  const begin = await api.signupBegin(flags.token);
  // 3. Questions: the password, checked against the policy before the second factor.
  const policy = begin.password_policy ?? DEFAULT_POLICY;
  let password = await ask.password(policy.text);
  for (let i = 1; passwordProblem(password, policy) !== undefined; i++) {
    const problem = passwordProblem(password, policy)!;
    if (i >= PASSWORD_TRIES) throw new WardenError('WARDEN_ERR_BAD_PARAMETER', problem);
    password = await ask.password(policy.text, problem);
  }
  let otp: string | undefined;
  if (begin.totp) {
    await ask.showTotp(begin.totp.uri, begin.totp.secret);
    otp = (await ask.otp()).trim();
  }
  // 4. Finish, with a fresh key: the response carries its certificates.
  const key = UserKey.generate();
  const res = await api.signupFinish({
    token: flags.token,
    password,
    otp_code: otp,
    ssh_public_key: key.sshPublicKey(),
    tls_public_key: key.spkiPem(),
    ttl_ms: flags.ttlMs,
  });
  if (!trust.insecure) store.trust(flags.proxy, trust.hostCaPems);
  if (otp) rememberOtp(store, res.user, otp, Date.now());
  // 5. Save the profile.
  if (!res.login) return { user: res.user, ping: trust.ping };
  return { user: res.user, profile: saveLogin(store, flags.proxy, trust, key, res.login), ping: trust.ping };
}

/** The profile for a login response (login, and signup's login). */
function saveLogin(
  store: ProfileStore,
  proxy: string,
  trust: { insecure: boolean; hostCaPems: string[] },
  key: UserKey,
  res: rpc.LoginResponse,
): LoadedProfile {
  const { profile, secrets } = loginProfile(res, {
    proxy,
    insecure: trust.insecure,
    hostCaPems: trust.insecure ? res.host_ca_pems : trust.hostCaPems,
    key,
  });
  return store.save(profile, secrets);
}

/** How long a code stays "just used" for the hint (TOTP windows are 30 s; servers allow ±1). */
const OTP_REUSE_WINDOW_MS = 90_000;

/**
 * Remembers (a hash of) the OTP code just sent for `user`, so a refused login with the same
 * code can say "already used — wait for the next one" without the server telling anyone
 * which part of a login failed.
 */
function rememberOtp(store: ProfileStore, user: string, code: string, now: number): void {
  store.setLastOtp({ user, code_sha256: sha256(`${user}\0${code}`), at: now });
}

function otpJustUsed(store: ProfileStore, user: string, code: string, now: number): boolean {
  const last = store.lastOtp();
  return (
    last !== undefined &&
    last.user === user &&
    last.code_sha256 === sha256(`${user}\0${code}`) &&
    now - last.at < OTP_REUSE_WINDOW_MS
  );
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

export interface LoginQuestions {
  password(): Promise<string>;
  otp(): Promise<string>;
}

export async function login(
  store: ProfileStore,
  flags: TrustFlags & { user: string; ttlMs?: number },
  ask: LoginQuestions,
): Promise<LoadedProfile> {
  return (await loginWithPing(store, flags, ask)).profile;
}

/**
 * `login`, also returning the proxy's answer to the ping that established trust (its auth
 * settings, e.g. `auto_enroll`), so that what follows the login (`wsh login`'s device step)
 * needs no second ping.
 */
export async function loginWithPing(
  store: ProfileStore,
  flags: TrustFlags & { user: string; ttlMs?: number },
  ask: LoginQuestions,
): Promise<{ profile: LoadedProfile; ping: rpc.PingResponse }> {
  // 1. Trust the proxy and learn whether it wants a second factor.
  const trust = await establishTrust({ ...flags, knownCaPems: store.trustedCas(flags.proxy) });
  const api = new ApiClient({ proxy: flags.proxy, caPems: trust.hostCaPems, insecure: trust.insecure });
  // 2. A fresh key for this login.
  const key = UserKey.generate();
  // 3. Questions.
  const password = await ask.password();
  const otp = trust.ping.auth.second_factor === 'off' ? undefined : (await ask.otp()).trim();
  // 4. Login.
  let res: rpc.LoginResponse;
  try {
    res = await api.login({
      user: flags.user,
      password,
      otp_code: otp,
      ssh_public_key: key.sshPublicKey(),
      tls_public_key: key.spkiPem(),
      ttl_ms: flags.ttlMs,
    });
  } catch (e) {
    if (
      otp &&
      e instanceof WardenError &&
      e.code === 'WARDEN_ERR_LOGIN_FAILED' &&
      otpJustUsed(store, flags.user, otp, Date.now())
    ) {
      throw new WardenError(
        'WARDEN_ERR_LOGIN_FAILED',
        'that OTP code was already used (each code works once) — wait for the next one in your authenticator app and log in again',
      );
    }
    throw e;
  }
  if (otp) rememberOtp(store, flags.user, otp, Date.now());
  // 5. Save.
  return { profile: saveLogin(store, flags.proxy, trust, key, res), ping: trust.ping };
}

/** An API client authenticated with the profile's certificate. */
export function clientForProfile(profile: LoadedProfile): ApiClient {
  requireUnexpired(profile);
  return new ApiClient({
    proxy: profile.proxy,
    caPems: profile.hostCaPems,
    insecure: profile.insecure,
    identity: { certPem: profile.tlsCert, keyPem: profile.keyPem },
  });
}
