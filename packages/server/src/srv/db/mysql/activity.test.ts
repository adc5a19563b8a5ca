import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MySqlActivity } from './activity';
import { Cap, errPayload, lenencInt, okPayload } from './protocol';

const QUERY = Buffer.from([0x03, 0x73]);
const MORE = 0x0008;
const eof = (status = 2) => Buffer.from([0xfe, 0, 0, status & 0xff, status >> 8]);
/** The OK that ends a result set under CLIENT_DEPRECATE_EOF. */
const okEof = (status = 2) =>
  Buffer.concat([Buffer.from([0xfe, 0, 0]), Buffer.from([status & 0xff, status >> 8, 0, 0])]);
const colDef = Buffer.concat([Buffer.from([3]), Buffer.from('def'), Buffer.alloc(20, 1)]);
const row = (first: number) => Buffer.concat([Buffer.from([first]), Buffer.alloc(10, 0x61)]);
const err = errPayload({ code: 1317, sqlState: '70100', message: 'interrupted' });

function feed(a: MySqlActivity, ...packets: Buffer[]) {
  for (const p of packets) a.server(p.subarray(0, 24), p.length);
}

for (const deprecateEof of [true, false]) {
  const caps = deprecateEof ? Cap.PROTOCOL_41 | Cap.DEPRECATE_EOF : Cap.PROTOCOL_41;
  const endRows = (status?: number) => (deprecateEof ? okEof(status) : eof(status));
  const afterColumns = deprecateEof ? [] : [eof()];

  test(`result sets (DEPRECATE_EOF ${deprecateEof}): busy until the last row set's end`, () => {
    const a = new MySqlActivity(caps);
    assert.equal(a.idle, true);
    a.command(QUERY);
    assert.equal(a.idle, false);
    feed(a, lenencInt(2), colDef, colDef, ...afterColumns);
    assert.equal(a.idle, false);
    // Rows may start with anything, also 0x00 (binary rows), 0xfb (NULL) and 0xfe in a huge row.
    feed(a, row(0x00), row(0xfb), row(0x41));
    a.server(Buffer.from([0xfe, 1, 2, 3]), 0xffffff);
    assert.equal(a.idle, false);
    feed(a, endRows());
    assert.equal(a.idle, true);
  });

  test(`multiple results and pipelined commands (DEPRECATE_EOF ${deprecateEof})`, () => {
    const a = new MySqlActivity(caps);
    a.command(QUERY);
    a.command(Buffer.from([0x0e])); // COM_PING, pipelined
    feed(a, okPayload(2 | MORE));
    assert.equal(a.idle, false);
    feed(a, lenencInt(1), colDef, ...afterColumns, row(1), endRows(2 | MORE));
    assert.equal(a.idle, false);
    feed(a, okPayload());
    assert.equal(a.idle, false); // the ping's answer is still due
    feed(a, okPayload());
    assert.equal(a.idle, true);
  });

  test(`errors end an answer; prepare answers are counted (DEPRECATE_EOF ${deprecateEof})`, () => {
    const a = new MySqlActivity(caps);
    a.command(QUERY);
    feed(a, lenencInt(1), colDef, ...afterColumns, row(1), err);
    assert.equal(a.idle, true);
    a.command(QUERY);
    feed(a, err);
    assert.equal(a.idle, true);
    // COM_STMT_PREPARE: OK with 2 columns and 1 parameter, then their definitions.
    a.command(Buffer.concat([Buffer.from([0x16]), Buffer.from('select ?')]));
    const prepareOk = Buffer.from([0, 1, 0, 0, 0, 2, 0, 1, 0, 0, 0, 0]);
    feed(a, prepareOk, colDef);
    if (!deprecateEof) feed(a, eof());
    feed(a, colDef);
    assert.equal(a.idle, false);
    feed(a, colDef, ...afterColumns);
    assert.equal(a.idle, true);
    // Statements that answer nothing.
    a.command(Buffer.from([0x19, 1, 0, 0, 0])); // COM_STMT_CLOSE
    assert.equal(a.idle, true);
  });
}

test('LOCAL INFILE: busy until the OK after the file', () => {
  const a = new MySqlActivity(Cap.PROTOCOL_41 | Cap.DEPRECATE_EOF);
  a.command(QUERY);
  feed(a, Buffer.concat([Buffer.from([0xfb]), Buffer.from('/tmp/x')]));
  assert.equal(a.idle, false);
  feed(a, okPayload());
  assert.equal(a.idle, true);
});

test('what it cannot follow counts as busy for good: cursors, unknown commands, unasked packets', () => {
  const cursor = new MySqlActivity(Cap.PROTOCOL_41);
  cursor.command(Buffer.from([0x17, 1, 0, 0, 0, 1, 1, 0, 0, 0]));
  assert.equal(cursor.idle, false);
  const binlog = new MySqlActivity(Cap.PROTOCOL_41);
  binlog.command(Buffer.from([0x12]));
  assert.equal(binlog.idle, false);
  const unasked = new MySqlActivity(Cap.PROTOCOL_41);
  feed(unasked, okPayload());
  assert.equal(unasked.idle, false);
  unasked.command(QUERY);
  feed(unasked, okPayload());
  assert.equal(unasked.idle, false);
});
