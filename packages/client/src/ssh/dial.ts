/**
 * Dialing a node through the proxy: TLS to the proxy port with ALPN `warden-ssh/1` and the
 * profile's client certificate, one request line, one answer line, then raw SSH bytes
 * (protocol in packages/server/src/proxy/ssh-tunnel.ts).
 */
import type { Duplex } from 'node:stream';
import { connect } from 'node:tls';
import { isErrorCode, WardenError } from '@warden/api';
import { splitHostPort } from '../api';
import type { LoadedProfile } from '../profile';

export const SSH_ALPN = 'warden-ssh/1';
const MAX_ANSWER = 64 * 1024;

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
export function dialNode(
  profile: LoadedProfile,
  req: { node: string; login: string },
): Promise<{ stream: Duplex; node: NodeInfo }> {
  const { host, port } = splitHostPort(profile.proxy);
  return new Promise((resolve, reject) => {
    const socket = connect({
      host,
      port,
      servername: /^[\d.]+$|:/.test(host) ? undefined : host,
      ca: profile.hostCaPems,
      rejectUnauthorized: !profile.insecure,
      cert: profile.tlsCert,
      key: profile.keyPem,
      ALPNProtocols: [SSH_ALPN],
    });
    let buffered = Buffer.alloc(0);
    let settled = false;
    const fail = (e: Error) => {
      if (settled) return;
      settled = true;
      socket.destroy();
      reject(e);
    };
    socket.once('secureConnect', () => {
      if (socket.alpnProtocol !== SSH_ALPN) {
        fail(
          new WardenError(
            'WARDEN_ERR_CONNECTION',
            `the proxy at ${profile.proxy} does not route SSH (no ${SSH_ALPN})`,
          ),
        );
        return;
      }
      socket.write(`${JSON.stringify(req)}\n`);
    });
    const onData = (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      const nl = buffered.indexOf(0x0a);
      if (nl === -1) {
        if (buffered.length > MAX_ANSWER)
          fail(new WardenError('WARDEN_ERR_CONNECTION', 'the proxy sent a malformed answer'));
        return;
      }
      socket.off('data', onData);
      socket.pause();
      let answer: { ok?: boolean; code?: unknown; message?: unknown; node?: NodeInfo };
      try {
        answer = JSON.parse(buffered.subarray(0, nl).toString('utf8')) as typeof answer;
      } catch {
        fail(new WardenError('WARDEN_ERR_CONNECTION', 'the proxy sent a malformed answer'));
        return;
      }
      if (!answer.ok || !answer.node) {
        const code = isErrorCode(answer.code) ? answer.code : 'WARDEN_ERR_INTERNAL';
        fail(
          new WardenError(
            code,
            typeof answer.message === 'string' ? answer.message : 'the proxy refused the connection',
          ),
        );
        return;
      }
      const rest = buffered.subarray(nl + 1);
      if (rest.length) socket.unshift(rest);
      settled = true;
      resolve({ stream: socket, node: answer.node });
    };
    socket.on('data', onData);
    socket.once('error', (e: NodeJS.ErrnoException) =>
      fail(
        e instanceof WardenError
          ? e
          : new WardenError(
              'WARDEN_ERR_CONNECTION',
              `cannot reach the proxy at ${profile.proxy}: ${e.message}`,
            ),
      ),
    );
    socket.once('close', () =>
      fail(new WardenError('WARDEN_ERR_CONNECTION', 'the proxy closed the connection')),
    );
  });
}
