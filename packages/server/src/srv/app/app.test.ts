/**
 * srv/app's pure parts and app sessions: header rules of the forwarder, the refusal page and
 * its content negotiation, host names, heartbeat resources, and sessions ended by the monitor
 * (connections and streams cut, audited with why) or by idling out.
 */
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { test } from 'node:test';
import type { AppResource } from '@warden/api';
import { makeIdentity } from '../../access';
import { MemoryAuditLog } from '../../audit';
import { FakeClock } from '../../clock';
import { badGateway, upstreamHeaders, upstreamPath } from './forward';
import { appResourceFromConfig } from './heartbeat';
import { deviceTrustRefusal, prefersJson, refusalPage } from './refusal';
import { hostOnly } from './service';
import { AppSessions } from './session';

const quiet = { debug() {}, info() {}, warn() {}, error() {} } as never;
const ctx = {
  upstream: { url: new URL('http://10.0.0.5:3000/base/'), insecureSkipVerify: false },
  jwt: 'signed.jwt.token',
  clientAddr: '192.0.2.7',
  proto: 'https' as const,
  host: 'grafana.example.com:3080',
  rewrite: [{ name: 'X-Env', value: 'prod' }],
  app: 'grafana',
};

test('upstream headers: hop-by-hop, pseudo and client-set identity headers dropped; Warden sets its own', () => {
  const h = upstreamHeaders(
    {
      ':authority': 'grafana.example.com',
      host: 'grafana.example.com',
      connection: 'keep-alive, x-secret-hop',
      'x-secret-hop': 'dropped',
      'keep-alive': 'timeout=5',
      'transfer-encoding': 'chunked',
      'Warden-Jwt-Assertion': 'forged',
      'warden-jwt-assertion': 'forged too',
      'x-forwarded-for': '6.6.6.6',
      forwarded: 'for=6.6.6.6',
      'x-env': 'client',
      accept: 'text/html',
      cookie: 'a=b',
    },
    ctx,
  );
  assert.deepEqual(h, {
    accept: 'text/html',
    cookie: 'a=b',
    host: '10.0.0.5:3000',
    'x-forwarded-for': '192.0.2.7',
    'x-forwarded-proto': 'https',
    'x-forwarded-host': 'grafana.example.com:3080',
    'x-env': 'prod',
    'warden-jwt-assertion': 'signed.jwt.token',
  });
  assert.equal(upstreamPath(ctx.upstream.url, '/api/x?y=1'), '/base/api/x?y=1');
  assert.equal(upstreamPath(new URL('http://a:1'), '/'), '/');
  // Without the regular expression: every trailing slash of the base goes, none of the client's.
  assert.equal(upstreamPath(new URL('http://a:1/base//'), '/x/'), '/base/x/');
  assert.equal(upstreamPath(new URL('http://a:1/base'), 'x?q=/'), '/base/x?q=/');
  assert.equal(upstreamPath(new URL('http://a:1//'), '//x'), '//x');
});

test('refusals: JSON only when the client prefers it; HTML escapes; the exact device trust sentence', () => {
  assert.equal(prefersJson(undefined), false);
  assert.equal(prefersJson('text/html,application/xhtml+xml,*/*;q=0.8'), false);
  assert.equal(prefersJson('application/json'), true);
  assert.equal(prefersJson('application/problem+json'), true);
  assert.equal(prefersJson('text/html;q=0.5, application/json'), true);
  assert.equal(prefersJson('application/json;q=0'), false);
  const d = deviceTrustRefusal('grafana');
  assert.equal(d.message, 'Access to this app requires a trusted device.');
  assert.equal(d.code, 'WARDEN_ERR_DEVICE_UNAUTHORIZED');
  const page = refusalPage({
    code: 'WARDEN_ERR_ACCESS_DENIED',
    message: '<script>x</script> "q"',
    hint: 'run `wsh x`',
  });
  assert.match(page, /&lt;script&gt;x&lt;\/script&gt; &quot;q&quot;/);
  assert.match(page, /<code>wsh x<\/code>/);
  assert.doesNotMatch(page, /<script>/);
  assert.doesNotMatch(JSON.stringify(badGateway('grafana')), /10\.0\.0\.5/);
});

