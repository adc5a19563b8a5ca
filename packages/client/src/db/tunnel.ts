/**
 * A local plain listener for one database: every connection to it is dialed through the
 * proxy (`dialDb`) and relayed, so any client or driver can connect to 127.0.0.1:PORT
 * without TLS or certificates of its own (`wsh proxy db --tunnel`, `wsh db connect`).
 * It listens on loopback only: whoever reaches the port acts as the profile's user.
 */
import { createServer, type Server, type Socket } from 'node:net';
import type { LoadedProfile } from '../profile';
import { type DbRoute, dialDb } from './dial';

export interface DbTunnelOptions extends DbRoute {
  profile: LoadedProfile;
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 0: any free port. */
  port?: number;
  /** A connection could not be dialed (the local client just sees the connection close). */
  onError?: (e: Error) => void;
}

export interface DbTunnel {
  host: string;
  port: number;
  /** Open relayed connections. */
  readonly connections: number;
  close(): Promise<void>;
}

/**
 * @example
 *   const t = await startDbTunnel({ profile, db: 'orders', dbUser: 'alice', port: 5433 });
 *   // psql "host=127.0.0.1 port=5433 user=alice dbname=orders sslmode=disable"
 *   await t.close();
 */
export async function startDbTunnel(o: DbTunnelOptions): Promise<DbTunnel> {
  const host = o.host ?? '127.0.0.1';
  const open = new Set<Socket>();
  const server: Server = createServer((local) => {
    open.add(local);
    local.setNoDelay(true);
    local.pause();
    local.on('error', () => local.destroy());
    local.on('close', () => open.delete(local));
    dialDb(o.profile, o).then(
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
