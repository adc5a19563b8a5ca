/**
 * A bot's app and Kubernetes outputs (`wbot start --app=NAME --kubernetes-cluster=NAME`),
 * written into its destination next to the identity and renewed with it:
 *
 *   <destination>/
 *   ├── apps/<app>.pem          the app certificate and its key in one file (0600), for
 *   │                           `curl --cert DIR/apps/<app>.pem --cacert DIR/host-cas.pem …`
 *   ├── apps/<app>.crt, .json   the `wsh app login` layout (`wsh -i DIR/identity app config`)
 *   └── kubeconfig.yaml         one context `<cluster>-<kube cluster>` per cluster (0600), for
 *                               `kubectl --kubeconfig DIR/kubeconfig.yaml …`
 *
 * Each file is replaced by one rename, and each holds its own key with its certificate, so a
 * reader never pairs a new key with an old certificate. The kubeconfig's credentials are static
 * (client-certificate-data/client-key-data): kubectl reads the file at every run, and no wsh
 * or Node is needed where kubectl runs; long-running Kubernetes clients must re-read it. Kube
 * certificates live at most an hour (the proxy's limit), so `wbot` refreshes the outputs on
 * their own schedule when the bot's certificates live longer.
 * Who may import: the CLI (`wbot`) and tests. Tested end to end in test/bots/.
 */
import { generateKeyPairSync } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { kubeTlsServerName, WardenError } from '@warden/api';
import { stringify } from 'yaml';
import { ApiClient } from '../api';
import { saveAppLogin } from '../app/logins';
import { kubeContextName, proxyHost } from '../kube';
import { type LoadedProfile, writeAtomic } from '../profile';

/** The kubeconfig a bot's destination holds when it has Kubernetes outputs. */
export const KUBECONFIG_FILE = 'kubeconfig.yaml';

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
  if (apps.length) mkdirSync(join(profile.dir, 'apps'), { recursive: true, mode: 0o700 });
  for (const answer of apps) {
    const login = saveAppLogin(profile, answer);
    const pem = join(profile.dir, 'apps', `${login.name}.pem`);
    writeAtomic(pem, `${answer.cert_pem.trimEnd()}\n${profile.keyPem.trimEnd()}\n`, 0o600);
    files.push(pem);
    ends(answer.expires);
  }

  if (o.kubeClusters.length) {
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
      users: creds.map((c, i) => ({
        name: names[i],
        user: { 'client-certificate-data': b64(c.certPem), 'client-key-data': b64(c.keyPem) },
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
