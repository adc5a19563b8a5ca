/**
 * Test-only: an in-process auth service as `bin/start.ts` composes it, over a MemoryBackend
 * and a FakeClock (so TOTP codes, invite expiry, rate-limit lockouts and lock expiry are
 * driven by the test), with a MemoryAuditLog, real CAs and the preset roles; plus helpers to
 * invite, sign up and log in users and to turn certificates into API callers.
 * Who may import: `*.test.ts` files.
 */
import { generateKeyPairSync, X509Certificate } from 'node:crypto';
import { formatAuthorizedKey, type rpc } from '@warden/api';
import {
  type AuthServer,
  type CertAuthorities,
  createAuthServer,
  FakeClock,
  generateTotp,
  type Identity,
  type Logger,
  type MemoryAuditLog,
  type MemoryBackend,
  type Services,
} from '@warden/server';
import { PASSWORD, startCore } from './in-process';

export const CLUSTER_NAME = 'test-cluster';
export const PROXY_ADDR = 'proxy.test:3080';
export const CLIENT_ADDR = '192.0.2.10';
/** Passes the password policy (12+ characters). */
export { PASSWORD };
/** One TOTP time step. */
export const STEP_MS = 30_000;

/** A logger that keeps what it was given, so tests can look for (or rule out) errors. */
export class RecordingLogger implements Logger {
  readonly lines: { level: string; obj: object; msg?: string }[] = [];
  debug(obj: object, msg?: string): void {
    this.lines.push({ level: 'debug', obj, msg });
  }
  info(obj: object, msg?: string): void {
    this.lines.push({ level: 'info', obj, msg });
  }
  warn(obj: object, msg?: string): void {
    this.lines.push({ level: 'warn', obj, msg });
  }
  error(obj: object, msg?: string): void {
    this.lines.push({ level: 'error', obj, msg });
  }
}

/** A user key in both forms a login request carries. */
export interface UserKey {
  ssh_public_key: string;
  tls_public_key: string;
}

export function newUserKey(): UserKey {
  const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  return {
    ssh_public_key: formatAuthorizedKey(publicKey),
    tls_public_key: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
  };
}

/** The DER bytes of a PEM certificate (what TLS hands to `identify`). */
export function certDer(pem: string): Buffer {
  return new X509Certificate(pem).raw;
}

export interface TestCluster {
  clock: FakeClock;
  backend: MemoryBackend;
  audit: MemoryAuditLog;
  services: Services;
  cas: CertAuthorities;
  logger: RecordingLogger;
  auth: AuthServer;
  /** The admin, identified from a certificate of `issueAdminIdentity()`. */
  admin: Identity;
  /** The current TOTP code for `secret` at the fake clock's time. */
  otp(secret: string): string;
  /** Moves the clock to the next TOTP step and returns that step's code (a fresh, unused one). */
  nextOtp(secret: string): string;
  /** Adds a user as admin and returns the invite token. */
  invite(name: string, roles: string[], logins?: string[]): Promise<string>;
  /** Invite, signup begin and finish (with a TOTP code when the cluster asks for one). */
  signUp(
    name: string,
    roles: string[],
    logins?: string[],
    password?: string,
  ): Promise<{ totpSecret: string | undefined }>;
  /** A login request for `user` with a fresh key; `otp_code` only when given. */
  loginRequest(user: string, otpCode?: string, extra?: Partial<rpc.LoginRequest>): rpc.LoginRequest;
  /** The API caller that the proxy would see for a login's X.509 certificate. */
  callerOf(login: rpc.LoginResponse): Promise<Identity>;
  /** Stores a cluster_auth_preference with this second factor. */
  setSecondFactor(secondFactor: 'otp' | 'on' | 'off'): Promise<void>;
}

/**
 * @example
 *   const c = await startTestCluster();
 *   const { totpSecret } = await c.signUp('alice', ['access'], ['root']);
 *   const res = await c.auth.login(c.loginRequest('alice', c.nextOtp(totpSecret!)), CLIENT_ADDR);
 */
export async function startTestCluster(
  opts: { secondFactor?: 'otp' | 'on' | 'off' } = {},
): Promise<TestCluster> {
  const core = await startCore(CLUSTER_NAME, new FakeClock());
  const { clock, backend, audit, services, cas } = core;
  const logger = new RecordingLogger();
  const auth = createAuthServer({
    clock,
    backend,
    services,
    cas,
    audit,
    logger,
    clusterName: CLUSTER_NAME,
    proxyPublicAddr: PROXY_ADDR,
    serverVersion: '0.0.0-test',
  });
  const adminId = await auth.issueAdminIdentity();
  const admin: Identity = { ...(await auth.identify(certDer(adminId.certPem))), clientAddr: '127.0.0.1' };

  const c: TestCluster = {
    clock,
    backend,
    audit,
    services,
    cas,
    logger,
    auth,
    admin,
    otp: (secret) => generateTotp(secret, clock.now()),
    nextOtp(secret) {
      clock.advance(STEP_MS);
      return generateTotp(secret, clock.now());
    },
    async invite(name, roles, logins = []) {
      return (await auth.addUser(admin, { name, roles, logins })).token;
    },
    async signUp(name, roles, logins = [], password = PASSWORD) {
      const token = await c.invite(name, roles, logins);
      const begun = await auth.signupBegin(token);
      const totpSecret = begun.totp?.secret;
      await auth.signupFinish(
        { token, password, ...(totpSecret ? { otp_code: c.otp(totpSecret) } : {}) },
        CLIENT_ADDR,
      );
      return { totpSecret };
    },
    loginRequest(user, otpCode, extra = {}) {
      return {
        user,
        password: PASSWORD,
        ...(otpCode !== undefined ? { otp_code: otpCode } : {}),
        ...newUserKey(),
        ...extra,
      };
    },
    async callerOf(login) {
      return { ...(await auth.identify(certDer(login.tls_cert))), clientAddr: CLIENT_ADDR };
    },
    setSecondFactor: (secondFactor) => core.setAuthPreference({ second_factor: secondFactor }),
  };
  if (opts.secondFactor) await c.setSecondFactor(opts.secondFactor);
  return c;
}
