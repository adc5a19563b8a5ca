/**
 * The OpenSSH client configuration that `wsh config` prints, so plain `ssh`/`scp` reach
 * Warden nodes through the proxy with the profile's key, certificate and host CA:
 *
 *   Host *.<cluster> <node> <node>…          every node by bare name, and any <name>.<cluster>
 *                                            (so a node added later works as <name>.<cluster>)
 *       ProxyCommand <wsh> proxy ssh --login=%r %h
 *       IdentityFile / CertificateFile       the profile's key.pem and key-cert.pub
 *       Ciphers aes128-gcm@openssh.com,…     on a CPU with AES instructions (as `wsh ssh`, see below)
 *       UserKnownHostsFile                   the profile's known_hosts (@cert-authority line)
 *       StrictHostKeyChecking yes, IdentitiesOnly yes
 *   Host <node>
 *       HostKeyAlias <node>.<cluster>        the known_hosts pattern is *.<cluster>, and host
 *                                            certificates list <name> and <name>.<cluster>
 *
 * It is meant for `Include` from ~/.ssh/config, or `ssh -F FILE`: OpenSSH 9.2 (Debian 12)
 * closes inherited descriptors before it reads `-F`, so `ssh -F <(wsh config)` cannot work.
 *
 * OpenSSH pairs a CertificateFile with an IdentityFile by public key, and it reads an
 * identity's public key only from `<identity>.pub` (it cannot from a PKCS#8 PEM file), so the
 * profile also needs `key.pem.pub`: writeOpenSshIdentityPub() puts it there.
 *
 * Who may import: this folder (index.ts re-exports). Tested by openssh-config.test.ts and in
 * test/ssh-client/ with a real `ssh` against a real `sshd`.
 */
import { existsSync, readFileSync, realpathSync, renameSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';

/**
 * The cipher order of Warden's own SSH client (ssh2, `wsh ssh`) on a CPU with AES
 * instructions: AES-GCM first, then ChaCha20-Poly1305, then AES-CTR. OpenSSH puts
 * ChaCha20-Poly1305 first on every CPU (the faster one without AES hardware); with it, the
 * ssh client's encryption and the node's decryption (ssh2, which decrypts AES-GCM through
 * OpenSSL) cost about twice the CPU per MiB of AES-GCM (bench/README.md, SSH). Every
 * algorithm here is in OpenSSH's default list since 6.5, so a node offering any of them still
 * agrees; the list only changes which one is tried first.
 */
export const AES_FIRST_CIPHERS =
  'aes128-gcm@openssh.com,aes256-gcm@openssh.com,chacha20-poly1305@openssh.com,aes128-ctr,aes192-ctr,aes256-ctr';

/**
 * Whether this machine's CPU has AES instructions: the `aes` flag of /proc/cpuinfo on Linux
 * (x86 `flags`, Arm `Features`); macOS on Apple silicon and on every Intel Mac that runs a
 * current Node has them. Anything else, or an unreadable /proc: no (OpenSSH's own order stays).
 */
export function cpuHasAes(platform: string = process.platform, cpuinfo?: () => string): boolean {
  if (platform === 'darwin') return true;
  if (platform !== 'linux') return false;
  let text: string;
  try {
    text = cpuinfo ? cpuinfo() : readFileSync('/proc/cpuinfo', 'utf8');
  } catch {
    return false;
  }
  return /^(?:flags|Features)\s*:.*\baes\b/m.test(text);
}

/** The profile files the config points at. */
export const OPENSSH_FILES = {
  identity: 'key.pem',
  identityPub: 'key.pem.pub',
  certificate: 'key-cert.pub',
  knownHosts: 'known_hosts',
} as const;

/**
 * Writes `<profileDir>/key.pem.pub` (the user's OpenSSH public key line) unless it already
 * holds that key, so OpenSSH can match key-cert.pub to key.pem. Atomic (temp file + rename).
 */
export function writeOpenSshIdentityPub(profileDir: string, sshPublicKey: string): void {
  const path = join(profileDir, OPENSSH_FILES.identityPub);
  const line = `${sshPublicKey.trim()}\n`;
  try {
    if (readFileSync(path, 'utf8') === line) return;
  } catch {
    // missing: write it
  }
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, line, { mode: 0o644 });
  renameSync(tmp, path);
}

