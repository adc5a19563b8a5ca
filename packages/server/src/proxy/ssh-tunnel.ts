/**
 * SSH through the proxy port: TLS connections that negotiate ALPN `warden-ssh/1` carry one
 * request line, then raw SSH bytes between the client and the node. To a Warden node the SSH
 * session is end to end (the node authenticates the user's SSH certificate); the proxy
 * authenticates the TLS client certificate and checks access too (defence in depth). To an
 * agentless OpenSSH node (`sub_kind: openssh`) the proxy is the only gate: the SSH connection
 * ends at the proxy, which logs in to the node with a per-session openssh CA certificate
 * (srv/ssh's AgentlessForwarder, DESIGN §4).
 *
 *   client                               proxy                                node
 *     │ TLS (ALPN warden-ssh/1, mTLS) ──▶   │                                    │
 *     │ {"node":"web-1","login":"root"}\n ─▶ │ identify, find node, check access  │
 *     │ ◀── {"ok":true,"node":{…}}\n         │ ── TCP ──────────────────────────▶ │
 *     │ ◀════════════ SSH (end to end) ═════════════════════════════════════════▶ │
 *   or
 *     │ ◀── {"ok":false,"code":"WARDEN_ERR_…","message":"…"}\n  (then close)
 *
 * Access is decided by the proxy's live AccessChecker (no backend read per decision), and every
 * tunnel registers with the SessionMonitor: a lock ends it as soon as the watch delivers it —
 * for agentless nodes at once (the proxy is their only enforcement), for Warden nodes after a
 * short grace, so the node (which watches locks too) can write the lock message first.
 */
