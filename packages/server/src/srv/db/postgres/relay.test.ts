import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { test } from 'node:test';
import { errorResponse, message, PgProtocolError } from './protocol';
import { ClientTap, PgActivity, ServerTap } from './relay';

const cstr = (s: string) => Buffer.from(`${s}\0`, 'utf8');

function collect(stream: NodeJS.ReadableStream): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    stream.on('data', (d: Buffer) => parts.push(d));
    stream.on('end', () => resolve(Buffer.concat(parts)));
    stream.on('error', reject);
  });
}

/** Splits `b` into chunks of 1..7 bytes, so messages cross chunk boundaries everywhere. */
function chunks(b: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let at = 0, n = 1; at < b.length; at += n, n = (n % 7) + 1) out.push(b.subarray(at, at + n));
  return out;
}

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
  const out = collect(tap);
  for (const c of chunks(stream)) tap.write(c);
  tap.end();
  assert.deepEqual(await out, stream);
  assert.deepEqual(
    seen.map(([t]) => t),
    ['Q', 'P'],
  );
  assert.equal(seen[0]![1], 'select 1\0');
});

test('ClientTap fails the stream on a malformed length', async () => {
  const tap = new ClientTap(() => undefined);
  const failed = new Promise<Error>((resolve) => tap.on('error', resolve));
  tap.resume();
  tap.write(Buffer.concat([Buffer.from('Q'), Buffer.from([0, 0, 0, 2])]));
  assert.ok((await failed) instanceof PgProtocolError);
});

test('ServerTap streams without holding data, and an interrupt lands between two messages', async () => {
  const row = message('D', Buffer.alloc(100, 1));
  const tap = new ServerTap();
  const out = collect(tap);
  const last = errorResponse({
    severity: 'FATAL',
    code: '57P01',
    message: 'lock targeting User:"a" is in force',
  });
  // Half a message in flight: the interrupt waits for its end.
  tap.write(row.subarray(0, 40));
  tap.interrupt(last);
  tap.write(Buffer.concat([row.subarray(40), row, row]));
  tap.end();
  const got = await out;
  assert.deepEqual(got, Buffer.concat([row, last]));
});

test('ServerTap interrupts at once when idle between messages', async () => {
  const tap = new ServerTap();
  const out = collect(tap);
  const z = message('Z', Buffer.from('I'));
  tap.write(z);
  await new Promise((r) => setImmediate(r));
  const last = errorResponse({ severity: 'FATAL', code: '57P01', message: 'bye' });
  tap.interrupt(last);
  assert.ok(tap.interrupted);
  tap.write(z); // dropped
  assert.deepEqual(await out, Buffer.concat([z, last]));
});

test('a large stream passes through ServerTap intact', async () => {
  const src = new PassThrough();
  const tap = new ServerTap();
  const out = collect(src.pipe(tap));
  const rows: Buffer[] = [];
  for (let i = 0; i < 2000; i++) rows.push(message('D', Buffer.alloc(i % 500, i % 251)));
  const all = Buffer.concat(rows);
  for (const c of chunks(all)) src.write(c);
  src.end();
  assert.deepEqual(await out, all);
});

test('ClientTap reads no further while hold() returns a pending promise (audit back-pressure)', async () => {
  let release!: () => void;
  let holding = true;
  const seen: string[] = [];
  const tap = new ClientTap(
    (type, body) => seen.push(`${type}:${body?.toString('latin1')}`),
    () => (holding ? new Promise<void>((r) => (release = r)) : undefined),
  );
  const out = collect(tap);
  tap.write(message('Q', cstr('select 1')));
  tap.write(message('Q', cstr('select 2')));
  tap.end();
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(seen, ['Q:select 1\0'], 'the second chunk waits');
  holding = false;
  release();
  const bytes = await out;
  assert.deepEqual(seen, ['Q:select 1\0', 'Q:select 2\0']);
  assert.deepEqual(bytes, Buffer.concat([message('Q', cstr('select 1')), message('Q', cstr('select 2'))]));
});

test('ClientTap.stop: nothing the client sends afterwards is passed on', async () => {
  const tap = new ClientTap(() => undefined);
  const out = collect(tap);
  tap.write(message('Q', cstr('select 1')));
  tap.stop();
  tap.write(message('Q', cstr('select 2')));
  tap.end();
  assert.deepEqual(await out, message('Q', cstr('select 1')));
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

test('ClientTap and ServerTap report the messages they pass to PgActivity', async () => {
  const a = new PgActivity();
  const client = new ClientTap(() => undefined, undefined, a);
  const server = new ServerTap(a);
  client.resume();
  server.resume();
  for (const c of chunks(message('Q', cstr('select 1')))) client.write(c);
  await new Promise((r) => setImmediate(r));
  assert.equal(a.idle, false);
  for (const c of chunks(Buffer.concat([message('C', cstr('SELECT 1')), message('Z', Buffer.from('I'))])))
    server.write(c);
  await new Promise((r) => setImmediate(r));
  assert.equal(a.idle, true);
});
