/**
 * Generic resource CRUD for `wctl get|create|edit|rm`: validation, the store of each kind,
 * and the audit event of each change. Kinds with rules of their own are handed on: locks to
 * `LockService` (the only path that writes a lock), devices to `DeviceAdmin`, user secrets
 * to `UserAdmin`; certificate authorities are read-only views of `CertAuthorities`, and the
 * cluster auth preference is a singleton. Permissions are checked by the caller
 * (`AuthServer`), not here.
 * Internal to `auth/`; the public surface is `auth/index.ts`.
 */
import {
  AUTH_PREFERENCE_NAME,
  type AuditEventInput,
  type AuthPreferenceResource,
  type LockResource,
  type Resource,
  type ResourceKind,
  validateResource,
  WardenError,
} from '@warden/api';
import type { Actor } from '../access';
import { undoUnless } from '../audit';
import { withOrigin } from '../services';
import { type AuthDeps, auditWith } from './deps';
import type { DeviceAdmin } from './devices';
import type { LockService } from './locks';
import { checkUserName, type UserAdmin } from './users';

export interface ResourceAdminOptions extends AuthDeps {
  locks: LockService;
  devices: DeviceAdmin;
  users: UserAdmin;
  /** The config file sets `auth_service.authentication`: it replaces the preference at every start. */
  authenticationInFile?: boolean;
}

export interface PutOptions {
  force: boolean;
  expectedRevision?: string;
}

export interface PutResult {
  resource: Resource;
  outcome: 'created' | 'updated';
  warnings?: string[];
}

type AnyStore = {
  list(): Promise<Resource[]>;
  get(n: string): Promise<Resource>;
  find(n: string): Promise<Resource | undefined>;
  create(r: Resource): Promise<Resource>;
  upsert(r: Resource): Promise<Resource>;
  update(r: Resource): Promise<Resource>;
  delete(n: string): Promise<unknown>;
  undo(change: { written?: Resource; previous?: Resource }): Promise<void>;
};

/** The store of each kind that is kept as plain resources (the others have no store here). */
const STORE_OF_KIND: Partial<
  Record<ResourceKind, 'users' | 'roles' | 'locks' | 'nodes' | 'dbs' | 'devices' | 'apps' | 'kubeClusters'>
> = {
  user: 'users',
  role: 'roles',
  lock: 'locks',
  node: 'nodes',
  db: 'dbs',
  device: 'devices',
  app: 'apps',
  kube_cluster: 'kubeClusters',
};

export class ResourceAdmin {
  readonly #o: ResourceAdminOptions;
  readonly #audit: ReturnType<typeof auditWith>;

  constructor(o: ResourceAdminOptions) {
    this.#o = o;
    this.#audit = auditWith(o);
  }

  #store(kind: ResourceKind): AnyStore | undefined {
    const field = STORE_OF_KIND[kind];
    return field && (this.#o.services[field] as unknown as AnyStore);
  }

  /**
   * Validates a document for `put` and refuses what no permission allows (certificate
   * authorities, reserved user names) — before anything is said about stored resources.
   */
  validate(input: Record<string, unknown>): Resource {
    const res = validateResource(input);
    if (res.kind === 'cert_authority') {
      throw new WardenError(
        'WARDEN_ERR_BAD_PARAMETER',
        'certificate authorities are managed by warden and cannot be created or edited',
      );
    }
    if (res.kind === 'user') checkUserName(res.metadata.name);
    return res;
  }

  /** The stored resource of this kind and name, if any (devices by ID). */
  async find(kind: ResourceKind, name: string): Promise<Resource | undefined> {
    return this.#store(kind)?.find(name);
  }

  async list(kind: ResourceKind): Promise<Resource[]> {
    if (kind === 'cert_authority') return this.#o.cas.publicViews();
    if (kind === 'cluster_auth_preference') return [await this.#o.services.authPreference.get()];
    return (await this.#store(kind)?.list()) ?? [];
  }

  async get(kind: ResourceKind, name: string): Promise<Resource> {
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
      return this.#o.services.authPreference.get();
    }
    if (kind === 'device') return this.#o.devices.get(name);
    return this.#store(kind)!.get(name);
  }

  /**
   * What a change of the cluster auth preference does that its author may not expect (issue
   * 15 item 17): EK certificate CAs it drops, and a config file that will replace it at the
   * next start (the file wins whenever it sets `auth_service.authentication`).
   */
  #preferenceWarnings(current: AuthPreferenceResource, next: AuthPreferenceResource): string[] {
    const out: string[] = [];
    const had = (current.spec.device_trust?.ekcert_allowed_cas ?? []).map((pem) => pem.trim());
    const keeps = new Set((next.spec.device_trust?.ekcert_allowed_cas ?? []).map((pem) => pem.trim()));
    const dropped = had.filter((pem) => !keeps.has(pem)).length;
    if (dropped > 0) {
      out.push(
        `this change removes ${dropped} of the ${had.length} CA certificate(s) in ` +
          'spec.device_trust.ekcert_allowed_cas; EK certificates from them are no longer trusted' +
          (keeps.size === 0 ? ' and enrollment no longer requires an EK certificate' : ''),
      );
    }
    if (this.#o.authenticationInFile) {
      out.push(
        'the config file sets auth_service.authentication: this change lasts until warden restarts, ' +
          'when the file replaces it; edit the file to keep it',
      );
    }
    return out;
  }

