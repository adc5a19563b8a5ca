/**
 * The lean path's client to apps, against a real node:http app (sized, chunked, HEAD, 204/304,
 * informational answers, keep-alive reuse, back-pressure) and against hand-written servers that
 * send what a strict reader must refuse (both framings, two lengths, other codings, obs-fold,
 * bare LF, malformed chunks, 101, oversized heads) or must not reuse the connection after
 * (bytes after the response, HTTP/1.0, a body until close, Connection: close), and an app that
 * drops an idle connection just as a request is sent on it (sent again on a new one).
 */
import assert from 'node:assert/strict';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { type AddressInfo, createServer, type Server, type Socket } from 'node:net';
import { after, before, test } from 'node:test';
import { Http1Upstream, keepAliveTimeoutMs, statusLine, type UpstreamHead } from './http1-upstream';

interface Outcome {
  head?: UpstreamHead;
  body: Buffer;
  error?: Error;
}

function exchange(
  up: Http1Upstream,
  path: string,
  method = 'GET',
  onData?: (chunk: Buffer, ex: { pause(): void; resume(): void; abort(): void }) => void,
): Promise<Outcome> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const out: Outcome = { body: Buffer.alloc(0) };
    const ex = up.request(`${method} ${path} HTTP/1.1\r\nhost: app\r\n\r\n`, method, {
      onHead: (h) => {
        out.head = h;
      },
      onData: (c) => {
        chunks.push(Buffer.from(c));
        onData?.(c, ex);
      },
      onEnd: () => {
        out.body = Buffer.concat(chunks);
        resolve(out);
      },
      onError: (e) => {
        out.body = Buffer.concat(chunks);
        out.error = e;
        resolve(out);
      },
    });
  });
}

function listenOn(server: Server | HttpServer): Promise<number> {
  return new Promise((r) => server.listen(0, '127.0.0.1', () => r((server.address() as AddressInfo).port)));
}

// ---- A real node:http app ----------------------------------------------------------------

let appConnections = 0;
const app = createHttpServer((req, res) => {
  if (req.url === '/sized') {
    res.writeHead(200, 'Fine', { 'content-type': 'text/plain', 'content-length': 5, 'x-hop': 'gone' });
    res.end('hello');
  } else if (req.url === '/chunked') {
    res.writeHead(200, { 'content-type': 'text/plain', connection: 'x-hop', 'x-hop': 'gone' });
    res.write('hello ');
    setTimeout(() => res.end('world'), 5);
  } else if (req.url === '/hints') {
    res.writeEarlyHints({ link: '</a.css>; rel=preload; as=style' });
    res.writeHead(200, { 'content-length': 2 });
    res.end('ok');
  } else if (req.url === '/empty') {
    res.writeHead(204);
    res.end();
  } else if (req.url === '/not-modified') {
    res.writeHead(304, { etag: '"x"' });
    res.end();
  } else if (req.url === '/big') {
    res.writeHead(200, { 'content-type': 'application/octet-stream' });
    for (let i = 0; i < 32; i++) res.write(Buffer.alloc(65_536, i));
    res.end();
  } else {
    res.writeHead(404, { 'content-length': 0 });
    res.end();
  }
});
app.on('connection', () => {
  appConnections++;
});
let appUp: Http1Upstream;

before(async () => {
  const port = await listenOn(app);
  appUp = new Http1Upstream({ host: '127.0.0.1', port, keepAliveMs: 4_000 });
});
after(() => {
  appUp.close();
  app.closeAllConnections();
  app.close();
});

test('a real app: sized and chunked bodies, hop-by-hop fields left out, one connection reused', async () => {
  const before = appConnections;
  const sized = await exchange(appUp, '/sized');
  assert.equal(sized.error, undefined);
  assert.equal(sized.head?.status, 200);
  assert.equal(sized.head?.reason, 'Fine');
  assert.equal(sized.head?.sized, true);
  assert.equal(sized.head?.hasDate, true);
  assert.match(sized.head?.lines ?? '', /^content-type: text\/plain\r\n/m);
  assert.match(sized.head?.lines ?? '', /^content-length: 5\r\n/m);
  assert.match(sized.head?.lines ?? '', /^x-hop: gone\r\n/m, 'not listed in Connection: relayed');
  assert.doesNotMatch(sized.head?.lines ?? '', /^(connection|keep-alive):/m);
  assert.equal(sized.body.toString(), 'hello');
  const chunked = await exchange(appUp, '/chunked');
  assert.equal(chunked.head?.sized, false);
  assert.doesNotMatch(
    chunked.head?.lines ?? '',
    /transfer-encoding|x-hop/,
    'hop-by-hop and listed fields left out',
  );
  assert.equal(chunked.body.toString(), 'hello world');
  for (let i = 0; i < 5; i++) assert.equal((await exchange(appUp, '/sized')).body.toString(), 'hello');
  assert.equal(appConnections - before, 1, 'one keep-alive connection for all of them');
  assert.equal(appUp.idleConnections, 1);
});

