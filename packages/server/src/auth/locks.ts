/**
 * Locks: the only path that creates or changes a lock, whatever the entry point
 * (`wctl lock` → `create`; `wctl create [-f] lock.yaml` and `wctl edit lock/ID` → `put`).
 * Every written lock has had its expiry checked (not in the past) and carries the server's
 * `created_at`/`created_by` (client-supplied values are replaced on create and kept from the
 * stored lock on update); a device lock that cannot take effect comes back with warnings.
 * Permissions are checked by the caller (`AuthServer`), not here.
 * Internal to `auth/`; the public surface is `auth/index.ts`.
 */
import { randomUUID } from 'node:crypto';
import {
  type AuditEventInput,
  isWardenError,
  type LockResource,
  rpc,
  validateResource,
  WardenError,
  web,
} from '@warden/api';
import type { z } from 'zod';
import type { Actor } from '../access';
import { prepareAuditEvent, undoUnless } from '../audit';
import { type DeviceInventory, deviceLabel } from '../devicetrust';
import { type AuthDeps, auditWith } from './deps';

export interface LockServiceOptions extends AuthDeps {
  inventory: DeviceInventory;
}

export interface LockWrite {
  resource: LockResource;
  outcome: 'created' | 'updated';
  /** Why the lock may have no effect (e.g. a device lock while device trust is off). */
  warnings: string[];
}

const PRIMING_TARGET = { user: 'u', role: 'r', login: 'l', node: 'n', device: 'd' };

/**
 * The first lock of a process used to pay zod's compilation of every schema on its path (the
 * request, the stored lock, the `lock.created` audit event): ~240 ms of replica A's wall time
 * in `bench:locks` against ~50 ms for later locks. Real admins lock rarely, so every real lock
 * was such a first lock. A new `LockService` checks one full sample of each once per process
 * (nothing is stored or audited), so the compilation happens at start-up.
 */
export const LOCK_PRIMING_SAMPLES: ReadonlyArray<{ what: string; check: () => unknown }> = [
  {
    what: 'rpc.CreateLockRequest',
    check: () =>
      rpc.CreateLockRequest.parse({ target: PRIMING_TARGET, message: 'priming', ttl_ms: 1, expires: 'x' }),
  },
  {
    what: 'web.CreateLockRequest',
    check: () => web.CreateLockRequest.parse({ target: PRIMING_TARGET, message: 'priming', ttl_ms: 1 }),
  },
  {
    what: 'lock resource',
    check: () =>
      validateResource({
        kind: 'lock',
        version: 'v2',
        metadata: { name: '00000000-0000-4000-8000-000000000000' },
        spec: {
          target: PRIMING_TARGET,
          message: 'priming',
          expires: '2000-01-01T00:00:00.000Z',
          created_at: '2000-01-01T00:00:00.000Z',
          created_by: 'u',
        },
      }),
  },
  ...(['lock.created', 'lock.deleted', 'resource.update'] as const).map((type) => ({
    what: `${type} audit event`,
    check: () => {
      const common = { success: true, user: 'u', addr: '127.0.0.1', name: 'n' } as const;
      const input: AuditEventInput =
        type === 'lock.created'
          ? {
              type,
              ...common,
              target: PRIMING_TARGET,
              message: 'priming',
              expires: '2000-01-01T00:00:00.000Z',
            }
          : type === 'resource.update'
            ? { type, ...common, kind: 'lock' }
            : { type, ...common };
      return prepareAuditEvent(input, 0);
    },
  })),
];

let lockWritesPrimed = false;

function primeLockWrites(): void {
  if (lockWritesPrimed) return;
  lockWritesPrimed = true;
  for (const sample of LOCK_PRIMING_SAMPLES) sample.check();
}

export class LockService {
  readonly #o: LockServiceOptions;
  readonly #audit: ReturnType<typeof auditWith>;

  constructor(o: LockServiceOptions) {
    this.#o = o;
    this.#audit = auditWith(o);
    primeLockWrites();
  }

