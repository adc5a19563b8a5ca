import assert from 'node:assert/strict';
import { type AddressInfo, connect as netConnect, type Socket } from 'node:net';
import { test } from 'node:test';
import { createServer as createTlsServer, type TLSSocket, connect as tlsConnect } from 'node:tls';
import { dbServerTls, pgCancelRequest } from '../../../../test/support/db-engine';
import { silentLogger } from '../log';
import { mysqlDirectListener, proxyFrontDoor } from './db-direct';

test('the proxy port turns Nagle off for every connection (an RPC answer in two writes must not wait for a delayed ACK)', () => {
  const door = proxyFrontDoor({ tls: createTlsServer(), timeoutMs: 1000, logger: silentLogger });
  // Node keeps the option on the server (`noDelay`) and sets TCP_NODELAY on each accepted socket.
  assert.equal((door as typeof door & { noDelay?: boolean }).noDelay, true);
});

test('a plain CancelRequest at the proxy port (libpq’s ^C, no TLS) goes to the direct path with its key; after a GSSENCRequest too', async () => {
  const cancels: { key: { processId: number; secretKey: number }; addr: string }[] = [];
  // Test double for DbDirect: records the cancels the front door hands over.
  const direct = {
    handle: () => assert.fail('no TLS connection in this test'),
    cancel: (key: { processId: number; secretKey: number }, addr: string) => cancels.push({ key, addr }),
  };
  const door = proxyFrontDoor({
    tls: createTlsServer(),
    postgres: { direct, tls: {} },
    timeoutMs: 5000,
    logger: silentLogger,
  });
  await new Promise<void>((r) => door.listen(0, '127.0.0.1', () => r()));
  const { port } = door.address() as AddressInfo;
  /** Sends `pieces` one write at a time; resolves with what the server said once it closed. */
  const exchange = (pieces: Buffer[]) =>
    new Promise<string>((resolve, reject) => {
      const s = netConnect({ host: '127.0.0.1', port });
      let got = '';
      s.on('data', (d) => {
        got += d.toString('latin1');
      });
      s.on('error', reject);
      s.on('close', () => resolve(got));
      let i = 0;
      const next = () => {
        if (i < pieces.length) s.write(pieces[i++]!, () => setImmediate(next));
      };
      next();
    });
  try {
    const plain = pgCancelRequest(123456, -987654321);
    // In two pieces: the key arrives after the head.
    assert.equal(
      await exchange([plain.subarray(0, 10), plain.subarray(10)]),
      '',
      'nothing is said either way',
    );
    const gssenc = Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x30]);
    assert.equal(await exchange([gssenc, pgCancelRequest(7, 8)]), 'N');
    assert.deepEqual(cancels, [
      { key: { processId: 123456, secretKey: -987654321 }, addr: '127.0.0.1' },
      { key: { processId: 7, secretKey: 8 }, addr: '127.0.0.1' },
    ]);
    // A plaintext startup is still refused (closed), and hands nothing over.
    const startup = Buffer.from([0, 0, 0, 9, 0, 3, 0, 0, 0]);
    assert.equal(await exchange([startup]), '');
    assert.equal(cancels.length, 2);
  } finally {
    door.close();
  }
});

/**
 * A MySQL SSLRequest as a client sends it after the greeting: header (32 bytes, sequence 1),
 * capabilities PROTOCOL_41 | SSL | SECURE_CONNECTION, 16 MiB packets, utf8mb4_general_ci, filler.
 */
const MYSQL_SSL_REQUEST = (() => {
  const body = Buffer.alloc(32);
  body.writeUInt32LE(0x200 | 0x800 | 0x8000, 0);
  body.writeUInt32LE(1 << 24, 4);
  body[8] = 45;
  return Buffer.concat([Buffer.from([32, 0, 0, 1]), body]);
})();

