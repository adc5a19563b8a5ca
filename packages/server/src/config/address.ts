/**
 * `host:port` addresses as written in `warden.yaml` (`listen_addr`, `public_addr`).
 * Hosts are DNS names, IPv4 addresses or bracketed IPv6 addresses (`[::1]:3080`); the port
 * is required and lies in 1–65535. Tested by `address.test.ts`.
 */
import { isIP, isIPv4, isIPv6 } from 'node:net';

/** A parsed `host:port`; IPv6 hosts are stored without brackets. */
export interface HostPort {
  readonly host: string;
  readonly port: number;
}

const LABEL = /^[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$/;

function isHostname(host: string): boolean {
  const name = host.endsWith('.') ? host.slice(0, -1) : host;
  if (name.length === 0 || name.length > 253) return false;
  const labels = name.split('.');
  if (!labels.every((l) => LABEL.test(l))) return false;
  // All-numeric names look like (broken) IPv4 addresses: "999.1.1.1" is a typo, not a host.
  return !labels.every((l) => /^\d+$/.test(l)) || isIPv4(name);
}

/**
 * Parses `host:port`, returning the reason as a string when it is invalid.
 *
 * @example
 *   parseHostPort('proxy.example.com:3080'); // { host: 'proxy.example.com', port: 3080 }
 *   parseHostPort('[::1]:443');               // { host: '::1', port: 443 }
 *   parseHostPort('example.com');             // 'expected host:port, got "example.com"'
 */
export function parseHostPort(text: string): HostPort | string {
  const bad = (why: string) => `${why}, got ${JSON.stringify(text)}`;
  let host: string;
  let portText: string;
  if (text.startsWith('[')) {
    const close = text.indexOf(']');
    if (close < 0 || text[close + 1] !== ':') return bad('expected [ipv6]:port');
    host = text.slice(1, close);
    portText = text.slice(close + 2);
    if (!isIPv6(host)) return bad('expected an IPv6 address inside [ ]');
  } else {
    const colon = text.lastIndexOf(':');
    if (colon < 0) return bad('expected host:port');
    host = text.slice(0, colon);
    portText = text.slice(colon + 1);
    if (host.includes(':')) return bad('expected host:port (write IPv6 addresses as [addr]:port)');
    if (host === '') return bad('expected host:port with a host');
    if (!isHostname(host)) return bad('expected a DNS name or IP address before the port');
  }
  if (!/^\d{1,5}$/.test(portText)) return bad('expected a port number from 1 to 65535');
  const port = Number(portText);
  if (port < 1 || port > 65535) return bad('expected a port number from 1 to 65535');
  return Object.freeze({ host, port });
}

/**
 * Formats an address back to `host:port`, bracketing IPv6 hosts.
 *
 * @example
 *   formatHostPort({ host: '::1', port: 3080 }); // '[::1]:3080'
 */
export function formatHostPort(addr: HostPort): string {
  return isIP(addr.host) === 6 ? `[${addr.host}]:${addr.port}` : `${addr.host}:${addr.port}`;
}
