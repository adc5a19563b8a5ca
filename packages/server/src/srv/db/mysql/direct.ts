/**
 * The opening of a MySQL connection made straight to the proxy's MySQL listener by a native
 * client with its database certificate (`mysql --ssl-cert … --ssl-key …`, mysql2 `ssl`): the
 * server speaks first, so the listener greets (seq 0) announcing TLS, reads the client's
 * SSLRequest (seq 1), and only then starts TLS; the engine takes over after the handshake
 * with `greeted` (it reads the HandshakeResponse41, seq 2, inside TLS, and answers with seq 3).
 *
 *   client                              proxy (MySQL listener)
 *     │ ◀── HandshakeV10 (0, CLIENT_SSL) ── │
 *     │ SSLRequest (1) ───────────────────▶ │ a full HandshakeResponse instead: ERR (2), close
 *     │ TLS (client certificate) ═════════▶ │ → identify, route, db_service (engine, greeted)
 *
 * Internal to `srv/db/mysql`; tested end to end in `test/db/mysql.e2e.test.ts`.
 */
import { randomInt } from 'node:crypto';
import type { Duplex } from 'node:stream';
import { endWith, StreamReader } from '../common';
import { DEFAULT_SERVER_VERSION } from './engine';
import {
  Cap,
  DEFAULT_CHARSET,
  ErrorCode,
  errPacket,
  handshakeV10,
  MAX_HANDSHAKE_PAYLOAD,
  MySqlProtocolError,
  NATIVE_PASSWORD,
  OFFERED_CAPABILITIES,
  packet,
  packetHeader,
  parseHandshakeResponse,
  SERVER_STATUS_AUTOCOMMIT,
} from './protocol';

/** What the engine needs of an opening done before TLS (`DbConnection.greeted`). */
export interface MySqlGreeted {
  /** The connection id the greeting announced (`KILL QUERY <id>` maps from it). */
  connectionId: number;
}

/** How long a client may take to answer the greeting with its SSLRequest. */
const OPENING_TIMEOUT_MS = 10_000;

/**
 * Greets `socket` announcing TLS and reads the client's SSLRequest. Resolves with the greeting's
 * connection id, the socket paused and whatever came after the SSLRequest (the start of the TLS
 * handshake) put back; undefined when the client did not ask for TLS (it got an ERR packet
 * saying how to connect) or went away.
 */
export async function mysqlTlsOpening(socket: Duplex): Promise<MySqlGreeted | undefined> {
  const connectionId = randomInt(0x40000000, 0x7fffffff);
  const authData = Buffer.alloc(20);
  for (let i = 0; i < authData.length; i++) authData[i] = randomInt(1, 128);
  socket.write(
    packet(
      0,
      handshakeV10({
        serverVersion: DEFAULT_SERVER_VERSION,
        connectionId,
        authData,
        capabilities: OFFERED_CAPABILITIES | Cap.SSL,
        charset: DEFAULT_CHARSET,
        status: SERVER_STATUS_AUTOCOMMIT,
        authPlugin: NATIVE_PASSWORD,
      }),
    ),
  );
  const reader = new StreamReader(socket);
  const timer = setTimeout(() => socket.destroy(), OPENING_TIMEOUT_MS);
  let seq = 1;
  try {
    const { length, seq: s } = packetHeader(await reader.read(4));
    seq = s;
    if (length > MAX_HANDSHAKE_PAYLOAD) throw new MySqlProtocolError('packet too long');
    const r = parseHandshakeResponse(await reader.read(length));
    if (!('ssl' in r)) {
      reader.release();
      await endWith(
        socket,
        errPacket((seq + 1) & 0xff, {
          ...ErrorCode.accessDenied,
          message:
            'Warden: this port takes TLS with your database certificate only; `wsh db config NAME` prints the options (or use `wsh proxy db NAME --tunnel`)',
        }),
      );
      return undefined;
    }
    const rest = reader.release();
    if (rest.length) socket.unshift(rest);
    return { connectionId };
  } catch (e) {
    reader.release();
    if (e instanceof MySqlProtocolError)
      await endWith(
        socket,
        errPacket((seq + 1) & 0xff, { ...ErrorCode.badHandshake, message: `Bad handshake: ${e.message}` }),
      );
    else socket.destroy();
    return undefined;
  } finally {
    clearTimeout(timer);
  }
}
