/**
 * App sessions: one per app login (the session ID of an app certificate) or, later, per app
 * launched from a web session. A session holds who is calling (the one `Identity`), the app,
 * the signed JWT the app receives, and the client connections and upgraded (WebSocket)
 * streams currently using it. It is registered with the one `SessionMonitor`: a lock, the
 * certificate's expiry or a stale lock view in strict mode ends it at once — every client
 * connection and WebSocket of it is destroyed (streams cut), and the next request opens a
 * new session, which the access checker refuses with a 403.
 *
 *   open(identity, app) ── app.session.start ──▶ live ── requests… ──▶ idle (no connection
 *       for idleMs) / lock / expiry / shutdown ──▶ end ── app.session.end
 *
 * Internal to `srv/app`; the public surface is `index.ts`. Tested by `session.test.ts` and
 * end to end in `test/app/`.
 */
import type { Duplex } from 'node:stream';
import type { AppResource } from '@warden/api';
import { auditDevice, type Identity, type SessionEndReason, type SessionMonitor } from '../../access';
import { type AuditLog, writeAuditEvent } from '../../audit';
import type { Clock } from '../../clock';
import type { Logger } from '../../log';

/** Where an app session came from: an app certificate, or a web session (the Web UI). */
export type AppSessionOrigin = 'cert' | 'web';

/** Everything needed to open (or find) an app session. */
export interface AppPrincipal {
  identity: Identity;
  /** Stable per login: the app certificate's session ID, or the web session's app session ID. */
  sessionId: string;
  via: AppSessionOrigin;
}

export interface AppSessionsOptions {
  clock: Clock;
  logger: Logger;
  audit: AuditLog;
  monitor: Pick<SessionMonitor, 'register'>;
  /** Signs the JWT the app receives for this session (expiry = the session's identity's). */
  signJwt(identity: Identity, app: AppResource): Promise<string>;
  /** A session with no client connection for this long ends (default 5 min). */
  idleMs?: number;
}

export function auditApp(app: AppResource) {
  return {
    kind: 'app',
    name: app.metadata.name,
    ...(app.metadata.labels ? { labels: { ...app.metadata.labels } } : {}),
  };
}

export class AppSession {
  readonly id: string;
  readonly principal: AppPrincipal;
  readonly app: AppResource;
  readonly jwt: string;
  readonly startedAt: number;
  requests = 0;
  #ended = false;
  readonly #connections = new Set<Duplex>();
  readonly #streams = new Set<Duplex>();
  readonly #owner: AppSessions;
  #idle: NodeJS.Timeout | undefined;
  unregister: () => void = () => undefined;

  constructor(owner: AppSessions, principal: AppPrincipal, app: AppResource, jwt: string, now: number) {
    this.#owner = owner;
    this.id = principal.sessionId;
    this.principal = principal;
    this.app = app;
    this.jwt = jwt;
    this.startedAt = now;
  }

  get ended(): boolean {
    return this.#ended;
  }

  /** Client connections attached now. */
  get connections(): number {
    return this.#connections.size;
  }

