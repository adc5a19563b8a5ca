/**
 * Kubernetes on the client: the kubeconfig entries `wsh kube login` writes (a cluster pointing
 * at the proxy's `/kube/<cluster>` under the TLS server name `kube.<proxy host>`
 * (`kubeTlsServerName`) with the host CA, a user whose credential is the exec plugin
 * `wsh kube credentials` behind a small POSIX `sh` script that prints the cached ExecCredential
 * while it is valid (`KUBE_EXEC_SCRIPT`), a context), their removal, and the `ExecCredential`
 * the plugin prints (client.authentication.k8s.io/v1: a short-lived kube certificate for a fresh
 * key, which the proxy issues against the login certificate and ties to its identity and
 * device), cached per cluster in `kubeExecCacheFile` (0600). Or, with
 * `wsh kube login --cert-files`, a user whose credential is a kube certificate and key in files
 * under the profile (`kubeCertFiles`), valid as long as the login and renewed by `wsh login`:
 * kubectl then runs no plugin (see docs/kubernetes.md for the trade-off).
 * Who may import: `@warden/cli`. Tested by `kubeconfig.test.ts` and end to end in `test/kube/`.
 */
import { createHash, generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { kubeTlsServerName, WardenError } from '@warden/api';
import { parseDocument, stringify } from 'yaml';
import type { LoadedProfile } from '../profile';

/** The kubeconfig file `wsh kube login` edits: the first of $KUBECONFIG, else ~/.kube/config. */
export function kubeconfigPath(env: NodeJS.ProcessEnv = process.env): string {
  const first = (env.KUBECONFIG ?? '').split(delimiter).find((p) => p.length > 0);
  return first ?? join(env.HOME || homedir(), '.kube', 'config');
}

/** The host part of a proxy address (`proxy.example.com:3080`, `[::1]:3080`). */
export function proxyHost(proxy: string): string {
  const m = /^\[([^\]]+)\](?::\d+)?$/.exec(proxy) ?? /^([^:]+)(?::\d+)?$/.exec(proxy);
  return m ? m[1]! : proxy;
}

/** The names of a Warden cluster's entries: `<warden cluster>-<kube cluster>`. */
export function kubeContextName(profile: Pick<LoadedProfile, 'cluster'>, kubeCluster: string): string {
  return `${profile.cluster}-${kubeCluster}`;
}

type Named = { name?: string; [k: string]: unknown };
interface Kubeconfig {
  apiVersion?: string;
  kind?: string;
  clusters?: Named[];
  users?: Named[];
  contexts?: Named[];
  'current-context'?: string;
  [k: string]: unknown;
}

function readKubeconfig(path: string): Kubeconfig {
  if (!existsSync(path)) return { apiVersion: 'v1', kind: 'Config', clusters: [], users: [], contexts: [] };
  const text = readFileSync(path, 'utf8');
  const doc = parseDocument(text);
  if (doc.errors.length) {
    throw new WardenError(
      'WARDEN_ERR_BAD_PARAMETER',
      `${path} is not a valid kubeconfig: ${doc.errors[0]!.message}`,
    );
  }
  const value = (doc.toJS() ?? {}) as Kubeconfig;
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw new WardenError('WARDEN_ERR_BAD_PARAMETER', `${path} is not a valid kubeconfig`);
  }
  return value;
}

