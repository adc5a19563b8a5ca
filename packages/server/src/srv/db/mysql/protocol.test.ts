import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import {
  Cap,
  Command,
  comQuery,
  errPacket,
  errPayload,
  handshakeResponse,
  handshakeV10,
  lenencInt,
  lenencString,
  MAX_AUDITED_PARAMETER,
  MAX_PACKET_PAYLOAD,
  MySqlProtocolError,
  OFFERED_CAPABILITIES,
  okPayload,
  PayloadReader,
  packet,
  packetHeader,
  packets,
  parseAuthSwitch,
  parseComQuery,
  parseComStmtExecute,
  parseComStmtPrepare,
  parseErr,
  parseHandshakeResponse,
  parseHandshakeV10,
  parsePrepareOk,
  sslRequest,
} from './protocol';

const u16 = (n: number) => {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(n);
  return b;
};
const u32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
};

test('packets: header round trip, 16 MB payloads split with consecutive sequence ids', () => {
  const p = packet(3, Buffer.from('abc'));
  assert.deepEqual(packetHeader(p), { length: 3, seq: 3 });
  assert.deepEqual(p.subarray(4), Buffer.from('abc'));
  assert.equal(packet(256 + 7, Buffer.alloc(0))[3], 7);
  const big = Buffer.alloc(MAX_PACKET_PAYLOAD + 10, 1);
  const split = packets(255, big);
  assert.deepEqual(packetHeader(split), { length: MAX_PACKET_PAYLOAD, seq: 255 });
  assert.deepEqual(packetHeader(split.subarray(4 + MAX_PACKET_PAYLOAD)), { length: 10, seq: 0 });
  // Exactly 16 MB needs an empty packet after it.
  const exact = packets(0, Buffer.alloc(MAX_PACKET_PAYLOAD));
  assert.equal(exact.length, 4 + MAX_PACKET_PAYLOAD + 4);
  assert.throws(() => packet(0, big), RangeError);
  assert.throws(() => packetHeader(Buffer.from([1, 0])), MySqlProtocolError);
});

test('length-encoded integers and strings round trip at every width; bad markers throw', () => {
  for (const n of [0, 250, 251, 0xffff, 0x10000, 0xffffff, 0x1000000, 2 ** 40]) {
    const r = new PayloadReader(lenencInt(n));
    assert.equal(r.lenenc(), n);
    assert.equal(r.left, 0);
  }
  assert.equal(new PayloadReader(Buffer.from([0xfb])).lenenc(), null);
  assert.throws(() => new PayloadReader(Buffer.from([0xff])).lenenc(), MySqlProtocolError);
  assert.throws(() => new PayloadReader(Buffer.from([0xfc, 1])).lenenc(), MySqlProtocolError);
  const huge = Buffer.concat([Buffer.from([0xfe]), Buffer.alloc(8, 0xff)]);
  assert.throws(() => new PayloadReader(huge).lenenc(), /out of range/);
  assert.equal(new PayloadReader(lenencString('héllo')).lenencBytes().toString(), 'héllo');
  assert.throws(() => new PayloadReader(Buffer.from([5, 1, 2])).lenencBytes(), /truncated/);
  assert.throws(() => lenencInt(-1), RangeError);
});

test('HandshakeV10 round trip keeps version, id, scramble, capabilities and plugin', () => {
  const authData = randomBytes(20).map((b) => (b % 127) + 1);
  const h = {
    serverVersion: '5.5.5-10.11.19-MariaDB',
    connectionId: 0x7ffffff0,
    authData: Buffer.from(authData),
    capabilities: OFFERED_CAPABILITIES | Cap.SSL,
    charset: 45,
    status: 2,
    authPlugin: 'mysql_native_password',
  };
  assert.deepEqual(parseHandshakeV10(handshakeV10(h)), h);
  assert.throws(() => parseHandshakeV10(Buffer.from([9, 0])), /protocol version 9/);
  assert.throws(() => parseHandshakeV10(Buffer.from([10, 0x41])), /unterminated/);
});