  /** Stores a validated document; `existing` is what `find` returned for it. */
  async put(
    actor: Actor,
    res: Resource,
    opts: PutOptions,
    existing: Resource | undefined,
  ): Promise<PutResult> {
    const kind = res.kind;
    if (kind === 'cluster_auth_preference') {
      // Labelled `dynamic`: it holds until a start whose config file sets auth_service.authentication.
      const dynamic = withOrigin(res, 'dynamic');
      const prefs = this.#o.services.authPreference;
      const previous = await prefs.get();
      const warnings = this.#preferenceWarnings(previous, dynamic);
      const stored = opts.expectedRevision
        ? await prefs.update({
            ...dynamic,
            metadata: { ...dynamic.metadata, revision: opts.expectedRevision },
          })
        : await prefs.upsert(dynamic);
      await undoUnless(
        this.#o.logger,
        this.#audit({
          type: 'cluster_auth_preference.updated',
          success: true,
          user: actor.user,
          addr: actor.addr,
          second_factor: stored.spec.second_factor,
          device_trust_mode: stored.spec.device_trust?.mode,
        }),
        // The default (no revision) was never stored: undoing means removing ours again.
        () =>
          prefs.store.undo({ written: stored, previous: previous.metadata.revision ? previous : undefined }),
        'cluster_auth_preference',
      );
      return warnings.length
        ? { resource: stored, outcome: 'updated', warnings }
        : { resource: stored, outcome: 'updated' };
    }
    if (kind === 'lock') {
      const w = await this.#o.locks.put(actor, res, opts, existing as LockResource | undefined);
      return w.warnings.length ? w : { resource: w.resource, outcome: w.outcome };
    }
    if (kind === 'device') return this.#o.devices.put(actor, res, opts, existing !== undefined);
    const store = this.#store(kind)!;
    const name = res.metadata.name;
    if (heartbeatOwned(existing)) {
      throw new WardenError(
        'WARDEN_ERR_ACCESS_DENIED',
        `${kind} "${name}" is registered by its agent's heartbeat, which decides its address; ` +
          "change the agent's configuration instead (or delete it once the agent is gone)",
      );
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
    // Not unaudited (issue 15 item 5): a change the audit log refuses is undone.
    await undoUnless(
      this.#o.logger,
      this.#audit(changeEvent(actor, kind, name, outcome, resourceAddress(stored))),
      () => store.undo({ written: stored, previous: existing }),
      `${kind} ${outcome}`,
    );
    return { resource: stored, outcome };
  }

  async remove(actor: Actor, kind: ResourceKind, name: string): Promise<void> {
    if (kind === 'cert_authority' || kind === 'cluster_auth_preference') {
      throw new WardenError('WARDEN_ERR_BAD_PARAMETER', `${kind} cannot be deleted`);
    }
    if (kind === 'device') return this.#o.devices.remove(actor, name);
    if (kind === 'lock') return this.#o.locks.remove(actor, name);
    const store = this.#store(kind)!;
    const removed = await store.find(name);
    await store.delete(name);
    // A removal the audit log refuses is undone; a user's secrets go only once it is recorded.
    await undoUnless(
      this.#o.logger,
      this.#audit(changeEvent(actor, kind, name, 'deleted')),
      () => store.undo({ previous: removed }),
      `${kind} removal`,
    );
    if (kind === 'user') await this.#o.users.forget(name);
  }
}

/**
 * The address a resource points Warden at — `node` spec.addr, `db` and `app` spec.uri — or
 * undefined for kinds without one. Setting it by hand takes the `set_address` verb.
 */
export function resourceAddress(res: Resource | undefined): string | undefined {
  if (res?.kind === 'node') return res.spec.addr;
  if (res?.kind === 'db' || res?.kind === 'app') return res.spec.uri;
  return undefined;
}

/**
 * A resource an agent registers by heartbeat (it carries the heartbeat's `metadata.expires`):
 * its address is the agent's to say, so a hand-made document never replaces it.
 */
function heartbeatOwned(existing: Resource | undefined): boolean {
  return resourceAddress(existing) !== undefined && existing?.metadata.expires !== undefined;
}

/** The audit event for a resource change: the kind's own type where the catalogue has one. */
function changeEvent(
  actor: Actor,
  kind: ResourceKind,
  name: string,
  change: 'created' | 'updated' | 'deleted',
  targetAddr?: string,
): AuditEventInput {
  const common = {
    success: true,
    user: actor.user,
    addr: actor.addr,
    name,
    ...(targetAddr !== undefined ? { target_addr: targetAddr } : {}),
  } as const;
  if (kind === 'role') return { type: `role.${change}`, ...common };
  if (kind === 'user') {
    return change === 'deleted'
      ? { type: 'user.delete', ...common }
      : { type: change === 'created' ? 'user.create' : 'user.update', ...common };
  }
  const type =
    change === 'created' ? 'resource.create' : change === 'updated' ? 'resource.update' : 'resource.delete';
  return { type, ...common, kind };
}
