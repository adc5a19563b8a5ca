/**
 * `wsh ssh`, `wsh ls`, `wsh config` and `wsh proxy ssh`: thin commands over the SSH client in
 * `@warden/client` (dial through the proxy, certificate login, host certificate check).
 */
import { resolve } from 'node:path';
import { parseSshCertificate, WardenError } from '@warden/api';
import {
  bundledRelay,
  clientForProfile,
  connectNode,
  cpuHasAes,
  dialNode,
  hostCaKeys,
  type LoadedProfile,
  type LocalForward,
  type NodeSsh,
  openSshConfig,
  openSshMatchConfig,
  parseForwardSpec,
  proxyError,
  ptyRequest,
  realpathOr,
  runSession,
  shellQuote,
  startLocalForward,
  writeOpenSshIdentityPub,
} from '@warden/client';
import { type CommandContext, formatError, str } from '../command';
import { formatData, formatLabels, parseFormat, table } from '../format';
import { requireLiveProfile } from '../profile';
import { writeNodeCache } from './is-node';
import { chooseLogin, parseTarget, stripCluster } from './target';

/** The remote command from the words after NODE, joined with spaces as ssh does. */
export function remoteCommand(words: readonly string[]): string | undefined {
  return words.length > 0 ? words.join(' ') : undefined;
}

async function dial(profile: LoadedProfile, node: string, login: string) {
  try {
    return await dialNode(profile, { node, login });
  } catch (e) {
    throw proxyError(e);
  }
}

/** Dials `node` through the proxy and logs in as `login`. */
export async function openNodeSsh(
  profile: LoadedProfile,
  node: string,
  login: string,
  agentSocket?: string,
): Promise<NodeSsh> {
  const dialed = await dial(profile, node, login);
  const info = dialed.node;
  return connectNode({
    ...(agentSocket ? { agentSocket } : {}),
    stream: dialed.stream,
    login,
    keyPem: profile.keyPem,
    sshCert: profile.sshCert,
    hostCaKeys: hostCaKeys(profile.knownHosts),
    hostPrincipals: [info.name, info.hostname, `${info.name}.${profile.cluster}`],
    nodeName: node,
  });
}

function forwardSpecs(ctx: CommandContext) {
  const v = ctx.values.forward;
  const specs = Array.isArray(v) ? v.map(String) : typeof v === 'string' ? [v] : [];
  return specs.map(parseForwardSpec);
}

export async function runSsh(ctx: CommandContext): Promise<number> {
  const [target = '', ...words] = ctx.positionals;
  const profile = requireLiveProfile(ctx);
  const { login: targetLogin, node: host } = parseTarget(target);
  // `node-1.<cluster>` is node-1, as for plain ssh with `wsh config`.
  const node = stripCluster(host, profile.cluster);
  const login = chooseLogin(str(ctx.values, 'login'), targetLogin, profile);
  const specs = forwardSpecs(ctx);
  const command = remoteCommand(words);
  if (ctx.values.tty && ctx.values['no-tty']) {
    throw new WardenError('WARDEN_ERR_BAD_PARAMETER', '-t and -T contradict each other; give one');
  }
  const noExec = ctx.values['no-remote-exec'] === true;
  if (noExec && command !== undefined) {
    throw new WardenError('WARDEN_ERR_BAD_PARAMETER', `-N runs no command, but "${command}" was given`);
  }

  const ssh = await openNodeSsh(profile, node, login, agentToForward(ctx, profile));
  const forwards: LocalForward[] = [];
  try {
    for (const spec of specs) {
      forwards.push(
        await startLocalForward(ssh, spec, (e) => ctx.stderr.write(`${formatError(e, ctx.env)}\n`)),
      );
    }
    if (noExec) {
      await ssh.closed;
      return 0;
    }
    const force = ctx.values.tty === true ? true : ctx.values['no-tty'] === true ? false : undefined;
    const pty = ptyRequest(ctx, ctx.env, { command, force });
    return await runSession(ssh, { command, pty }, ctx);
  } finally {
    await Promise.all(forwards.map((f) => f.close()));
    ssh.end();
  }
}

/**
 * `-A`: the agent socket to forward, when the certificate permits it (a role's
 * `permit_agent_forwarding`); otherwise a warning and no forwarding, as OpenSSH goes on
 * without it.
 */
function agentToForward(ctx: CommandContext, profile: LoadedProfile): string | undefined {
  if (ctx.values['forward-agent'] !== true) return undefined;
  const sock = ctx.env.SSH_AUTH_SOCK;
  if (!sock) {
    ctx.stderr.write('WARNING: -A: no SSH agent (SSH_AUTH_SOCK is not set); not forwarding one\n');
    return undefined;
  }
  if (!('permit-agent-forwarding' in parseSshCertificate(profile.sshCert).extensions)) {
    ctx.stderr.write(
      'WARNING: -A: your roles do not permit agent forwarding (role option permit_agent_forwarding); not forwarding\n',
    );
    return undefined;
  }
  return sock;
}

