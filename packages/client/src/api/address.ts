/**
 * The proxy's address, HOST:PORT. Its own module: tunnels (`wsh proxy ssh`) need it without
 * node:https, which http.ts loads. Internal to api/ (http.ts re-exports it).
 */
import { WardenError } from '@warden/api';

/** `HOST:PORT` or `[v6]:PORT` → its parts; BAD_PARAMETER otherwise. */
export function splitHostPort(addr: string): { host: string; port: number } {
  const m = /^(\[[^\]]+\]|[^:]+):(\d{1,5})$/.exec(addr.trim());
  const port = m ? Number(m[2]) : Number.NaN;
  if (!m?.[1] || port < 1 || port > 65535) {
    throw new WardenError('WARDEN_ERR_BAD_PARAMETER', `invalid proxy address "${addr}": expected HOST:PORT`);
  }
  return { host: m[1].replace(/^\[|\]$/g, ''), port };
}
