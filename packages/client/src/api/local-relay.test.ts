import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, lstatSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { type AddressInfo, connect, createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { isWardenError } from '@warden/api';
import { startLocalRelay } from './local-relay';

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
