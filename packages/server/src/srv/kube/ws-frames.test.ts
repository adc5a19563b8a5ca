import assert from 'node:assert/strict';
import { test } from 'node:test';
import { execExitCode } from './service';
import { closeFrame, FrameBoundaries, serverFrame } from './ws-frames';

test('frame boundaries across arbitrary chunking, for every header size', () => {
  const frames = [
    serverFrame(2, Buffer.alloc(5, 1)),
    serverFrame(2, Buffer.alloc(300, 2)),
    serverFrame(2, Buffer.alloc(70_000, 3)),
    serverFrame(2, Buffer.alloc(0)),
  ];
  const all = Buffer.concat(frames);
  const ends = new Set<number>();
  let acc = 0;
  for (const f of frames) {
    acc += f.length;
    ends.add(acc);
  }
  for (const size of [1, 2, 3, 7, 13, 100, 4096, all.length]) {
    const fb = new FrameBoundaries();
    const seen: number[] = [];
    for (let off = 0; off < all.length; off += size) {
      const chunk = all.subarray(off, off + size);
      const first = fb.feed(chunk);
      if (first !== -1) seen.push(off + first);
      assert.equal(fb.atBoundary, ends.has(Math.min(off + size, all.length)), `size ${size} offset ${off}`);
    }
    for (const s of seen) assert.ok(ends.has(s), `size ${size}: ${s} is a frame end`);
  }
});

test('channel-3 Status frames are handed over whole, across any chunking; other channels are not', () => {
  const status = Buffer.from(
    JSON.stringify({ status: 'Failure', reason: 'NonZeroExitCode', pad: 'x'.repeat(300) }),
  );
  const frames = Buffer.concat([
    serverFrame(2, Buffer.concat([Buffer.from([1]), Buffer.alloc(200, 0x61)])), // stdout
    serverFrame(2, Buffer.concat([Buffer.from([2]), Buffer.from('err')])), // stderr
    serverFrame(2, Buffer.concat([Buffer.from([3]), status])),
    serverFrame(1, Buffer.from(`3${Buffer.from('{"status":"Success"}').toString('base64')}`)), // base64 protocol
    serverFrame(1, Buffer.from(`1${Buffer.from('out').toString('base64')}`)),
    closeFrame(1000, ''),
  ]);
  for (const size of [1, 2, 5, 64, 1000, frames.length]) {
    const got: string[] = [];
    const fb = new FrameBoundaries((p) => got.push(p.toString()));
    for (let off = 0; off < frames.length; off += size) fb.feed(frames.subarray(off, off + size));
    assert.deepEqual(got, [status.toString(), '{"status":"Success"}'], `size ${size}`);
    assert.ok(fb.atBoundary);
  }
});

test('execExitCode reads the exec Status: Success is 0, NonZeroExitCode its ExitCode cause', () => {
  const code = (o: unknown) => execExitCode(Buffer.from(JSON.stringify(o)));
  assert.equal(code({ metadata: {}, status: 'Success' }), 0);
  assert.equal(
    code({
      status: 'Failure',
      reason: 'NonZeroExitCode',
      details: { causes: [{ reason: 'ExitCode', message: '5' }] },
    }),
    5,
  );
  assert.equal(code({ status: 'Failure', reason: 'InternalError', message: 'boom' }), undefined);
  assert.equal(code({ status: 'Failure', reason: 'NonZeroExitCode', details: { causes: [] } }), undefined);
  assert.equal(execExitCode(Buffer.from('not json')), undefined);
});
