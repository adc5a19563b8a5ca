/**
 * `closeWithDeadline` over a real TCP server on port 0: a connection the client holds open is
 * cut once the grace period has passed (and counted in the log); a shutdown that finishes in
 * time cuts nothing; one that never finishes still returns.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, createServer, type Server } from 'node:net';
import { test } from 'node:test';
import { closeWithDeadline, OpenConnections } from './shutdown';

function recorder() {
  const lines: { level: string; obj: object; msg?: string }[] = [];
  const log = (level: string) => (obj: object, msg?: string) => lines.push({ level, obj, msg });
  return {
    lines,
    logger: { debug: log('debug'), info: log('info'), warn: log('warn'), error: log('error') },
  };
}

async function serverWithOneClient(t: { after(fn: () => unknown): void }) {
  const server = createServer();
  const open = new OpenConnections();
  open.track(server);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const client = connect((server.address() as { port: number }).port, '127.0.0.1').resume();
  t.after(() => client.destroy());
  await once(server, 'connection');
  return { server, open, client };
}

const closeServer = (server: Server) => new Promise<void>((resolve) => server.close(() => resolve()));

test('a held-open connection is cut after the grace period and counted', async (t) => {
  const { server, open, client } = await serverWithOneClient(t);
  const { lines, logger } = recorder();
  const clientClosed = once(client, 'close');
  await closeWithDeadline(() => closeServer(server), { open, graceMs: 50, logger });
  await clientClosed;
  assert.equal(open.size, 0);
  assert.deepEqual(
    lines.map((l) => [l.level, l.msg]),
    [['warn', 'shutdown: cut 1 connection(s) still open after 50 ms']],
  );
});

test('a shutdown that finishes in time cuts nothing', async (t) => {
  const { server, open, client } = await serverWithOneClient(t);
  const { lines, logger } = recorder();
  await closeWithDeadline(
    async () => {
      client.end();
      await closeServer(server);
    },
    { open, graceMs: 5_000, logger },
  );
  assert.deepEqual(lines, []);
});

test('a service that never finishes closing does not hold shutdown', async () => {
  const { lines, logger } = recorder();
  await closeWithDeadline(() => new Promise<void>(() => {}), {
    open: new OpenConnections(),
    graceMs: 20,
    logger,
  });
  assert.deepEqual(
    lines.map((l) => l.level),
    ['warn', 'error'],
  );
});
