import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createServer as createTlsServer } from 'node:tls';
import { silentLogger } from '../log';
import { proxyFrontDoor } from './db-direct';

test('the proxy port turns Nagle off for every connection (an RPC answer in two writes must not wait for a delayed ACK)', () => {
  const door = proxyFrontDoor({ tls: createTlsServer(), timeoutMs: 1000, logger: silentLogger });
  // Node keeps the option on the server (`noDelay`) and sets TCP_NODELAY on each accepted socket.
  assert.equal((door as typeof door & { noDelay?: boolean }).noDelay, true);
});
