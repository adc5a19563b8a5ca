/**
 * The Web UI on the proxy port: the single-page app's files under `/web` (the proxy's `/`
 * redirects there) and its JSON API under `/v1/web`, authenticated by the session cookie.
 *
 * Every request: security headers (strict CSP, no framing). Every API request after sign-in:
 *   1. the session (cookie → backend): unknown, expired or idle → 401, cookie cleared
 *   2. the process's access checker: a lock on the user, their roles or the session's trusted
 *      device → the session ends, 403; a lock view it cannot trust (strict mode) or unknown
 *      cluster settings → 403 with that code, the session kept
 *   3. state-changing requests (POST, DELETE): `Origin` must be this proxy and the
 *      `X-Warden-Csrf` header must carry the session's CSRF token (SameSite=Strict as well)
 * Sign-in and sign-up have no session yet: they need the same-origin `Origin` and the header
 * (any value: a custom header forces a CORS preflight, which this API never grants).
 * Internal to `web/`; composed in `bin/`.
 */
import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { join } from 'node:path';
import {
  formatResource,
  type NodeResource,
  type Resource,
  type RoleResource,
  type rpc,
  WardenError,
  web,
} from '@warden/api';
import type { z } from 'zod';
import { type AccessChecker, hasVerb, type Identity, lockedError, strictestDeviceTrustMode } from '../access';
import { type AuditLog, writeAuditEvent } from '../audit';
import type { AuthServer } from '../auth';
import type { Clock } from '../clock';
import type { Logger } from '../log';
import type { PublicRouteLimits } from '../proxy';
import type { Services } from '../services';
import type { WebApps } from './apps';
import type { WebDeviceTrust } from './device';
import {
  parseCookies,
  readJson,
  SESSION_COOKIE,
  securityHeaders,
  sendError,
  sendJson,
  sessionCookie,
} from './http';
import {
  type LoadedWebSession,
  sameSecret,
  sessionIdentity,
  type WebSessions,
  webSessionEndEvent,
} from './sessions';

const W = web.WebRoutes;

export interface WebUiOptions {
  auth: Pick<
    AuthServer,
    | 'webLogin'
    | 'signupBegin'
    | 'signupFinish'
    | 'listResources'
    | 'createLock'
    | 'deleteResource'
    | 'searchAudit'
    | 'authPreference'
    | 'clusterName'
  >;
  services: Pick<Services, 'roles' | 'users'>;
  sessions: WebSessions;
  device: WebDeviceTrust;
  /**
   * The process's access checker: locks (and strict mode) for every request, and the live
   * role view (`liveRoles`, when it has one) for what the session page shows.
   */
  access: Pick<AccessChecker, 'lockReason'> & Partial<Pick<AccessChecker, 'liveRoles'>>;
  /** Nodes the identity may reach (the proxy's own listing). */
  listNodes(identity: Identity): Promise<NodeResource[]>;
  /** Databases the identity may reach (absent when no db_service runs here). */
  listDbs?(identity: Identity): Promise<unknown[]>;
  /** Apps (absent when no app_service runs here): the list, their URL, and the launcher. */
  apps?: {
    /** Apps the identity may reach (its `clientAddr` is the caller's address). */
    list(identity: Identity): rpc.AppInfo[];
    /** `https://<public addr>[:port]`. */
    uriOf(publicAddr: string): string;
    launcher: WebApps;
  };
  /** Where the built app is (dist/web); undefined: the API only, `/web` says the UI is not built. */
  assetsDir: string | undefined;
  clock: Clock;
  audit: AuditLog;
  logger: Logger;
  /** Per-address limits on sign-in, sign-up and the config (issue 15 item 4); none when absent. */
  limits?: PublicRouteLimits & { isGuess(e: unknown): boolean };
  proxyPublicAddr: string;
  helperPorts: readonly number[];
}

const ASSETS: Record<string, string> = {
  'app.js': 'text/javascript; charset=utf-8',
  'app.css': 'text/css; charset=utf-8',
  'favicon.svg': 'image/svg+xml',
};

interface Ctx {
  req: IncomingMessage;
  res: ServerResponse;
  url: URL;
  addr: string;
  headers: Record<string, string | string[]>;
}

