/**
 * The forwarder against real node:http servers (an app, and a front server standing in for
 * the proxy's HTTP/1.1 side): bodies of every size arrive whole even though the pool reads them
 * only once it has a connection; the app's hop-by-hop headers stay behind; 103 Early Hints are
 * not taken for the response; an app that is not
 * there is a 502 that does not name it; a client that leaves stops the app's response.
 */
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, request, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { type ForwardContext, Forwarder, type ForwardResult } from './forward';

const quiet = { debug() {}, info() {}, warn() {}, error() {} } as never;

function listen(server: Server): Promise<number> {
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)),
  );
}

let appPort = 0;
let frontPort = 0;
const app = createServer();
const front = createServer();
const forwarder = new Forwarder({ logger: quiet });
/** What the forwarder resolved for each request, in order. */
const results: ForwardResult[] = [];
/** Set by /slow: resolves when the app sees its response closed. */
let slowClosed: Promise<void> = Promise.resolve();
let upstream = '';

before(async () => {
  app.on('request', (req: IncomingMessage, res: ServerResponse) => {
    if (req.url === '/echo') {
      res.writeHead(200, { 'x-app': 'yes', connection: 'keep-alive, x-hop', 'x-hop': 'dropped' });
      req.pipe(res);
    } else if (req.url === '/hints') {
      res.writeEarlyHints({ link: '</style.css>; rel=preload; as=style' });
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 5 });
      res.end('hints');
    } else if (req.url === '/slow') {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('first\n');
      slowClosed = new Promise((resolve) => res.on('close', () => resolve()));
    } else {
      res.writeHead(404);
      res.end();
    }
  });
  appPort = await listen(app);
  upstream = `http://127.0.0.1:${appPort}`;
  front.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const ctx: ForwardContext = {
      upstream: { url: new URL(upstream), insecureSkipVerify: false },
      jwt: 'signed.jwt.token',
      clientAddr: '127.0.0.1',
      proto: 'http',
      host: 'demo.localhost',
      rewrite: [],
      app: 'demo',
    };
    void forwarder.forward(req, res, ctx).then((r) => results.push(r));
  });
  frontPort = await listen(front);
});

after(async () => {
  forwarder.close();
  front.closeAllConnections();
  app.closeAllConnections();
  await Promise.all([new Promise((r) => front.close(r)), new Promise((r) => app.close(r))]);
});

function send(
  path: string,
  body?: Buffer,
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: IncomingMessage['headers']; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port: frontPort, path, method: body ? 'POST' : 'GET', headers },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }),
        );
      },
    );
    req.on('error', reject);
    if (body) {
      // Several writes: the body arrives in pieces, as uploads do.
      for (let i = 0; i < body.length; i += 16_384) req.write(body.subarray(i, i + 16_384));
    }
    req.end();
  });
}

test('request bodies arrive whole (sized and chunked, empty to 2 MB), counted; hop-by-hop response headers dropped', async () => {
  for (const size of [0, 1, 10_000, 65_536, 200_000, 2_000_000]) {
    const body = Buffer.alloc(size, 'x');
    const variants: Record<string, string>[] = [
      { 'content-length': String(size) },
      { 'transfer-encoding': 'chunked' },
    ];
    for (const headers of variants) {
      const before = results.length;
      const r = await send('/echo', body, headers);
      assert.equal(r.status, 200);
      assert.equal(r.body.length, size, `${size} bytes with ${Object.keys(headers)[0]}`);
      assert.ok(r.body.equals(body));
      assert.equal(r.headers['x-app'], 'yes');
      assert.equal(r.headers['x-hop'], undefined, 'a header the app listed in Connection stays behind');
      await new Promise((resolve) => setImmediate(resolve));
      const result = results[before];
      assert.ok(result, 'the forwarder resolved');
      assert.equal(result.requestBytes, size);
      assert.equal(result.responseBytes, size);
    }
  }
});

test('an informational answer (103 Early Hints) is not relayed as the response: the final one is', async () => {
  const r = await send('/hints');
  assert.equal(r.status, 200);
  assert.equal(r.body.toString(), 'hints');
});

test('an app that is not there: 502, without its address', async () => {
  const was = upstream;
  const dead = createServer();
  const port = await listen(dead);
  await new Promise((r) => dead.close(r));
  upstream = `http://127.0.0.1:${port}`;
  try {
    const r = await send('/echo', Buffer.from('hi'), { accept: 'application/json' });
    assert.equal(r.status, 502);
    const text = r.body.toString();
    assert.match(text, /WARDEN_ERR_CONNECTION/);
    assert.doesNotMatch(text, new RegExp(String(port)), 'the app’s port is not in the page');
    assert.doesNotMatch(text, /127\.0\.0\.1|ECONNREFUSED/);
  } finally {
    upstream = was;
  }
});

test('a client that leaves mid-response stops the app’s response', async () => {
  await new Promise<void>((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: frontPort, path: '/slow' }, (res) => {
      res.once('data', () => {
        req.destroy();
        resolve();
      });
    });
    req.on('error', () => undefined);
    req.on('close', () => resolve());
    req.end();
    setTimeout(() => reject(new Error('no first chunk')), 5000).unref();
  });
  await Promise.race([
    slowClosed,
    new Promise((_, reject) =>
      setTimeout(() => reject(new Error('the app kept sending to nobody')), 5000).unref(),
    ),
  ]);
});
