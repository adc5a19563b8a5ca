/**
 * The local relay against real sockets: a Unix-socket relay (mode 0600, stale sockets replaced,
 * live ones and other files refused), bytes both ways unchanged (8 MiB through readers that
 * stall), back-pressure holding the sender while the far end does not read, each side's end
 * passed on after its last bytes, a remote close closing the local connection, and a failed
 * dial closing it with the error reported.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, lstatSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { type AddressInfo, connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { isWardenError } from '@warden/api';
import { type LocalRelay, startLocalRelay } from './local-relay';

/** An echo server standing in for the tunnel's far end (the relay under test is real). */
let echo: Server;
let echoPort = 0;
let dir = '';
const dial = () =>
  new Promise<{ stream: ReturnType<typeof connect> }>((resolve, reject) => {
    const s = connect(echoPort, '127.0.0.1', () => resolve({ stream: s }));
    s.once('error', reject);
  });

/** Sends `text` through the Unix socket `path` and resolves with what comes back. */
function roundTrip(path: string, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let got = '';
    const s = connect(path, () => s.write(text));
    s.on('data', (d) => {
      got += d;
      if (got.length >= text.length) {
        s.end();
        resolve(got);
      }
    });
    s.once('error', reject);
  });
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'warden-relay-'));
  echo = createServer((s) => s.pipe(s));
  await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
  echoPort = (echo.address() as AddressInfo).port;
});

after(() => {
  echo.close();
  rmSync(dir, { recursive: true, force: true });
});

test('a relay on a Unix socket: only its user may open it (0600), it relays both ways, and closing removes it', async () => {
  const path = join(dir, 'a.sock');
  const relay = await startLocalRelay({ path, dial });
  try {
    assert.equal(relay.path, path);
    const st = lstatSync(path);
    assert.ok(st.isSocket());
    assert.equal(st.mode & 0o777, 0o600);
    assert.equal(await roundTrip(path, 'hello through the socket'), 'hello through the socket');
  } finally {
    await relay.close();
  }
  assert.equal(existsSync(path), false, 'the socket file is gone after close');
});

test('a live socket is not taken over; a stale one (its relay killed) is replaced', async () => {
  const path = join(dir, 'b.sock');
  const first = await startLocalRelay({ path, dial });
  try {
    await assert.rejects(
      startLocalRelay({ path, dial }),
      (e) => isWardenError(e, 'WARDEN_ERR_BAD_PARAMETER') && /already listens/.test((e as Error).message),
    );
    assert.equal(await roundTrip(path, 'still the first'), 'still the first');
  } finally {
    await first.close();
  }
  // A process that listens on the path and dies by SIGKILL leaves the socket file behind.
  const killed = spawnSync(process.execPath, [
    '-e',
    `require('net').createServer().listen(${JSON.stringify(path)}, () => process.kill(process.pid, 'SIGKILL'))`,
  ]);
  assert.equal(killed.signal, 'SIGKILL');
  assert.ok(lstatSync(path).isSocket(), 'stale socket left behind');
  const second = await startLocalRelay({ path, dial });
  try {
    assert.equal(await roundTrip(path, 'the new relay'), 'the new relay');
  } finally {
    await second.close();
  }
});

test('a path that is not a socket, in a missing directory, or too long is refused and left alone', async () => {
  const file = join(dir, 'not-a-socket');
  writeFileSync(file, 'keep me');
  await assert.rejects(
    startLocalRelay({ path: file, dial }),
    (e) => isWardenError(e, 'WARDEN_ERR_BAD_PARAMETER') && /not a socket/.test((e as Error).message),
  );
  assert.equal(readFileSync(file, 'utf8'), 'keep me');
  await assert.rejects(
    startLocalRelay({ path: join(dir, 'missing', 'c.sock'), dial }),
    (e) =>
      isWardenError(e, 'WARDEN_ERR_BAD_PARAMETER') && /directory does not exist/.test((e as Error).message),
  );
  await assert.rejects(
    startLocalRelay({ path: join(dir, 'x'.repeat(120)), dial }),
    (e) => isWardenError(e, 'WARDEN_ERR_BAD_PARAMETER') && /too long/.test((e as Error).message),
  );
});

// ---- TCP relays: data, back-pressure, ends and closes ---------------------------------------

const remotes: Socket[] = [];
/** The far end: every dial is a plain TCP connection to this server (standing in for a tunnel). */
const far = createServer({ allowHalfOpen: true }, (s) => {
  remotes.push(s);
  s.on('error', () => undefined);
});
await new Promise<void>((r) => far.listen(0, '127.0.0.1', () => r()));
const farPort = (far.address() as AddressInfo).port;
const relays: LocalRelay[] = [];