/** The fields of a node resource that `wsh ls` shows (other fields pass through to json/yaml). */
interface NodeView {
  metadata: { name: string; labels?: Record<string, string> };
  spec?: { hostname?: string; addr?: string };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

const optionalString = (v: unknown) => v === undefined || typeof v === 'string';

/**
 * `item` as a NodeView, or undefined. Checked by hand: with zod, `wsh ssh` (this module too)
 * would load it at every start.
 */
export function nodeView(item: unknown): NodeView | undefined {
  if (!isObject(item) || !isObject(item.metadata) || typeof item.metadata.name !== 'string') return undefined;
  const { labels } = item.metadata;
  if (
    labels !== undefined &&
    !(isObject(labels) && Object.values(labels).every((v) => typeof v === 'string'))
  )
    return undefined;
  const { spec } = item;
  if (spec !== undefined && !(isObject(spec) && optionalString(spec.hostname) && optionalString(spec.addr)))
    return undefined;
  return item as unknown as NodeView;
}

async function listNodes(profile: LoadedProfile): Promise<{ raw: unknown[]; nodes: NodeView[] }> {
  const { items } = await clientForProfile(profile).listNodes();
  const nodes = items.map((item) => {
    const view = nodeView(item);
    if (!view) {
      throw new WardenError(
        'WARDEN_ERR_CONNECTION',
        `the proxy at ${profile.proxy} sent a malformed node list`,
      );
    }
    return view;
  });
  return { raw: items, nodes };
}

export async function runLs(ctx: CommandContext): Promise<number> {
  const format = parseFormat(ctx.values.format);
  const profile = requireLiveProfile(ctx);
  const { raw, nodes } = await listNodes(profile);
  if (format !== 'text') {
    ctx.stdout.write(formatData(raw, format));
    return 0;
  }
  const rows = nodes
    .map((n) => [
      n.spec?.hostname ?? n.metadata.name,
      n.spec?.addr ?? '',
      formatLabels(n.metadata.labels ?? {}),
    ])
    .sort((a, b) => (a[0]! < b[0]! ? -1 : a[0]! > b[0]! ? 1 : 0));
  ctx.stdout.write(table(['Node Name', 'Address', 'Labels'], rows));
  return 0;
}

/** How OpenSSH should run this wsh: the node binary, its flags, and this script, quoted for sh. */
export function wshCommandLine(
  execPath: string = process.execPath,
  execArgv: readonly string[] = process.execArgv,
  script: string = process.argv[1] ?? 'wsh',
): string {
  return [execPath, ...execArgv, realpathOr(resolve(script))].map(shellQuote).join(' ');
}

/**
 * The ProxyCommand's command line: dist/wsh-proxy-ssh.js (the `proxy ssh` command alone in one
 * file, which starts faster; OpenSSH runs it for every session) when this is the bundled
 * dist/wsh.js beside it, run without a default trust store (relayCommandLine), else this wsh.
 */
export function proxySshCommandLine(
  execPath: string = process.execPath,
  execArgv: readonly string[] = process.execArgv,
  script: string = process.argv[1] ?? 'wsh',
): string {
  const { path, relay } = bundledRelay(execPath, execArgv, script, 'wsh.js');
  return relay ?? wshCommandLine(execPath, execArgv, path);
}

export async function runConfig(ctx: CommandContext): Promise<number> {
  const form = str(ctx.values, 'form') ?? 'host';
  if (form !== 'host' && form !== 'match') {
    throw new WardenError('WARDEN_ERR_BAD_PARAMETER', `invalid --form "${form}": expected host or match`);
  }
  const profile = requireLiveProfile(ctx);
  // OpenSSH needs key.pem.pub beside key.pem to pair it with key-cert.pub.
  writeOpenSshIdentityPub(profile.dir, profile.sshPublicKey);
  if (form === 'match') {
    ctx.stdout.write(
      openSshMatchConfig({
        cluster: profile.cluster,
        proxy: profile.proxy,
        profileDir: profile.dir,
        wshCommand: wshCommandLine(),
        proxySshCommand: proxySshCommandLine(),
        aesFirst: cpuHasAes(),
      }),
    );
    return 0;
  }
  let nodes: string[] = [];
  try {
    nodes = (await listNodes(profile)).nodes.map((n) => n.spec?.hostname ?? n.metadata.name);
    writeNodeCache(profile.dir, nodes);
  } catch (e) {
    ctx.stderr.write(
      `WARNING: cannot list nodes (${(e as Error).message}); only *.${profile.cluster} names are configured\n`,
    );
  }
  ctx.stdout.write(
    openSshConfig({
      cluster: profile.cluster,
      proxy: profile.proxy,
      profileDir: profile.dir,
      nodes,
      wshCommand: wshCommandLine(),
      proxySshCommand: proxySshCommandLine(),
      aesFirst: cpuHasAes(),
    }),
  );
  return 0;
}
