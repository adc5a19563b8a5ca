/**
 * `DeviceInventory`: the trusted-device inventory (DESIGN §6) — the rules over the raw
 * `device` store: registering devices, finding them by ID, asset tag or credential, enrollment
 * tokens (single use, expiring, stored hashed: `tokens/`'s OneTimeTokens), marking a device enrolled with its TPM credential,
 * collected data, admin edits (unenroll) and removal. Every admin change is audited.
 * Internal to `devicetrust/`; the public surface is `devicetrust/index.ts`.
 *
 *   /devices/<uuid>                            device (Services.devices)
 *   /device_enroll_tokens/<sha256 of token>    { device_id, created_by, expires }, TTL = expiry
 *                                              (OneTimeTokens; listed by `wctl tokens ls`)
 *   /device_index/ek/<EK fingerprint>          { device_id }: the enrolled device this EK backs
 *   /device_index/credential/<credential ID>   { device_id }: the enrolled device holding it
 *   /device_index/backfilled                   written once older inventories got their keys
 *
 * Uniqueness (one EK backs at most one device, a credential ID is held by at most one) is the
 * backend's, not a check before a write: every write that makes a device hold an EK or a
 * credential creates its index keys in the same transaction (`Backend.txn`, create fails if
 * the key exists), so of two replicas enrolling one TPM at once exactly one commits; every
 * write that ends a hold (unenroll, removal, undo) deletes the keys naming the device in its
 * transaction. A key whose device no longer holds it (written by an older warden, or a
 * backfill racing an unenrollment) is stale: the next claim deletes it, conditionally, and
 * claims again. Lookups by EK or credential read the key and the device it names (never the
 * inventory); the device must hold the key, so a stale key never answers.
 */
import { randomUUID } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import {
  type AuditEventInput,
  assetTagSchema,
  DEVICE_OS_NAMES,
  DEVICE_OS_TYPES,
  type DeviceCollectedData,
  type DeviceCredential,
  type DeviceOsType,
  type DeviceResource,
  deviceCollectedDataSchema,
  deviceCredentialSchema,
  deviceSpecSchema,
  formatDuration,
  isRfc3339,
  isWardenError,
  MAX_DEVICE_COLLECTED_DATA,
  spkiFromKey,
  validateResourceOfKind,
  WardenError,
} from '@warden/api';
import { decodePublic, publicKeyFromTpmt } from '@warden/tpm';
import type { z } from 'zod';
import type { Actor } from '../access';
import { type AuditLog, undoUnless, writeAuditEvent } from '../audit';
import type { Backend, Item, TxnOp } from '../backend';
import type { Clock } from '../clock';
import type { Logger } from '../log';
import type { Services } from '../services';
import { OneTimeTokens } from '../tokens';

/** Lifetime of an enrollment token when none is asked for. */
export const DEFAULT_ENROLL_TOKEN_TTL_MS = 60 * 60 * 1000;
/** Longest lifetime an enrollment token may have. */
export const MAX_ENROLL_TOKEN_TTL_MS = 24 * 60 * 60 * 1000;
/** Backend prefix of enrollment tokens (keyed by the token's SHA-256, never the token). */
export const ENROLL_TOKEN_PREFIX = '/device_enroll_tokens/';

/** The message of every refused enrollment token (unknown, spent, expired, device gone). */
export const INVALID_ENROLL_TOKEN_MESSAGE = 'invalid device enrollment token';

/** Devices kept decoded for the ceremonies (those that authenticate; the oldest go first). */
const DECODED_CACHE_SIZE = 4096;

/** A device's `spec.owner` (a user name), checked alone. */
const deviceOwnerSchema = deviceSpecSchema.shape.owner;

/** Attempts of a compare-and-swap loop before giving up. */
const CAS_ATTEMPTS = 8;

/** Backend prefix of the uniqueness index (see the file comment). */
export const DEVICE_INDEX_PREFIX = '/device_index/';
const EK_INDEX = `${DEVICE_INDEX_PREFIX}ek/`;
const CREDENTIAL_INDEX = `${DEVICE_INDEX_PREFIX}credential/`;
/** Present once every device enrolled before the index has its keys (`#ensureIndexed`). */
export const DEVICE_INDEX_BACKFILLED = `${DEVICE_INDEX_PREFIX}backfilled`;

/** The index key of the EK with this fingerprint (base64url SHA-256 of its SPKI). */
export function ekIndexKey(ekSha256: string): string {
  return EK_INDEX + encodeURIComponent(ekSha256);
}