async function relayTo(dial?: () => Promise<{ stream: Socket }>, onError?: (e: Error) => void) {
  const r = await startLocalRelay({
    dial:
      dial ??
      (async () => {
        const s = connect({ port: farPort, host: '127.0.0.1', allowHalfOpen: true });
        await once(s, 'connect');
        return { stream: s };
      }),
    ...(onError ? { onError } : {}),
  });
  relays.push(r);
  return r;
}

async function nextRemote(): Promise<Socket> {
  const n = remotes.length;
  while (remotes.length === n) await new Promise((r) => setTimeout(r, 5));
  return remotes[n]!;
}

after(async () => {
  for (const r of relays) await r.close();
  for (const s of remotes) s.destroy();
  await new Promise((r) => far.close(r));
});

test('8 MiB each way arrive unchanged through readers that stall (back-pressure)', async () => {
  const r = await relayTo();
  const local = connect({ port: r.port, host: r.host, allowHalfOpen: true });
  const remote = await nextRemote();
  const size = 8 * 1024 * 1024;
  const up = Buffer.alloc(size);
  const down = Buffer.alloc(size);
  for (let i = 0; i < size; i++) {
    up[i] = i % 251;
    down[i] = (i * 7) % 253;
  }
  const readAll = (s: Socket) =>
    new Promise<Buffer>((resolve) => {
      const chunks: Buffer[] = [];
      let got = 0;
      s.on('data', (c: Buffer) => {
        chunks.push(c);
        got += c.length;
        // Stall now and then: the writer must wait, not buffer without bound.
        if (got % (1024 * 1024) < c.length) {
          s.pause();
          setTimeout(() => s.resume(), 20);
        }
        if (got >= size) resolve(Buffer.concat(chunks));
      });
    });
  const atRemote = readAll(remote);
  const atLocal = readAll(local);
  // Both ways at once, neither side ending (the relay's sockets are not half-open).
  local.write(up);
  remote.write(down);
  const [gotUp, gotDown] = await Promise.all([atRemote, atLocal]);
  assert.ok(gotUp.equals(up), 'local → remote unchanged');
  assert.ok(gotDown.equals(down), 'remote → local unchanged');
  local.destroy();
});

test('a remote that does not read stops the relay reading the local side (nothing piles up in between)', async () => {
  const r = await relayTo();
  const local = connect({ port: r.port, host: r.host });
  const remote = await nextRemote();
  remote.pause();
  const size = 64 * 1024 * 1024;
  local.write(Buffer.alloc(size, 1));
  await new Promise((res) => setTimeout(res, 300));
  // Kernel buffers hold a few MiB; a relay that ignored back-pressure would have read it all.
  assert.ok(local.writableLength > size / 2, `still waiting at the sender: ${local.writableLength}`);
  let got = 0;
  remote.on('data', (c: Buffer) => {
    got += c.length;
  });
  remote.resume();
  while (got < size) await new Promise((res) => setTimeout(res, 10));
  assert.equal(got, size);
  local.destroy();
});

test('each side’s end is passed on after its last bytes', async () => {
  for (const closer of ['local', 'remote'] as const) {
    const r = await relayTo();
    const local = connect({ port: r.port, host: r.host, allowHalfOpen: true });
    local.on('error', () => undefined);
    const remote = await nextRemote();
    const [from, to] = closer === 'local' ? [local, remote] : [remote, local];
    let got = '';
    to.on('data', (c) => {
      got += c;
    });
    from.end('the last bytes');
    await once(to, 'end');
    assert.equal(got, 'the last bytes', `${closer} end`);
    local.destroy();
  }
});

test('a remote that closes closes the local connection', async () => {
  const r = await relayTo();
  const local = connect({ port: r.port, host: r.host });
  local.on('error', () => undefined);
  const remote = await nextRemote();
  remote.destroy();
  await once(local, 'close');
  while (r.connections !== 0) await new Promise((res) => setTimeout(res, 5));
});

test('a dial that fails closes the local connection and reports the error', async () => {
  const errors: Error[] = [];
  const r = await relayTo(
    () => Promise.reject(new Error('refused by the proxy')),
    (e) => errors.push(e),
  );
  const local = connect({ port: r.port, host: r.host });
  local.on('error', () => undefined);
  await once(local, 'close');
  assert.deepEqual(
    errors.map((e) => e.message),
    ['refused by the proxy'],
  );
});
