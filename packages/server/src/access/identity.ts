/**
 * Who is asking, for every protocol: `Identity` (what a verified certificate says, plus where
 * the connection comes from) and the lock targets it presents. The API, SSH through the proxy,
 * the SSH node, databases and the device ceremonies all carry this one type; roles are names
 * here and are resolved against the live role view by the access checker (`check.ts`).
 * Also the helpers over resolved roles: the logins a user may use and the longest certificate
 * lifetime their roles allow.
 * Internal to `access/`; the public surface is `access/index.ts`.
 */
import {
  type AuditEventInput,
  type AuditResource,
  type CertIdentity,
  type RoleResource,
  tryParseDuration,
} from '@warden/api';
import type { DeviceExtensions } from './device-trust';
import type { LockTargets } from './locks';
import { expandValues, type Traits } from './traits';

/** `human` for users who log in; `bot` for machine identities (`wctl bots add`, `warden bot start`). */
export type IdentityKind = 'human' | 'bot';

/**
 * An authenticated caller, from a certificate the CA verified (X.509 at the proxy, SSH at the
 * node). Plain data, so it can cross a process boundary (proxy → agent) unchanged.
 */
export interface Identity {
  user: string;
  kind: IdentityKind;
  /** Role names from the certificate (resolved by the checker; a role deleted since grants nothing). */
  roles: readonly string[];
  traits: Traits;
  /** The logins (SSH principals) the certificate carries. */
  logins: readonly string[];
  /** True only for the admin identity `warden start` writes for `wctl` on the auth host. */
  admin: boolean;
  /** The three verified device extensions, when the certificate was augmented by the ceremony. */
  device?: DeviceExtensions;
  /** When the certificate expires: sessions opened with it end then. */
  expires?: Date;
  /** The X.509 client certificate's key (SPKI DER) and expiry: device authentication augments it. */
  cert?: { publicKeyDer: Buffer; notAfter: Date };
  /** The client's network address (IP), for audit and rate limits. */
  clientAddr?: string;
}

/**
 * Who did it, for audit events and `created_by` stamps: the thin view of an `Identity` that
 * the implementations of admin changes need (`actorOf`), or a name for changes made by
 * `warden` itself.
 */
export interface Actor {
  user: string;
  /** The client's address, when the change came over the network. */
  addr?: string;
}

/** The actor of a change an identity makes. */
export function actorOf(identity: Pick<Identity, 'user' | 'clientAddr'>): Actor {
  return identity.clientAddr ? { user: identity.user, addr: identity.clientAddr } : { user: identity.user };
}

/**
 * An Identity from the fields a caller has; the rest default to "nothing granted"
 * (`kind: human`, no roles, traits or logins, not admin).
 *
 * @example
 *   const id = makeIdentity({ user: 'alice', roles: ['access'], logins: ['root'] });
 */
export function makeIdentity(fields: Partial<Omit<Identity, 'user'>> & Pick<Identity, 'user'>): Identity {
  const { device, expires, cert, clientAddr, ...rest } = fields;
  return {
    kind: 'human',
    roles: [],
    traits: {},
    logins: [],
    admin: false,
    ...rest,
    ...(device ? { device } : {}),
    ...(expires ? { expires } : cert ? { expires: cert.notAfter } : {}),
    ...(cert ? { cert } : {}),
    ...(clientAddr ? { clientAddr } : {}),
  };
}

/** The trusted device of an identity, as audit events carry it (the audit log adds os_type). */
export function auditDevice(identity: Pick<Identity, 'device'>): {
  device?: { id: string; asset_tag: string; credential_id: string };
} {
  const d = identity.device;
  return d ? { device: { id: d.deviceId, asset_tag: d.assetTag, credential_id: d.credentialId } } : {};
}

/**
 * The audit event of a route certificate request (`wsh app login`, `wsh db login`): a
 * `cert.create` naming the route once issued (`expires`), or an `access.denied` for the
 * resource with the checker's `error` (and the database user/name asked for, `asked`).
 *
 * @example
 *   await writeAuditEvent(audit, logger, routeCertAuditEvent(identity, { type: 'app', resource }, { expires }));
 */
export function routeCertAuditEvent(
  identity: Identity,
  route: { type: 'app' | 'db'; resource: AuditResource; asked?: { db_user?: string; db_name?: string } },
  outcome: { expires?: Date; error?: string },
): AuditEventInput {
  const who = {
    user: identity.user,
    ...(identity.clientAddr ? { addr: identity.clientAddr } : {}),
    ...auditDevice(identity),
    roles: [...identity.roles],
  };
  if (outcome.error !== undefined)
    return {
      type: 'access.denied',
      success: false,
      ...who,
      error: outcome.error,
      protocol: route.type,
      resource: route.resource,
      ...route.asked,
    };
  return {
    type: 'cert.create',
    success: true,
    ...who,
    cert_type: route.type,
    [route.type]: route.resource.name,
    ...(outcome.expires ? { expires: outcome.expires.toISOString() } : {}),
    device_extensions: identity.device !== undefined,
  };
}

