/**
 * app_service: serves web apps to the connections the proxy hands it, and issues app
 * certificates. Per connection it knows who is calling (the app certificate's identity, or
 * why there is none); per request it finds the app (by host name, or the app the tunnel
 * named), asks the one `AccessChecker` (locks → RBAC on `app_labels` → device trust from the
 * matching roles only), finds or opens the app session, and forwards.
 *
 *   proxy ── acceptHost(tls socket) ──▶ HTTP/2 or HTTP/1.1 server ─┐
 *   proxy ── acceptTunnel(socket, app) ▶ HTTP/1.1 server ──────────┤
 *                                                                  ▼
 *          serve(req, res, principal, app) ── checker ── sessions.open ── forwarder ──▶ app
 *
 * Internal to `srv/app`; the public surface is `index.ts`. Tested end to end in `test/app/`.
 */
import { createPublicKey, randomUUID, X509Certificate } from 'node:crypto';
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import {
  createSecureServer,
  type Http2SecureServer,
  type Http2ServerRequest,
  type Http2ServerResponse,
} from 'node:http2';
import { isIP } from 'node:net';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import {
  type AppResource,
  type AuditEventInput,
  type CertIdentity,
  isWardenError,
  type rpc,
  WardenError,
} from '@warden/api';
import {
  type AccessChecker,
  type AccessDecision,
  type AppTarget,
  accessDeniedError,
  auditDevice,
  type Identity,
  makeIdentity,
  routeCertAuditEvent,
  routeCertIdentity,
} from '../../access';
import { type AuditLog, writeAuditEvent } from '../../audit';
import type { Clock } from '../../clock';
import type { Logger } from '../../log';
import { type ForwardContext, Forwarder } from './forward';
import { type Http1Hooks, type LeanRequest, type RawResponse, serveHttp1 } from './http1';
import { type AppRefusal, deviceTrustRefusal, rawRefusal, sendRefusal } from './refusal';
import { type AppPrincipal, type AppSession, AppSessions, auditApp } from './session';

/** The CA operations app_service needs. */
export interface AppCertAuthority {
  verifyUserTlsCert(cert: Uint8Array, now?: number): CertIdentity;
  issueAppCert(req: {
    identity: CertIdentity & { app: NonNullable<CertIdentity['app']> };
    publicKey: ReturnType<typeof createPublicKey>;
    notAfter: Date;
  }): Promise<{ certPem: string; notAfter: Date }>;
  signAppJwt(c: {
    user: string;
    roles: readonly string[];
    traits: Readonly<Record<string, readonly string[]>>;
    device?: { deviceId: string; assetTag: string; credentialId: string };
    audience: string;
    expires: Date;
  }): Promise<string>;
}

/** The live app view: `get(name)`, `values()`, `onChange` (a started `ResourceCache<AppResource>`). */
export interface AppView {
  get(name: string): AppResource | undefined;
  values(): readonly AppResource[];
  onChange(listener: () => void): () => void;
}

export interface AppServiceOptions {
  clock: Clock;
  logger: Logger;
  audit: AuditLog;
  cas: AppCertAuthority;
  checker: AccessChecker;
  /** The session monitor every live session registers with. */
  monitor: ConstructorParameters<typeof AppSessions>[0]['monitor'];
  apps: AppView;
  /** Role changes re-check live sessions (a role that no longer grants the app ends them). */
  onRolesChange?: (listener: () => void) => () => void;
  /**
   * Every change of a view an access decision reads besides the apps (locks, roles, the cluster
   * settings). With it, a connection whose request was allowed is not decided again for the
   * next request until one of them changes (or its session ends, or the lock view turns stale
   * in strict mode); without it, every request is decided in full.
   */
  onAccessChange?: (listener: () => void) => () => void;
  /** The proxy's public address (`proxy.example.com:3080`): apps live at `<name>.<host>`. */
  proxyPublicAddr: { host: string; port: number };
  idleMs?: number;
  /**
   * Serve plain HTTP/1.1 requests of app-certificate connections on the lean path (`http1.ts`,
   * default true); false: node:http for every request (benchmarks compare the two).
   */
  leanHttp1?: boolean;
  /** Apps launched from the Web UI: the one-time launch exchange and the app cookie (web/). */
  web?: WebAppHooks;
}

/**
 * The Web UI's part of app access (implemented by `web/`): a browser has no app certificate,
 * so the Web UI's Launch button mints a one-time token; `GET /.warden/launch?token=…` on the
 * app's host trades it for an app cookie, and every request with that cookie speaks for the
 * web session (its user, roles and — only once the session is device-trusted — its device).
 */
