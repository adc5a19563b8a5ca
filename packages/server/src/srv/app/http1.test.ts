/**
 * The lean HTTP/1.1 path against real sockets and real HTTP clients: what it takes (plain
 * requests without a body, pipelined ones in order), what it leaves to node:http (bodies,
 * upgrades, HTTP/1.0, duplicate or malformed headers, heads split across reads — node:http then
 * serves the rest of the connection), and responses that real parsers read back (sized,
 * chunked, HEAD, 204, Connection: close; nothing unsafe written into the head).
 */
import assert from 'node:assert/strict';
import { createServer as createHttpServer, request } from 'node:http';
import { type AddressInfo, connect, createServer, type Server, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { after, before, test } from 'node:test';
import { type LeanRequest, leanRequestLine, parseLeanHead, RawResponse, serveHttp1 } from './http1';

function parse(text: string): LeanRequest | undefined {
  const buf = Buffer.from(text, 'latin1');
  const end = buf.indexOf('\r\n\r\n');
  assert.notEqual(end, -1, 'test input needs an empty line');
  return parseLeanHead(buf, end);
}

test('parseLeanHead takes plain requests without a body', () => {
  const r = parse(
    'GET /a/b?c=d HTTP/1.1\r\nHost: demo.localhost\r\nAccept:  text/html \r\nX-Y: a\tb\r\n\r\n',
  );
  assert.ok(r);
  assert.equal(r.method, 'GET');
  assert.equal(r.url, '/a/b?c=d');
  assert.deepEqual({ ...r.headers }, { host: 'demo.localhost', accept: 'text/html', 'x-y': 'a\tb' });
  assert.equal(r.keepAlive, true);
  assert.equal(
    parse('HEAD / HTTP/1.1\r\nhost: a\r\nconnection: keep-alive, close\r\n\r\n')?.keepAlive,
    false,
  );
  // A header named __proto__ is a header, not the object's prototype.
  const p = parse('GET / HTTP/1.1\r\nhost: a\r\n__proto__: x\r\n\r\n');
  const proto = '__proto__';
  assert.equal(p?.headers[proto], 'x');
  assert.equal(Object.getPrototypeOf(p?.headers), null);
});

test('parseLeanHead leaves everything else to node:http', () => {
  const refused: [string, string][] = [
    ['a body (Content-Length)', 'GET / HTTP/1.1\r\nhost: a\r\ncontent-length: 0\r\n\r\n'],
    ['a body (Transfer-Encoding)', 'GET / HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n'],
    ['a body (Content-Length spelled oddly)', 'GET / HTTP/1.1\r\nhost: a\r\nContent-LENGTH: 5\r\n\r\n'],
    ['space before the colon', 'GET / HTTP/1.1\r\nhost: a\r\ncontent-length : 5\r\n\r\n'],
    ['an upgrade', 'GET / HTTP/1.1\r\nhost: a\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n'],
    ['Connection: upgrade alone', 'GET / HTTP/1.1\r\nhost: a\r\nconnection: Upgrade\r\n\r\n'],
    ['Expect', 'GET / HTTP/1.1\r\nhost: a\r\nexpect: 100-continue\r\n\r\n'],
    ['POST', 'POST / HTTP/1.1\r\nhost: a\r\n\r\n'],
    ['lower-case method', 'get / HTTP/1.1\r\nhost: a\r\n\r\n'],
    ['HTTP/1.0', 'GET / HTTP/1.0\r\nhost: a\r\n\r\n'],
    ['absolute form', 'GET http://a/ HTTP/1.1\r\nhost: a\r\n\r\n'],
    ['asterisk form', 'OPTIONS * HTTP/1.1\r\nhost: a\r\n\r\n'],
    ['no Host', 'GET / HTTP/1.1\r\naccept: */*\r\n\r\n'],
    ['two Hosts', 'GET / HTTP/1.1\r\nhost: a\r\nhost: b\r\n\r\n'],
    [
      'a duplicate header',
      'GET / HTTP/1.1\r\nhost: a\r\nWarden-Jwt-Assertion: x\r\nwarden-jwt-assertion: y\r\n\r\n',
    ],
    ['obs-fold', 'GET / HTTP/1.1\r\nhost: a\r\nx-a: b\r\n  c\r\n\r\n'],
    ['a bare LF', 'GET / HTTP/1.1\r\nhost: a\nx-a: b\r\n\r\n'],
    ['a bare CR', 'GET / HTTP/1.1\r\nhost: a\rx-a: b\r\n\r\n'],
    ['NUL in a value', 'GET / HTTP/1.1\r\nhost: a\r\nx-a: b\0c\r\n\r\n'],
    ['a control character in a value', 'GET / HTTP/1.1\r\nhost: a\r\nx-a: b\x01\r\n\r\n'],
    ['a space in the target', 'GET /a b HTTP/1.1\r\nhost: a\r\n\r\n'],
    ['a leading empty line', '\r\nGET / HTTP/1.1\r\nhost: a\r\n\r\n'],
    ['an empty header name', 'GET / HTTP/1.1\r\nhost: a\r\n: b\r\n\r\n'],
    ['DEL in a value', 'GET / HTTP/1.1\r\nhost: a\r\nx-a: b\x7f\r\n\r\n'],
    ['a tab in a name', 'GET / HTTP/1.1\r\nhost: a\r\nx\ta: b\r\n\r\n'],
    ['a line without a colon', 'GET / HTTP/1.1\r\nhost: a\r\nx-a b\r\n\r\n'],
    ['a CR in a name', 'GET / HTTP/1.1\r\nhost: a\r\nx\r-a: b\r\n\r\n'],
    [
      'too many fields',
      `GET / HTTP/1.1\r\nhost: a\r\n${Array.from({ length: 100 }, (_, i) => `x-${i}: v`).join('\r\n')}\r\n\r\n`,
    ],
  ];
  for (const [why, text] of refused) assert.equal(parse(text), undefined, why);
});

test('RawResponse refuses to write a head that would split the response', () => {
  const written: string[] = [];
  const sink = {
    cork() {},
    uncork() {},
    write(c: string | Buffer) {
      written.push(String(c));
      return true;
    },
    destroy() {},
  } as unknown as Duplex;
  const res = new RawResponse(sink, { method: 'GET', keepAlive: true });
  assert.equal(res.writeHead(200, 'OK', { 'x-a': 'b\r\nset-cookie: evil=1' }), false);
  assert.equal(res.writeHead(200, 'OK', { 'x a': 'b' }), false);
  assert.equal(res.writeHead(200, 'OK', { 'set-cookie': ['a=1', 'b=2\n'] }), false);
  assert.deepEqual(written, [], 'nothing was written');
  assert.equal(res.headersSent, false);
  assert.equal(res.writeHead(200, 'OK\r\nx-evil: 1', { 'content-length': '0' }), true);
  assert.match(written[0]!, /^HTTP\/1\.1 200 OK\r\n/, 'an unsafe reason phrase is replaced');
  assert.doesNotMatch(written[0]!, /x-evil/);
});

// ---- A server on the lean path, node:http behind it ----------------------------------------

let port = 0;
const served: string[] = [];
const handedOver: string[] = [];
const sockets = new Set<Socket>();
const fallback = createHttpServer((req, res) => {
  handedOver.push(`${req.method} ${req.url}`);
  let body = '';
  req.on('data', (c) => {
    body += c;
  });
  req.on('end', () => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end(`node:http ${req.method} ${req.url} ${body}`);
  });
});
const server: Server = createServer((socket) => {
  sockets.add(socket);
  socket.on('close', () => sockets.delete(socket));
  serveHttp1(
    socket,
    {
      accepts: (req) => !req.url.startsWith('/.warden/'),
      handOver: (s) => fallback.emit('connection', s),
      handle: async (req, res) => {
        served.push(`${req.method} ${req.url}`);
        // Answer out of a later tick, as the forwarder does.
        await new Promise((r) => setImmediate(r));
        if (req.url === '/chunked') {
          res.writeHead(200, undefined, { 'content-type': 'text/plain' });
          res.write(Buffer.from('hello '));
          await new Promise((r) => setTimeout(r, 5));
          res.write(Buffer.from('world'));
          res.end();
        } else if (req.url === '/empty') {
          res.writeHead(204, undefined, {});
          res.end();
        } else {
          const body = Buffer.from(`lean ${req.method} ${req.url}`);
          res.writeHead(200, 'OK', { 'content-length': String(body.length), 'set-cookie': ['a=1', 'b=2'] });
          res.write(body);
          res.end();
        }
      },
    },
    { idleMs: 5_000 },
  );
});