function writeKubeconfig(path: string, cfg: Kubeconfig): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.warden-tmp`;
  writeFileSync(tmp, stringify(cfg), { mode: 0o600 });
  renameSync(tmp, path);
}

function upsert(list: Named[] | undefined, entry: Named): Named[] {
  const out = (list ?? []).filter((e) => e.name !== entry.name);
  out.push(entry);
  return out;
}

/** kube_cluster names (`[A-Za-z0-9][A-Za-z0-9._-]*`) are safe file names; anything else is refused. */
const KUBE_CLUSTER_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$/;

function checkClusterName(kubeCluster: string): string {
  if (!KUBE_CLUSTER_NAME.test(kubeCluster))
    throw new WardenError('WARDEN_ERR_BAD_PARAMETER', `"${kubeCluster}" is not a kube_cluster name`);
  return kubeCluster;
}

/** The directory of the exec plugin's cached credentials (`wsh login` and `wsh logout` empty it). */
export const KUBE_EXEC_CACHE_DIR = join('kube', 'exec');

/**
 * The exec plugin's cached ExecCredential for a cluster (0600, directory 0700), three lines:
 * the Unix second until which it may be used (a minute before the certificate expires), the
 * ExecCredential kubectl reads (one line of JSON), and the SHA-256 of the login certificate it
 * was issued for. `KUBE_EXEC_SCRIPT` reads the first two; wsh checks all three.
 */
export function kubeExecCacheFile(profile: Pick<LoadedProfile, 'dir'>, kubeCluster: string): string {
  return join(profile.dir, KUBE_EXEC_CACHE_DIR, `${checkClusterName(kubeCluster)}.cred`);
}

/**
 * The exec plugin kubectl runs (`/bin/sh -c KUBE_EXEC_SCRIPT wsh-kube-credentials CACHE WSH…`):
 * prints the cached ExecCredential while the current time (`date +%s`) is before its first line,
 * else runs `wsh kube credentials`, which issues a new one and writes the cache. A missing,
 * unreadable, malformed or expired cache, or no `date`, all fall back to wsh. Costs a shell and
 * a `date` (a few ms) instead of a Node start per kubectl command. Static text: its inputs are
 * positional arguments, never interpolated. The shell cannot check which login the credential
 * was issued for, so `wsh login` and `wsh logout` delete the cache (see docs/kubernetes.md).
 */
export const KUBE_EXEC_SCRIPT =
  'f=$1; shift; if { read -r until && read -r cred; } <"$f" && [ -n "$cred" ] && ' +
  `[ "$(date +%s)" -lt "$until" ]; then printf '%s\n' "$cred"; exit 0; fi 2>/dev/null; exec "$@"`;

export interface KubeLoginOptions {
  profile: LoadedProfile;
  kubeCluster: string;
  /** The argv that runs wsh (`[node, /path/wsh.js]` or `[/usr/bin/wsh]`). */
  wshCommand: readonly string[];
  /** Environment the plugin needs (WARDEN_HOME when it is not the default). */
  pluginEnv?: Record<string, string>;
  env?: NodeJS.ProcessEnv;
  /** Make it the current context (default true). */
  setCurrent?: boolean;
  /** A kube certificate and key in files (`writeKubeCertFiles`) instead of the exec plugin. */
  certFiles?: { certFile: string; keyFile: string };
}

/** Writes (or replaces) the cluster, user and context; returns the file and the context name. */
export function writeKubeLogin(o: KubeLoginOptions): { path: string; context: string } {
  const path = kubeconfigPath(o.env);
  const cfg = readKubeconfig(path);
  const name = kubeContextName(o.profile, o.kubeCluster);
  const [command, ...pre] = o.wshCommand;
  cfg.apiVersion ??= 'v1';
  cfg.kind ??= 'Config';
  cfg.clusters = upsert(cfg.clusters, {
    name,
    cluster: {
      server: `https://${o.profile.proxy}/kube/${o.kubeCluster}`,
      'tls-server-name': kubeTlsServerName(proxyHost(o.profile.proxy)),
      'certificate-authority-data': Buffer.from(o.profile.hostCaPems.join('\n')).toString('base64'),
      ...(o.profile.insecure ? { 'insecure-skip-tls-verify': true } : {}),
    },
  });
  cfg.users = upsert(cfg.users, {
    name,
    user: o.certFiles
      ? { 'client-certificate': o.certFiles.certFile, 'client-key': o.certFiles.keyFile }
      : {
          exec: {
            apiVersion: 'client.authentication.k8s.io/v1',
            command: '/bin/sh',
            args: [
              '-c',
              KUBE_EXEC_SCRIPT,
              'wsh-kube-credentials',
              kubeExecCacheFile(o.profile, o.kubeCluster),
              command,
              ...pre,
              'kube',
              'credentials',
              `--proxy=${o.profile.proxy}`,
              `--cluster=${o.kubeCluster}`,
            ],
            ...(o.pluginEnv && Object.keys(o.pluginEnv).length
              ? { env: Object.entries(o.pluginEnv).map(([k, v]) => ({ name: k, value: v })) }
              : {}),
            interactiveMode: 'Never',
            provideClusterInfo: false,
          },
        },
  });
  cfg.contexts = upsert(cfg.contexts, { name, context: { cluster: name, user: name } });
  if (o.setCurrent !== false) cfg['current-context'] = name;
  writeKubeconfig(path, cfg);
  return { path, context: name };
}

