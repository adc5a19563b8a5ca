/**
 * A TLS connection to the proxy made ahead of the next local connection of a long-lived relay
 * (`wsh proxy db --tunnel`, `wsh proxy app`): its handshake is done when a client connects, so
 * the client waits only for the tunnel's request line. It carries no request: the proxy
 * identifies the user and decides (locks, access) when the request comes, as for any
 * connection, so a connection made ahead decides nothing early.
 */
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { isWardenError } from '@warden/api';
import type { LoadedProfile } from '../profile';
import { connectProxy } from './tunnel';

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
 * One TLS connection to the proxy for one ALPN protocol, handshake done, ready for the next
 * local connection while the others are in use.
 *
 * @example
 *   const spare = new SpareConnection(DB_ALPN, SPARE_IDLE_MS);
 *   dial: () => spare.dial(profile, (ready) => dialDb(profile, route, ready)),
 */
export class SpareConnection {
  readonly #alpn: string;
  #spare: { profile: LoadedProfile; socket: Promise<TLSSocket>; timer: NodeJS.Timeout } | undefined;
  #closed = false;
  readonly #idleMs: number;

  /** `idleMs` 0: no connection is made ahead. */
  constructor(alpn: string, idleMs: number) {
    this.#alpn = alpn;
    this.#idleMs = idleMs;
    if (idleMs <= 0) this.#closed = true;
  }

  /**
   * Opens one tunnel with `open`, on the spare when there is one for these credentials (a
   * spare the proxy closed meanwhile is replaced by a fresh dial; a refusal stands), then
   * makes the next spare once this tunnel's request is answered: making a TLS socket (its
   * session, the ClientHello) is CPU that would otherwise delay this request, and the
   * handshake then overlaps the client's own work.
   */
  async dial<T extends { stream: Duplex }>(
    profile: LoadedProfile,
    open: (ready?: Promise<TLSSocket>) => Promise<T>,
  ): Promise<T> {
    const ready = this.take(profile);
    try {
      if (!ready) return await open();
      try {
        return await open(ready);
      } catch (e) {
        // The connection made ahead was gone before the proxy answered (nothing was decided
        // on it): dial afresh. A refusal (a lock, a missing db or app) stands.
        if (!isWardenError(e, 'WARDEN_ERR_CONNECTION')) throw e;
        return await open();
      }
    } finally {
      this.fill(profile);
    }
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
    const socket = connectProxy(profile, this.#alpn);
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
