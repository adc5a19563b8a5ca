/**
 * Kubernetes on the client: the kubeconfig entries `wsh kube login` writes (a cluster pointing
 * at the proxy's `/kube/<cluster>` under the TLS server name `kube.<proxy host>`
 * (`kubeTlsServerName`) with the host CA, a user whose credential is the exec plugin
 * `wsh kube credentials`, a context), their removal, and the `ExecCredential` the plugin prints
 * (client.authentication.k8s.io/v1: a short-lived kube certificate for a fresh key, which the
 * proxy issues against the login certificate and ties to its identity and device). Or, with
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
            command,
            args: [...pre, 'kube', 'credentials', `--proxy=${o.profile.proxy}`, `--cluster=${o.kubeCluster}`],
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

/**
 * A kube certificate for `kubeCluster`: the cached one while it has more than a minute left and
 * was issued for the current login, else a fresh key and certificate from the proxy
 * (`POST /v1/kube/certs`, see server `srv/kube/certs.ts`), cached under the profile (0600).
 */
export async function kubeCredential(
  profile: LoadedProfile,
  kubeCluster: string,
  request: (publicKeyPem: string) => Promise<{ cert_pem: string; expires: string }>,
  now = Date.now(),
): Promise<{ certPem: string; keyPem: string; expires: string }> {
  const dir = join(profile.dir, 'kube');
  const file = join(dir, `${kubeCluster.replace(/[^a-z0-9-]/g, '_')}.json`);
  const login = createHash('sha256').update(profile.tlsCert).digest('hex');
  try {
    const c = JSON.parse(readFileSync(file, 'utf8')) as {
      certPem: string;
      keyPem: string;
      expires: string;
      login: string;
    };
    if (c.login === login && Date.parse(c.expires) - now > 60_000) return c;
  } catch {
    // no usable cache
  }
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const keyPem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const res = await request(publicKey.export({ type: 'spki', format: 'pem' }).toString());
  const c = { certPem: res.cert_pem, keyPem, expires: res.expires };
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const tmp = `${file}.tmp`;
  writeFileSync(tmp, JSON.stringify({ ...c, login }), { mode: 0o600 });
  renameSync(tmp, file);
  return c;
}

/** kube_cluster names (`[A-Za-z0-9][A-Za-z0-9._-]*`) are safe file names; anything else is refused. */
const KUBE_CLUSTER_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$/;

function kubeCertFilesDir(profile: Pick<LoadedProfile, 'dir'>, kubeCluster: string): string {
  if (!KUBE_CLUSTER_NAME.test(kubeCluster))
    throw new WardenError('WARDEN_ERR_BAD_PARAMETER', `"${kubeCluster}" is not a kube_cluster name`);
  return join(profile.dir, 'kube', 'files', kubeCluster);
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
