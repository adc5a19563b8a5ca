/**
 * Linux device facts for device trust: the asset tag (DESIGN §6) and the data the ceremonies
 * send about the machine. Internal to `devicetrust/`; reached through `native/index.ts`.
 *
 * Asset tag: the first valid of the DMI chassis asset tag, product serial and board serial
 * (`/sys/class/dmi/id/…`; a value is valid when it is non-empty and has no whitespace — VMs
 * report "Not Specified", "None" or "To Be Filled By O.E.M."); where none is readable (VMs,
 * containers, a non-root user and a root-only product_serial) it is `ek:` followed by
 * base64url(SHA-256 of the TPM's EK public key, SPKI DER).
 *
 * `WARDEN_DEVICE_DMI_DIR` replaces `/sys/class/dmi/id` (tests simulate several machines on
 * one host with it). Tested by `linux.test.ts` with a fake DMI directory.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { hostname, release, userInfo } from 'node:os';
import { join } from 'node:path';
import type { rpc } from '@warden/api';

export const DMI_DIR = '/sys/class/dmi/id';

/** DMI files tried for the asset tag, in order. */
export const DMI_ASSET_TAG_FILES = ['chassis_asset_tag', 'product_serial', 'board_serial'] as const;

/** Placeholders firmware writes where it has no value (compared case-insensitively). */
const PLACEHOLDERS = new Set(['none', 'default', 'n/a', 'na', '0', '00000000', 'unknown', '0123456789']);

/** A DMI value that can serve as an asset tag: non-empty, no whitespace, not a placeholder. */
export function isValidDmiValue(value: string | undefined): value is string {
  if (value === undefined) return false;
  if (value.length === 0 || value.length > 256) return false;
  if (/[\s\p{Cc}]/u.test(value)) return false;
  return !PLACEHOLDERS.has(value.toLowerCase());
}

export interface LinuxSources {
  /** Directory holding the DMI files (default /sys/class/dmi/id). */
  dmiDir?: string;
  /** Reads a file; undefined when missing or unreadable. */
  readFile?(path: string): string | undefined;
}

function readQuietly(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

/** The first valid DMI value (chassis asset tag, product serial, board serial), or undefined. */
export function dmiAssetTag(src: LinuxSources = {}): string | undefined {
  const dir = src.dmiDir ?? DMI_DIR;
  const read = src.readFile ?? readQuietly;
  for (const file of DMI_ASSET_TAG_FILES) {
    const value = read(join(dir, file))?.trim();
    if (isValidDmiValue(value)) return value;
  }
  return undefined;
}

/**
 * The EK-derived asset tag: `ek:` + base64url(SHA-256(EK public key as SPKI DER)).
 *
 * @example
 *   ekAssetTag(spkiDer) // 'ek:3q2-7w…'
 */
export function ekAssetTag(ekSpkiDer: Uint8Array): string {
  return `ek:${createHash('sha256').update(ekSpkiDer).digest('base64url')}`;
}

/**
 * The device's asset tag: a DMI value when there is one, else the EK-derived tag. The EK is
 * read only when needed (it takes the TPM).
 */
export async function linuxAssetTag(
  ekSpkiDer: () => Promise<Uint8Array>,
  src: LinuxSources = {},
): Promise<string> {
  return dmiAssetTag(src) ?? ekAssetTag(await ekSpkiDer());
}

/** The OS version: PRETTY_NAME of /etc/os-release (else NAME VERSION_ID) and the kernel release. */
export function linuxOsVersion(src: LinuxSources = {}): string {
  const read = src.readFile ?? readQuietly;
  const text = read('/etc/os-release') ?? read('/usr/lib/os-release') ?? '';
  const fields = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^([A-Z_]+)=(.*)$/.exec(line.trim());
    if (m) fields.set(m[1]!, m[2]!.replace(/^"(.*)"$/, '$1'));
  }
  const name =
    fields.get('PRETTY_NAME') ?? [fields.get('NAME'), fields.get('VERSION_ID')].filter(Boolean).join(' ');
  return [name, `kernel ${release()}`].filter(Boolean).join(', ');
}

/** What the ceremonies send about this machine (stored as the device's `collected_data`). */
export function linuxDeviceData(assetTag: string, now: Date, src: LinuxSources = {}): rpc.DeviceData {
  let user: string | undefined;
  try {
    user = userInfo().username;
  } catch {
    user = undefined;
  }
  return {
    collect_time: now.toISOString(),
    os_type: 'linux',
    serial_number: assetTag,
    os_version: linuxOsVersion(src),
    ...(user ? { os_username: user } : {}),
    hostname: hostname(),
  };
}
