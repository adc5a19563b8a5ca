/**
 * ssh_service: Warden's SSH server on a host (DESIGN §1, issue 3).
 *
 *   client (ssh / wsh, direct or through the proxy)            node
 *     │ KEX: host key algorithm ecdsa-sha2-nistp256-cert-v01 ─▶ │ host certificate (host CA)
 *     │ userauth publickey <user cert>, signature ────────────▶ │ CA, validity, type, signature
 *     │                                                         │ decide once: locks, RBAC
 *     │                                                         │ (logins, node_labels), device
 *     │                                                         │ trust, principal = login,
 *     │ ◀── userauth success (even when denied) ─────────────── │ local login exists / allowed
 *     │ channel open session | direct-tcpip ─────────────────▶  │ allowed: run as the login
 *     │ ◀── open failure: administratively prohibited (reason)  │ denied: every channel refused
 *     │ ◀── "\r\nERROR: lock targeting … is in force\r\n", disconnect   (lock appears later)
 *
 * Authentication succeeds for a valid certificate even when access is denied, so that the
 * user reads the reason (OpenSSH shows it for a refused channel, never for a failed auth).
 * Every decision and every session is audited. Each allowed connection registers with the
 * process's SessionMonitor (identity, login, this node by ID and hostname; "end me with this
 * message" = write `ERROR: <message>` to every session, then disconnect): a lock arriving
 * through the watch ends it at once, as do its certificate's expiry and, in `locking_mode:
 * strict`, a lock view stale for too long. The node does not poll.
 * The node's `node` resource is heartbeated with a TTL.
 *
 * Who may import: `bin/` (composition) and tests, through `srv/ssh/index.ts`.
 * Tested against the real OpenSSH client in `test/ssh-node/`.
 */
import { randomUUID } from 'node:crypto';
import { type Server as NetServer, type Socket, connect as tcpConnect } from 'node:net';
import {
  type AuditEventInput,
  encodeSshPublicKey,
  isWardenError,
  parseSshCertificate,
  WardenError,
} from '@warden/api';
import ssh2, {
  type AuthContext,
  type Connection,
  type Server,
  type ServerChannel,
  type Session,
  type TcpipRequestInfo,
} from 'ssh2';
import {
  type AccessChecker,
  DEFAULT_LOCK_MAX_STALENESS_MS,
  type Identity,
  liveAccessChecker,
  liveSessionMonitor,
  makeIdentity,
  type NodeTarget,
  nodeLockTargets,
  type Registration,
  type SessionMonitor,
} from '../../access';
import { type AuditLog, auditUnavailable, writeAuditEvent } from '../../audit';
import type { Backend } from '../../backend';
import type { CertAuthorities } from '../../ca';
import type { Clock } from '../../clock';
import { DEFAULT_SSH_LIMITS, formatHostPort, type SshServiceConfig } from '../../config';
import type { Logger } from '../../log';
import type { Services } from '../../services';
import { AgentForwarder } from './agent-forward';
import { refuseChannels } from './channel-refusal';
import { NodeHeartbeat } from './heartbeat';
import { type HostCertMaterial, hostCertMaterial, hostKeyEntries, presentHostCertificate } from './host-cert';
import { loadHostIdentity } from './host-identity';
import {
  type DaemonUser,
  daemonUser,
  findSetpriv,
  findSftpServer,
  type LocalUser,
  lookupLogin,
  switchRefusal,
} from './login';
import { type SessionEnd, type SessionStart, SshSession } from './session';
import { afterGrace, corked, socketOf } from './session-end';
import {
  type CertHolder,
  isCertificateAlgorithm,
  verifyClientSignature,
  verifyUserCertificate,
} from './user-cert';