/** The index key of a credential ID. */
export function credentialIndexKey(credentialId: string): string {
  return CREDENTIAL_INDEX + encodeURIComponent(credentialId);
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export interface DeviceInventoryOptions {
  services: Services;
  backend: Backend;
  clock: Clock;
  audit: AuditLog;
  logger: Logger;
}

/** What an enrollment token is for (the store adds its expiry). */
interface EnrollToken {
  device_id: string;
  created_by: string;
}

/** `C00AA0AAAA0A/Linux`: how messages name a device. */
export function deviceLabel(device: Pick<DeviceResource, 'spec'>): string {
  return `${device.spec.asset_tag}/${DEVICE_OS_NAMES[device.spec.os_type]}`;
}

/**
 * The devices service.
 *
 * @example
 *   const inventory = new DeviceInventory({ services, backend, clock, audit, logger });
 *   const dev = await inventory.add({ user: 'admin' }, { osType: 'linux', assetTag: 'C00AA0AAAA0A' });
 *   const { token } = await inventory.createEnrollToken({ user: 'admin' }, dev.metadata.name);
 *   // … the enrollment ceremony:
 *   const same = await inventory.spendEnrollToken(token);
 *   await inventory.enroll(same.metadata.name, credential, collected, 'alice');
 */
export class DeviceInventory {
  readonly #o: DeviceInventoryOptions;
  /** Credential ID → device ID of enrolled devices: a hint, checked at every use. */
  readonly #byCredential = new Map<string, string>();
  /** Devices decoded by `#readCached`, with the stored value they were decoded from. */
  readonly #decoded = new Map<string, { modRev: number; value: string; device: DeviceResource }>();
  /** Enrollment tokens: hashed at rest, expiring, spent once (`tokens/`'s one-time store). */
  readonly #tokens: OneTimeTokens<EnrollToken>;
  /** The backfill of the index, once per process (retried after a failure). */
  #backfilled: Promise<void> | undefined;

  constructor(o: DeviceInventoryOptions) {
    this.#o = o;
    this.#tokens = new OneTimeTokens(o.backend, o.clock, ENROLL_TOKEN_PREFIX);
  }

  #now(): number {
    return this.#o.clock.now();
  }

  #iso(): string {
    return new Date(this.#now()).toISOString();
  }

  async #audit(event: AuditEventInput): Promise<void> {
    await writeAuditEvent(this.#o.audit, this.#o.logger, event);
  }

  // ---- Registration and lookup ----------------------------------------------------------

  /**
   * Registers a device (not enrolled). ALREADY_EXISTS when a device with the same OS and
   * asset tag is in the inventory; BAD_PARAMETER for an unknown OS or a bad asset tag.
   */
  async add(
    actor: Actor,
    req: { osType: string; assetTag: string; owner?: string },
  ): Promise<DeviceResource> {
    const osType = checkOsType(req.osType);
    const assetTag = checkAssetTag(req.assetTag);
    await this.#refuseDuplicate(osType, assetTag);
    const now = this.#iso();
    const device = validateResourceOfKind('device', {
      kind: 'device',
      version: 'v1',
      metadata: { name: randomUUID() },
      spec: {
        os_type: osType,
        asset_tag: assetTag,
        enroll_status: 'not_enrolled',
        source: 'api',
        ...(req.owner ? { owner: req.owner } : {}),
        create_time: now,
        update_time: now,
      },
    });
    const stored = await this.#o.services.devices.create(device);
    await this.#undoCreateUnless(actor, stored);
    return stored;
  }

  /**
   * Stores a device written as a resource (`wctl create`): it must not be enrolled and may not
   * carry a credential or collected data (the enrollment ceremony sets those).
   */
  async create(actor: Actor, input: DeviceResource): Promise<DeviceResource> {
    const res = validateResourceOfKind('device', input);
    if (res.spec.enroll_status === 'enrolled' || res.spec.credential || res.spec.collected_data?.length) {
      throw new WardenError(
        'WARDEN_ERR_BAD_PARAMETER',
        `device "${res.metadata.name}": a new device cannot be enrolled or carry a credential or collected data; ` +
          'create it with enroll_status: not_enrolled and enroll it with `wsh device enroll`',
      );
    }
    await this.#refuseDuplicate(res.spec.os_type, res.spec.asset_tag);
    const now = this.#iso();
    const { revision: _revision, ...metadata } = res.metadata;
    const stored = await this.#o.services.devices.create({
      ...res,
      metadata,
      spec: { ...res.spec, source: 'api', create_time: now, update_time: now },
    });
    await this.#undoCreateUnless(actor, stored);
    return stored;
  }

  /**
   * A device the audit log did not record is taken back (issue 15 item 5) — only as this call
   * wrote it: if someone changed it meanwhile (an enrollment, an edit), the undo is refused
   * (COMPARE_FAILED, logged) rather than deleting their write.
   */
  async #undoCreateUnless(actor: Actor, device: DeviceResource): Promise<void> {
    await undoUnless(
      this.#o.logger,
      this.#audit({
        type: 'device.create',
        success: true,
        ...actorFields(actor),
        device_id: device.metadata.name,
        asset_tag: device.spec.asset_tag,
        os_type: device.spec.os_type,
      }),
      () => this.#o.services.devices.undo({ written: device }),
      'device create',
    );
  }

  async #refuseDuplicate(osType: DeviceOsType, assetTag: string, exceptId?: string): Promise<void> {
    const same = (await this.#listCached()).find(
      (d) => d.spec.os_type === osType && d.spec.asset_tag === assetTag && d.metadata.name !== exceptId,
    );
    if (same) {
      throw new WardenError(
        'WARDEN_ERR_ALREADY_EXISTS',
        `device ${deviceLabel(same)} is already in the inventory (device ID ${same.metadata.name})`,
      );
    }
  }

  /** Every device, in ID order. */
  list(): Promise<DeviceResource[]> {
    return this.#o.services.devices.list();
  }

  /**
   * Every device as stored now (one backend read), frozen, each decoded only if its stored
   * value changed since this inventory last decoded or wrote it: the lookups an enrollment and
   * a ceremony make (by credential, by EK, duplicates) cost a listing, not a decode per device.
   */
  async #listCached(): Promise<readonly DeviceResource[]> {
    const devices = this.#o.services.devices;
    const { items } = await this.#o.backend.range(devices.prefix);
    return items.map((item) => {
      const id = item.key.slice(devices.prefix.length);
      const cached = this.#decoded.get(id);
      if (cached && cached.modRev === item.modRev && cached.value === item.value) return cached.device;
      return this.#remember(id, item, devices.decode(item));
    });
  }

  /** The device with this ID; NOT_FOUND `device "X" not found`. */
  async get(id: string): Promise<DeviceResource> {
    const found = UUID.test(id) ? await this.#o.services.devices.find(id) : undefined;
    if (!found) throw notFound(id);
    return found;
  }

  /**
   * The device with this ID, else the one device with this asset tag. NOT_FOUND when none;
   * BAD_PARAMETER asking for the device ID when several devices share the asset tag.
   */
  async find(idOrAssetTag: string): Promise<DeviceResource> {
    if (UUID.test(idOrAssetTag)) {
      const byId = await this.#o.services.devices.find(idOrAssetTag);
      if (byId) return byId;
    }
    const matches = (await this.list()).filter((d) => d.spec.asset_tag === idOrAssetTag);
    if (matches.length === 1) return matches[0]!;
    if (matches.length === 0) throw notFound(idOrAssetTag);
    throw new WardenError(
      'WARDEN_ERR_BAD_PARAMETER',
      `several devices have asset tag "${idOrAssetTag}" (${matches
        .map((d) => `${DEVICE_OS_NAMES[d.spec.os_type]}: ${d.metadata.name}`)
        .join(', ')}); use the device ID`,
      { device_ids: matches.map((d) => d.metadata.name) },
    );
  }

  /**
   * The device whose enrolled credential has this ID, if any, read fresh from the backend.
   * This process's map from credential to device ID is only a hint (other replicas enroll and
   * unenroll too): the device it names is read and must be enrolled with exactly this
   * credential, else the credential's index key names the device to read (never a listing).
   * The device returned is frozen (a decoded device is reused while its stored value is
   * unchanged).
   */
  async findByCredentialId(credentialId: string): Promise<DeviceResource | undefined> {
    const holds = (d: DeviceResource | undefined): d is DeviceResource =>
      d !== undefined && holdsCredential(d, credentialId);
    const hinted = this.#byCredential.get(credentialId);
    if (hinted !== undefined) {
      const device = await this.#readCached(hinted);
      if (holds(device)) return device;
      this.#byCredential.delete(credentialId);
    }
    const device = await this.#indexed(credentialIndexKey(credentialId));
    if (!holds(device)) return undefined;
    this.#byCredential.set(credentialId, device.metadata.name);
    return device;
  }

  /**
   * The device an index key names, as stored now (undefined: no key, or no such device), once
   * the index is complete. The caller checks that the device holds the key.
   */
  async #indexed(key: string): Promise<DeviceResource | undefined> {
    await this.#ensureIndexed();
    return this.#deviceNamedBy(key);
  }

  async #deviceNamedBy(key: string): Promise<DeviceResource | undefined> {
    const item = await this.#o.backend.get(key);
    const id = item && indexedDeviceId(item);
    return id ? this.#readCached(id) : undefined;
  }

  /**
   * Makes sure every enrolled device has its index keys: once per inventory (the marker
   * DEVICE_INDEX_BACKFILLED), by one listing; replicas doing it at once create the same keys
   * (the second create of each is refused and skipped). Two devices an older warden let hold
   * one EK or credential keep the first one's key, and a warning names both. Enrollment and the
   * lookups wait for it; if it fails, they fail (and the next call tries again).
   */
  #ensureIndexed(): Promise<void> {
    this.#backfilled ??= this.#backfill().catch((e: unknown) => {
      this.#backfilled = undefined;
      throw e;
    });
    return this.#backfilled;
  }

  async #backfill(): Promise<void> {
    const backend = this.#o.backend;
    if (await backend.get(DEVICE_INDEX_BACKFILLED)) return;
    let created = 0;
    for (const device of await this.#listCached()) {
      for (const key of indexKeysOf(device.spec)) {
        try {
          await backend.create(key, indexValue(device.metadata.name));
          created++;
        } catch (e) {
          if (!isWardenError(e, 'WARDEN_ERR_ALREADY_EXISTS')) throw e;
          const other = await this.#deviceNamedBy(key).catch(() => undefined);
          if (other && other.metadata.name !== device.metadata.name && indexKeysOf(other.spec).has(key)) {
            this.#o.logger.warn(
              { key, device_ids: [other.metadata.name, device.metadata.name] },
              `devices ${deviceLabel(other)} and ${deviceLabel(device)} both hold ${key}; ` +
                'unenroll one of them',
            );
          }
        }
      }
    }
    await backend.put(DEVICE_INDEX_BACKFILLED, JSON.stringify({ time: this.#iso(), keys_created: created }));
  }

  /**
   * The device with this ID as stored now (one backend read), decoded once per stored value:
   * while the value read is the one decoded (or written) before, the same frozen object comes
   * back.
   */
  async #readCached(id: string): Promise<DeviceResource | undefined> {
    const item = await this.#o.backend.get(this.#o.services.devices.keyOf(id));
    if (!item) {
      this.#decoded.delete(id);
      return undefined;
    }
    const cached = this.#decoded.get(id);
    if (cached && cached.modRev === item.modRev && cached.value === item.value) return cached.device;
    return this.#remember(id, item, this.#o.services.devices.decode(item));
  }

  /** Keeps `device`, as decoded from or written as `item`, for `#readCached`. */
  #remember(id: string, item: Item, device: DeviceResource): DeviceResource {
    const frozen = deepFreeze(device);
    if (!this.#decoded.has(id) && this.#decoded.size >= DECODED_CACHE_SIZE)
      this.#decoded.delete(this.#decoded.keys().next().value!);
    this.#decoded.set(id, { modRev: item.modRev, value: item.value, device: frozen });
    return frozen;
  }

  /**
   * The enrolled device backed by the TPM whose EK has this fingerprint (base64url SHA-256 of
   * its SPKI DER), other than `exceptId`: recorded in the credential, or (devices enrolled
   * before the fingerprint was recorded) the `ek:` asset tag it verified.
   */
  async findByEk(ekSha256: string, exceptId?: string): Promise<DeviceResource | undefined> {
    const device = await this.#indexed(ekIndexKey(ekSha256));
    return device && backedBy(device, ekSha256, exceptId) ? device : undefined;
  }

  /**
   * What keeps a TPM from enrolling device `deviceId`, from the index (two keys, never the
   * inventory): the enrolled device its EK (fingerprint `ekSha256`) already backs other than
   * `deviceId` (as `findByEk`), and the enrolled device holding credential `credentialId` (as
   * `findByCredentialId`). The enrollment ceremony's begin asks both, to refuse early; the
   * enrollment's own transaction is what guarantees it.
   */
  async enrollConflicts(
    ekSha256: string,
    credentialId: string,
    deviceId: string,
  ): Promise<{ ek?: DeviceResource; credential?: DeviceResource }> {
    const [ek, credential] = await Promise.all([
      this.findByEk(ekSha256, deviceId),
      this.#indexed(credentialIndexKey(credentialId)).then((d) =>
        d && holdsCredential(d, credentialId) ? d : undefined,
      ),
    ]);
    return { ...(ek ? { ek } : {}), ...(credential ? { credential } : {}) };
  }

  /** Removes a device (by ID or asset tag) and its enrollment tokens; returns what was removed. */
  async remove(actor: Actor, idOrAssetTag: string): Promise<DeviceResource> {
    let device = await this.find(idOrAssetTag);
    const devices = this.#o.services.devices;
    // The device and the index keys naming it, in one transaction, as last read.
    for (let attempt = 1; ; attempt++) {
      try {
        const also = await this.#indexOps(device.metadata.name, device.spec, undefined);
        await devices.delete(device.metadata.name, device.metadata.revision, also);
        break;
      } catch (e) {
        if (!isWardenError(e, 'WARDEN_ERR_COMPARE_FAILED') || attempt >= CAS_ATTEMPTS) throw e;
        device = await this.get(device.metadata.name);
      }
    }
    const removed = device;
    // A removal the audit log refuses is undone; the device's tokens go only once it is recorded.
    await undoUnless(
      this.#o.logger,
      this.#audit({
        type: 'device.delete',
        success: true,
        ...actorFields(actor),
        device_id: device.metadata.name,
        asset_tag: device.spec.asset_tag,
      }),
      // Put back only where nothing was written since the removal (ALREADY_EXISTS otherwise),
      // with its index keys: if another device holds its EK or credential by now, it stays removed.
      async () =>
        devices.create(removed, await this.#indexOps(removed.metadata.name, undefined, removed.spec)),
      'device removal',
    );
    await this.#revokeTokens(device.metadata.name);
    return device;
  }

  // ---- Admin edits ------------------------------------------------------------------------

  /**
   * Applies an admin's edit (`wctl edit device/…`, `wctl create -f`). `expectedRevision`
   * makes it a compare-and-swap. Editable: OS, asset tag, owner, labels, description, and
   * `enroll_status: not_enrolled`, which unenrolls (the credential is removed). The
   * credential can't be set or changed here (only the enrollment ceremony sets it);
   * collected data, source and times are the server's and are kept as stored.
   */
  async update(actor: Actor, input: DeviceResource, expectedRevision?: string): Promise<DeviceResource> {
    const res = validateResourceOfKind('device', input);
    const stored = await this.get(res.metadata.name);
    const revision = expectedRevision ?? stored.metadata.revision;
    const unenroll = res.spec.enroll_status === 'not_enrolled';
    if (!unenroll) {
      if (stored.spec.enroll_status !== 'enrolled') {
        throw new WardenError(
          'WARDEN_ERR_BAD_PARAMETER',
          `device ${deviceLabel(stored)} can only be enrolled with \`wsh device enroll\` on the device ` +
            '(`wctl devices enroll` makes a token)',
        );
      }
      if (res.spec.credential && !isDeepStrictEqual(res.spec.credential, stored.spec.credential)) {
        throw new WardenError(
          'WARDEN_ERR_BAD_PARAMETER',
          `device ${deviceLabel(stored)}: spec.credential can't be changed; set enroll_status: not_enrolled ` +
            'to unenroll the device and enroll it again with `wsh device enroll`',
        );
      }
    }
    if (res.spec.os_type !== stored.spec.os_type || res.spec.asset_tag !== stored.spec.asset_tag) {
      await this.#refuseDuplicate(res.spec.os_type, res.spec.asset_tag, stored.metadata.name);
    }
    const { credential: _credential, ...rest } = res.spec;
    const spec: DeviceResource['spec'] = {
      ...rest,
      source: stored.spec.source,
      collected_data: stored.spec.collected_data,
      create_time: stored.spec.create_time,
      update_time: this.#iso(),
      ...(unenroll ? {} : { credential: stored.spec.credential }),
    };
    if (spec.collected_data === undefined) delete spec.collected_data;
    if (spec.create_time === undefined) delete spec.create_time;
    // The index keys follow the edit in its transaction (an unenrollment deletes them).
    const devices = this.#o.services.devices;
    const id = stored.metadata.name;
    const written = await this.#claiming(id, async () =>
      devices.update(
        { ...res, metadata: { ...res.metadata, revision }, spec },
        await this.#indexOps(id, stored.spec, spec),
      ),
    );
    const unenrolled = unenroll && stored.spec.enroll_status === 'enrolled';
    // An edit the audit log refuses is undone (the device as it was stored, credential and
    // all), only over the revision this edit wrote: a later write (an enrollment, another
    // edit) is not overwritten (COMPARE_FAILED, logged).
    await undoUnless(
      this.#o.logger,
      this.#audit({
        type: 'device.update',
        success: true,
        ...actorFields(actor),
        device_id: written.metadata.name,
        asset_tag: written.spec.asset_tag,
        enroll_status: written.spec.enroll_status,
        ...(unenrolled ? { unenrolled: true } : {}),
      }),
      async () =>
        devices.update(
          { ...stored, metadata: { ...stored.metadata, revision: written.metadata.revision } },
          await this.#indexOps(id, written.spec, stored.spec),
        ),
      'device update',
    );
    if (unenrolled) await this.#revokeTokens(written.metadata.name);
    return written;
  }

  // ---- Enrollment tokens --------------------------------------------------------------------

  /**
   * A new enrollment token for a device (by ID or asset tag), valid `ttlMs` (default 1 h,
   * at most 24 h) and once. Earlier tokens of the device stop working. Only the token's hash
   * is stored. BAD_PARAMETER when the device is already enrolled.
   */
  async createEnrollToken(
    actor: Actor,
    deviceId: string,
    ttlMs: number = DEFAULT_ENROLL_TOKEN_TTL_MS,
  ): Promise<{ token: string; expires: string; device: DeviceResource }> {
    checkEnrollTokenTtl(ttlMs);
    const device = await this.find(deviceId);
    if (device.spec.enroll_status === 'enrolled') {
      throw new WardenError(
        'WARDEN_ERR_BAD_PARAMETER',
        `device ${deviceLabel(device)} is already enrolled; to enroll it again, unenroll it first ` +
          `(wctl edit device/${device.metadata.name}, enroll_status: not_enrolled)`,
      );
    }
    await this.#revokeTokens(device.metadata.name);
    const { token, expires } = await this.#tokens.create(
      { device_id: device.metadata.name, created_by: actor.user },
      ttlMs,
    );
    await this.#audit({
      type: 'device.token.create',
      success: true,
      ...actorFields(actor),
      device_id: device.metadata.name,
      asset_tag: device.spec.asset_tag,
      expires,
    });
    return { token, expires, device };
  }

  /**
   * Spends an enrollment token (single use, at the start of the ceremony): the device it was
   * made for. WardenError INVALID_TOKEN `invalid device enrollment token` when the token is
   * unknown, spent, expired, or its device was removed or enrolled meanwhile.
   */
  async spendEnrollToken(token: string, addr?: string): Promise<DeviceResource> {
    const refuse = async (deviceId?: string, why?: string) => {
      await this.#audit({
        type: 'device.token.spent',
        success: false,
        ...(addr ? { addr } : {}),
        ...(deviceId ? { device_id: deviceId } : {}),
        error: why ? `${INVALID_ENROLL_TOKEN_MESSAGE} (${why})` : INVALID_ENROLL_TOKEN_MESSAGE,
      });
      return new WardenError('WARDEN_ERR_INVALID_TOKEN', INVALID_ENROLL_TOKEN_MESSAGE);
    };
    // Unknown, malformed, spent and expired tokens are all simply not found.
    const found = await this.#tokens.find(token);
    if (!found) throw await refuse(undefined, 'unknown, spent or expired');
    const stored = found.value;
    // Spend first: of two racing ceremonies with one token, exactly one continues.
    if (!(await this.#tokens.spend(found))) throw await refuse(stored.device_id, 'already spent');
    // Read as stored now, decoded once per stored value (the same frozen object the ceremony's
    // later reads of this device find).
    const device = UUID.test(stored.device_id) ? await this.#readCached(stored.device_id) : undefined;
    if (!device) throw await refuse(stored.device_id, 'device removed');
    if (device.spec.enroll_status === 'enrolled')
      throw await refuse(stored.device_id, 'device already enrolled');
    await this.#audit({
      type: 'device.token.spent',
      success: true,
      ...(addr ? { addr } : {}),
      device_id: device.metadata.name,
      asset_tag: device.spec.asset_tag,
    });
    return device;
  }

  /** Deletes every enrollment token of a device. */
  async #revokeTokens(deviceId: string): Promise<void> {
    await this.#tokens.deleteWhere((t) => t.device_id === deviceId);
  }

  // ---- Enrollment and collected data ----------------------------------------------------

  /**
   * Marks the device enrolled with this credential (compare-and-swap on the resource
   * revision), appends the collected data and sets the owner. BAD_PARAMETER when the device
   * is already enrolled; ALREADY_EXISTS when another device holds this credential ID.
   */
  async enroll(
    deviceId: string,
    credential: DeviceCredential,
    collected: DeviceCollectedData,
    owner?: string,
  ): Promise<DeviceResource> {
    const cred = parseOrBad(deviceCredentialSchema, credential, 'credential');
    checkCredentialKey(cred);
    const data =
      plainCollectedData(collected) ?? parseOrBad(deviceCollectedDataSchema, collected, 'collected data');
    if (owner !== undefined) parseOrBad(deviceOwnerSchema, owner, 'owner');
    // No other device holds this credential, nor is backed by this EK: the index keys the
    // write creates with the device (`#modify`) are refused if they exist, whoever wrote them
    // a moment ago. Every field it changes was checked above (or is a constant): the store
    // need not check the whole device again (`updateChecked`), and later reads find the
    // written device decoded.
    const enrolled = await this.#modify(
      deviceId,
      (device) => {
        if (device.spec.enroll_status === 'enrolled') {
          throw new WardenError(
            'WARDEN_ERR_BAD_PARAMETER',
            `device ${deviceLabel(device)} is already enrolled`,
          );
        }
        return {
          ...device.spec,
          enroll_status: 'enrolled',
          credential: cred,
          collected_data: appendCollected(device.spec.collected_data, data),
          ...(owner ? { owner } : {}),
        };
      },
      true,
    );
    await this.#revokeTokens(deviceId);
    return enrolled;
  }

  /** Appends collected data (at device authentication), keeping the newest entries. */
  async recordCollectedData(
    deviceId: string,
    collected: DeviceCollectedData | readonly DeviceCollectedData[],
  ): Promise<void> {
    const entries = (Array.isArray(collected) ? collected : [collected]).map(
      (c) => plainCollectedData(c) ?? parseOrBad(deviceCollectedDataSchema, c, 'collected data'),
    );
    // Only checked entries and the time change in a device decoded from the store: the store
    // need not check the whole device again (`updateChecked`), and the next ceremony's read of
    // it finds it decoded.
    await this.#modify(
      deviceId,
      (device) => ({
        ...device.spec,
        collected_data: entries.reduce(appendCollected, device.spec.collected_data),
      }),
      true,
    );
  }

  /**
   * Takes back the enrollment of `credentialId` (the device is `not_enrolled` again, without a
   * credential): an enrollment the audit log did not record must not stand.
   */
  async undoEnroll(deviceId: string, credentialId: string): Promise<void> {
    await this.#modify(deviceId, (device) => {
      if (device.spec.credential?.id !== credentialId) return device.spec;
      const { credential: _, ...spec } = device.spec;
      return { ...spec, enroll_status: 'not_enrolled' };
    });
  }

  /**
   * Read, change, compare-and-swap, with the index keys the change makes the device hold or
   * let go of in the same transaction; retried when someone wrote in between. `checked`:
   * `change` sets only fields it checked (see `ResourceService.updateChecked`).
   */
  async #modify(
    deviceId: string,
    change: (device: DeviceResource) => DeviceResource['spec'],
    checked = false,
  ): Promise<DeviceResource> {
    const devices = this.#o.services.devices;
    for (let attempt = 1; ; attempt++) {
      const device = UUID.test(deviceId) ? await this.#readCached(deviceId) : undefined;
      if (!device) throw notFound(deviceId);
      const spec = { ...change(device), update_time: this.#iso() };
      try {
        return await this.#claiming(deviceId, async () => {
          const also = await this.#indexOps(deviceId, device.spec, spec);
          if (!checked) return await devices.update({ ...device, spec }, also);
          const { resource, item } = await devices.updateChecked({ ...device, spec }, also);
          return this.#remember(deviceId, item, resource);
        });
      } catch (e) {
        if (!isWardenError(e, 'WARDEN_ERR_COMPARE_FAILED') || attempt >= CAS_ATTEMPTS) throw e;
      }
    }
  }

  /**
   * The index operations of a write that takes device `id` from spec `before` to `after`
   * (undefined: absent): a create of each key it comes to hold, a delete of each it lets go of
   * that still names it (as read now: the delete expects that revision).
   */
  async #indexOps(
    id: string,
    before: DeviceResource['spec'] | undefined,
    after: DeviceResource['spec'] | undefined,
  ): Promise<TxnOp[]> {
    const had = indexKeysOf(before);
    const has = indexKeysOf(after);
    const ops: TxnOp[] = [];
    for (const key of has) if (!had.has(key)) ops.push({ type: 'create', key, value: indexValue(id) });
    for (const key of had) {
      if (has.has(key)) continue;
      const item = await this.#o.backend.get(key);
      if (item && indexedDeviceId(item) === id)
        ops.push({ type: 'delete', key, expectedModRev: item.modRev });
    }
    if (ops.some((op) => op.type === 'create')) await this.#ensureIndexed();
    return ops;
  }

  /**
   * Runs `write` (a device write with its index operations), again when an index key it
   * creates was only stale: the device it names does not hold it (any more), so it is deleted
   * (if unchanged) and claimed again. ALREADY_EXISTS naming the holder when another device does
   * hold it (`ekAlreadyBacks`, or the credential's); COMPARE_FAILED from an index key it
   * deletes (it changed since read) is the caller's to retry, as a changed device.
   */
  async #claiming<T>(id: string, write: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await write();
      } catch (e) {
        const key = isWardenError(e, 'WARDEN_ERR_ALREADY_EXISTS') ? e.details?.key : undefined;
        if (typeof key !== 'string' || !key.startsWith(DEVICE_INDEX_PREFIX)) throw e;
        const item = await this.#o.backend.get(key);
        const holderId = item && indexedDeviceId(item);
        const holder = holderId && holderId !== id ? await this.#readCached(holderId) : undefined;
        if (holder && indexKeysOf(holder.spec).has(key)) throw claimedBy(key, holder);
        if (attempt >= CAS_ATTEMPTS) throw e;
        if (item) await this.#o.backend.delete(key, { expectedModRev: item.modRev }).catch(ignoreChanged);
      }
    }
  }
}

