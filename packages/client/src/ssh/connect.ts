/**
 * An SSH connection to one node over a byte stream we already have (from `dialNode` through
 * the proxy, or a TCP socket in tests): ssh2 as the protocol engine, our code for the trust
 * decisions. The user logs in with their Warden SSH certificate only; the node must present a
 * host certificate from the cluster's host CA (host-cert.ts).
 *
 *   wsh                               node (Warden ssh_service or OpenSSH sshd)
 *    │ ── version, KEXINIT (host key algs: *-cert-v01 only) ──▶ │
 *    │ ◀── KEX reply: host certificate, signature over H ────── │  verifyHostCertificate, then
 *    │                                                          │  ssh2 checks H's signature
 *    │ ── userauth publickey (cert, query) ───────────────────▶ │
 *    │ ◀── PK_OK ────────────────────────────────────────────── │
 *    │ ── userauth publickey (cert, signed by our key) ──────▶ │  @warden/api/ssh2-patch
 *    │ ◀── SUCCESS ──────────────────────────────────────────── │
 *    │ ── session / direct-tcpip channels ───────────────────▶ │
 *
 * Who may import: this folder (index.ts re-exports). Tested in test/ssh-client/ against a
 * real OpenSSH sshd.
 */
import { createPrivateKey, type KeyObject } from 'node:crypto';
import type { Duplex } from 'node:stream';
import { type SshCertificate, WardenError } from '@warden/api';
import { type CertificateKey, certificateKey, connectWithCertificates } from '@warden/api/ssh2-patch';
import ssh2 from 'ssh2';
import { channelError } from './errors';
import { verifyHostCertificate } from './host-cert';

export interface NodeSshOptions {
  /** Byte stream to the node's SSH server. */
  stream: Duplex;
  /** The login (remote OS user); must be a principal of the user certificate. */
  login: string;
  /** The user's private key (PKCS#8 PEM, as in the profile) and its OpenSSH certificate line. */
  keyPem: string;
  sshCert: string;
  /** Host CA public keys (hostCaKeys(profile.knownHosts)). */
  hostCaKeys: readonly KeyObject[];
  /** Names of the node; its host certificate must list one (node name, hostname…). */
  hostPrincipals: readonly string[];
  /** How the user named the node, for messages. */
  nodeName: string;
  /** Clock for the certificate validity check (ms since the epoch). */
  now?: () => number;
  /** Handshake and authentication deadline (default 20 s). */
  readyTimeoutMs?: number;
  /**
   * Forward this SSH agent (its socket path, `SSH_AUTH_SOCK`) to the node's sessions (`-A`).
   * The node grants it only when the certificate carries `permit-agent-forwarding`.
   */
  agentSocket?: string;
}

/** Pseudo-terminal request: TERM and window size. */
export interface PtyRequest {
  term: string;
  rows: number;
  cols: number;
}

type Ssh2Client = InstanceType<typeof ssh2.Client>;
export type SshChannel = ssh2.ClientChannel;

/**
 * Opens an SSH connection to a node over `stream`: host certificate checked, user certificate
 * login. Resolves once authenticated; rejects with a WardenError saying what went wrong.
 *
 * @example
 *   const { stream, node } = await dialNode(profile, { node: 'web-1', login: 'root' });
 *   const ssh = await connectNode({ stream, login: 'root', keyPem: profile.keyPem,
 *     sshCert: profile.sshCert, hostCaKeys: hostCaKeys(profile.knownHosts),
 *     hostPrincipals: [node.name, node.hostname], nodeName: 'web-1' });
 *   const code = await runSession(ssh, { command: 'uptime' }, process);
 */