function clientAddr(req: IncomingMessage): string {
  return req.socket.remoteAddress?.replace(/^::ffff:/, '') ?? 'unknown';
}

function parse<S extends z.ZodType>(schema: S, body: unknown): z.infer<S> {
  const r = schema.safeParse(body);
  if (!r.success) {
    const issue = r.error.issues[0];
    const where = issue?.path.length ? `${issue.path.join('.')}: ` : '';
    throw new WardenError(
      'WARDEN_ERR_BAD_PARAMETER',
      `invalid request: ${where}${issue?.message ?? 'bad input'}`,
    );
  }
  return r.data;
}

export class WebUi {
  readonly #o: WebUiOptions;
  readonly #headers: Record<string, string>;
  #index: Buffer | undefined;

  constructor(o: WebUiOptions) {
    this.#o = o;
    this.#headers = securityHeaders(o.helperPorts);
  }

  /** Handles `/`, `/web…` and `/v1/web…`; false for every other path (the RPC API's). */
  async handle(req: IncomingMessage, res: ServerResponse): Promise<boolean> {
    const url = new URL(req.url ?? '/', 'https://proxy');
    const path = url.pathname;
    const ctx: Ctx = { req, res, url, addr: clientAddr(req), headers: { ...this.#headers } };
    if (path === '/' || path === '/web') {
      res.writeHead(302, { ...this.#headers, location: '/web/', 'content-length': 0 });
      res.end();
      return true;
    }
    if (path.startsWith('/web/')) {
      this.#static(ctx, path.slice('/web/'.length));
      return true;
    }
    if (path === '/v1/web' || path.startsWith('/v1/web/')) {
      try {
        const out = await this.#api(ctx);
        sendJson(res, 200, out, ctx.headers);
      } catch (e) {
        sendError(res, e, ctx.headers, this.#o.logger, path);
      }
      return true;
    }
    return false;
  }

  #static(ctx: Ctx, rest: string): void {
    const { res, req } = ctx;
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { ...ctx.headers, allow: 'GET, HEAD', 'content-length': 0 });
      res.end();
      return;
    }
    const dir = this.#o.assetsDir;
    const asset = rest.startsWith('assets/') ? rest.slice('assets/'.length) : undefined;
    let body: Buffer;
    let type: string;
    try {
      if (asset !== undefined) {
        type = ASSETS[asset] ?? '';
        if (!type || !dir) throw new Error('no such asset');
        body = readFileSync(join(dir, asset));
      } else {
        // Every other path under /web/ is a page of the app (client-side routing).
        if (!dir) throw new Error('not built');
        this.#index ??= readFileSync(join(dir, 'index.html'));
        body = this.#index;
        type = 'text/html; charset=utf-8';
      }
    } catch {
      const msg = Buffer.from(
        dir ? 'Not found\n' : 'The Web UI is not built: run `npm run build` (it bundles packages/web).\n',
      );
      res.writeHead(404, {
        ...ctx.headers,
        'content-type': 'text/plain; charset=utf-8',
        'content-length': msg.length,
      });
      res.end(msg);
      return;
    }
    res.writeHead(200, {
      ...ctx.headers,
      'content-type': type,
      'content-length': body.length,
      'cache-control': asset !== undefined ? 'no-cache' : 'no-store',
    });
    res.end(req.method === 'HEAD' ? undefined : body);
  }

  /** Same-origin check for state-changing requests: `Origin` is this proxy, as the browser reached it. */
  #checkOrigin(ctx: Ctx): void {
    const origin = ctx.req.headers.origin;
    const host = ctx.req.headers.host;
    if (!origin || !host || origin !== `https://${host}`) {
      throw new WardenError('WARDEN_ERR_ACCESS_DENIED', 'cross-site request refused (Origin does not match)');
    }
  }

  async #api(ctx: Ctx): Promise<unknown> {
    const { req, url } = ctx;
    const method = req.method ?? 'GET';
    const path = url.pathname;
    const changing = method !== 'GET' && method !== 'HEAD';
    if (changing) {
      this.#checkOrigin(ctx);
      if (req.headers[web.CSRF_HEADER] === undefined)
        throw new WardenError('WARDEN_ERR_ACCESS_DENIED', `missing ${web.CSRF_HEADER} header`);
    }
    // Without a session: limited per source address.
    const open = this.#public(ctx, method, path);
    if (open) {
      const limits = this.#o.limits;
      await limits?.admit(ctx.addr);
      try {
        return await open();
      } catch (e) {
        if (limits?.isGuess(e)) await limits.failed(ctx.addr);
        throw e;
      }
    }

    // 1–2. The session, and locks.
    const session = await this.#session(ctx);
    // 3. CSRF.
    if (changing) {
      const sent = req.headers[web.CSRF_HEADER];
      if (typeof sent !== 'string' || !sameSecret(sent, session.data.csrf))
        throw new WardenError(
          'WARDEN_ERR_ACCESS_DENIED',
          'the CSRF token is missing or wrong: reload the page',
        );
    }
    const identity = sessionIdentity(session, ctx.addr);

    if (path === W.session && method === 'GET') return this.#sessionView(session);
    if (path === W.logout && method === 'POST') return this.#logout(ctx, session);
    if (path === W.resources && method === 'GET') return this.#resources(identity);
    if (path === W.deviceChallenge && method === 'POST')
      return this.#o.device.create({ id: session.id, user: session.data.user, addr: session.data.addr });
    if (path.startsWith(`${W.deviceChallenge}/`) && method === 'GET')
      return this.#o.device.status(session.id, path.slice(W.deviceChallenge.length + 1));
    if (path.startsWith(`${W.admin}/`) && method === 'GET')
      return this.#admin(identity, path.slice(W.admin.length + 1));
    if (path === W.locks && method === 'POST') {
      const body = parse(web.CreateLockRequest, await readJson(req));
      return this.#o.auth.createLock(identity, { ...body, target: body.target });
    }
    if (path.startsWith(`${W.locks}/`) && method === 'DELETE') {
      await this.#o.auth.deleteResource(identity, 'lock', decodeURIComponent(path.slice(W.locks.length + 1)));
      return {};
    }
    if (path === W.audit && method === 'GET') return this.#audit(identity, url.searchParams);
    const launch = /^\/v1\/web\/apps\/([^/]+)\/launch$/.exec(path);
    if (launch && method === 'POST') return this.#launch(session, identity, decodeURIComponent(launch[1]!));
    throw new WardenError('WARDEN_ERR_NOT_FOUND', `no such Web UI API route ${method} ${path}`);
  }