test('HEAD, 204 and 304 have no body; an informational answer is skipped', async () => {
  const head = await exchange(appUp, '/sized', 'HEAD');
  assert.equal(head.head?.status, 200);
  assert.match(head.head?.lines ?? '', /content-length: 5/);
  assert.equal(head.body.length, 0);
  assert.equal((await exchange(appUp, '/empty')).head?.status, 204);
  assert.equal((await exchange(appUp, '/not-modified')).head?.status, 304);
  const hints = await exchange(appUp, '/hints');
  assert.equal(hints.head?.status, 200);
  assert.equal(hints.body.toString(), 'ok');
  // Still framed right afterwards: the same connection answers the next request.
  assert.equal((await exchange(appUp, '/sized')).body.toString(), 'hello');
  assert.equal(appUp.idleConnections, 1);
});

test('a paused exchange gets no more data until resumed; 2 MiB arrive whole', async () => {
  let pausedAt = -1;
  let got = 0;
  let resumed = false;
  const r = await exchange(appUp, '/big', 'GET', (c, ex) => {
    got += c.length;
    if (pausedAt === -1 && got > 100_000) {
      pausedAt = got;
      ex.pause();
      setTimeout(() => {
        resumed = true;
        ex.resume();
      }, 50);
    } else if (pausedAt !== -1 && !resumed && got - pausedAt > 65_536)
      assert.fail('data kept coming while paused (beyond the read in progress)');
  });
  assert.equal(r.error, undefined);
  assert.equal(r.body.length, 32 * 65_536);
  for (let i = 0; i < 32; i++) assert.equal(r.body[i * 65_536], i);
  assert.equal((await exchange(appUp, '/sized')).body.toString(), 'hello', 'the connection was left resumed');
});

test('an app that is not there: an error, not a hang', async () => {
  const dead = createServer();
  const port = await listenOn(dead);
  await new Promise((r) => dead.close(r));
  const up = new Http1Upstream({ host: '127.0.0.1', port, keepAliveMs: 4_000 });
  const r = await exchange(up, '/');
  assert.match(r.error?.message ?? '', /ECONNREFUSED/);
  up.close();
});

// ---- Hand-written apps -------------------------------------------------------------------

