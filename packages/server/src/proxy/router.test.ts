import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import type { Logger } from '../log';
import { createRequestHandler } from './router';

function recordingLogger() {
  const warnings: { o: Record<string, unknown>; m: string | undefined }[] = [];
  const logger = {
    warn: (o: object, m?: string) => warnings.push({ o: o as Record<string, unknown>, m }),
    error() {},
    info() {},
    debug() {},
  } as unknown as Logger;
  return { warnings, logger };
}

test('a slow call is logged with its route pattern, never its path; a fast one is not logged', async () => {
  const { warnings, logger } = recordingLogger();
  const handler = createRequestHandler({
    logger,
    identify: () => Promise.reject(new Error('no identities here')),
    slowRequestMs: 80,
    routes: [
      {
        method: 'GET',
        path: '/v1/tokens/:id',
        auth: 'none',
        handler: async (ctx: { params: Record<string, string> }) => {
          if (ctx.params.id === 'slow-secret-id') await new Promise((r) => setTimeout(r, 120));
          return { ok: true };
        },
      } as never,
    ],
  });
  const server = createServer((req, res) => void handler(req, res));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  try {
    const fast = await fetch(`http://127.0.0.1:${port}/v1/tokens/fast-id`);
    assert.equal(fast.status, 200);
    assert.equal(warnings.length, 0);
    const slow = await fetch(`http://127.0.0.1:${port}/v1/tokens/slow-secret-id`);
    assert.equal(slow.status, 200);
    await new Promise((r) => setImmediate(r));
    assert.equal(warnings.length, 1);
    assert.equal(warnings[0]!.m, 'slow API request');
    assert.equal(warnings[0]!.o.route, '/v1/tokens/:id');
    assert.equal(warnings[0]!.o.answered, true);
    assert.ok((warnings[0]!.o.ms as number) >= 80);
    assert.doesNotMatch(JSON.stringify(warnings), /slow-secret-id/);
  } finally {
    server.close();
  }
});