  /** The routes that need no session, or undefined. */
  #public(ctx: Ctx, method: string, path: string): (() => Promise<unknown>) | undefined {
    const { req } = ctx;
    if (path === W.config && method === 'GET') return () => this.#config();
    if (path === W.login && method === 'POST') return () => this.#login(ctx);
    if (path === W.signupBegin && method === 'POST')
      return async () => this.#o.auth.signupBegin(parse(web.SignupBeginRequest, await readJson(req)).token);
    if (path === W.signupFinish && method === 'POST')
      return async () =>
        this.#o.auth.signupFinish(parse(web.SignupFinishRequest, await readJson(req)), ctx.addr);
    return undefined;
  }

  async #config(): Promise<web.ConfigResponse> {
    const cap = await this.#o.auth.authPreference();
    return {
      cluster_name: this.#o.auth.clusterName,
      proxy_public_addr: this.#o.proxyPublicAddr,
      device_trust_mode: cap.spec.device_trust?.mode ?? 'off',
      second_factor: cap.spec.second_factor,
      helper_ports: [...this.#o.helperPorts],
    };
  }

  async #login(ctx: Ctx): Promise<web.SessionResponse> {
    const body = parse(web.LoginRequest, await readJson(ctx.req));
    const who = await this.#o.auth.webLogin(body, ctx.addr);
    const { token, session } = await this.#o.sessions.create(who, ctx.addr);
    ctx.headers['set-cookie'] = sessionCookie(token, who.ttlMs);
    return this.#sessionView(session);
  }

  async #endSession(
    ctx: Ctx,
    s: LoadedWebSession,
    reason: string,
    opts: { alreadyEnded?: boolean } = {},
  ): Promise<void> {
    if (!opts.alreadyEnded) await this.#o.sessions.end(s.id);
    ctx.headers['set-cookie'] = sessionCookie('', 0);
    // The session is over either way: a lost event is logged, not thrown.
    await writeAuditEvent(
      this.#o.audit,
      this.#o.logger,
      webSessionEndEvent(s, ctx.addr, reason),
      {},
      {
        onLost: () => undefined,
      },
    );
  }

  /** Steps 1–2 of every request with a session. */
  async #session(ctx: Ctx): Promise<LoadedWebSession> {
    const token = parseCookies(ctx.req.headers.cookie).get(SESSION_COOKIE);
    const found = token
      ? await this.#o.sessions.lookup(token)
      : { ok: false as const, reason: 'missing' as const };
    if (!found.ok && found.reason === 'locked' && found.session) {
      // Ended by the session monitor when the lock arrived (audited then): say why.
      ctx.headers['set-cookie'] = sessionCookie('', 0);
      throw new WardenError('WARDEN_ERR_LOCKED', `${found.session.data.locked}; your web session was ended`);
    }
    if (!found.ok) {
      if (found.session) await this.#endSession(ctx, found.session, found.reason, { alreadyEnded: true });
      else if (token) ctx.headers['set-cookie'] = sessionCookie('', 0);
      throw new WardenError(
        'WARDEN_ERR_NOT_LOGGED_IN',
        found.reason === 'missing'
          ? 'not signed in (or the session ended): sign in again'
          : `your web session ended (${found.reason}): sign in again`,
      );
    }
    const s = found.session;
    const why = this.#o.access.lockReason(sessionIdentity(s));
    if (why?.lock) {
      await this.#endSession(ctx, s, `locked: ${why.reason}`);
      throw new WardenError('WARDEN_ERR_LOCKED', `${why.reason}; your web session was ended`);
    }
    // A view that cannot be trusted refuses the request but ends nothing: it may recover.
    if (why) throw lockedError(why);
    return s;
  }

  async #roles(names: readonly string[]): Promise<RoleResource[]> {
    const live = this.#o.access.liveRoles?.(names);
    if (live) return live;
    const out: RoleResource[] = [];
    for (const n of names) {
      const r = await this.#o.services.roles.find(n);
      if (r) out.push(r);
    }
    return out;
  }

  async #sessionView(s: LoadedWebSession): Promise<web.SessionResponse> {
    const roles = await this.#roles(s.data.roles);
    const cap = await this.#o.auth.authPreference();
    const info = { user: s.data.user, roles, traits: s.data.traits };
    return {
      user: s.data.user,
      roles: s.data.roles,
      logins: s.data.logins,
      csrf_token: s.data.csrf,
      expires: s.data.expires,
      idle_timeout_ms: s.data.idle_ms,
      device_trust_mode: strictestDeviceTrustMode([
        cap.spec.device_trust?.mode ?? 'off',
        ...roles.map((r) => r.spec.options.device_trust_mode),
      ]),
      ...(s.data.device ? { device: s.data.device } : {}),
      editor: hasVerb(info, 'lock', 'list') || hasVerb(info, 'event', 'list'),
    };
  }

  async #logout(ctx: Ctx, s: LoadedWebSession): Promise<Record<string, never>> {
    await this.#endSession(ctx, s, 'sign-out');
    return {};
  }

  async #resources(identity: Identity): Promise<web.ResourcesResponse> {
    const items: web.ResourceView[] = [];
    for (const node of await this.#o.listNodes(identity)) {
      const host = node.spec.hostname;
      items.push({
        kind: 'node',
        name: host,
        labels: node.metadata.labels ?? {},
        description: node.spec.addr ? `${host} (${node.spec.addr})` : host,
        access: [...identity.logins],
        command: `wsh ssh ${identity.logins[0] ?? 'LOGIN'}@${host}`,
      });
    }
    const unavailable: string[] = [];
    if (this.#o.apps) {
      for (const app of this.#o.apps.list(identity)) {
        items.push({
          kind: 'app',
          name: app.name,
          labels: app.labels,
          description: [app.description, app.public_addr].filter(Boolean).join(' — '),
          access: [],
          launch: true,
        });
      }
    } else unavailable.push('app');
    if (this.#o.listDbs) {
      for (const db of (await this.#o.listDbs(identity)) as {
        name?: string;
        protocol?: string;
        labels?: Record<string, string>;
        description?: string;
        db_users?: string[];
        metadata?: { name: string; labels?: Record<string, string> };
      }[]) {
        const name = db.name ?? db.metadata?.name ?? '?';
        items.push({
          kind: 'db',
          name,
          labels: db.labels ?? db.metadata?.labels ?? {},
          description: [db.protocol, db.description].filter(Boolean).join(' — '),
          access: db.db_users ?? [],
          command: `wsh db connect ${name}`,
        });
      }
    } else unavailable.push('db');
    return { items, unavailable };
  }

  async #launch(session: LoadedWebSession, identity: Identity, name: string): Promise<{ url: string }> {
    const apps = this.#o.apps;
    const app = apps?.list(identity).find((a) => a.name === name);
    if (!apps || !app)
      throw new WardenError('WARDEN_ERR_NOT_FOUND', `app "${name}" not found among the apps you may reach`);
    return apps.launcher.launch(session, name, apps.uriOf(app.public_addr));
  }

  async #admin(caller: Identity, kindWord: string): Promise<web.AdminListResponse> {
    const kinds: Record<string, 'device' | 'lock' | 'user' | 'role'> = {
      devices: 'device',
      locks: 'lock',
      users: 'user',
      roles: 'role',
    };
    const kind = kinds[kindWord];
    if (!kind) throw new WardenError('WARDEN_ERR_NOT_FOUND', `no such list "${kindWord}"`);
    const items = await this.#o.auth.listResources(caller, kind);
    return {
      items: items.map((r) => ({
        name: r.metadata.name,
        yaml: formatResource(r, 'yaml'),
        summary: summary(r),
      })),
      ...(kind === 'device'
        ? { bind_owner: (await this.#o.auth.authPreference()).spec.device_trust?.bind_owner === true }
        : {}),
    };
  }

  async #audit(caller: Identity, q: URLSearchParams): Promise<web.AuditResponse> {
    for (const t of ['from', 'to']) {
      const v = q.get(t);
      if (v && Number.isNaN(Date.parse(v)))
        throw new WardenError('WARDEN_ERR_BAD_PARAMETER', `invalid ${t} time "${v}"`);
    }
    const device = q.get('device') ?? '';
    const events = await this.#o.auth.searchAudit(caller, {
      from: q.get('from') || undefined,
      to: q.get('to') || undefined,
      types: q.getAll('type').filter(Boolean),
      user: q.get('user') || undefined,
      limit: device ? 10_000 : 500,
    });
    const filtered = device
      ? events.filter((e) => {
          const d = e.device as { id?: string; asset_tag?: string } | undefined;
          return d?.id === device || d?.asset_tag === device || e.device_id === device;
        })
      : events;
    return { events: filtered.slice(0, 500) };
  }
}

/** The columns of the editor lists. */
function summary(r: Resource): Record<string, string> {
  switch (r.kind) {
    case 'device': {
      const s = r.spec;
      return {
        asset_tag: s.asset_tag,
        os: s.os_type,
        enroll_status: s.enroll_status,
        attestation: s.credential?.attestation_type ?? '',
        owner: s.owner ?? '',
      };
    }
    case 'lock': {
      const t = r.spec.target as Record<string, string | undefined>;
      return {
        target: Object.entries(t)
          .filter(([, v]) => v)
          .map(([k, v]) => `${k}=${v}`)
          .join(', '),
        message: r.spec.message ?? '',
        expires: r.spec.expires ?? 'never',
      };
    }
    case 'user':
      return { roles: r.spec.roles.join(', ') };
    case 'role':
      return {
        description: r.metadata.description ?? '',
        device_trust_mode: r.spec.options.device_trust_mode ?? '',
      };
    default:
      return {};
  }
}
