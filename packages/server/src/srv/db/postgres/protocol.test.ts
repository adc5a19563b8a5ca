import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  backendKeyData,
  CANCEL_REQUEST_CODE,
  cancelRequest,
  errorResponse,
  MAX_AUDITED_PARAMETER,
  message,
  messageLength,
  PgProtocolError,
  parseBackendKeyData,
  parseBind,
  parseErrorFields,
  parseExecute,
  parseParse,
  parseQuery,
  parseStartupPacket,
  SqlState,
  sslRequest,
  startupLength,
  startupMessage,
} from './protocol';

const cstr = (s: string) => Buffer.from(`${s}\0`, 'utf8');
const i16 = (n: number) => {
  const b = Buffer.alloc(2);
  b.writeInt16BE(n);
  return b;
};
const i32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n);
  return b;
};

test('startup packets: StartupMessage round trip, SSLRequest, GSSENCRequest, CancelRequest', () => {
  const s = startupMessage({ user: 'alice', database: 'orders', application_name: 'psql' });
  assert.equal(startupLength(s), s.length);
  assert.deepEqual(parseStartupPacket(s), {
    kind: 'startup',
    parameters: { user: 'alice', database: 'orders', application_name: 'psql' },
  });
  assert.deepEqual(parseStartupPacket(sslRequest()), { kind: 'ssl' });
  const gss = Buffer.concat([i32(8), i32(80877104)]);
  assert.deepEqual(parseStartupPacket(gss), { kind: 'gssenc' });
  assert.deepEqual(parseStartupPacket(cancelRequest(1234, -5)), {
    kind: 'cancel',
    processId: 1234,
    secretKey: -5,
  });
  assert.equal(cancelRequest(1, 2).readInt32BE(4), CANCEL_REQUEST_CODE);
});

test('malformed startup packets are PgProtocolError', () => {
  const bad = [
    Buffer.concat([i32(8), i32(2 << 16)]), // protocol 2
    Buffer.concat([i32(12), i32(196608), Buffer.from('user')]), // unterminated
    Buffer.concat([i32(13), i32(196608), cstr('user'), Buffer.from([0])]), // name without value
    Buffer.concat([i32(10), i32(196608), Buffer.from([0, 7])]), // trailing byte
    Buffer.concat([i32(9), i32(196608), Buffer.from([0])]).subarray(0, 8), // length mismatch
  ];
  for (const b of bad) assert.throws(() => parseStartupPacket(b), PgProtocolError, b.toString('hex'));
  assert.throws(() => startupLength(i32(4)), PgProtocolError);
  assert.throws(() => startupLength(i32(100_000)), PgProtocolError);
  assert.throws(() => startupLength(i32(-1)), PgProtocolError);
});

test('ErrorResponse carries severity, SQLSTATE and message as psql reads them', () => {
  const e = errorResponse({
    severity: 'FATAL',
    code: SqlState.invalidAuthorization,
    message: 'unauthorized device',
  });
  assert.equal(e.toString('latin1', 0, 1), 'E');
  assert.equal(e.readInt32BE(1), e.length - 1);
  assert.deepEqual(parseErrorFields(e.subarray(5)), {
    S: 'FATAL',
    V: 'FATAL',
    C: '28000',
    M: 'unauthorized device',
  });
  // NUL bytes in a message cannot cut it short.
  const nul = errorResponse({ severity: 'ERROR', code: '08P01', message: 'a\0b', hint: 'h' });
  assert.equal(parseErrorFields(nul.subarray(5)).M, 'ab');
});

test('BackendKeyData round trip; messages check their length', () => {
  const k = backendKeyData(42, -7);
  assert.deepEqual(parseBackendKeyData(k.subarray(5)), { processId: 42, secretKey: -7 });
  assert.throws(() => parseBackendKeyData(Buffer.alloc(7)), PgProtocolError);
  const m = message('Q', cstr('select 1'));
  assert.equal(messageLength(m.subarray(0, 5), 100), cstr('select 1').length);
  assert.throws(() => messageLength(Buffer.concat([Buffer.from('Q'), i32(3)]), 100), PgProtocolError);
  assert.throws(() => messageLength(Buffer.concat([Buffer.from('Q'), i32(1000)]), 100), PgProtocolError);
});

