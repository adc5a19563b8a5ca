/**
 * A local plain listener for one database: every connection to it is dialed through the
 * proxy (`dialDb`) and relayed, so any client or driver can connect to 127.0.0.1:PORT
 * without TLS or certificates of its own (`wsh proxy db --tunnel`, `wsh db connect`).
 * It listens on loopback only: whoever reaches the port acts as the profile's user. Or on a
 * Unix-domain socket (`path`, mode 0600: only this user), which makes the local hop cheaper.
 */
import type { TLSSocket } from 'node:tls';
import { DB_ALPN, isWardenError } from '@warden/api';
import { type LocalRelay, startLocalRelay } from '../api/local-relay';
import { connectProxy } from '../api/tunnel';
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
  const spare = new SpareConnection(o.spareIdleMs ?? SPARE_IDLE_MS);
  const relay = await startLocalRelay({
    ...(o.host !== undefined ? { host: o.host } : {}),
    ...(o.port !== undefined ? { port: o.port } : {}),
    ...(o.path !== undefined ? { path: o.path } : {}),
    ...(o.onError ? { onError: o.onError } : {}),
    dial: async () => {
      const profile = typeof o.profile === 'function' ? o.profile() : o.profile;
      const ready = spare.take(profile);
      try {
        if (!ready) return await dialDb(profile, o);
        try {
          return await dialDb(profile, o, ready);
        } catch (e) {
          // The connection made ahead was gone before the proxy answered (nothing was decided
          // on it): dial afresh. A refusal (a lock, a missing db) stands.
          if (!isWardenError(e, 'WARDEN_ERR_CONNECTION')) throw e;
          return await dialDb(profile, o);
        }
      } finally {
        // The next spare once this connection's request is answered: making a TLS socket (its
        // session, the ClientHello) is CPU that would otherwise delay this request. The
        // handshake then overlaps the client's own start-up and the database's.
        spare.fill(profile);
      }
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

/**
 * How long a connection made ahead waits for a local client before it is closed (well below
 * the proxy's 30 s for a request line); the next local connection makes a new one.
 */
export const SPARE_IDLE_MS = 10_000;

/** The credentials a connection was made with: a spare serves only the same ones. */
function sameCredentials(a: LoadedProfile, b: LoadedProfile): boolean {
  return (
    a === b ||
    (a.proxy === b.proxy && a.tlsCert === b.tlsCert && a.keyPem === b.keyPem && a.insecure === b.insecure)
  );
}

/**
 * One TLS connection to the proxy, handshake done, ready for the next local connection while
 * the tunnel is in use: a client that connects again (a connection pool, a script) does not
 * wait for a TLS handshake. It carries no request: the proxy identifies the user and checks
 * locks when the request comes, as for any connection.
 */
class SpareConnection {
  #spare: { profile: LoadedProfile; socket: Promise<TLSSocket>; timer: NodeJS.Timeout } | undefined;
  #closed = false;
  readonly #idleMs: number;

  constructor(idleMs: number) {
    this.#idleMs = idleMs;
    if (idleMs <= 0) this.#closed = true;
  }

  /** The spare made with `profile`'s credentials, if any (it is then no longer the spare). */
  take(profile: LoadedProfile): Promise<TLSSocket> | undefined {
    const s = this.#spare;
    this.#spare = undefined;
    if (!s) return undefined;
    clearTimeout(s.timer);
    if (sameCredentials(s.profile, profile)) return s.socket;
    void s.socket.then(
      (socket) => socket.destroy(),
      () => undefined,
    );
    return undefined;
  }

  /** Makes a new spare with `profile` (none while one is there or after `close`). */
  fill(profile: LoadedProfile): void {
    if (this.#closed || this.#spare) return;
    const socket = connectProxy(profile, DB_ALPN);
    const entry = {
      profile,
      socket,
      timer: setTimeout(() => {
        if (this.#spare === entry) this.#spare = undefined;
        void socket.then(
          (s) => s.destroy(),
          () => undefined,
        );
      }, this.#idleMs).unref(),
    };
    this.#spare = entry;
    socket.then(
      (s) => {
        // Closed by the proxy while waiting: the next connection dials afresh.
        s.once('close', () => {
          if (this.#spare === entry) {
            clearTimeout(entry.timer);
            this.#spare = undefined;
          }
        });
      },
      () => {
        if (this.#spare === entry) {
          clearTimeout(entry.timer);
          this.#spare = undefined;
        }
      },
    );
  }

  close(): void {
    this.#closed = true;
    const s = this.#spare;
    this.#spare = undefined;
    if (s) {
      clearTimeout(s.timer);
      void s.socket.then(
        (socket) => socket.destroy(),
        () => undefined,
      );
    }
  }
}
