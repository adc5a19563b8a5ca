/**
 * Where kube_service sends a cluster's requests and with which credential: from a kubeconfig
 * (its current context: server, CA, client certificate or token, relative paths resolved against
 * the kubeconfig's directory) or from the explicit `server` / `ca_file` / `token_file` |
 * `cert_file` + `key_file`. Files are read once, when the cluster is loaded; a missing or
 * unreadable file is WARDEN_ERR_BAD_CONFIG naming the cluster and the file (never its content).
 * Internal to `srv/kube`; the public surface is `index.ts`.
 */
import { readFileSync } from 'node:fs';
import { Agent } from 'node:https';
import { dirname, resolve } from 'node:path';
import { createSecureContext, type SecureContext } from 'node:tls';
import { WardenError } from '@warden/api';
import { parse as parseYaml } from 'yaml';

export interface KubeCredentialSource {
  name: string;
  kubeconfigPath?: string;
  server?: string;
  caFile?: string;
  tokenFile?: string;
  certFile?: string;
  keyFile?: string;
}

export interface KubeUpstream {
  name: string;
  url: URL;
  /** TLS options for every connection to the API server (CA, client certificate). */
  tls: { ca?: string; cert?: string; key?: string; rejectUnauthorized: boolean; servername?: string };
  /** `Bearer …` when the credential is a token (never logged). */
  authorization?: string;
  /** Kept-alive connections for plain requests (TLS from `secureContext`). */
  agent: Agent;
  /** `tls` parsed once, for every connection (PEM parsing per connection costs more than the request). */
  secureContext: SecureContext;
  /** The last TLS session with the API server, to resume for WebSocket upgrades (a fresh connection each). */
  session?: Buffer;
}

function bad(cluster: string, what: string): WardenError {
  return new WardenError('WARDEN_ERR_BAD_CONFIG', `kube_service cluster "${cluster}": ${what}`);
}

function readText(cluster: string, path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    throw bad(cluster, `cannot read ${what} ${path}: ${(e as NodeJS.ErrnoException).code ?? 'error'}`);
  }
}

type Named<T> = { name: string } & T;

/** Loads a cluster's upstream (see the header). */
export function loadKubeUpstream(src: KubeCredentialSource): KubeUpstream {
  const n = src.name;
  let server: string | undefined = src.server;
  let ca: string | undefined;
  let cert: string | undefined;
  let key: string | undefined;
  let token: string | undefined;
  let insecure = false;
  let servername: string | undefined;
  if (src.kubeconfigPath) {
    const base = dirname(src.kubeconfigPath);
    let doc: {
      'current-context'?: string;
      contexts?: Named<{ context?: { cluster?: string; user?: string } }>[];
      clusters?: Named<{ cluster?: Record<string, unknown> }>[];
      users?: Named<{ user?: Record<string, unknown> }>[];
    };
    try {
      doc = parseYaml(readText(n, src.kubeconfigPath, 'kubeconfig')) ?? {};
    } catch (e) {
      if (e instanceof WardenError) throw e;
      throw bad(n, `kubeconfig ${src.kubeconfigPath} is not valid YAML`);
    }
    const ctxName = doc['current-context'];
    const ctx = doc.contexts?.find((c) => c.name === ctxName)?.context ?? doc.contexts?.[0]?.context;
    const cluster = doc.clusters?.find((c) => c.name === ctx?.cluster)?.cluster ?? doc.clusters?.[0]?.cluster;
    const user = doc.users?.find((u) => u.name === ctx?.user)?.user ?? doc.users?.[0]?.user ?? {};
    if (!cluster || typeof cluster.server !== 'string')
      throw bad(n, `kubeconfig ${src.kubeconfigPath} names no server`);
    server = cluster.server;
    const str = (o: Record<string, unknown>, k: string) =>
      typeof o[k] === 'string' ? (o[k] as string) : undefined;
    const fileOr = (o: Record<string, unknown>, fileKey: string, dataKey: string, what: string) => {
      const data = str(o, dataKey);
      if (data) return Buffer.from(data, 'base64').toString('utf8');
      const f = str(o, fileKey);
      return f ? readText(n, resolve(base, f), what) : undefined;
    };
    ca = fileOr(cluster, 'certificate-authority', 'certificate-authority-data', 'CA file');
    insecure = cluster['insecure-skip-tls-verify'] === true;
    servername = str(cluster, 'tls-server-name');
    cert = fileOr(user, 'client-certificate', 'client-certificate-data', 'client certificate');
    key = fileOr(user, 'client-key', 'client-key-data', 'client key');
    token = str(user, 'token');
    const tokenFile = str(user, 'tokenFile');
    if (!token && tokenFile) token = readText(n, resolve(base, tokenFile), 'token file').trim();
    if (user.exec || user['auth-provider']) {
      throw bad(
        n,
        'kubeconfig users with exec plugins or auth providers are not supported; use a token or a client certificate',
      );
    }
  } else {
    if (src.caFile) ca = readText(n, src.caFile, 'ca_file');
    if (src.tokenFile) token = readText(n, src.tokenFile, 'token_file').trim();
    if (src.certFile) cert = readText(n, src.certFile, 'cert_file');
    if (src.keyFile) key = readText(n, src.keyFile, 'key_file');
  }
  if (!server) throw bad(n, 'no API server URL');
  let url: URL;
  try {
    url = new URL(server);
  } catch {
    throw bad(n, `the API server URL ${JSON.stringify(server)} is not a URL`);
  }
  if (url.protocol !== 'https:') throw bad(n, `the API server URL must be https:// (got ${url.protocol})`);
  if (!token && !(cert && key))
    throw bad(n, 'no credential: a token or a client certificate and key are needed');
  const tls = {
    ...(ca ? { ca } : {}),
    ...(cert && key ? { cert, key } : {}),
    rejectUnauthorized: !insecure,
    ...(servername ? { servername } : {}),
  };
  const secureContext = createSecureContext({
    ...(tls.ca ? { ca: tls.ca } : {}),
    ...(tls.cert && tls.key ? { cert: tls.cert, key: tls.key } : {}),
  });
  return {
    name: n,
    url,
    tls,
    ...(token ? { authorization: `Bearer ${token}` } : {}),
    agent: new Agent({ ...tls, secureContext, keepAlive: true, maxSockets: 256, maxFreeSockets: 64 }),
    secureContext,
  };
}
