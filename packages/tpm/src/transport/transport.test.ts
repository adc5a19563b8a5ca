import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { isTpmError, type TpmError } from '../errors';
import {
  DEVICE_PERMISSION_MESSAGE,
  type DeviceHandle,
  openDevice,
  openTransport,
  parseTpmAddress,
  SwtpmTransport,
  withRetry,
} from '.';

const GET_RANDOM = Uint8Array.from([0x80, 0x01, 0, 0, 0, 0x0c, 0, 0, 0x01, 0x7b, 0, 0x04]);

function response(rc: number, body: number[] = []): Buffer {
  const b = Buffer.alloc(10 + body.length);
  b.writeUInt16BE(0x8001, 0);
  b.writeUInt32BE(b.length, 2);
  b.writeUInt32BE(rc, 6);
  Buffer.from(body).copy(b, 10);
  return b;
}

/** A raw TCP server on port 0 that answers each command with what `reply` writes. */
function fakeSwtpm(
  reply: (cmd: Buffer, socket: Socket, n: number) => void,
): Promise<{ server: Server; port: number }> {
  return new Promise((resolve) => {
    let n = 0;
    const server = createServer((socket) => {
      socket.on('data', (cmd) => reply(cmd, socket, n++));
    });
    server.listen(0, '127.0.0.1', () =>
      resolve({ server, port: (server.address() as { port: number }).port }),
    );
  });
}

describe('swtpm TCP transport (raw framing)', () => {
  let server: Server;
  let port: number;
  let mode: 'fragmented' | 'retry' | 'oversized' | 'close' | 'extra' = 'fragmented';
  let retries = 0;
  before(async () => {
    ({ server, port } = await fakeSwtpm((cmd, socket) => {
      assert.deepEqual(new Uint8Array(cmd), GET_RANDOM);
      const ok = response(0, [0, 4, 1, 2, 3, 4]);
      if (mode === 'fragmented') {
        // One byte at a time: the transport must reassemble by the header's size.
        ok.forEach((byte, i) => {
          setTimeout(() => socket.write(Buffer.of(byte)), i);
        });
      } else if (mode === 'retry') {
        socket.write(retries++ % 3 === 2 ? ok : response(0x922));
      } else if (mode === 'oversized') {
        const bad = response(0);
        bad.writeUInt32BE(0x7fffffff, 2);
        socket.write(bad);
      } else if (mode === 'extra') {
        socket.write(Buffer.concat([ok, Buffer.of(1)]));
      } else {
        socket.end(ok.subarray(0, 5));
      }
    }));
  });
  after(() => server.close());

  test('reassembles a response that arrives in pieces', async () => {
    mode = 'fragmented';
    const t = new SwtpmTransport({ host: '127.0.0.1', port });
    try {
      const r = await t.send(GET_RANDOM);
      assert.deepEqual(Buffer.from(r), response(0, [0, 4, 1, 2, 3, 4]));
      const again = await t.send(GET_RANDOM);
      assert.equal(again.length, 16);
    } finally {
      await t.close();
    }
  });

  test('withRetry resends on TPM_RC_RETRY and gives up with a typed error', async () => {
    mode = 'retry';
    retries = 0;
    const sleeps: number[] = [];
    const t = withRetry(new SwtpmTransport({ host: '127.0.0.1', port }), {
      sleep: async (ms) => {
        sleeps.push(ms);
      },
    });
    try {
      const r = await t.send(GET_RANDOM);
      assert.equal(Buffer.from(r).readUInt32BE(6), 0);
      assert.deepEqual(sleeps, [5, 10]);
    } finally {
      await t.close();
    }
    const t2 = withRetry(new SwtpmTransport({ host: '127.0.0.1', port }), {
      attempts: 2,
      sleep: async () => {},
    });
    try {
      // The server answers RETRY twice in every three: two attempts may run out.
      const results = await Promise.allSettled([
        t2.send(GET_RANDOM),
        t2.send(GET_RANDOM),
        t2.send(GET_RANDOM),
      ]);
      const failed = results.filter((x) => x.status === 'rejected') as PromiseRejectedResult[];
      assert.ok(failed.length >= 1);
      assert.ok(isTpmError(failed[0]!.reason, 'TPM_ERR_RETRIES_EXHAUSTED'));
      assert.equal((failed[0]!.reason as TpmError).rcName, 'TPM_RC_RETRY');
    } finally {
      await t2.close();
    }
  });

  test('an absurd size, trailing bytes or a closed connection fail with TPM_ERR_TRANSPORT', async () => {
    for (const m of ['oversized', 'extra', 'close'] as const) {
      mode = m;
      const t = new SwtpmTransport({ host: '127.0.0.1', port });
      await assert.rejects(t.send(GET_RANDOM), (e) => isTpmError(e, 'TPM_ERR_TRANSPORT'), m);
      await t.close();
    }
  });

  test('nothing listening is a transport error naming the address', async () => {
    const t = new SwtpmTransport({ host: '127.0.0.1', port: 1 });
    await assert.rejects(
      t.send(GET_RANDOM),
      (e) => isTpmError(e, 'TPM_ERR_TRANSPORT') && /127\.0\.0\.1:1/.test(String(e)),
    );
  });
});