/** The index keys a device with this spec holds: its credential's and its EK's, while enrolled. */
function indexKeysOf(spec: DeviceResource['spec'] | undefined): Set<string> {
  const keys = new Set<string>();
  if (spec?.enroll_status !== 'enrolled') return keys;
  if (spec.credential) keys.add(credentialIndexKey(spec.credential.id));
  if (spec.credential?.ek_sha256) keys.add(ekIndexKey(spec.credential.ek_sha256));
  // Devices enrolled before the fingerprint was recorded: the `ek:` asset tag they verified.
  if (spec.asset_tag.startsWith('ek:')) keys.add(ekIndexKey(spec.asset_tag.slice(3)));
  return keys;
}

function indexValue(deviceId: string): string {
  return JSON.stringify({ device_id: deviceId });
}

/** The device ID an index key names (undefined when its value is not one: stale). */
function indexedDeviceId(item: Item): string | undefined {
  try {
    const id = (JSON.parse(item.value) as { device_id?: unknown }).device_id;
    return typeof id === 'string' && UUID.test(id) ? id : undefined;
  } catch {
    return undefined;
  }
}

/** ALREADY_EXISTS: index key `key` is held by `holder`, as a sequential duplicate is told. */
function claimedBy(key: string, holder: DeviceResource): WardenError {
  if (key.startsWith(EK_INDEX)) return ekAlreadyBacks(holder);
  return new WardenError(
    'WARDEN_ERR_ALREADY_EXISTS',
    `device credential "${holder.spec.credential?.id ?? decodeURIComponent(key.slice(CREDENTIAL_INDEX.length))}" is already enrolled for another device`,
  );
}

