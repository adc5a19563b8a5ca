import assert from 'node:assert/strict';
import { test } from 'node:test';
import { smallChunks as chunks, tapHarness as harness } from '../../../../../../test/support/db-taps';
import { MySqlActivity } from './activity';
import {
  Cap,
  Command,
  comQuery,
  errPacket,
  MAX_PACKET_PAYLOAD,
  MySqlProtocolError,
  packet,
  packetHeader,
} from './protocol';
import { ClientTap, type ClientTapHandler, type CommandAction, type SeqState, ServerTap } from './relay';

function handler(decide: (payload: Buffer) => CommandAction = () => ({ kind: 'forward' })) {
  const seen: string[] = [];
  const replies: Buffer[] = [];
  const long: [number, number][] = [];
  const h: ClientTapHandler = {
    command: (payload) => {
      seen.push(payload.toString('latin1'));
      return decide(payload);
    },
    allowLong: (command) => command !== Command.CHANGE_USER,
    longCommand: (command, length) => long.push([command, length]),
    reply: (p) => replies.push(p),
  };
  return { h, seen, replies, long };
}

test('ClientTap passes packets through unchanged and shows each command once, whole', async () => {
  const seq: SeqState = { seq: 0, from: 'server' };
  const { h, seen } = handler();
  const tap = new ClientTap(h, seq);
  const stream = Buffer.concat([
    comQuery('select 1'),
    packet(0, Buffer.from('\x16select ?')),
    packet(2, Buffer.from('auth data, not a command')),
    packet(0, Buffer.alloc(0)),
    packet(0, Buffer.from([Command.QUIT])),
  ]);
  const io = harness(tap);
  const out = io.out;
  for (const c of chunks(stream)) io.write(c);
  io.end();
  assert.deepEqual(await out, stream);
  assert.deepEqual(seen, ['\x03select 1', '\x16select ?', '\x01']);
  assert.deepEqual(seq, { seq: 0, from: 'client' });
});

test('ClientTap rewrites a command with a new length, or drops it and replies instead', async () => {
  const { h, replies } = handler((payload) => {
    if (payload.toString('latin1') === '\x03KILL 5')
      return { kind: 'rewrite', payload: Buffer.from('\x03KILL 123456') };
    if (payload[0] === Command.CHANGE_USER)
      return { kind: 'reply', packet: errPacket(1, { code: 1235, sqlState: '42000', message: 'no' }) };
    return { kind: 'forward' };
  });
  const tap = new ClientTap(h, { seq: 0, from: 'server' });
  const io = harness(tap);
  const out = io.out;
  io.write(comQuery('KILL 5'));
  io.write(packet(0, Buffer.from('\x11bob\0')));
  io.write(comQuery('select 2'));
  io.end();
  assert.deepEqual(await out, Buffer.concat([comQuery('KILL 123456'), comQuery('select 2')]));
  assert.equal(replies.length, 1);
  assert.equal(packetHeader(replies[0]!).seq, 1);
});

test('ClientTap streams a command longer than one packet and reports its length at the end', async () => {
  const { h, seen, long } = handler();
  const tap = new ClientTap(h, { seq: 0, from: 'server' });
  const first = Buffer.alloc(MAX_PACKET_PAYLOAD, 0x61);
  first[0] = Command.QUERY;
  const stream = Buffer.concat([packet(0, first), packet(1, Buffer.from('tail')), comQuery('select 3')]);
  const io = harness(tap);
  const out = io.out;
  for (let at = 0; at < stream.length; at += 1 << 20) io.write(stream.subarray(at, at + (1 << 20)));
  io.end();
  assert.ok((await out).equals(stream));
  assert.deepEqual(long, [[Command.QUERY, MAX_PACKET_PAYLOAD + 4]]);
  assert.deepEqual(seen, ['\x03select 3']);
});

test('ClientTap fails the stream when a long command may not start (COM_CHANGE_USER)', async () => {
  const { h } = handler();
  const tap = new ClientTap(h, { seq: 0, from: 'server' });
  const io = harness(tap);
  const failed = io.failed;
  const head = Buffer.alloc(5);
  head.writeUIntLE(MAX_PACKET_PAYLOAD, 0, 3);
  head[4] = Command.CHANGE_USER;
  io.write(Buffer.concat([head, Buffer.alloc(MAX_PACKET_PAYLOAD - 1)]));
  assert.ok((await failed) instanceof MySqlProtocolError);
});