export interface WebAppHooks {
  /** The launch exchange: the Set-Cookie value, or why not. */
  exchange(token: string, app: AppResource): Promise<{ cookie: string } | AppRefusal>;
  /** Who an app cookie speaks for; undefined when the request has none. */
  principal(
    cookieHeader: string | undefined,
    app: AppResource,
    clientAddr: string,
  ): Promise<AppPrincipal | AppRefusal | undefined>;
  /** Where a web session proves its device (the Web UI's "This device" page). */
  deviceHelpUrl: string;
}

/** The path on an app's host where the Web UI's launch token is exchanged for the app cookie. */
export const WEB_LAUNCH_PATH = '/.warden/launch';

/** What one client connection carries (set by the proxy before the HTTP server sees it). */
interface AppConnection {
  /** The real socket (HTTP/2's `req.socket` is a proxy that refuses `destroy`). */
  socket: Duplex;
  principal?: AppPrincipal;
  /** The app certificate's app. */
  certApp?: string;
  /** Why the connection has no principal. */
  refusal?: AppRefusal;
  /** The app a `wsh proxy app` tunnel asked for. */
  tunnelApp?: string;
  proto: 'http' | 'https';
  /** Apps whose refusal was audited on this connection (one event per connection and app). */
  audited?: Set<string>;
  /** The last request allowed on this connection: its session, and the views' generation then. */
  allowed?: { session: AppSession; generation: number };
}

const CONNECTION = Symbol('warden.app.connection');
/** Idle keep-alive connections on the lean path close after this long (tunnels as node:http's tunnel server). */
const TUNNEL_IDLE_MS = 30_000;
const HOST_IDLE_MS = 5_000;
type TunnelPrincipal = Pick<AppConnection, 'principal' | 'certApp' | 'refusal'>;
/** Verified client certificates remembered (see `#verifyCert`). */
const MAX_VERIFIED_CERTS = 1024;
const VERIFIED_CERT_TTL_MS = 60_000;
/** The answer to a CONNECT request on an app host (see the constructor). */
export const CONNECT_REFUSAL: AppRefusal = {
  code: 'WARDEN_ERR_BAD_PARAMETER',
  status: 405,
  message: 'Warden does not relay CONNECT requests to apps (no tunnels, no WebSockets over HTTP/2).',
  hint: 'WebSockets to apps work over HTTP/1.1: open them on a connection of their own (browsers do this by themselves).',
};
/** The principal `checkTunnel` found, for `acceptTunnel` on the same socket. */
const TUNNEL_PRINCIPAL = Symbol('warden.app.tunnelPrincipal');

type Req = IncomingMessage | Http2ServerRequest;
type Res = ServerResponse | Http2ServerResponse;

function cookieHeader(req: Pick<Req, 'headers'>): string | undefined {
  const c = req.headers.cookie;
  return Array.isArray(c) ? c.join('; ') : c;
}

/** The host name a request was sent to (`:authority` or `Host`), '' when none. */
function hostOf(req: Pick<Req, 'headers'>): string {
  return String(req.headers[':authority'] ?? req.headers.host ?? '');
}

function connectionOf(req: Req): AppConnection | undefined {
  return (req.socket as unknown as Record<symbol, AppConnection | undefined>)[CONNECTION];
}

/** `host[:port]` → host, lower case, without a trailing dot or IPv6 brackets. */
export function hostOnly(hostHeader: string | undefined): string {
  if (!hostHeader) return '';
  let h = hostHeader.trim().toLowerCase();
  if (h.startsWith('[')) return h.slice(1, h.indexOf(']') === -1 ? undefined : h.indexOf(']'));
  const colon = h.lastIndexOf(':');
  if (colon !== -1 && h.indexOf(':') === colon) h = h.slice(0, colon);
  return h.endsWith('.') ? h.slice(0, -1) : h;
}

function appTarget(app: AppResource): AppTarget {
  return { kind: 'app', name: app.metadata.name, labels: { ...(app.metadata.labels ?? {}) } };
}

/** True when both identities carry the same trusted device (or neither does). */
function sameDevice(a: Identity, b: Identity): boolean {
  return a.device?.deviceId === b.device?.deviceId && a.device?.credentialId === b.device?.credentialId;
}

/** The refusal page for an access decision. */
function refusalFor(decision: Extract<AccessDecision, { allowed: false }>, app: string): AppRefusal {
  if (decision.step === 'device_trust') return deviceTrustRefusal(app);
  if (decision.step === 'lock')
    return {
      code: decision.code,
      status: 403,
      message: decision.reason,
      hint: 'An administrator locked this access. Ask them why, or wait until the lock expires.',
    };
  return {
    code: decision.code,
    status: 403,
    message: decision.reason,
    hint: `Your roles do not give you "${app}". \`wsh apps ls\` lists the apps you can reach.`,
  };
}