describe('WARDEN_TPM', () => {
  test('parses device and swtpm addresses', () => {
    assert.deepEqual(parseTpmAddress(undefined), { kind: 'device' });
    assert.deepEqual(parseTpmAddress(''), { kind: 'device' });
    assert.deepEqual(parseTpmAddress('device:/dev/tpmrm0'), { kind: 'device', path: '/dev/tpmrm0' });
    assert.deepEqual(parseTpmAddress('swtpm:host=127.0.0.1,port=2321'), {
      kind: 'swtpm',
      host: '127.0.0.1',
      port: 2321,
    });
    assert.deepEqual(parseTpmAddress('swtpm:port=4000'), { kind: 'swtpm', host: '127.0.0.1', port: 4000 });
  });

  test('refuses what it does not understand', () => {
    for (const bad of [
      'mssim:port=1',
      'device:dev/tpm0',
      'swtpm:port=0',
      'swtpm:port=70000',
      'swtpm:hots=x',
      'swtpm:port=1x',
    ]) {
      assert.throws(
        () => parseTpmAddress(bad),
        (e) => isTpmError(e, 'TPM_ERR_BAD_CONFIG'),
        bad,
      );
    }
  });
});

describe('character device', () => {
  const errno = (code: string) => Object.assign(new Error(code), { code });

  test('a permission error gives the tss-group advice', async () => {
    await assert.rejects(
      openDevice(['/dev/tpmrm0', '/dev/tpm0'], async () => {
        throw errno('EACCES');
      }),
      (e) =>
        isTpmError(e, 'TPM_ERR_DEVICE_PERMISSION') &&
        (e as Error).message.startsWith(DEVICE_PERMISSION_MESSAGE),
    );
  });

  test('falls back from /dev/tpmrm0 to /dev/tpm0, and says when neither exists', async () => {
    const tried: string[] = [];
    await assert.rejects(
      openDevice(['/dev/tpmrm0', '/dev/tpm0'], async (p) => {
        tried.push(p);
        throw errno('ENOENT');
      }),
      (e) =>
        isTpmError(e, 'TPM_ERR_DEVICE_MISSING') &&
        /failed to open the TPM device, \/dev\/tpmrm0 and \/dev\/tpm0 do not exist/.test(
          (e as Error).message,
        ),
    );
    assert.deepEqual(tried, ['/dev/tpmrm0', '/dev/tpm0']);
  });

  test('a real missing path through openTransport', async () => {
    await assert.rejects(openTransport({ address: 'device:/nonexistent/tpm-for-test' }), (e) =>
      isTpmError(e, 'TPM_ERR_DEVICE_MISSING'),
    );
  });

  test('one write per command, one read per response; a short read is an error', async () => {
    let answer = response(0, [0, 4, 9, 9, 9, 9]);
    const writes: Uint8Array[] = [];
    const handle: DeviceHandle = {
      write: async (b, off, len) => {
        writes.push(b.slice(off, off + len));
        return { bytesWritten: len };
      },
      read: async (b) => {
        b.set(answer);
        return { bytesRead: answer.length };
      },
      close: async () => {},
    };
    const t = await openDevice(['/dev/tpm0'], async () => handle);
    assert.equal(t.description, '/dev/tpm0');
    const r = await t.send(GET_RANDOM);
    assert.deepEqual(Buffer.from(r), answer);
    assert.deepEqual(writes, [GET_RANDOM]);
    answer = answer.subarray(0, 6) as Buffer;
    await assert.rejects(t.send(GET_RANDOM), (e) => isTpmError(e, 'TPM_ERR_TRANSPORT'));
    await t.close();
    await assert.rejects(t.send(GET_RANDOM), (e) => isTpmError(e, 'TPM_ERR_TRANSPORT'));
  });
});