test('ServerTap streams without holding data; an interrupt lands between packets, numbered next', async () => {
  const seq: SeqState = { seq: 0, from: 'client' };
  const tap = new ServerTap(seq);
  const io = harness(tap);
  const out = io.out;
  const row = packet(1, Buffer.alloc(100, 1));
  io.write(row.subarray(0, 50));
  // Mid-packet: the interrupt waits for the packet's end.
  tap.interrupt((s) => errPacket(s, { code: 1927, sqlState: '70100', message: 'locked' }));
  assert.equal(tap.interrupted, false);
  io.write(Buffer.concat([row.subarray(50), packet(2, Buffer.from('never sent'))]));
  const got = await out;
  assert.deepEqual(got.subarray(0, row.length), row);
  const last = got.subarray(row.length);
  assert.deepEqual(packetHeader(last), { length: last.length - 4, seq: 2 });
  assert.match(last.toString('latin1'), /#70100locked$/);
  assert.equal(tap.interrupted, true);
});

test('ServerTap interrupts at once when idle, after the client’s last packet', async () => {
  const seq: SeqState = { seq: 0, from: 'client' };
  const tap = new ServerTap(seq);
  const io = harness(tap);
  const out = io.out;
  tap.interrupt((s) => errPacket(s, { code: 1927, sqlState: '70100', message: 'locked' }));
  assert.equal(packetHeader(await out).seq, 1);
});

test('ServerTap waits for the end of a 16 MB packet’s continuation before injecting', async () => {
  const tap = new ServerTap({ seq: 0, from: 'client' });
  const io = harness(tap);
  const out = io.out;
  const big = packet(1, Buffer.alloc(MAX_PACKET_PAYLOAD, 2));
  io.write(big);
  tap.inject(Buffer.from('INJECTED'));
  io.write(packet(2, Buffer.from('end')));
  io.end();
  const got = await out;
  assert.equal(got.subarray(got.length - 8).toString(), 'INJECTED');
  assert.equal(got.length, big.length + 7 + 8);
});

test('ServerTap hands the first packet of the next answer (sequence id 1) to expectAnswer', async () => {
  const tap = new ServerTap({ seq: 0, from: 'client' });
  const io = harness(tap);
  const out = io.out;
  const answers: Buffer[] = [];
  tap.expectAnswer((first) => answers.push(first));
  const prepareOk = Buffer.from([0, 7, 0, 0, 0, 1, 0, 2, 0, 0, 0, 0, 9, 9]);
  const stream = Buffer.concat([
    packet(1, prepareOk),
    packet(2, Buffer.from('param def')),
    packet(1, Buffer.from('next')),
  ]);
  for (const c of chunks(stream)) io.write(c);
  io.end();
  assert.deepEqual(await out, stream);
  // Up to 12 payload bytes, and only for the awaited answer.
  assert.deepEqual(answers, [prepareOk.subarray(0, 12)]);
});

test('ServerTap tells the rows of a result set by their first byte: the activity reads only the other packets, and ends idle', () => {
  // Rows may start with anything, also 0x00 (binary rows), 0xfb (NULL) and 0xfe in a long row.
  const rows = [0x41, 0x00, 0xfb, 0x42].map((b) => Buffer.concat([Buffer.from([b]), Buffer.alloc(30, 0x61)]));
  const colDef = Buffer.concat([Buffer.from([3]), Buffer.from('def'), Buffer.alloc(20, 1)]);
  const end = Buffer.from([0xfe, 0, 0, 2, 0, 0, 0]); // the OK that ends the rows (DEPRECATE_EOF)
  const answer = Buffer.concat([
    packet(1, Buffer.from([1])),
    packet(2, colDef),
    ...rows.map((r, i) => packet(3 + i, r)),
    packet(7, end),
  ]);
  for (const split of [[answer], chunks(answer)]) {
    const activity = new MySqlActivity(Cap.PROTOCOL_41 | Cap.DEPRECATE_EOF);
    const heads: number[] = [];
    const server = activity.server.bind(activity);
    activity.server = (head, length) => {
      heads.push(head[0]!);
      server(head, length);
    };
    activity.command(Buffer.from([Command.QUERY, 0x73]));
    const tap = new ServerTap({ seq: 0, from: 'client' }, activity);
    const sent: Buffer[] = [];
    tap.attach({ write: (b) => sent.push(Buffer.from(b)), end: () => undefined });
    for (const c of split) tap.push(c);
    assert.deepEqual(Buffer.concat(sent), answer, 'passed on unchanged');
    assert.equal(activity.idle, true);
    if (split.length === 1) assert.deepEqual(heads, [1, 3, 0xfe], 'rows are not read');
    else assert.ok(heads.length < 3 + rows.length, `some rows were told by their first byte: ${heads}`);
  }
});
