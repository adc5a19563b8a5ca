/**
 * SSH through the proxy port: TLS connections that negotiate ALPN `warden-ssh/1` carry one
 * request line, then raw SSH bytes between the client and the node. The SSH session itself is
 * end to end (the node authenticates the user's SSH certificate); the proxy authenticates the
 * TLS client certificate, checks access too (defence in depth), and is the only gate for
 * agentless OpenSSH nodes.
 *
 *   client                               proxy                                node
 *     │ TLS (ALPN warden-ssh/1, mTLS) ──▶   │                                    │
 *     │ {"node":"web-1","login":"root"}\n ─▶ │ identify, find node, check access  │
 *     │ ◀── {"ok":true,"node":{…}}\n         │ ── TCP ──────────────────────────▶ │
 *     │ ◀════════════ SSH (end to end) ═════════════════════════════════════════▶ │
 *   or
 *     │ ◀── {"ok":false,"code":"WARDEN_ERR_…","message":"…"}\n  (then close)
 *
 * Locks end live tunnels: for agentless nodes at once (the proxy is their only enforcement);
 * for Warden nodes after a short grace, so the node can write the lock message first.
 */
import { connect as netConnect, type Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import {
  type AuditEventInput,
  type LockResource,
  type NodeResource,
  type RoleResource,
  WardenError,
} from '@warden/api';
import {
  type AccessDecision,
  DEFAULT_LOCK_MAX_STALENESS_MS,
  decideAccess,
  findLockInForce,
  lockMessage,
} from '../access';
import { type AuditLog, writeAuditEvent } from '../audit';
import type { AuthServer } from '../auth';
import type { Clock } from '../clock';
import type { Logger } from '../log';
import type { ResourceCache, Services } from '../services';
import type { RequestIdentity } from './router';
import { readRequestLine, refuseTunnel } from './tunnel-line';

export const SSH_ALPN = 'warden-ssh/1';
/** How long a Warden node gets to end a locked session itself before the proxy cuts it. */
const LOCK_GRACE_MS = 1000;
/** How often live tunnels are re-checked against the lock view. */
const LOCK_RECHECK_MS = 1000;

interface Tunnel {
  identity: RequestIdentity;
  login: string;
  node: NodeResource;
  client: TLSSocket;
  upstream?: Socket;
}

export interface SshTunnelOptions {
  auth: AuthServer;
  services: Services;
  audit: AuditLog;
  clock: Clock;
  logger: Logger;
  /** Live lock view (started by the caller). */
  locks: ResourceCache<LockResource>;
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

/** Finds a node by name (ID) or hostname; several nodes with one hostname → ask for the ID. */
export async function findNode(services: Services, wanted: string): Promise<NodeResource> {
  const nodes = await services.nodes.list();
  const byName = nodes.find((n) => n.metadata.name === wanted);
  if (byName) return byName;
  const byHost = nodes.filter((n) => n.spec.hostname === wanted);
  if (byHost.length === 1) return byHost[0]!;
  if (byHost.length > 1) {
    throw new WardenError(
      'WARDEN_ERR_BAD_PARAMETER',
      `several nodes are named "${wanted}": use the node ID (${byHost.map((n) => n.metadata.name).join(', ')})`,
    );
  }
  throw new WardenError(
    'WARDEN_ERR_NOT_FOUND',
    `node "${wanted}" not found; \`wsh ls\` lists the nodes you can reach`,
  );
}

export class SshTunnels {
  readonly #o: SshTunnelOptions;
  readonly #live = new Set<Tunnel>();
  readonly #unsubscribe: () => void;

  /** Last locking mode read from the auth preference (kept for when the backend is unreachable). */
  #lockingMode: string | undefined;
  readonly #timer: NodeJS.Timeout;

  constructor(o: SshTunnelOptions) {
    this.#o = o;
    this.#unsubscribe = o.locks.onChange(() => this.#enforceLocks());
    // Re-checked every second too: in `locking_mode: strict`, a lock view that went stale ends
    // tunnels even though no change arrives (agentless nodes have no other enforcement).
    this.#timer = setInterval(() => {
      o.services.authPreference.get().then(
        (cap) => {
          this.#lockingMode = cap.spec.locking_mode;
        },
        () => undefined,
      );
      this.#enforceLocks();
    }, LOCK_RECHECK_MS);
    this.#timer.unref();
  }

  /** Roles of an identity, as resources (missing roles grant nothing). */
  async roles(names: readonly string[]): Promise<RoleResource[]> {
    const out: RoleResource[] = [];
    for (const n of names) {
      const r = await this.#o.services.roles.find(n);
      if (r) out.push(r);
    }
    return out;
  }

  /**
   * The access decision for `login` on `node`. The node is named by its hostname (as the node
   * itself does, so messages and `--node` locks read the same); a lock on its ID applies too.
   */
  async decide(identity: RequestIdentity, node: NodeResource, login: string): Promise<AccessDecision> {
    const cap = await this.#o.services.authPreference.get();
    this.#lockingMode = cap.spec.locking_mode;
    const now = this.#o.clock.now();
    const byId = findLockInForce(this.#o.locks.values(), { node: node.metadata.name }, now);
    if (byId)
      return {
        allowed: false,
        step: 'lock',
        code: 'WARDEN_ERR_LOCKED',
        reason: lockMessage(byId),
        lock: byId,
      };
    return decideAccess(
      {
        locks: this.#o.locks.values(),
        lockViewStaleForMs: this.#o.locks.staleForMs(now),
        lockingMode: cap.spec.locking_mode,
        lockMaxStalenessMs: DEFAULT_LOCK_MAX_STALENESS_MS,
        clusterDeviceTrustMode: cap.spec.device_trust?.mode,
        now,
      },
      {
        user: identity.user,
        roles: await this.roles(identity.roles),
        traits: identity.traits,
        ...(identity.device ? { device: identity.device } : {}),
      },
      {
        kind: 'node',
        id: node.metadata.name,
        hostname: node.spec.hostname,
        labels: { ...(node.metadata.labels ?? {}) },
      },
      { login },
    );
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
    const peer = socket.getPeerCertificate();
    if (!socket.authorized || !peer?.raw) {
      throw new WardenError(
        'WARDEN_ERR_NOT_LOGGED_IN',
        'SSH through the proxy needs a Warden client certificate; run `wsh login`',
      );
    }
    const identity = await this.#o.auth.identify(peer.raw);
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
    const node = await findNode(this.#o.services, req.node);
    const decision = await this.decide(identity, node, req.login);
    const addr = socket.remoteAddress?.replace(/^::ffff:/, '');
    if (!decision.allowed) {
      await this.#emit({
        type: 'access.denied',
        success: false,
        user: identity.user,
        addr,
        protocol: 'ssh',
        resource: { kind: 'node', name: node.spec.hostname },
        login: req.login,
        error: decision.reason,
        ...auditDevice(identity),
      });
      throw new WardenError(decision.code, decision.reason);
    }
    const tunnel: Tunnel = { identity, login: req.login, node, client: socket };
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
    socket.write(`${JSON.stringify({ ok: true, node: nodeInfo(node) })}\n`);
    if (rest.length) upstream.write(rest);
    socket.pipe(upstream);
    upstream.pipe(socket);
    socket.resume();
    const done = () => {
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

  #enforceLocks(): void {
    const now = this.#o.clock.now();
    const locks = this.#o.locks.values();
    const stale =
      this.#lockingMode === 'strict' && !(this.#o.locks.staleForMs(now) <= DEFAULT_LOCK_MAX_STALENESS_MS);
    for (const t of this.#live) {
      const lock = findLockInForce(
        locks,
        {
          user: t.identity.user,
          roles: t.identity.roles,
          login: t.login,
          node: t.node.metadata.name,
          ...(t.identity.device ? { device: t.identity.device.deviceId } : {}),
        },
        now,
      );
      const lockedByHostname = lock ?? findLockInForce(locks, { node: t.node.spec.hostname }, now);
      if (!lockedByHostname && !stale) continue;
      const cut = () => {
        t.client.destroy();
        t.upstream?.destroy();
        this.#live.delete(t);
      };
      if (t.node.spec.sub_kind === 'openssh') cut();
      else setTimeout(cut, LOCK_GRACE_MS).unref();
    }
  }

  close(): void {
    this.#unsubscribe();
    clearInterval(this.#timer);
    for (const t of this.#live) {
      t.client.destroy();
      t.upstream?.destroy();
    }
    this.#live.clear();
  }
}

/** The trusted device of an identity, as audit events carry it (DESIGN §5). */
function auditDevice(identity: RequestIdentity): Pick<AuditEventInput, 'device'> {
  const d = identity.device;
  return d ? { device: { id: d.deviceId, asset_tag: d.assetTag, credential_id: d.credentialId } } : {};
}

function splitAddr(addr: string): [string, number] {
  const i = addr.lastIndexOf(':');
  return [addr.slice(0, i).replace(/^\[|\]$/g, ''), Number(addr.slice(i + 1))];
}