  /**
   * Attaches a client connection (TLS socket or tunnel) to the session: cut when the session
   * is ended by the monitor; the session idles out after its last connection closes.
   */
  attach(connection: Duplex): void {
    if (this.#ended) {
      connection.destroy();
      return;
    }
    if (this.#connections.has(connection)) return;
    this.#connections.add(connection);
    if (this.#idle) clearTimeout(this.#idle);
    this.#idle = undefined;
    connection.once('close', () => {
      this.#connections.delete(connection);
      if (this.#connections.size === 0 && !this.#ended) this.#armIdle();
    });
  }

  /** Tracks an upgraded app-side stream (WebSocket) so that ending the session cuts it too. */
  track(stream: Duplex): void {
    if (this.#ended) {
      stream.destroy();
      return;
    }
    this.#streams.add(stream);
    stream.once('close', () => this.#streams.delete(stream));
  }

  #armIdle(): void {
    this.#idle = setTimeout(() => this.end(undefined), this.#owner.idleMs);
    this.#idle.unref();
  }

  /** Hands the session's connections and streams over (to the session replacing it), without cutting them. */
  release(): { connections: Duplex[]; streams: Duplex[] } {
    const out = { connections: [...this.#connections], streams: [...this.#streams] };
    this.#connections.clear();
    this.#streams.clear();
    return out;
  }

  /** Ends the session: cuts every connection and stream, audits, forgets it. Idempotent. */
  end(terminatedBy: string | undefined): void {
    if (this.#ended) return;
    this.#ended = true;
    if (this.#idle) clearTimeout(this.#idle);
    this.unregister();
    for (const s of this.#streams) s.destroy();
    for (const c of this.#connections) c.destroy();
    this.#streams.clear();
    this.#connections.clear();
    this.#owner.forget(this, terminatedBy);
  }
}

/** The live app sessions of one app_service. */
export class AppSessions {
  readonly #o: AppSessionsOptions;
  readonly #live = new Map<string, AppSession>();
  readonly #opening = new Map<string, Promise<AppSession>>();

  constructor(o: AppSessionsOptions) {
    this.#o = o;
  }

  get idleMs(): number {
    return this.#o.idleMs ?? 5 * 60_000;
  }

  /** Live sessions (for tests and metrics). */
  get size(): number {
    return this.#live.size;
  }

  /** The live session for this principal and app, if any (no allocation on the hot path). */
  find(principal: AppPrincipal, app: AppResource): AppSession | undefined {
    const s = this.#live.get(key(principal, app));
    return s && !s.ended ? s : undefined;
  }

  /**
   * Opens the session for a principal whose access the caller has just allowed (or returns
   * the live one): signs its JWT, audits `app.session.start`, registers with the monitor.
   *
   * This is the entry point for every kind of app session: the proxy calls it with the
   * identity of an app certificate (`via: 'cert'`); the Web UI will call it with the
   * identity of a device-aware web session (`via: 'web'`).
   */
  async open(
    principal: AppPrincipal,
    app: AppResource,
    publicAddr: string,
    /** The allowing decision's: `bot` when `required-for-humans` let a bot in without a device. */
    deviceExemption?: 'bot',
  ): Promise<AppSession> {
    const k = key(principal, app);
    const live = this.#live.get(k);
    if (live && !live.ended) return live;
    const pending = this.#opening.get(k);
    if (pending) return pending;
    const opening = (async () => {
      const jwt = await this.#o.signJwt(principal.identity, app);
      const session = new AppSession(this, principal, app, jwt, this.#o.clock.now());
      // Not started unaudited (issue 15 item 5): the audit log refusing the start refuses it.
      // The session is found (`find`) only once its start is recorded: a request meanwhile
      // waits for this open.
      await this.#audit({
        type: 'app.session.start',
        success: true,
        user: principal.identity.user,
        ...(principal.identity.kind === 'bot' ? { user_kind: 'bot' as const } : {}),
        ...(principal.identity.clientAddr ? { addr: principal.identity.clientAddr } : {}),
        ...auditDevice(principal.identity),
        session_id: principal.sessionId,
        resource: auditApp(app),
        roles: [...principal.identity.roles],
        public_addr: publicAddr,
        via: principal.via,
        ...(deviceExemption ? { device_exemption: deviceExemption } : {}),
      });
      this.#live.set(k, session);
      const reg = this.#o.monitor.register({
        identity: principal.identity,
        protocol: 'app',
        end: (message: string, why: SessionEndReason) =>
          session.end(why.kind === 'expired' ? 'certificate expired' : message),
      });
      session.unregister = () => reg.unregister();
      return session;
    })();
    this.#opening.set(k, opening);
    try {
      return await opening;
    } finally {
      this.#opening.delete(k);
    }
  }

  /**
   * Replaces a live session whose principal changed identity (a web session that became
   * device-trusted): the old one ends (audited, `terminated_by: why`), a new one opens with the
   * new identity — its own JWT and monitor registration — and takes over the old one's
   * connections and streams, so the browser's open connection carries on as the new identity.
   */
  async replace(
    old: AppSession,
    principal: AppPrincipal,
    app: AppResource,
    publicAddr: string,
    why: string,
    deviceExemption?: 'bot',
  ): Promise<AppSession> {
    const moved = old.release();
    old.end(why);
    const session = await this.open(principal, app, publicAddr, deviceExemption);
    for (const c of moved.connections) session.attach(c);
    for (const t of moved.streams) session.track(t);
    return session;
  }

  /** Audits a refused session start (once per connection, by the caller). */
  async refused(
    principal: AppPrincipal,
    app: AppResource,
    publicAddr: string,
    reason: string,
  ): Promise<void> {
    await this.#audit({
      type: 'app.session.start',
      success: false,
      user: principal.identity.user,
      ...(principal.identity.clientAddr ? { addr: principal.identity.clientAddr } : {}),
      ...auditDevice(principal.identity),
      error: reason,
      session_id: principal.sessionId,
      resource: auditApp(app),
      roles: [...principal.identity.roles],
      public_addr: publicAddr,
      via: principal.via,
    });
  }

  /** Called by a session as it ends. */
  forget(session: AppSession, terminatedBy: string | undefined): void {
    const k = key(session.principal, session.app);
    if (this.#live.get(k) === session) this.#live.delete(k);
    void this.#audit(
      {
        type: 'app.session.end',
        success: true,
        user: session.principal.identity.user,
        ...(session.principal.identity.clientAddr ? { addr: session.principal.identity.clientAddr } : {}),
        ...auditDevice(session.principal.identity),
        session_id: session.id,
        resource: auditApp(session.app),
        roles: [...session.principal.identity.roles],
        requests: session.requests,
        duration_ms: Math.max(0, this.#o.clock.now() - session.startedAt),
        ...(terminatedBy ? { terminated_by: terminatedBy } : {}),
        // Already ended: nothing more to refuse (the failure is logged and counted).
      },
      () => {},
    );
  }

  /** Ends every session whose identity, app or both match (e.g. an app deleted). */
  endWhere(match: (s: AppSession) => boolean, why: string): void {
    for (const s of [...this.#live.values()]) if (match(s)) s.end(why);
  }

  /** Ends every session (shutdown). */
  close(): void {
    this.endWhere(() => true, 'the app service is shutting down');
  }

  /** `writeAuditEvent`: a success event the log refuses throws, unless `onLost` is given. */
  async #audit(event: Parameters<AuditLog['emit']>[0], onLost?: () => void): Promise<void> {
    await writeAuditEvent(this.#o.audit, this.#o.logger, event, {}, onLost ? { onLost } : {});
  }
}

function key(principal: AppPrincipal, app: AppResource): string {
  return `${principal.via}\u0000${principal.identity.user}\u0000${principal.sessionId}\u0000${app.metadata.name}`;
}
