/**
 * The auth service's API as the proxy calls it, in the style of Teleport's `ServerWithRoles`:
 * every method that acts for a caller checks the caller's permission here, in one place
 * (`#authorize`: admin identity, or the verb on the resource kind in the caller's roles —
 * a denial is audited as `access.denied`), and only then runs the implementation, which
 * lives with its job and checks nothing itself:
 *
 *   login.ts        signup, login, ping            (no caller yet: these make one)
 *   identify.ts     client certificate → identity; the admin identity
 *   users.ts        wctl users add|reset
 *   bots.ts         wctl bots add|ls|rm; bot join (token) and renewal (current certificate)
 *   token-admin.ts  wctl tokens ls|rm
 *   resources.ts    wctl get|create|edit|rm        (generic CRUD; hands locks and devices on)
 *   locks.ts        every lock write               (wctl lock, wctl create lock.yaml, edit)
 *   devices.ts      wctl devices add|enroll, device resources
 *   signing.ts      host and database certificates, CA export
 *   audit-search.ts wctl audit search
 *
 * The permission check reads the caller's roles from the process's live role view (the
 * access checker's, fed by the backend's watch: no backend read per call), refusing with
 * WARDEN_ERR_ROLE_VIEW_STALE while that view is too stale to trust. A denial by the live view
 * is confirmed against the backend before it is final, so a role granted a moment ago — not
 * yet arrived through the watch — is honoured.
 *
 * The parts are built in `bin/auth.ts` (`createAuthServer`), never here.
 */
import type {
  AuthPreferenceResource,
  DbCertRoute,
  Resource,
  ResourceKind,
  RoleResource,
  rpc,
} from '@warden/api';
import { isResourceKind, isWardenError, RESOURCE_KINDS, Verbs, WardenError } from '@warden/api';
import type { z } from 'zod';
import {
  type AccessChecker,
  type AccessInfo,
  actorOf,
  checkVerb,
  hasVerb,
  type Identity,
  ROLE_VIEW_STALE,
} from '../access';
import type { DeviceInventory } from '../devicetrust';
import type { AuditSearch, AuditSearchQuery } from './audit-search';
import type { BotInfo, BotService } from './bots';
import { type AuthDeps, auditWith, findRoles } from './deps';
import type { DeviceAdmin } from './devices';
import type { Identifier } from './identify';
import type { LockService } from './locks';
import type { LoginService, WebLogin } from './login';
import { type PutOptions, type PutResult, type ResourceAdmin, resourceAddress } from './resources';
import type { SigningService } from './signing';
import type { TokenAdmin } from './token-admin';
import type { UserAdmin } from './users';

/** The implementations under the wrapper, one per job. */
export interface AuthParts {
  login: LoginService;
  identity: Identifier;
  users: UserAdmin;
  bots: BotService;
  tokens: TokenAdmin;
  resources: ResourceAdmin;
  locks: LockService;
  devices: DeviceAdmin;
  signing: SigningService;
  auditSearch: AuditSearch;
  /** The trusted-device inventory (the device ceremonies build on it). */
  inventory: DeviceInventory;
}

/** Where the permission check reads roles: the live role view of the process's checker. */
export type LiveRoles = Pick<AccessChecker, 'liveRoles'>;

export class AuthServer {
  readonly #d: AuthDeps;
  readonly #p: AuthParts;
  readonly #audit: ReturnType<typeof auditWith>;
  readonly #live: LiveRoles | undefined;

  /** Without `live`, every permission check reads the caller's roles from the backend. */
  constructor(deps: AuthDeps, parts: AuthParts, live?: LiveRoles) {
    this.#d = deps;
    this.#p = parts;
    this.#audit = auditWith(deps);
    this.#live = live;
  }

  /** The trusted-device inventory (the device ceremonies build on it). */
  get devices(): DeviceInventory {
    return this.#p.inventory;
  }

  get clusterName(): string {
    return this.#d.clusterName;
  }

  // ---- The one permission check --------------------------------------------------------

  /**
   * The caller's roles as the permission check reads them: from the live role view (stale
   * beyond its bound: refused), or from the backend when there is no live view or `fresh`.
   */
  async #info(caller: Identity, fresh = false): Promise<AccessInfo> {
    let roles: RoleResource[] | undefined;
    if (this.#live && !fresh) {
      roles = this.#live.liveRoles(caller.roles);
      if (!roles) throw new WardenError('WARDEN_ERR_ROLE_VIEW_STALE', ROLE_VIEW_STALE);
    } else {
      roles = await findRoles(this.#d.services, caller.roles);
    }
    return { user: caller.user, roles, traits: caller.traits };
  }

