/**
 * `bench:db`'s "node relay" path: the least a Node proxy can do between pgbench and PostgreSQL
 * with TLS and client certificates on both sides, as pgbouncer is set up. libpq's SSLRequest is
 * answered 'S', TLS with the client's certificate checked; PostgreSQL is reached with an
 * SSLRequest and TLS with a client certificate; then each side's 'data' is written to the
 * other. No parsing, no audit, no access check, no locks: its CPU per transaction is the floor
 * under any proxy written on Node's streams and TLS (what Warden pays before doing any of its own
 * work). Run by bench/db.ts, not by users.
 *
 *   node bench/pg-relay-floor.mjs '{"pgPort":5432,"listen":{"cert":…,"key":…,"ca":…},"upstream":{"cert":…,"key":…,"ca":…}}'
 *
 * Prints `listening PORT` once it accepts connections (on a free loopback port).
 */
import { readFileSync } from 'node:fs';
import { createServer, connect as netConnect } from 'node:net';
import { createSecureContext, TLSSocket, connect as tlsConnect } from 'node:tls';

const o = JSON.parse(process.argv[2]);
const files = (f) => ({ cert: readFileSync(f.cert), key: readFileSync(f.key), ca: readFileSync(f.ca) });
const listenContext = createSecureContext(files(o.listen));
const upstreamContext = createSecureContext(files(o.upstream));
const SSL_REQUEST = Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]);

/** Resolves with the first `n` bytes `socket` sends (nothing else is read). */
function read(socket, n) {
  return new Promise((resolve, reject) => {
    const onReadable = () => {
      const b = socket.read(n);
      if (b === null) return;
      socket.off('readable', onReadable);
      resolve(b);
    };
    socket.once('error', reject);
    socket.on('readable', onReadable);
    onReadable();
  });
}

async function serve(raw) {
  raw.on('error', () => raw.destroy());
  const request = await read(raw, 8);
  if (!request.equals(SSL_REQUEST)) return raw.destroy();
  raw.write('S');
  const client = new TLSSocket(raw, {
    isServer: true,
    secureContext: listenContext,
    requestCert: true,
    rejectUnauthorized: true,
  });
  const tcp = netConnect({ host: '127.0.0.1', port: o.pgPort, noDelay: true });
  tcp.on('error', () => client.destroy());
  await new Promise((resolve) => tcp.once('connect', resolve));
  tcp.write(SSL_REQUEST);
  if ((await read(tcp, 1)).toString() !== 'S') return client.destroy();
  const server = tlsConnect({ socket: tcp, secureContext: upstreamContext, servername: 'localhost' });
  const end = () => {
    client.destroy();
    server.destroy();
  };
  for (const s of [client, server]) {
    s.on('error', end);
    s.on('close', end);
  }
  client.on('data', (chunk) => server.write(chunk));
  server.on('data', (chunk) => client.write(chunk));
}

const listener = createServer({ noDelay: true }, (raw) => {
  serve(raw).catch(() => raw.destroy());
});
listener.listen(0, '127.0.0.1', () => process.stdout.write(`listening ${listener.address().port}\n`));
process.on('SIGTERM', () => process.exit(0));
