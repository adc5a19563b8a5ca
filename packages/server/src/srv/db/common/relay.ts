/**
 * The byte relay of a database session, for every engine: client → client tap → database and
 * database → server tap → client, with one teardown. A side that closes lets what is already
 * on its way to the other arrive first; a tap that cannot parse its stream ends the session;
 * a session terminated by Warden (a lock, expiry) runs the engine's `terminate` (tell the
 * client, stop the query) and then ends after a grace period.
 */
import type { Duplex } from 'node:stream';
import type { Logger } from '../../../log';
import type { DbSession } from './session';

/** How long a terminated session may take to deliver its last message before it is cut. */
export const TERMINATE_GRACE_MS = 1000;

export interface RelayOptions {
  session: DbSession;
  logger: Logger;
  client: Duplex;
  upstream: Duplex;
  /** Parses what the client sends (audit, rewrites) on its way to the database. */
  clientTap: Duplex;
  /** Parses what the database sends on its way to the client. */
  serverTap: Duplex;
  /** Bytes already read from each side during the handshake. */
  clientRest: Buffer;
  upstreamRest: Buffer;
  /** Log messages for a malformed stream from each side. */
  malformed: { client: string; server: string };
  /** The engine's part of ending a session on Warden's decision (the message, the kill). */
  terminate(reason: string): void;
}

/** Relays until either side is gone; resolves once both sockets are destroyed. */
export function relay(o: RelayOptions): Promise<void> {
  const { client, upstream, clientTap, serverTap, session, logger } = o;
  return new Promise<void>((resolve) => {
    let finished = false;
    const finish = () => {
      if (finished) return;
      finished = true;
      client.destroy();
      upstream.destroy();
      resolve();
    };
    session.onTerminate((reason) => {
      o.terminate(reason);
      setTimeout(finish, TERMINATE_GRACE_MS).unref();
    });
    clientTap.on('error', (e) => {
      logger.info({ err: e, session: session.id }, o.malformed.client);
      finish();
    });
    serverTap.on('error', (e) => {
      logger.info({ err: e, session: session.id }, o.malformed.server);
      finish();
    });
    client.on('close', finish);
    upstream.on('close', () => {
      // Let what is already on its way to the client arrive, then close.
      if (!serverTap.writableEnded) serverTap.end();
    });
    serverTap.on('end', () => client.end());
    client.on('finish', finish);
    upstream.on('end', () => {
      if (!serverTap.writableEnded) serverTap.end();
    });
    client.on('end', () => upstream.end());
    if (o.clientRest.length) client.unshift(o.clientRest);
    if (o.upstreamRest.length) upstream.unshift(o.upstreamRest);
    client.pipe(clientTap).pipe(upstream, { end: false });
    upstream.pipe(serverTap).pipe(client, { end: false });
    client.resume();
    upstream.resume();
  });
}
