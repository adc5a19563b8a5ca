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
 * hashed only SINK_DELAY_MS later (as a TLS socket's write completes later), after more reads,
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
    setTimeout(() => { hash.update(chunk); bytes += chunk.length; cb(); }, Number(process.env.SINK_DELAY_MS));
  },
});
const relay = relayFd(0, sink);
if (!relay) { console.log('no relay'); process.exit(2); }
console.log('ready');
sink.on('finish', () => {
  console.log(JSON.stringify({ bytes, sha256: hash.digest('hex'), buffers: relay.buffersAllocated }));
  relay.close();
});
`;

/** Runs CHILD with `data` written into its fd 0 by `feed`; what the child's sink received. */
async function relayed(
  data: Buffer,
  feed: (stdin: NodeJS.WritableStream & { write(b: Buffer): boolean }) => Promise<void>,
  sinkDelayMs = 1,
): Promise<{ bytes: number; sha256: string; buffers: number }> {
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', CHILD], {
    stdio: ['pipe', 'pipe', 'inherit'],
    env: { ...process.env, SINK_DELAY_MS: String(sinkDelayMs) },
  });
  let out = '';
  let ready: () => void;
  const started = new Promise<void>((r) => {
    ready = r;
  });
  child.stdout.on('data', (c) => {
    out += c;
    if (out.startsWith('ready\n')) ready();
  });
  // Fed once the child reads: before that, everything would wait in the pipe for one big read.
  await Promise.race([started, new Promise((r) => child.on('close', r))]);
  await feed(child.stdin);
  child.stdin.end();
  const code = await new Promise((r) => child.on('close', r));
  assert.equal(code, 0, out);
  const got = JSON.parse(out.replace(/^ready\n/, '')) as { bytes: number; sha256: string; buffers: number };
  assert.equal(got.bytes, data.length);
  assert.equal(got.sha256, createHash('sha256').update(data).digest('hex'));
  return got;
}

test('relays a pipe byte for byte through a few reused buffers, with back-pressure', async () => {
  const data = randomBytes(8 * 1024 * 1024);
  const got = await relayed(data, async (stdin) => {
    // Many small writes and a few large ones, as OpenSSH writes.
    for (let off = 0; off < data.length; ) {
      const n = Math.min(off % 3 ? 700 : 200_000, data.length - off);
      if (!stdin.write(data.subarray(off, off + n))) await new Promise((r) => stdin.once('drain', r));
      off += n;
    }
  });
  // 8 MiB in reads of at most 64 KiB: 128 reads or more, yet only the buffers in flight exist
  // (at most six, or 256 KiB, before reading pauses, and the one the next read waits in).
  assert.ok(got.buffers >= 1 && got.buffers <= 7, `read buffers allocated: ${got.buffers}`);
});

test('small reads do not make a buffer each: reading pauses at six buffers in flight, whatever their bytes', async () => {
  const data = randomBytes(200 * 700);
  const got = await relayed(
    data,
    async (stdin) => {
      // One small write per turn of the loop, so that each read finds a few hundred bytes while
      // the sink takes 50 ms per write: by bytes alone, every read would hold a buffer.
      for (let off = 0; off < data.length; off += 700) {
        stdin.write(data.subarray(off, off + 700));
        await new Promise((r) => setImmediate(r));
      }
    },
    50,
  );
  assert.ok(got.buffers >= 2 && got.buffers <= 7, `read buffers allocated: ${got.buffers}`);
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
