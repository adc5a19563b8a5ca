/**
 * Per-OS device code behind one interface, `NativeDevice`: the device's facts (OS, asset tag,
 * collected data), its credential (the AK, created once and kept in the device cache), and
 * the TPM operations the ceremonies need. Linux with a TPM 2.0 is implemented; macOS (Secure
 * Enclave) and Windows (TBS) are not yet.
 * Internal to `devicetrust/`: the ceremonies (`enroll.ts`, `authn.ts`) take a NativeDevice,
 * so tests swap in fakes.
 */
import { type DeviceOsType, type rpc, WardenError } from '@warden/api';
import type { PcrSelection } from '@warden/tpm';
import { DeviceCache, deviceCacheDir, type Enrollment, type StoredCredential } from '../cache';
import { dmiAssetTag, ekAssetTag, type LinuxSources, linuxDeviceData } from './linux';
import type { TpmDevice, TpmEnrollInit, TpmQuoteResult } from './tpm';

export { DMI_ASSET_TAG_FILES, dmiAssetTag, ekAssetTag, isValidDmiValue } from './linux';
export type { TpmEnrollInit, TpmQuoteResult } from './tpm';

/** One device, open for one ceremony or command. */
export interface NativeDevice {
  readonly osType: DeviceOsType;
  /** The asset tag (DESIGN §6). */
  assetTag(): Promise<string>;
  /** What the ceremonies send about the device. */
  collectDeviceData(): Promise<rpc.DeviceData>;
  /** The stored credential; with `create`, a new AK is made when there is none. */
  credential(opts: { create: boolean }): Promise<StoredCredential | undefined>;
  enrollInit(cred: StoredCredential): Promise<TpmEnrollInit>;
  activate(cred: StoredCredential, credentialBlob: Uint8Array, secret: Uint8Array): Promise<Uint8Array>;
  quote(cred: StoredCredential, nonce: Uint8Array, selection: PcrSelection[]): Promise<TpmQuoteResult>;
  /**
   * Gets ready to quote with `cred` (the TPM opened, the AK loaded), so that a ceremony can
   * do it while its first message is on its way; optional (quote does it when needed).
   */
  prepare?(cred: StoredCredential): Promise<void>;
  /** Remembers that `cluster` enrolled the credential. */
  recordEnrollment(e: Enrollment): void;
  close(): Promise<void>;
}

let tpmModule: Promise<typeof import('./tpm')> | undefined;

/** The TPM code (a chunk of its own in the built CLI: most commands never load it), loaded once. */
function tpmCode(): Promise<typeof import('./tpm')> {
  tpmModule ??= import('./tpm');
  return tpmModule;
}

/**
 * Loads the TPM code ahead of a ceremony (`wsh login` does while it waits for the password),
 * so the ceremony does not wait for it; a failure shows when the ceremony needs the TPM.
 */
export function preloadTpmCode(): void {
  tpmCode().catch(() => undefined);
}

/** The OS type of this machine, as the inventory names it. */
export function nativeOsType(platform: NodeJS.Platform = process.platform): DeviceOsType | undefined {
  if (platform === 'linux') return 'linux';
  if (platform === 'darwin') return 'macos';
  if (platform === 'win32') return 'windows';
  return undefined;
}

/** Linux: DMI facts, the device cache, the TPM from WARDEN_TPM (opened on first use). */
class LinuxDevice implements NativeDevice {
  readonly osType = 'linux' as const;
  readonly #env: NodeJS.ProcessEnv;
  readonly #cache: DeviceCache;
  readonly #sources: LinuxSources;
  readonly #now: () => Date;
  #tpm: Promise<TpmDevice> | undefined;

  constructor(env: NodeJS.ProcessEnv, now: () => Date) {
    this.#env = env;
    this.#cache = new DeviceCache(deviceCacheDir(env));
    this.#sources = env.WARDEN_DEVICE_DMI_DIR ? { dmiDir: env.WARDEN_DEVICE_DMI_DIR } : {};
    this.#now = now;
  }

  #openTpm(): Promise<TpmDevice> {
    this.#tpm ??= tpmCode().then((m) => m.TpmDevice.open(this.#env));
    return this.#tpm;
  }

  async assetTag(): Promise<string> {
    const dmi = dmiAssetTag(this.#sources);
    if (dmi) return dmi;
    const remembered = this.#cache.load()?.ekAssetTag;
    if (remembered) return remembered;
    return ekAssetTag(await (await this.#openTpm()).ekSpkiDer());
  }

  async collectDeviceData(): Promise<rpc.DeviceData> {
    return linuxDeviceData(await this.assetTag(), this.#now(), this.#sources);
  }

  async credential(opts: { create: boolean }): Promise<StoredCredential | undefined> {
    const stored = this.#cache.load();
    if (stored || !opts.create) return stored;
    const tpm = await this.#openTpm();
    const cred = await tpm.createCredential(this.#now());
    cred.ekAssetTag = ekAssetTag(await tpm.ekSpkiDer());
    this.#cache.save(cred);
    return cred;
  }

  async enrollInit(cred: StoredCredential): Promise<TpmEnrollInit> {
    const tpm = await this.#openTpm();
    if (!cred.ekAssetTag) {
      cred.ekAssetTag = ekAssetTag(await tpm.ekSpkiDer());
      this.#cache.save(cred);
    }
    return tpm.enrollInit(cred);
  }

  async activate(
    cred: StoredCredential,
    credentialBlob: Uint8Array,
    secret: Uint8Array,
  ): Promise<Uint8Array> {
    return (await this.#openTpm()).activate(cred, credentialBlob, secret);
  }

  async quote(cred: StoredCredential, nonce: Uint8Array, selection: PcrSelection[]): Promise<TpmQuoteResult> {
    return (await this.#openTpm()).quote(cred, nonce, selection);
  }

  async prepare(cred: StoredCredential): Promise<void> {
    await (await this.#openTpm()).prepare(cred);
  }

  recordEnrollment(e: Enrollment): void {
    this.#cache.recordEnrollment(e);
  }

  async close(): Promise<void> {
    const tpm = this.#tpm;
    this.#tpm = undefined;
    if (tpm) await (await tpm.catch(() => undefined))?.close();
  }
}

/**
 * Opens this machine as a device (the TPM itself only when an operation needs it).
 *
 * @example
 *   const dev = await openNativeDevice(process.env);
 *   try { console.log(await dev.assetTag()); } finally { await dev.close(); }
 */
export async function openNativeDevice(
  env: NodeJS.ProcessEnv = process.env,
  opts: { platform?: NodeJS.Platform; now?: () => Date } = {},
): Promise<NativeDevice> {
  const platform = opts.platform ?? process.platform;
  if (nativeOsType(platform) !== 'linux') {
    throw new WardenError(
      'WARDEN_ERR_NOT_IMPLEMENTED',
      `device trust is not supported on ${platform} yet (Linux with a TPM 2.0 only)`,
    );
  }
  return new LinuxDevice(env, opts.now ?? (() => new Date()));
}