test('host names: ports, case, trailing dots and IPv6 brackets', () => {
  assert.equal(hostOnly('Grafana.Example.COM:3080'), 'grafana.example.com');
  assert.equal(hostOnly('grafana.localhost.'), 'grafana.localhost');
  assert.equal(hostOnly('[::1]:3080'), '::1');
  assert.equal(hostOnly(undefined), '');
});

test('heartbeat resources from the config are valid app resources', () => {
  const app = appResourceFromConfig({
    name: 'grafana',
    uri: 'http://127.0.0.1:3000',
    labels: { env: 'prod' },
    rewriteHeaders: [{ name: 'X-Env', value: 'prod' }],
    insecureSkipVerify: false,
    auditRequests: true,
  });
  assert.deepEqual(app.spec, {
    uri: 'http://127.0.0.1:3000',
    rewrite: { headers: [{ name: 'X-Env', value: 'prod' }] },
    audit_requests: true,
  });
  assert.deepEqual(app.metadata.labels, { env: 'prod' });
});

const grafana: AppResource = {
  kind: 'app',
  version: 'v3',
  metadata: { name: 'grafana', labels: { env: 'prod' } },
  spec: { uri: 'http://127.0.0.1:3000' },
};

function sessions(idleMs = 60_000) {
  const clock = new FakeClock(Date.UTC(2026, 0, 1));
  const audit = new MemoryAuditLog({ clock });
  const ends: ((m: string, why: { kind: 'lock' } | { kind: 'expired' }) => void)[] = [];
  let unregistered = 0;
  const s = new AppSessions({
    clock,
    logger: quiet,
    audit,
    idleMs,
    monitor: {
      register: (m) => {
        ends.push(m.end);
        return { unregister: () => unregistered++ };
      },
    },
    signJwt: async () => 'jwt',
  });
  return { s, audit, ends, unregistered: () => unregistered };
}

const principal = {
  identity: makeIdentity({
    user: 'alice',
    roles: ['access'],
    device: { deviceId: 'd-1', assetTag: 'A', credentialId: 'c' },
    clientAddr: '192.0.2.7',
  }),
  sessionId: 's-1',
  via: 'cert' as const,
};

test('app sessions: one per login and app; the monitor ends it, cutting connections and streams, audited', async () => {
  const { s, audit, ends } = sessions();
  const [a, b] = await Promise.all([
    s.open(principal, grafana, 'grafana.x'),
    s.open(principal, grafana, 'grafana.x'),
  ]);
  assert.equal(a, b, 'concurrent opens share one session');
  assert.equal(s.find(principal, grafana), a);
  const conn = new PassThrough();
  const ws = new PassThrough();
  a.attach(conn);
  a.track(ws);
  ends[0]!('lock targeting User:"alice" is in force', { kind: 'lock' });
  assert.ok(conn.destroyed && ws.destroyed, 'connections and WebSockets are cut');
  assert.equal(s.find(principal, grafana), undefined);
  const events = await audit.search({ order: 'asc' });
  const start = events.find((e) => e.type === 'app.session.start') as Record<string, unknown>;
  assert.equal(start.user, 'alice');
  assert.equal(start.addr, '192.0.2.7');
  assert.deepEqual((start.device as { id: string }).id, 'd-1');
  assert.equal(start.via, 'cert');
  const end = events.find((e) => e.type === 'app.session.end') as Record<string, unknown>;
  assert.equal(end.terminated_by, 'lock targeting User:"alice" is in force');
  // A new request opens a new session (the caller's access check decides first).
  const c = await s.open(principal, grafana, 'grafana.x');
  assert.notEqual(c, a);
  ends[1]!('x', { kind: 'expired' });
  const ended = (await audit.search({ types: ['app.session.end'] })) as Record<string, unknown>[];
  assert.ok(ended.some((e) => e.terminated_by === 'certificate expired'));
});

