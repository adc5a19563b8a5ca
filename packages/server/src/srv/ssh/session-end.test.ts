/**
 * The hang-up order of a lock's sweep: the processes are signalled only after the messages
 * written in the same pass have reached a reader in this process (a proxy that relays them),
 * and every session of the pass is in one batch. Real loopback TCP sockets.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type Socket, connect as tcpConnect } from 'node:net';
import { test } from 'node:test';
import { afterGrace, afterMessagesLeave } from './session-end';

async function socketPair(): Promise<{ writer: Socket; reader: Socket; close(): void }> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  const accepted = once(server, 'connection');
  const writer = tcpConnect({ port, host: '127.0.0.1' });
  await once(writer, 'connect');
  const [reader] = (await accepted) as [Socket];
  return {
    writer,
    reader,
    close: () => {
      writer.destroy();
      reader.destroy();
      server.close();
    },
  };
}

test('hang-ups run after the pass’s messages reached a reader in this process, all in one batch', async () => {
  const trigger = await socketPair();
  const pairs = await Promise.all([socketPair(), socketPair(), socketPair()]);
  try {
    const events: string[] = [];
    pairs.forEach((p, i) => {
      p.reader.on('data', () => events.push(`relayed ${i}`));
    });
    const done = new Promise<void>((resolve) => {
      // The pass runs in an I/O callback, as the session monitor's sweep does (a lock arrives
      // with a request or a watch notification): a message, then a deferred hang-up, each.
      trigger.reader.once('data', () => {
        pairs.forEach((p, i) => {
          p.writer.write(`ERROR: lock ${i}\r\n`);
          afterMessagesLeave(() => {
            events.push(`hang up ${i}`);
            if (i === pairs.length - 1) resolve();
          });
        });
        events.push('pass over');
      });
    });
    trigger.writer.write('lock');
    await done;
    assert.equal(events[0], 'pass over', 'nothing runs inside the pass');
    const firstHangUp = events.findIndex((e) => e.startsWith('hang up'));
    for (let i = 0; i < pairs.length; i++)
      assert.ok(
        events.includes(`relayed ${i}`) && events.indexOf(`relayed ${i}`) < firstHangUp,
        `message ${i} relayed before any hang-up: ${events}`,
      );
    assert.deepEqual(
      events.slice(firstHangUp),
      ['hang up 0', 'hang up 1', 'hang up 2'],
      'one batch, in order',
    );
  } finally {
    for (const p of [trigger, ...pairs]) p.close();
  }
});

test('a throwing hang-up does not stop the others', async () => {
  const ran: number[] = [];
  await new Promise<void>((resolve) => {
    afterMessagesLeave(() => {
      throw new Error('already gone');
    });
    afterMessagesLeave(() => {
      ran.push(1);
      resolve();
    });
  });
  assert.deepEqual(ran, [1]);
});

test('the grace counts from when the messages left', async () => {
  // The grace timer does not hold a process open (a server's sockets do): this does.
  const keepAlive = setInterval(() => undefined, 1000);
  try {
    const started = performance.now();
    await new Promise<void>((resolve) => afterGrace(30, resolve));
    assert.ok(performance.now() - started >= 29);
  } finally {
    clearInterval(keepAlive);
  }
});
