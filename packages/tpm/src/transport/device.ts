/**
 * The Linux TPM character device: `/dev/tpmrm0` (kernel resource manager) or `/dev/tpm0`
 * (raw, one user at a time, no resource manager). A command is one write; its response is
 * one read.
 */
import { open as fsOpen } from 'node:fs/promises';
import { TpmError } from '../errors';
import { MAX_RESPONSE_SIZE, RESPONSE_HEADER_SIZE, SerialQueue, type TpmTransport } from './types';

/** The part of a node:fs FileHandle the device transport uses (tests pass fakes). */
export interface DeviceHandle {
  write(
    buffer: Uint8Array,
    offset: number,
    length: number,
    position: null,
  ): Promise<{ bytesWritten: number }>;
  read(buffer: Uint8Array, offset: number, length: number, position: null): Promise<{ bytesRead: number }>;
  close(): Promise<void>;
}

export type DeviceOpener = (path: string) => Promise<DeviceHandle>;

export const defaultDeviceOpener: DeviceOpener = (path) => fsOpen(path, 'r+');

/** The device paths tried when WARDEN_TPM does not name one. */
export const DEFAULT_DEVICE_PATHS = ['/dev/tpmrm0', '/dev/tpm0'] as const;

export const DEVICE_PERMISSION_MESSAGE =
  'failed to open the TPM device, consider assigning the user to the tss group or creating equivalent udev rules';

function errno(e: unknown): string | undefined {
  return typeof e === 'object' && e !== null && 'code' in e
    ? String((e as { code: unknown }).code)
    : undefined;
}

/**
 * Opens the first device of `paths` that exists. A permission error stops at once with the
 * tss-group advice; when none exists the error says which paths were tried.
 */
export async function openDevice(
  paths: readonly string[] = DEFAULT_DEVICE_PATHS,
  opener: DeviceOpener = defaultDeviceOpener,
): Promise<DeviceTransport> {
  for (const path of paths) {
    try {
      return new DeviceTransport(path, await opener(path));
    } catch (e) {
      const code = errno(e);
      if (code === 'EACCES' || code === 'EPERM') {
        throw new TpmError(
          'TPM_ERR_DEVICE_PERMISSION',
          `${DEVICE_PERMISSION_MESSAGE} (${path}: permission denied)`,
          {
            cause: e,
            details: { path },
          },
        );
      }
      if (code === 'ENOENT' || code === 'ENODEV' || code === 'ENXIO') continue;
      if (code === 'EBUSY') {
        throw new TpmError(
          'TPM_ERR_TRANSPORT',
          `failed to open the TPM device, ${path} is in use by another program (use /dev/tpmrm0)`,
          { cause: e, details: { path } },
        );
      }
      throw new TpmError('TPM_ERR_TRANSPORT', `failed to open the TPM device ${path}: ${String(e)}`, {
        cause: e,
      });
    }
  }
  throw new TpmError(
    'TPM_ERR_DEVICE_MISSING',
    `failed to open the TPM device, ${paths.join(' and ')} ${paths.length > 1 ? 'do' : 'does'} not exist (this machine has no TPM, or its driver is not loaded)`,
    { details: { paths: [...paths] } },
  );
}

export class DeviceTransport implements TpmTransport {
  private readonly queue = new SerialQueue();
  private closed = false;

  constructor(
    readonly description: string,
    private readonly handle: DeviceHandle,
  ) {}

  send(command: Uint8Array): Promise<Uint8Array> {
    return this.queue.run(async () => {
      if (this.closed) throw new TpmError('TPM_ERR_TRANSPORT', `${this.description} is closed`);
      try {
        const { bytesWritten } = await this.handle.write(command, 0, command.length, null);
        if (bytesWritten !== command.length) {
          throw new TpmError('TPM_ERR_TRANSPORT', `${this.description}: short write (${bytesWritten} bytes)`);
        }
        const buf = new Uint8Array(MAX_RESPONSE_SIZE);
        const { bytesRead } = await this.handle.read(buf, 0, buf.length, null);
        if (bytesRead < RESPONSE_HEADER_SIZE) {
          throw new TpmError('TPM_ERR_TRANSPORT', `${this.description}: short response (${bytesRead} bytes)`);
        }
        const size = new DataView(buf.buffer).getUint32(2);
        if (size !== bytesRead) {
          throw new TpmError(
            'TPM_ERR_TRANSPORT',
            `${this.description}: response header announces ${size} bytes, read ${bytesRead}`,
          );
        }
        return buf.slice(0, bytesRead);
      } catch (e) {
        if (e instanceof TpmError) throw e;
        throw new TpmError('TPM_ERR_TRANSPORT', `${this.description}: ${String(e)}`, { cause: e });
      }
    });
  }

  close(): Promise<void> {
    return this.queue.run(async () => {
      if (this.closed) return;
      this.closed = true;
      await this.handle.close();
    });
  }
}
