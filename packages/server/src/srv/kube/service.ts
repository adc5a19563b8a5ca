/**
 * kube_service: Kubernetes API requests through the proxy port, forwarded to the cluster's API
 * server with kube_service's own credential and the user's Kubernetes identity as impersonation.
 *
 *   kubectl ──TLS (SNI kube.<proxy host>, client cert from `wsh kube credentials`)──▶ proxy :3080 /kube/<cluster>/…
 *     │                                                          │ identify the certificate
 *     │                                                          │ AccessChecker: locks, kubernetes_labels,
 *     │                                                          │   kubernetes_resources, device trust
 *     │ ◀── 403 Status (Forbidden: unauthorized device | lock…)  │ (refusals, audited kube.request)
 *     │                                                          ▼
 *     │                          API server ◀── same request, Authorization: kube_service's own,
 *     │                                         Impersonate-User / Impersonate-Group from the roles
 *     │ ◀═════════ response (streamed: watch, logs -f) ═════════│
 *     │ ◀═════════ exec / attach / port-forward: WebSocket relayed byte for byte ═══════════
 *
 * Client `Impersonate-*` headers (`kubectl --as`, `--as-group`) are honoured only as a subset of
 * what the roles allow; `Impersonate-Uid` and `Impersonate-Extra-*` are refused. Watches, followed
 * logs, exec/attach and port-forward register with the one SessionMonitor: a lock ends them at
 * once — a watch gets an ERROR event with the lock message, exec a channel-3 Failure Status with
 * it (kubectl prints it), port-forward a close frame. SPDY-only upgrades (kubectl before 1.30, or
 * with the WebSocket feature gates off) are refused with a Status saying so.
 * Audit fails closed (issue 15 item 5): nothing of a client connection reaches the API server
 * before its `access.allowed` is recorded, nor an exec/attach/port-forward before its start
 * event; a refused write answers 503 with WARDEN_ERR_AUDIT_UNAVAILABLE's message, for exec and
 * attach inside the WebSocket as a channel-3 Status (`#refuseInStream`: kubectl would read a
 * refused upgrade as "try SPDY" and print Warden's SPDY refusal instead). For the same reason
 * an upgrade that did not open (the API server's own refusal, e.g. RBAC; a port-forward's audit
 * refusal) is answered again to kubectl's SPDY retry (`#rememberNotOpened`). A `kube.request`
 * (written once the response is done) the log refuses ends the client's connection.
 * Who may import: `bin/` (composition). Tested end to end in `test/kube/` with real kubectl and
 * testkit's fake API server.
 */
import { createHash, randomUUID } from 'node:crypto';
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { isIP, type NetConnectOpts } from 'node:net';
import type { Duplex } from 'node:stream';
import { type ConnectionOptions, type TLSSocket, connect as tlsConnect } from 'node:tls';
import {
  type AuditEventInput,
  isWardenError,
  type KubeClusterResource,
  validateResourceOfKind,
} from '@warden/api';
import {
  type AccessChecker,
  auditDevice,
  type Identity,
  type KubePrincipals,
  kubePrincipals,
  makeIdentity,
  type SessionMonitor,
} from '../../access';
import { type AuditLog, writeAuditEvent } from '../../audit';
import type { Clock } from '../../clock';
import type { KubeClusterConfig } from '../../config';
import type { Logger } from '../../log';
import { type KubeRequestInfo, kubeRequestInfo } from './request-info';
import { SlabQueue } from './slab-queue';
import type { KubeCaller } from './types';
import { type KubeUpstream, loadKubeUpstream } from './upstream';
import { closeFrame, FrameBoundaries, serverFrame } from './ws-frames';

/** The proxy path prefix: `https://<proxy>/kube/<cluster>` is a cluster's server URL. */
export const KUBE_PATH_PREFIX = '/kube/';

export const KUBE_HEARTBEAT_TTL_MS = 90_000;

/** The exec/attach WebSocket protocols whose channel 3 carries a Status (binary frames). */
const CHANNEL_PROTOCOLS = ['v5.channel.k8s.io', 'v4.channel.k8s.io'] as const;
/** RFC 6455 §1.3: appended to Sec-WebSocket-Key for Sec-WebSocket-Accept. */
const WEBSOCKET_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

/**
 * Bytes queued towards kubectl before an exec/port-forward stream stops reading the API server,
 * and the mark it reads again at: apart, so that a reader faster than kubectl pauses and resumes
 * (two epoll_ctl calls) once per few hundred KiB, not once per write.
 */
const STREAM_QUEUE_MAX = 512 * 1024;
const STREAM_QUEUE_RESUME = 128 * 1024;

/** How long the answer to a WebSocket upgrade that did not open waits for kubectl's SPDY retry. */
const SPDY_RETRY_WINDOW_MS = 10_000;
/** The most such answers kept (the oldest go first). */
const SPDY_RETRY_MAX = 1024;
/** The most of an API server's refusal body kept for the retry (client-go reads 64 KiB of it). */
const REFUSAL_BODY_MAX = 64 * 1024;

/** An answer to an upgrade request that is not a 101: status line and a JSON body. */
interface UpgradeAnswer {
  code: number;
  reason: string;
  body: string;
}

/** The largest response body sent in one write with its head (see `#relayBody`). */
const ONE_WRITE_MAX = 1024 * 1024;
export const KUBE_HEARTBEAT_INTERVAL_MS = 30_000;

export interface KubeServiceOptions {
  clusters: readonly KubeClusterConfig[];
  kubeClusters: {
    upsert(r: KubeClusterResource): Promise<KubeClusterResource>;
    find(name: string): Promise<KubeClusterResource | undefined>;
    list(): Promise<KubeClusterResource[]>;
  };
  checker: AccessChecker;
  monitor: SessionMonitor;
  audit: AuditLog;
  clock: Clock;
  logger: Logger;
  identify(certDer: Buffer): Promise<KubeCaller>;
  /** Kube certificates (`KubeCerts.identify`): undefined for other certificates. */
  identifyKube?(certDer: Buffer): Promise<KubeCaller | undefined>;
  heartbeatIntervalMs?: number;
}

