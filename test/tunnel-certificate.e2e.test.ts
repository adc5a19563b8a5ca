/**
 * The proxy's SSH and database tunnels (ALPN `warden-ssh/1`, `warden-db/1`) refuse a TLS
 * connection that brought no client certificate: the answer line is WARDEN_ERR_NOT_LOGGED_IN
 * and nothing is routed, whatever the request line asks for.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { connect } from 'node:tls';
import { DB_ALPN, SSH_ALPN } from '@warden/api';
import { startWarden, type WardenProcess } from '@warden/testkit';

let w: WardenProcess;
before(async () => {
  w = await startWarden();
});
after(async () => {
  await w?.stop();
});

/** Opens a tunnel without a client certificate, sends `request`, and returns the answer line. */
function answer(alpn: string, request: object): Promise<Record<string, unknown>> {
  const [host, port] = w.proxy.split(':') as [string, string];
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port: Number(port), ALPNProtocols: [alpn], rejectUnauthorized: false });
    let text = '';
    socket.setEncoding('utf8');
    socket.once('secureConnect', () => {
      assert.equal(socket.alpnProtocol, alpn);
      socket.write(`${JSON.stringify(request)}\n`);
    });
    socket.on('data', (chunk: string) => {
      text += chunk;
      const nl = text.indexOf('\n');
      if (nl === -1) return;
      socket.destroy();
      resolve(JSON.parse(text.slice(0, nl)) as Record<string, unknown>);
    });
    socket.on('error', reject);
    socket.on('close', () => reject(new Error(`closed without an answer: ${JSON.stringify(text)}`)));
  });
}

test('an SSH tunnel without a client certificate is refused: NOT_LOGGED_IN', async () => {
  const a = await answer(SSH_ALPN, { node: 'node-1', login: 'root' });
  assert.equal(a.ok, false);
  assert.equal(a.code, 'WARDEN_ERR_NOT_LOGGED_IN');
  assert.match(String(a.message), /client certificate; run `wsh login`/);
});

test('a database tunnel without a client certificate is refused: NOT_LOGGED_IN', async () => {
  const a = await answer(DB_ALPN, { db: 'orders' });
  assert.equal(a.ok, false);
  assert.equal(a.code, 'WARDEN_ERR_NOT_LOGGED_IN');
  assert.match(String(a.message), /client certificate; run `wsh login`/);
});