export interface SshServiceOptions {
  config: SshServiceConfig;
  /** Where the node keeps `host_uuid` and `ssh_host_key`. */
  dataDir: string;
  backend: Backend;
  services: Services;
  cas: CertAuthorities;
  audit: AuditLog;
  clock: Clock;
  logger: Logger;
  clusterName: string;
  /** Node resource TTL (default 60 s) and heartbeat interval (default 20 s). */
  heartbeatTtlMs?: number;
  heartbeatIntervalMs?: number;
  /**
   * The process's access checker and session monitor (`bin/start.ts` builds one of each).
   * Without them the node builds its own over its own live views (a node started alone, tests).
   */
  access?: { checker: AccessChecker; monitor: SessionMonitor };
  /** For the node's own checker (without `access`). */
  lockMaxStalenessMs?: number;
  /** Override where OpenSSH's sftp-server is looked for (tests); `null` disables sftp. */
  sftpServerPath?: string | null;
}

/** Connection attempts with more failed authentications than this are dropped (as sshd's MaxAuthTries). */
const MAX_AUTH_FAILURES = 6;
const FORWARD_CONNECT_TIMEOUT_MS = 10_000;
/** After a lock ended a connection's sessions, how long before the connection itself is cut. */
const TERMINATE_GRACE_MS = 300;

/** One client connection and what we decided about it. */
interface NodeConnection {
  id: string;
  conn: Connection;
  remoteIp: string;
  remotePort: number;
  localIp: string;
  localPort: number;
  authFailures: number;
  /** Set once a certificate and its signature verified. */
  holder?: CertHolder;
  login?: string;
  identity?: Identity;
  localUser?: LocalUser;
  /** Why every channel is refused; undefined when access was allowed. */
  denied?: string;
  /** Roles of the certificate that no longer exist (for the audit event). */
  missingRoles?: string[] | undefined;
  /** `bot`: let in without a device under `required-for-humans`. */
  deviceExemption?: 'bot' | undefined;
  sessions: Set<SshSession>;
  forwards: Set<Socket>;
  /** The connection's entry in the session monitor, once access was allowed. */
  registration?: Registration;
  ending: boolean;
  /** Why the connection is ending (a lock, an expired certificate), for refused channels. */
  endReason?: string;
  closed: boolean;
  /** The agent socket, once a session asked for agent forwarding (permit-agent-forwarding). */
  agent?: AgentForwarder;
  /** Whether the audit log took the `access.allowed` event (set when access was allowed). */
  accessAudited?: Promise<boolean>;
}

/**
 * The node's SSH server, registered as a `node` resource.
 *
 * @example
 *   const ssh = await SshService.start({ config: config.sshService, dataDir: config.dataDir, backend,
 *     services, cas, audit, clock, logger, clusterName: config.authService.clusterName });
 *   ssh.addr;   // '127.0.0.1:3022'
 *   ssh.hostId; // '0b7a6a1e-…' (the node resource's name)
 *   await ssh.close();
 */
export class SshService {
  /** `host:port` the server listens on (the real port when configured with port 0). */
  readonly addr: string;
  readonly port: number;
  /** The node's stable ID: the `node` resource's name. */
  readonly hostId: string;
  readonly hostname: string;

  readonly #o: SshServiceOptions;
  readonly #server: Server;
  readonly #material: HostCertMaterial;
  readonly #heartbeat: NodeHeartbeat;
  readonly #checker: AccessChecker;
  readonly #monitor: SessionMonitor;
  /** What the node built itself (without `access`) and closes with it. */
  readonly #owned: (() => void) | undefined;
  readonly #live = new Set<NodeConnection>();
  /** Unauthenticated connections, by source address and in all. */
  readonly #startups = new Map<string, number>();
  #startupCount = 0;
  /** Ends a raw connection's startup (login grace) once it authenticated. */
  readonly #authenticated = new WeakMap<Socket, () => void>();
  readonly #daemon: DaemonUser;
  readonly #setpriv: string | undefined;
  readonly #sftpServer: string | undefined;
  readonly #labels: Record<string, string>;
  #certRenewAt = 0;
  #closed = false;

