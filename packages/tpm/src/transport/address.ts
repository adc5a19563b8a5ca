/**
 * `WARDEN_TPM`: which TPM to use. `device:/dev/tpmrm0` (or any device path), `device` alone or
 * unset for the default (`/dev/tpmrm0`, then `/dev/tpm0`), or `swtpm:host=127.0.0.1,port=2321`.
 */
import { TpmError } from '../errors';

export type TpmAddress =
  | { kind: 'device' /** Undefined: try the default paths. */; path?: string }
  | { kind: 'swtpm'; host: string; port: number };

export const DEFAULT_SWTPM_PORT = 2321;

/**
 * @example
 *   parseTpmAddress('swtpm:host=127.0.0.1,port=2321') // { kind: 'swtpm', host: '127.0.0.1', port: 2321 }
 */
export function parseTpmAddress(spec: string | undefined): TpmAddress {
  const s = (spec ?? '').trim();
  if (s === '' || s === 'device') return { kind: 'device' };
  const colon = s.indexOf(':');
  const scheme = colon < 0 ? s : s.slice(0, colon);
  const rest = colon < 0 ? '' : s.slice(colon + 1);
  if (scheme === 'device') {
    if (!rest.startsWith('/')) throw bad(s, 'a device path must be absolute (device:/dev/tpmrm0)');
    return { kind: 'device', path: rest };
  }
  if (scheme === 'swtpm') {
    let host = '127.0.0.1';
    let port = DEFAULT_SWTPM_PORT;
    for (const part of rest === '' ? [] : rest.split(',')) {
      const eq = part.indexOf('=');
      const key = eq < 0 ? part : part.slice(0, eq);
      const value = eq < 0 ? '' : part.slice(eq + 1);
      if (key === 'host' && value !== '') host = value;
      else if (key === 'port' && /^[0-9]{1,5}$/.test(value) && Number(value) >= 1 && Number(value) <= 65535)
        port = Number(value);
      else throw bad(s, `unknown or invalid option "${part}" (expected host=…,port=1-65535)`);
    }
    return { kind: 'swtpm', host, port };
  }
  throw bad(s, `unknown scheme "${scheme}" (expected device:/dev/tpmrm0 or swtpm:host=…,port=…)`);
}

function bad(spec: string, why: string): TpmError {
  return new TpmError('TPM_ERR_BAD_CONFIG', `WARDEN_TPM="${spec}" is invalid: ${why}`);
}