export async function connectNode(opts: NodeSshOptions): Promise<NodeSsh> {
  let key: CertificateKey;
  try {
    key = certificateKey(
      createPrivateKey(opts.keyPem),
      opts.sshCert,
      'the SSH certificate in your profile is not for your key; run `wsh login` again',
    );
    if (key.certificate.type !== 'user') {
      throw new WardenError(
        'WARDEN_ERR_BAD_CERTIFICATE',
        'the SSH certificate in your profile is not a user certificate',
      );
    }
  } catch (e) {
    opts.stream.destroy(); // the stream is ours once passed in
    throw e;
  }
  const now = opts.now ?? Date.now;
  const client = new ssh2.Client();
  let hostCert: SshCertificate | undefined;
  let hostError: unknown;
  return new Promise<NodeSsh>((resolve, reject) => {
    let settled = false;
    const fail = (e: unknown) => {
      if (settled) return;
      settled = true;
      client.end();
      opts.stream.destroy();
      reject(connectError(e, hostError, opts));
    };
    // Stays until the connection is handed over: ssh2 may report more than one error while
    // tearing down, and an 'error' without a listener would crash the process.
    client.on('error', fail);
    client.once('ready', () => {
      if (settled) return;
      if (!hostCert) {
        // Cannot happen with the certificate-only offer; fail closed if it somehow does.
        fail(new Error('the node was not verified'));
        return;
      }
      settled = true;
      const ssh = new NodeSsh(client, hostCert);
      client.off('error', fail);
      resolve(ssh);
    });
    connectWithCertificates(
      client,
      {
        sock: opts.stream as unknown as ssh2.ConnectConfig['sock'],
        username: opts.login,
        readyTimeout: opts.readyTimeoutMs ?? 20_000,
        ...(opts.agentSocket ? { agent: opts.agentSocket, agentForward: true } : {}),
      },
      {
        key,
        checkHost: (blob) => {
          hostCert = verifyHostCertificate(blob, {
            caKeys: opts.hostCaKeys,
            principals: opts.hostPrincipals,
            now: now(),
            nodeName: opts.nodeName,
          });
          return hostCert;
        },
        hostRefused: (e) => {
          hostError = e;
          fail(e);
        },
        failed: fail,
      },
    );
  });
}

function connectError(e: unknown, hostError: unknown, opts: NodeSshOptions): unknown {
  if (hostError) return hostError;
  if (e instanceof WardenError) return e;
  const msg = (e as Error)?.message ?? String(e);
  const node = JSON.stringify(opts.nodeName);
  if (/no matching host key format/.test(msg)) {
    return new WardenError(
      'WARDEN_ERR_BAD_CERTIFICATE',
      `refusing to connect to node ${node}: it offers no host certificate; Warden nodes must present a host certificate from the cluster's host CA`,
    );
  }
  if (/All configured authentication methods failed/.test(msg)) {
    return new WardenError(
      'WARDEN_ERR_ACCESS_DENIED',
      `ssh: node ${node} refused your certificate for login "${opts.login}"; \`wsh status\` lists your logins`,
    );
  }
  if (/Timed out while waiting for handshake/.test(msg)) {
    return new WardenError(
      'WARDEN_ERR_CONNECTION',
      `ssh: node ${node} did not complete the SSH handshake in time`,
    );
  }
  return new WardenError('WARDEN_ERR_CONNECTION', `ssh: connection to node ${node} failed: ${msg}`);
}

/** An authenticated SSH connection to a node. */
export class NodeSsh {
  readonly #client: Ssh2Client;
  /** The node's verified host certificate. */
  readonly hostCertificate: SshCertificate;
  /** Resolves when the connection is gone. */
  readonly closed: Promise<void>;
  #error: unknown;

  constructor(client: Ssh2Client, hostCertificate: SshCertificate) {
    this.#client = client;
    this.hostCertificate = hostCertificate;
    // A late transport error (reset, timeout) ends the connection; keep it for messages.
    client.on('error', (e) => {
      this.#error ??= e;
    });
    this.closed = new Promise((resolve) => client.once('close', () => resolve()));
  }

  /** The transport error that ended the connection, if any. */
  get error(): unknown {
    return this.#error;
  }

  /** Runs `command` (with a PTY when `pty` is given). */
  exec(command: string, pty?: PtyRequest): Promise<SshChannel> {
    return new Promise((resolve, reject) => {
      this.#client.exec(command, pty ? { pty } : {}, (err, ch) =>
        err ? reject(channelError(err)) : resolve(ch),
      );
    });
  }

  /** Starts the login shell (with a PTY when `pty` is given). */
  shell(pty?: PtyRequest): Promise<SshChannel> {
    return new Promise((resolve, reject) => {
      this.#client.shell(pty ?? false, (err, ch) => (err ? reject(channelError(err)) : resolve(ch)));
    });
  }

  /** Opens a direct-tcpip channel from the node to `host:port` (what `-L` uses). */
  forwardOut(srcAddr: string, srcPort: number, host: string, port: number): Promise<SshChannel> {
    return new Promise((resolve, reject) => {
      this.#client.forwardOut(srcAddr, srcPort, host, port, (err, ch) =>
        err ? reject(channelError(err)) : resolve(ch),
      );
    });
  }

  /** Closes the connection. */
  end(): void {
    this.#client.end();
  }
}
