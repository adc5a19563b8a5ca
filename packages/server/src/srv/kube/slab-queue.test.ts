import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { READ_SIZE, SlabQueue } from './slab-queue';

/**
 * A reader that fills `next()`'s buffers like Node's TLS layer (up to one record each, several
 * per turn) against a writer whose writes complete a turn later and that keeps only a reference
 * to what it was given until then, as a socket may: what it finally holds must be the input, in
 * order, although slabs are reused, and a reused region must never be one a write still holds.
 */
test('reads land in reused slabs and leave as single writes, whole and in order', async () => {
  const input = randomBytes(3 * 1024 * 1024 + 123);
  const out: Buffer[] = [];
  let inFlight: Buffer | undefined;
  let writes = 0;
  const q = new SlabQueue((buf, done) => {
    assert.equal(inFlight, undefined, 'one write at a time');
    inFlight = buf;
    writes++;
    setImmediate(() => {
      out.push(Buffer.from(inFlight!)); // what the socket would send: read only now
      inFlight = undefined;
      done();
    });
  });
  let pos = 0;
  let turn = 0;
  while (pos < input.length) {
    const reads = 1 + (turn++ % 5);
    for (let r = 0; r < reads && pos < input.length; r++) {
      const into = q.next();
      assert.ok(into.length >= READ_SIZE);
      const n = Math.min(input.length - pos, 1 + ((pos * 7919) % READ_SIZE));
      input.copy(into, 0, pos, pos + n);
      pos += n;
      q.commit(n);
      if (pos === 1000) q.push(Buffer.from('')); // an empty push is nothing
    }
    await new Promise((r) => setImmediate(r));
  }
  while (q.queued > 0) await new Promise((r) => setImmediate(r));
  const got = Buffer.concat(out);
  assert.equal(got.length, input.length);
  assert.ok(got.equals(input), 'the bytes arrived whole and in order');
  assert.ok(writes < out.length + 1 && writes < input.length / READ_SIZE, `${writes} writes`);
});

test('a pushed buffer goes out after everything read before it, and is never reused', async () => {
  const out: Buffer[] = [];
  const q = new SlabQueue((buf, done) => {
    setImmediate(() => {
      out.push(Buffer.from(buf));
      done();
    });
  });
  const a = q.next();
  a.write('first ');
  q.commit(6);
  const pushed = Buffer.from('pushed ');
  q.push(pushed);
  const b = q.next();
  b.write('then');
  q.commit(4);
  while (q.queued > 0) await new Promise((r) => setImmediate(r));
  assert.equal(Buffer.concat(out).toString(), 'first pushed then');
  for (let i = 0; i < 100; i++) {
    q.next().fill(0x21);
    q.commit(READ_SIZE);
    await new Promise((r) => setImmediate(r));
  }
  assert.equal(pushed.toString(), 'pushed ', 'the pushed buffer was not written into');
});
