/**
 * One typed store per resource kind over the Backend: values are the api schema's JSON,
 * validated on every read and write (except `updateChecked`'s, see there); `metadata.revision` is the item's modRev, so `update`
 * is a compare-and-swap; `metadata.expires` (and a lock's `spec.expires`) become the
 * item's TTL. Internal to `services/`; the public surface is `services/index.ts`.
 */
import {
  isWardenError,
  nameSchema,
  type ResourceByKind,
  type ResourceKind,
  validateResourceOfKind,
  WardenError,
} from '@warden/api';
import type { Backend, Item, TxnOp, WriteOptions } from '../backend';
import type { Clock } from '../clock';

export interface ResourceServiceOptions<K extends ResourceKind> {
  backend: Backend;
  clock: Clock;
  kind: K;
  /** Key prefix ending in `/`; a resource lives at prefix + name. */
  prefix: string;
  /** The expiry time (RFC 3339) of a resource, if any; default `metadata.expires`. */
  expiresOf?: (resource: ResourceByKind[K]) => string | undefined;
  /** Fills server-set fields before a write (e.g. a lock's `created_at`). */
  prepare?: (resource: ResourceByKind[K], now: number) => ResourceByKind[K];
}

/**
 * A typed store for one kind.
 *
 * @example
 *   const roles = new ResourceService({ backend, clock, kind: 'role', prefix: '/roles/' });
 *   const dev = await roles.create(devRole);
 *   await roles.update({ ...dev, spec: { ...dev.spec, options: { max_session_ttl: '8h' } } });
 */
export class ResourceService<K extends ResourceKind> {
  readonly kind: K;
  readonly prefix: string;
  readonly #backend: Backend;
  readonly #clock: Clock;
  readonly #expiresOf: (resource: ResourceByKind[K]) => string | undefined;
  readonly #prepare: ((resource: ResourceByKind[K], now: number) => ResourceByKind[K]) | undefined;

  constructor(opts: ResourceServiceOptions<K>) {
    if (!opts.prefix.startsWith('/') || !opts.prefix.endsWith('/')) {
      throw new WardenError(
        'WARDEN_ERR_BAD_PARAMETER',
        `prefix "${opts.prefix}" must start and end with "/"`,
      );
    }
    this.kind = opts.kind;
    this.prefix = opts.prefix;
    this.#backend = opts.backend;
    this.#clock = opts.clock;
    this.#expiresOf = opts.expiresOf ?? ((r) => r.metadata.expires);
    this.#prepare = opts.prepare;
  }

  /** The backend key of `name`; BAD_PARAMETER for names that are not valid resource names. */
  keyOf(name: string): string {
    if (!nameSchema.safeParse(name).success) {
      throw new WardenError(
        'WARDEN_ERR_BAD_PARAMETER',
        `${JSON.stringify(name)} is not a valid ${this.kind} name`,
      );
    }
    return this.prefix + name;
  }

  /**
   * Decodes a backend item of this kind, with `metadata.revision` set to its modRev.
   * A stored value that no longer validates is WARDEN_ERR_INTERNAL (never returned half-checked).
   */
  decode(item: Item): ResourceByKind[K] {
    let value: unknown;
    try {
      value = JSON.parse(item.value);
    } catch {
      throw new WardenError('WARDEN_ERR_INTERNAL', `stored ${this.kind} at "${item.key}" is not valid JSON`);
    }
    let resource: ResourceByKind[K];
    try {
      resource = validateResourceOfKind(this.kind, value);
    } catch (e) {
      throw new WardenError(
        'WARDEN_ERR_INTERNAL',
        `stored ${this.kind} at "${item.key}" is invalid: ${(e as Error).message}`,
      );
    }
    if (this.prefix + resource.metadata.name !== item.key) {
      throw new WardenError(
        'WARDEN_ERR_INTERNAL',
        `stored ${this.kind} at "${item.key}" is named "${resource.metadata.name}"`,
      );
    }
    resource.metadata.revision = String(item.modRev);
    return resource;
  }

  /** The resource, or undefined. */
  async find(name: string): Promise<ResourceByKind[K] | undefined> {
    const item = await this.#backend.get(this.keyOf(name));
    return item && this.decode(item);
  }