export class AppService {
  readonly #o: AppServiceOptions;
  readonly sessions: AppSessions;
  readonly #forwarder: Forwarder;
  /** Host connections (ALPN h2 or http/1.1). */
  readonly #hostServer: Http2SecureServer;
  /** `wsh proxy app` tunnels (HTTP/1.1 inside the tunnel). */
  readonly #tunnelServer: Server;
  readonly #byHost = new Map<string, string>();
  readonly #urls = new Map<string, URL>();
  readonly #verified = new Map<
    string,
    { parsed: CertIdentity; notBefore: number; notAfter: number; until: number }
  >();
  readonly #unsubscribe: (() => void)[] = [];
  readonly #lean: boolean;
  /**
   * Bumped by every change of the views access decisions read (apps, roles, locks, cluster
   * settings): a decision taken at the current generation still holds (`#authorizedNow`).
   */
  #generation = 0;
  /** False without `onAccessChange`: no change would be seen, so nothing is remembered. */
  readonly #rememberDecisions: boolean;
  /** The domain apps live under: the proxy's public host, or `localhost` when that is an IP. */
  readonly appDomain: string;

  constructor(o: AppServiceOptions) {
    this.#o = o;
    this.#lean = o.leanHttp1 ?? true;
    this.#rememberDecisions = o.onAccessChange !== undefined;
    const host = o.proxyPublicAddr.host.toLowerCase();
    this.appDomain = isIP(host) || host === '0.0.0.0' ? 'localhost' : host;
    this.#forwarder = new Forwarder({ logger: o.logger });
    this.sessions = new AppSessions({
      clock: o.clock,
      logger: o.logger,
      audit: o.audit,
      monitor: o.monitor,
      ...(o.idleMs !== undefined ? { idleMs: o.idleMs } : {}),
      signJwt: (identity, app) =>
        o.cas.signAppJwt({
          user: identity.user,
          roles: identity.roles,
          traits: identity.traits,
          ...(identity.device ? { device: identity.device } : {}),
          audience: app.spec.uri,
          expires: identity.expires ?? new Date(o.clock.now() + 60 * 60_000),
        }),
    });
    const onRequest = (req: Req, res: Res) => {
      this.#handle(req, res).catch((e) => {
        o.logger.error({ err: e }, 'app request failed');
        sendRefusal(req.headers.accept, res, {
          code: 'WARDEN_ERR_INTERNAL',
          status: 500,
          message: 'Warden could not handle this request.',
        });
      });
    };
    const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      this.#handleUpgrade(req, socket, head).catch((e) => {
        o.logger.error({ err: e }, 'app upgrade failed');
        socket.destroy();
      });
    };
    this.#hostServer = createSecureServer({ allowHTTP1: true });
    this.#hostServer.on('request', onRequest);
    this.#hostServer.on('upgrade', onUpgrade);
    this.#hostServer.on('sessionError', () => undefined);
    // CONNECT over HTTP/2 is not proxied: not as a tunnel, and not RFC 8441's extended CONNECT
    // (WebSockets over HTTP/2) — the server does not advertise SETTINGS_ENABLE_CONNECT_PROTOCOL,
    // so browsers open WebSockets to apps on a connection of their own over HTTP/1.1 (ALPN
    // http/1.1), where the Upgrade is relayed. A CONNECT that comes anyway gets this page.
    this.#hostServer.on('connect', (req: Http2ServerRequest, res: Http2ServerResponse) =>
      sendRefusal(req.headers.accept, res, CONNECT_REFUSAL),
    );
    this.#tunnelServer = createHttpServer();
    this.#tunnelServer.on('request', onRequest);
    this.#tunnelServer.on('upgrade', onUpgrade);
    this.#tunnelServer.keepAliveTimeout = 30_000;
    this.#reindex();
    this.#unsubscribe.push(
      o.apps.onChange(() => {
        this.#generation++;
        this.#reindex();
        this.#recheckSessions();
      }),
    );
    if (o.onRolesChange)
      this.#unsubscribe.push(
        o.onRolesChange(() => {
          this.#generation++;
          this.#recheckSessions();
        }),
      );
    if (o.onAccessChange)
      this.#unsubscribe.push(
        o.onAccessChange(() => {
          this.#generation++;
        }),
      );
  }

  /** The host name an app answers to at the proxy. */
  publicAddrOf(app: AppResource): string {
    return (app.spec.public_addr ?? `${app.metadata.name}.${this.appDomain}`).toLowerCase();
  }

  /** `https://<public addr>[:port]`: where clients with an app certificate send requests. */
  uriOf(app: AppResource): string {
    const port = this.#o.proxyPublicAddr.port;
    return `https://${this.publicAddrOf(app)}${port === 443 ? '' : `:${port}`}`;
  }

  #reindex(): void {
    this.#byHost.clear();
    for (const app of this.#o.apps.values()) this.#byHost.set(this.publicAddrOf(app), app.metadata.name);
  }

  /** The app a host name (SNI or `Host`) names, if any. */
  appForHost(host: string): AppResource | undefined {
    const name = this.#byHost.get(hostOnly(host));
    return name === undefined ? undefined : this.#o.apps.get(name);
  }

  /**
   * True when TLS connections for this server name are app traffic: a known app's host
   * name, or any one label under the app domain (unknown ones get a "no such app" page).
   */
  isAppHost(servername: string | undefined | null | false): boolean {
    if (!servername) return false;
    const host = hostOnly(servername);
    if (this.#byHost.has(host)) return true;
    const suffix = `.${this.appDomain}`;
    return (
      host.endsWith(suffix) && !host.slice(0, -suffix.length).includes('.') && host.length > suffix.length
    );
  }

  // ---- Connections from the proxy --------------------------------------------------------

  /**
   * A client certificate's verified identity and validity, remembered for a minute: every new
   * connection with the same app certificate (a browser's or `wsh proxy app`'s connections)
   * would otherwise parse and verify it again. The validity is checked on every use.
   */
  #verifyCert(raw: Buffer): { parsed: CertIdentity; notBefore: number; notAfter: number } {
    const now = this.#o.clock.now();
    const key = raw.toString('base64');
    const hit = this.#verified.get(key);
    if (hit && now >= hit.notBefore && now <= hit.notAfter && now < hit.until) return hit;
    if (hit) this.#verified.delete(key);
    const parsed = this.#o.cas.verifyUserTlsCert(raw, now);
    const x = new X509Certificate(raw);
    const entry = {
      parsed,
      notBefore: Date.parse(x.validFrom),
      notAfter: Date.parse(x.validTo),
      until: now + VERIFIED_CERT_TTL_MS,
    };
    this.#verified.set(key, entry);
    if (this.#verified.size > MAX_VERIFIED_CERTS)
      this.#verified.delete(this.#verified.keys().next().value as string);
    return entry;
  }

  /** Who a TLS connection's client certificate says is calling (an app certificate), or why nobody. */
  #principalOf(
    socket: TLSSocket,
    clientAddr: string,
  ): Pick<AppConnection, 'principal' | 'certApp' | 'refusal'> {
    const peer = socket.getPeerCertificate?.();
    if (!socket.authorized || !peer?.raw) {
      return {
        refusal: {
          code: 'WARDEN_ERR_NOT_LOGGED_IN',
          status: 401,
          message: 'This app needs a Warden app certificate.',
          hint: 'Run `wsh proxy app NAME` and open the local address it prints, or use the certificate from `wsh app login NAME` (curl --cert/--key).',
        },
      };
    }
    let parsed: CertIdentity;
    let notAfter: Date;
    try {
      const v = this.#verifyCert(peer.raw);
      parsed = v.parsed;
      notAfter = new Date(v.notAfter);
    } catch (e) {
      return {
        refusal: {
          code: 'WARDEN_ERR_BAD_CERTIFICATE',
          status: 401,
          message: isWardenError(e) ? e.message : 'the client certificate was refused',
          hint: 'Run `wsh app login NAME` for a fresh app certificate.',
        },
      };
    }
    if (!parsed.app) {
      return {
        refusal: {
          code: 'WARDEN_ERR_BAD_CERTIFICATE',
          status: 401,
          message: 'This is a Warden login certificate, not an app certificate.',
          hint: 'Run `wsh app login NAME` and use the app certificate it writes, or `wsh proxy app NAME`.',
        },
      };
    }
    const identity = makeIdentity({
      user: parsed.user,
      ...(parsed.kind === 'bot' ? { kind: 'bot' as const } : {}),
      roles: parsed.roles,
      traits: parsed.traits,
      ...(parsed.device ? { device: parsed.device } : {}),
      expires: notAfter,
      clientAddr,
    });
    return { principal: { identity, sessionId: parsed.app.sessionId, via: 'cert' }, certApp: parsed.app.app };
  }

  /** A TLS connection whose server name is an app host: HTTP/2 or HTTP/1.1 by its ALPN. */
  acceptHost(socket: TLSSocket): void {
    const clientAddr = socket.remoteAddress?.replace(/^::ffff:/, '') ?? 'unknown';
    const conn: AppConnection = { socket, proto: 'https', ...this.#principalOf(socket, clientAddr) };
    (socket as unknown as Record<symbol, AppConnection>)[CONNECTION] = conn;
    socket.setNoDelay(true);
    // The HTTP/1.1 fallback of the HTTP/2 server reads its request/response classes from
    // `socket.server`: point it at the server that now owns the connection.
    (socket as unknown as { server: unknown }).server = this.#hostServer;
    const toNodeHttp = (s: Duplex) => this.#hostServer.emit('secureConnection', s);
    // HTTP/1.1 with an app certificate: the lean path first (browsers' cookies go to node:http).
    if (this.#lean && socket.alpnProtocol !== 'h2' && conn.principal)
      serveHttp1(socket, this.#leanHooks(conn, toNodeHttp), { idleMs: HOST_IDLE_MS });
    else toNodeHttp(socket);
  }

  /**
   * A `wsh proxy app` tunnel for `app` (the proxy read and answered its request line):
   * HTTP/1.1 from here on. Throws NOT_FOUND / BAD_CERTIFICATE before anything is answered.
   */
  acceptTunnel(socket: TLSSocket, app: string): void {
    const clientAddr = socket.remoteAddress?.replace(/^::ffff:/, '') ?? 'unknown';
    const tagged = socket as unknown as Record<symbol, TunnelPrincipal>;
    const checked = tagged[TUNNEL_PRINCIPAL];
    delete tagged[TUNNEL_PRINCIPAL];
    const conn: AppConnection = {
      socket,
      proto: 'http',
      tunnelApp: app,
      ...(checked ?? this.#principalOf(socket, clientAddr)),
    };
    (socket as unknown as Record<symbol, AppConnection>)[CONNECTION] = conn;
    socket.setNoDelay(true);
    const toNodeHttp = (s: Duplex) => this.#tunnelServer.emit('connection', s);
    if (this.#lean && conn.principal)
      serveHttp1(socket, this.#leanHooks(conn, toNodeHttp), { idleMs: TUNNEL_IDLE_MS });
    else toNodeHttp(socket);
  }

  /**
   * The lean HTTP/1.1 path (`http1.ts`) of a connection with an app certificate: the same app
   * choice, authorization (every request), session, forwarding and audit as `#handle`.
   */
  #leanHooks(conn: AppConnection, handOver: (socket: Duplex) => void): Http1Hooks {
    return {
      // Warden's own paths on app hosts (the Web UI's launch exchange) stay with node:http.
      accepts: (req) => !req.url.startsWith('/.warden/'),
      handOver,
      handle: async (req, res) => {
        try {
          await this.#handleLean(req, res, conn);
        } catch (e) {
          this.#o.logger.error({ err: e }, 'app request failed');
          sendRefusal(req.headers.accept, res, {
            code: 'WARDEN_ERR_INTERNAL',
            status: 500,
            message: 'Warden could not handle this request.',
          });
        }
      },
    };
  }

  async #handleLean(req: LeanRequest, res: RawResponse, conn: AppConnection): Promise<void> {
    const app = this.#appOf(req.headers.host ?? '', conn);
    if (!('kind' in app)) {
      sendRefusal(req.headers.accept, res, app);
      return;
    }
    const session = this.#authorizedNow(conn, app) ?? (await this.#authorize(req, conn, app));
    if (!('jwt' in session)) {
      sendRefusal(req.headers.accept, res, session);
      return;
    }
    session.requests++;
    const started = this.#o.clock.now();
    const result = await this.#forwarder.forwardLean(
      req,
      res,
      this.#forwardContext(req.headers.host, conn, session),
    );
    if (app.spec.audit_requests) this.#auditRequest(req.method, req.url, session, result, started);
  }

  /** The tunnel's principal, found once and kept on the socket for `acceptTunnel`. */
  #tunnelPrincipal(socket: TLSSocket): TunnelPrincipal {
    const clientAddr = socket.remoteAddress?.replace(/^::ffff:/, '') ?? 'unknown';
    const p = this.#principalOf(socket, clientAddr);
    (socket as unknown as Record<symbol, typeof p>)[TUNNEL_PRINCIPAL] = p;
    return p;
  }

  /** The checks a tunnel request line gets before `ok` is answered: the app exists, the certificate is for it. */
  checkTunnel(socket: TLSSocket, appName: string): AppResource {
    const app = this.#o.apps.get(appName);
    if (!app)
      throw new WardenError(
        'WARDEN_ERR_NOT_FOUND',
        `app "${appName}" not found; \`wsh apps ls\` lists the apps you can reach`,
      );
    const p = this.#tunnelPrincipal(socket);
    if (p.refusal)
      throw new WardenError(p.refusal.code, `${p.refusal.message} ${p.refusal.hint ?? ''}`.trim());
    if (p.certApp !== appName)
      throw new WardenError(
        'WARDEN_ERR_BAD_CERTIFICATE',
        `the app certificate is for "${p.certApp}", not "${appName}"; run \`wsh app login ${appName}\``,
      );
    return app;
  }

  // ---- Requests ---------------------------------------------------------------------------

  /** The app a request is for (`host`: its `:authority` or `Host`), or a refusal. */
  #appOf(host: string, conn: AppConnection): AppResource | AppRefusal {
    const app = conn.tunnelApp ? this.#o.apps.get(conn.tunnelApp) : this.appForHost(host);
    if (!app)
      return {
        code: 'WARDEN_ERR_NOT_FOUND',
        status: 404,
        message: 'There is no app at this address.',
        hint: '`wsh apps ls` lists the apps you can reach and their addresses.',
      };
    return app;
  }

  /**
   * Authorizes one request and returns its live session, or the refusal. The one place where
   * every request of every app session is checked.
   */
  async #authorize(
    req: Pick<Req, 'headers'>,
    conn: AppConnection,
    app: AppResource,
  ): Promise<AppSession | AppRefusal> {
    let p = conn.principal;
    if (!p && this.#o.web) {
      // A browser launched from the Web UI: the app cookie speaks for the web session.
      const remote = (conn.socket as { remoteAddress?: string }).remoteAddress;
      const clientAddr = remote?.replace(/^::ffff:/, '') ?? 'unknown';
      const web = await this.#o.web.principal(cookieHeader(req), app, clientAddr);
      if (web && !('identity' in web)) return web;
      p = web;
    }
    if (!p)
      return conn.refusal ?? { code: 'WARDEN_ERR_NOT_LOGGED_IN', status: 401, message: 'not logged in' };
    const name = app.metadata.name;
    if (conn.certApp !== name && p.via === 'cert') {
      return {
        code: 'WARDEN_ERR_BAD_CERTIFICATE',
        status: 403,
        message: `This app certificate is for "${conn.certApp}", not "${name}".`,
        hint: `Run \`wsh app login ${name}\` or \`wsh proxy app ${name}\`.`,
      };
    }
    return this.serve(p, app, conn);
  }

  /**
   * `#authorize`'s common case without its promises: an app certificate's request that the
   * checker allows (locks, RBAC, device trust), with its session already open for the same
   * device. Undefined: anything else, which `#authorize` then decides in full (opening,
   * replacing or refusing).
   *
   * The checker's answer for this connection is remembered until any view it reads changes
   * (`#generation`): the identity is the connection's own and does not change, the session must
   * be the same live one (a lock or the certificate's expiry ends it through the monitor), and
   * the only input that changes with time alone, the lock view's staleness in strict mode, is
   * looked at on every request. Time only lifts locks (they expire), never adds one.
   */
  #authorizedNow(conn: AppConnection, app: AppResource): AppSession | undefined {
    const p = conn.principal;
    if (p?.via !== 'cert' || conn.certApp !== app.metadata.name) return undefined;
    const live = this.sessions.find(p, app);
    if (!live || !sameDevice(live.principal.identity, p.identity)) return undefined;
    const known = conn.allowed;
    if (
      known === undefined ||
      known.session !== live ||
      known.generation !== this.#generation ||
      !this.#lockViewCurrent()
    ) {
      if (!this.#o.checker.checkAccess<'app'>(p.identity, appTarget(app), {}).allowed) {
        conn.allowed = undefined;
        return undefined;
      }
      if (this.#rememberDecisions) conn.allowed = { session: live, generation: this.#generation };
    }
    live.attach(conn.socket);
    return live;
  }

  /** False while the lock view is too stale for strict locking mode (every access is then decided anew, and denied). */
  #lockViewCurrent(): boolean {
    const s = this.#o.checker.staleness();
    return !s.strict || s.staleForMs <= s.maxMs;
  }

  /**
   * The app-session entry point: decides access for `principal` to `app` against the live
   * views, and returns the live (or newly opened) session, or the refusal. The proxy calls it
   * for app certificates; the Web UI will call it for web sessions (`via: 'web'`).
   */
  async serve(
    principal: AppPrincipal,
    app: AppResource,
    conn?: { socket: Duplex; audited?: Set<string> },
  ): Promise<AppSession | AppRefusal> {
    const decision = this.#o.checker.checkAccess<'app'>(principal.identity, appTarget(app), {});
    let live = this.sessions.find(principal, app);
    // A web session proved its device after this app session opened: the session must not
    // keep speaking for the untrusted identity (its JWT, its monitor registration).
    if (live && decision.allowed && !sameDevice(live.principal.identity, principal.identity))
      live = await this.sessions.replace(
        live,
        principal,
        app,
        this.publicAddrOf(app),
        'the web session became device-trusted',
        decision.deviceExemption,
      );
    if (!decision.allowed) {
      live?.end(decision.reason);
      const c = conn as AppConnection | undefined;
      if (!c?.audited?.has(app.metadata.name)) {
        if (c) {
          c.audited ??= new Set();
          c.audited.add(app.metadata.name);
        }
        await this.sessions.refused(principal, app, this.publicAddrOf(app), decision.reason);
      }
      const refusal = refusalFor(decision, app.metadata.name);
      if (principal.via === 'web' && refusal.code === 'WARDEN_ERR_DEVICE_UNAUTHORIZED' && this.#o.web) {
        return {
          ...refusal,
          hint:
            `An administrator requires a trusted device for "${app.metadata.name}". Prove this device for ` +
            'your browser session on the Web UI\'s "This device" page (with `wsh device web-helper` running ' +
            'on an enrolled machine), then launch the app again.',
          link: { href: this.#o.web.deviceHelpUrl, text: 'This device' },
        };
      }
      return refusal;
    }
    const session =
      live ?? (await this.sessions.open(principal, app, this.publicAddrOf(app), decision.deviceExemption));
    if (conn) session.attach(conn.socket);
    return session;
  }

  /** The app's URI, parsed once per distinct URI (not per request). */
  #upstreamUrl(uri: string): URL {
    let url = this.#urls.get(uri);
    if (!url) {
      url = new URL(uri);
      if (this.#urls.size >= 1024) this.#urls.clear();
      this.#urls.set(uri, url);
    }
    return url;
  }

  #forwardContext(host: string | undefined, conn: AppConnection, session: AppSession): ForwardContext {
    const app = session.app;
    return {
      upstream: {
        url: this.#upstreamUrl(app.spec.uri),
        insecureSkipVerify: app.spec.insecure_skip_verify ?? false,
      },
      jwt: session.jwt,
      clientAddr: session.principal.identity.clientAddr ?? 'unknown',
      proto: conn.proto,
      host: host || this.publicAddrOf(app),
      rewrite: app.spec.rewrite?.headers ?? [],
      app: app.metadata.name,
    };
  }

  async #handle(req: Req, res: Res): Promise<void> {
    const conn = connectionOf(req);
    if (!conn) {
      res.destroy();
      return;
    }
    const app = this.#appOf(hostOf(req), conn);
    if (!('kind' in app)) {
      sendRefusal(req.headers.accept, res, app);
      return;
    }
    const path = (req.url ?? '/').split('?')[0];
    if (path === WEB_LAUNCH_PATH && this.#o.web && !conn.tunnelApp) {
      const token = new URL(req.url ?? '/', 'https://app').searchParams.get('token') ?? '';
      const r = await this.#o.web.exchange(token, app);
      if (!('cookie' in r)) {
        sendRefusal(req.headers.accept, res, r);
        return;
      }
      res.writeHead(302, {
        location: '/',
        'set-cookie': r.cookie,
        'cache-control': 'no-store',
        'content-length': 0,
      });
      res.end();
      return;
    }
    const session = await this.#authorize(req, conn, app);
    if (!('jwt' in session)) {
      sendRefusal(req.headers.accept, res, session);
      return;
    }
    session.requests++;
    const started = this.#o.clock.now();
    const result = await this.#forwarder.forward(req, res, this.#forwardContext(hostOf(req), conn, session));
    if (app.spec.audit_requests)
      this.#auditRequest(req.method ?? 'GET', req.url ?? '/', session, result, started);
  }

  async #handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const conn = connectionOf(req);
    if (!conn) {
      socket.destroy();
      return;
    }
    const app = this.#appOf(hostOf(req), conn);
    if (!('kind' in app)) {
      socket.end(rawRefusal(req.headers.accept, app));
      return;
    }
    const session = await this.#authorize(req, conn, app);
    if (!('jwt' in session)) {
      socket.end(rawRefusal(req.headers.accept, session));
      return;
    }
    session.requests++;
    const started = this.#o.clock.now();
    const result = await this.#forwarder.upgrade(
      req,
      socket,
      head,
      this.#forwardContext(hostOf(req), conn, session),
      (up) => session.track(up),
    );
    if (app.spec.audit_requests)
      this.#auditRequest(req.method ?? 'GET', req.url ?? '/', session, result, started);
  }

  #auditRequest(
    method: string,
    url: string,
    session: AppSession,
    r: { status: number; requestBytes: number; responseBytes: number },
    started: number,
  ): void {
    const q = url.indexOf('?');
    const event: AuditEventInput = {
      type: 'app.request',
      user: session.principal.identity.user,
      ...(session.principal.identity.clientAddr ? { addr: session.principal.identity.clientAddr } : {}),
      ...auditDevice(session.principal.identity),
      session_id: session.id,
      resource: auditApp(session.app),
      method,
      path: q === -1 ? url : url.slice(0, q),
      status: r.status,
      request_bytes: r.requestBytes,
      response_bytes: r.responseBytes,
      duration_ms: Math.max(0, this.#o.clock.now() - started),
    };
    // A request the audit log can't record ends the session (issue 15 item 5).
    void writeAuditEvent(this.#o.audit, this.#o.logger, event, {}, { onLost: (m) => session.end(m) });
  }

  /** Live sessions whose access no longer holds (role or app changed) end now. */
  #recheckSessions(): void {
    this.sessions.endWhere((s) => {
      const app = this.#o.apps.get(s.app.metadata.name);
      if (!app) return true;
      return !this.#o.checker.checkAccess<'app'>(s.principal.identity, appTarget(app), {}).allowed;
    }, 'access to the app was withdrawn');
  }

  // ---- API: wsh apps ls, wsh app login ------------------------------------------------------

  /** Apps the identity may reach (now, or with a trusted device), as `wsh apps ls` shows them. */
  list(identity: Identity): rpc.AppInfo[] {
    const out: rpc.AppInfo[] = [];
    for (const app of this.#o.apps.values()) {
      const d = this.#o.checker.checkAccess<'app'>(identity, appTarget(app), {});
      if (d.allowed || d.step === 'device_trust') out.push(this.#info(app));
    }
    return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  #info(app: AppResource): rpc.AppInfo {
    return {
      name: app.metadata.name,
      ...(app.metadata.description ? { description: app.metadata.description } : {}),
      labels: { ...(app.metadata.labels ?? {}) },
      public_addr: this.publicAddrOf(app),
    };
  }

  /**
   * `wsh app login NAME`: an app certificate for the key of the caller's certificate, with
   * its identity and device extensions, expiring with it. Locks and RBAC are checked now;
   * device trust when the app is used (the answer warns when it will be refused).
   */
  async login(
    identity: Identity & { cert?: { publicKeyDer: Buffer; notAfter: Date } },
    appName: string,
  ): Promise<rpc.AppLoginResponse> {
    if (identity.admin)
      throw new WardenError('WARDEN_ERR_ACCESS_DENIED', 'the admin identity cannot use apps');
    const app = this.#o.apps.get(appName);
    if (!app)
      throw new WardenError(
        'WARDEN_ERR_NOT_FOUND',
        `app "${appName}" not found; \`wsh apps ls\` lists the apps you can reach`,
      );
    if (!identity.cert)
      throw new WardenError('WARDEN_ERR_NOT_LOGGED_IN', 'an app login needs your Warden certificate');
    const d = this.#o.checker.checkAccess<'app'>(identity, appTarget(app), {});
    const warnings: string[] = [];
    if (!d.allowed) {
      if (d.step !== 'device_trust') {
        await this.#auditCert(identity, app, undefined, d.reason);
        throw accessDeniedError(d);
      }
      warnings.push(
        `${deviceTrustRefusal(appName).message} This login has no trusted device: requests will be refused until you log in on an enrolled device.`,
      );
    }
    const sessionId = randomUUID();
    const publicAddr = this.publicAddrOf(app);
    const issued = await this.#o.cas.issueAppCert({
      identity: { ...routeCertIdentity(identity), app: { app: appName, publicAddr, sessionId } },
      publicKey: createPublicKey({ key: identity.cert.publicKeyDer, format: 'der', type: 'spki' }),
      notAfter: identity.cert.notAfter,
    });
    await this.#auditCert(identity, app, issued.notAfter);
    return {
      cert_pem: issued.certPem,
      expires: issued.notAfter.toISOString(),
      session_id: sessionId,
      app: this.#info(app),
      uri: this.uriOf(app),
      ...(warnings.length ? { warnings } : {}),
    };
  }

  async #auditCert(
    identity: Identity,
    app: AppResource,
    expires: Date | undefined,
    error?: string,
  ): Promise<void> {
    // No app certificate unaudited (issue 15 item 5): a cert.create the log refuses throws.
    await writeAuditEvent(
      this.#o.audit,
      this.#o.logger,
      routeCertAuditEvent(identity, { type: 'app', resource: auditApp(app) }, { expires, error }),
    );
  }

  /** Ends every session and stops forwarding. */
  close(): void {
    for (const u of this.#unsubscribe) u();
    this.sessions.close();
    this.#forwarder.close();
    this.#tunnelServer.closeAllConnections();
  }
}
