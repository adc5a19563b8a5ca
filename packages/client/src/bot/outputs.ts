/**
 * A bot's app and Kubernetes outputs (`wbot start --app=NAME --kubernetes-cluster=NAME`),
 * written into its destination next to the identity and renewed with it:
 *
 *   <destination>/
 *   ├── apps/<app>.pem          the app certificate and its key in one file (0600), for
 *   │                           `curl --cert DIR/apps/<app>.pem --cacert DIR/host-cas.pem …`
 *   ├── apps/<app>.crt, .json   the `wsh app login` layout (`wsh -i DIR/identity app config`)
 *   ├── kube/<cluster>.pem      a kube certificate and its key in one file (0600, directory 0700)
 *   └── kubeconfig.yaml         one context `<cluster>-<kube cluster>` per cluster (0600), for
 *                               `kubectl --kubeconfig DIR/kubeconfig.yaml …`
 *
 * Each file is replaced by one rename, and each holds its own key with its certificate, so a
 * reader never pairs a new key with an old certificate. The kubeconfig names kube/<cluster>.pem
 * as both `client-certificate` and `client-key` (paths, not inline data): client-go then
 * reloads the files at each new TLS connection (at most once a second) and, every five
 * minutes, closes connections made with a replaced certificate (k8s.io/client-go
 * transport/transport.go `cachingCertificateLoader`, transport/cert_rotation.go), so
 * long-running clients (`kubectl proxy`, controllers) use each renewal; inline data is never
 * read again. Kube certificates live at most an hour (the proxy's limit), so `wbot` refreshes
 * the outputs on their own schedule when the bot's certificates live longer.
 *
 * The destination holds what the current start asks for: `pruneOutputs` removes the outputs of
 * apps and clusters no longer named (their certificates would stay usable until they expire).
 * Who may import: the CLI (`wbot`) and tests. Tested end to end in test/bots/.
 */
