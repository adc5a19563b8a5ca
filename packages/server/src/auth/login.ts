/**
 * Signup with invite tokens and login (password + TOTP → SSH and X.509 certificates), plus
 * the unauthenticated `ping`. Nothing here needs a caller: these are the entry points that
 * make one.
 *
 * Login, in order, failing closed at each step:
 *   1. rate limit (user and source address)  2. user and secrets (unknown users cost the same)
 *   3. password  4. TOTP (not a replay: the step is stored with compare-and-swap)
 *   5. locks on the user and their roles  6. logins and TTL from roles  7. certificates
 *
 * Internal to `auth/`; the public surface is `auth/index.ts`.
 */
import {
  type AuthPreferenceResource,
  isWardenError,
  type rpc,
  type UserResource,
  WardenError,
} from '@warden/api';
import type { z } from 'zod';
import { strictestDeviceTrustMode } from '../access';
import { clientKey, type Entitlements, entitlements, userCertificates } from './certificates';
import { type AuthDeps, auditWith, findRoles } from './deps';
import type { LocalAuthStore } from './local-auth';
import {
  checkPasswordPolicy,
  hashPassword,
  needsRehash,
  PASSWORD_MAX_BYTES,
  PASSWORD_MIN_CHARS,
  verifyPassword,
  verifyPasswordForUnknownUser,
} from './password';
import type { LoginRateLimiter } from './rate-limit';
import { otpauthUri, verifyTotp } from './totp';

/** What a verified login grants: logins, the certificate TTL and SSH permits (from roles). */
interface Grant extends Entitlements {
  user: UserResource;
}

/** Who signed in to the Web UI, and how long their session may live (their certificate TTL). */
export interface WebLogin {
  user: string;
  roles: string[];
  logins: string[];
  traits: Record<string, string[]>;
  ttlMs: number;
}

export interface LoginServiceOptions extends AuthDeps {
  local: LocalAuthStore;
  limiter: LoginRateLimiter;
  serverVersion: string;
}

export class LoginService {
  readonly #o: LoginServiceOptions;
  readonly #audit: ReturnType<typeof auditWith>;

  constructor(o: LoginServiceOptions) {
    this.#o = o;
    this.#audit = auditWith(o);
  }

