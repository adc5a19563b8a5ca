/**
 * The auth service: signup with invite tokens, login (password + TOTP → SSH and X.509
 * certificates), users, resources, locks, certificate authorities and audit search — every
 * call checked (locks, then RBAC rules) and audited. The proxy's HTTPS API (`proxy/`) is a
 * thin layer over this class.
 *
 * Login, in order, failing closed at each step:
 *   1. rate limit (user and source address)  2. user and secrets (unknown users cost the same)
 *   3. password  4. TOTP (not a replay: the step is stored with compare-and-swap)
 *   5. locks on the user and their roles  6. logins and TTL from roles  7. certificates
 */
import { createHash, createPublicKey, X509Certificate } from 'node:crypto';
import {
  AUTH_PREFERENCE_NAME,
  type AuditEventInput,
  type AuthPreferenceResource,
  type DeviceResource,
  INVITE_TOKEN_TTL_MS,
  isWardenError,
  type LockResource,
  MAX_CERT_TTL_MS,
  parseAuthorizedKey,
  type Resource,
  type ResourceKind,
  type RoleResource,
  type rpc,
  type UserResource,
  validateResource,
  WardenError,
} from '@warden/api';
import type { z } from 'zod';
import { allowedLogins, checkVerb, findLockInForce, lockMessage, maxSessionTtl } from '../access';
import type { AuditLog } from '../audit';
import type { Backend } from '../backend';
import type { CertAuthorities } from '../ca';
import type { Clock } from '../clock';
import {
  checkEnrollTokenTtl,
  DEFAULT_ENROLL_TOKEN_TTL_MS,
  DeviceInventory,
  deviceLabel,
} from '../devicetrust';
import type { Logger } from '../log';
import type { RequestIdentity } from '../proxy/router';
import { type Services, withOrigin } from '../services';
import { LocalAuthStore } from './local-auth';
import {
  checkPasswordPolicy,
  hashPassword,
  needsRehash,
  verifyPassword,
  verifyPasswordForUnknownUser,
} from './password';
import { LoginRateLimiter } from './rate-limit';
import { generateTotpSecret, otpauthUri, verifyTotp } from './totp';

export interface AuthServerOptions {
  clock: Clock;
  backend: Backend;
  services: Services;
  cas: CertAuthorities;
  audit: AuditLog;
  logger: Logger;
  clusterName: string;
  /** host:port clients are told to use. */
  proxyPublicAddr: string;
  serverVersion: string;
  limiter?: LoginRateLimiter;
  /**
   * A live lock view (the proxy's `lockCache`): when given, `identify` — called for every API
   * request and tunnel — reads locks from it instead of listing them from the backend.
   * Login and certificate issuance always read the backend, so a fresh lock is never missed.
   */
  lockView?: { values(): readonly LockResource[] };
  /** The device inventory; made from the options above when absent. */
  devices?: DeviceInventory;
}

/** The admin identity: `warden start` writes it for `wctl` on the auth host. */
export const ADMIN_USER = '@admin';
const ADMIN_CERTS = '/admin_identities/';
const ADMIN_TTL_MS = 24 * 60 * 60 * 1000;

export interface Caller {
  identity: RequestIdentity;
  addr: string;
}

export class AuthServer {
  readonly #o: AuthServerOptions;
  readonly #local: LocalAuthStore;
  readonly #limiter: LoginRateLimiter;
  readonly #devices: DeviceInventory;

  constructor(o: AuthServerOptions) {
    this.#o = o;
    this.#local = new LocalAuthStore(o.backend, o.clock);
    this.#limiter = o.limiter ?? new LoginRateLimiter({ clock: o.clock });
    this.#devices =
      o.devices ??
      new DeviceInventory({
        services: o.services,
        backend: o.backend,
        clock: o.clock,
        audit: o.audit,
        logger: o.logger,
      });
  }

  /** The trusted-device inventory (the device ceremonies build on it). */
  get devices(): DeviceInventory {
    return this.#devices;
  }

  get clusterName(): string {
    return this.#o.clusterName;
  }