/** Removes the entries of one kube cluster (or of every one of this Warden cluster); returns the context names removed. */
export function removeKubeLogins(
  profile: Pick<LoadedProfile, 'cluster' | 'proxy' | 'dir'>,
  kubeCluster: string | undefined,
  env?: NodeJS.ProcessEnv,
): string[] {
  const path = kubeconfigPath(env);
  if (!existsSync(path)) return [];
  const cfg = readKubeconfig(path);
  const ours = (e: Named) => {
    const user = (cfg.users ?? []).find((u) => u.name === e.name);
    const u = user?.user as { exec?: { args?: unknown }; 'client-certificate'?: unknown } | undefined;
    const args = Array.isArray(u?.exec?.args) ? (u.exec.args as unknown[]) : [];
    const certFile = u?.['client-certificate'];
    const isWarden =
      (args.includes('credentials') && args.includes(`--proxy=${profile.proxy}`)) ||
      (typeof certFile === 'string' && certFile.startsWith(join(profile.dir, 'kube', 'files')));
    if (!isWarden) return false;
    return kubeCluster === undefined || e.name === kubeContextName(profile, kubeCluster);
  };
  const removed = (cfg.contexts ?? []).filter(ours).map((c) => c.name!);
  if (removed.length === 0) return [];
  const gone = new Set(removed);
  const filesOf = new Set(
    (cfg.users ?? [])
      .filter((u) => gone.has(u.name!))
      .map((u) => (u.user as { 'client-certificate'?: unknown } | undefined)?.['client-certificate']),
  );
  cfg.contexts = (cfg.contexts ?? []).filter((c) => !gone.has(c.name!));
  cfg.clusters = (cfg.clusters ?? []).filter((c) => !gone.has(c.name!));
  cfg.users = (cfg.users ?? []).filter((u) => !gone.has(u.name!));
  if (cfg['current-context'] && gone.has(cfg['current-context'])) cfg['current-context'] = '';
  writeKubeconfig(path, cfg);
  // Certificate files of the removed users go too (this profile's only: `ours` checked the path).
  for (const c of kubeCertFileClusters(profile)) {
    if (gone.has(kubeContextName(profile, c)) && filesOf.has(kubeCertFiles(profile, c).certFile))
      rmSync(kubeCertFilesDir(profile, c), { recursive: true, force: true });
  }
  // So do the exec plugin's cached credentials: the next `wsh kube login` starts afresh.
  if (kubeCluster === undefined) clearKubeExecCache(profile);
  else if (KUBE_CLUSTER_NAME.test(kubeCluster)) clearKubeExecCache(profile, kubeCluster);
  return removed;
}

/** The ExecCredential kubectl reads from `wsh kube credentials` (client.authentication.k8s.io/v1). */
export function execCredential(c: { certPem: string; keyPem: string; expires: string }) {
  return {
    apiVersion: 'client.authentication.k8s.io/v1',
    kind: 'ExecCredential',
    status: {
      clientCertificateData: c.certPem,
      clientKeyData: c.keyPem,
      expirationTimestamp: new Date(Date.parse(c.expires)).toISOString().replace(/\.\d+Z$/, 'Z'),
    },
  };
}

/** The SHA-256 of a login certificate: what a cached kube credential was issued for. */
const loginHash = (tlsCert: string) => createHash('sha256').update(tlsCert).digest('hex');

/**
 * A kube certificate for `kubeCluster`: the cached one (`kubeExecCacheFile`) while it has more
 * than a minute left and was issued for the current login certificate, else a fresh key and
 * certificate from the proxy (`POST /v1/kube/certs`, see server `srv/kube/certs.ts`), cached
 * for the next kubectl command. The cache is written only if the login is still the one it was
 * issued for (a `wsh login` that ran meanwhile deleted the caches of the old one).
 */
