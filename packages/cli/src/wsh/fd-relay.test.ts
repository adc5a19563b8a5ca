import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { relayFd } from './fd-relay';

const RELAY = join(import.meta.dirname, 'fd-relay.ts');

/**
 * A child whose fd 0 is a real pipe relays it with relayFd into a slow sink: each write is
 * hashed only a millisecond later (as a TLS socket's write completes later), after more reads,
 * so a buffer handed to the next read before its write completed would corrupt the hash.
 */
const CHILD = `
import { createHash } from 'node:crypto';
import { Writable } from 'node:stream';
const { relayFd } = await import(${JSON.stringify(RELAY)});
const hash = createHash('sha256');
let bytes = 0;
const sink = new Writable({
  highWaterMark: 256 * 1024,
  write(chunk, _enc, cb) {
    setTimeout(() => { hash.update(chunk); bytes += chunk.length; cb(); }, 1);
  },
});
const relay = relayFd(0, sink);
if (!relay) { console.log('no relay'); process.exit(2); }
sink.on('finish', () => {
  console.log(JSON.stringify({ bytes, sha256: hash.digest('hex'), buffers: relay.buffersAllocated }));
  relay.close();
});
`;

test('relays a pipe byte for byte through a few reused buffers, with back-pressure', async () => {
  const data = randomBytes(8 * 1024 * 1024);
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', CHILD], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout.on('data', (c) => {
    out += c;
  });
  // Many small writes and a few large ones, as OpenSSH writes.
  for (let off = 0; off < data.length; ) {
    const n = Math.min(off % 3 ? 700 : 200_000, data.length - off);
    if (!child.stdin.write(data.subarray(off, off + n)))
      await new Promise((r) => child.stdin.once('drain', r));
    off += n;
  }
  child.stdin.end();
  const code = await new Promise((r) => child.on('close', r));
  assert.equal(code, 0, out);
  const got = JSON.parse(out) as { bytes: number; sha256: string; buffers: number };
  assert.equal(got.bytes, data.length);
  assert.equal(got.sha256, createHash('sha256').update(data).digest('hex'));
  // 8 MiB in reads of at most 64 KiB: 128 reads or more, yet only the buffers in flight exist
  // (256 KiB in flight before reading pauses, the read that passed it, the next one).
  assert.ok(got.buffers >= 1 && got.buffers <= 8, `read buffers allocated: ${got.buffers}`);
});

test('a file on the fd is not relayed (the caller pipes its stream instead)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'warden-fd-relay-'));
  try {
    const file = join(dir, 'input');
    writeFileSync(file, 'not a pipe');
    const fd = openSync(file, 'r');
    try {
      const sink = new Writable({ write: (_c, _e, cb) => cb() });
      assert.equal(relayFd(fd, sink), undefined);
    } finally {
      closeSync(fd);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