  /**
   * Whether the caller's roles allow `verb` on one of `kinds`, and the roles that decided. A
   * denial by the live view is asked again of the backend: a grant made a moment ago may not
   * have arrived yet.
   */
  async #decide(
    caller: Identity,
    kinds: readonly string[],
    verb: string,
  ): Promise<{ allowed: boolean; info: AccessInfo }> {
    const cached = await this.#info(caller);
    if (kinds.some((k) => hasVerb(cached, k, verb))) return { allowed: true, info: cached };
    if (!this.#live) return { allowed: false, info: cached };
    const fresh = await this.#info(caller, true);
    return { allowed: kinds.some((k) => hasVerb(fresh, k, verb)), info: fresh };
  }

  async #authorize(caller: Identity, kind: string, verb: string): Promise<void> {
    if (caller.admin) return;
    const d = await this.#decide(caller, [kind], verb);
    if (d.allowed) return;
    try {
      checkVerb(d.info, kind, verb);
    } catch (e) {
      if (isWardenError(e, 'WARDEN_ERR_ACCESS_DENIED')) {
        // A role of the certificate deleted since grants nothing: the event says so.
        const found = new Set(d.info.roles.map((r) => r.metadata.name));
        const missing = caller.roles.filter((r) => !found.has(r));
        await this.#audit({
          type: 'access.denied',
          success: false,
          user: caller.user,
          addr: caller.clientAddr,
          protocol: 'api',
          resource: { kind, name: verb },
          roles: [...caller.roles],
          ...(missing.length > 0 ? { missing_roles: missing } : {}),
          error: e.message,
        });
      }
      throw e;
    }
  }

  /**
   * Authorization before validation (issue 15 item 2): a known kind needs the verb on it;
   * anything else (an unknown or malformed kind) needs the verb on some kind, so a caller
   * without write permissions never has their input validated.
   */
  async #authorizeWrite(caller: Identity, claimedKind: unknown, verb: string): Promise<void> {
    if (caller.admin) return;
    if (typeof claimedKind === 'string' && isResourceKind(claimedKind)) {
      // The cluster's single auth preference is only ever updated.
      await this.#authorize(caller, claimedKind, claimedKind === 'cluster_auth_preference' ? 'update' : verb);
      return;
    }
    if (!(await this.#decide(caller, RESOURCE_KINDS, verb)).allowed) {
      await this.#authorize(
        caller,
        typeof claimedKind === 'string' ? claimedKind.slice(0, 64) : 'resource',
        verb,
      );
    }
  }

  // ---- No caller: ping, signup, login, identify ------------------------------------------

  authPreference(): Promise<AuthPreferenceResource> {
    return this.#p.login.authPreference();
  }

  ping(): Promise<rpc.PingResponse> {
    return this.#p.login.ping();
  }

  signupBegin(token: string): Promise<rpc.SignupBeginResponse> {
    return this.#p.login.signupBegin(token);
  }

  signupFinish(
    req: z.infer<typeof rpc.SignupFinishRequest>,
    addr: string,
  ): Promise<rpc.SignupFinishResponse> {
    return this.#p.login.signupFinish(req, addr);
  }

  login(req: rpc.LoginRequest, addr: string): Promise<rpc.LoginResponse> {
    return this.#p.login.login(req, addr);
  }

  /** Sign-in to the Web UI: login's checks, no certificates (see LoginService.webLogin). */
  webLogin(
    req: { user: string; password: string; otp_code?: string | undefined },
    addr: string,
  ): Promise<WebLogin> {
    return this.#p.login.webLogin(req, addr);
  }

  /** Turns a client certificate that TLS verified against the user CA into an identity. */
  identify(certDer: Buffer, opts?: { locks?: 'caller' }): Promise<Identity> {
    return this.#p.identity.identify(certDer, opts);
  }

  /** A database certificate (`wsh db login`): the identity and the database it is for. */
  identifyDb(certDer: Buffer): Promise<{ identity: Identity; db: DbCertRoute }> {
    return this.#p.identity.identifyDb(certDer);
  }

  /** Issues the admin identity (for `bin/`, never over the API); `replaces` stops working. */
  issueAdminIdentity(opts?: {
    replaces?: string;
  }): Promise<{ certPem: string; keyPem: string; expires: Date }> {
    return this.#p.identity.issueAdminIdentity(opts);
  }

  /** The public CA lines: no permission needed. */
  exportAuthority(type: string): { type: string; line: string } {
    return this.#p.signing.exportAuthority(type);
  }

  // ---- Users ---------------------------------------------------------------------------

  async addUser(caller: Identity, req: z.infer<typeof rpc.AddUserRequest>): Promise<rpc.InviteResponse> {
    await this.#authorize(caller, 'user', 'create');
    return this.#p.users.add(actorOf(caller), req);
  }

  async resetUser(caller: Identity, name: string): Promise<rpc.InviteResponse> {
    await this.#authorize(caller, 'user', 'update');
    return this.#p.users.reset(actorOf(caller), name);
  }

  // ---- Bots and tokens ----------------------------------------------------------------

  async addBot(caller: Identity, req: z.infer<typeof rpc.AddBotRequest>): Promise<rpc.BotTokenResponse> {
    await this.#authorize(caller, 'bot', 'create');
    return this.#p.bots.add(actorOf(caller), req);
  }

  async listBots(caller: Identity): Promise<BotInfo[]> {
    await this.#authorize(caller, 'bot', 'list');
    return this.#p.bots.list();
  }

  async removeBot(caller: Identity, name: string): Promise<void> {
    await this.#authorize(caller, 'bot', 'delete');
    await this.#p.bots.remove(actorOf(caller), name);
  }

  /** A bot's first certificates for its join token (no caller: the token is the credential). */
  joinBot(req: z.infer<typeof rpc.BotJoinRequest>, addr: string): Promise<rpc.LoginResponse> {
    return this.#p.bots.join(req, addr);
  }

  /** A bot's next certificates: the caller must be that bot (checked by the bot service). */
  renewBot(caller: Identity, req: z.infer<typeof rpc.BotRenewRequest>): Promise<rpc.LoginResponse> {
    return this.#p.bots.renew(caller, req);
  }

  async listTokens(caller: Identity): Promise<rpc.TokenInfo[]> {
    await this.#authorize(caller, 'token', 'list');
    return this.#p.tokens.list();
  }

  async deleteToken(caller: Identity, id: string): Promise<rpc.TokenInfo> {
    await this.#authorize(caller, 'token', 'delete');
    return this.#p.tokens.remove(actorOf(caller), id);
  }

  // ---- Resources -----------------------------------------------------------------------

  async listResources(caller: Identity, kind: ResourceKind): Promise<Resource[]> {
    await this.#authorize(caller, kind, 'list');
    return this.#p.resources.list(kind);
  }

  async getResource(caller: Identity, kind: ResourceKind, name: string): Promise<Resource> {
    await this.#authorize(caller, kind, 'read');
    return this.#p.resources.get(kind, name);
  }

  async putResource(caller: Identity, input: Record<string, unknown>, opts: PutOptions): Promise<PutResult> {
    const resources = this.#p.resources;
    await this.#authorizeWrite(caller, input.kind, opts.expectedRevision ? 'update' : 'create');
    const res = resources.validate(input);
    const kind = res.kind;
    if (kind === 'cluster_auth_preference') {
      await this.#authorize(caller, kind, 'update');
      return resources.put(actorOf(caller), res, opts, undefined);
    }
    const existing = await resources.find(kind, res.metadata.name);
    // The verb checked first is the one asked for, never chosen by whether the resource
    // exists, or a denial would tell existing names from others:
    //   create → create;  create -f → create, then update if it exists;  edit → update.
    if (opts.expectedRevision) {
      await this.#authorize(caller, kind, 'update');
    } else {
      await this.#authorize(caller, kind, 'create');
      if (existing && opts.force) await this.#authorize(caller, kind, 'update');
    }
    // Pointing a node, db or app at an address is an explicit permission of its own
    // (issue 15 item 12: an SSRF lever); keeping the stored address needs none.
    const address = resourceAddress(res);
    if (address !== undefined && address !== resourceAddress(existing)) {
      await this.#authorize(caller, kind, Verbs.setAddress);
    }
    return resources.put(actorOf(caller), res, opts, existing);
  }

  async deleteResource(caller: Identity, kind: ResourceKind, name: string): Promise<void> {
    await this.#authorize(caller, kind, 'delete');
    await this.#p.resources.remove(actorOf(caller), kind, name);
  }

  // ---- Locks and devices -----------------------------------------------------------------

  async createLock(
    caller: Identity,
    req: z.infer<typeof rpc.CreateLockRequest>,
  ): Promise<{ name: string; warnings?: string[] }> {
    await this.#authorize(caller, 'lock', 'create');
    return this.#p.locks.create(actorOf(caller), req);
  }

  async addDevice(
    caller: Identity,
    req: z.infer<typeof rpc.AddDeviceRequest>,
  ): Promise<z.infer<typeof rpc.AddDeviceResponse>> {
    await this.#authorize(caller, 'device', 'create');
    return this.#p.devices.add(actorOf(caller), req);
  }

  async createDeviceEnrollToken(
    caller: Identity,
    req: z.infer<typeof rpc.DeviceEnrollTokenRequest>,
  ): Promise<rpc.DeviceEnrollTokenResponse> {
    await this.#authorize(caller, 'device', 'create');
    return this.#p.devices.createEnrollToken(actorOf(caller), req);
  }

  // ---- Signing and audit -----------------------------------------------------------------

  /** Admin identity or the `create` verb on `host_cert`. */
  async signHost(
    caller: Identity,
    req: z.infer<typeof rpc.SignHostRequest>,
  ): Promise<z.infer<typeof rpc.SignHostResponse>> {
    await this.#authorize(caller, 'host_cert', 'create');
    return this.#p.signing.signHost(actorOf(caller), req);
  }

  /** Admin identity or the `create` verb on `db_cert`. */
  async signDb(
    caller: Identity,
    req: z.infer<typeof rpc.SignDbRequest>,
  ): Promise<z.infer<typeof rpc.SignDbResponse>> {
    await this.#authorize(caller, 'db_cert', 'create');
    return this.#p.signing.signDb(actorOf(caller), req);
  }

  async searchAudit(caller: Identity, q: AuditSearchQuery): Promise<Record<string, unknown>[]> {
    await this.#authorize(caller, 'event', 'list');
    return this.#p.auditSearch.search(q);
  }
}