  #now(): number {
    return this.#o.clock.now();
  }

  /** `wctl lock`: a new lock named by a fresh UUID, with `--ttl` or `--expires`. */
  async create(
    actor: Actor,
    req: z.infer<typeof rpc.CreateLockRequest>,
  ): Promise<{ name: string; warnings?: string[] }> {
    if (req.ttl_ms && req.expires)
      throw new WardenError('WARDEN_ERR_BAD_PARAMETER', 'use --ttl or --expires, not both');
    const expires = req.ttl_ms ? new Date(this.#now() + req.ttl_ms).toISOString() : req.expires;
    const target = Object.fromEntries(Object.entries(req.target).filter(([, v]) => v));
    const lock = validateResource({
      kind: 'lock',
      version: 'v2',
      metadata: { name: randomUUID() },
      spec: {
        target,
        ...(req.message ? { message: req.message } : {}),
        ...(expires ? { expires } : {}),
      },
    }) as LockResource;
    const { resource, warnings } = await this.put(actor, lock, { force: false }, undefined);
    const name = resource.metadata.name;
    return warnings.length ? { name, warnings } : { name };
  }

  /**
   * Stores a lock document. `existing` is the stored lock of that name (looked up by the
   * caller, which needed it for the permission check) or undefined.
   */
  async put(
    actor: Actor,
    input: LockResource,
    opts: { force: boolean; expectedRevision?: string },
    existing: LockResource | undefined,
  ): Promise<LockWrite> {
    const name = input.metadata.name;
    if (existing && !opts.force) {
      throw new WardenError(
        'WARDEN_ERR_ALREADY_EXISTS',
        `lock "${name}" already exists; use -f/--force to overwrite it`,
      );
    }
    const expires = input.spec.expires;
    if (expires && Date.parse(expires) <= this.#now()) {
      throw new WardenError('WARDEN_ERR_BAD_PARAMETER', `the lock would expire in the past (${expires})`);
    }
    // Who made the lock and when is the server's to say.
    const { created_at: _at, created_by: _by, ...spec } = input.spec;
    const stamp = existing
      ? {
          ...(existing.spec.created_at ? { created_at: existing.spec.created_at } : {}),
          ...(existing.spec.created_by ? { created_by: existing.spec.created_by } : {}),
        }
      : { created_at: new Date(this.#now()).toISOString(), created_by: actor.user };
    const lock = validateResource({
      ...input,
      spec: { ...spec, ...stamp },
    }) as LockResource;
    const store = this.#o.services.locks;
    let stored: LockResource;
    if (opts.expectedRevision) {
      stored = await store.update({
        ...lock,
        metadata: { ...lock.metadata, revision: opts.expectedRevision },
      });
    } else {
      stored = existing ? await store.upsert(lock) : await store.create(lock);
    }
    const common = { success: true, user: actor.user, addr: actor.addr, name } as const;
    // Not unaudited (issue 15 item 5): if the audit log refuses the event, the change is undone.
    await undoUnless(
      this.#o.logger,
      existing || opts.expectedRevision
        ? this.#audit({ type: 'resource.update', ...common, kind: 'lock' })
        : this.#audit({
            type: 'lock.created',
            ...common,
            target: lock.spec.target,
            ...(lock.spec.message ? { message: lock.spec.message } : {}),
            ...(expires ? { expires } : {}),
          }),
      () => store.undo({ written: stored, previous: existing }),
      'lock',
    );
    const device = lock.spec.target.device;
    const warnings = device ? await this.#deviceLockWarnings(device) : [];
    return { resource: stored, outcome: existing || opts.expectedRevision ? 'updated' : 'created', warnings };
  }

  /** Removes a lock (sessions it ended stay ended). */
  async remove(actor: Actor, name: string): Promise<void> {
    const store = this.#o.services.locks;
    const removed = await store.find(name);
    await store.delete(name);
    await undoUnless(
      this.#o.logger,
      this.#audit({ type: 'lock.deleted', success: true, user: actor.user, addr: actor.addr, name }),
      () => store.undo({ previous: removed }),
      'lock removal',
    );
  }

  /** Why a lock on this device may have no effect: unknown or not-enrolled device, device trust off. */
  async #deviceLockWarnings(id: string): Promise<string[]> {
    const out: string[] = [];
    if ((await this.#o.services.authPreference.get()).spec.device_trust?.mode === 'off') {
      out.push(
        'device trust is off in this cluster (cluster_auth_preference spec.device_trust.mode): ' +
          'the lock has no effect until device trust is enabled',
      );
    }
    const inventory = this.#o.inventory;
    const device = await inventory.get(id).catch((e: unknown) => {
      if (isWardenError(e, 'WARDEN_ERR_NOT_FOUND')) return undefined;
      throw e;
    });
    if (!device) {
      const tagged = (await inventory.list()).filter((d) => d.spec.asset_tag === id);
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
}