/**
 * The part of a route certificate (app, database) that carries who the caller is: user, roles,
 * traits, `kind: bot` for a bot, the device extensions when present — and no SSH logins. The
 * caller adds the route (`app`, `db`).
 *
 * @example
 *   cas.issueDbCert({ identity: { ...routeCertIdentity(identity), db: route }, publicKey, notAfter });
 */
export function routeCertIdentity(identity: Identity): Omit<CertIdentity, 'app' | 'db'> {
  return {
    user: identity.user,
    roles: [...identity.roles],
    logins: [],
    traits: Object.fromEntries(Object.entries(identity.traits).map(([k, v]) => [k, [...v]])),
    // A bot's route certificate says bot too (`required-for-humans` exempts it, audit says so).
    ...(identity.kind === 'bot' ? { kind: 'bot' as const } : {}),
    ...(identity.device ? { device: { ...identity.device } } : {}),
  };
}

/**
 * The lock targets an identity presents: its user, every role name of its certificate (a lock
 * on a role applies even once the role is deleted), its device; `more` adds what the access
 * touches (a login, a node by ID and hostname — see `nodeLockTargets`).
 *
 * @example
 *   findLockInForce(locks, lockTargets(identity, { login: 'root', ...nodeLockTargets(node) }), now);
 */
export function lockTargets(
  identity: Identity,
  more: Omit<LockTargets, 'user' | 'roles' | 'device'> = {},
): LockTargets {
  return {
    user: identity.user,
    roles: identity.roles,
    ...(identity.device?.deviceId ? { device: identity.device.deviceId } : {}),
    ...more,
  };
}

/** A node's lock targets: its ID and its hostname, so a lock naming either matches. */
export function nodeLockTargets(node: { id: string; hostname: string }): Pick<LockTargets, 'node'> {
  return { node: node.id === node.hostname ? [node.id] : [node.id, node.hostname] };
}

/** A user with their roles resolved to resources (what RBAC reads). */
export interface AccessInfo {
  user: string;
  roles: readonly RoleResource[];
  traits: Traits;
}

const WILDCARD = '*';

/** Role names, for messages: `access, editor` (or `none`). */
export function roleNames(info: Pick<AccessInfo, 'roles'>): string {
  return info.roles.length === 0 ? 'none' : info.roles.map((r) => r.metadata.name).join(', ');
}

/** Logins denied by any role (after trait expansion); includes `'*'` when a role denies all. */
export function deniedLogins(info: AccessInfo): Set<string> {
  const out = new Set<string>();
  for (const role of info.roles) for (const l of expandValues(role.spec.deny.logins, info.traits)) out.add(l);
  return out;
}

/**
 * The logins the user may use: the union of every role's `allow.logins` with
 * `{{internal.X}}`/`{{external.X}}` expanded from traits, minus every `deny.logins`
 * (`'*'` there denies all). `'*'` in allow grants nothing (no wildcard logins).
 *
 * @example
 *   allowedLogins({ user: 'alice', roles: [access], traits: { logins: ['alice'] } }); // ['alice']
 */
export function allowedLogins(info: AccessInfo): string[] {
  const denied = deniedLogins(info);
  if (denied.has(WILDCARD)) return [];
  const out = new Set<string>();
  for (const role of info.roles) {
    for (const login of expandValues(role.spec.allow.logins, info.traits)) {
      if (login !== WILDCARD && !denied.has(login)) out.add(login);
    }
  }
  return [...out];
}

/**
 * The shortest `max_session_ttl` among the roles, in milliseconds; undefined when no role
 * sets one (the global 12 h certificate cap applies either way, in the CA).
 */
export function maxSessionTtl(roles: readonly RoleResource[]): number | undefined {
  let min: number | undefined;
  for (const role of roles) {
    const text = role.spec.options.max_session_ttl;
    if (text === undefined) continue;
    const ms = tryParseDuration(text);
    // A stored value we cannot read must not lengthen sessions: treat it as the shortest.
    const value = ms ?? 0;
    min = min === undefined ? value : Math.min(min, value);
  }
  return min;
}

/**
 * What the user's SSH certificates permit beyond a PTY and port forwarding: agent and X11
 * forwarding when any role's options set `permit_agent_forwarding` / `permit_x11_forwarding`
 * (as the seed product's `forward_agent`; default false).
 */
export function sshPermits(roles: readonly RoleResource[]): {
  agentForwarding: boolean;
  x11Forwarding: boolean;
} {
  return {
    agentForwarding: roles.some((r) => r.spec.options.permit_agent_forwarding === true),
    x11Forwarding: roles.some((r) => r.spec.options.permit_x11_forwarding === true),
  };
}