function ignoreChanged(e: unknown): void {
  if (!isWardenError(e, 'WARDEN_ERR_COMPARE_FAILED')) throw e;
}

/**
 * BAD_PARAMETER unless `ttlMs` is a whole number of milliseconds in (0, 24 h]: check it before
 * registering a device that is to get a token, so a bad TTL leaves nothing behind.
 */
export function checkEnrollTokenTtl(ttlMs: number): void {
  if (!Number.isSafeInteger(ttlMs) || ttlMs <= 0 || ttlMs > MAX_ENROLL_TOKEN_TTL_MS) {
    throw new WardenError(
      'WARDEN_ERR_BAD_PARAMETER',
      `an enrollment token lives at most ${MAX_ENROLL_TOKEN_TTL_MS / 3_600_000}h (asked for ${
        Number.isFinite(ttlMs) && ttlMs > 0 ? formatDuration(ttlMs) : String(ttlMs)
      })`,
    );
  }
}

/**
 * The credential's `public_key_der` must be the public key of its `ak_public` (the AK that
 * authentications verify with), byte for byte in canonical base64: the ceremony derives it so,
 * and a credential whose two keys disagree (a forged or tampered one) is never stored.
 */
function checkCredentialKey(cred: DeviceCredential): void {
  let spki: Buffer;
  try {
    spki = spkiFromKey(
      publicKeyFromTpmt(decodePublic(new Uint8Array(Buffer.from(cred.ak_public, 'base64')))),
    );
  } catch {
    throw new WardenError(
      'WARDEN_ERR_BAD_PARAMETER',
      'invalid device credential: ak_public is not the public area of a TPM key',
    );
  }
  if (spki.toString('base64') !== cred.public_key_der) {
    throw new WardenError(
      'WARDEN_ERR_BAD_PARAMETER',
      'invalid device credential: public_key_der is not the public key of ak_public',
    );
  }
}