interface KubeStatus {
  kind: 'Status';
  apiVersion: 'v1';
  metadata: Record<string, never>;
  status: 'Failure';
  message: string;
  reason: string;
  code: number;
}

export function kubeStatus(code: number, reason: string, message: string): KubeStatus {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code };
}

class Refusal extends Error {
  constructor(readonly status: KubeStatus) {
    super(status.message);
  }
}

const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'host',
  'authorization',
]);

interface Admitted {
  identity: Identity;
  cluster: KubeClusterResource;
  upstream: KubeUpstream;
  info: KubeRequestInfo;
  principals: KubePrincipals;
  roles: string[];
  /** `bot`: let in without a device under `required-for-humans`. */
  deviceExemption?: 'bot' | undefined;
  /** The path at the API server (without the `/kube/<cluster>` prefix) and query. */
  path: string;
  pathname: string;
}

/** A kube_cluster resource for a configured cluster (credentials stay in the config). */
export function kubeClusterResource(c: {
  name: string;
  labels?: Readonly<Record<string, string>>;
  server?: string;
}) {
  return validateResourceOfKind('kube_cluster', {
    kind: 'kube_cluster',
    version: 'v3',
    metadata: {
      name: c.name,
      ...(c.labels && Object.keys(c.labels).length ? { labels: { ...c.labels } } : {}),
    },
    spec: c.server ? { server: c.server } : {},
  });
}

/**
 * The exit code in an exec/attach channel-3 Status: 0 for `Success`, the `ExitCode` cause of a
 * `NonZeroExitCode` failure; undefined for other failures (the process's fate is unknown).
 */
export function execExitCode(payload: Buffer): number | undefined {
  let st: {
    status?: unknown;
    reason?: unknown;
    details?: { causes?: { reason?: unknown; message?: unknown }[] };
  };
  try {
    st = JSON.parse(payload.toString('utf8'));
  } catch {
    return undefined;
  }
  if (st?.status === 'Success') return 0;
  if (st?.reason !== 'NonZeroExitCode') return undefined;
  const cause = st.details?.causes?.find?.((c) => c?.reason === 'ExitCode');
  const n = Number(cause?.message);
  return Number.isInteger(n) ? n : undefined;
}

function notKubePath(): Refusal {
  return new Refusal(
    kubeStatus(
      404,
      'NotFound',
      'not a Kubernetes path: cluster URLs are https://<proxy>/kube/<cluster> (other paths need a certificate from `wsh kube credentials --cluster`)',
    ),
  );
}

/** Discovery and other non-resource paths (`/api`, `/apis/<g>/<v>`, `/version`, `/openapi/…`). */
function isDiscovery(url: string | undefined): boolean {
  const u = new URL(url ?? '/', 'https://kube.invalid');
  return kubeRequestInfo('GET', splitKubePath(u.pathname).pathname, u.searchParams).resource === undefined;
}

/**
 * `/kube/<cluster>/<path>` → the cluster and the API server path; any other path is an API
 * server path for the cluster the kube certificate was issued for (`kubectl get --raw /version`
 * drops the server URL's path).
 */
function splitKubePath(p: string): { cluster?: string; pathname: string } {
  if (!p.startsWith(KUBE_PATH_PREFIX)) return { pathname: p };
  const rest = p.slice(KUBE_PATH_PREFIX.length);
  const slash = rest.indexOf('/');
  return {
    cluster: slash === -1 ? rest : rest.slice(0, slash),
    pathname: slash === -1 ? '/' : rest.slice(slash),
  };
}

export class KubeService {
  readonly #o: KubeServiceOptions;
  readonly #configured = new Map<string, { resource: KubeClusterResource; upstream: KubeUpstream }>();
  readonly #dynamic = new Map<
    string,
    { resource: KubeClusterResource; upstream?: KubeUpstream; at: number }
  >();
  readonly #identities = new WeakMap<object, KubeCaller>();
  /** Per client connection: the clusters whose `access.allowed` is recorded (or being recorded). */
  readonly #recorded = new WeakMap<object, Map<string, Promise<void>>>();
  readonly #open = new Set<() => void>();
  /** Answers to admitted WebSocket upgrades that did not open, for the SPDY retry (`#relay`). */
  readonly #notOpened = new Map<string, { answer: UpgradeAnswer; at: number }>();
  #timer: NodeJS.Timeout | undefined;

  private constructor(o: KubeServiceOptions) {
    this.#o = o;
  }

