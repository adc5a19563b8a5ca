/**
 * Device trust modes and extensions as the access checker sees them: the strictest of
 * several modes (`off` < `optional` < `required`, anything unknown counts as `required`),
 * and whether an identity carries verified device extensions (all three or none).
 * Internal to `access/`; the public surface is `access/index.ts`.
 */
import type { DeviceTrustMode } from '@warden/api';

/** The three device extensions from a verified certificate. */
export interface DeviceExtensions {
  deviceId: string;
  assetTag: string;
  credentialId: string;
}

const RANK: Record<DeviceTrustMode, number> = { off: 0, optional: 1, required: 2 };
const BY_RANK: DeviceTrustMode[] = ['off', 'optional', 'required'];

/** Rank of a mode; absent is `off`, unknown is `required` (fail closed). */
export function deviceTrustRank(mode: string | undefined): number {
  if (mode === undefined) return 0;
  return Object.hasOwn(RANK, mode) ? RANK[mode as DeviceTrustMode] : 2;
}

/**
 * The strictest of the modes (`off` when there are none).
 *
 * @example
 *   strictestDeviceTrustMode(['off', 'optional']); // 'optional'
 *   strictestDeviceTrustMode(['off', 'sometimes']); // 'required'
 */
export function strictestDeviceTrustMode(modes: Iterable<string | undefined>): DeviceTrustMode {
  let rank = 0;
  for (const mode of modes) rank = Math.max(rank, deviceTrustRank(mode));
  return BY_RANK[rank]!;
}

/** True when all three extensions are present and non-empty. */
export function hasDeviceExtensions(
  device: Partial<DeviceExtensions> | undefined,
): device is DeviceExtensions {
  return (
    device !== undefined &&
    [device.deviceId, device.assetTag, device.credentialId].every(
      (v) => typeof v === 'string' && v.length > 0,
    )
  );
}