/** True when `d` is enrolled with credential `credentialId` (`findByCredentialId`, `enrollConflicts`). */
function holdsCredential(d: DeviceResource, credentialId: string): boolean {
  return d.spec.enroll_status === 'enrolled' && d.spec.credential?.id === credentialId;
}

/**
 * True when enrolled device `d` (other than `exceptId`) is backed by the EK with this
 * fingerprint: recorded in its credential, or (devices enrolled before the fingerprint was
 * recorded) the `ek:` asset tag it verified.
 */
function backedBy(d: DeviceResource, ekSha256: string, exceptId: string | undefined): boolean {
  return (
    d.metadata.name !== exceptId &&
    d.spec.enroll_status === 'enrolled' &&
    (d.spec.credential?.ek_sha256 === ekSha256 || d.spec.asset_tag === `ek:${ekSha256}`)
  );
}

/** ALREADY_EXISTS: this TPM's EK already backs `device` (one EK backs at most one device). */
export function ekAlreadyBacks(device: DeviceResource): WardenError {
  return new WardenError(
    'WARDEN_ERR_ALREADY_EXISTS',
    `this TPM already backs device ${deviceLabel(device)} (device ID ${device.metadata.name}); ` +
      'one TPM can back only one device: unenroll or remove that device first',
    { device_id: device.metadata.name },
  );
}

