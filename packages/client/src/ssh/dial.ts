/**
 * Dialing a node through the proxy: TLS to the proxy port with ALPN `warden-ssh/1` and the
 * profile's client certificate, one request line, one answer line, then raw SSH bytes
 * (protocol in packages/server/src/proxy/ssh-tunnel.ts).
 */
import type { Duplex } from 'node:stream';
import { SSH_ALPN } from '@warden/api';
import { openTunnel } from '../api/tunnel';
import type { LoadedProfile } from '../profile';

export interface NodeInfo {
  name: string;
  hostname: string;
  addr: string;
  labels: Record<string, string>;
  sub_kind?: string;
}

/**
 * TLS to the proxy, asks for `node` as `login`, returns a raw byte stream to the node's SSH
 * server. Throws WardenError with the proxy's reason (ACCESS_DENIED, LOCKED, NOT_FOUND…).
 */
export async function dialNode(
  profile: LoadedProfile,
  req: { node: string; login: string },
): Promise<{ stream: Duplex; node: NodeInfo }> {
  const { stream, info } = await openTunnel<NodeInfo>(profile, SSH_ALPN, req, 'node');
  return { stream, node: info };
}