export async function kubeCredential(
  profile: LoadedProfile,
  kubeCluster: string,
  request: (publicKeyPem: string) => Promise<{ cert_pem: string; expires: string }>,
  now = Date.now(),
): Promise<{ certPem: string; keyPem: string; expires: string }> {
  const file = kubeExecCacheFile(profile, kubeCluster);
  const login = loginHash(profile.tlsCert);
  const cached = readKubeExecCache(file);
  if (
    cached &&
    cached.login === login &&
    cached.until * 1000 > now &&
    Date.parse(cached.expires) - now > 60_000
  )
    return cached;
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const keyPem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const res = await request(publicKey.export({ type: 'spki', format: 'pem' }).toString());
  const c = { certPem: res.cert_pem, keyPem, expires: res.expires };
  let current: string | undefined;
  try {
    current = loginHash(readFileSync(join(profile.dir, 'tls.pem'), 'utf8'));
  } catch {
    current = undefined; // logged out meanwhile
  }
  if (current === login) {
    const cred = execCredential(c);
    const until = Math.floor(Date.parse(cred.status.expirationTimestamp) / 1000) - 60;
    mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
    const tmp = `${file}.${process.pid}.tmp`;
    writeFileSync(tmp, `${until}\n${JSON.stringify(cred)}\n${login}\n`, { mode: 0o600 });
    renameSync(tmp, file);
  }
  return c;
}

/** A cached credential's parts, or undefined when the file is missing or malformed. */
function readKubeExecCache(
  file: string,
): { certPem: string; keyPem: string; expires: string; login: string; until: number } | undefined {
  try {
    const [until, json, login] = readFileSync(file, 'utf8').split('\n');
    const status = (JSON.parse(json!) as ReturnType<typeof execCredential>).status;
    const { clientCertificateData: certPem, clientKeyData: keyPem, expirationTimestamp: expires } = status;
    if (typeof certPem !== 'string' || typeof keyPem !== 'string' || typeof expires !== 'string' || !login)
      return undefined;
    return { certPem, keyPem, expires, login, until: Number(until) };
  } catch {
    return undefined;
  }
}

/**
 * Deletes the exec plugin's cached credentials of a profile: all of them, or one cluster's
 * (`wsh login`, `wsh kube logout`; `wsh logout` removes the whole profile).
 */
export function clearKubeExecCache(profile: Pick<LoadedProfile, 'dir'>, kubeCluster?: string): void {
  if (kubeCluster === undefined)
    rmSync(join(profile.dir, KUBE_EXEC_CACHE_DIR), { recursive: true, force: true });
  else rmSync(kubeExecCacheFile(profile, kubeCluster), { force: true });
}

function kubeCertFilesDir(profile: Pick<LoadedProfile, 'dir'>, kubeCluster: string): string {
  return join(profile.dir, 'kube', 'files', checkClusterName(kubeCluster));
}

/** Where `wsh kube login --cert-files` keeps a cluster's kube certificate and key (0600, directory 0700). */
export function kubeCertFiles(
  profile: Pick<LoadedProfile, 'dir'>,
  kubeCluster: string,
): { certFile: string; keyFile: string } {
  const dir = kubeCertFilesDir(profile, kubeCluster);
  return { certFile: join(dir, 'cert.pem'), keyFile: join(dir, 'key.pem') };
}

/** The clusters whose kube certificate files this profile holds (what `wsh login` renews). */
export function kubeCertFileClusters(profile: Pick<LoadedProfile, 'dir'>): string[] {
  try {
    return readdirSync(join(profile.dir, 'kube', 'files')).filter(
      (n) => KUBE_CLUSTER_NAME.test(n) && existsSync(join(profile.dir, 'kube', 'files', n, 'cert.pem')),
    );
  } catch {
    return [];
  }
}

/**
 * Writes a fresh key and a kube certificate valid as long as the login (`lifetime: login`) into
 * `kubeCertFiles`: the key first, then the certificate, each replaced atomically.
 */
export async function writeKubeCertFiles(
  profile: Pick<LoadedProfile, 'dir'>,
  kubeCluster: string,
  request: (publicKeyPem: string) => Promise<{ cert_pem: string; expires: string }>,
): Promise<{ certFile: string; keyFile: string; expires: string }> {
  const files = kubeCertFiles(profile, kubeCluster);
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const res = await request(publicKey.export({ type: 'spki', format: 'pem' }).toString());
  mkdirSync(dirname(files.certFile), { recursive: true, mode: 0o700 });
  for (const [file, text] of [
    [files.keyFile, privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()],
    [files.certFile, res.cert_pem],
  ] as const) {
    writeFileSync(`${file}.tmp`, text, { mode: 0o600 });
    renameSync(`${file}.tmp`, file);
  }
  return { ...files, expires: res.expires };
}