  private constructor(
    o: SshServiceOptions,
    init: {
      server: Server;
      material: HostCertMaterial;
      hostId: string;
      port: number;
      access: { checker: AccessChecker; monitor: SessionMonitor };
      owned: (() => void) | undefined;
    },
  ) {
    this.#o = o;
    this.#server = init.server;
    this.#material = init.material;
    this.hostId = init.hostId;
    this.hostname = o.config.hostname;
    this.port = init.port;
    this.addr = formatHostPort({ host: o.config.listenAddr.host, port: init.port });
    this.#checker = init.access.checker;
    this.#monitor = init.access.monitor;
    this.#owned = init.owned;
    this.#labels = { ...o.config.labels };
    this.#daemon = daemonUser();
    this.#setpriv = findSetpriv();
    this.#sftpServer = o.sftpServerPath === undefined ? findSftpServer() : (o.sftpServerPath ?? undefined);
    const publicAddr =
      o.config.publicAddr.port === 0
        ? { host: o.config.publicAddr.host, port: init.port }
        : o.config.publicAddr;
    this.#heartbeat = new NodeHeartbeat({
      nodes: o.services.nodes,
      clock: o.clock,
      logger: o.logger,
      ...(o.heartbeatTtlMs !== undefined && { ttlMs: o.heartbeatTtlMs }),
      ...(o.heartbeatIntervalMs !== undefined && { intervalMs: o.heartbeatIntervalMs }),
      resource: () => ({
        kind: 'node',
        version: 'v2',
        metadata: {
          name: this.hostId,
          ...(Object.keys(this.#labels).length > 0 && { labels: { ...this.#labels } }),
        },
        spec: { hostname: this.hostname, addr: formatHostPort(publicAddr) },
      }),
      onBeat: () => this.#renewHostCertIfDue(),
    });
  }

  /**
   * Loads (or creates) the node's ID and host key, gets a host certificate, starts the lock
   * and cluster-settings views, listens, and publishes the node resource.
   * Throws WARDEN_ERR_BAD_CONFIG when the address is in use or the host files are unusable.
   */
  static async start(o: SshServiceOptions): Promise<SshService> {
    const { hostId, keyPem, privateKey } = loadHostIdentity(o.dataDir);
    const certLine = o.cas.issueHostSshCert({
      publicKey: privateKey,
      hostId,
      hostnames: hostNames(o.config),
    });
    const material = hostCertMaterial(
      keyPem,
      parseSshCertificate(certLine).blob,
      encodeSshPublicKey(privateKey),
    );
    const own = o.access ? undefined : await ownAccess(o);
    let service: SshService | undefined;
    const server = new ssh2.Server({ hostKeys: hostKeyEntries(material), ident: 'Warden' }, (conn, info) => {
      if (service) service.#accept(conn, info);
      else conn.end(); // not started yet
    });
    // Startup limits apply from the first byte, before ssh2 sees a connection.
    (server as unknown as { _srv: NetServer })._srv.prependListener('connection', (sock: Socket) => {
      if (service) service.#admitSocket(sock);
    });
    let port: number;
    try {
      port = await listen(server, o.config.listenAddr);
    } catch (e) {
      own?.close();
      throw e;
    }
    service = new SshService(o, {
      server,
      material,
      hostId,
      port,
      access: o.access ?? own!.access,
      owned: own?.close,
    });
    service.#certRenewAt = o.clock.now() + CERT_RENEW_AFTER_MS;
    try {
      await service.#heartbeat.start();
    } catch (e) {
      await service.close();
      throw e;
    }
    o.logger.info({ addr: service.addr, hostId, hostname: service.hostname }, 'ssh_service started');
    return service;
  }

  /**
   * Serves an SSH connection that arrived another way than this server's port: the proxy of
   * the same process hands over the client's TLS socket (already paused, SSH bytes next), so
   * the bytes skip a loopback TCP hop. Startup limits, authentication and everything after are
   * those of a connection to the port; the client address is the TLS peer's.
   */
  acceptStream(stream: Socket): void {
    if (this.#closed) {
      stream.destroy();
      return;
    }
    this.#server.injectSocket(stream);
  }

