/**
 * A real web app for the app-access tests and benchmarks: node:http on 127.0.0.1 port 0 with
 *
 *   GET  /               a small HTML page
 *   GET  /headers        the request's headers, method and URL as JSON (what the app saw)
 *   GET  /hello          `hello` (plain text, for load tests)
 *   POST /echo           the request body back, streamed (chunked)
 *   GET  /stream?n=5     n chunks, 50 ms apart (a slow chunked response)
 *   GET  /sse            Server-Sent Events: `data: tick N` every 100 ms until the client leaves
 *   GET  /status/NNN     an empty response with that status
 *   WS   /ws             WebSocket (the `ws` package): echoes messages; `tick` sends one back
 *
 * It records the headers of every request (`seen`) so tests can check what Warden sent.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocketServer } from 'ws';

export interface HttpApp {
  url: string;
  port: number;
  /** Headers of the requests received so far (newest last). */
  seen: { method: string; url: string; headers: IncomingMessage['headers'] }[];
  /** Open SSE streams and WebSockets now. */
  open(): { sse: number; ws: number };
  close(): Promise<void>;
}

function page(res: ServerResponse): void {
  const body = '<!doctype html><title>test app</title><h1>hello from the test app</h1>\n';
  res.writeHead(200, {
    'content-type': 'text/html; charset=utf-8',
    'content-length': Buffer.byteLength(body),
  });
  res.end(body);
}

export async function startHttpApp(): Promise<HttpApp> {
  const seen: HttpApp['seen'] = [];
  let sse = 0;
  const server: Server = createServer((req, res) => {
    seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers });
    if (seen.length > 1000) seen.shift();
    const url = new URL(req.url ?? '/', 'http://app');
    if (url.pathname === '/hello') {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 5 });
      res.end('hello');
    } else if (url.pathname === '/headers') {
      const body = JSON.stringify({ method: req.method, url: req.url, headers: req.headers });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    } else if (url.pathname === '/echo' && req.method === 'POST') {
      res.writeHead(200, { 'content-type': req.headers['content-type'] ?? 'application/octet-stream' });
      req.pipe(res);
    } else if (url.pathname === '/stream') {
      const n = Math.min(Number(url.searchParams.get('n') ?? 5) || 5, 100);
      res.writeHead(200, { 'content-type': 'text/plain' });
      let i = 0;
      const timer = setInterval(() => {
        res.write(`chunk ${i}\n`);
        if (++i >= n) {
          clearInterval(timer);
          res.end();
        }
      }, 50);
      res.on('close', () => clearInterval(timer));
    } else if (url.pathname === '/sse') {
      sse++;
      res.writeHead(200, {
        'content-type': 'text/event-stream',
        'cache-control': 'no-cache',
        connection: 'keep-alive',
      });
      let i = 0;
      res.write(': connected\n\n');
      const timer = setInterval(() => res.write(`data: tick ${i++}\n\n`), 100);
      res.on('close', () => {
        clearInterval(timer);
        sse--;
      });
    } else if (url.pathname.startsWith('/status/')) {
      res.writeHead(Number(url.pathname.slice(8)) || 500);
      res.end();
    } else {
      page(res);
    }
  });
  server.keepAliveTimeout = 30_000;
  const wss = new WebSocketServer({ noServer: true });
  server.on('upgrade', (req, socket, head) => {
    seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers });
    if (!req.url?.startsWith('/ws')) {
      socket.end('HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n');
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      ws.on('message', (data, isBinary) => {
        const text = data.toString();
        if (!isBinary && text === 'tick') ws.send('tock');
        else ws.send(data, { binary: isBinary });
      });
      ws.send('welcome');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    seen,
    open: () => ({ sse, ws: wss.clients.size }),
    close: () =>
      new Promise<void>((resolve) => {
        for (const c of wss.clients) c.terminate();
        wss.close();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
