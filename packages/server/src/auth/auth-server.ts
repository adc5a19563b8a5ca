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
 * The parts are built in `bin/auth.ts` (`createAuthServer`), never here.
 */
import type { AuthPreferenceResource, Resource, ResourceKind, rpc } from '@warden/api';
import { isResourceKind, isWardenError, RESOURCE_KINDS, Verbs } from '@warden/api';
import type { z } from 'zod';
import { actorOf, checkVerb, hasVerb, type Identity } from '../access';
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

export class AuthServer {
  readonly #d: AuthDeps;
  readonly #p: AuthParts;
  readonly #audit: ReturnType<typeof auditWith>;

  constructor(deps: AuthDeps, parts: AuthParts) {
    this.#d = deps;
    this.#p = parts;
    this.#audit = auditWith(deps);
  }

  /** The trusted-device inventory (the device ceremonies build on it). */
  get devices(): DeviceInventory {
    return this.#p.inventory;
  }

  get clusterName(): string {
    return this.#d.clusterName;
  }

  // ---- The one permission check --------------------------------------------------------

  async #authorize(caller: Identity, kind: string, verb: string): Promise<void> {
    if (caller.admin) return;
    const roles = await findRoles(this.#d.services, caller.roles);
    try {
      checkVerb({ user: caller.user, roles, traits: caller.traits }, kind, verb);
    } catch (e) {
      if (isWardenError(e, 'WARDEN_ERR_ACCESS_DENIED')) {
        await this.#audit({
          type: 'access.denied',
          success: false,
          user: caller.user,
          addr: caller.clientAddr,
          protocol: 'api',
          resource: { kind, name: verb },
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
    const info = {
      user: caller.user,
      roles: await findRoles(this.#d.services, caller.roles),
      traits: caller.traits,
    };
    if (!RESOURCE_KINDS.some((k) => hasVerb(info, k, verb))) {
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
