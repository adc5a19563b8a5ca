/**
 * The relay over real sockets with pass-through taps: bytes both ways, several pieces of one
 * chunk in order, the audit hold (the client is not read while the audit log is behind),
 * nothing of the client's passed on after Warden terminated the session, a tap's interrupt
 * closing the client's side, the database's side of a termination after the pass of ends (or
 * at the session's finish), and a malformed stream ending both.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, connect as netConnect, type Socket } from 'node:net';
import { test } from 'node:test';
import { relay, TapBase } from './relay';
import type { DbSession } from './session';

const quiet = { debug() {}, info() {}, warn() {}, error() {} };

class PassTap extends TapBase {
  seen: string[] = [];
  /** Splits each chunk in two pieces (to check order when a chunk makes several writes). */
  split = false;
  fail = false;
  push(chunk: Buffer): void {
    if (this.fail) throw new Error('malformed');
    this.seen.push(chunk.toString());
    if (this.split && chunk.length > 1) {
      this.out(chunk.subarray(0, 1));
      this.out(chunk.subarray(1));
    } else this.out(chunk);
  }
  interrupt(last: string): void {
    this.out(Buffer.from(last));
    this.close();
  }
}

/** A connected pair of sockets: [ours, theirs]. */
async function pair(): Promise<[Socket, Socket]> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const theirs = netConnect((server.address() as { port: number }).port, '127.0.0.1');
  const [ours] = (await once(server, 'connection')) as [Socket];
  server.close();
  await once(theirs, 'connect');
  return [ours, theirs];
}

/** Reads from `s` until `want` bytes came (or the stream ended); returns them. */
function reader(s: Socket) {
  let got = '';
  const waiters: (() => void)[] = [];
  s.on('data', (d) => {
    got += d;
    for (const w of waiters.splice(0)) w();
  });
  const ended = new Promise<void>((r) => s.on('end', () => r()));
  return {
    get text() {
      return got;
    },
    ended,
    async until(text: string, ms = 5000): Promise<void> {
      const end = Date.now() + ms;
      while (!got.includes(text) && Date.now() < end)
        await new Promise<void>((r) => {
          waiters.push(r);
          setTimeout(r, 50);
        });
      assert.ok(got.includes(text), `expected ${JSON.stringify(text)} in ${JSON.stringify(got)}`);
    },
  };
}

async function setup(
  o: {
    hold?: () => Promise<void> | undefined;
    stopUpstream?: () => void;
    interruptOnTerminate?: boolean;
  } = {},
) {
  const [client, user] = await pair();
  const [upstream, database] = await pair();
  let onTerminate: ((reason: string) => void) | undefined;
  const terminated: string[] = [];
  const session = {
    id: 'test-session',
    onTerminate(fn: (reason: string) => void) {
      onTerminate = fn;
    },
  } as unknown as DbSession;
  const clientTap = new PassTap();
  const serverTap = new PassTap();
  const done = relay({
    session,
    logger: quiet,
    client,
    upstream,
    clientTap,
    serverTap,
    clientRest: Buffer.from('early-'),
    upstreamRest: Buffer.alloc(0),
    malformed: { client: 'bad client', server: 'bad server' },
    ...(o.hold ? { hold: o.hold } : {}),
    terminate: (reason) => {
      terminated.push(reason);
      if (o.interruptOnTerminate) serverTap.interrupt(`bye: ${reason}`);
    },
    ...(o.stopUpstream ? { stopUpstream: o.stopUpstream } : {}),
  });
  return {
    user,
    database,
    fromUser: reader(user),
    fromDb: reader(database),
    clientTap,
    serverTap,
    done,
    terminated,
    terminate: (reason: string) => onTerminate!(reason),
  };
}

test('bytes flow both ways, the handshake’s leftovers first, pieces of a chunk in order', async () => {
  const r = await setup();
  r.user.write('hello');
  await r.fromDb.until('early-hello');
  r.serverTap.split = true;
  r.database.write('world');
  await r.fromUser.until('world');
  // The database closes: the client's side ends after what was on its way.
  r.database.end('!');
  await r.fromUser.ended;
  assert.equal(r.fromUser.text, 'world!');
  r.user.end();
  await r.done;
});

test('the audit hold: the client is not read until the audit log has room', async () => {
  let release: (() => void) | undefined;
  let holds = 0;
  const r = await setup({
    hold: () => {
      if (holds++ > 0) return undefined;
      return new Promise<void>((res) => {
        release = res;
      });
    },
  });
  r.user.write('one');
  await r.fromDb.until('early-');
  await new Promise((res) => setTimeout(res, 50));
  r.user.write('two');
  await new Promise((res) => setTimeout(res, 100));
  assert.ok(!r.fromDb.text.includes('two'), 'read while held');
  release!();
  await r.fromDb.until('two');
  r.user.destroy();
  await r.done;
});

test('after Warden terminates the session nothing the client sends is passed on', async () => {
  const r = await setup();
  r.user.write('a');
  await r.fromDb.until('early-a');
  r.terminate('lock targeting User:"alice" is in force');
  assert.deepEqual(r.terminated, ['lock targeting User:"alice" is in force']);
  r.user.write('DROP TABLE');
  await new Promise((res) => setTimeout(res, 100));
  assert.equal(r.fromDb.text, 'early-a');
  // The engine's interrupt delivers its message and closes the client's side.
  r.serverTap.interrupt('bye');
  await r.fromUser.ended;
  assert.equal(r.fromUser.text, 'bye');
  await r.done;
});

test('a malformed stream from either side ends the session', async () => {
  const r = await setup();
  r.serverTap.fail = true;
  r.database.write('x');
  await r.done;
  await r.fromUser.ended.catch(() => undefined);
  assert.ok(r.user.destroyed || (await once(r.user, 'close')));
});

test('the database side of a termination runs after the pass that told every client, once', async () => {
  const events: string[] = [];
  const sessions = await Promise.all(
    [0, 1, 2].map((i) => setup({ interruptOnTerminate: true, stopUpstream: () => events.push(`stop ${i}`) })),
  );
  // One pass, as the session monitor makes it for a lock: every client is told first.
  sessions.forEach((r, i) => {
    r.terminate(`lock ${i}`);
    events.push(`told ${i}`);
  });
  assert.deepEqual(events, ['told 0', 'told 1', 'told 2']);
  await new Promise((res) => setImmediate(res));
  assert.deepEqual(events.slice(3), ['stop 0', 'stop 1', 'stop 2']);
  for (const r of sessions) {
    await r.fromUser.ended;
    assert.match(r.fromUser.text, /^bye: lock \d$/);
    r.user.destroy();
    await r.done;
  }
  assert.equal(events.length, 6, `each database side stopped once: ${events}`);
});

test('a session whose client goes away as it is terminated stops the database side once, on an open connection', async () => {
  const events: string[] = [];
  let upstreamOpen: boolean | undefined;
  const r: Awaited<ReturnType<typeof setup>> = await setup({
    stopUpstream: () => {
      events.push('stop');
      upstreamOpen = !r.database.destroyed;
    },
  });
  r.terminate('lock');
  // The client's side fails in the same pass (before any turn of the event loop).
  r.user.destroy();
  r.serverTap.interrupt('bye');
  await r.done;
  assert.deepEqual(events, ['stop']);
  assert.equal(upstreamOpen, true);
  await new Promise((res) => setImmediate(res));
  assert.deepEqual(events, ['stop'], 'not again after the pass');
});
