/**
 * Web apps through Warden as a user meets them (issue 11), with real parts: a node:http app
 * with a WebSocket and an SSE endpoint (testkit), nginx serving a static site, curl with the
 * app certificate (HTTP/1.1 and HTTP/2) and through `wsh proxy app`, a `ws` WebSocket client,
 * the JWT verified with `jose` against the proxy's JWKS; refusals (HTML and JSON), spoofed
 * assertion headers, locks cutting a WebSocket and an SSE stream, and the audit log.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { connect as connectHttp2, type Settings as Http2Settings } from 'node:http2';
import { connect as connectTcp } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  type HttpApp,
  type NginxServer,
  requireNginx,
  requireTool,
  startHttpApp,
  startNginx,
  waitForText,
} from '@warden/testkit';
import { createLocalJWKSet, jwtVerify } from 'jose';
import WebSocket from 'ws';
import { APP_DEVICE_TRUST_REQUIRED } from '../../packages/server/src/srv/app';
import { appCurlArgs, appTlsOptions, curl } from '../support/curl';
import { type AppCluster, appConfig, cli, spawnCli, startAppCluster } from './cluster';

const curlCheck = requireTool('curl');
const nginxCheck = requireNginx();

const waitFor = waitForText;

describe('web apps through Warden', { skip: curlCheck.skip }, () => {
  let app: HttpApp;
  let nginx: NginxServer | undefined;
  let c: AppCluster;
  let alice: NodeJS.ProcessEnv;
  let bob: NodeJS.ProcessEnv;
  let proxyApp: ChildProcess | undefined;
  let proxyOut = '';
  let local = '';

  /** curl args for alice's app certificate for `name` (from `wsh app config`). */
  const certArgs = async (env: NodeJS.ProcessEnv, name: string): Promise<{ args: string[]; uri: string }> => {
    const cfg = await appConfig(env, name);
    return { uri: cfg.uri, args: appCurlArgs(cfg, c.port) };
  };

  before(async () => {
    app = await startHttpApp();
    if (!nginxCheck.skip)
      nginx = await startNginx({ files: { 'index.html': '<h1>static site served by nginx</h1>\n' } });
    c = await startAppCluster({ enabled: true, apps: [] });
    // Apps as resources (wctl create, no restart): the test app, the static site, one that is down.
    await c.services.apps.create({
      kind: 'app',
      version: 'v3',
      metadata: { name: 'demo', description: 'node:http test app', labels: { env: 'dev' } },
      spec: { uri: app.url, rewrite: { headers: [{ name: 'X-Env', value: 'dev' }] }, audit_requests: true },
    });
    if (nginx)
      await c.services.apps.create({
        kind: 'app',
        version: 'v3',
        metadata: { name: 'site', labels: { env: 'dev' } },
        spec: { uri: nginx.url },
      });
    await c.services.apps.create({
      kind: 'app',
      version: 'v3',
      metadata: { name: 'down', labels: { env: 'dev' } },
      spec: { uri: 'http://127.0.0.1:1' },
    });
    await c.services.roles.create({
      kind: 'role',
      version: 'v7',
      metadata: { name: 'no-down' },
      spec: { options: {}, allow: { app_labels: { env: 'dev' } }, deny: { app_labels: { secret: 'yes' } } },
    });
    alice = await c.addUser('alice', ['access']);
    bob = await c.addUser('bob', ['no-down']);
  });

  after(async () => {
    proxyApp?.kill('SIGTERM');
    await c?.stop();
    await nginx?.stop();
    await app?.close();
  });

  test('wctl create app (no restart), wctl get apps, wsh apps ls with --format', async () => {
    const file = join(c.dir, 'wiki.yaml');
    writeFileSync(
      file,
      'kind: app\nversion: v3\nmetadata:\n  name: wiki\n  labels: { secret: "yes", env: dev }\nspec:\n  uri: http://127.0.0.1:9\n',
    );
    const created = await cli('wctl', ['create', file], { env: c.adminEnv });
    assert.equal(created.code, 0, created.stderr);
    assert.match(created.stdout, /app "wiki" has been created/);
    const got = await cli('wctl', ['get', 'apps'], { env: c.adminEnv });
    assert.match(got.stdout, /wiki +http:\/\/127\.0\.0\.1:9/);
    const ls = await cli('wsh', ['apps', 'ls'], { env: alice });
    assert.equal(ls.code, 0, ls.stderr);
    assert.match(ls.stdout, /demo +node:http test app +demo\.localhost +env=dev/);
    assert.match(ls.stdout, /wiki/);
    // bob's role denies secret apps: he does not see wiki.
    const bobLs = JSON.parse((await cli('wsh', ['apps', 'ls', '--format=json'], { env: bob })).stdout) as {
      name: string;
      public_addr: string;
    }[];
    assert.deepEqual(
      bobLs.map((a) => a.name),
      ['demo', 'down', ...(nginx ? ['site'] : [])],
    );
    assert.equal(bobLs[0]!.public_addr, 'demo.localhost');
    const denied = await cli('wsh', ['app', 'login', 'wiki'], { env: bob });
    assert.equal(denied.code, 1);
    assert.match(
      denied.stderr,
      /access denied: user "bob" may not access app "wiki" \(denied by role "no-down"\)/,
    );
    const unknown = await cli('wsh', ['app', 'login', 'nope'], { env: alice });
    assert.match(unknown.stderr, /app "nope" not found/);
  });

  test('wsh app login, then curl with the app certificate over HTTP/1.1 and HTTP/2', async () => {
    const login = await cli('wsh', ['app', 'login', 'demo'], { env: alice });
    assert.equal(login.code, 0, login.stderr);
    assert.match(login.stdout, /curl --cacert \S+host-cas\.pem --cert \S+demo\.crt --key \S+key\.pem/);
    assert.equal(
      (await cli('wsh', ['app', 'config', 'demo', '--format=uri'], { env: alice })).stdout.trim(),
      `https://demo.localhost:${c.port}`,
    );
    const { args, uri } = await certArgs(alice, 'demo');
    for (const proto of ['--http1.1', '--http2']) {
      const r = await curl([
        ...args,
        proto,
        '-H',
        'Warden-Jwt-Assertion: forged',
        '-H',
        'X-Forwarded-For: 6.6.6.6',
        `${uri}/headers`,
      ]);
      assert.equal(r.status, 200, r.stderr);
      const seen = JSON.parse(r.body) as { headers: Record<string, string> };
      assert.equal(seen.headers.host, `127.0.0.1:${app.port}`, 'Host is the app’s');
      assert.equal(seen.headers['x-forwarded-for'], '127.0.0.1', 'the client’s X-Forwarded-For is replaced');
      assert.equal(seen.headers['x-forwarded-proto'], 'https');
      assert.equal(seen.headers['x-forwarded-host'], `demo.localhost:${c.port}`);
      assert.equal(seen.headers['x-env'], 'dev', 'rewrite headers are added');
      assert.notEqual(seen.headers['warden-jwt-assertion'], 'forged', 'the spoofed assertion is stripped');
    }
    // Chunked upload and streamed response.
    const body = 'x'.repeat(200_000);
    writeFileSync(join(c.dir, 'upload.txt'), body);
    const echo = await curl([
      ...args,
      '-H',
      'Transfer-Encoding: chunked',
      '--data-binary',
      `@${join(c.dir, 'upload.txt')}`,
      `${uri}/echo`,
    ]);
    assert.equal(echo.body, body);
    const stream = await curl([...args, `${uri}/stream?n=4`]);
    assert.equal(stream.body, 'chunk 0\nchunk 1\nchunk 2\nchunk 3\n');
  });

  test('HTTP/2 advertises no extended CONNECT and refuses CONNECT (405); a WebSocket with the app certificate goes over HTTP/1.1 beside it', async () => {
    const tlsOptions = appTlsOptions(await appConfig(alice, 'demo'));
    const host = tlsOptions.servername;
    const session = connectHttp2(`https://127.0.0.1:${c.port}`, tlsOptions);
    try {
      const settings = await new Promise<Http2Settings>((resolve, reject) => {
        session.once('remoteSettings', resolve);
        session.once('error', reject);
      });
      assert.equal(settings.enableConnectProtocol, false, 'no RFC 8441 WebSockets over HTTP/2 on offer');
      const exchange = (headers: Record<string, string>) =>
        new Promise<{ status: number; body: string }>((resolve, reject) => {
          const stream = session.request(headers);
          let status = 0;
          let body = '';
          stream.on('response', (h) => {
            status = Number(h[':status']);
          });
          stream.on('data', (d: Buffer) => {
            body += d.toString();
          });
          stream.on('end', () => resolve({ status, body }));
          stream.on('error', reject);
        });
      const refused = await exchange({
        ':method': 'CONNECT',
        ':authority': `${host}:${c.port}`,
        accept: 'application/json',
      });
      assert.equal(refused.status, 405);
      const error = (JSON.parse(refused.body) as { error: { code: string; message: string } }).error;
      assert.equal(error.code, 'WARDEN_ERR_BAD_PARAMETER');
      assert.match(error.message, /does not relay CONNECT/);
      const hello = await exchange({
        ':method': 'GET',
        ':path': '/hello',
        ':authority': `${host}:${c.port}`,
      });
      assert.equal(hello.status, 200, 'the HTTP/2 connection still serves the app');
      // The WebSocket: its own TLS connection, HTTP/1.1, the Upgrade relayed to the app.
      const ws = new WebSocket(`wss://127.0.0.1:${c.port}/ws`, {
        ...tlsOptions,
        headers: { host: `${host}:${c.port}` },
      });
      const messages: string[] = [];
      ws.on('message', (m) => messages.push(m.toString()));
      await new Promise<void>((r, j) => {
        ws.once('open', () => r());
        ws.once('error', j);
      });
      ws.send('over http/1.1');
      await waitFor(() => messages.join('|'), /welcome\|over http\/1\.1/);
      ws.close();
    } finally {
      session.close();
    }
  });

  test('the JWT verifies with jose against /.well-known/jwks.json; forged ones do not', async () => {
    const { args, uri } = await certArgs(alice, 'demo');
    const jwksRes = await curl(['--cacert', args[1]!, `https://127.0.0.1:${c.port}/.well-known/jwks.json`]);
    assert.equal(jwksRes.status, 200, jwksRes.stderr);
    const jwks = createLocalJWKSet(JSON.parse(jwksRes.body));
    const seen = JSON.parse((await curl([...args, `${uri}/headers`])).body) as {
      headers: Record<string, string>;
    };
    const token = seen.headers['warden-jwt-assertion']!;
    const { payload, protectedHeader } = await jwtVerify(token, jwks, {
      issuer: 'app-test',
      audience: app.url,
    });
    assert.equal(protectedHeader.alg, 'ES256');
    assert.equal(payload.sub, 'alice');
    assert.deepEqual(payload.roles, ['access']);
    assert.equal(payload.device, undefined, 'no trusted device, no device claim');
    assert.ok((payload.exp ?? 0) * 1000 > Date.now());
    const [h, , s] = token.split('.');
    const forged = Buffer.from(JSON.stringify({ ...payload, sub: 'root' })).toString('base64url');
    await assert.rejects(jwtVerify(`${h}.${forged}.${s}`, jwks), /signature/);
  });

  test('refusals: HTML for browsers, JSON for API clients; never the app’s address', async () => {
    const { args } = await certArgs(alice, 'demo');
    const ca = args[1]!;
    const resolve = (name: string) => ['--resolve', `${name}.localhost:${c.port}:127.0.0.1`];
    // No client certificate at all.
    const none = await curl(['--cacert', ca, ...resolve('demo'), `https://demo.localhost:${c.port}/`]);
    assert.equal(none.status, 401);
    assert.match(none.body, /<!doctype html>[\s\S]*This app needs a Warden app certificate\./);
    // The login certificate is not an app certificate.
    const profile = (await appConfig(alice, 'demo')).key;
    const loginCert = join(profile, '..', 'tls.pem');
    const wrong = await curl([
      '--cacert',
      ca,
      '--cert',
      loginCert,
      '--key',
      profile,
      ...resolve('demo'),
      '-H',
      'Accept: application/json',
      `https://demo.localhost:${c.port}/`,
    ]);
    assert.equal(wrong.status, 401);
    assert.equal(JSON.parse(wrong.body).error.code, 'WARDEN_ERR_BAD_CERTIFICATE');
    // The demo certificate on another app's host name, and on a name with no app.
    const other = await curl([...args, ...resolve('down'), `https://down.localhost:${c.port}/`]);
    assert.equal(other.status, 403);
    assert.match(other.body, /This app certificate is for &quot;demo&quot;, not &quot;down&quot;\./);
    const nothing = await curl([
      ...args,
      ...resolve('nothing'),
      '-H',
      'Accept: application/json',
      `https://nothing.localhost:${c.port}/`,
    ]);
    assert.equal(nothing.status, 404);
    assert.equal(JSON.parse(nothing.body).error.message, 'There is no app at this address.');
    // The app certificate is refused by the API.
    const api = await curl([...args, `https://127.0.0.1:${c.port}/v1/whoami`]);
    assert.equal(api.status, 401);
    assert.match(
      JSON.parse(api.body).error.message,
      /app certificate for "demo": it works for that app only/,
    );
    // An app that is down: 502 without its address.
    await cli('wsh', ['app', 'login', 'down'], { env: alice });
    const down = await certArgs(alice, 'down');
    const bad = await curl([...down.args, `${down.uri}/`]);
    assert.equal(bad.status, 502);
    assert.match(bad.body, /The app &quot;down&quot; is not answering\./);
    assert.doesNotMatch(bad.body, /127\.0\.0\.1|ECONNREFUSED|connect/);
  });

  test('nginx serving a static site, through Warden', { skip: nginxCheck.skip }, async () => {
    const login = await cli('wsh', ['app', 'login', 'site'], { env: bob });
    assert.equal(login.code, 0, login.stderr);
    const { args, uri } = await certArgs(bob, 'site');
    const r = await curl([...args, '--http2', `${uri}/`]);
    assert.equal(r.status, 200, r.stderr);
    assert.equal(r.body, '<h1>static site served by nginx</h1>\n');
  });

  test('wsh proxy app serves the app on a local port: curl, SSE and a WebSocket', async () => {
    proxyApp = spawnCli('wsh', ['proxy', 'app', 'demo', '-p', '0'], alice);
    proxyApp.stdout!.on('data', (d) => {
      proxyOut += d;
    });
    proxyApp.stderr!.on('data', (d) => {
      proxyOut += d;
    });
    local = (
      await waitFor(() => proxyOut, /Proxying connections to app "demo" on (http:\/\/127\.0\.0\.1:\d+)/)
    )[1]!;
    const page = await curl([`${local}/`]);
    assert.equal(page.status, 200);
    assert.match(page.body, /hello from the test app/);
    const seen = JSON.parse((await curl([`${local}/headers`])).body) as { headers: Record<string, string> };
    assert.equal(seen.headers['x-forwarded-proto'], 'http');
    assert.ok(seen.headers['warden-jwt-assertion']);
    // SSE: the first events arrive as they are sent.
    const sse = await curl(['-N', '-m', '1', `${local}/sse`], 3000);
    assert.match(sse.body, /data: tick 0\n\ndata: tick 1\n\n/);
    // WebSocket: echo and a server-initiated message.
    const ws = new WebSocket(`${local.replace('http', 'ws')}/ws`);
    const messages: string[] = [];
    ws.on('message', (m) => messages.push(m.toString()));
    await new Promise<void>((r, j) => {
      ws.once('open', () => r());
      ws.once('error', j);
    });
    ws.send('tick');
    ws.send('hello there');
    await waitFor(() => messages.join('|'), /welcome\|tock\|hello there/);
    ws.close();
  });

  test('one wsh proxy app connection: plain GETs (lean path), a POST handed to node:http mid-connection, a GET after it; every one with the JWT and spoofed headers replaced', async () => {
    const { port } = new URL(local);
    const spoof = 'warden-jwt-assertion: forged\r\nx-forwarded-for: 6.6.6.6\r\nx-forwarded-host: evil\r\n';
    const out = await new Promise<string>((resolve, reject) => {
      const s = connectTcp(Number(port), '127.0.0.1');
      let got = '';
      s.on('data', (d) => {
        got += d.toString('latin1');
      });
      s.on('close', () => resolve(got));
      s.on('error', reject);
      s.setTimeout(15_000, () => s.destroy(new Error(`timed out; got ${got}`)));
      // Three requests in one write: the lean path answers the first and hands the rest over.
      s.write(
        `GET /headers?n=1 HTTP/1.1\r\nhost: x\r\n${spoof}\r\n` +
          `POST /headers?n=2 HTTP/1.1\r\nhost: x\r\n${spoof}content-length: 3\r\n\r\nabc` +
          `GET /headers?n=3 HTTP/1.1\r\nhost: x\r\n${spoof}connection: close\r\n\r\n`,
      );
    });
    const bodies = [...out.matchAll(/\{"method".*?\}\}/g)].map(
      (m) => JSON.parse(m[0]) as { method: string; url: string; headers: Record<string, string> },
    );
    assert.deepEqual(
      bodies.map((b) => `${b.method} ${b.url}`),
      ['GET /headers?n=1', 'POST /headers?n=2', 'GET /headers?n=3'],
      out,
    );
    assert.match(bodies[0]!.headers['warden-jwt-assertion'] ?? '', /^[\w-]+\.[\w-]+\.[\w-]+$/, 'a JWT');
    for (const b of bodies) {
      assert.notEqual(b.headers['warden-jwt-assertion'], 'forged');
      assert.equal(
        b.headers['warden-jwt-assertion'],
        bodies[0]!.headers['warden-jwt-assertion'],
        'one JWT per session',
      );
      assert.equal(b.headers['x-forwarded-for'], '127.0.0.1');
      assert.equal(b.headers['x-forwarded-proto'], 'http');
      assert.notEqual(b.headers['x-forwarded-host'], 'evil');
      assert.equal(b.headers.host, `127.0.0.1:${app.port}`);
    }
  });

  test('a lock cuts an open WebSocket and an SSE stream within a second; the next request gets the 403', async () => {
    const ws = new WebSocket(`${local.replace('http', 'ws')}/ws`);
    await new Promise<void>((r, j) => {
      ws.once('open', () => r());
      ws.once('error', j);
    });
    const wsClosed = new Promise<number>((r) => ws.once('close', () => r(Date.now())));
    const sseLines: string[] = [];
    let sseEnded = 0;
    const sse = (await import('node:http')).get(`${local}/sse`, (res) => {
      res.on('data', (d) => sseLines.push(String(d)));
      res.on('close', () => {
        sseEnded = Date.now();
      });
    });
    sse.on('error', () => {
      sseEnded ||= Date.now();
    });
    await waitFor(() => sseLines.join(''), /tick 1/);
    const t0 = Date.now();
    await c.services.locks.create({
      kind: 'lock',
      version: 'v2',
      metadata: { name: '0e5b2a5e-6d1f-4a44-9d7e-8b1f2c3d4e5f' },
      spec: { target: { user: 'alice' }, message: 'security review' },
    });
    const wsAt = await wsClosed;
    await waitFor(() => String(sseEnded), /^[1-9]/, 2000);
    assert.ok(wsAt - t0 < 1000, `WebSocket cut after ${wsAt - t0} ms`);
    assert.ok(sseEnded - t0 < 1000, `SSE stream cut after ${sseEnded - t0} ms`);
    const next = await curl(['-H', 'Accept: application/json', `${local}/`]);
    assert.equal(next.status, 403);
    assert.equal(
      JSON.parse(next.body).error.message,
      'lock targeting User:"alice" is in force: security review',
    );
    const html = await curl([`${local}/`]);
    assert.match(html.body, /lock targeting User:&quot;alice&quot; is in force: security review/);
    await c.services.locks.delete('0e5b2a5e-6d1f-4a44-9d7e-8b1f2c3d4e5f');
  });

  test('device trust is per role for apps: the exact sentence, HTML and JSON; the cluster mode does not apply', async () => {
    await c.services.apps.create({
      kind: 'app',
      version: 'v3',
      metadata: { name: 'prod', labels: { env: 'production' } },
      spec: { uri: app.url },
    });
    await c.services.roles.create({
      kind: 'role',
      version: 'v7',
      metadata: { name: 'require-trusted-device-apps' },
      spec: {
        options: { device_trust_mode: 'required' },
        allow: { app_labels: { env: 'production' } },
        deny: {},
      },
    });
    const carol = await c.addUser('carol', ['access', 'require-trusted-device-apps']);
    const login = await cli('wsh', ['app', 'login', 'prod'], { env: carol });
    assert.equal(login.code, 0, login.stderr);
    assert.match(login.stderr, /WARNING: Access to this app requires a trusted device\./);
    const { args, uri } = await certArgs(carol, 'prod');
    const html = await curl([...args, `${uri}/`]);
    assert.equal(html.status, 403);
    assert.match(html.body, new RegExp(`<h1>${APP_DEVICE_TRUST_REQUIRED.replace('.', '\\.')}</h1>`));
    assert.match(html.body, /wsh proxy app prod/);
    const json = await curl([...args, '-H', 'Accept: application/json', `${uri}/`]);
    assert.equal(json.status, 403);
    assert.equal(JSON.parse(json.body).error.message, 'Access to this app requires a trusted device.');
    assert.equal(JSON.parse(json.body).error.code, 'WARDEN_ERR_DEVICE_UNAUTHORIZED');
    // The same role does not cover dev apps; the cluster-wide mode does not apply to apps.
    await c.setAuthPreference({ device_trust: { mode: 'required', auto_enroll: false } });
    try {
      await cli('wsh', ['app', 'login', 'demo'], { env: carol });
      const demo = await certArgs(carol, 'demo');
      const ok = await curl([...demo.args, `${demo.uri}/hello`]);
      assert.equal(ok.status, 200);
      assert.equal(ok.body, 'hello');
    } finally {
      await c.setAuthPreference({ device_trust: { mode: 'optional', auto_enroll: false } });
    }
  });

  test('audit: app sessions (start, end by the lock), requests without query strings, app certificates', async () => {
    const events = await c.audit.search({ order: 'asc', limit: 10_000 });
    const starts = events.filter((e) => e.type === 'app.session.start' && e.user === 'alice' && e.success);
    assert.ok(starts.length >= 1);
    assert.equal((starts[0] as { resource?: { name: string } }).resource?.name, 'demo');
    assert.equal((starts[0] as { via?: string }).via, 'cert');
    assert.equal(starts[0]!.addr, '127.0.0.1');
    const ends = events.filter((e) => e.type === 'app.session.end' && e.user === 'alice');
    assert.ok(
      ends.some(
        (e) =>
          (e as { terminated_by?: string }).terminated_by ===
          'lock targeting User:"alice" is in force: security review',
      ),
      JSON.stringify(ends),
    );
    const refused = events.filter((e) => e.type === 'app.session.start' && !e.success);
    assert.ok(refused.some((e) => e.user === 'carol' && e.error === 'unauthorized device'));
    const requests = events.filter((e) => e.type === 'app.request');
    const stream = requests.find((e) => (e as { path?: string }).path === '/stream');
    assert.ok(stream, 'app.request for /stream (the query string is left out)');
    assert.equal((stream as { status?: number }).status, 200);
    assert.equal((stream as { response_bytes?: number }).response_bytes, 32);
    assert.ok(
      requests.some((e) => (e as { status?: number }).status === 101),
      'the WebSocket upgrade',
    );
    const certs = events.filter(
      (e) => e.type === 'cert.create' && (e as { cert_type?: string }).cert_type === 'app',
    );
    assert.ok(certs.some((e) => e.user === 'alice' && (e as { app?: string }).app === 'demo'));
    // The caller's address comes with its identity (the router sets it; no separate argument).
    assert.ok(
      certs.every((e) => e.addr === '127.0.0.1'),
      'cert.create carries the client address',
    );
    // Never a body or a cookie.
    assert.doesNotMatch(JSON.stringify(requests), /xxxxxxxx|cookie/i);
  });
});