test('HandshakeResponse41 round trip in its three auth-data encodings, with db and attributes', () => {
  const base = {
    maxPacketSize: 1 << 24,
    charset: 224,
    user: 'alice',
    authResponse: randomBytes(20),
    database: 'orders',
    authPlugin: 'mysql_native_password',
    attributes: [
      ['_client_name', 'libmariadb'],
      ['program_name', 'mysql'],
    ] as [string, string][],
  };
  for (const auth of [Cap.PLUGIN_AUTH_LENENC_CLIENT_DATA | Cap.SECURE_CONNECTION, Cap.SECURE_CONNECTION]) {
    const caps =
      Cap.PROTOCOL_41 | auth | Cap.CONNECT_WITH_DB | Cap.PLUGIN_AUTH | Cap.CONNECT_ATTRS | Cap.DEPRECATE_EOF;
    assert.deepEqual(parseHandshakeResponse(handshakeResponse({ ...base, capabilities: caps })), {
      ...base,
      capabilities: caps,
    });
  }
  // NUL-terminated auth data (no SECURE_CONNECTION), no database, no plugin.
  const old = { ...base, capabilities: Cap.PROTOCOL_41, authResponse: Buffer.from('pw') };
  assert.deepEqual(parseHandshakeResponse(handshakeResponse(old)), {
    capabilities: Cap.PROTOCOL_41,
    maxPacketSize: base.maxPacketSize,
    charset: 224,
    user: 'alice',
    authResponse: Buffer.from('pw'),
  });
  // An empty database name counts as none.
  const noDb = handshakeResponse({
    ...base,
    database: '',
    capabilities: Cap.PROTOCOL_41 | Cap.SECURE_CONNECTION | Cap.CONNECT_WITH_DB,
  });
  assert.equal((parseHandshakeResponse(noDb) as { database?: string }).database, undefined);
});

test('an SSLRequest is recognised; pre-4.1 clients, control characters and truncation are refused', () => {
  assert.deepEqual(parseHandshakeResponse(sslRequest(Cap.PROTOCOL_41, 1 << 24, 45)), { ssl: true });
  assert.equal(sslRequest(Cap.PROTOCOL_41, 0, 45).length, 32);
  const ok = handshakeResponse({
    capabilities: Cap.PROTOCOL_41 | Cap.SECURE_CONNECTION,
    maxPacketSize: 0,
    charset: 45,
    user: 'alice',
    authResponse: Buffer.alloc(0),
  });
  const pre41 = Buffer.from(ok);
  pre41.writeUInt32LE(Cap.SECURE_CONNECTION, 0);
  assert.throws(() => parseHandshakeResponse(pre41), /protocol 4\.1/);
  const ctrl = handshakeResponse({
    capabilities: Cap.PROTOCOL_41,
    maxPacketSize: 0,
    charset: 45,
    user: 'al\x07ice',
    authResponse: Buffer.alloc(0),
  });
  assert.throws(() => parseHandshakeResponse(ctrl), /invalid user name/);
  for (let n = 0; n < ok.length; n++) {
    if (n === 32) continue; // 32 bytes with CLIENT_SSL unset is "no user": throws too, checked below
    assert.throws(() => parseHandshakeResponse(ok.subarray(0, n)), MySqlProtocolError, `cut at ${n}`);
  }
  assert.throws(() => parseHandshakeResponse(ok.subarray(0, 32)), MySqlProtocolError);
});