  #now(): number {
    return this.#o.clock.now();
  }

  async #audit(event: AuditEventInput): Promise<void> {
    try {
      await this.#o.audit.emit(event);
    } catch (e) {
      this.#o.logger.error({ err: e, type: event.type }, 'failed to write audit event');
    }
  }

  async authPreference(): Promise<AuthPreferenceResource> {
    return this.#o.services.authPreference.get();
  }

  async ping(): Promise<rpc.PingResponse> {
    const cap = await this.authPreference();
    return {
      cluster_name: this.#o.clusterName,
      server_version: this.#o.serverVersion,
      proxy_public_addr: this.#o.proxyPublicAddr,
      host_ca_pems: this.#o.cas.tlsCertPems('host'),
      auth: {
        type: cap.spec.type,
        second_factor: cap.spec.second_factor,
        device_trust_mode: cap.spec.device_trust?.mode ?? 'off',
      },
    };
  }

  // ---- Signup ------------------------------------------------------------------------

  async signupBegin(token: string): Promise<rpc.SignupBeginResponse> {
    const invite = await this.#local.getInvite(token);
    const cap = await this.authPreference();
    if (cap.spec.second_factor === 'off' || !invite.totp_secret) return { user: invite.user };
    return {
      user: invite.user,
      totp: {
        secret: invite.totp_secret,
        uri: otpauthUri({ secret: invite.totp_secret, account: invite.user, issuer: this.#o.clusterName }),
      },
    };
  }

  async signupFinish(req: z.infer<typeof rpc.SignupFinishRequest>, addr: string): Promise<{ user: string }> {
    const invite = await this.#local.getInvite(req.token);
    const fail = async (e: WardenError) => {
      await this.#audit({ type: 'user.signup', success: false, user: invite.user, addr, error: e.message });
      return e;
    };
    try {
      checkPasswordPolicy(req.password);
    } catch (e) {
      throw isWardenError(e) ? await fail(e) : e;
    }
    const cap = await this.authPreference();
    if (cap.spec.second_factor !== 'off' && !invite.totp_secret) {
      // Made while second factors were off; finishing it would leave a user who can never log in.
      throw await fail(
        new WardenError(
          'WARDEN_ERR_INVALID_TOKEN',
          'this invite was created while second factors were off and the cluster now requires one; ' +
            'ask an administrator for a new invite (`wctl users reset NAME`)',
        ),
      );
    }
    let step: number | undefined;
    if (cap.spec.second_factor !== 'off' && invite.totp_secret) {
      const r = verifyTotp(invite.totp_secret, (req.otp_code ?? '').trim(), { now: this.#now() });
      if (!r.ok) {
        throw await fail(
          new WardenError(
            'WARDEN_ERR_LOGIN_FAILED',
            'the OTP code is not valid: check that the authenticator app uses the secret just shown and that the clocks agree',
          ),
        );
      }
      step = r.step;
    }
    const user = await this.#o.services.users.find(invite.user);
    if (!user)
      throw await fail(new WardenError('WARDEN_ERR_NOT_FOUND', `user "${invite.user}" no longer exists`));
    // Spend the token first: of two racing signups, exactly one continues.
    await this.#local.consumeInvite(invite);
    await this.#local.putSecrets(invite.user, {
      password_hash: await hashPassword(req.password),
      ...(invite.totp_secret && cap.spec.second_factor !== 'off'
        ? { totp_secret: invite.totp_secret, totp_last_step: step }
        : {}),
    });
    await this.#audit({ type: 'user.signup', success: true, user: invite.user, addr });
    return { user: invite.user };
  }

  // ---- Login -------------------------------------------------------------------------

  async login(req: rpc.LoginRequest, addr: string): Promise<rpc.LoginResponse> {
    const name = req.user;
    // 1. Rate limit before any password work.
    try {
      this.#limiter.check(name, addr);
    } catch (e) {
      if (isWardenError(e))
        await this.#audit({ type: 'user.login', success: false, user: name, addr, error: e.message });
      throw e;
    }
    const failed = async (reason: string, err?: WardenError) => {
      this.#limiter.recordFailure(name, addr);
      await this.#audit({
        type: 'user.login',
        success: false,
        user: name,
        addr,
        error: err?.message ?? reason,
      });
      return err ?? new WardenError('WARDEN_ERR_LOGIN_FAILED', 'invalid user name, password or OTP code');
    };
    // 2. The user and their secrets.
    const user = await this.#o.services.users.find(name).catch(() => undefined);
    const secrets = user ? await this.#local.getSecrets(name) : undefined;
    if (!user || !secrets) {
      await verifyPasswordForUnknownUser(req.password);
      throw await failed(user ? 'user has not signed up' : 'unknown user');
    }
    // 3. Password.
    if (!(await verifyPassword(req.password, secrets.password_hash))) throw await failed('wrong password');
    // 4. Second factor.
    const cap = await this.authPreference();
    if (cap.spec.second_factor !== 'off') {
      if (!secrets.totp_secret) throw await failed('no second factor enrolled');
      const r = verifyTotp(secrets.totp_secret, (req.otp_code ?? '').trim(), {
        now: this.#now(),
        lastUsedStep: secrets.totp_last_step,
      });
      if (!r.ok) throw await failed(r.reason === 'replayed' ? 'OTP code already used' : 'wrong OTP code');
      try {
        await this.#local.markTotpStep(name, secrets, r.step, secrets.modRev);
      } catch {
        throw await failed('OTP code already used');
      }
    }
    this.#limiter.recordSuccess(name, addr);
    if (needsRehash(secrets.password_hash)) {
      const fresh = await this.#local.getSecrets(name);
      if (fresh)
        await this.#local.putSecrets(name, { ...fresh, password_hash: await hashPassword(req.password) });
    }
    // 5. Locks.
    const roles = await this.#roles(user.spec.roles);
    const lock = await this.#lockFor({ user: name, roles: user.spec.roles });
    if (lock) {
      const err = new WardenError('WARDEN_ERR_LOCKED', lockMessage(lock));
      await this.#audit({ type: 'user.login', success: false, user: name, addr, error: err.message });
      throw err;
    }
    // 6. Logins and TTL.
    const info = { user: name, roles, traits: user.spec.traits };
    const logins = allowedLogins(info);
    const ttlMs = Math.min(
      req.ttl_ms ?? MAX_CERT_TTL_MS,
      maxSessionTtl(roles) ?? MAX_CERT_TTL_MS,
      MAX_CERT_TTL_MS,
    );
    // 7. Certificates for the client's key.
    const publicKey = this.#clientKey(req);
    const issued = await this.#o.cas.issueUserCertificates({
      user: name,
      roles: user.spec.roles,
      logins,
      traits: user.spec.traits,
      publicKey,
      ttlMs,
      now: this.#now(),
    });
    await this.#audit({ type: 'user.login', success: true, user: name, addr, method: 'local' });
    await this.#audit({
      type: 'cert.create',
      success: true,
      user: name,
      addr,
      cert_type: 'user',
      roles: user.spec.roles,
      logins,
      expires: issued.notAfter.toISOString(),
    });
    return {
      user: name,
      cluster_name: this.#o.clusterName,
      roles: user.spec.roles,
      logins,
      ssh_cert: issued.sshCert,
      tls_cert: issued.tlsCert,
      user_ca_pems: this.#o.cas.tlsCertPems('user'),
      host_ca_pems: this.#o.cas.tlsCertPems('host'),
      host_ca_known_hosts: this.#o.cas.exportHostLine(this.#o.clusterName),
      expires: issued.notAfter.toISOString(),
    };
  }

  /** The client's key: the SSH and SPKI forms must be the same key. */
  #clientKey(req: rpc.LoginRequest) {
    let ssh: ReturnType<typeof parseAuthorizedKey>;
    let spki: ReturnType<typeof createPublicKey>;
    try {
      ssh = parseAuthorizedKey(req.ssh_public_key);
      spki = createPublicKey(req.tls_public_key);
    } catch {
      throw new WardenError('WARDEN_ERR_BAD_PARAMETER', 'invalid public key in the login request');
    }
    const der = (k: ReturnType<typeof createPublicKey>) => k.export({ type: 'spki', format: 'der' });
    if (!der(ssh.key).equals(der(spki))) {
      throw new WardenError(
        'WARDEN_ERR_BAD_PARAMETER',
        'the SSH and TLS public keys in the login request differ',
      );
    }
    return spki;
  }

  async #roles(names: readonly string[]): Promise<RoleResource[]> {
    const out: RoleResource[] = [];
    for (const n of names) {
      const role = await this.#o.services.roles.find(n);
      // A missing role grants nothing; it is not an error (it may have been deleted).
      if (role) out.push(role);
    }
    return out;
  }

  async #lockFor(
    targets: {
      user?: string;
      roles?: readonly string[];
      device?: string;
    },
    fromView = false,
  ): Promise<LockResource | undefined> {
    const locks =
      fromView && this.#o.lockView ? this.#o.lockView.values() : await this.#o.services.locks.list();
    return findLockInForce(
      locks,
      {
        user: targets.user,
        roles: [...(targets.roles ?? [])],
        ...(targets.device ? { device: targets.device } : {}),
      },
      this.#now(),
    );
  }

  // ---- Identity of API callers --------------------------------------------------------

  /** Turns a client certificate that TLS verified against the user CA into an identity. */
  async identify(certDer: Buffer): Promise<RequestIdentity> {
    // The CA parses the bytes itself: anything that is not a certificate is BAD_CERTIFICATE.
    const parsed = this.#o.cas.verifyUserTlsCert(certDer, this.#now());
    if (parsed.app)
      throw new WardenError(
        'WARDEN_ERR_BAD_CERTIFICATE',
        `this is an app certificate for "${parsed.app.app}": it works for that app only; use your \`wsh login\` certificate`,
      );
    const fingerprint = createHash('sha256').update(certDer).digest('hex');
    if (parsed.user === ADMIN_USER) {
      if (!(await this.#o.backend.get(ADMIN_CERTS + fingerprint))) {
        throw new WardenError(
          'WARDEN_ERR_BAD_CERTIFICATE',
          'this admin identity is not valid any more; restart warden',
        );
      }
      return { user: ADMIN_USER, roles: [], logins: [], traits: {}, admin: true };
    }
    // A lock on the device of a trusted-device certificate refuses it like a lock on the user.
    const lock = await this.#lockFor(
      { user: parsed.user, roles: parsed.roles, device: parsed.device?.deviceId },
      true,
    );
    if (lock) throw new WardenError('WARDEN_ERR_LOCKED', lockMessage(lock));
    const x509 = new X509Certificate(certDer);
    return {
      user: parsed.user,
      roles: parsed.roles,
      logins: parsed.logins,
      traits: parsed.traits,
      admin: false,
      ...(parsed.device ? { device: parsed.device } : {}),
      cert: {
        publicKeyDer: x509.publicKey.export({ type: 'spki', format: 'der' }),
        notAfter: new Date(Date.parse(x509.validTo)),
      },
    };
  }

  /** Issues the admin identity (a client key and certificate) and remembers its fingerprint. */
  async issueAdminIdentity(): Promise<{ certPem: string; keyPem: string; expires: Date }> {
    const { generateKeyPairSync } = await import('node:crypto');
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const issued = await this.#o.cas.issueUserCertificates({
      user: ADMIN_USER,
      roles: [],
      logins: [],
      traits: {},
      publicKey,
      ttlMs: ADMIN_TTL_MS,
      now: this.#now(),
    });
    const der = new X509Certificate(issued.tlsCert).raw;
    const fingerprint = createHash('sha256').update(der).digest('hex');
    await this.#o.backend.put(
      ADMIN_CERTS + fingerprint,
      JSON.stringify({ expires: issued.notAfter.toISOString() }),
      {
        ttlMs: ADMIN_TTL_MS,
      },
    );
    return {
      certPem: issued.tlsCert,
      keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
      expires: issued.notAfter,
    };
  }

  // ---- Permissions -------------------------------------------------------------------

  async #authorize(caller: Caller, kind: string, verb: string): Promise<void> {
    if (caller.identity.admin) return;
    const roles = await this.#roles(caller.identity.roles);
    try {
      checkVerb({ user: caller.identity.user, roles, traits: caller.identity.traits }, kind, verb);
    } catch (e) {
      if (isWardenError(e, 'WARDEN_ERR_ACCESS_DENIED')) {
        await this.#audit({
          type: 'access.denied',
          success: false,
          user: caller.identity.user,
          addr: caller.addr,
          protocol: 'api',
          resource: { kind, name: verb },
          error: e.message,
        });
      }
      throw e;
    }
  }

  // ---- Users ---------------------------------------------------------------------------

  #invite(user: string, token: string, expires: string): rpc.InviteResponse {
    const pin = this.#o.cas.caPin('host');
    return {
      user,
      token,
      expires,
      signup_command: `wsh signup --proxy=${this.#o.proxyPublicAddr} --token=${token} --ca-pin=${pin}`,
    };
  }

  async #newInvite(user: string): Promise<{ token: string; expires: string }> {
    const cap = await this.authPreference();
    const totp = cap.spec.second_factor === 'off' ? undefined : generateTotpSecret();
    return this.#local.createInvite(user, INVITE_TOKEN_TTL_MS, totp);
  }

  async addUser(caller: Caller, req: z.infer<typeof rpc.AddUserRequest>): Promise<rpc.InviteResponse> {
    await this.#authorize(caller, 'user', 'create');
    if (req.name.startsWith('@')) {
      throw new WardenError(
        'WARDEN_ERR_BAD_PARAMETER',
        `user names starting with "@" are reserved for Warden ("${req.name}")`,
      );
    }
    for (const r of req.roles) {
      if (!(await this.#o.services.roles.find(r))) {
        throw new WardenError(
          'WARDEN_ERR_NOT_FOUND',
          `role "${r}" does not exist; create it first or pick another`,
        );
      }
    }
    const user = validateResource({
      kind: 'user',
      version: 'v2',
      metadata: { name: req.name },
      spec: {
        roles: req.roles,
        traits: req.logins.length ? { logins: req.logins } : {},
        created_by: { user: caller.identity.user, time: new Date(this.#now()).toISOString() },
      },
    }) as UserResource;
    await this.#o.services.users.create(user);
    const { token, expires } = await this.#newInvite(req.name);
    await this.#audit({
      type: 'user.create',
      success: true,
      user: caller.identity.user,
      addr: caller.addr,
      name: req.name,
      roles: req.roles,
    });
    return this.#invite(req.name, token, expires);
  }

  async resetUser(caller: Caller, name: string): Promise<rpc.InviteResponse> {
    await this.#authorize(caller, 'user', 'update');
    await this.#o.services.users.get(name);
    await this.#local.deleteInvitesOf(name);
    await this.#local.deleteSecrets(name);
    const { token, expires } = await this.#newInvite(name);
    await this.#audit({
      type: 'user.password_reset',
      success: true,
      user: caller.identity.user,
      addr: caller.addr,
      name,
    });
    return this.#invite(name, token, expires);
  }

  // ---- Resources -----------------------------------------------------------------------

  #store(kind: ResourceKind) {
    const s = this.#o.services;
    switch (kind) {
      case 'user':
        return s.users;
      case 'role':
        return s.roles;
      case 'lock':
        return s.locks;
      case 'node':
        return s.nodes;
      case 'db':
        return s.dbs;
      case 'device':
        return s.devices;
      case 'app':
        return s.apps;
      default:
        return undefined;
    }
  }

  async listResources(caller: Caller, kind: ResourceKind): Promise<Resource[]> {
    await this.#authorize(caller, kind, 'list');
    if (kind === 'cert_authority') return this.#o.cas.publicViews();
    if (kind === 'cluster_auth_preference') return [await this.authPreference()];
    return (await this.#store(kind)?.list()) ?? [];
  }

  async getResource(caller: Caller, kind: ResourceKind, name: string): Promise<Resource> {
    await this.#authorize(caller, kind, 'read');
    if (kind === 'cert_authority') {
      const ca = this.#o.cas.publicViews().find((c) => c.metadata.name === name);
      if (!ca)
        throw new WardenError(
          'WARDEN_ERR_NOT_FOUND',
          `cert_authority "${name}" not found (types: ${this.#o.cas.types().join(', ')})`,
        );
      return ca;
    }
    if (kind === 'cluster_auth_preference') {
      if (name !== AUTH_PREFERENCE_NAME) {
        throw new WardenError(
          'WARDEN_ERR_NOT_FOUND',
          `cluster_auth_preference is named "${AUTH_PREFERENCE_NAME}"`,
        );
      }
      return this.authPreference();
    }
    // Devices by ID or asset tag (`wctl get devices/C00AA0AAAA0A`).
    if (kind === 'device') return this.#devices.find(name);
    const store = this.#store(kind)!;
    return store.get(name);
  }

  async putResource(
    caller: Caller,
    input: Record<string, unknown>,
    opts: { force: boolean; expectedRevision?: string },
  ): Promise<{ resource: Resource; outcome: 'created' | 'updated' }> {
    const res = validateResource(input);
    const kind = res.kind;
    if (kind === 'cert_authority') {
      throw new WardenError(
        'WARDEN_ERR_BAD_PARAMETER',
        'certificate authorities are managed by warden and cannot be created or edited',
      );
    }
    if (kind === 'cluster_auth_preference') {
      await this.#authorize(caller, kind, 'update');
      // Labelled `dynamic`: it holds until a start whose config file sets auth_service.authentication.
      const dynamic = withOrigin(res, 'dynamic');
      const stored = opts.expectedRevision
        ? await this.#o.services.authPreference.update({
            ...dynamic,
            metadata: { ...dynamic.metadata, revision: opts.expectedRevision },
          })
        : await this.#o.services.authPreference.upsert(dynamic);
      await this.#audit({
        type: 'cluster_auth_preference.updated',
        success: true,
        user: caller.identity.user,
        addr: caller.addr,
        second_factor: stored.spec.second_factor,
        device_trust_mode: stored.spec.device_trust?.mode,
      });
      return { resource: stored, outcome: 'updated' };
    }
    if (kind === 'device') return this.#putDevice(caller, res, opts);
    const store = this.#store(kind)! as unknown as {
      find(n: string): Promise<Resource | undefined>;
      create(r: Resource): Promise<Resource>;
      upsert(r: Resource): Promise<Resource>;
      update(r: Resource): Promise<Resource>;
    };
    const name = res.metadata.name;
    if (kind === 'user' && name.startsWith('@')) {
      throw new WardenError(
        'WARDEN_ERR_BAD_PARAMETER',
        `user names starting with "@" are reserved for Warden ("${name}")`,
      );
    }
    const existing = await store.find(name);
    // Authorize before saying anything about the resource (its existence included): the verb
    // checked first is the one asked for, never chosen by whether the resource exists, or a
    // denial would name "update" for existing names and "create" for others.
    //   create → create;  create -f → create, then update if it exists;  edit → update.
    if (opts.expectedRevision) {
      await this.#authorize(caller, kind, 'update');
    } else {
      await this.#authorize(caller, kind, 'create');
      if (existing && opts.force) await this.#authorize(caller, kind, 'update');
    }
    if (existing && !opts.force) {
      throw new WardenError(
        'WARDEN_ERR_ALREADY_EXISTS',
        `${kind} "${name}" already exists; use -f/--force to overwrite it`,
      );
    }
    let stored: Resource;
    if (opts.expectedRevision) {
      stored = await store.update({
        ...res,
        metadata: { ...res.metadata, revision: opts.expectedRevision },
      } as Resource);
    } else {
      stored = existing ? await store.upsert(res) : await store.create(res);
    }
    const outcome = existing ? 'updated' : 'created';
    await this.#audit(this.#changeEvent(caller, kind, name, outcome));
    return { resource: stored, outcome };
  }

  async deleteResource(caller: Caller, kind: ResourceKind, name: string): Promise<void> {
    await this.#authorize(caller, kind, 'delete');
    if (kind === 'cert_authority' || kind === 'cluster_auth_preference') {
      throw new WardenError('WARDEN_ERR_BAD_PARAMETER', `${kind} cannot be deleted`);
    }
    if (kind === 'device') {
      // By ID or asset tag; audited as device.delete.
      await this.#devices.remove(actorOf(caller), name);
      return;
    }
    await this.#store(kind)!.delete(name);
    if (kind === 'user') {
      await this.#local.deleteSecrets(name);
      await this.#local.deleteInvitesOf(name);
    }
    await this.#audit(this.#changeEvent(caller, kind, name, 'deleted'));
  }

  /** The audit event for a resource change: the kind's own type where the catalogue has one. */
  #changeEvent(
    caller: Caller,
    kind: ResourceKind,
    name: string,
    change: 'created' | 'updated' | 'deleted',
  ): AuditEventInput {
    const common = { success: true, user: caller.identity.user, addr: caller.addr, name } as const;
    if (kind === 'role') return { type: `role.${change}`, ...common };
    if (kind === 'user') {
      return change === 'deleted'
        ? { type: 'user.delete', ...common }
        : { type: change === 'created' ? 'user.create' : 'user.update', ...common };
    }
    if (kind === 'lock' && change !== 'updated') return { type: `lock.${change}`, ...common };
    const type =
      change === 'created' ? 'resource.create' : change === 'updated' ? 'resource.update' : 'resource.delete';
    return { type, ...common, kind };
  }

  // ---- Devices ---------------------------------------------------------------------------

  /** `wctl create|edit` of a device: the inventory's rules (not enrolled on create; edits may only unenroll). */
  async #putDevice(
    caller: Caller,
    res: DeviceResource,
    opts: { force: boolean; expectedRevision?: string },
  ): Promise<{ resource: Resource; outcome: 'created' | 'updated' }> {
    const existing = await this.#o.services.devices.find(res.metadata.name);
    if (opts.expectedRevision) {
      await this.#authorize(caller, 'device', 'update');
    } else {
      await this.#authorize(caller, 'device', 'create');
      if (existing && opts.force) await this.#authorize(caller, 'device', 'update');
    }
    if (existing && !opts.force) {
      throw new WardenError(
        'WARDEN_ERR_ALREADY_EXISTS',
        `device "${res.metadata.name}" already exists; use -f/--force to overwrite it`,
      );
    }
    const actor = actorOf(caller);
    if (opts.expectedRevision || existing) {
      return { resource: await this.#devices.update(actor, res, opts.expectedRevision), outcome: 'updated' };
    }
    return { resource: await this.#devices.create(actor, res), outcome: 'created' };
  }

  /** `wctl devices add`: registers a device, and with `enroll` makes its enrollment token. */
  async addDevice(
    caller: Caller,
    req: z.infer<typeof rpc.AddDeviceRequest>,
  ): Promise<z.infer<typeof rpc.AddDeviceResponse>> {
    await this.#authorize(caller, 'device', 'create');
    // A bad token lifetime is refused before the device is registered.
    if (req.enroll) checkEnrollTokenTtl(req.enroll_ttl_ms ?? DEFAULT_ENROLL_TOKEN_TTL_MS);
    const actor = actorOf(caller);
    const device = await this.#devices.add(actor, { osType: req.os_type, assetTag: req.asset_tag });
    if (!req.enroll) return { device };
    const t = await this.#devices.createEnrollToken(actor, device.metadata.name, req.enroll_ttl_ms);
    return { device, enroll_token: enrollTokenResponse(device, t) };
  }

  /** `wctl devices enroll`: a new enrollment token for a device (by ID or asset tag). */
  async createDeviceEnrollToken(
    caller: Caller,
    req: z.infer<typeof rpc.DeviceEnrollTokenRequest>,
  ): Promise<rpc.DeviceEnrollTokenResponse> {
    await this.#authorize(caller, 'device', 'create');
    const t = await this.#devices.createEnrollToken(actorOf(caller), req.device, req.ttl_ms);
    return enrollTokenResponse(t.device, t);
  }

  /** Why a lock on this device may have no effect: unknown or not-enrolled device, device trust off. */
  async #deviceLockWarnings(id: string): Promise<string[]> {
    const out: string[] = [];
    if ((await this.authPreference()).spec.device_trust?.mode === 'off') {
      out.push(
        'device trust is off in this cluster (cluster_auth_preference spec.device_trust.mode): ' +
          'the lock has no effect until device trust is enabled',
      );
    }
    const device = await this.#devices.get(id).catch((e: unknown) => {
      if (isWardenError(e, 'WARDEN_ERR_NOT_FOUND')) return undefined;
      throw e;
    });
    if (!device) {
      const tagged = (await this.#devices.list()).filter((d) => d.spec.asset_tag === id);
      out.push(
        tagged.length
          ? `"${id}" is an asset tag, not a device ID: the lock has no effect; lock the device ID instead ` +
              `(${tagged.map((d) => d.metadata.name).join(', ')}), or use \`wctl devices lock --asset-tag=${id}\``
          : `no device with ID "${id}" is in the inventory: the lock has no effect`,
      );
    } else if (device.spec.enroll_status !== 'enrolled') {
      out.push(`device ${deviceLabel(device)} is not enrolled: the lock has no effect until it is`);
    }
    return out;
  }

  // ---- Locks ---------------------------------------------------------------------------

  async createLock(
    caller: Caller,
    req: z.infer<typeof rpc.CreateLockRequest>,
  ): Promise<{ name: string; warnings?: string[] }> {
    await this.#authorize(caller, 'lock', 'create');
    if (req.ttl_ms && req.expires)
      throw new WardenError('WARDEN_ERR_BAD_PARAMETER', 'use --ttl or --expires, not both');
    const expires = req.ttl_ms ? new Date(this.#now() + req.ttl_ms).toISOString() : req.expires;
    if (expires && Date.parse(expires) <= this.#now()) {
      throw new WardenError('WARDEN_ERR_BAD_PARAMETER', `the lock would expire in the past (${expires})`);
    }
    const { randomUUID } = await import('node:crypto');
    const name = randomUUID();
    const target = Object.fromEntries(Object.entries(req.target).filter(([, v]) => v));
    const lock = validateResource({
      kind: 'lock',
      version: 'v2',
      metadata: { name },
      spec: {
        target,
        ...(req.message ? { message: req.message } : {}),
        ...(expires ? { expires } : {}),
        created_at: new Date(this.#now()).toISOString(),
        created_by: caller.identity.user,
      },
    }) as LockResource;
    await this.#o.services.locks.create(lock);
    await this.#audit({
      type: 'lock.created',
      success: true,
      user: caller.identity.user,
      addr: caller.addr,
      name,
      target,
      ...(req.message ? { message: req.message } : {}),
      ...(expires ? { expires } : {}),
    });
    const warnings = target.device ? await this.#deviceLockWarnings(target.device) : [];
    return warnings.length ? { name, warnings } : { name };
  }

  // ---- CAs and audit -------------------------------------------------------------------

  /**
   * Signs an SSH host certificate for a host key (agentless OpenSSH nodes: the cert goes to
   * `HostCertificate` in sshd_config). Admin identity or the `create` verb on `host_cert`.
   */
  async signHost(
    caller: Caller,
    req: z.infer<typeof rpc.SignHostRequest>,
  ): Promise<z.infer<typeof rpc.SignHostResponse>> {
    await this.#authorize(caller, 'host_cert', 'create');
    const ssh_cert = this.#o.cas.issueHostSshCert({
      publicKey: req.public_key,
      hostId: req.hostnames[0]!,
      hostnames: req.hostnames,
      ttlMs: req.ttl_ms,
    });
    await this.#audit({
      type: 'cert.create',
      success: true,
      user: caller.identity.user,
      addr: caller.addr,
      cert_type: 'host',
    });
    return { ssh_cert, host_ca_known_hosts: this.#o.cas.exportHostLine(this.#o.clusterName) };
  }

  /**
   * Signs a database's TLS server certificate with the db CA (`wctl auth sign --format=db`)
   * and returns the db CA as the CA for the database's `ssl_ca_file`: the db CA signs the
   * client certificates db_service presents (CN = db user), and db_service trusts it for
   * the database's server certificate. Admin identity or the `create` verb on `db_cert`.
   */
  async signDb(
    caller: Caller,
    req: z.infer<typeof rpc.SignDbRequest>,
  ): Promise<z.infer<typeof rpc.SignDbResponse>> {
    await this.#authorize(caller, 'db_cert', 'create');
    const { isIP } = await import('node:net');
    const issued = await this.#o.cas.issueDbServerCert({
      dnsNames: req.hostnames.filter((h) => !isIP(h)),
      ipAddresses: req.hostnames.filter((h) => isIP(h)),
      publicKey: req.public_key,
      ...(req.ttl_ms !== undefined ? { ttlMs: req.ttl_ms } : {}),
    });
    await this.#audit({
      type: 'cert.create',
      success: true,
      user: caller.identity.user,
      addr: caller.addr,
      cert_type: 'db',
      expires: issued.notAfter.toISOString(),
    });
    return {
      cert_pem: issued.certPem,
      client_ca_pems: this.#o.cas.tlsCertPems('db'),
      expires: issued.notAfter.toISOString(),
    };
  }

  exportAuthority(type: string): { type: string; line: string } {
    if (type === 'user') return { type, line: this.#o.cas.exportUserLine() };
    if (type === 'host') return { type, line: this.#o.cas.exportHostLine(this.#o.clusterName) };
    throw new WardenError('WARDEN_ERR_BAD_PARAMETER', `unknown CA type "${type}" (expected user or host)`);
  }

  async searchAudit(
    caller: Caller,
    q: { from?: string; to?: string; types?: string[]; user?: string; limit?: number },
  ): Promise<Record<string, unknown>[]> {
    await this.#authorize(caller, 'event', 'list');
    const events = await this.#o.audit.search({
      from: q.from,
      to: q.to,
      types: q.types?.length ? q.types : undefined,
      user: q.user,
      limit: q.limit ?? 500,
    });
    return events as unknown as Record<string, unknown>[];
  }
}

function actorOf(caller: Caller): { user: string; addr: string } {
  return { user: caller.identity.user, addr: caller.addr };
}

function enrollTokenResponse(
  device: DeviceResource,
  t: { token: string; expires: string },
): rpc.DeviceEnrollTokenResponse {
  return {
    device_id: device.metadata.name,
    asset_tag: device.spec.asset_tag,
    os_type: device.spec.os_type,
    token: t.token,
    expires: t.expires,
    enroll_command: `wsh device enroll --token=${t.token}`,
  };
}
