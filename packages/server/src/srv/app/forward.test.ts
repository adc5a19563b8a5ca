/**
 * The forwarder against real node:http servers (an app, and a front server standing in for
 * the proxy's HTTP/1.1 side): bodies of every size arrive whole even though the pool reads them
 * only once it has a connection; the app's hop-by-hop headers stay behind; 103 Early Hints are
 * not taken for the response; an app that is not
 * there is a 502 that does not name it; a client that leaves stops the app's response.
 */
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, request, type Server, type ServerResponse } from 'node:http';
import {
  createServer as createH2Server,
  type Http2ServerRequest,
  type Http2ServerResponse,
  connect as h2connect,
} from 'node:http2';
import { type AddressInfo, connect, createServer as createNetServer } from 'node:net';
import { after, before, test } from 'node:test';
import {
  type ForwardContext,
  Forwarder,
  type ForwardResult,
  leanRequestHead,
  upstreamHeaders,
} from './forward';
import { serveHttp1 } from './http1';

const quiet = { debug() {}, info() {}, warn() {}, error() {} } as never;

/** The app `demo` at `upstream`, reached by 127.0.0.1 over `proto`, with a JWT and no rewrites. */
const demoContext = (upstream: string, proto: 'http' | 'https' = 'http'): ForwardContext => ({
  upstream: { url: new URL(upstream), insecureSkipVerify: false },
  jwt: 'signed.jwt.token',
  clientAddr: '127.0.0.1',
  proto,
  host: 'demo.localhost',
  rewrite: [],
  app: 'demo',
});

function listen(server: Server): Promise<number> {
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)),
  );
}

let appPort = 0;
let frontPort = 0;
let leanPort = 0;
const app = createServer();
const front = createServer();
/** The lean HTTP/1.1 path (`serveHttp1` + `forwardLean`) in front of the same app. */
const leanFront = createNetServer();
/** /big: the bytes the app has handed to its socket so far. */
let bigWritten = 0;
const BIG = 16 * 1024 * 1024;
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
    } else if (req.url === '/big') {
      // 16 MiB in 64 KiB writes, each only once the previous one drained: how far the app
      // gets says whether back-pressure from the client reached it.
      bigWritten = 0;
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': BIG });
      const piece = Buffer.alloc(64 * 1024, 7);
      const more = () => {
        while (bigWritten < BIG) {
          bigWritten += piece.length;
          if (!res.write(piece)) {
            res.once('drain', more);
            return;
          }
        }
        res.end();
      };
      more();
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
    void forwarder.forward(req, res, demoContext(upstream)).then((r) => results.push(r));
  });
  frontPort = await listen(front);
  leanFront.on('connection', (socket) => {
    serveHttp1(
      socket,
      {
        accepts: () => true,
        handOver: (s) => s.destroy(),
        handle: async (req, res) => {
          await forwarder.forwardLean(req, res, demoContext(upstream));
        },
      },
      { idleMs: 30_000 },
    );
  });
  leanPort = await listen(leanFront as unknown as Server);
});