export interface OpenSshConfigOptions {
  cluster: string;
  proxy: string;
  /** The profile directory (holds key.pem, key-cert.pub, known_hosts). */
  profileDir: string;
  /** Names of the nodes the user may reach (each gets a HostKeyAlias). */
  nodes: readonly string[];
  /** The command line that runs `wsh` (already quoted for sh), e.g. `'/usr/bin/node' '/opt/wsh.js'`. */
  wshCommand: string;
  /**
   * The command line for the ProxyCommand, which runs `… proxy ssh` (default: wshCommand);
   * `wsh config` names dist/wsh-proxy-ssh.js, wsh's one-file build of that command.
   */
  proxySshCommand?: string;
  /** Prefer AES-GCM (`Ciphers AES_FIRST_CIPHERS`); callers pass `cpuHasAes()`. Default: OpenSSH's order. */
  aesFirst?: boolean;
}

/** Quotes one word for /bin/sh (OpenSSH runs ProxyCommand with the user's shell). */
export function shellQuote(word: string): string {
  return /^[A-Za-z0-9_./:@%+=-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

/**
 * The command line of the one-file ProxyCommand (dist/wsh-proxy-ssh.js), quoted for sh, with
 * what keeps its start short. OpenSSH starts it for every session, and the tunnel trusts only
 * the profile's host CAs (client/api/tunnel.ts), so the relay needs no default trust store —
 * yet building one was most of its start:
 * - without `NODE_EXTRA_CA_CERTS`: Node reads and parses that bundle at every start (63 ms of
 *   CPU for Debian's 220 kB ca-certificates.crt, three times the rest of `node -e 0`);
 * - `--use-openssl-ca` with `SSL_CERT_FILE` and `SSL_CERT_DIR` at /dev/null: the first TLS
 *   context given a `ca` makes Node 20 build its default root store (only to compare it with the
 *   context's own store), which parses the ~140 root certificates built into Node; with
 *   OpenSSL's store instead, pointed at nothing, there is nothing to parse (~1 ms instead of
 *   ~90 ms wall at load 24, bench/README.md). The context still trusts exactly its `ca`.
 *
 * @example
 *   relayCommandLine('/usr/bin/node', [], '/opt/warden/dist/wsh-proxy-ssh.js')
 *   // → "env -u NODE_EXTRA_CA_CERTS SSL_CERT_FILE=/dev/null SSL_CERT_DIR=/dev/null /usr/bin/node --use-openssl-ca /opt/warden/dist/wsh-proxy-ssh.js"
 */
export function relayCommandLine(execPath: string, execArgv: readonly string[], script: string): string {
  const node = [execPath, '--use-openssl-ca', ...execArgv, script].map(shellQuote).join(' ');
  return `env -u NODE_EXTRA_CA_CERTS SSL_CERT_FILE=/dev/null SSL_CERT_DIR=/dev/null ${node}`;
}

/** `path` with its symlinks resolved, or as it is when it does not exist (yet). */
export function realpathOr(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    return path;
  }
}

/**
 * The CLI `script` (e.g. process.argv[1]) with its symlinks resolved (`path`), and the
 * ProxyCommand OpenSSH should run (`relay`, relayCommandLine) when it is the bundled `bundle`
 * (`wsh.js`, `wbot.js`) with dist/wsh-proxy-ssh.js (`wsh proxy ssh` alone in one file, which
 * starts fastest) beside it; `relay` is undefined otherwise (the sources under tsx).
 */
export function bundledRelay(
  execPath: string,
  execArgv: readonly string[],
  script: string,
  bundle: string,
): { path: string; relay: string | undefined } {
  const path = realpathOr(resolve(script));
  const alone = join(dirname(path), 'wsh-proxy-ssh.js');
  const bundled = basename(path) === bundle && existsSync(alone);
  return { path, relay: bundled ? relayCommandLine(execPath, execArgv, realpathOr(alone)) : undefined };
}

/** A file argument for ssh_config: `%` doubled (it expands %-tokens), quoted if needed. */
function fileArg(path: string): string {
  const p = path.replace(/%/g, '%%');
  return /[\s"]/.test(p) ? `"${p.replace(/"/g, '\\"')}"` : p;
}

/** Host names OpenSSH accepts in a `Host` line (no patterns, no spaces). */
function plainHost(name: string): boolean {
  return /^[A-Za-z0-9._-]+$/.test(name);
}

/** What every Warden host gets: the profile's key, certificate and host CA, and the proxy. */
function commonLines(
  o: Pick<OpenSshConfigOptions, 'profileDir' | 'wshCommand' | 'proxySshCommand' | 'aesFirst'>,
): string[] {
  return [
    ...(o.aesFirst ? [`    Ciphers ${AES_FIRST_CIPHERS}`] : []),
    `    UserKnownHostsFile ${fileArg(join(o.profileDir, OPENSSH_FILES.knownHosts))}`,
    `    IdentityFile ${fileArg(join(o.profileDir, OPENSSH_FILES.identity))}`,
    `    CertificateFile ${fileArg(join(o.profileDir, OPENSSH_FILES.certificate))}`,
    '    IdentitiesOnly yes',
    '    StrictHostKeyChecking yes',
    '    GlobalKnownHostsFile /dev/null',
    `    ProxyCommand ${(o.proxySshCommand ?? o.wshCommand).replace(/%/g, '%%')} proxy ssh --login=%r %h`,
  ];
}

/**
 * The config block text (ends with a newline).
 *
 * @example
 *   openSshConfig({ cluster: 'example.com', proxy: 'proxy:3080', profileDir: '/home/a/.warden/profiles/proxy_3080',
 *     nodes: ['web-1'], wshCommand: "'/usr/bin/node' '/opt/warden/dist/wsh.js'" })
 */
export function openSshConfig(o: OpenSshConfigOptions): string {
  const nodes = [...new Set(o.nodes.filter(plainHost))].sort();
  const lines = [
    `# Warden cluster ${o.cluster} through the proxy ${o.proxy}, printed by \`wsh config\`.`,
    `# Save it and include it from ~/.ssh/config (the Include line goes before any Host line):`,
    `#   wsh config > ~/.ssh/warden-${o.cluster}.conf`,
    `#   Include warden-${o.cluster}.conf`,
    `# or use it alone: ssh -F ~/.ssh/warden-${o.cluster}.conf root@NODE`,
    `# Any NODE.${o.cluster} goes through the proxy, nodes added later too; bare node names`,
    '# are those listed below (run `wsh config` again after `wsh login` to refresh them).',
    `Host *.${o.cluster} ${nodes.join(' ')}`.trimEnd(),
    ...commonLines(o),
    ...nodes.flatMap((n) => [`Host ${n}`, `    HostKeyAlias ${n}.${o.cluster}`]),
  ];
  return `${lines.join('\n')}\n`;
}

/**
 * The `Match exec` form of the block (`wsh config --form=match`): no node list to go stale.
 * For a bare host name, OpenSSH runs `<wsh> config --is-node %h` (exit 0 for a node of the
 * cluster, from a node list cached in the profile for a minute) and then connects to
 * `<name>.<cluster>`; every `*.<cluster>` name goes through the proxy as in openSshConfig.
 * The cost: OpenSSH runs that check for every bare host name it connects to, Warden's or not
 * (names with a dot are skipped), so the Host form stays the default.
 *
 *   Match !host *.<cluster>,*.* exec "<wsh> config --is-node %h"
 *       Hostname %h.<cluster>
 *   Match host *.<cluster>
 *       ProxyCommand … IdentityFile … (as in openSshConfig)
 */
export function openSshMatchConfig(o: Omit<OpenSshConfigOptions, 'nodes'>): string {
  const wsh = o.wshCommand.replace(/%/g, '%%');
  const lines = [
    `# Warden cluster ${o.cluster} through the proxy ${o.proxy}, printed by \`wsh config --form=match\`.`,
    '# Save it and include it from ~/.ssh/config (the Include line goes before any Host line):',
    `#   wsh config --form=match > ~/.ssh/warden-${o.cluster}.conf`,
    `#   Include warden-${o.cluster}.conf`,
    `# Any NODE or NODE.${o.cluster} goes through the proxy, nodes added later too: for a bare`,
    '# host name OpenSSH first asks `wsh config --is-node` (each time; names with a dot skip it).',
    // The name goes to the shell in single quotes; OpenSSH refuses host names with quotes.
    `Match !host *.${o.cluster},*.* exec "${wsh} config --is-node '%h'"`,
    `    Hostname %h.${o.cluster}`,
    `Match host *.${o.cluster}`,
    ...commonLines(o),
  ];
  return `${lines.join('\n')}\n`;
}
