import assert from 'node:assert/strict';
import { request } from 'node:http';
import { afterEach, beforeEach, describe, test } from 'node:test';
import type { LoadedProfile } from '../profile';
import { type RunningWebHelper, startWebHelper } from './web-helper';

const PROXY = 'proxy.example:3080';
const ORIGIN = `https://${PROXY}`;

function send(
  port: number,
  opts: { method?: string; origin?: string; host?: string; headers?: Record<string, string>; body?: string },
): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  return new Promise((resolve, reject) => {
    const body = opts.body ?? '';
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path: '/v1/prove',
        method: opts.method ?? 'POST',
        headers: {
          host: opts.host ?? `127.0.0.1:${port}`,
          'content-length': Buffer.byteLength(body),
          ...(opts.origin !== undefined ? { origin: opts.origin } : { origin: ORIGIN }),
          ...(opts.headers ?? { 'content-type': 'application/json', 'x-warden-helper': '1' }),
        },
      },
      (res) => {
        let text = '';
        res.on('data', (c) => {
          text += c;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

describe('wsh device web-helper', () => {
  let helper: RunningWebHelper;
  let proved: { user: string; id: string; secret: string }[];
  let now: number;
  const good = JSON.stringify({ proxy: PROXY, challenge_id: 'c1', challenge_secret: 's1' });

  beforeEach(async () => {
    proved = [];
    now = 1_000_000;
    const profile = { proxy: PROXY, user: 'alice', cluster: 'c' } as LoadedProfile;
    helper = await startWebHelper({
      store: { load: (p?: string) => (p === PROXY ? profile : undefined) },
      ports: [0],
      now: () => now,
      prove: async (p, c) => {
        proved.push({ user: p.user, id: c.id, secret: c.secret });
        return { device: { id: 'd', os_type: 'linux', asset_tag: 't', enroll_status: 'enrolled' } };
      },
    });
  });
  afterEach(() => helper.close());

  test('a preflighted JSON POST from the proxy the user is logged in to runs the ceremony', async () => {
    const pre = await send(helper.port, {
      method: 'OPTIONS',
      headers: {
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'content-type, x-warden-helper',
        'access-control-request-private-network': 'true',
      },
    });
    assert.equal(pre.status, 204);
    assert.equal(pre.headers['access-control-allow-origin'], ORIGIN);
    assert.equal(pre.headers['access-control-allow-private-network'], 'true');
    const r = await send(helper.port, { body: good });
    assert.equal(r.status, 200, r.body);
    assert.equal(r.headers['access-control-allow-origin'], ORIGIN);
    assert.deepEqual(proved, [{ user: 'alice', id: 'c1', secret: 's1' }]);
  });

  test('refuses other origins, a rebound Host, simple requests and another proxy in the body', async () => {
    const cases: [string, Parameters<typeof send>[1], number][] = [
      ['foreign origin', { origin: 'https://evil.example', body: good }, 403],
      ['no origin', { origin: '', body: good }, 403],
      ['http origin', { origin: `http://${PROXY}`, body: good }, 403],
      ['DNS rebinding', { host: 'evil.example:41780', body: good }, 421],
      ['no custom header', { headers: { 'content-type': 'application/json' }, body: good }, 403],
      ['text/plain', { headers: { 'content-type': 'text/plain', 'x-warden-helper': '1' }, body: good }, 415],
      [
        'another proxy',
        { body: JSON.stringify({ proxy: 'evil.example:443', challenge_id: 'c', challenge_secret: 's' }) },
        403,
      ],
      ['deep JSON', { body: `${'['.repeat(10)}${']'.repeat(10)}` }, 400],
      ['missing fields', { body: '{}' }, 400],
      ['GET', { method: 'GET' }, 405],
    ];
    for (const [name, opts, status] of cases) {
      const r = await send(helper.port, opts);
      assert.equal(r.status, status, `${name}: ${r.body}`);
      if (status === 403 && name !== 'no custom header' && name !== 'another proxy')
        assert.equal(r.headers['access-control-allow-origin'], undefined, name);
    }
    const pre = await send(helper.port, {
      method: 'OPTIONS',
      origin: 'https://evil.example',
      headers: {
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'x-warden-helper',
      },
    });
    assert.equal(pre.status, 403);
    assert.equal(pre.headers['access-control-allow-origin'], undefined);
    assert.equal(proved.length, 0, 'no ceremony ran');
  });

  test('rate-limited: a burst of 5, then one every 6 seconds', async () => {
    for (let i = 0; i < 5; i++) assert.equal((await send(helper.port, { body: good })).status, 200);
    assert.equal((await send(helper.port, { body: good })).status, 429);
    now += 6000;
    assert.equal((await send(helper.port, { body: good })).status, 200);
    assert.equal((await send(helper.port, { body: good })).status, 429);
  });
});