  /** The TCP server under the SSH one (`warden start` cuts its connections at the shutdown deadline). */
  get listener(): NetServer {
    return (this.#server as unknown as { _srv: NetServer })._srv;
  }

  /** Stops listening, ends every connection and stops heartbeating (the node expires one TTL later). */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#heartbeat.close();
    for (const c of this.#live) this.#hangUp(c);
    this.#owned?.();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  // ---- connections ---------------------------------------------------------------------

  #accept(conn: Connection, info: { ip: string; port: number }): void {
    const sock = socketOf(conn);
    if (sock) conn.once('ready', () => this.#authenticated.get(sock)?.());
    const c: NodeConnection = {
      id: randomUUID(),
      conn,
      remoteIp: info.ip,
      remotePort: info.port,
      localIp: sock?.localAddress ?? this.#o.config.listenAddr.host,
      localPort: sock?.localPort ?? this.port,
      authFailures: 0,
      sessions: new Set(),
      forwards: new Set(),
      ending: false,
      closed: false,
    };
    try {
      presentHostCertificate(conn, this.#material);
      refuseChannels(conn, (open) => this.#channelRefusal(c, open.type));
    } catch (e) {
      this.#o.logger.error({ err: e }, 'ssh_service cannot serve connections with this ssh2 version');
      conn.end();
      return;
    }
    this.#live.add(c);
    conn.on('authentication', (ctx) => {
      this.#authenticate(c, ctx).catch((e) => {
        this.#o.logger.error({ err: e }, 'ssh authentication failed unexpectedly');
        ctx.reject(['publickey']);
      });
    });
    conn.on('ready', () => this.#auditDecision(c));
    conn.on('session', (accept, reject) => {
      if (c.denied !== undefined || !c.localUser || c.ending) return reject();
      this.#session(c, accept());
    });
    conn.on('tcpip', (accept, reject, dest) => this.#forward(c, accept, reject, dest));
    // Remote forwarding and other global requests are not offered.
    conn.on('request', (_accept, reject) => reject?.());
    conn.on('error', (e) => this.#o.logger.debug({ err: e, addr: c.remoteIp }, 'ssh connection error'));
    conn.on('close', () => {
      c.closed = true;
      c.registration?.unregister();
      this.#live.delete(c);
      for (const s of c.sessions) s.hangup();
      for (const f of c.forwards) f.destroy();
      c.agent?.close();
    });
  }

  /**
   * sshd's MaxStartups and LoginGraceTime (issue 15 item 3), on the raw TCP connection (ssh2
   * reports a connection only once the client sent its version line): at most `maxStartups`
   * unauthenticated connections at once, `maxStartupsPerSource` from one address; one that
   * has not authenticated within `loginGraceTimeMs` is dropped.
   */
  #admitSocket(sock: Socket): void {
    const limits = this.#o.config.limits ?? DEFAULT_SSH_LIMITS;
    const ip = sock.remoteAddress ?? 'unknown';
    const fromSource = this.#startups.get(ip) ?? 0;
    if (this.#startupCount >= limits.maxStartups || fromSource >= limits.maxStartupsPerSource) {
      this.#o.logger.warn(
        { addr: ip, fromSource, total: this.#startupCount },
        'ssh connection dropped: too many unauthenticated connections (ssh_service.max_startups)',
      );
      sock.destroy();
      return;
    }
    this.#startups.set(ip, fromSource + 1);
    this.#startupCount++;
    let pending = true;
    const settle = () => {
      if (!pending) return;
      pending = false;
      clearTimeout(grace);
      this.#startupCount--;
      const n = (this.#startups.get(ip) ?? 1) - 1;
      if (n > 0) this.#startups.set(ip, n);
      else this.#startups.delete(ip);
    };
    const grace = setTimeout(() => {
      this.#o.logger.info({ addr: ip }, 'ssh connection dropped: not authenticated within login_grace_time');
      settle();
      sock.destroy();
    }, limits.loginGraceTimeMs);
    grace.unref();
    sock.once('close', settle);
    this.#authenticated.set(sock, settle);
  }

  /** The reason a channel of this type is refused now, or undefined to let it open. */
  #channelRefusal(c: NodeConnection, type: string): string | undefined {
    if (!c.holder) return undefined; // not authenticated: ssh2 refuses it itself
    if (c.denied !== undefined) return c.denied;
    if (c.ending) return c.endReason ?? 'the session is ending';
    const lock = c.identity && c.login ? this.#lockReason(c.identity, c.login) : undefined;
    if (lock) return lock;
    if (type === 'direct-tcpip' && !('permit-port-forwarding' in c.holder.extensions))
      return 'port forwarding is not permitted by your certificate';
    return undefined;
  }

  async #authenticate(c: NodeConnection, ctx: AuthContext): Promise<void> {
    if (ctx.method !== 'publickey' || c.holder) {
      ctx.reject(['publickey']);
      return;
    }
    const now = this.#o.clock.now();
    // Certificates that fail are audited whether they came as a query or signed: a client
    // whose query is refused never sends the signed request.
    const fail = (reason: string, user?: string) => {
      if (++c.authFailures >= MAX_AUTH_FAILURES) c.conn.end();
      void this.#auditDenied(c, { login: ctx.username, reason, ...(user && { user }) });
      ctx.reject(['publickey']);
    };
    // Clients offer plain keys before their certificates: refuse those quietly.
    if (!isCertificateAlgorithm(ctx.key.algo)) {
      ctx.reject(['publickey']);
      return;
    }
    let verified: ReturnType<typeof verifyUserCertificate>;
    try {
      verified = verifyUserCertificate(this.#o.cas, ctx.key.algo, ctx.key.data, now);
    } catch (e) {
      fail(isWardenError(e) ? e.message : 'SSH certificate rejected');
      return;
    }
    // A query without a signature: "would you accept this key?"
    if (!ctx.signature || !ctx.blob) {
      ctx.accept();
      return;
    }
    if (!verifyClientSignature(verified.cert, ctx.blob, ctx.signature)) {
      fail('the signature does not match the certificate', verified.holder.user);
      return;
    }
    c.holder = verified.holder;
    c.login = ctx.username;
    c.denied = await this.#decide(c, verified.holder, ctx.username);
    if (c.denied === undefined && c.identity && !c.closed) this.#watch(c, c.identity, ctx.username);
    ctx.accept();
  }

  /** Decides this connection's access once; returns the denial reason. */
  async #decide(c: NodeConnection, holder: CertHolder, login: string): Promise<string | undefined> {
    const identity = makeIdentity({
      user: holder.user,
      roles: holder.roles,
      traits: holder.traits,
      ...(holder.kind === 'bot' ? { kind: 'bot' as const } : {}),
      logins: holder.principals,
      expires: new Date(holder.expiresAt),
      clientAddr: c.remoteIp,
      ...(holder.device && { device: holder.device }),
    });
    c.identity = identity;
    const decision = this.#checker.checkAccess(identity, this.#target(), { login });
    c.missingRoles = decision.missingRoles;
    if (decision.allowed) c.deviceExemption = decision.deviceExemption;
    if (!decision.allowed) return decision.reason;
    if (!holder.principals.includes(login)) {
      return `access denied: the certificate of user ${JSON.stringify(holder.user)} does not allow login ${JSON.stringify(login)}`;
    }
    const refusal = switchRefusal(this.#daemon, login, this.hostname);
    if (refusal) return refusal;
    const user = await lookupLogin(login);
    if (!user)
      return `access denied: login ${JSON.stringify(login)} does not exist on node ${JSON.stringify(this.hostname)}`;
    c.localUser = user;
    return undefined;
  }

  #target(): NodeTarget {
    return { kind: 'node', id: this.hostId, hostname: this.hostname, labels: this.#labels };
  }

  /** A lock (or strict-mode staleness) in force for this identity and login, as its message. */
  #lockReason(identity: Identity, login: string): string | undefined {
    return this.#checker.lockReason(identity, {
      login,
      ...nodeLockTargets({ id: this.hostId, hostname: this.hostname }),
    })?.reason;
  }

  /**
   * Registers an allowed connection with the session monitor: a lock on its identity, login
   * or this node, its certificate's expiry or a stale view in strict mode ends it, each
   * session showing the message.
   */
  #watch(c: NodeConnection, identity: Identity, login: string): void {
    c.registration = this.#monitor.register({
      identity,
      targets: { login, ...nodeLockTargets({ id: this.hostId, hostname: this.hostname }) },
      protocol: 'ssh',
      end: (message) => this.#terminate(c, message),
    });
  }

  /** Ends a connection because of `reason`: each session is told, then the connection closes. */
  #terminate(c: NodeConnection, reason: string): void {
    if (c.ending) return;
    c.ending = true;
    c.endReason = reason;
    // The session monitor logs each session it ends; this is the connection's detail.
    this.#o.logger.debug({ user: c.identity?.user, login: c.login, reason }, 'ending ssh connection');
    // Each session's message, EOF and close leave in one write.
    corked(c.conn, () => {
      for (const s of c.sessions) s.terminate(reason);
    });
    for (const f of c.forwards) f.destroy();
    // The sessions' channels are closed after their message: clients print it and leave on
    // their own. Whoever is still connected after a grace period is disconnected.
    afterGrace(TERMINATE_GRACE_MS, () => this.#hangUp(c));
  }

  #hangUp(c: NodeConnection): void {
    c.ending = true;
    c.registration?.unregister();
    for (const s of c.sessions) s.hangup();
    try {
      c.conn.end();
    } catch {
      // Already closed.
    }
    // A client that never answers the disconnect is cut off.
    const sock = socketOf(c.conn);
    setTimeout(() => sock?.destroy(), 2000).unref();
  }

  // ---- sessions and forwarding ---------------------------------------------------------

  #session(c: NodeConnection, session: Session): void {
    const user = c.localUser;
    const holder = c.holder;
    if (!user || !holder) return;
    const s: SshSession = new SshSession(session, {
      user,
      daemon: this.#daemon,
      setpriv: this.#setpriv,
      sftpServer: this.#sftpServer,
      permitPty: 'permit-pty' in holder.extensions,
      agentSocket:
        'permit-agent-forwarding' in holder.extensions
          ? () => {
              c.agent ??= new AgentForwarder(c.conn, user, this.#daemon, this.#o.logger);
              return c.agent.socketPath();
            }
          : undefined,
      sshClient: `${c.remoteIp} ${c.remotePort} ${c.localPort}`,
      sshConnection: `${c.remoteIp} ${c.remotePort} ${c.localIp} ${c.localPort}`,
      logger: this.#o.logger,
      now: () => this.#o.clock.now(),
      onStart: (start) => this.#startAudited(c, start),
      onEnd: (end) => {
        c.sessions.delete(s);
        this.#auditSessionEnd(c, end);
      },
    });
    c.sessions.add(s);
  }

  #forward(c: NodeConnection, accept: () => ServerChannel, reject: () => void, dest: TcpipRequestInfo): void {
    if (c.denied !== undefined || !c.holder || c.ending) {
      reject();
      return;
    }
    const forwardAddr = formatHostPort({ host: dest.destIP, port: dest.destPort });
    const socket = tcpConnect({ host: dest.destIP, port: dest.destPort });
    let answered = false;
    const refuse = () => {
      socket.destroy();
      if (answered) return;
      answered = true;
      reject();
    };
    socket.setTimeout(FORWARD_CONNECT_TIMEOUT_MS, () => socket.destroy());
    socket.once('error', refuse);
    socket.once('connect', () => {
      socket.setTimeout(0);
      if (c.ending) return refuse();
      void this.#forwardAudited(c, socket, forwardAddr).then((id) => {
        if (id === undefined || c.ending || socket.destroyed || answered) return refuse();
        answered = true;
        this.#pipeForward(c, socket, accept(), forwardAddr, id);
      });
    });
  }

  /**
   * Records a forward's start: its session ID once the audit log has the connection's access
   * decision and this start (issue 15 item 5), else undefined (nothing is relayed).
   */
  async #forwardAudited(c: NodeConnection, socket: Socket, forwardAddr: string): Promise<string | undefined> {
    const id = randomUUID();
    const audited = await Promise.all([
      c.accessAudited ?? false,
      this.#emit(c, {
        type: 'session.start',
        ...this.#sessionFields(c, id),
        session_type: 'direct-tcpip',
        forward_addr: forwardAddr,
      }),
    ]);
    return audited.every(Boolean) && !socket.destroyed ? id : undefined;
  }

  #pipeForward(
    c: NodeConnection,
    socket: Socket,
    channel: ServerChannel,
    forwardAddr: string,
    id: string,
  ): void {
    const started = this.#o.clock.now();
    c.forwards.add(socket);
    socket.on('error', () => channel.destroy());
    channel.on('error', () => socket.destroy());
    socket.pipe(channel).pipe(socket);
    socket.once('close', () => {
      c.forwards.delete(socket);
      channel.destroy();
      void this.#emit(c, {
        type: 'session.end',
        ...this.#sessionFields(c, id),
        session_type: 'direct-tcpip',
        forward_addr: forwardAddr,
        duration_ms: Math.max(0, this.#o.clock.now() - started),
        ...(c.ending && c.denied === undefined && { terminated_by: 'connection ended' }),
      });
    });
  }

  // ---- host certificate ----------------------------------------------------------------

  /** Re-issues the host certificate when it is past half its life (new connections get it). */
  #renewHostCertIfDue(): void {
    const now = this.#o.clock.now();
    if (now < this.#certRenewAt) return;
    try {
      const line = this.#o.cas.issueHostSshCert({
        publicKey: parseSshCertificate(
          `${this.#material.certAlgorithm} ${this.#material.certBlob.toString('base64')}`,
        ).publicKey,
        hostId: this.hostId,
        hostnames: hostNames(this.#o.config),
      });
      this.#material.certBlob = parseSshCertificate(line).blob;
      this.#certRenewAt = now + CERT_RENEW_AFTER_MS;
    } catch (e) {
      this.#o.logger.error(
        { err: e },
        'renewing the SSH host certificate failed; retrying at the next heartbeat',
      );
    }
  }

  // ---- audit ---------------------------------------------------------------------------

  #resource() {
    return {
      kind: 'node',
      name: this.hostId,
      hostname: this.hostname,
      ...(Object.keys(this.#labels).length > 0 && { labels: { ...this.#labels } }),
    };
  }

  #who(c: NodeConnection) {
    const d = c.holder?.device;
    return {
      addr: c.remoteIp,
      ...(c.holder && { user: c.holder.user, roles: [...c.holder.roles] }),
      ...(c.holder?.kind === 'bot' && { user_kind: 'bot' as const }),
      ...(d?.deviceId && {
        device: {
          id: d.deviceId,
          ...(d.assetTag && { asset_tag: d.assetTag }),
          ...(d.credentialId && { credential_id: d.credentialId }),
        },
      }),
    };
  }

  #sessionFields(c: NodeConnection, id: string) {
    return {
      ...this.#who(c),
      protocol: 'ssh' as const,
      session_id: id,
      resource: this.#resource(),
      node: this.hostname,
      ...(c.login !== undefined && { login: c.login }),
    };
  }

  /**
   * An event the audit log does not take ends the connection (fail closed, issue 15 item 5).
   * Resolves false when a success event was lost.
   */
  async #emit(c: NodeConnection, event: AuditEventInput): Promise<boolean> {
    let lost = false;
    await writeAuditEvent(
      this.#o.audit,
      this.#o.logger,
      event,
      { conn: c.id },
      {
        onLost: (message) => {
          lost = true;
          if (!c.ending) this.#terminate(c, message);
        },
      },
    );
    return !lost;
  }

  #auditDenied(c: NodeConnection, d: { login: string; reason: string; user?: string }): Promise<boolean> {
    return this.#emit(c, {
      type: 'access.denied',
      success: false,
      ...this.#who(c),
      ...(d.user && { user: d.user }),
      protocol: 'ssh',
      resource: this.#resource(),
      login: d.login,
      ...(c.missingRoles && { missing_roles: c.missingRoles }),
      error: d.reason,
    });
  }

  #auditDecision(c: NodeConnection): void {
    if (!c.holder || c.login === undefined) return;
    if (c.denied !== undefined) {
      void this.#auditDenied(c, { login: c.login, reason: c.denied });
      return;
    }
    c.accessAudited = this.#emit(c, {
      type: 'access.allowed',
      ...this.#who(c),
      protocol: 'ssh',
      resource: this.#resource(),
      login: c.login,
      ...(c.missingRoles && { missing_roles: c.missingRoles }),
      ...(c.deviceExemption && { device_exemption: c.deviceExemption }),
    });
  }

  /**
   * Records a session's start; resolves with why it must not start when the audit log lacks
   * the connection's access decision or this start (the connection is being ended then).
   */
  async #startAudited(c: NodeConnection, s: SessionStart): Promise<string | undefined> {
    const audited = await Promise.all([
      c.accessAudited ?? false,
      this.#emit(c, {
        type: 'session.start',
        ...this.#sessionFields(c, s.id),
        session_type: s.kind,
        ...(s.command !== undefined && { command: s.command }),
      }),
      s.kind === 'exec' && s.command !== undefined
        ? this.#emit(c, { type: 'session.exec', ...this.#sessionFields(c, s.id), command: s.command })
        : true,
    ]);
    if (audited.every(Boolean)) return undefined;
    return c.endReason ?? auditUnavailable('session.start').message;
  }

  #auditSessionEnd(c: NodeConnection, s: SessionEnd): void {
    void this.#emit(c, {
      type: 'session.end',
      ...this.#sessionFields(c, s.id),
      session_type: s.kind,
      ...(s.command !== undefined && { command: s.command }),
      ...(s.exitCode !== undefined && { exit_code: s.exitCode }),
      ...(s.exitSignal !== undefined && { exit_signal: s.exitSignal }),
      duration_ms: s.durationMs,
      ...(s.terminatedBy !== undefined && { terminated_by: s.terminatedBy }),
    });
  }
}