/** `value`, frozen all the way down (a cached device nobody may change). */
function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

function notFound(idOrAssetTag: string): WardenError {
  return new WardenError('WARDEN_ERR_NOT_FOUND', `device "${idOrAssetTag}" not found`);
}

function actorFields(actor: Actor): Actor {
  return actor.addr ? { user: actor.user, addr: actor.addr } : { user: actor.user };
}

function checkOsType(os: string): DeviceOsType {
  const lower = os.toLowerCase();
  if (!(DEVICE_OS_TYPES as readonly string[]).includes(lower)) {
    throw new WardenError(
      'WARDEN_ERR_BAD_PARAMETER',
      `unknown OS "${os}" (expected one of ${DEVICE_OS_TYPES.join(', ')})`,
    );
  }
  return lower as DeviceOsType;
}

function checkAssetTag(tag: string): string {
  const r = assetTagSchema.safeParse(tag);
  if (!r.success) {
    throw new WardenError(
      'WARDEN_ERR_BAD_PARAMETER',
      `invalid asset tag ${JSON.stringify(tag)}: ${r.error.issues[0]?.message ?? 'invalid'}`,
    );
  }
  return r.data;
}

/** `deviceCollectedDataSchema`'s fields, in its order (the order zod's output has). */
const COLLECTED_FIELDS = [
  'collect_time',
  'os_type',
  'serial_number',
  'os_version',
  'os_username',
  'hostname',
];
const COLLECTED_FIELD_SET: ReadonlySet<string> = new Set(COLLECTED_FIELDS);
const OS_TYPES: ReadonlySet<string> = new Set(DEVICE_OS_TYPES);
const CONTROL = /\p{Cc}/u;