test('an app session is not found before the audit log has its start; a refused start opens nothing', async () => {
  const { s, audit } = sessions();
  // Fault injection on the in-memory store: app.session.start stalls, then fails.
  let fail: (e: Error) => void = () => {};
  const emit = audit.emit.bind(audit);
  audit.emit = (e) =>
    e.type === 'app.session.start'
      ? new Promise((_, reject) => {
          fail = reject;
        })
      : emit(e);
  const opening = s.open(principal, grafana, 'grafana.x');
  await new Promise((r) => setImmediate(r));
  assert.equal(s.find(principal, grafana), undefined, 'no request is served before the start is recorded');
  const second = s.open(principal, grafana, 'grafana.x');
  fail(new Error('disk full'));
  for (const p of [opening, second])
    await assert.rejects(p, (e: Error & { code?: string }) => e.code === 'WARDEN_ERR_AUDIT_UNAVAILABLE');
  assert.equal(s.find(principal, grafana), undefined);
  assert.equal(s.size, 0);
});

test('app sessions idle out after their last connection closes', async () => {
  const { s, audit, unregistered } = sessions(20);
  const session = await s.open(principal, grafana, 'grafana.x');
  const conn = new PassThrough();
  session.attach(conn);
  conn.destroy();
  // The idle timer is 20 ms; on a loaded machine it may fire late: wait for it, bounded.
  const until = Date.now() + 5000;
  while (!session.ended && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
  assert.equal(session.ended, true);
  assert.equal(unregistered(), 1, 'unregistered from the monitor');
  const end = (await audit.search({ types: ['app.session.end'] }))[0] as Record<string, unknown>;
  assert.equal(end.terminated_by, undefined);
});

test('a web app session replaced when its web session becomes device-trusted: connections kept, new identity, audited', async () => {
  const { s, audit, ends, unregistered } = sessions();
  const untrusted = {
    identity: makeIdentity({ user: 'alice', roles: ['access'], clientAddr: '192.0.2.7' }),
    sessionId: 'w-1',
    via: 'web' as const,
  };
  const trusted = { ...untrusted, identity: { ...untrusted.identity, device: principal.identity.device! } };
  const old = await s.open(untrusted, grafana, 'grafana.x');
  const conn = new PassThrough();
  const ws = new PassThrough();
  old.attach(conn);
  old.track(ws);
  const fresh = await s.replace(old, trusted, grafana, 'grafana.x', 'the web session became device-trusted');
  assert.equal(old.ended, true);
  assert.notEqual(fresh, old);
  assert.equal(fresh.principal.identity.device?.deviceId, 'd-1');
  assert.equal(s.find(trusted, grafana), fresh);
  assert.equal(conn.destroyed || ws.destroyed, false, 'the browser connection and its WebSocket carry on');
  assert.equal(fresh.connections, 1);
  assert.equal(unregistered(), 1, 'the untrusted identity left the monitor');
  assert.equal(ends.length, 2, 'the trusted identity registered');
  const ended = (await audit.search({ types: ['app.session.end'] }))[0] as Record<string, unknown>;
  assert.equal(ended.terminated_by, 'the web session became device-trusted');
  const started = (await audit.search({ types: ['app.session.start'], order: 'asc' })) as Record<
    string,
    unknown
  >[];
  assert.deepEqual(
    started.map((e) => (e.device as { id?: string } | undefined)?.id),
    [undefined, 'd-1'],
  );
  // A lock on the device now ends the new session and cuts the connection it took over.
  ends[1]!('lock targeting Device:"d-1" is in force', { kind: 'lock' });
  assert.equal(fresh.ended, true);
  assert.equal(conn.destroyed && ws.destroyed, true);
});