  #now(): number {
    return this.#o.clock.now();
  }

  authPreference(): Promise<AuthPreferenceResource> {
    return this.#o.services.authPreference.get();
  }

  async ping(): Promise<rpc.PingResponse> {
    const cap = await this.authPreference();
    return {
      cluster_name: this.#o.clusterName,
      server_version: this.#o.serverVersion,
      proxy_public_addr: this.#o.proxyPublicAddr,
      host_ca_pems: this.#o.cas.tlsCertPems('host'),
      auth: {
        type: cap.spec.type,
        second_factor: cap.spec.second_factor,
        device_trust_mode: cap.spec.device_trust?.mode ?? 'off',
        auto_enroll: cap.spec.device_trust?.auto_enroll ?? false,
      },
    };
  }

  // ---- Signup ------------------------------------------------------------------------

  async signupBegin(token: string): Promise<rpc.SignupBeginResponse> {
    const invite = await this.#o.local.getInvite(token);
    const cap = await this.authPreference();
    const password_policy = {
      min_chars: PASSWORD_MIN_CHARS,
      max_bytes: PASSWORD_MAX_BYTES,
      text: `at least ${PASSWORD_MIN_CHARS} characters`,
    };
    if (cap.spec.second_factor === 'off' || !invite.totp_secret)
      return { user: invite.user, password_policy };
    return {
      user: invite.user,
      password_policy,
      totp: {
        secret: invite.totp_secret,
        uri: otpauthUri({ secret: invite.totp_secret, account: invite.user, issuer: this.#o.clusterName }),
      },
    };
  }

  async signupFinish(
    req: z.infer<typeof rpc.SignupFinishRequest>,
    addr: string,
  ): Promise<rpc.SignupFinishResponse> {
    const local = this.#o.local;
    const invite = await local.getInvite(req.token);
    const fail = async (e: WardenError) => {
      await this.#audit({ type: 'user.signup', success: false, user: invite.user, addr, error: e.message });
      return e;
    };
    try {
      checkPasswordPolicy(req.password);
      // A key for the login at the end is checked now, before the invite is spent.
      if (req.ssh_public_key !== undefined || req.tls_public_key !== undefined)
        clientKey({ ssh_public_key: req.ssh_public_key ?? '', tls_public_key: req.tls_public_key ?? '' });
    } catch (e) {
      throw isWardenError(e) ? await fail(e) : e;
    }
    const cap = await this.authPreference();
    if (cap.spec.second_factor !== 'off' && !invite.totp_secret) {
      // Made while second factors were off; finishing it would leave a user who can never log in.
      throw await fail(
        new WardenError(
          'WARDEN_ERR_INVALID_TOKEN',
          'this invite was created while second factors were off and the cluster now requires one; ' +
            'ask an administrator for a new invite (`wctl users reset NAME`)',
        ),
      );
    }
    let step: number | undefined;
    if (cap.spec.second_factor !== 'off' && invite.totp_secret) {
      const r = verifyTotp(invite.totp_secret, (req.otp_code ?? '').trim(), { now: this.#now() });
      if (!r.ok) {
        throw await fail(
          new WardenError(
            'WARDEN_ERR_LOGIN_FAILED',
            'the OTP code is not valid: check that the authenticator app uses the secret just shown and that the clocks agree',
          ),
        );
      }
      step = r.step;
    }
    const user = await this.#o.services.users.find(invite.user);
    if (!user)
      throw await fail(new WardenError('WARDEN_ERR_NOT_FOUND', `user "${invite.user}" no longer exists`));
    // Audited before anything changes: if the audit log refuses it, the invite still works.
    await this.#audit({ type: 'user.signup', success: true, user: invite.user, addr });
    // Spend the token first: of two racing signups, exactly one continues.
    await local.consumeInvite(invite);
    await local.putSecrets(invite.user, {
      password_hash: await hashPassword(req.password),
      ...(invite.totp_secret && cap.spec.second_factor !== 'off'
        ? { totp_secret: invite.totp_secret, totp_last_step: step }
        : {}),
    });
    if (req.ssh_public_key === undefined || req.tls_public_key === undefined) return { user: invite.user };
    // Signup logs in: the password and OTP code were just checked; locks still apply.
    const grant = await this.#grant(user, addr, req.ttl_ms, 'local');
    const login = await this.#certificates(
      grant,
      { ssh_public_key: req.ssh_public_key, tls_public_key: req.tls_public_key },
      addr,
    );
    return { user: invite.user, login };
  }

  // ---- Login -------------------------------------------------------------------------

  async login(req: rpc.LoginRequest, addr: string): Promise<rpc.LoginResponse> {
    return this.#certificates(await this.#verify(req, addr, req.ttl_ms, 'local'), req, addr);
  }

  /** Step 7 of a login (also the end of a signup): certificates for the client's key. */
  async #certificates(
    { user, logins, ttlMs, permit }: Grant,
    req: Pick<rpc.LoginRequest, 'ssh_public_key' | 'tls_public_key'>,
    addr: string,
  ): Promise<rpc.LoginResponse> {
    const name = user.metadata.name;
    const [cap, roles] = await Promise.all([
      this.authPreference(),
      findRoles(this.#o.services, user.spec.roles),
    ]);
    // 7. Certificates for the client's key.
    const login = await userCertificates(this.#o, user, { logins, ttlMs, permit }, clientKey(req));
    await this.#audit({ type: 'user.login', success: true, user: name, addr, method: 'local' });
    await this.#audit({
      type: 'cert.create',
      success: true,
      user: name,
      addr,
      cert_type: 'user',
      roles: user.spec.roles,
      logins,
      expires: login.expires,
    });
    return {
      ...login,
      web_device_trust_mode: strictestDeviceTrustMode([
        cap.spec.device_trust?.mode ?? 'off',
        ...roles.map((r) => r.spec.options.device_trust_mode),
      ]),
    };
  }

  /**
   * Sign-in to the Web UI: the same steps 1–6 as `login` (rate limit, password, TOTP, locks,
   * logins and the certificate TTL the user would get), audited as `user.login` with method
   * `web`; no certificate is issued — the web session (web/) lives at most `ttlMs`.
   */
  async webLogin(
    req: { user: string; password: string; otp_code?: string | undefined },
    addr: string,
  ): Promise<WebLogin> {
    const { user, logins, ttlMs } = await this.#verify(req, addr, undefined, 'web');
    await this.#audit({ type: 'user.login', success: true, user: user.metadata.name, addr, method: 'web' });
    return {
      user: user.metadata.name,
      roles: [...user.spec.roles],
      logins,
      traits: { ...user.spec.traits } as Record<string, string[]>,
      ttlMs,
    };
  }

  /** Login steps 1–6 (see the header); every failure is audited and counted by the limiter. */
  async #verify(
    req: { user: string; password: string; otp_code?: string | undefined },
    addr: string,
    requestedTtlMs: number | undefined,
    method: 'local' | 'web',
  ): Promise<Grant> {
    const { limiter, local, services } = this.#o;
    const name = req.user;
    // 1. Rate limit before any password work.
    try {
      await limiter.check(name, addr);
    } catch (e) {
      if (isWardenError(e))
        await this.#audit({ type: 'user.login', success: false, user: name, addr, method, error: e.message });
      throw e;
    }
    const failed = async (reason: string, err?: WardenError) => {
      await limiter.recordFailure(name, addr);
      await this.#audit({
        type: 'user.login',
        success: false,
        user: name,
        addr,
        method,
        error: err?.message ?? reason,
      });
      return err ?? new WardenError('WARDEN_ERR_LOGIN_FAILED', 'invalid user name, password or OTP code');
    };
    // 2. The user and their secrets.
    const user = await services.users.find(name).catch(() => undefined);
    const secrets = user ? await local.getSecrets(name) : undefined;
    if (!user || !secrets) {
      await verifyPasswordForUnknownUser(req.password);
      throw await failed(user ? 'user has not signed up' : 'unknown user');
    }
    // A bot has no password (and gets none from an invite): refuse before any password work.
    if (user.spec.bot)
      throw await failed('bots authenticate with their join token and certificates, not a password');
    // 3. Password.
    if (!(await verifyPassword(req.password, secrets.password_hash))) throw await failed('wrong password');
    // 4. Second factor.
    const cap = await this.authPreference();
    if (cap.spec.second_factor !== 'off') {
      if (!secrets.totp_secret) throw await failed('no second factor enrolled');
      const r = verifyTotp(secrets.totp_secret, (req.otp_code ?? '').trim(), {
        now: this.#now(),
        lastUsedStep: secrets.totp_last_step,
      });
      if (!r.ok) throw await failed(r.reason === 'replayed' ? 'OTP code already used' : 'wrong OTP code');
      try {
        await local.markTotpStep(name, secrets, r.step, secrets.modRev);
      } catch {
        throw await failed('OTP code already used');
      }
    }
    await limiter.recordSuccess(name, addr);
    if (needsRehash(secrets.password_hash)) {
      const fresh = await local.getSecrets(name);
      if (fresh) await local.putSecrets(name, { ...fresh, password_hash: await hashPassword(req.password) });
    }
    return this.#grant(user, addr, requestedTtlMs, method);
  }

  /** Login steps 5–6 (also the end of a signup): locks, then logins and the certificate TTL. */
  async #grant(
    user: UserResource,
    addr: string,
    requestedTtlMs: number | undefined,
    method: 'local' | 'web',
  ): Promise<Grant> {
    // 5–6. Locks (read from the backend), then logins, TTL and SSH permits.
    try {
      return { user, ...(await entitlements(this.#o, user, requestedTtlMs)) };
    } catch (e) {
      if (isWardenError(e))
        await this.#audit({
          type: 'user.login',
          success: false,
          user: user.metadata.name,
          addr,
          method,
          error: e.message,
        });
      throw e;
    }
  }
}
