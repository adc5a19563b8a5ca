import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { test } from 'node:test';
import { isWardenError } from '@warden/api';
import { StreamReader } from './stream-reader';

test('read(n) gathers exact byte counts across chunks; release() returns what was read ahead', async () => {
  const s = new PassThrough();
  const r = new StreamReader(s);
  s.write(Buffer.from([1, 2]));
  const first = r.read(3);
  s.write(Buffer.from([3, 4, 5]));
  assert.deepEqual([...(await first)], [1, 2, 3]);
  assert.deepEqual([...(await r.read(1))], [4]);
  assert.deepEqual([...r.release()], [5]);
  assert.equal(s.isPaused(), true);
});

test('the end of the stream rejects a pending read with WARDEN_ERR_CONNECTION', async () => {
  const s = new PassThrough();
  const r = new StreamReader(s);
  s.end(Buffer.from([1]));
  await assert.rejects(r.read(2), (e) => isWardenError(e, 'WARDEN_ERR_CONNECTION'));
});

test('buffered bytes are still served after the end', async () => {
  const s = new PassThrough();
  const r = new StreamReader(s);
  s.end(Buffer.from([1, 2, 3]));
  await new Promise((res) => setImmediate(res));
  assert.deepEqual([...(await r.read(3))], [1, 2, 3]);
});