  /** Loads the configured clusters' credentials (BAD_CONFIG when unusable) and starts the heartbeat. */
  static async start(o: KubeServiceOptions): Promise<KubeService> {
    const s = new KubeService(o);
    for (const c of o.clusters) {
      const upstream = loadKubeUpstream(c);
      s.#configured.set(c.name, {
        upstream,
        resource: kubeClusterResource({ name: c.name, labels: c.labels, server: upstream.url.origin }),
      });
    }
    if (s.#configured.size > 0) {
      await s.#beat();
      s.#timer = setInterval(() => {
        s.#beat().catch((e) => o.logger.warn({ err: e }, 'kube_cluster heartbeat failed; retrying'));
      }, o.heartbeatIntervalMs ?? KUBE_HEARTBEAT_INTERVAL_MS);
      s.#timer.unref();
    }
    o.logger.info({ clusters: [...s.#configured.keys()] }, 'kube_service started');
    return s;
  }

  async #beat(): Promise<void> {
    const expires = new Date(this.#o.clock.now() + KUBE_HEARTBEAT_TTL_MS).toISOString();
    for (const { resource } of this.#configured.values()) {
      await this.#o.kubeClusters.upsert({ ...resource, metadata: { ...resource.metadata, expires } });
    }
  }

  /** True for a Kubernetes path (`/kube/<cluster>/…`). */
  matches(url: string | undefined): boolean {
    return url?.startsWith(KUBE_PATH_PREFIX) === true;
  }

  /**
   * Answers a Kubernetes path that reached the proxy's own name instead of the kube server name
   * (a kubeconfig from before Kubernetes moved to its own TLS server name). Forbidden, because
   * that is the status whose message kubectl prints, also during discovery.
   */
  misdirected(req: IncomingMessage, res: ServerResponse, kubeServerName: string): void {
    this.#refuse(
      res,
      new Refusal(
        kubeStatus(
          403,
          'Forbidden',
          `Kubernetes is served under the TLS server name ${kubeServerName}; run \`wsh kube login CLUSTER\` again for a kubeconfig that uses it`,
        ),
      ),
      isDiscovery(req.url),
    );
  }

  /** The clusters `identity` may reach (device trust aside: `wsh kube ls` shows those too). */
  async listFor(identity: KubeCaller): Promise<KubeClusterResource[]> {
    const id = this.#identity(identity, undefined);
    const out: KubeClusterResource[] = [];
    for (const c of await this.#o.kubeClusters.list()) {
      const d = this.#o.checker.checkAccess<'kube_cluster'>(
        id,
        { kind: 'kube_cluster', name: c.metadata.name, labels: c.metadata.labels ?? {} },
        { verb: 'get' },
      );
      if (d.allowed || d.step === 'device_trust') out.push(c);
    }
    return out;
  }

  close(): void {
    if (this.#timer) clearInterval(this.#timer);
    for (const end of [...this.#open]) end();
    for (const { upstream } of this.#configured.values()) upstream.agent.destroy();
  }

  // ---- admission ------------------------------------------------------------------------

  #identity(r: KubeCaller, clientAddr: string | undefined): Identity {
    return makeIdentity({
      user: r.user,
      ...(r.kind === 'bot' ? { kind: 'bot' as const } : {}),
      roles: r.roles,
      traits: r.traits,
      logins: r.logins,
      admin: r.admin,
      ...(r.device ? { device: r.device } : {}),
      ...(r.cert ? { cert: r.cert } : {}),
      ...(clientAddr ? { clientAddr } : {}),
    });
  }

  async #cluster(
    name: string,
  ): Promise<{ resource: KubeClusterResource; upstream: KubeUpstream } | undefined> {
    const configured = this.#configured.get(name);
    if (configured) return configured;
    const now = this.#o.clock.now();
    const cached = this.#dynamic.get(name);
    if (cached && now - cached.at < 2_000)
      return cached.upstream ? { resource: cached.resource, upstream: cached.upstream } : undefined;
    const resource = await this.#o.kubeClusters.find(name);
    if (!resource) {
      this.#dynamic.delete(name);
      return undefined;
    }
    const s = resource.spec;
    let upstream: KubeUpstream | undefined;
    if (s.kubeconfig_path || (s.server && (s.token_file || s.cert_file))) {
      upstream = loadKubeUpstream({
        name,
        ...(s.kubeconfig_path ? { kubeconfigPath: s.kubeconfig_path } : {}),
        ...(s.server ? { server: s.server } : {}),
        ...(s.ca_file ? { caFile: s.ca_file } : {}),
        ...(s.token_file ? { tokenFile: s.token_file } : {}),
        ...(s.cert_file ? { certFile: s.cert_file } : {}),
        ...(s.key_file ? { keyFile: s.key_file } : {}),
      });
    }
    cached?.upstream?.agent.destroy();
    this.#dynamic.set(name, { resource, ...(upstream ? { upstream } : {}), at: now });
    return upstream ? { resource, upstream } : undefined;
  }

  async #admit(req: IncomingMessage): Promise<Admitted> {
    const url = new URL(req.url ?? '/', 'https://kube.invalid');
    const { cluster: inPath, pathname } = splitKubePath(url.pathname);
    const socket = req.socket as TLSSocket;
    const clientAddr = socket.remoteAddress?.replace(/^::ffff:/, '');
    let rid = this.#identities.get(socket);
    if (!rid) {
      const peer = socket.authorized ? socket.getPeerCertificate() : undefined;
      if (!peer?.raw && String(socket.authorizationError) === 'CERT_HAS_EXPIRED') {
        throw new Refusal(
          kubeStatus(
            401,
            'Unauthorized',
            'your Kubernetes certificate has expired; run `wsh login` (it renews the files of `wsh kube login --cert-files`) or `wsh kube login CLUSTER`',
          ),
        );
      }
      if (!peer?.raw) {
        throw new Refusal(
          kubeStatus(
            401,
            'Unauthorized',
            'Kubernetes through Warden needs a Warden client certificate; run `wsh kube login CLUSTER`',
          ),
        );
      }
      try {
        rid = (await this.#o.identifyKube?.(peer.raw)) ?? (await this.#o.identify(peer.raw));
      } catch (e) {
        if (isWardenError(e, 'WARDEN_ERR_LOCKED')) throw new Refusal(kubeStatus(403, 'Forbidden', e.message));
        if (isWardenError(e)) throw new Refusal(kubeStatus(401, 'Unauthorized', e.message));
        throw e;
      }
      this.#identities.set(socket, rid);
    }
    if (rid.admin)
      throw new Refusal(kubeStatus(403, 'Forbidden', 'the admin identity cannot use Kubernetes clusters'));
    if (inPath === undefined && rid.kubeCluster === undefined) throw notKubePath();
    const clusterName = inPath ?? rid.kubeCluster!;
    if (rid.kubeCluster !== undefined && rid.kubeCluster !== clusterName) {
      throw new Refusal(
        kubeStatus(
          403,
          'Forbidden',
          `this Kubernetes certificate was issued for kube_cluster ${JSON.stringify(rid.kubeCluster)}, not ${JSON.stringify(clusterName)}`,
        ),
      );
    }
    const identity = this.#identity(rid, clientAddr);
    const found = await this.#cluster(clusterName);
    if (!found) {
      throw new Refusal(
        kubeStatus(
          404,
          'NotFound',
          `kube_cluster "${clusterName}" not found, or no kube_service serves it; \`wsh kube ls\` lists yours`,
        ),
      );
    }
    const info = kubeRequestInfo(req.method ?? 'GET', pathname, url.searchParams);
    const asUserH = req.headers['impersonate-user'];
    const asUser = Array.isArray(asUserH) ? asUserH[0] : asUserH;
    const asGroupsH = req.headers['impersonate-group'];
    const asGroups =
      asGroupsH === undefined
        ? []
        : (Array.isArray(asGroupsH) ? asGroupsH : [asGroupsH]).flatMap((g) =>
            g
              .split(',')
              .map((x) => x.trim())
              .filter(Boolean),
          );
    for (const h of Object.keys(req.headers)) {
      if (h.startsWith('impersonate-') && h !== 'impersonate-user' && h !== 'impersonate-group') {
        throw new Refusal(
          kubeStatus(403, 'Forbidden', `impersonation denied: Warden does not forward ${h} headers`),
        );
      }
    }
    const target = {
      kind: 'kube_cluster' as const,
      name: clusterName,
      labels: found.resource.metadata.labels ?? {},
    };
    const request = {
      ...info,
      ...(asUser !== undefined ? { asUser } : {}),
      ...(asGroups.length ? { asGroups } : {}),
    };
    const decision = this.#o.checker.checkAccess<'kube_cluster'>(identity, target, request);
    if (!decision.allowed) {
      const err = new Refusal(kubeStatus(403, 'Forbidden', decision.reason));
      void this.#audit({
        type: 'kube.request',
        success: false,
        ...this.#subject(identity, found.resource),
        verb: info.verb,
        ...this.#what(info),
        path: pathname,
        status: 403,
        error: decision.reason,
      });
      (err as Refusal & { audited?: boolean }).audited = true;
      throw err;
    }
    const resolved = this.#o.checker.resolve(identity);
    const matched = resolved.roles.filter((r) => decision.matchedRoles.includes(r.metadata.name));
    const p = kubePrincipals(resolved, matched, request);
    if (!p.ok) throw new Refusal(kubeStatus(403, 'Forbidden', p.reason));
    return {
      identity,
      cluster: found.resource,
      upstream: found.upstream,
      info,
      principals: p.principals,
      roles: decision.matchedRoles,
      ...(decision.deviceExemption ? { deviceExemption: decision.deviceExemption } : {}),
      path: `${pathname}${url.search}`,
      pathname,
    };
  }

  #subject(identity: Identity, cluster: KubeClusterResource) {
    return {
      user: identity.user,
      ...(identity.kind === 'bot' ? { user_kind: 'bot' as const } : {}),
      ...(identity.clientAddr ? { addr: identity.clientAddr } : {}),
      ...auditDevice(identity),
      resource: {
        kind: 'kube_cluster',
        name: cluster.metadata.name,
        ...(cluster.metadata.labels ? { labels: { ...cluster.metadata.labels } } : {}),
      },
    };
  }

  #what(info: KubeRequestInfo) {
    return {
      ...(info.resource
        ? { kube_resource: info.subresource ? `${info.resource}/${info.subresource}` : info.resource }
        : {}),
      ...(info.namespace ? { namespace: info.namespace } : {}),
      ...(info.name ? { name: info.name } : {}),
    };
  }

  /**
   * Fail closed (issue 15 item 5): a success event the audit log refuses calls `onLost` (the
   * data path: end what is under way) or, without it, rejects with WARDEN_ERR_AUDIT_UNAVAILABLE
   * (answered 503). A refusal's event that is lost is logged; the refusal stands.
   */
  #audit(event: AuditEventInput, onLost?: (message: string) => void): Promise<void> {
    return writeAuditEvent(this.#o.audit, this.#o.logger, event, {}, onLost ? { onLost } : {});
  }

  /**
   * The access decision of a client connection for a cluster, recorded once per connection
   * (`access.allowed`) before anything of it reaches the API server. A write the audit log
   * refuses rejects (503) and is tried again at the connection's next request.
   */
  #accessRecorded(req: IncomingMessage, a: Admitted): Promise<void> {
    const socket = req.socket;
    let clusters = this.#recorded.get(socket);
    if (!clusters) {
      clusters = new Map();
      this.#recorded.set(socket, clusters);
    }
    const name = a.cluster.metadata.name;
    let recorded = clusters.get(name);
    if (!recorded) {
      recorded = this.#audit({
        type: 'access.allowed',
        ...this.#subject(a.identity, a.cluster),
        protocol: 'kube',
        roles: a.roles,
        ...(a.deviceExemption ? { device_exemption: a.deviceExemption } : {}),
      });
      clusters.set(name, recorded);
      recorded.catch(() => clusters.delete(name));
    }
    return recorded;
  }

  #upstreamHeaders(a: Admitted, incoming: IncomingMessage['headers']): OutgoingHttpHeaders {
    const h: OutgoingHttpHeaders = {};
    for (const [k, v] of Object.entries(incoming)) {
      if (v === undefined || HOP_BY_HOP.has(k) || k.startsWith('impersonate-')) continue;
      h[k] = v;
    }
    h.host = a.upstream.url.host;
    if (a.upstream.authorization) h.authorization = a.upstream.authorization;
    h['impersonate-user'] = a.principals.user;
    if (a.principals.groups.length) h['impersonate-group'] = a.principals.groups;
    return h;
  }

  // ---- plain requests (and watches, logs -f) --------------------------------------------

  /** Serves one request under `/kube/<cluster>/`. */
  handleRequest(req: IncomingMessage, res: ServerResponse): void {
    const started = this.#o.clock.now();
    this.#admit(req)
      .then(async (a) => {
        await this.#accessRecorded(req, a);
        return a;
      })
      .then(
        (a) => this.#forward(req, res, a, started),
        (e) => this.#refuse(res, e, isDiscovery(req.url)),
      );
  }

  #refuse(res: ServerResponse, e: unknown, plainText = false): void {
    let status: KubeStatus;
    if (e instanceof Refusal) status = e.status;
    else if (isWardenError(e, 'WARDEN_ERR_AUDIT_UNAVAILABLE'))
      status = kubeStatus(503, 'ServiceUnavailable', e.message);
    else {
      this.#o.logger.error({ err: e }, 'kube request failed');
      status = kubeStatus(500, 'InternalError', 'internal error');
    }
    if (res.headersSent) {
      res.destroy();
      return;
    }
    // kubectl's discovery client cannot decode a Status (it prints "unknown"), but shows a
    // text/plain body as the message: `Error from server (Forbidden): unauthorized device`.
    const body = plainText ? `${status.message}\n` : JSON.stringify(status);
    res.writeHead(status.code, {
      'content-type': plainText ? 'text/plain; charset=utf-8' : 'application/json',
      'content-length': Buffer.byteLength(body),
    });
    res.end(body);
  }

  #forward(req: IncomingMessage, res: ServerResponse, a: Admitted, started: number): void {
    const u = a.upstream;
    const up = httpsRequest({
      protocol: 'https:',
      hostname: u.url.hostname,
      port: u.url.port || 443,
      method: req.method,
      path: a.path,
      headers: this.#upstreamHeaders(a, req.headers),
      agent: u.agent,
    });
    let status: number | undefined;
    let ended = false;
    let reg: { unregister(): void } | undefined;
    const finish = (terminatedBy?: string) => {
      if (ended) return;
      ended = true;
      reg?.unregister();
      // A request the audit log can't record ends its connection (the data path).
      void this.#audit(
        {
          type: 'kube.request',
          success: true,
          ...this.#subject(a.identity, a.cluster),
          verb: a.info.verb,
          ...this.#what(a.info),
          path: a.pathname,
          ...(status !== undefined ? { status } : {}),
          kube_users: [a.principals.user],
          kube_groups: a.principals.groups,
          roles: a.roles,
          duration_ms: this.#o.clock.now() - started,
          ...(terminatedBy ? { error: terminatedBy } : {}),
        },
        () => req.socket.destroy(),
      );
    };
    up.on('error', (e) => {
      if (ended) return;
      this.#o.logger.warn(
        { err: e, cluster: a.cluster.metadata.name },
        'Kubernetes API server request failed',
      );
      if (!res.headersSent) {
        status = 502;
        this.#refuse(
          res,
          new Refusal(
            kubeStatus(
              502,
              'ServiceUnavailable',
              `the API server of kube_cluster "${a.cluster.metadata.name}" is unreachable`,
            ),
          ),
        );
      } else res.destroy();
      finish();
    });
    up.on('response', (r) => {
      status = r.statusCode ?? 502;
      const headers: OutgoingHttpHeaders = {};
      for (const [k, v] of Object.entries(r.headers)) {
        if (v === undefined || (HOP_BY_HOP.has(k) && k !== 'authorization')) continue;
        headers[k] = v;
      }
      if (!a.info.streaming) {
        this.#relayBody(r, res, status, headers, () => finish());
        return;
      }
      res.writeHead(status, headers);
      // A watch or followed log: relayed chunk by chunk, ended by the session monitor on a lock.
      // The proxy's idle timeout must not cut a quiet watch: the monitor and the client end it.
      req.socket.setTimeout(0);
      res.flushHeaders();
      let atEventBoundary = true;
      r.on('data', (chunk: Buffer) => {
        atEventBoundary = chunk[chunk.length - 1] === 0x0a;
        if (!res.write(chunk)) {
          r.pause();
          res.once('drain', () => r.resume());
        }
      });
      r.on('end', () => {
        res.end();
        finish();
      });
      const isWatch = a.info.verb === 'watch';
      const end = (message: string) => {
        if (ended) return;
        if (isWatch && atEventBoundary) {
          res.write(`${JSON.stringify({ type: 'ERROR', object: kubeStatus(403, 'Forbidden', message) })}\n`);
        }
        res.end();
        up.destroy();
        r.destroy();
        finish(message);
      };
      this.#open.add(closeAll);
      function closeAll() {
        end('the service is shutting down');
      }
      reg = this.#o.monitor.register({ identity: a.identity, protocol: 'kube', end: (m) => end(m) });
      res.on('close', () => {
        this.#open.delete(closeAll);
        if (!ended) {
          up.destroy();
          finish();
        }
      });
    });
    // A request without a body (most GETs): its head goes out alone, no pipe.
    if (req.headers['content-length'] === undefined && req.headers['transfer-encoding'] === undefined) {
      req.resume();
      up.end();
    } else req.pipe(up);
  }

  /**
   * A response that is not a stream: up to `ONE_WRITE_MAX` bytes it is held and sent with its
   * head in one write (one run of TLS records, one syscall; piping sent the head and body, then
   * an empty end, as separate writes); past that it is relayed as it comes, with backpressure.
   * An upstream failure before the head went out is a 502 Status (`#forward`'s error handler).
   */
  #relayBody(
    r: IncomingMessage,
    res: ServerResponse,
    status: number,
    headers: OutgoingHttpHeaders,
    done: () => void,
  ): void {
    let held: Buffer[] | undefined = [];
    let size = 0;
    const send = (chunk: Buffer) => {
      if (!res.write(chunk)) {
        r.pause();
        res.once('drain', () => r.resume());
      }
    };
    r.on('data', (chunk: Buffer) => {
      if (!held) return send(chunk);
      held.push(chunk);
      size += chunk.length;
      if (size <= ONE_WRITE_MAX) return;
      res.writeHead(status, headers);
      const all = Buffer.concat(held);
      held = undefined;
      send(all);
    });
    r.on('end', () => {
      if (held) {
        res.writeHead(status, headers);
        res.end(held.length === 1 ? held[0] : Buffer.concat(held));
      } else res.end();
      done();
    });
    r.on('error', () => {
      if (res.headersSent) res.destroy();
      else
        this.#refuse(
          res,
          new Refusal(kubeStatus(502, 'ServiceUnavailable', 'the API server ended the response')),
        );
      done();
    });
  }

  // ---- upgrades: exec, attach, port-forward ---------------------------------------------

  /** Serves an upgrade (WebSocket) request under `/kube/<cluster>/`. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', () => undefined);
    // Exec and port-forward sessions may be quiet for long: no idle timeout (locks and expiry end them).
    (socket as Duplex & { setTimeout?(ms: number): void }).setTimeout?.(0);
    this.#admit(req)
      .then((a) => this.#relay(req, socket, head, a))
      .catch((e) => this.#refuseUpgrade(socket, e));
  }

  #upgradeStatus(e: unknown): KubeStatus {
    if (e instanceof Refusal) return e.status;
    if (isWardenError(e, 'WARDEN_ERR_AUDIT_UNAVAILABLE'))
      return kubeStatus(503, 'ServiceUnavailable', e.message);
    this.#o.logger.error({ err: e }, 'kube upgrade failed');
    return kubeStatus(500, 'InternalError', 'internal error');
  }

  #refuseUpgrade(socket: Duplex, e: unknown): UpgradeAnswer {
    const status = this.#upgradeStatus(e);
    const answer = { code: status.code, reason: status.reason, body: JSON.stringify(status) };
    this.#answerUpgrade(socket, answer);
    return answer;
  }

  #answerUpgrade(socket: Duplex, { code, reason, body }: UpgradeAnswer): void {
    socket.end(
      `HTTP/1.1 ${code} ${reason.replace(/[^\x20-\x7e]/g, '') || 'Error'}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
    );
    socket.resume(); // see #refuseInStream
    setTimeout(() => socket.destroy(), 5_000).unref();
  }

  /**
   * kubectl takes any answer but a 101 to its WebSocket upgrade as "try SPDY" and retries at
   * once, and Warden refuses SPDY: the user would read that refusal, not why the WebSocket did
   * not open (the API server's own Status, e.g. its RBAC Forbidden; Warden's audit refusal of a
   * port-forward). So the answer is kept for a few seconds per user, cluster and path, and the
   * SPDY retry gets it instead: kubectl prints it as it would from the API server directly.
   */
  #rememberNotOpened(a: Admitted, answer: UpgradeAnswer): void {
    const key = this.#retryKey(a);
    this.#notOpened.delete(key);
    if (this.#notOpened.size >= SPDY_RETRY_MAX) this.#notOpened.delete(this.#notOpened.keys().next().value!);
    this.#notOpened.set(key, { answer, at: this.#o.clock.now() });
  }

  #takeNotOpened(a: Admitted): UpgradeAnswer | undefined {
    const key = this.#retryKey(a);
    const kept = this.#notOpened.get(key);
    this.#notOpened.delete(key);
    return kept && this.#o.clock.now() - kept.at <= SPDY_RETRY_WINDOW_MS ? kept.answer : undefined;
  }

  #retryKey(a: Admitted): string {
    return `${a.identity.user}\n${a.cluster.metadata.name}\n${a.path}`;
  }

  /** The API server's answer to an upgrade, other than a 101, as the SPDY retry gets it. */
  #upstreamAnswer(code: number, body: Buffer): UpgradeAnswer {
    const text = body.toString('utf8');
    try {
      const st = JSON.parse(text) as { kind?: unknown; reason?: unknown };
      if (st?.kind === 'Status') return { code, reason: String(st.reason || 'Failure'), body: text };
    } catch {
      // not a Status: said in one of Warden's own below
    }
    const said = text.trim().slice(0, 1024);
    const status = kubeStatus(
      code,
      code === 403 ? 'Forbidden' : code === 404 ? 'NotFound' : code < 500 ? 'BadRequest' : 'InternalError',
      `the API server answered the upgrade with HTTP ${code}${said ? `: ${said}` : ''}`,
    );
    return { code, reason: status.reason, body: JSON.stringify(status) };
  }

  /**
   * Refuses an admitted exec/attach WebSocket inside the WebSocket: 101 with the channel
   * protocol kubectl offered, a channel-3 Failure Status, a normal close. kubectl (client-go's
   * WebSocket round tripper) reads any other answer to its upgrade, whatever its Status, as an
   * upgrade failure and retries over SPDY, which Warden refuses; the user would see that
   * refusal instead of this one. An admission refusal (Forbidden) does not need this: the SPDY
   * retry is admitted the same way and gets the same Status, which kubectl prints as
   * `Error from server (Forbidden): …`. What only the WebSocket attempt meets (its audit
   * records) is answered here, and kubectl prints `error: <message>`. Other requests (no
   * channel protocol offered: port-forward, other clients) get the HTTP refusal, which is also
   * the answer to their SPDY retry.
   */
  #refuseInStream(req: IncomingMessage, socket: Duplex, e: unknown, a: Admitted): void {
    const offered = String(req.headers['sec-websocket-protocol'] ?? '')
      .split(',')
      .map((p) => p.trim());
    const protocol = CHANNEL_PROTOCOLS.find((p) => offered.includes(p));
    const key = req.headers['sec-websocket-key'];
    if (!protocol || typeof key !== 'string' || !key) {
      // Port-forward: its SPDY retry gets the same answer (`#rememberNotOpened`).
      this.#rememberNotOpened(a, this.#refuseUpgrade(socket, e));
      return;
    }
    const { message, reason, code } = this.#upgradeStatus(e);
    const accept = createHash('sha1').update(`${key}${WEBSOCKET_GUID}`).digest('base64');
    const status = Buffer.from(JSON.stringify({ metadata: {}, status: 'Failure', message, reason, code }));
    socket.end(
      Buffer.concat([
        Buffer.from(
          'HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\n' +
            `sec-websocket-accept: ${accept}\r\nsec-websocket-protocol: ${protocol}\r\n\r\n`,
        ),
        serverFrame(2, Buffer.concat([Buffer.from([3]), status])),
        closeFrame(1000, ''),
      ]),
    );
    // kubectl answers the close frame and hangs up. Read (and drop) that to see the end: the
    // upgraded socket is no longer read by the HTTP server, and unread it never closes, which
    // held up the proxy's shutdown. A client that never hangs up is cut off.
    socket.resume();
    setTimeout(() => socket.destroy(), 5_000).unref();
  }

  async #relay(req: IncomingMessage, client: Duplex, head: Buffer, a: Admitted): Promise<void> {
    const info = a.info;
    if ((req.headers.upgrade ?? '').toLowerCase() !== 'websocket') {
      const earlier = this.#takeNotOpened(a);
      if (earlier) {
        this.#answerUpgrade(client, earlier);
        return;
      }
      this.#refuseUpgrade(
        client,
        new Refusal(
          kubeStatus(
            400,
            'BadRequest',
            'Warden relays exec, attach and port-forward over WebSockets only; SPDY upgrades are not supported (use kubectl 1.30 or later with its default WebSocket streaming)',
          ),
        ),
      );
      return;
    }
    const sessionId = randomUUID();
    const started = this.#o.clock.now();
    const isExec = info.verb === 'exec';
    const url = new URL(a.path, 'https://kube.invalid');
    const command = url.searchParams.getAll('command').join(' ');
    const ports = url.searchParams.getAll('ports');
    const base = {
      session_id: sessionId,
      ...this.#subject(a.identity, a.cluster),
      namespace: info.namespace ?? '',
      pod: info.name ?? '',
    };
    // Nothing reaches the API server before the audit log has the connection's access
    // decision and this session's start (issue 15 item 5): a refused write is refused with
    // WARDEN_ERR_AUDIT_UNAVAILABLE's message (inside the WebSocket for exec and attach).
    const recorded = Promise.all([
      this.#accessRecorded(req, a),
      this.#audit(
        isExec
          ? {
              type: 'kube.exec.start',
              ...base,
              ...(url.searchParams.get('container') ? { container: url.searchParams.get('container')! } : {}),
              ...(command ? { command } : {}),
              tty: url.searchParams.get('tty') === 'true',
              kube_users: [a.principals.user],
              kube_groups: a.principals.groups,
              roles: a.roles,
            }
          : {
              type: 'kube.portforward.start',
              ...base,
              ports,
              kube_users: [a.principals.user],
              kube_groups: a.principals.groups,
              roles: a.roles,
            },
      ),
    ]);
    try {
      await recorded;
    } catch (e) {
      this.#refuseInStream(req, client, e, a);
      return;
    }
    const endEvent = (terminatedBy: string | undefined): AuditEventInput =>
      isExec
        ? {
            type: 'kube.exec.end',
            ...base,
            ...(command ? { command } : {}),
            ...(exitCode !== undefined ? { exit_code: exitCode } : {}),
            duration_ms: this.#o.clock.now() - started,
            ...(terminatedBy ? { terminated_by: terminatedBy } : {}),
          }
        : {
            type: 'kube.portforward.end',
            ...base,
            ports,
            duration_ms: this.#o.clock.now() - started,
            ...(terminatedBy ? { terminated_by: terminatedBy } : {}),
          };
    // Already over: its loss is logged and counted, nothing is left to end.
    const recordEnd = (terminatedBy: string | undefined) =>
      void this.#audit(endEvent(terminatedBy), () => {});
    let exitCode: number | undefined;
    if (client.destroyed) {
      recordEnd('the client went away before the session opened');
      return;
    }
    const u = a.upstream;
    const host = u.url.hostname;
    // The API server's side reads into the queue's reused slabs (see slab-queue.ts); `onRead`
    // gets each read: the response head first, then the stream.
    let onRead: (n: number, buf: Buffer) => void = () => undefined;
    const out = new SlabQueue(
      (buf, done) => client.write(buf, () => done()),
      () => {
        if (waiting && out.queued <= STREAM_QUEUE_RESUME) {
          waiting = false;
          if (!stopped) upstream.resume();
        }
      },
    );
    const upstream = tlsConnect({
      host,
      port: Number(u.url.port || 443),
      secureContext: u.secureContext,
      rejectUnauthorized: u.tls.rejectUnauthorized,
      servername: u.tls.servername ?? (isIP(host) ? undefined : host),
      ...(u.session ? { session: u.session } : {}),
      ALPNProtocols: ['http/1.1'],
      onread: {
        buffer: out.next,
        callback: (n: number, buf: Uint8Array) => {
          onRead(n, buf as Buffer);
          return true;
        },
      },
    } as ConnectionOptions & Pick<NetConnectOpts, 'onread'>);
    // Interactive exec: keystrokes and echoes go out at once (no Nagle delay on either side).
    upstream.setNoDelay(true);
    (client as Duplex & { setNoDelay?(on: boolean): void }).setNoDelay?.(true);
    upstream.on('session', (session: Buffer) => {
      u.session = session;
    });
    let keepAtClose: () => void = () => undefined;
    upstream.on('error', () => undefined);
    const headers = this.#upstreamHeaders(a, req.headers);
    headers.connection = 'Upgrade';
    headers.upgrade = req.headers.upgrade;
    let lines = `${req.method ?? 'GET'} ${a.path} HTTP/1.1\r\n`;
    for (const [k, v] of Object.entries(headers)) {
      for (const one of Array.isArray(v) ? v : [v])
        lines += `${k}: ${String(one).replace(/[\r\n]/g, '')}\r\n`;
    }
    upstream.write(`${lines}\r\n`);
    if (head.length) upstream.write(head);

    let opened = false;
    let ended = false;
    let reg: { unregister(): void } | undefined;
    /** Why the API server did not open the session (its answer), for the end event. */
    let notOpened = 'the API server did not open the session';
    const frames = new FrameBoundaries(
      isExec ? (st) => (exitCode = execExitCode(st) ?? exitCode) : undefined,
    );
    /** The lock (or shutdown) message once the session is being ended. */
    let ending: string | undefined;
    /** Set once the ending frames are queued: nothing more of the API server's is relayed. */
    let stopped = false;
    /** Reading the API server is paused until kubectl takes what is queued. */
    let waiting = false;
    let protocol: string | undefined;

    const finish = (terminatedBy?: string) => {
      if (ended) return;
      ended = true;
      reg?.unregister();
      this.#open.delete(shutdown);
      client.destroy();
      upstream.destroy();
      recordEnd(opened ? terminatedBy : (terminatedBy ?? notOpened));
    };
    const injectAndClose = (message: string) => {
      stopped = true;
      upstream.pause();
      const tail: Buffer[] = [];
      if (protocol?.endsWith('.channel.k8s.io')) {
        const status = { metadata: {}, status: 'Failure', message, reason: 'Forbidden', code: 403 };
        tail.push(serverFrame(2, Buffer.concat([Buffer.from([3]), Buffer.from(JSON.stringify(status))])));
      }
      tail.push(closeFrame(1008, message));
      out.push(Buffer.concat(tail), () => finish(message));
      setTimeout(() => finish(message), 1_000).unref();
    };
    const end = (message: string) => {
      if (ended || ending !== undefined) return;
      ending = message;
      upstream.pause();
      if (!opened) return finish(message);
      if (frames.atBoundary) injectAndClose(message);
      else upstream.resume(); // `relay` injects at the next frame end
    };
    const shutdown = () => end('the service is shutting down');
    this.#open.add(shutdown);

    /**
     * Bytes of the API server's stream: `landed` when they are the queue's last read (committed
     * in place), else a buffer of their own (pushed). Frame ends are tracked so that an ending
     * session is cut between frames; reading pauses while more than STREAM_QUEUE_MAX bytes wait
     * for kubectl (one write in flight at a time: what arrives meanwhile leaves as the next one).
     */
    const relay = (chunk: Buffer, landed: boolean) => {
      if (stopped) return;
      const cut = frames.feed(chunk);
      const take = ending !== undefined && cut !== -1 ? cut : chunk.length;
      if (landed) out.commit(take);
      else out.push(chunk.subarray(0, take));
      if (ending !== undefined && cut !== -1) {
        injectAndClose(ending);
        return;
      }
      if (!waiting && out.queued > STREAM_QUEUE_MAX) {
        waiting = true;
        upstream.pause();
      }
    };

    let headBuf = Buffer.alloc(0);
    onRead = (n, buf) => {
      headBuf = Buffer.concat([headBuf, buf.subarray(0, n)]);
      const endOfHead = headBuf.indexOf('\r\n\r\n');
      if (endOfHead === -1) {
        if (headBuf.length > 64 * 1024) upstream.destroy();
        return;
      }
      const headText = headBuf.subarray(0, endOfHead).toString('latin1');
      const rest = headBuf.subarray(endOfHead + 4);
      const code = Number(headText.split(' ', 3)[1]);
      client.write(headBuf.subarray(0, endOfHead + 4));
      if (code !== 101) {
        notOpened = `the API server answered HTTP ${code || 'without a status'}`;
        // Its answer (a Status, as a rule) goes to kubectl as it comes, and is kept for
        // kubectl's SPDY retry (`#rememberNotOpened`) once its body is in (or the API server hung up).
        const length = Number(/\r\ncontent-length:\s*(\d+)/i.exec(headText)?.[1] ?? Number.NaN);
        const want = Number.isNaN(length) ? REFUSAL_BODY_MAX : Math.min(length, REFUSAL_BODY_MAX);
        let body: Buffer | undefined = Buffer.from(rest.subarray(0, want));
        const keep = (atClose: boolean) => {
          if (!body || (!atClose && body.length < want)) return;
          if (code >= 400) this.#rememberNotOpened(a, this.#upstreamAnswer(code, body));
          body = undefined;
        };
        keepAtClose = () => keep(true);
        keep(false);
        onRead = (m, b) => {
          if (body) {
            body = Buffer.concat([body, b.subarray(0, Math.min(m, want - body.length))]);
            keep(false);
          }
          out.commit(m);
        };
        out.push(rest);
        return;
      }
      opened = true;
      protocol = /\r\nsec-websocket-protocol:\s*([^\r\n]*)/i.exec(headText)?.[1]?.trim();
      reg = this.#o.monitor.register({ identity: a.identity, protocol: 'kube', end: (m) => end(m) });
      onRead = (m, b) => relay(b.subarray(0, m), true);
      if (rest.length) relay(rest, false);
      client.on('data', (c: Buffer) => {
        if (!upstream.write(c)) {
          client.pause();
          upstream.once('drain', () => client.resume());
        }
      });
      if (ending !== undefined) {
        const m = ending;
        ending = undefined;
        end(m);
      }
    };
    // The API server's end: what is queued still goes to kubectl (the exit status, the close).
    upstream.on('close', () => {
      keepAtClose();
      out.drained(() => finish());
    });
    client.on('close', () => finish());
  }
}
