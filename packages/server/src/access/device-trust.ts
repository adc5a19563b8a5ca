/**
 * Device trust modes and extensions as the access checker sees them: the strictest of
 * several modes (`off` < `optional` < `required-for-humans` < `required`, anything unknown
 * counts as `required`), whether a mode demands a device of an identity (bots are exempt from
 * `required-for-humans` only), and whether an identity carries verified device extensions
 * (all three or none).
 * Internal to `access/`; the public surface is `access/index.ts`.
 */
import type { DeviceTrustMode } from '@warden/api';
import type { IdentityKind } from './identity';

/** The three device extensions from a verified certificate. */
export interface DeviceExtensions {
  deviceId: string;
  assetTag: string;
  credentialId: string;
}

const BY_RANK: readonly DeviceTrustMode[] = ['off', 'optional', 'required-for-humans', 'required'];
const STRICTEST = BY_RANK.length - 1;

/** Rank of a mode; absent is `off`, unknown is `required` (fail closed). */
export function deviceTrustRank(mode: string | undefined): number {
  if (mode === undefined) return 0;
  const rank = BY_RANK.indexOf(mode as DeviceTrustMode);
  return rank < 0 ? STRICTEST : rank;
}

/**
 * The strictest of the modes (`off` when there are none).
 *
 * @example
 *   strictestDeviceTrustMode(['off', 'optional']); // 'optional'
 *   strictestDeviceTrustMode(['required-for-humans', 'optional']); // 'required-for-humans'
 *   strictestDeviceTrustMode(['off', 'sometimes']); // 'required'
 */
export function strictestDeviceTrustMode(modes: Iterable<string | undefined>): DeviceTrustMode {
  let rank = 0;
  for (const mode of modes) rank = Math.max(rank, deviceTrustRank(mode));
  return BY_RANK[rank]!;
}

/**
 * Whether `mode` demands a trusted device of an identity of this kind: `required` of
 * everybody, `required-for-humans` of people only (bots have no device; they are exempt).
 *
 * @example
 *   deviceDemanded('required-for-humans', 'bot'); // false
 *   deviceDemanded('required-for-humans', 'human'); // true
 */
export function deviceDemanded(mode: DeviceTrustMode, kind: IdentityKind): boolean {
  if (mode === 'required') return true;
  return mode === 'required-for-humans' && kind !== 'bot';
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