test('Query, Parse, Bind and Execute are read for the audit', () => {
  assert.equal(parseQuery(cstr('select 1')), 'select 1');
  assert.deepEqual(parseParse(Buffer.concat([cstr('s1'), cstr('select $1'), i16(1), i32(23)])), {
    statement: 's1',
    query: 'select $1',
  });
  const bind = Buffer.concat([
    cstr('p1'),
    cstr('s1'),
    i16(3),
    i16(0),
    i16(1),
    i16(0),
    i16(3),
    i32(2),
    Buffer.from('42'),
    i32(2),
    Buffer.from([0xde, 0xad]),
    i32(-1),
    i16(0),
  ]);
  assert.deepEqual(parseBind(bind), { portal: 'p1', statement: 's1', parameters: ['42', '\\xdead', null] });
  // One format code applies to every parameter.
  const allText = Buffer.concat([
    cstr(''),
    cstr(''),
    i16(1),
    i16(0),
    i16(1),
    i32(1),
    Buffer.from('x'),
    i16(0),
  ]);
  assert.deepEqual(parseBind(allText).parameters, ['x']);
  const long = 'y'.repeat(MAX_AUDITED_PARAMETER + 10);
  const longBind = Buffer.concat([
    cstr(''),
    cstr(''),
    i16(0),
    i16(1),
    i32(long.length),
    Buffer.from(long),
    i16(0),
  ]);
  assert.match(parseBind(longBind).parameters[0]!, /… \(4106 bytes\)$/);
  assert.deepEqual(parseExecute(Buffer.concat([cstr('p1'), i32(0)])), { portal: 'p1' });
});

test('malformed Query, Parse, Bind and Execute are PgProtocolError', () => {
  const bad: [(b: Buffer) => unknown, Buffer][] = [
    [parseQuery, Buffer.from('no nul')],
    [parseQuery, Buffer.concat([cstr('a'), Buffer.from('x')])],
    [parseParse, Buffer.concat([cstr('s'), cstr('q'), i16(2), i32(1)])],
    [parseParse, Buffer.concat([cstr('s'), cstr('q')])],
    [parseBind, Buffer.concat([cstr(''), cstr(''), i16(0), i16(1), i32(10), Buffer.from('x'), i16(0)])],
    [
      parseBind,
      Buffer.concat([cstr(''), cstr(''), i16(2), i16(0), i16(0), i16(1), i32(1), Buffer.from('x'), i16(0)]),
    ],
    [parseBind, Buffer.concat([cstr(''), cstr(''), i16(-1)])],
    [parseBind, Buffer.concat([cstr(''), cstr(''), i16(0), i16(0), i16(1)])],
    [parseExecute, cstr('p')],
  ];
  for (const [fn, b] of bad) assert.throws(() => fn(b), PgProtocolError, b.toString('hex'));
});

test('fuzz: mutated packets and messages parse or throw PgProtocolError, never anything else', () => {
  let seed = 0x9e3779b9;
  const rand = (n: number) => {
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return (seed >>> 0) % n;
  };
  const samples: [(b: Buffer) => unknown, Buffer][] = [
    [parseStartupPacket, startupMessage({ user: 'alice', database: 'orders' })],
    [parseStartupPacket, cancelRequest(1, 2)],
    [parseQuery, cstr('select 1')],
    [parseParse, Buffer.concat([cstr('s'), cstr('select $1'), i16(1), i32(23)])],
    [
      parseBind,
      Buffer.concat([cstr('p'), cstr('s'), i16(1), i16(0), i16(1), i32(1), Buffer.from('x'), i16(0)]),
    ],
    [parseExecute, Buffer.concat([cstr('p'), i32(0)])],
    [parseErrorFields, errorResponse({ severity: 'FATAL', code: '28000', message: 'm' }).subarray(5)],
  ];
  for (let i = 0; i < 3000; i++) {
    const [fn, sample] = samples[rand(samples.length)]!;
    const b = Buffer.from(sample);
    for (let m = 1 + rand(3); m > 0; m--) b[rand(b.length)] = rand(256);
    const cut = rand(4) === 0 ? b.subarray(0, rand(b.length + 1)) : b;
    try {
      fn(cut);
    } catch (e) {
      assert.ok(e instanceof PgProtocolError, `${fn.name}(${cut.toString('hex')}): ${String(e)}`);
    }
  }
});
