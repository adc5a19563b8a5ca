/**
 * Test-only: the parts of an in-process Warden as `bin/start.ts` composes them, for the fixtures
 * that run a proxy or a service in the test process (test/app/cluster.ts, test/db/cluster.ts,
 * test/support/auth-cluster.ts, test/ssh-node/node-fixture.ts): a MemoryBackend, a memory audit
 * log, the services with the preset roles and the CAs; optionally the live views with one
 * access checker and one session monitor over them; the proxy's TLS options; the admin
 * identity file `wctl` reads; a user invited, signed up and logged in with `wsh login`.
 * Who may import: `*.test.ts` files and the fixtures named above.
 */
import { X509Certificate } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TlsOptions } from 'node:tls';
import { AUTH_PREFERENCE_NAME, type AuthPreferenceResource } from '@warden/api';
import {
  type AccessChecker,
  type AuthServer,
  CertAuthorities,
  type Clock,
  createServices,
  type Identity,
  type Logger,
  liveAccessChecker,
  liveSessionMonitor,
  MemoryAuditLog,
  MemoryBackend,
  proxyServerTls,
  type Services,
  type SessionMonitor,
} from '@warden/server';
import type { SourceClis } from './source-clis';

/** Passes the password policy (12+ characters). */
export const PASSWORD = 'correct horse battery staple';
export const quietLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };

export interface Core<C extends Clock = Clock> {
  clock: C;
  backend: MemoryBackend;
  audit: MemoryAuditLog;
  services: Services;
  cas: CertAuthorities;
  /** Merges `spec` into the stored cluster_auth_preference. */
  setAuthPreference(spec: Partial<AuthPreferenceResource['spec']>): Promise<void>;
}

/** Backend, audit log, services with the preset roles, and the cluster's CAs. */
export async function startCore<C extends Clock>(clusterName: string, clock: C): Promise<Core<C>> {
  const backend = new MemoryBackend({ clock });
  const audit = new MemoryAuditLog({ clock });
  const services = createServices({ backend, clock });
  await services.ensurePresets();
  const cas = await CertAuthorities.init({ backend, clusterName, clock });
  return {
    clock,
    backend,
    audit,
    services,
    cas,
    async setAuthPreference(spec) {
      const current = await services.authPreference.get();
      await services.authPreference.upsert({
        ...current,
        metadata: { name: AUTH_PREFERENCE_NAME },
        spec: { ...current.spec, ...spec },
      });
    },
  };
}

export interface LiveAccess {
  checker: AccessChecker;
  monitor: SessionMonitor;
  close(): void;
}

/** As `warden start`: the live views, one access checker and one session monitor over them. */
export async function startLiveAccess(
  core: Core,
  logger: Logger = quietLogger,
): Promise<LiveAccess & { views: ReturnType<Services['accessViews']> }> {
  const views = core.services.accessViews({ logger });
  await views.start();
  const checker = liveAccessChecker(views, { clock: core.clock });
  const monitor = liveSessionMonitor(views, { checker, clock: core.clock, logger });
  return {
    views,
    checker,
    monitor,
    close() {
      monitor.close();
      views.close();
    },
  };
}

/**
 * The proxy's TLS server options: a host certificate for localhost and 127.0.0.1 with its CA
 * chain, and client certificates asked for (checked by `identify`, not by TLS).
 */
export async function proxyTlsOptions(cas: CertAuthorities): Promise<TlsOptions> {
  const tls = await cas.issueHostTlsCert({ dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
  return proxyServerTls(cas, tls);
}

/**
 * Writes `<dataDir>/admin-identity.json` (what `wctl` reads with WARDEN_DATA_DIR) and returns
 * the admin as the API sees it.
 */
export async function writeAdminIdentity(
  auth: AuthServer,
  cas: CertAuthorities,
  o: { dataDir: string; proxy: string; cluster: string },
): Promise<Identity> {
  mkdirSync(o.dataDir, { recursive: true, mode: 0o700 });
  const admin = await auth.issueAdminIdentity();
  writeFileSync(
    join(o.dataDir, 'admin-identity.json'),
    JSON.stringify({
      proxy: o.proxy,
      cluster: o.cluster,
      cert_pem: admin.certPem,
      key_pem: admin.keyPem,
      host_ca_pems: cas.tlsCertPems('host'),
      expires: admin.expires.toISOString(),
    }),
    { mode: 0o600 },
  );
  return { ...(await auth.identify(new X509Certificate(admin.certPem).raw)), clientAddr: '127.0.0.1' };
}

/**
 * Signs up an invited user (password only: the cluster's second factor is off) and logs them in
 * with `wsh login` (the CLIs bundled from source), in `env` (which carries their WARDEN_HOME).
 */
export async function signUpAndLogin(
  auth: AuthServer,
  clis: SourceClis,
  o: { name: string; token: string; proxy: string; caPin: string; env: NodeJS.ProcessEnv },
): Promise<void> {
  await auth.signupFinish({ token: o.token, password: PASSWORD }, '127.0.0.1');
  const res = await clis.run(
    'wsh',
    ['login', `--proxy=${o.proxy}`, `--user=${o.name}`, `--ca-pin=${o.caPin}`],
    { env: o.env, input: `${PASSWORD}\n` },
  );
  if (res.code !== 0) throw new Error(`wsh login failed: ${res.stderr}`);
}