  /** The resource, or NOT_FOUND. */
  async get(name: string): Promise<ResourceByKind[K]> {
    const found = await this.find(name);
    if (!found) throw this.#notFound(name);
    return found;
  }

  /** Every resource of this kind, in name order. */
  async list(): Promise<ResourceByKind[K][]> {
    const { items } = await this.#backend.range(this.prefix);
    return items.map((item) => this.decode(item));
  }

  /**
   * Creates the resource; ALREADY_EXISTS if one with its name exists. `also`: other keys'
   * writes in the same transaction (`Backend.txn`), all or none; their failures are thrown
   * as the backend gives them (`details.key` names the key).
   */
  async create(resource: ResourceByKind[K], also?: readonly TxnOp[]): Promise<ResourceByKind[K]> {
    const { key, value, opts, name } = this.#encode(resource);
    try {
      if (also?.length) {
        const [item] = await this.#backend.txn([
          { type: 'create', key, value, ...(opts ? { opts } : {}) },
          ...also,
        ]);
        return this.decode(item as Item);
      }
      return this.decode(await this.#backend.create(key, value, opts));
    } catch (e) {
      if (isWardenError(e, 'WARDEN_ERR_ALREADY_EXISTS') && keyOfError(e, key) === key) {
        throw new WardenError('WARDEN_ERR_ALREADY_EXISTS', `${this.kind} "${name}" already exists`);
      }
      throw e;
    }
  }

  /** Creates or overwrites the resource, whatever its revision. */
  async upsert(resource: ResourceByKind[K]): Promise<ResourceByKind[K]> {
    const { key, value, opts } = this.#encode(resource);
    return this.decode(await this.#backend.put(key, value, opts));
  }

  /**
   * Overwrites the resource only if it is unchanged since it was read: `metadata.revision`
   * must be the stored revision (COMPARE_FAILED otherwise, NOT_FOUND if it is gone). `also`:
   * as `create`'s.
   */
  async update(resource: ResourceByKind[K], also?: readonly TxnOp[]): Promise<ResourceByKind[K]> {
    const { key, value, opts, name } = this.#encode(resource);
    return this.decode(
      await this.#swap(key, this.#revision(name, resource.metadata.revision), value, opts, name, also),
    );
  }

  /**
   * `update` of a resource the caller made from one this service decoded (so valid), changing
   * only fields whose new values it checked itself (the device inventory appending collected
   * data it parsed, at every device authentication): the whole-resource schema pass is skipped
   * on the way in and the written value is not decoded again (a device with its collected data
   * costs ~50 µs per pass). Returns the resource as stored (its `metadata.revision` the new one),
   * and the stored item, so that the caller can recognise that value when it reads it again.
   */
  async updateChecked(
    resource: ResourceByKind[K],
    also?: readonly TxnOp[],
  ): Promise<{ resource: ResourceByKind[K]; item: Item }> {
    const { key, value, opts, name } = this.#encode(resource, true);
    const item = await this.#swap(
      key,
      this.#revision(name, resource.metadata.revision),
      value,
      opts,
      name,
      also,
    );
    const written = { ...resource, metadata: { ...resource.metadata, revision: String(item.modRev) } };
    return { resource: written, item };
  }

  async #swap(
    key: string,
    rev: number,
    value: string,
    opts: WriteOptions | undefined,
    name: string,
    also: readonly TxnOp[] | undefined,
  ): Promise<Item> {
    try {
      if (also?.length) {
        const op: TxnOp = { type: 'cas', key, expectedModRev: rev, value, ...(opts ? { opts } : {}) };
        return (await this.#backend.txn([op, ...also]))[0] as Item;
      }
      return await this.#backend.compareAndSwap(key, rev, value, opts);
    } catch (e) {
      if (isWardenError(e) && keyOfError(e, key) !== key) throw e;
      if (isWardenError(e, 'WARDEN_ERR_NOT_FOUND')) throw this.#notFound(name);
      if (isWardenError(e, 'WARDEN_ERR_COMPARE_FAILED')) throw this.#changed(name);
      throw e;
    }
  }

  /**
   * Deletes the resource; NOT_FOUND if it does not exist. With `expectedRevision` (a
   * `metadata.revision` as read or written), only if unchanged since: COMPARE_FAILED otherwise.
   * `also`: as `create`'s (they are written even when the resource was already gone).
   */
  async delete(name: string, expectedRevision?: string, also?: readonly TxnOp[]): Promise<void> {
    const opts =
      expectedRevision === undefined ? undefined : { expectedModRev: this.#revision(name, expectedRevision) };
    const key = this.keyOf(name);
    try {
      const deleted = also?.length
        ? (await this.#backend.txn([{ type: 'delete', key, ...opts }, ...also]))[0]
        : await this.#backend.delete(key, opts);
      if (!deleted) throw this.#notFound(name);
    } catch (e) {
      if (isWardenError(e) && keyOfError(e, key) !== key) throw e;
      if (isWardenError(e, 'WARDEN_ERR_COMPARE_FAILED')) throw this.#changed(name);
      throw e;
    }
  }

  /**
   * Takes back a write of ours that must not stand (the audit log refused to record it):
   * `previous` is what was stored before it (undefined: nothing), `written` what it stored
   * (undefined: it was a removal). Only while the resource is still what we wrote: a
   * concurrent writer's newer version is neither deleted nor overwritten (COMPARE_FAILED, or
   * ALREADY_EXISTS when a removed resource was created again meanwhile; it stands).
   *
   * @example
   *   const stored = await roles.create(role);
   *   await undoUnless(logger, audit(…), () => roles.undo({ written: stored }), 'role create');
   */
  async undo(change: { written?: ResourceByKind[K]; previous?: ResourceByKind[K] }): Promise<void> {
    const { written, previous } = change;
    if (!written) {
      if (previous) await this.create(previous);
    } else if (!previous) {
      await this.delete(written.metadata.name, written.metadata.revision);
    } else {
      await this.update({
        ...previous,
        metadata: { ...previous.metadata, revision: written.metadata.revision },
      });
    }
  }

  /** A revision string as the backend's modRev; BAD_PARAMETER when it is not one. */
  #revision(name: string, revision: string | undefined): number {
    const rev = revision === undefined ? Number.NaN : Number(revision);
    if (!Number.isSafeInteger(rev) || rev < 0 || String(rev) !== revision) {
      throw new WardenError(
        'WARDEN_ERR_BAD_PARAMETER',
        `${this.kind} "${name}": a conditional write needs the metadata.revision it was read at`,
      );
    }
    return rev;
  }

  #changed(name: string): WardenError {
    return new WardenError(
      'WARDEN_ERR_COMPARE_FAILED',
      `${this.kind} "${name}" changed since it was read; get it again and retry`,
    );
  }

  #notFound(name: string): WardenError {
    return new WardenError('WARDEN_ERR_NOT_FOUND', `${this.kind} "${name}" not found`);
  }

  /** The item to write for `input`; `checked`: the caller vouches that it is valid (`updateChecked`). */
  #encode(
    input: ResourceByKind[K],
    checked = false,
  ): {
    key: string;
    value: string;
    opts: WriteOptions | undefined;
    name: string;
  } {
    const now = this.#clock.now();
    let resource = checked ? input : validateResourceOfKind(this.kind, input);
    if (this.#prepare) resource = validateResourceOfKind(this.kind, this.#prepare(resource, now));
    const name = resource.metadata.name;
    const { revision: _revision, ...metadata } = resource.metadata;
    const value = JSON.stringify({ ...resource, metadata });
    const expires = this.#expiresOf(resource);
    let opts: WriteOptions | undefined;
    if (expires !== undefined) {
      const ttlMs = Date.parse(expires) - now;
      if (!(ttlMs > 0)) {
        throw new WardenError(
          'WARDEN_ERR_BAD_PARAMETER',
          `${this.kind} "${name}" expires in the past (${expires})`,
        );
      }
      opts = { ttlMs };
    }
    return { key: this.keyOf(name), value, opts, name };
  }
}

/** The key a backend error names (`details.key`); `fallback` for errors that name none. */
function keyOfError(
  e: { details?: Readonly<Record<string, unknown>> | undefined },
  fallback: string,
): string {
  const key = e.details?.key;
  return typeof key === 'string' ? key : fallback;
}