test('ERR packets carry code, SQLSTATE and message; OK and auth switch parse', () => {
  const e = { code: 1045, sqlState: '28000', message: 'unauthorized device' };
  assert.deepEqual(parseErr(errPayload(e)), e);
  const p = errPacket(2, e);
  assert.deepEqual(packetHeader(p), { length: p.length - 4, seq: 2 });
  assert.equal(p.subarray(4).toString('latin1', 3), '#28000unauthorized device');
  // A bad SQLSTATE becomes HY000 rather than a malformed packet.
  assert.equal(parseErr(errPayload({ ...e, sqlState: 'bad' })).sqlState, 'HY000');
  // Pre-4.1 style ERR without a SQLSTATE marker.
  assert.deepEqual(parseErr(Buffer.concat([Buffer.from([0xff]), u16(1040), Buffer.from('Too many')])), {
    code: 1040,
    sqlState: 'HY000',
    message: 'Too many',
  });
  assert.throws(() => parseErr(okPayload()), /not an ERR/);
  assert.equal(okPayload()[0], 0);
  assert.deepEqual(
    parseAuthSwitch(Buffer.concat([Buffer.from([0xfe]), Buffer.from('caching_sha2_password\0xyz')])),
    {
      plugin: 'caching_sha2_password',
      data: Buffer.from('xyz'),
    },
  );
  assert.equal(parseAuthSwitch(Buffer.from([0xfe])).plugin, 'mysql_old_password');
});

test('COM_QUERY, COM_STMT_PREPARE and the prepare answer', () => {
  const q = comQuery('select ’1’');
  assert.deepEqual(packetHeader(q).seq, 0);
  assert.equal(parseComQuery(q.subarray(4)), 'select ’1’');
  assert.throws(() => parseComQuery(Buffer.from([Command.QUIT])), MySqlProtocolError);
  assert.equal(parseComStmtPrepare(Buffer.from('\x16select ?')), 'select ?');
  const answer = Buffer.concat([Buffer.from([0]), u32(7), u16(1), u16(2), Buffer.from([0]), u16(0)]);
  assert.deepEqual(parsePrepareOk(answer), { statementId: 7, columns: 1, params: 2 });
  assert.throws(() => parsePrepareOk(answer.subarray(0, 9)), MySqlProtocolError);
});

/** A COM_STMT_EXECUTE as drivers send it. */
function execute(
  id: number,
  types: number[] | undefined,
  nulls: number[],
  values: Buffer[],
  count = types?.length ?? 0,
) {
  const bitmap = Buffer.alloc((count + 7) >> 3);
  for (const i of nulls) bitmap[i >> 3]! |= 1 << (i & 7);
  return Buffer.concat([
    Buffer.from([Command.STMT_EXECUTE]),
    u32(id),
    Buffer.from([0]),
    u32(1),
    ...(count > 0
      ? [bitmap, Buffer.from([types ? 1 : 0]), ...(types ?? []).map((t) => u16(t)), ...values]
      : []),
  ]);
}

test('COM_STMT_EXECUTE: binary parameters of every family as text, NULLs, reused types', () => {
  const i64 = Buffer.alloc(8);
  i64.writeBigInt64LE(-5n);
  const dbl = Buffer.alloc(8);
  dbl.writeDoubleLE(2.5);
  const flt = Buffer.alloc(4);
  flt.writeFloatLE(0.5);
  const types = [1, 0x8000 | 2, 3, 8, 5, 4, 253, 10, 12, 12, 11, 6, 246, 252, 13];
  const values = [
    Buffer.from([0xff]), // TINY -1
    u16(65535), // SHORT unsigned
    u32(0xfffffffe), // LONG -2
    i64,
    dbl,
    flt,
    lenencString('it’s'),
    Buffer.concat([Buffer.from([4]), u16(2024), Buffer.from([1, 2])]), // DATE
    Buffer.concat([Buffer.from([7]), u16(2024), Buffer.from([1, 2, 3, 4, 5])]), // DATETIME
    Buffer.concat([Buffer.from([11]), u16(2024), Buffer.from([1, 2, 3, 4, 5]), u32(6)]),
    Buffer.concat([Buffer.from([8, 1]), u32(1), Buffer.from([2, 3, 4])]), // TIME -26:03:04
    // type NULL: no value
    lenencString('12.50'),
    lenencString(Buffer.from([0, 1, 2, 0xff])), // binary blob
    u16(1999),
  ];
  const r = parseComStmtExecute(execute(9, types, [], values), types.length, undefined);
  assert.equal(r.statementId, 9);
  assert.deepEqual(r.types, types);
  assert.deepEqual(r.parameters, [
    '-1',
    '65535',
    '-2',
    '-5',
    '2.5',
    '0.5',
    'it’s',
    '2024-01-02',
    '2024-01-02 03:04:05',
    '2024-01-02 03:04:05.000006',
    '-26:03:04',
    null,
    '12.50',
    '\\x000102ff',
    '1999',
  ]);
  // NULL bitmap, and types reused from an earlier execute (new-params-bound flag 0).
  const again = parseComStmtExecute(execute(9, undefined, [1], [Buffer.from([7])], 2), 2, [1, 1]);
  assert.deepEqual(again.parameters, ['7', null]);
  assert.equal(again.types, undefined);
  // Unknown statement: no parameters; no parameters at all: empty list.
  assert.deepEqual(parseComStmtExecute(execute(3, [1], [], [Buffer.from([1])]), undefined, undefined), {
    statementId: 3,
  });
  assert.deepEqual(parseComStmtExecute(execute(3, [], [], []), 0, undefined).parameters, []);
  // Long values are cut for the log.
  const long = parseComStmtExecute(execute(1, [253], [], [lenencString('x'.repeat(10_000))]), 1, undefined);
  assert.match(long.parameters![0]!, new RegExp(`^x{${MAX_AUDITED_PARAMETER}}… \\(10000 bytes\\)$`));
});

