import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FrameBoundaries, serverFrame } from './ws-frames';

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
