/**
 * `wsh kube ls|login|logout|credentials` and `wsh proxy kube`: thin commands over the Kubernetes
 * helpers in `@warden/client` (kubeconfig entries, the exec credential) and the proxy API.
 */
import { createServer } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { kubeTlsServerName, WardenError } from '@warden/api';
import {
  clientForProfile,
  execCredential,
  kubeCertFileClusters,
  kubeCredential,
  type LoadedProfile,
  removeKubeLogins,
  writeKubeCertFiles,
  writeKubeLogin,
} from '@warden/client';
import { z } from 'zod';
import { type CommandContext, parseListing, str } from '../command';
import { formatData, formatLabels, parseFormat, table } from '../format';
import { requireLiveProfile, requireProfile } from '../profile';

const KubeView = z.object({ name: z.string(), labels: z.record(z.string(), z.string()).default({}) });
type KubeView = z.infer<typeof KubeView>;

async function listClusters(profile: LoadedProfile): Promise<{ raw: unknown[]; clusters: KubeView[] }> {
  const { items } = await clientForProfile(profile).listKubeClusters();
  return { raw: items, clusters: parseListing(items, KubeView, profile.proxy, 'cluster list') };
}

export async function runKubeLs(ctx: CommandContext): Promise<number> {
  const format = parseFormat(ctx.values.format);
  const profile = requireLiveProfile(ctx, str(ctx.values, 'proxy'));
  const { raw, clusters } = await listClusters(profile);
  if (format !== 'text') {
    ctx.stdout.write(formatData(raw, format));
    return 0;
  }
  ctx.stdout.write(
    table(
      ['Kube Cluster', 'Labels'],
      clusters.map((c) => [c.name, formatLabels(c.labels)]),
    ),
  );
  return 0;
}

/** How kubectl runs this wsh again: the node binary and script, or the bundled executable. */
function wshCommand(): string[] {
  const script = process.argv[1];
  return script && /\.(c|m)?js$/.test(script) ? [process.execPath, script] : [process.execPath];
}

export async function runKubeLogin(ctx: CommandContext): Promise<number> {
  const name = ctx.positionals[0]!;
  const profile = requireLiveProfile(ctx, str(ctx.values, 'proxy'));
  const { clusters } = await listClusters(profile);
  if (!clusters.some((c) => c.name === name)) {
    throw new WardenError(
      'WARDEN_ERR_NOT_FOUND',
      `kube_cluster "${name}" not found among the clusters you can reach; \`wsh kube ls\` lists them`,
    );
  }
  const certFiles =
    ctx.values['cert-files'] === true
      ? await writeKubeCertFiles(profile, name, (public_key) =>
          clientForProfile(profile).kubeCert({ public_key, cluster: name, lifetime: 'login' }),
        )
      : undefined;
  const { path, context } = writeKubeLogin({
    profile,
    kubeCluster: name,
    ...(certFiles ? { certFiles } : {}),
    wshCommand: wshCommand(),
    ...(ctx.env.WARDEN_HOME ? { pluginEnv: { WARDEN_HOME: ctx.env.WARDEN_HOME } } : {}),
    env: ctx.env,
  });
  if (!certFiles) {
    // The first kubectl command then finds a cached credential (no wsh start); on failure the
    // plugin tries again when kubectl runs it.
    try {
      await kubeCredential(profile, name, (public_key) =>
        clientForProfile(profile).kubeCert({ public_key, cluster: name }),
      );
    } catch (e) {
      ctx.stderr.write(`WARNING: could not get a Kubernetes certificate yet: ${(e as Error).message}\n`);
    }
  }
  ctx.stdout.write(
    `Logged in to Kubernetes cluster "${name}". Context "${context}" is now current in ${path}.\n` +
      (certFiles
        ? `Its certificate and key are in ${certFiles.certFile} and ${certFiles.keyFile} until ${certFiles.expires} (\`wsh login\` renews them).\n`
        : '') +
      'Try: kubectl get pods\n',
  );
  return 0;
}

/**
 * After `wsh login`: new kube certificate files, for the new login, for every cluster logged in
 * with `--cert-files` (the old ones end with the old login). A failure is a warning: the login
 * itself worked, and `wsh kube login CLUSTER --cert-files` tries again.
 */