import { generateKeyPairSync } from 'node:crypto';
import { mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { kubeTlsServerName, WardenError } from '@warden/api';
import { ApiClient } from '../api';
import { saveAppLogin } from '../app/logins';
import { type LoadedProfile, writeAtomic } from '../profile';

/** The kubeconfig a bot's destination holds when it has Kubernetes outputs. */
export const KUBECONFIG_FILE = 'kubeconfig.yaml';
/** The folder of the kube certificate files (`kube/<cluster>.pem`). */
export const KUBE_DIR = 'kube';
/** The folder of the app certificate files. */
export const APPS_DIR = 'apps';

/** What a bot writes besides its identity. */
export interface BotOutputs {
  /** Apps (`wctl get apps` names): an app certificate for each. */
  apps: readonly string[];
  /** Kubernetes clusters: a context with a kube certificate for each in kubeconfig.yaml. */
  kubeClusters: readonly string[];
}

/** What `writeOutputs` wrote, and when the first of it ends. */
export interface WrittenOutputs {
  /** Paths written, for the log. */
  files: string[];
  /** The earliest expiry of the certificates written (ISO). */
  expires: string;
}

const APP_NAME = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
const KUBE_CLUSTER = /^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$/;

/** Refuses malformed names before anything is spent (a join token is good once). */
export function checkOutputs(o: BotOutputs): void {
  for (const a of o.apps)
    if (!APP_NAME.test(a))
      throw new WardenError('WARDEN_ERR_BAD_PARAMETER', `--app "${a}" is not an app name (a DNS label)`);
  for (const k of o.kubeClusters)
    if (!KUBE_CLUSTER.test(k))
      throw new WardenError('WARDEN_ERR_BAD_PARAMETER', `--kubernetes-cluster "${k}" is not a cluster name`);
}

export function hasOutputs(o: BotOutputs): boolean {
  return o.apps.length > 0 || o.kubeClusters.length > 0;
}

/** The files of a folder, none when it is missing. */
function filesIn(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

/**
 * Removes from the destination the outputs of apps and clusters that `o` no longer names
 * (a restart with fewer --app or --kubernetes-cluster flags), and kubeconfig.yaml when it
 * names none: what stays on disk is what this start keeps fresh. Only wbot's own file names
 * (`apps/<app>.{pem,crt,json}`, `kube/<cluster>.pem`, their leftover `.tmp-*` files) are
 * touched. Returns the removed paths.
 */
export function pruneOutputs(destination: string, o: BotOutputs): string[] {
  const dir = resolve(destination);
  const removed: string[] = [];
  const remove = (path: string) => {
    rmSync(path, { force: true });
    removed.push(path);
  };
  const apps = new Set(o.apps);
  for (const f of filesIn(join(dir, APPS_DIR))) {
    const m = /^(.+)\.(?:pem|crt|json)(?:\.tmp-\d+)?$/.exec(f);
    if (m && !apps.has(m[1]!)) remove(join(dir, APPS_DIR, f));
  }
  const clusters = new Set(o.kubeClusters);
  for (const f of filesIn(join(dir, KUBE_DIR))) {
    const m = /^(.+)\.pem(?:\.tmp-\d+)?$/.exec(f);
    if (m && !clusters.has(m[1]!)) remove(join(dir, KUBE_DIR, f));
  }
  if (!clusters.size)
    for (const f of filesIn(dir)) if (/^kubeconfig\.yaml(?:\.tmp-\d+)?$/.test(f)) remove(join(dir, f));
  return removed;
}

/**
 * Asks the proxy for an app certificate per app and a kube certificate per cluster with the
 * bot's current certificate, and writes them (see the header). Throws the proxy's refusal
 * (app or cluster unknown, access denied, a lock) after writing nothing more.
 */
export async function writeOutputs(profile: LoadedProfile, o: BotOutputs): Promise<WrittenOutputs> {
  const api = new ApiClient({
    proxy: profile.proxy,
    caPems: profile.hostCaPems,
    insecure: profile.insecure,
    identity: { certPem: profile.tlsCert, keyPem: profile.keyPem },
  });
  const files: string[] = [];
  let earliest = Number.POSITIVE_INFINITY;
  const ends = (iso: string) => {
    earliest = Math.min(earliest, Date.parse(iso));
  };

  const apps = await Promise.all(o.apps.map((name) => api.appLogin(name)));
  if (apps.length) mkdirSync(join(profile.dir, APPS_DIR), { recursive: true, mode: 0o700 });
  for (const answer of apps) {
    const login = saveAppLogin(profile, answer);
    const pem = join(profile.dir, APPS_DIR, `${login.name}.pem`);
    writeAtomic(pem, `${answer.cert_pem.trimEnd()}\n${profile.keyPem.trimEnd()}\n`, 0o600);
    files.push(pem);
    ends(answer.expires);
  }

  if (o.kubeClusters.length) {
    // Only here: the kube module and yaml are not loaded by a wbot without kube outputs.
    const [{ kubeContextName, proxyHost }, yamlModule] = await Promise.all([
      import('../kube'),
      import('yaml') as Promise<typeof import('yaml') & { default?: typeof import('yaml') }>,
    ]);
    // yaml's Node build is CommonJS: bundled, its exports may sit under `default`.
    const { stringify } = typeof yamlModule.stringify === 'function' ? yamlModule : yamlModule.default!;
    const creds = await Promise.all(
      o.kubeClusters.map(async (cluster) => {
        const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
        const res = await api.kubeCert({
          public_key: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
          cluster,
        });
        return {
          cluster,
          certPem: res.cert_pem,
          keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
          expires: res.expires,
        };
      }),
    );
    mkdirSync(join(profile.dir, KUBE_DIR), { recursive: true, mode: 0o700 });
    const pems = creds.map((c) => {
      const pem = join(profile.dir, KUBE_DIR, `${c.cluster}.pem`);
      writeAtomic(pem, `${c.certPem.trimEnd()}\n${c.keyPem.trimEnd()}\n`, 0o600);
      files.push(pem);
      return pem;
    });
    const b64 = (s: string) => Buffer.from(s).toString('base64');
    const names = creds.map((c) => kubeContextName(profile, c.cluster));
    const config = {
      apiVersion: 'v1',
      kind: 'Config',
      clusters: creds.map((c, i) => ({
        name: names[i],
        cluster: {
          server: `https://${profile.proxy}/kube/${c.cluster}`,
          'tls-server-name': kubeTlsServerName(proxyHost(profile.proxy)),
          'certificate-authority-data': b64(profile.hostCaPems.join('\n')),
          ...(profile.insecure ? { 'insecure-skip-tls-verify': true } : {}),
        },
      })),
      // One file for both: a single rename replaces the pair (see the header).
      users: creds.map((_, i) => ({
        name: names[i],
        user: { 'client-certificate': pems[i], 'client-key': pems[i] },
      })),
      contexts: creds.map((_, i) => ({ name: names[i], context: { cluster: names[i], user: names[i] } })),
      'current-context': names[0],
    };
    const path = join(profile.dir, KUBECONFIG_FILE);
    writeAtomic(path, stringify(config), 0o600);
    files.push(path);
    for (const c of creds) ends(c.expires);
  }
  return { files, expires: new Date(earliest).toISOString() };
}