/**
 * The fast path of each device authentication's collected data: an entry of the usual shape
 * (a plain object of the schema's fields only, each a valid value) is checked by hand and
 * copied in the schema's key order, which is what `deviceCollectedDataSchema` returns for it
 * (`inventory.test.ts` compares both); anything else returns undefined and the schema decides
 * (and words the error). Saves a zod pass per ceremony.
 */
export function plainCollectedData(v: unknown): DeviceCollectedData | undefined {
  if (v === null || typeof v !== 'object' || Object.getPrototypeOf(v) !== Object.prototype) return undefined;
  const o = v as Record<string, unknown>;
  for (const k in o) if (!COLLECTED_FIELD_SET.has(k) || o[k] === undefined) return undefined;
  const time = o.collect_time;
  if (typeof time !== 'string' || !isRfc3339(time)) return undefined;
  if (typeof o.os_type !== 'string' || !OS_TYPES.has(o.os_type)) return undefined;
  const out: Record<string, string> = {};
  for (const k of COLLECTED_FIELDS) {
    const value = o[k];
    if (value === undefined) continue;
    if (typeof value !== 'string' || value.length > 1024 || CONTROL.test(value)) return undefined;
    out[k] = value;
  }
  return out as DeviceCollectedData;
}

function parseOrBad<S extends z.ZodType>(schema: S, value: unknown, what: string): z.output<S> {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  const where = issue?.path.length ? `${issue.path.map(String).join('.')}: ` : '';
  throw new WardenError(
    'WARDEN_ERR_BAD_PARAMETER',
    `invalid device ${what}: ${where}${issue?.message ?? 'invalid'}`,
  );
}

function appendCollected(
  list: readonly DeviceCollectedData[] | undefined,
  entry: DeviceCollectedData,
): DeviceCollectedData[] {
  return [...(list ?? []), entry].slice(-MAX_DEVICE_COLLECTED_DATA);
}
