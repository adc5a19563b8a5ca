/**
 * A local plain listener for one database: every connection to it is dialed through the
 * proxy (`dialDb`) and relayed, so any client or driver can connect to 127.0.0.1:PORT
 * without TLS or certificates of its own (`wsh proxy db --tunnel`, `wsh db connect`).
 * It listens on loopback only: whoever reaches the port acts as the profile's user. Or on a
 * Unix-domain socket (`path`, mode 0600: only this user), which makes the local hop cheaper.
 */
import { DB_ALPN } from '@warden/api';
import { type LocalRelay, startLocalRelay } from '../api/local-relay';
import { SPARE_IDLE_MS, SpareConnection } from '../api/spare';
import type { LoadedProfile } from '../profile';
import { type DbRoute, dialDb } from './dial';

export interface DbTunnelOptions extends DbRoute {
  /**
   * The credentials, or a function asked at every new connection (a bot's identity file that
   * `wbot` renews while the tunnel runs: see `followIdentityFile`).
   */
  profile: LoadedProfile | (() => LoadedProfile);
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 0: any free port. */
  port?: number;
  /**
   * Listen on this Unix-domain socket instead of host:port (see `socketPath` for where
   * PostgreSQL and MySQL clients look for one).
   */
  path?: string;
  /** A connection could not be dialed (the local client just sees the connection close). */
  onError?: (e: Error) => void;
  /** How long a connection made ahead waits for a client (default SPARE_IDLE_MS; 0: none). */
  spareIdleMs?: number;
}

/** The running listener (see `startLocalRelay`). */
export type DbTunnel = LocalRelay;

/**
 * @example
 *   const t = await startDbTunnel({ profile, db: 'orders', dbUser: 'alice', port: 5433 });
 *   // psql "host=127.0.0.1 port=5433 user=alice dbname=orders sslmode=disable"
 *   await t.close();
 */
export async function startDbTunnel(o: DbTunnelOptions): Promise<DbTunnel> {
  const spare = new SpareConnection(DB_ALPN, o.spareIdleMs ?? SPARE_IDLE_MS);
  const relay = await startLocalRelay({
    ...(o.host !== undefined ? { host: o.host } : {}),
    ...(o.port !== undefined ? { port: o.port } : {}),
    ...(o.path !== undefined ? { path: o.path } : {}),
    ...(o.onError ? { onError: o.onError } : {}),
    dial: () => {
      const profile = typeof o.profile === 'function' ? o.profile() : o.profile;
      return spare.dial(profile, (ready) => dialDb(profile, o, ready));
    },
  });
  return {
    host: relay.host,
    port: relay.port,
    ...(relay.path !== undefined ? { path: relay.path } : {}),
    get connections() {
      return relay.connections;
    },
    close: () => {
      spare.close();
      return relay.close();
    },
  };
}
