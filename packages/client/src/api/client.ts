/**
 * `ApiClient`: typed calls of the RPC contract (`@warden/api` rpc). Every response is
 * validated before use: with its zod schema, loaded (./schemas) while the first request is
 * on its way; the resource listings `wctl get` reads are checked without zod, so that
 * command starts without loading it (issue 16: start-up).
 *
 * @example
 *   const trust = await establishTrust({ proxy: '127.0.0.1:3080', caPin });
 *   const api = new ApiClient({ proxy, caPems: trust.hostCaPems });
 *   await api.login({ user: 'alice', password, otp_code, ssh_public_key, tls_public_key });
 */
import { createHash, X509Certificate } from 'node:crypto';
import type { rpc } from '@warden/api';
import { rpcRoutes as R, WardenError } from '@warden/api';
import type { z } from 'zod';
import { errorFromResponse, type HttpOptions, httpJson } from './http';

type Schemas = typeof import('./schemas');
let schemas: Promise<Schemas> | undefined;

/** The response schemas (zod and the RPC contract), loaded once. */
function loadSchemas(): Promise<Schemas> {
  schemas ??= import('./schemas');
  return schemas;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** `rpc.ListResourcesResponse`, checked without zod. */
function isItemList(body: unknown): body is { items: Record<string, unknown>[] } {
  return isObject(body) && Array.isArray(body.items) && body.items.every(isObject);
}

/** `{ resource: {…} }` (part of `rpc.ResourceResponse`), checked without zod. */
function isOneResource(body: unknown): body is { resource: Record<string, unknown> } {
  return isObject(body) && isObject(body.resource);
}

export class ApiClient {
  readonly #opts: HttpOptions;

  constructor(opts: HttpOptions) {
    this.#opts = opts;
  }

  get proxy(): string {
    return this.#opts.proxy;
  }

  async #call<S extends z.ZodTypeAny>(
    pick: (s: Schemas) => S,
    method: 'GET' | 'POST' | 'PUT' | 'DELETE',
    path: string,
    body?: unknown,
  ): Promise<z.infer<S>> {
    const [res, s] = await Promise.all([httpJson(this.#opts, method, path, body), loadSchemas()]);
    if (res.status < 200 || res.status >= 300) throw errorFromResponse(res);
    const parsed = pick(s).safeParse(res.body);
    if (!parsed.success) throw this.#unexpected(path);
    return parsed.data;
  }

  /** Like #call, with a check that needs no zod. */
  async #callChecked<T>(
    check: (body: unknown) => body is T,
    method: 'GET' | 'POST' | 'PUT' | 'DELETE',
    path: string,
  ): Promise<T> {
    const res = await httpJson(this.#opts, method, path);
    if (res.status < 200 || res.status >= 300) throw errorFromResponse(res);
    if (!check(res.body)) throw this.#unexpected(path);
    return res.body;
  }

  #unexpected(path: string): WardenError {
    return new WardenError(
      'WARDEN_ERR_CONNECTION',
      `unexpected answer from the proxy at ${this.proxy} (${path})`,
    );
  }

  ping(): Promise<rpc.PingResponse> {
    return this.#call((s) => s.rpc.PingResponse, 'GET', R.ping);
  }
  signupBegin(token: string) {
    return this.#call((s) => s.rpc.SignupBeginResponse, 'POST', R.signupBegin, { token });
  }
  signupFinish(req: z.input<typeof rpc.SignupFinishRequest>) {
    return this.#call((s) => s.rpc.SignupFinishResponse, 'POST', R.signupFinish, req);
  }
  login(req: rpc.LoginRequest): Promise<rpc.LoginResponse> {
    return this.#call((s) => s.rpc.LoginResponse, 'POST', R.login, req);
  }
  whoami() {
    return this.#call((s) => s.rpc.WhoamiResponse, 'GET', R.whoami);
  }
  listResources(kind: string) {
    return this.#callChecked(isItemList, 'GET', `${R.resources}/${enc(kind)}`);
  }
  getResource(kind: string, name: string) {
    return this.#callChecked(isOneResource, 'GET', `${R.resources}/${enc(kind)}/${enc(name)}`);
  }
  putResource(req: z.input<typeof rpc.CreateResourceRequest>) {
    return this.#call((s) => s.rpc.ResourceResponse, 'POST', R.resources, req);
  }
  deleteResource(kind: string, name: string) {
    return this.#call((s) => s.deleted, 'DELETE', `${R.resources}/${enc(kind)}/${enc(name)}`);
  }
  addUser(req: z.input<typeof rpc.AddUserRequest>) {
    return this.#call((s) => s.rpc.InviteResponse, 'POST', R.users, req);
  }
  resetUser(name: string) {
    return this.#call((s) => s.rpc.InviteResponse, 'POST', `${R.users}/${enc(name)}/reset`, {});
  }
  /** `wctl bots add`: the bot and its one-time join token. */
  addBot(req: z.input<typeof rpc.AddBotRequest>) {
    return this.#call((s) => s.rpc.BotTokenResponse, 'POST', R.bots, req);
  }
  listBots() {
    return this.#call((s) => s.rpc.ListResourcesResponse, 'GET', R.bots);
  }
  removeBot(name: string) {
    return this.#call((s) => s.empty, 'DELETE', `${R.bots}/${enc(name)}`);
  }
  /** A bot's first certificates for its join token (no client certificate needed). */
  botJoin(req: z.input<typeof rpc.BotJoinRequest>): Promise<rpc.LoginResponse> {
    return this.#call((s) => s.rpc.LoginResponse, 'POST', R.botJoin, req);
  }
  /** A bot's next certificates; this client must hold the bot's current certificate. */
  botRenew(req: z.input<typeof rpc.BotRenewRequest>): Promise<rpc.LoginResponse> {
    return this.#call((s) => s.rpc.LoginResponse, 'POST', R.botRenew, req);
  }
  /** Open join, invite and enrollment tokens, by ID (`wctl tokens ls`). */
  listTokens() {
    return this.#call((s) => s.tokenList, 'GET', R.tokens);
  }
  deleteToken(id: string) {
    return this.#call((s) => s.tokenRemoved, 'DELETE', `${R.tokens}/${enc(id)}`);
  }
  signHost(req: z.input<typeof rpc.SignHostRequest>) {
    return this.#call((s) => s.rpc.SignHostResponse, 'POST', `${R.authorities}/host/sign`, req);
  }
  listNodes() {
    return this.#call((s) => s.rpc.ListResourcesResponse, 'GET', R.nodes);
  }
  /** Databases the caller may reach, with the db users and names their roles allow. */
  listDbs() {
    return this.#call((s) => s.rpc.ListResourcesResponse, 'GET', R.dbs);
  }
  /** A database certificate for this profile's key (`wsh db login`). */
  dbLogin(req: z.input<typeof rpc.DbLoginRequest>): Promise<rpc.DbLoginResponse> {
    return this.#call((s) => s.rpc.DbLoginResponse, 'POST', R.dbLogin, req);
  }
  /** Web apps the caller may reach (`wsh apps ls`). */
  listApps() {
    return this.#call((s) => s.rpc.ListAppsResponse, 'GET', R.apps);
  }
  /** An app certificate for this profile's key (`wsh app login`). */
  appLogin(app: string): Promise<rpc.AppLoginResponse> {
    return this.#call((s) => s.rpc.AppLoginResponse, 'POST', R.appLogin, { app });
  }
  /** Kubernetes clusters the caller may reach (`wsh kube ls`). */
  listKubeClusters() {
    return this.#call((s) => s.rpc.ListResourcesResponse, 'GET', R.kubeClusters);
  }
  /** A short-lived Kubernetes client certificate for `publicKeyPem` (`wsh kube credentials`). */
  kubeCert(req: z.input<typeof rpc.KubeCertRequest>) {
    return this.#call((s) => s.rpc.KubeCertResponse, 'POST', R.kubeCerts, req);
  }
  /** A database's server certificate from the db CA (`wctl auth sign --format=db`). */
  signDb(req: z.input<typeof rpc.SignDbRequest>) {
    return this.#call((s) => s.rpc.SignDbResponse, 'POST', `${R.authorities}/db/sign`, req);
  }
  createLock(req: z.input<typeof rpc.CreateLockRequest>) {
    return this.#call((s) => s.rpc.CreateLockResponse, 'POST', R.locks, req);
  }
  /** Registers a device (`wctl devices add`), with its enrollment token when `enroll` is set. */
  addDevice(req: z.input<typeof rpc.AddDeviceRequest>) {
    return this.#call((s) => s.rpc.AddDeviceResponse, 'POST', R.devices, req);
  }
  /** A new enrollment token for a device, by ID or asset tag (`wctl devices enroll`). */
  createDeviceEnrollToken(req: z.input<typeof rpc.DeviceEnrollTokenRequest>) {
    return this.#call((s) => s.rpc.DeviceEnrollTokenResponse, 'POST', R.deviceTokens, req);
  }
  /** Device enrollment, first message (the token authenticates; a profile's certificate names the owner). */
  deviceEnrollBegin(req: rpc.DeviceEnrollBeginRequest) {
    return this.#call((s) => s.rpc.DeviceEnrollBeginResponse, 'POST', R.deviceEnrollBegin, req);
  }
  deviceEnrollFinish(req: rpc.DeviceEnrollFinishRequest) {
    return this.#call((s) => s.rpc.DeviceEnrollFinishResponse, 'POST', R.deviceEnrollFinish, req);
  }
  /** Device authentication after login (needs the fresh certificate as the identity). */
  deviceAuthnBegin(req: rpc.DeviceAuthnBeginRequest) {
    return this.#call((s) => s.rpc.DeviceAuthnBeginResponse, 'POST', R.deviceAuthnBegin, req);
  }
  deviceAuthnFinish(req: rpc.DeviceAuthnFinishRequest) {
    return this.#call((s) => s.rpc.DeviceAuthnFinishResponse, 'POST', R.deviceAuthnFinish, req);
  }
  /** Browser device trust (`wsh device web-helper`): the same ceremony, answering a web device challenge. */
  deviceWebBegin(req: rpc.DeviceWebBeginRequest) {
    return this.#call((s) => s.rpc.DeviceAuthnBeginResponse, 'POST', R.deviceWebBegin, req);
  }
  deviceWebFinish(req: rpc.DeviceWebFinishRequest) {
    return this.#call((s) => s.rpc.DeviceWebFinishResponse, 'POST', R.deviceWebFinish, req);
  }
  exportAuthority(type: string) {
    return this.#call((s) => s.rpc.ExportAuthorityResponse, 'GET', `${R.authorities}/${enc(type)}/export`);
  }
  searchAudit(q: {
    from?: string;
    to?: string;
    type?: string[];
    user?: string;
    limit?: number;
    order?: string;
  }) {
    const p = new URLSearchParams();
    if (q.from) p.set('from', q.from);
    if (q.to) p.set('to', q.to);
    for (const t of q.type ?? []) p.append('type', t);
    if (q.user) p.set('user', q.user);
    if (q.limit) p.set('limit', String(q.limit));
    if (q.order) p.set('order', q.order);
    return this.#call((s) => s.rpc.AuditSearchResponse, 'GET', `${R.audit}?${p}`);
  }
}

function enc(s: string): string {
  return encodeURIComponent(s);
}

/** `sha256:<hex>` of a CA certificate's SubjectPublicKeyInfo; what `--ca-pin` takes. */
export function caPin(pem: string): string {
  const spki = new X509Certificate(pem).publicKey.export({ type: 'spki', format: 'der' });
  return `sha256:${createHash('sha256').update(spki).digest('hex')}`;
}

export interface TrustOptions {
  proxy: string;
  /** CA certificates already trusted for this proxy (from the profile). */
  knownCaPems?: string[];
  caPin?: string;
  insecure?: boolean;
}

export interface Trust {
  hostCaPems: string[];
  ping: rpc.PingResponse;
  insecure: boolean;
}

/**
 * Decides which host CA to trust for a proxy: the profile's known CAs, else the CA whose
 * SPKI hash equals `--ca-pin` (fetched with an unverified first request and then checked), else
 * nothing unless `--insecure`. Afterwards a verified ping proves the proxy holds a certificate
 * from that CA.
 */
export async function establishTrust(opts: TrustOptions): Promise<Trust> {
  if (opts.insecure) {
    const ping = await new ApiClient({ proxy: opts.proxy, insecure: true }).ping();
    return { hostCaPems: ping.host_ca_pems, ping, insecure: true };
  }
  let cas = opts.knownCaPems ?? [];
  if (cas.length === 0) {
    if (!opts.caPin) {
      // Reach it first: when nothing listens there, "connection refused" is the news.
      await new ApiClient({ proxy: opts.proxy, insecure: true }).ping();
      throw new WardenError(
        'WARDEN_ERR_BAD_PARAMETER',
        `the proxy at ${opts.proxy} is not trusted yet: pass --ca-pin=sha256:… (printed by \`warden start\` and ` +
          '`wctl users add`), or --insecure to skip verification (not recommended)',
      );
    }
    const pin = opts.caPin.trim().toLowerCase();
    if (!/^sha256:[0-9a-f]{64}$/.test(pin)) {
      throw new WardenError(
        'WARDEN_ERR_BAD_PARAMETER',
        `invalid --ca-pin "${opts.caPin}": expected sha256:<64 hex digits>`,
      );
    }
    const unverified = await new ApiClient({ proxy: opts.proxy, insecure: true }).ping();
    cas = unverified.host_ca_pems.filter((pem) => {
      try {
        return caPin(pem) === pin;
      } catch {
        return false;
      }
    });
    if (cas.length === 0) {
      throw new WardenError(
        'WARDEN_ERR_BAD_CERTIFICATE',
        `the proxy at ${opts.proxy} does not present a host CA matching --ca-pin ${pin}; check the pin and the address`,
      );
    }
  }
  const ping = await new ApiClient({ proxy: opts.proxy, caPems: cas }).ping();
  return { hostCaPems: cas, ping, insecure: false };
}