before(async () => {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  port = (server.address() as AddressInfo).port;
});
after(async () => {
  for (const s of sockets) s.destroy();
  await new Promise((r) => server.close(r));
  fallback.close();
});

/** Sends raw bytes (in the given pieces, one write each), reads until the server closes or `until` matches. */
function raw(pieces: string[], until?: RegExp): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1');
    let got = '';
    s.on('data', (c) => {
      got += c.toString('latin1');
      if (until?.test(got)) {
        s.destroy();
        resolve(got);
      }
    });
    s.on('close', () => resolve(got));
    s.on('error', reject);
    s.on('connect', async () => {
      for (const p of pieces) {
        s.write(p);
        await new Promise((r) => setTimeout(r, 20));
      }
    });
  });
}

function get(
  path: string,
  method = 'GET',
): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method, agent: false }, (res) => {
      let body = '';
      res.on('data', (c) => {
        body += c;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

test('real HTTP clients read the lean responses: sized, chunked, HEAD, 204', async () => {
  const sized = await get('/hello');
  assert.equal(sized.body, 'lean GET /hello');
  assert.deepEqual(sized.headers['set-cookie'], ['a=1', 'b=2']);
  assert.ok(sized.headers.date, 'a Date header is added');
  const chunked = await get('/chunked');
  assert.equal(chunked.body, 'hello world');
  assert.equal(chunked.headers['transfer-encoding'], 'chunked');
  const head = await get('/hello', 'HEAD');
  assert.equal(head.status, 200);
  assert.equal(head.body, '');
  assert.equal((await get('/empty')).status, 204);
  const viaFetch = await fetch(`http://127.0.0.1:${port}/chunked`);
  assert.equal(await viaFetch.text(), 'hello world', 'undici reads it too');
});

test('pipelined requests are answered in order on one connection; Connection: close ends it', async () => {
  const out = await raw([
    'GET /1 HTTP/1.1\r\nhost: a\r\n\r\nGET /chunked HTTP/1.1\r\nhost: a\r\n\r\nGET /3 HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n',
  ]);
  const order = [...out.matchAll(/lean GET (\/\d)|hello \r\n5\r\nworld/g)].map((m) => m[1] ?? 'chunked');
  assert.deepEqual(order, ['/1', 'chunked', '/3']);
  assert.match(out, /\r\n0\r\n\r\n/, 'the chunked body ends');
  assert.match(out, /connection: close\r\n/);
});

test('a request with a body, and every request after it, is served by node:http', async () => {
  handedOver.length = 0;
  const out = await raw(
    [
      'GET /first HTTP/1.1\r\nhost: a\r\n\r\n',
      'POST /upload HTTP/1.1\r\nhost: a\r\ncontent-length: 5\r\n\r\nhello',
      'GET /after HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n',
    ],
    /node:http GET \/after/,
  );
  assert.match(out, /lean GET \/first/);
  assert.match(out, /node:http POST \/upload hello/);
  assert.match(out, /node:http GET \/after/);
  assert.deepEqual(handedOver, ['POST /upload', 'GET /after']);
});

test('a head split across reads, HTTP/1.0 and Warden paths go to node:http as they are', async () => {
  handedOver.length = 0;
  const split = await raw(['GET /spl', 'it HTTP/1.1\r\nhost: a\r\n\r\n'], /node:http GET \/split/);
  assert.match(split, /node:http GET \/split/);
  const old = await raw(['GET /old HTTP/1.0\r\nhost: a\r\n\r\n'], /node:http GET \/old/);
  assert.match(old, /node:http GET \/old/);
  const own = await raw(['GET /.warden/launch?token=x HTTP/1.1\r\nhost: a\r\n\r\n'], /node:http/);
  assert.match(own, /node:http GET \/\.warden\/launch/);
  // A smuggling attempt is not the lean path's to judge: llhttp refuses it.
  const smuggle = await raw(
    ['GET / HTTP/1.1\r\nhost: a\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n'],
    /HTTP\/1\.1 400/,
  );
  assert.match(smuggle, /^HTTP\/1\.1 400/);
  assert.deepEqual(handedOver, ['GET /split', 'GET /old', 'GET /.warden/launch?token=x']);
});

test('an idle connection closes after idleMs; a response slower than that is not cut, and the idle time starts after it', async () => {
  const idle = createServer((socket) => {
    serveHttp1(
      socket,
      {
        accepts: () => true,
        handOver: () => socket.destroy(),
        handle: async (req, res) => {
          if (req.url === '/slow') await new Promise((r) => setTimeout(r, 500));
          res.writeHead(200, undefined, { 'content-length': '2' });
          res.write(Buffer.from('ok'));
          res.end();
        },
      },
      { idleMs: 150 },
    );
  });
  await new Promise<void>((r) => idle.listen(0, '127.0.0.1', () => r()));
  const idlePort = (idle.address() as AddressInfo).port;
  try {
    const s = connect(idlePort, '127.0.0.1');
    let got = '';
    s.on('data', (c) => {
      got += c.toString('latin1');
    });
    let isClosed = false;
    const closed = new Promise<number>((r) =>
      s.on('close', () => {
        isClosed = true;
        r(Date.now());
      }),
    );
    await new Promise((r) => s.on('connect', r));
    s.write('GET /slow HTTP/1.1\r\nhost: a\r\n\r\n');
    while (!got.includes('\r\n\r\nok') && !isClosed) await new Promise((r) => setTimeout(r, 10));
    const answered = Date.now();
    const at = await closed;
    assert.match(got, /^HTTP\/1\.1 200 /, 'the slow response was sent whole');
    assert.ok(
      at - answered >= 100,
      `closed ${at - answered} ms after the response, not before its idle time`,
    );
    assert.ok(at - answered < 2_000, 'and closed when idle');
  } finally {
    await new Promise((r) => idle.close(r));
  }
});

test('the lean request line is read as the regular expression it replaced reads it', () => {
  const re = /^(GET|HEAD|OPTIONS|DELETE) (\/[\x21-\x7e]*) HTTP\/1\.1$/;
  const lines = [
    'GET / HTTP/1.1',
    'GET /x?y=1&z=%20 HTTP/1.1',
    'HEAD /a HTTP/1.1',
    'OPTIONS /o HTTP/1.1',
    'DELETE /d HTTP/1.1',
    'OPTIONS * HTTP/1.1',
    'POST / HTTP/1.1',
    'PUT / HTTP/1.1',
    'GETS / HTTP/1.1',
    'get / HTTP/1.1',
    'GET  / HTTP/1.1',
    'GET / x HTTP/1.1',
    'GET /\x7f HTTP/1.1',
    'GET /\xe9 HTTP/1.1',
    'GET /\t HTTP/1.1',
    'GET x HTTP/1.1',
    'GET http://a/ HTTP/1.1',
    'GET / HTTP/1.0',
    'GET / HTTP/1.1 ',
    'GET /HTTP/1.1',
    'GET  HTTP/1.1',
    'GET',
    '',
    'GET / HTTP/1.1x',
    'GE',
  ];
  for (const line of lines) {
    const m = re.exec(line);
    assert.deepEqual(
      leanRequestLine(`${line}\r\nhost: a`, line.length),
      m ? { method: m[1], url: m[2] } : undefined,
      JSON.stringify(line),
    );
  }
});
