/**
 * A plain loopback listener whose every connection is dialed through the proxy and relayed
 * byte for byte: what `wsh proxy db --tunnel` and `wsh proxy app` share. The protocol
 * decides only how to dial (`dial`); pausing the local socket until the tunnel is up,
 * teardown in both directions and closing are done here once.
 * It should listen on loopback only: whoever reaches the port acts as the profile's user.
 */
import { createServer, type Server, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';

export interface LocalRelayOptions {
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 0: any free port. */
  port?: number;
  /** Opens the tunnel for one local connection. */
  dial: () => Promise<{ stream: Duplex }>;
  /** A connection could not be dialed (the local client just sees the connection close). */
  onError?: (e: Error) => void;
}

export interface LocalRelay {
  host: string;
  port: number;
  /** Open relayed connections. */
  readonly connections: number;
  close(): Promise<void>;
}

/**
 * @example
 *   const r = await startLocalRelay({ port: 5433, dial: () => dialDb(profile, route) });
 *   await r.close();
 */
export async function startLocalRelay(o: LocalRelayOptions): Promise<LocalRelay> {
  const host = o.host ?? '127.0.0.1';
  const open = new Set<Socket>();
  const server: Server = createServer((local) => {
    open.add(local);
    local.setNoDelay(true);
    local.pause();
    local.on('error', () => local.destroy());
    local.on('close', () => open.delete(local));
    o.dial().then(
      ({ stream }) => {
        if (local.destroyed) {
          stream.destroy();
          return;
        }
        stream.on('error', () => stream.destroy());
        stream.on('close', () => local.destroy());
        local.on('close', () => stream.destroy());
        local.pipe(stream);
        stream.pipe(local);
        local.resume();
        stream.resume();
      },
      (e: Error) => {
        o.onError?.(e);
        local.destroy();
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as { port: number }).port;
  return {
    host,
    port,
    get connections() {
      return open.size;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of open) s.destroy();
        server.close(() => resolve());
      }),
  };
}