import { connect as netConnect, type Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { type AuditEventInput, type NodeResource, WardenError } from '@warden/api';
import {
  type AccessChecker,
  type AccessDecision,
  auditDevice,
  type Identity,
  type NodeTarget,
  nodeLockTargets,
  type Registration,
  type SessionMonitor,
} from '../access';
import { type AuditLog, writeAuditEvent } from '../audit';
import type { Clock } from '../clock';
import type { Logger } from '../log';
import { type AgentlessForwarder, type AgentlessHandle, afterGrace } from '../srv/ssh';
import type { NodeView } from './node-view';
import { clientCertificateDer, readRequestLine, refuseTunnel } from './tunnel-line';

/** How long a Warden node gets to end a locked session itself before the proxy cuts it. */
const LOCK_GRACE_MS = 1000;

interface Tunnel {
  client: TLSSocket;
  upstream?: Socket;
  registration?: Registration;
}

export interface SshTunnelOptions {
  /**
   * Turns a verified client certificate into an identity (`AuthServer.identify`); the tunnel
   * asks with `locks: 'caller'` and checks locks with the access decision, so that a refusal by
   * a lock is audited like any other.
   */
  identify(certDer: Buffer, opts: { locks: 'caller' }): Promise<Identity>;
  /** Finds the node a tunnel asks for, by ID or hostname (the proxy's `NodeView`). */
  nodes: Pick<NodeView, 'find'>;
  audit: AuditLog;
  clock: Clock;
  logger: Logger;
  /** The proxy's live access checker (locks, roles and settings from watch-fed views). */
  checker: AccessChecker;
  /** Ends live tunnels when a lock arrives, a certificate expires or strict mode trips. */
  monitor: SessionMonitor;
  /**
   * Serves sessions to agentless OpenSSH nodes (`sub_kind: openssh`): the SSH connection ends
   * at the proxy, which logs in to the node with a per-session openssh CA certificate.
   */
  agentless: Pick<AgentlessForwarder, 'serve'>;
}

/** A node resource as the access checker sees it (by ID and hostname). */
export function nodeTarget(node: NodeResource): NodeTarget {
  return {
    kind: 'node',
    id: node.metadata.name,
    hostname: node.spec.hostname,
    labels: { ...(node.metadata.labels ?? {}) },
  };
}

/** Public view of a node for clients. */
export function nodeInfo(node: NodeResource) {
  return {
    name: node.metadata.name,
    hostname: node.spec.hostname,
    addr: node.spec.addr,
    labels: { ...(node.metadata.labels ?? {}) },
    ...(node.spec.sub_kind ? { sub_kind: node.spec.sub_kind } : {}),
  };
}

/** The Warden node served by this process's own ssh_service, which takes tunnels without a TCP hop. */
export interface LocalSshNode {
  /** The node resource's name (its host ID). */
  name: string;
  /** Serves one SSH connection on `stream` (the client's TLS socket, paused, SSH bytes next). */
  accept(stream: Socket): void;
}

export class SshTunnels {
  readonly #o: SshTunnelOptions;
  readonly #live = new Set<Tunnel>();
  #local: LocalSshNode | undefined;

  constructor(o: SshTunnelOptions) {
    this.#o = o;
  }

  /**
   * The access decision for `login` on `node`, from live state (no backend read). Messages name
   * the node by its hostname (as the node itself does); a lock on its ID or hostname applies.
   */
  decide(identity: Identity, node: NodeResource, login: string): AccessDecision {
    return this.#o.checker.checkAccess(identity, nodeTarget(node), { login });
  }

  /**
   * Tunnels to `node` go straight into this process's ssh_service: the SSH bytes the TLS
   * socket decrypts are parsed by the node's SSH server at once, instead of being written to a
   * loopback TCP connection to the same process and read back (two system calls, a buffer and
   * a wake-up per chunk each way, and a TCP connect per session).
   */
  serveLocally(node: LocalSshNode | undefined): void {
    this.#local = node;
  }

  /** Handles one TLS connection that negotiated SSH_ALPN. */
  handle(socket: TLSSocket): void {
    readRequestLine(
      socket,
      (line, rest) => this.#open(socket, line, rest),
      (e) => this.#refuse(socket, e),
    );
  }

  async #open(socket: TLSSocket, line: string, rest: Buffer): Promise<void> {
    const der = clientCertificateDer(
      socket,
      'SSH through the proxy needs a Warden client certificate; run `wsh login`',
    );
    const addr = socket.remoteAddress?.replace(/^::ffff:/, '');
    const identity: Identity = {
      ...(await this.#o.identify(der, { locks: 'caller' })),
      ...(addr ? { clientAddr: addr } : {}),
    };
    if (identity.admin)
      throw new WardenError('WARDEN_ERR_ACCESS_DENIED', 'the admin identity cannot open SSH sessions');
    let req: { node?: unknown; login?: unknown };
    try {
      req = JSON.parse(line) as typeof req;
    } catch {
      throw new WardenError('WARDEN_ERR_BAD_PARAMETER', 'malformed SSH request line');
    }
    if (typeof req.node !== 'string' || !req.node || typeof req.login !== 'string' || !req.login) {
      throw new WardenError('WARDEN_ERR_BAD_PARAMETER', 'the SSH request needs "node" and "login"');
    }
    const node = await this.#o.nodes.find(req.node);
    const decision = this.decide(identity, node, req.login);
    // What the access event says, allowed or denied.
    const access = {
      user: identity.user,
      addr,
      protocol: 'ssh' as const,
      resource: auditNode(node),
      login: req.login,
      roles: [...identity.roles],
      ...(decision.missingRoles ? { missing_roles: decision.missingRoles } : {}),
      ...auditDevice(identity),
    };
    if (!decision.allowed) {
      await this.#emit({ type: 'access.denied', success: false, ...access, error: decision.reason });
      throw new WardenError(decision.code, decision.reason);
    }
    const agentless = node.spec.sub_kind === 'openssh';
    // The proxy is an agentless node's only enforcement: its decision is the access event.
    if (agentless) await this.#emit({ type: 'access.allowed', ...access });
    const tunnel: Tunnel = { client: socket };
    const local = this.#local;
    if (!agentless && local?.name === node.metadata.name) {
      socket.setTimeout(0);
      this.#live.add(tunnel);
      tunnel.registration = this.#o.monitor.register({
        identity,
        targets: { login: req.login, ...nodeLockTargets(nodeTarget(node)) },
        protocol: 'ssh',
        // The node ends the session itself with the message; the proxy cuts after a grace.
        end: () => afterGrace(LOCK_GRACE_MS, () => socket.destroy()),
      });
      socket.on('close', () => {
        tunnel.registration?.unregister();
        this.#live.delete(tunnel);
      });
      socket.write(`${JSON.stringify({ ok: true, node: nodeInfo(node) })}\n`);
      if (rest.length) socket.unshift(rest);
      local.accept(socket); // the SSH server resumes the socket once it listens
      return;
    }
    const [host, port] = splitAddr(node.spec.addr);
    const upstream = netConnect({ host, port });
    tunnel.upstream = upstream;
    await new Promise<void>((resolve, reject) => {
      upstream.once('connect', () => resolve());
      upstream.once('error', (e) =>
        reject(
          new WardenError(
            'WARDEN_ERR_CONNECTION',
            `cannot reach node "${node.spec.hostname}" at ${node.spec.addr}: ${e.message}`,
          ),
        ),
      );
    });
    upstream.setNoDelay(true);
    socket.setTimeout(0);
    this.#live.add(tunnel);
    const cut = () => {
      socket.destroy();
      upstream.destroy();
    };
    let handle: AgentlessHandle | undefined;
    // Agentless sessions end at the proxy, which writes the message to the user first; a
    // Warden node ends the session itself with the message, so it gets a moment before the
    // proxy cuts.
    tunnel.registration = this.#o.monitor.register({
      identity,
      targets: { login: req.login, ...nodeLockTargets(nodeTarget(node)) },
      protocol: 'ssh',
      end: (message) => {
        if (handle) handle.terminate(message);
        else afterGrace(LOCK_GRACE_MS, cut);
      },
    });
    socket.write(`${JSON.stringify({ ok: true, node: nodeInfo(node) })}\n`);
    if (agentless) {
      if (rest.length) socket.unshift(rest);
      handle = this.#o.agentless.serve({
        stream: socket,
        upstream,
        node: {
          id: node.metadata.name,
          hostname: node.spec.hostname,
          labels: { ...(node.metadata.labels ?? {}) },
        },
        identity,
        login: req.login,
        ...(addr ? { clientAddr: addr } : {}),
      });
    } else {
      if (rest.length) upstream.write(rest);
      socket.pipe(upstream);
      upstream.pipe(socket);
    }
    socket.resume();
    const done = () => {
      tunnel.registration?.unregister();
      this.#live.delete(tunnel);
      socket.destroy();
      upstream.destroy();
    };
    socket.on('close', done);
    upstream.on('close', done);
    upstream.on('error', done);
  }

  #refuse(socket: TLSSocket, e: unknown): void {
    refuseTunnel(socket, e, this.#o.logger, 'SSH tunnel');
  }

  async #emit(event: AuditEventInput): Promise<void> {
    await writeAuditEvent(this.#o.audit, this.#o.logger, event);
  }

  close(): void {
    for (const t of this.#live) {
      t.registration?.unregister();
      t.client.destroy();
      t.upstream?.destroy();
    }
    this.#live.clear();
  }
}

/** A node as audit events name it: its ID and its hostname, always both. */
export function auditNode(node: NodeResource): { kind: 'node'; name: string; hostname: string } {
  return { kind: 'node', name: node.metadata.name, hostname: node.spec.hostname };
}

function splitAddr(addr: string): [string, number] {
  const i = addr.lastIndexOf(':');
  return [addr.slice(0, i).replace(/^\[|\]$/g, ''), Number(addr.slice(i + 1))];
}