/** A server that answers every request on a connection with the next of `answers` (pieces written one by one). */
async function rawApp(
  answers: (string | string[])[],
  o: { closeAfter?: boolean } = {},
): Promise<{ up: Http1Upstream; connections: () => number; stop: () => Promise<void> }> {
  let connections = 0;
  let next = 0;
  const sockets = new Set<Socket>();
  const server = createServer((s) => {
    connections++;
    sockets.add(s);
    s.setNoDelay(true);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => undefined);
    let buf = '';
    s.on('data', async (c) => {
      buf += c.toString('latin1');
      while (buf.includes('\r\n\r\n')) {
        buf = buf.slice(buf.indexOf('\r\n\r\n') + 4);
        const a = answers[next++ % answers.length]!;
        for (const piece of Array.isArray(a) ? a : [a]) {
          s.write(piece, 'latin1');
          if (Array.isArray(a)) await new Promise((r) => setTimeout(r, 2));
        }
        if (o.closeAfter) s.end();
      }
    });
  });
  const port = await listenOn(server);
  const up = new Http1Upstream({ host: '127.0.0.1', port, keepAliveMs: 4_000 });
  return {
    up,
    connections: () => connections,
    stop: async () => {
      up.close();
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}

test('chunked bodies split anywhere, with extensions and trailers, are read whole', async () => {
  const text =
    'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5;name=value\r\nhello\r\n1 ; x\r\n \r\n' +
    '5\r\nworld\r\n0\r\nx-trailer: t\r\n\r\n';
  // Every byte in its own write, then the whole in one.
  const a = await rawApp([[...text], text]);
  for (let i = 0; i < 2; i++) {
    const r = await exchange(a.up, '/');
    assert.equal(r.error, undefined);
    assert.equal(r.body.toString(), 'hello world');
    assert.doesNotMatch(r.head?.lines ?? '', /trailer/);
  }
  assert.equal(a.connections(), 1, 'reused after a chunked body');
  await a.stop();
});

test('what a strict reader refuses: the exchange fails and the connection is not reused', async () => {
  const refused: [string, string][] = [
    ['both framings', 'HTTP/1.1 200 OK\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n'],
    ['two lengths', 'HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\nhello!'],
    ['a length list', 'HTTP/1.1 200 OK\r\ncontent-length: 5, 5\r\n\r\nhello'],
    ['a signed length', 'HTTP/1.1 200 OK\r\ncontent-length: +5\r\n\r\nhello'],
    ['another coding', 'HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n0\r\n\r\n'],
    [
      'chunked twice',
      'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n',
    ],
    ['chunked in HTTP/1.0', 'HTTP/1.0 200 OK\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n'],
    ['obs-fold', 'HTTP/1.1 200 OK\r\nx-a: b\r\n c\r\ncontent-length: 0\r\n\r\n'],
    ['space before the colon', 'HTTP/1.1 200 OK\r\ncontent-length : 0\r\n\r\n'],
    ['a bare LF', 'HTTP/1.1 200 OK\r\nx-a: b\ncontent-length: 0\r\n\r\n'],
    ['NUL in a value', 'HTTP/1.1 200 OK\r\nx-a: b\0\r\ncontent-length: 0\r\n\r\n'],
    ['a bad status line', 'HTTP/1.1 20 OK\r\ncontent-length: 0\r\n\r\n'],
    ['HTTP/2 text', 'HTTP/2 200 OK\r\ncontent-length: 0\r\n\r\n'],
    ['101 unasked', 'HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n\r\n'],
    ['a bad chunk size', 'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n'],
    [
      'a negative chunk size',
      'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n',
    ],
    [
      'a chunk longer than its size',
      'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nhello\r\n0\r\n\r\n',
    ],
    ['a huge chunk size', 'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n1000000000000000\r\nx\r\n'],
    ['a head too large', `HTTP/1.1 200 OK\r\nx-a: ${'a'.repeat(70_000)}\r\ncontent-length: 0\r\n\r\n`],
  ];
  for (const [why, text] of refused) {
    const a = await rawApp([text]);
    const r = await exchange(a.up, '/');
    assert.ok(r.error, `${why}: refused`);
    assert.equal(a.up.idleConnections, 0, `${why}: not kept`);
    await a.stop();
  }
});

test('bytes after a response, HTTP/1.0, Connection: close and a body until close: read, never reused', async () => {
  const cases: [string, string, string, { closeAfter?: boolean }][] = [
    [
      'bytes after the response',
      'HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n',
      'ok',
      {},
    ],
    ['bytes after a 204', 'HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 200 OK\r\n\r\n', '', {}],
    ['HTTP/1.0', 'HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\nok', 'ok', {}],
    [
      'HTTP/1.0 keep-alive',
      'HTTP/1.0 200 OK\r\nconnection: keep-alive\r\ncontent-length: 2\r\n\r\nok',
      'ok',
      {},
    ],
    ['Connection: close', 'HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok', 'ok', {}],
    [
      'until close',
      'HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nuntil the end',
      'until the end',
      { closeAfter: true },
    ],
    ['a 204 announcing a body', 'HTTP/1.1 204 No Content\r\ncontent-length: 5\r\n\r\n', '', {}],
    [
      'Keep-Alive: timeout=1',
      'HTTP/1.1 200 OK\r\nkeep-alive: timeout=1\r\ncontent-length: 2\r\n\r\nok',
      'ok',
      {},
    ],
  ];
  for (const [why, text, body, o] of cases) {
    const a = await rawApp([text], o);
    const r = await exchange(a.up, '/');
    assert.equal(r.error, undefined, why);
    assert.equal(r.body.toString(), body, why);
    assert.equal(a.up.idleConnections, 0, `${why}: not kept`);
    await a.stop();
  }
});

test('an idle connection the app dropped as the request went out: sent again on a new connection, once', async () => {
  // The app answers the first request, then closes the connection when the second arrives
  // without answering (a keep-alive timeout racing the request); the new connection answers.
  let connections = 0;
  const sockets = new Set<Socket>();
  const server = createServer((s) => {
    connections++;
    sockets.add(s);
    let requests = 0;
    s.on('data', () => {
      requests++;
      if (connections === 1 && requests === 2) s.destroy();
      else s.write(`HTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\n${connections}`);
    });
  });
  const port = await listenOn(server);
  const up = new Http1Upstream({ host: '127.0.0.1', port, keepAliveMs: 4_000 });
  assert.equal((await exchange(up, '/')).body.toString(), '1');
  const again = await exchange(up, '/');
  assert.equal(again.error, undefined);
  assert.equal(again.body.toString(), '2');
  assert.equal(connections, 2);
  // A new connection that fails before answering is not sent again.
  let fresh = 0;
  const failing = createServer((s) => {
    fresh++;
    s.on('data', () => s.destroy());
  });
  const fport = await listenOn(failing);
  const fup = new Http1Upstream({ host: '127.0.0.1', port: fport, keepAliveMs: 4_000 });
  assert.ok((await exchange(fup, '/')).error);
  assert.equal(fresh, 1);
  up.close();
  fup.close();
  for (const s of sockets) s.destroy();
  await Promise.all([new Promise((r) => server.close(r)), new Promise((r) => failing.close(r))]);
});

test('an aborted exchange closes its connection (the app sees it); nothing more reaches the handler', async () => {
  let closed!: () => void;
  const sawClose = new Promise<void>((r) => {
    closed = r;
  });
  const server = createServer((s) => {
    s.on('data', () =>
      s.write(
        'HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n5\r\nfirst\r\n',
      ),
    );
    s.on('close', () => closed());
  });
  const port = await listenOn(server);
  const up = new Http1Upstream({ host: '127.0.0.1', port, keepAliveMs: 4_000 });
  let calls = 0;
  await new Promise<void>((resolve) => {
    const ex = up.request('GET /events HTTP/1.1\r\nhost: app\r\n\r\n', 'GET', {
      onHead: () => calls++,
      onData: () => {
        calls++;
        ex.abort();
        resolve();
      },
      onEnd: () => assert.fail('no end after abort'),
      onError: () => assert.fail('no error after abort'),
    });
  });
  await sawClose;
  assert.equal(calls, 2);
  assert.equal(up.idleConnections, 0);
  up.close();
  await new Promise((r) => server.close(r));
});

test('the status line and Keep-Alive readers remember the last value, and only an equal one', () => {
  const ok = 'HTTP/1.1 200 OK\r\nx: y';
  assert.deepEqual(statusLine(ok, 15), { http10: false, status: 200, reason: 'OK' });
  assert.deepEqual(statusLine(ok, 15), { http10: false, status: 200, reason: 'OK' });
  // As long as the remembered line, different: read anew, not taken for it.
  assert.deepEqual(statusLine('HTTP/1.0 404 NO', 15), { http10: true, status: 404, reason: 'NO' });
  assert.deepEqual(
    statusLine('HTTP/1.1 200 OK', 12),
    { http10: false, status: 200, reason: '' },
    'its first 12',
  );
  assert.deepEqual(statusLine('HTTP/1.1 200 OK\r\n', 15), { http10: false, status: 200, reason: 'OK' });
  assert.equal(statusLine('HTTP/1.1 2000 OK', 16), undefined);
  assert.equal(statusLine('HTTP/1.1 200 O\nK', 16), undefined);
  assert.deepEqual(statusLine('HTTP/1.1 204', 12), { http10: false, status: 204, reason: '' });

  assert.equal(keepAliveTimeoutMs('timeout=5'), 4000);
  assert.equal(keepAliveTimeoutMs('timeout=5'), 4000);
  assert.equal(keepAliveTimeoutMs('max=100'), undefined);
  assert.equal(keepAliveTimeoutMs('max=100, Timeout=3'), 2000);
  assert.equal(keepAliveTimeoutMs('xtimeout=9'), undefined);
  assert.equal(keepAliveTimeoutMs('timeout=5'), 4000);
});
