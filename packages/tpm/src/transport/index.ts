/**
 * transport: how command bytes reach a TPM — the Linux character device (`/dev/tpmrm0`, then
 * `/dev/tpm0`) or swtpm over TCP — chosen by `WARDEN_TPM`, wrapped in the retry interceptor.
 * Knows nothing about commands beyond the 10-byte response header.
 * Who may import: commands/ and the package root.
 * Tested by transport.test.ts (a raw TCP server on port 0, fake device handles) and by
 * every swtpm test under test/tpm/.
 */
import { parseTpmAddress, type TpmAddress } from './address';
import { DEFAULT_DEVICE_PATHS, type DeviceOpener, defaultDeviceOpener, openDevice } from './device';
import { type RetryOptions, withRetry } from './retry';
import { SwtpmTransport } from './swtpm';
import type { TpmTransport } from './types';

export { DEFAULT_SWTPM_PORT, parseTpmAddress, type TpmAddress } from './address';
export {
  DEFAULT_DEVICE_PATHS,
  DEVICE_PERMISSION_MESSAGE,
  type DeviceHandle,
  type DeviceOpener,
  DeviceTransport,
  openDevice,
} from './device';
export { type RetryOptions, withRetry } from './retry';
export { type SwtpmOptions, SwtpmTransport } from './swtpm';
export type { TpmTransport } from './types';

export interface OpenTransportOptions {
  /** A `WARDEN_TPM` value; default: `env.WARDEN_TPM`. */
  address?: string | TpmAddress;
  env?: Record<string, string | undefined>;
  retry?: RetryOptions;
  /** For tests of the device path. */
  deviceOpener?: DeviceOpener;
}

/**
 * Opens the transport `WARDEN_TPM` names (or the default device), with retries.
 *
 * @example
 *   const t = await openTransport({ address: 'swtpm:host=127.0.0.1,port=2321' });
 */
export async function openTransport(opts: OpenTransportOptions = {}): Promise<TpmTransport> {
  const addr =
    typeof opts.address === 'object'
      ? opts.address
      : parseTpmAddress(opts.address ?? (opts.env ?? process.env).WARDEN_TPM);
  let inner: TpmTransport;
  if (addr.kind === 'swtpm') inner = new SwtpmTransport({ host: addr.host, port: addr.port });
  else
    inner = await openDevice(
      addr.path ? [addr.path] : DEFAULT_DEVICE_PATHS,
      opts.deviceOpener ?? defaultDeviceOpener,
    );
  return withRetry(inner, opts.retry);
}