test('COM_STMT_EXECUTE: truncated values, unknown types and bad flags throw MySqlProtocolError', () => {
  assert.throws(
    () => parseComStmtExecute(execute(1, [3], [], [Buffer.from([1, 2])]), 1, undefined),
    MySqlProtocolError,
  );
  assert.throws(() => parseComStmtExecute(execute(1, undefined, [], [], 1), 1, undefined), /types unknown/);
  const badFlag = execute(1, [1], [], [Buffer.from([1])]);
  badFlag[11] = 7;
  assert.throws(() => parseComStmtExecute(badFlag, 1, undefined), /new-params-bound/);
  const badDate = execute(1, [10], [], [Buffer.from([5, 1, 2, 3, 4, 5])]);
  assert.throws(() => parseComStmtExecute(badDate, 1, undefined), /date length/);
});

test('fuzz: random and mutated input never throws anything but MySqlProtocolError', () => {
  const seeds = [
    handshakeResponse({
      capabilities:
        Cap.PROTOCOL_41 |
        Cap.PLUGIN_AUTH_LENENC_CLIENT_DATA |
        Cap.SECURE_CONNECTION |
        Cap.CONNECT_WITH_DB |
        Cap.PLUGIN_AUTH |
        Cap.CONNECT_ATTRS,
      maxPacketSize: 1 << 24,
      charset: 45,
      user: 'alice',
      authResponse: randomBytes(20),
      database: 'orders',
      attributes: [['a', 'b']],
    }),
    execute(1, [1, 253, 12], [], [Buffer.from([1]), lenencString('abc'), Buffer.from([4, 1, 2, 3, 4])]),
    handshakeV10({
      serverVersion: '8.0.0',
      connectionId: 1,
      authData: Buffer.alloc(20, 1),
      capabilities: OFFERED_CAPABILITIES,
      charset: 45,
      status: 2,
      authPlugin: 'caching_sha2_password',
    }),
  ];
  const parsers: ((b: Buffer) => unknown)[] = [
    (b) => parseHandshakeResponse(b),
    (b) => parseComStmtExecute(b, 3, [1, 253, 12]),
    (b) => parseHandshakeV10(b),
    (b) => parseErr(b),
    (b) => parsePrepareOk(b),
  ];
  for (let i = 0; i < 3000; i++) {
    const seed = seeds[i % seeds.length]!;
    const b = i % 4 === 0 ? randomBytes(i % 64) : Buffer.from(seed);
    if (i % 4 !== 0)
      for (let k = 0; k < 1 + (i % 5); k++) b[(i * 7 + k * 13) % b.length] = (i * 31 + k) & 0xff;
    for (const parse of parsers) {
      try {
        parse(b);
      } catch (e) {
        assert.ok(e instanceof MySqlProtocolError, `${(e as Error).stack}`);
      }
    }
  }
});