after(async () => {
  forwarder.close();
  front.closeAllConnections();
  app.closeAllConnections();
  await Promise.all([
    new Promise((r) => front.close(r)),
    new Promise((r) => app.close(r)),
    new Promise((r) => leanFront.close(r)),
  ]);
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

for (const path of ['node:http', 'lean'] as const) {
  test(`${path}: a client that does not read holds the app back; everything arrives once it reads`, async () => {
    const socket = connect(path === 'lean' ? leanPort : frontPort, '127.0.0.1');
    socket.pause();
    socket.write('GET /big HTTP/1.1\r\nhost: demo.localhost\r\nconnection: close\r\n\r\n');
    // Wait until the app has written all it can while nobody reads: socket buffers hold a few
    // MiB at most, so without back-pressure the app would have written the whole 16 MiB.
    let last = -1;
    while (bigWritten !== last) {
      last = bigWritten;
      await new Promise((r) => setTimeout(r, 150));
    }
    assert.ok(bigWritten < BIG, `the app wrote ${bigWritten} of ${BIG} bytes to a client that does not read`);
    let received = 0;
    socket.on('data', (c: Buffer) => {
      received += c.length;
    });
    socket.resume();
    await new Promise((resolve) => socket.on('close', resolve));
    assert.equal(bigWritten, BIG);
    assert.ok(received > BIG, `received ${received} bytes (the head and 16 MiB of body)`);
  });
}

for (const path of ['node:http', 'lean'] as const)
  test(`${path}: a client that leaves mid-response stops the app’s response`, async () => {
    await new Promise<void>((resolve, reject) => {
      const req = request(
        { host: '127.0.0.1', port: path === 'lean' ? leanPort : frontPort, path: '/slow' },
        (res) => {
          res.once('data', () => {
            req.destroy();
            resolve();
          });
        },
      );
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

test('a response the client side cannot carry (status 600 to an HTTP/2 client) ends as a failed exchange: 502', async () => {
  const odd = createServer((_req, res) => {
    res.writeHead(600, { 'content-length': 2 });
    res.end('no');
  });
  const oddPort = await listen(odd);
  const h2 = createH2Server();
  const done: ForwardResult[] = [];
  h2.on('request', (req: Http2ServerRequest, res: Http2ServerResponse) => {
    void forwarder
      .forward(req, res, demoContext(`http://127.0.0.1:${oddPort}`, 'https'))
      .then((r) => done.push(r));
  });
  const h2Port = await listen(h2 as unknown as Server);
  const session = h2connect(`http://127.0.0.1:${h2Port}`);
  try {
    const { status, body } = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const s = session.request({ ':path': '/', accept: 'application/json' });
      let status = 0;
      let body = '';
      s.on('response', (h) => {
        status = Number(h[':status']);
      });
      s.on('data', (c: Buffer) => {
        body += c.toString();
      });
      s.on('end', () => resolve({ status, body }));
      s.on('error', reject);
      s.end();
    });
    assert.equal(status, 502);
    assert.match(body, /WARDEN_ERR_CONNECTION/);
    assert.doesNotMatch(body, new RegExp(String(oddPort)));
    await new Promise((r) => setImmediate(r));
    assert.equal(done[0]?.status, 502);
  } finally {
    session.close();
    h2.close();
    odd.closeAllConnections();
    odd.close();
  }
});

test('the lean request head: the fields upstreamHeaders gives, spoofed and hop-by-hop ones dropped, rewrites replacing', () => {
  const ctx: ForwardContext = {
    upstream: { url: new URL('http://127.0.0.1:3000/base/'), insecureSkipVerify: false },
    jwt: 'signed.jwt.token',
    clientAddr: '10.0.0.7',
    proto: 'http',
    host: 'demo.localhost:3080',
    rewrite: [{ name: 'X-Env', value: 'prod' }],
    app: 'demo',
  };
  const headers: Record<string, string> = Object.assign(Object.create(null), {
    host: 'demo.localhost:3080',
    accept: 'text/html',
    'warden-jwt-assertion': 'forged',
    'x-forwarded-for': '6.6.6.6',
    'x-real-ip': '6.6.6.6',
    forwarded: 'for=6.6.6.6',
    connection: 'keep-alive, x-secret',
    'x-secret': 'hop',
    'x-env': 'dev',
    te: 'trailers',
  });
  const head = leanRequestHead({ method: 'GET', url: '/a?b=c', headers, keepAlive: true }, ctx);
  assert.equal(
    head,
    'GET /base/a?b=c HTTP/1.1\r\naccept: text/html\r\nhost: 127.0.0.1:3000\r\nx-forwarded-for: 10.0.0.7\r\n' +
      'x-forwarded-proto: http\r\nx-forwarded-host: demo.localhost:3080\r\nx-env: prod\r\n' +
      'warden-jwt-assertion: signed.jwt.token\r\n\r\n',
  );
  // The same fields as the node:http path sends.
  const fields = Object.fromEntries(
    head!
      .split('\r\n')
      .slice(1, -2)
      .map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 2)]),
  );
  assert.deepEqual(fields, upstreamHeaders(headers, ctx));
  // Rewrite headers the raw head does not write leave the request to undici's path.
  const odd = (rewrite: ForwardContext['rewrite']) =>
    leanRequestHead({ method: 'GET', url: '/', headers, keepAlive: true }, { ...ctx, rewrite });
  assert.equal(odd([{ name: 'X-A', value: 'caf\u20ac' }]), undefined, 'not latin1');
  assert.equal(odd([{ name: 'X-A', value: 'a\x01' }]), undefined, 'a control character');
  assert.equal(odd([{ name: 'Expect', value: '100-continue' }]), undefined);
  assert.equal(
    odd([
      { name: 'X-A', value: '1' },
      { name: 'x-a', value: '2' },
    ]),
    undefined,
    'a repeated name',
  );
});
