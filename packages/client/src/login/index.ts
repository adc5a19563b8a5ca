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
import { WardenError } from '@warden/api';
import { ApiClient, establishTrust } from '../api';
import { UserKey } from '../keys';
import type { LoadedProfile, ProfileStore } from '../profile';

export interface TrustFlags {
  proxy: string;
  caPin?: string;
  insecure?: boolean;
}

export interface SignupQuestions {
  /** Called once with the otpauth:// URI (when the cluster uses TOTP) before asking for a code. */
  showTotp(uri: string, secret: string): void | Promise<void>;
  password(): Promise<string>;
  otp(): Promise<string>;
}

export async function signup(
  store: ProfileStore,
  flags: TrustFlags & { token: string },
  ask: SignupQuestions,
): Promise<{ user: string }> {
  // 1. Trust the proxy.
  const trust = await establishTrust({ ...flags, knownCaPems: store.trustedCas(flags.proxy) });
  const api = new ApiClient({ proxy: flags.proxy, caPems: trust.hostCaPems, insecure: trust.insecure });
  // 2. Begin: the server checks the token and proposes a TOTP secret.
  const begin = await api.signupBegin(flags.token);
  // 3. Questions.
  const password = await ask.password();
  let otp: string | undefined;
  if (begin.totp) {
    await ask.showTotp(begin.totp.uri, begin.totp.secret);
    otp = (await ask.otp()).trim();
  }
  // 4. Finish.
  const res = await api.signupFinish({ token: flags.token, password, otp_code: otp });
  if (!trust.insecure) store.trust(flags.proxy, trust.hostCaPems);
  return res;
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
  // 1. Trust the proxy and learn whether it wants a second factor.
  const trust = await establishTrust({ ...flags, knownCaPems: store.trustedCas(flags.proxy) });
  const api = new ApiClient({ proxy: flags.proxy, caPems: trust.hostCaPems, insecure: trust.insecure });
  // 2. A fresh key for this login.
  const key = UserKey.generate();
  // 3. Questions.
  const password = await ask.password();
  const otp = trust.ping.auth.second_factor === 'off' ? undefined : (await ask.otp()).trim();
  // 4. Login.
  const res = await api.login({
    user: flags.user,
    password,
    otp_code: otp,
    ssh_public_key: key.sshPublicKey(),
    tls_public_key: key.spkiPem(),
    ttl_ms: flags.ttlMs,
  });
  // 5. Save.
  return store.save(
    {
      proxy: flags.proxy,
      cluster: res.cluster_name,
      user: res.user,
      roles: res.roles,
      logins: res.logins,
      expires: res.expires,
      insecure: trust.insecure,
    },
    {
      keyPem: key.privatePem(),
      sshPublicKey: key.sshPublicKey(),
      sshCert: res.ssh_cert,
      tlsCert: res.tls_cert,
      userCaPems: res.user_ca_pems,
      hostCaPems: trust.insecure ? res.host_ca_pems : trust.hostCaPems,
      knownHosts: res.host_ca_known_hosts,
    },
  );
}

/** An API client authenticated with the profile's certificate. */
export function clientForProfile(profile: LoadedProfile): ApiClient {
  if (Date.parse(profile.expires) <= Date.now()) {
    throw new WardenError(
      'WARDEN_ERR_NOT_LOGGED_IN',
      `your certificates for ${profile.proxy} expired at ${profile.expires}; run \`wsh login --proxy=${profile.proxy} --user=${profile.user}\``,
    );
  }
  return new ApiClient({
    proxy: profile.proxy,
    caPems: profile.hostCaPems,
    insecure: profile.insecure,
    identity: { certPem: profile.tlsCert, keyPem: profile.keyPem },
  });
}
