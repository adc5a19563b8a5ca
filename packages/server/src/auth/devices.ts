/**
 * The device inventory as the admin API serves it: `wctl devices add|enroll`, and
 * `wctl create|edit|rm` of kind device (the inventory's rules: not enrolled on create, edits
 * may only unenroll; by ID or asset tag). Permissions are checked by the caller
 * (`AuthServer`), not here.
 * Internal to `auth/`; the public surface is `auth/index.ts`.
 */
import type { DeviceResource, rpc } from '@warden/api';
import { WardenError } from '@warden/api';
import type { z } from 'zod';
import type { Actor } from '../access';
import { checkEnrollTokenTtl, DEFAULT_ENROLL_TOKEN_TTL_MS, type DeviceInventory } from '../devicetrust';

export class DeviceAdmin {
  readonly #inventory: DeviceInventory;

  constructor(inventory: DeviceInventory) {
    this.#inventory = inventory;
  }

  list(): Promise<DeviceResource[]> {
    return this.#inventory.list();
  }

  /** By ID or asset tag (`wctl get devices/C00AA0AAAA0A`). */
  get(name: string): Promise<DeviceResource> {
    return this.#inventory.find(name);
  }

  /** `wctl create|edit` of a device. */
  async put(
    actor: Actor,
    res: DeviceResource,
    opts: { force: boolean; expectedRevision?: string },
    existing: boolean,
  ): Promise<{ resource: DeviceResource; outcome: 'created' | 'updated' }> {
    if (existing && !opts.force) {
      throw new WardenError(
        'WARDEN_ERR_ALREADY_EXISTS',
        `device "${res.metadata.name}" already exists; use -f/--force to overwrite it`,
      );
    }
    if (opts.expectedRevision || existing) {
      return {
        resource: await this.#inventory.update(actor, res, opts.expectedRevision),
        outcome: 'updated',
      };
    }
    return { resource: await this.#inventory.create(actor, res), outcome: 'created' };
  }

  /** By ID or asset tag; audited as device.delete. */
  async remove(actor: Actor, name: string): Promise<void> {
    await this.#inventory.remove(actor, name);
  }

  /** `wctl devices add`: registers a device, and with `enroll` makes its enrollment token. */
  async add(
    actor: Actor,
    req: z.infer<typeof rpc.AddDeviceRequest>,
  ): Promise<z.infer<typeof rpc.AddDeviceResponse>> {
    // A bad token lifetime is refused before the device is registered.
    if (req.enroll) checkEnrollTokenTtl(req.enroll_ttl_ms ?? DEFAULT_ENROLL_TOKEN_TTL_MS);
    const device = await this.#inventory.add(actor, {
      osType: req.os_type,
      assetTag: req.asset_tag,
      ...(req.owner ? { owner: req.owner } : {}),
    });
    if (!req.enroll) return { device };
    const t = await this.#inventory.createEnrollToken(actor, device.metadata.name, req.enroll_ttl_ms);
    return { device, enroll_token: enrollTokenResponse(device, t) };
  }

  /** `wctl devices enroll`: a new enrollment token for a device (by ID or asset tag). */
  async createEnrollToken(
    actor: Actor,
    req: z.infer<typeof rpc.DeviceEnrollTokenRequest>,
  ): Promise<rpc.DeviceEnrollTokenResponse> {
    const t = await this.#inventory.createEnrollToken(actor, req.device, req.ttl_ms);
    return enrollTokenResponse(t.device, t);
  }
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