/**
 * A node started without the process's checker and monitor: its own live views (locks, roles,
 * cluster settings; no backend read per decision, every access denied while no
 * cluster_auth_preference is stored) with a checker and a monitor over them.
 */
async function ownAccess(o: SshServiceOptions) {
  const views = o.services.accessViews({ logger: o.logger });
  await views.start();
  const checker = liveAccessChecker(views, {
    clock: o.clock,
    lockMaxStalenessMs: o.lockMaxStalenessMs ?? DEFAULT_LOCK_MAX_STALENESS_MS,
  });
  const monitor = liveSessionMonitor(views, { checker, clock: o.clock, logger: o.logger });
  return {
    access: { checker, monitor },
    close: () => {
      monitor.close();
      views.close();
    },
  };
}

/** Host certificates are re-issued after this long (they live a year). */
const CERT_RENEW_AFTER_MS = 30 * 24 * 60 * 60 * 1000;

/** The names the host certificate vouches for (besides the host ID). */
function hostNames(config: SshServiceConfig): string[] {
  const wildcard = (h: string) => h === '0.0.0.0' || h === '::';
  const names = [config.hostname, 'localhost', config.listenAddr.host, config.publicAddr.host];
  return [...new Set(names.filter((n) => n && !wildcard(n)))];
}

function listen(server: Server, addr: { host: string; port: number }): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (e: NodeJS.ErrnoException) =>
      reject(
        new WardenError(
          'WARDEN_ERR_BAD_CONFIG',
          e.code === 'EADDRINUSE'
            ? `ssh_service.listen_addr ${formatHostPort(addr)} is already in use (is another warden or sshd running there?)`
            : `ssh_service cannot listen on ${formatHostPort(addr)}: ${e.message}`,
        ),
      );
    server.once('error', onError);
    server.listen(addr.port, addr.host, () => {
      server.removeListener('error', onError);
      const bound = server.address();
      resolve(typeof bound === 'object' && bound ? bound.port : addr.port);
    });
  });
}