export async function renewKubeCertFiles(ctx: CommandContext, profile: LoadedProfile): Promise<void> {
  for (const cluster of kubeCertFileClusters(profile)) {
    try {
      await writeKubeCertFiles(profile, cluster, (public_key) =>
        clientForProfile(profile).kubeCert({ public_key, cluster, lifetime: 'login' }),
      );
    } catch (e) {
      ctx.stderr.write(
        `WARNING: could not renew the certificate files of Kubernetes cluster "${cluster}": ${(e as Error).message}\n`,
      );
    }
  }
}

export async function runKubeLogout(ctx: CommandContext): Promise<number> {
  const profile = requireProfile(ctx, str(ctx.values, 'proxy'));
  const name = ctx.positionals[0];
  const removed = removeKubeLogins(profile, name, ctx.env);
  if (name && removed.length === 0)
    throw new WardenError('WARDEN_ERR_NOT_FOUND', `not logged in to Kubernetes cluster "${name}"`);
  ctx.stdout.write(
    removed.length === 0
      ? 'Not logged in to any Kubernetes cluster.\n'
      : `Logged out of ${removed.map((n) => `"${n}"`).join(', ')} (removed from the kubeconfig).\n`,
  );
  return 0;
}

/** The exec credential plugin kubectl runs (see `wsh kube login`). */
export async function runKubeCredentials(ctx: CommandContext): Promise<number> {
  const profile = requireLiveProfile(ctx, str(ctx.values, 'proxy'));
  const cluster = str(ctx.values, 'cluster') ?? 'default';
  const api = clientForProfile(profile);
  const cred = await kubeCredential(profile, cluster, (public_key) => api.kubeCert({ public_key, cluster }));
  ctx.stdout.write(`${JSON.stringify(execCredential(cred))}\n`);
  return 0;
}

/**
 * `wsh proxy kube CLUSTER -p PORT`: a plain-HTTP listener on 127.0.0.1 whose connections are
 * carried over mTLS to the proxy, for tools that cannot run an exec plugin. Prints a kubeconfig.
 */
export async function runProxyKube(ctx: CommandContext): Promise<number> {
  const name = ctx.positionals[0]!;
  const profile = requireLiveProfile(ctx, str(ctx.values, 'proxy'));
  const port = Number(str(ctx.values, 'port') ?? '0');
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new WardenError('WARDEN_ERR_BAD_PARAMETER', '--port must be a port number');
  const [host, proxyPort] = splitHostPort(profile.proxy);
  const server = createServer((local) => {
    const remote = tlsConnect({
      host,
      port: proxyPort,
      ca: profile.hostCaPems,
      cert: profile.tlsCert,
      key: profile.keyPem,
      rejectUnauthorized: !profile.insecure,
      servername: kubeTlsServerName(host),
      ALPNProtocols: ['http/1.1'],
    });
    local.pipe(remote).pipe(local);
    const close = () => {
      local.destroy();
      remote.destroy();
    };
    local.on('error', close);
    remote.on('error', close);
    local.on('close', close);
    remote.on('close', close);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  const actual = (server.address() as { port: number }).port;
  ctx.stdout.write(
    `Started a local proxy for Kubernetes cluster "${name}" on 127.0.0.1:${actual} (Ctrl-C to stop).\n` +
      'Use it with this kubeconfig:\n\n' +
      `apiVersion: v1\nkind: Config\nclusters:\n- name: ${name}\n  cluster:\n    server: http://127.0.0.1:${actual}/kube/${name}\n` +
      `users:\n- name: ${name}\n  user: {}\ncontexts:\n- name: ${name}\n  context:\n    cluster: ${name}\n    user: ${name}\ncurrent-context: ${name}\n`,
  );
  await new Promise<void>((resolve) => {
    const stop = () => {
      server.close();
      resolve();
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  return 0;
}

function splitHostPort(addr: string): [string, number] {
  const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(addr);
  if (!m) throw new WardenError('WARDEN_ERR_BAD_PARAMETER', `bad proxy address ${addr}`);
  return [m[1]!, Number(m[2])];
}