/** What a TLS client saw of a listener: the session tickets' sizes, the bytes, the version. */
interface TicketsSeen {
  tickets: number[];
  data: string;
  version: string | null;
}

/**
 * Connects to `port`; `preamble` does the protocol's plaintext part on the socket and calls
 * `startTls` when the server expects the TLS handshake; resolves when the server closes.
 */
function ticketsSeen(
  port: number,
  ca: string[],
  preamble: (s: Socket, startTls: () => void) => void,
): Promise<TicketsSeen> {
  return new Promise((resolve, reject) => {
    const s = netConnect({ host: '127.0.0.1', port });
    s.on('error', reject);
    preamble(s, () => {
      const t = tlsConnect({ socket: s, host: '127.0.0.1', ca });
      const seen: TicketsSeen = { tickets: [], data: '', version: null };
      t.on('secureConnect', () => {
        seen.version = t.getProtocol();
      });
      // TLS 1.3 tickets come right after the handshake, before the server's first byte.
      t.on('session', () => seen.tickets.push(t.getTLSTicket()?.length ?? 0));
      t.on('data', (d) => {
        seen.data += d.toString('latin1');
      });
      t.on('error', reject);
      t.on('close', () => resolve(seen));
    });
  });
}

test('the PostgreSQL entry makes no encrypted session tickets (libpq never resumes; each cost ~0.3 ms of CPU per connection)', async () => {
  const { tls } = await dbServerTls();
  // Test double for DbDirect: greets each TLS connection with one byte and closes.
  const direct = {
    handle: (socket: TLSSocket) => socket.end('x'),
    cancel: () => assert.fail('no cancel in this test'),
  };
  const door = proxyFrontDoor({
    tls: createTlsServer(),
    postgres: { direct, tls: { key: tls.key, cert: tls.cert } },
    timeoutMs: 5000,
    logger: silentLogger,
  });
  await new Promise<void>((r) => door.listen(0, '127.0.0.1', () => r()));
  const { port } = door.address() as AddressInfo;
  try {
    const seen = await ticketsSeen(port, tls.ca, (s, startTls) => {
      s.once('data', (b) => {
        assert.equal(b.toString('latin1'), 'S');
        startTls();
      });
      s.write(Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f])); // SSLRequest
    });
    assert.equal(seen.data, 'x');
    assert.equal(seen.version, 'TLSv1.3');
    // OpenSSL still announces TLS 1.3 tickets under SSL_OP_NO_TICKET, but as bare session ids
    // (32 bytes, nothing kept or encrypted); a stateless ticket is an encrypted copy of the
    // session (~240 bytes), made twice per connection by default.
    assert.ok(seen.tickets.length > 0 && seen.tickets.every((n) => n <= 32), `tickets: ${seen.tickets}`);
  } finally {
    door.close();
  }
});

test('the MySQL listener makes no encrypted session tickets either (mysql2 and the mysql clients do not resume)', async () => {
  const { tls } = await dbServerTls();
  // Test double for DbDirect: writes one byte on each TLS connection and closes.
  const direct = { handle: (socket: TLSSocket) => socket.end('x') };
  const listener = mysqlDirectListener({
    direct,
    tls: { key: tls.key, cert: tls.cert },
    timeoutMs: 5000,
    logger: silentLogger,
  });
  await new Promise<void>((r) => listener.listen(0, '127.0.0.1', () => r()));
  const { port } = listener.address() as AddressInfo;
  try {
    const seen = await ticketsSeen(port, tls.ca, (s, startTls) => {
      // The greeting, then the SSLRequest, then TLS.
      s.once('data', () => {
        s.write(MYSQL_SSL_REQUEST);
        startTls();
      });
    });
    assert.equal(seen.data, 'x');
    assert.equal(seen.version, 'TLSv1.3');
    assert.ok(seen.tickets.length > 0 && seen.tickets.every((n) => n <= 32), `tickets: ${seen.tickets}`);
  } finally {
    listener.close();
  }
});
