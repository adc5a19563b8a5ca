import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { test } from 'node:test';
import { createLogger, redact } from './index';

function capture(format: 'text' | 'json') {
  const stream = new PassThrough();
  let out = '';
  stream.on('data', (c) => {
    out += c.toString();
  });
  return { log: createLogger({ severity: 'info', format, stream }), read: () => out };
}

test('secret-looking fields never reach the log, in either format', () => {
  for (const format of ['text', 'json'] as const) {
    const { log, read } = capture(format);
    log.info(
      {
        user: 'alice',
        password: 'hunter2hunter2',
        body: { token: 'abc123', otp_code: '123456', keyPem: 'PEM' },
      },
      'x',
    );
    const text = read();
    assert.match(text, /alice/);
    for (const secret of ['hunter2hunter2', 'abc123', '123456', 'PEM'])
      assert.ok(!text.includes(secret), `${format}: ${secret}`);
  }
});

test('severity filters lower levels', () => {
  const { log, read } = capture('text');
  log.debug({ a: 1 }, 'hidden');
  log.warn({ b: 2 }, 'shown');
  assert.doesNotMatch(read(), /hidden/);
  assert.match(read(), /WARN +shown b=2/);
});

test('errors keep type and message only', () => {
  const e = Object.assign(new Error('boom'), { code: 'X', secretStuff: 'no' });
  assert.deepEqual(redact({ err: e }), { err: { type: 'Error', message: 'boom', code: 'X' } });
});

test('JSON lines carry an ISO 8601 time and the level by name', async () => {
  const { log, read } = capture('json');
  log.warn({ a: 1 }, 'careful');
  await new Promise((r) => setImmediate(r));
  const line = JSON.parse(read().trim()) as { time: unknown; level: unknown; msg: unknown; a: unknown };
  assert.equal(line.level, 'warn');
  assert.equal(typeof line.time, 'string');
  assert.match(line.time as string, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  assert.equal(line.msg, 'careful');
  assert.equal(line.a, 1);
});
