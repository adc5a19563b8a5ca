import assert from 'node:assert/strict';
import { test } from 'node:test';
import { smallChunks as chunks, tapHarness as harness } from '../../../../../../test/support/db-taps';
import { errorResponse, message, PgProtocolError } from './protocol';
import { ClientTap, PgActivity, ServerTap } from './relay';

const cstr = (s: string) => Buffer.from(`${s}\0`, 'utf8');

test('ClientTap passes every byte through unchanged and reports audited messages once complete', async () => {
  const stream = Buffer.concat([
    message('Q', cstr('select 1')),
    message('P', Buffer.concat([cstr('s'), cstr('select $1'), Buffer.from([0, 0])])),
    message('S', Buffer.alloc(0)),
    message('d', Buffer.alloc(3000, 7)),
    message('X', Buffer.alloc(0)),
  ]);
  const seen: [string, string][] = [];
  const tap = new ClientTap((type, body) => seen.push([type, body?.toString('latin1') ?? '']));
  const io = harness(tap);
  const out = io.out;
  for (const c of chunks(stream)) io.write(c);
  io.end();
  assert.deepEqual(await out, stream);
  assert.deepEqual(
    seen.map(([t]) => t),
    ['Q', 'P'],
  );
  assert.equal(seen[0]![1], 'select 1\0');
});

test('ClientTap fails the stream on a malformed length', async () => {
  const tap = new ClientTap(() => undefined);
  const io = harness(tap);
  const failed = io.failed;
  io.write(Buffer.concat([Buffer.from('Q'), Buffer.from([0, 0, 0, 2])]));
  assert.ok((await failed) instanceof PgProtocolError);
});

test('ServerTap streams without holding data, and an interrupt lands between two messages', async () => {
  const row = message('D', Buffer.alloc(100, 1));
  const tap = new ServerTap();
  const io = harness(tap);
  const out = io.out;
  const last = errorResponse({
    severity: 'FATAL',
    code: '57P01',
    message: 'lock targeting User:"a" is in force',
  });
  // Half a message in flight: the interrupt waits for its end.
  io.write(row.subarray(0, 40));
  tap.interrupt(last);
  io.write(Buffer.concat([row.subarray(40), row, row]));
  io.end();
  const got = await out;
  assert.deepEqual(got, Buffer.concat([row, last]));
});

test('ServerTap interrupts at once when idle between messages', async () => {
  const tap = new ServerTap();
  const io = harness(tap);
  const out = io.out;
  const z = message('Z', Buffer.from('I'));
  io.write(z);
  await new Promise((r) => setImmediate(r));
  const last = errorResponse({ severity: 'FATAL', code: '57P01', message: 'bye' });
  tap.interrupt(last);
  assert.ok(tap.interrupted);
  io.write(z); // dropped
  assert.deepEqual(await out, Buffer.concat([z, last]));
});

test('a large stream passes through ServerTap intact', async () => {
  const tap = new ServerTap();
  const io = harness(tap);
  const rows: Buffer[] = [];
  for (let i = 0; i < 2000; i++) rows.push(message('D', Buffer.alloc(i % 500, i % 251)));
  const all = Buffer.concat(rows);
  for (const c of chunks(all)) io.write(c);
  io.end();
  assert.deepEqual(await io.out, all);
});

test('PgActivity: idle only when every Query/Sync has its ReadyForQuery and no Execute waits for a Sync', () => {
  const a = new PgActivity();
  assert.equal(a.idle, true);
  a.client('Q');
  assert.equal(a.idle, false);
  a.server('T');
  a.server('D');
  a.server('C');
  assert.equal(a.idle, false);
  a.server('Z');
  assert.equal(a.idle, true);
  // Extended protocol: running from the Execute on, even before the Sync.
  a.client('P');
  a.client('B');
  a.client('E');
  assert.equal(a.idle, false);
  a.client('S');
  assert.equal(a.idle, false);
  a.server('1');
  a.server('2');
  a.server('C');
  a.server('Z');
  assert.equal(a.idle, true);
  // Pipelined: two queries, one answer so far.
  a.client('Q');
  a.client('Q');
  a.server('Z');
  assert.equal(a.idle, false);
  a.server('Z');
  assert.equal(a.idle, true);
  // COPY FROM STDIN: busy until its ReadyForQuery.
  a.client('Q');
  a.server('G');
  a.client('d');
  a.client('c');
  assert.equal(a.idle, false);
  a.server('C');
  a.server('Z');
  assert.equal(a.idle, true);
  // A Flush without a Sync: the Execute before it may run.
  a.client('E');
  a.client('H');
  assert.equal(a.idle, false);
});

test('ClientTap and ServerTap report the messages they pass to PgActivity', () => {
  const a = new PgActivity();
  const client = harness(new ClientTap(() => undefined, a));
  const server = harness(new ServerTap(a));
  for (const c of chunks(message('Q', cstr('select 1')))) client.write(c);
  assert.equal(a.idle, false);
  for (const c of chunks(Buffer.concat([message('C', cstr('SELECT 1')), message('Z', Buffer.from('I'))])))
    server.write(c);
  assert.equal(a.idle, true);
});
