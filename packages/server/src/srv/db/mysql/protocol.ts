/**
 * The pieces of the MySQL client/server protocol (4.1+, as MariaDB and MySQL speak it) that
 * the engine reads and writes: packets (`int<3> length | int<1> sequence id | payload`),
 * length-encoded integers and strings, the connection phase (HandshakeV10,
 * HandshakeResponse41, SSLRequest, AuthSwitchRequest, AuthMoreData), OK and ERR packets,
 * and the commands we audit (COM_QUERY, COM_STMT_PREPARE and its answer, COM_STMT_EXECUTE
 * with its binary parameters).
 * Every parser bounds lengths and throws `MySqlProtocolError` on malformed input.
 * Internal to `srv/db/mysql`; tested by `protocol.test.ts` (round trips and fuzz).
 */

/** A payload of this length continues in the next packet. */
export const MAX_PACKET_PAYLOAD = 0xffffff;
/** Longest connection-phase payload we accept (handshakes, auth switches, OK, ERR). */
export const MAX_HANDSHAKE_PAYLOAD = 64 * 1024;
/** Statement parameters longer than this are cut in the audit log. */
export const MAX_AUDITED_PARAMETER = 4096;

/** Capability flags (the subset we name). */
export const Cap = {
  LONG_PASSWORD: 1,
  FOUND_ROWS: 2,
  LONG_FLAG: 4,
  CONNECT_WITH_DB: 8,
  NO_SCHEMA: 16,
  COMPRESS: 32,
  ODBC: 64,
  LOCAL_FILES: 128,
  IGNORE_SPACE: 256,
  PROTOCOL_41: 512,
  INTERACTIVE: 1024,
  SSL: 2048,
  IGNORE_SIGPIPE: 4096,
  TRANSACTIONS: 8192,
  SECURE_CONNECTION: 32768,
  MULTI_STATEMENTS: 1 << 16,
  MULTI_RESULTS: 1 << 17,
  PS_MULTI_RESULTS: 1 << 18,
  PLUGIN_AUTH: 1 << 19,
  CONNECT_ATTRS: 1 << 20,
  PLUGIN_AUTH_LENENC_CLIENT_DATA: 1 << 21,
  CAN_HANDLE_EXPIRED_PASSWORDS: 1 << 22,
  SESSION_TRACK: 1 << 23,
  DEPRECATE_EOF: 1 << 24,
} as const;

/**
 * What the engine offers clients. Left out on purpose: COMPRESS (the audit reads the
 * commands), SSL (the tunnel is TLS already), LOCAL_FILES (a database could ask for any file
 * of the user's machine), and MySQL 8's QUERY_ATTRIBUTES / OPTIONAL_RESULTSET_METADATA /
 * ZSTD, which MariaDB does not speak. Everything here changes the wire format only in ways
 * MariaDB ≥ 10.2 and MySQL ≥ 5.7 understand.
 */
export const OFFERED_CAPABILITIES =
  Cap.LONG_PASSWORD |
  Cap.FOUND_ROWS |
  Cap.LONG_FLAG |
  Cap.CONNECT_WITH_DB |
  Cap.NO_SCHEMA |
  Cap.ODBC |
  Cap.IGNORE_SPACE |
  Cap.PROTOCOL_41 |
  Cap.INTERACTIVE |
  Cap.IGNORE_SIGPIPE |
  Cap.TRANSACTIONS |
  Cap.SECURE_CONNECTION |
  Cap.MULTI_STATEMENTS |
  Cap.MULTI_RESULTS |
  Cap.PS_MULTI_RESULTS |
  Cap.PLUGIN_AUTH |
  Cap.CONNECT_ATTRS |
  Cap.PLUGIN_AUTH_LENENC_CLIENT_DATA |
  Cap.SESSION_TRACK |
  Cap.DEPRECATE_EOF;

/** Commands (the first payload byte of a client packet with sequence id 0). */
export const Command = {
  QUIT: 0x01,
  INIT_DB: 0x02,
  QUERY: 0x03,
  CHANGE_USER: 0x11,
  STMT_PREPARE: 0x16,
  STMT_EXECUTE: 0x17,
  STMT_SEND_LONG_DATA: 0x18,
  STMT_CLOSE: 0x19,
} as const;

/** Error codes and SQLSTATEs we send. */
export const ErrorCode = {
  /** ER_ACCESS_DENIED_ERROR: refusals (access, device, locks). */
  accessDenied: { code: 1045, sqlState: '28000' },
  /** ER_HANDSHAKE_ERROR ("Bad handshake"). */
  badHandshake: { code: 1043, sqlState: '08S01' },
  /** ER_CONNECTION_KILLED (MariaDB): the session was ended from the server side (a lock). */
  connectionKilled: { code: 1927, sqlState: '70100' },
  /** ER_NOT_SUPPORTED_YET: a command Warden does not relay (COM_CHANGE_USER). */
  notSupported: { code: 1235, sqlState: '42000' },
  /** CR_CONN_HOST_ERROR-like: the database could not be reached or refused Warden's login. */
  connectionFailure: { code: 2003, sqlState: 'HY000' },
} as const;

/** utf8mb4_general_ci: what our greeting announces. */
export const DEFAULT_CHARSET = 45;
export const SERVER_STATUS_AUTOCOMMIT = 2;
export const NATIVE_PASSWORD = 'mysql_native_password';

/** Malformed input from a client or server. */
export class MySqlProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MySqlProtocolError';
  }
}

// ---------------------------------------------------------------------------------------
// Packets

/** One packet: header (length, sequence id) and payload. Payloads ≥ 16 MB are split by callers. */
export function packet(seq: number, payload: Buffer): Buffer {
  if (payload.length > MAX_PACKET_PAYLOAD) throw new RangeError('payload too long for one packet');
  const head = Buffer.alloc(4);
  head.writeUIntLE(payload.length, 0, 3);
  head[3] = seq & 0xff;
  return Buffer.concat([head, payload]);
}

/** A payload of any length as packets with consecutive sequence ids from `seq`. */
export function packets(seq: number, payload: Buffer): Buffer {
  const out: Buffer[] = [];
  let at = 0;
  let s = seq;
  for (;;) {
    const len = Math.min(MAX_PACKET_PAYLOAD, payload.length - at);
    out.push(packet(s, payload.subarray(at, at + len)));
    s = (s + 1) & 0xff;
    at += len;
    if (len < MAX_PACKET_PAYLOAD) break;
  }
  return Buffer.concat(out);
}

/** Reads a packet header (4 bytes). */
export function packetHeader(head: Buffer): { length: number; seq: number } {
  if (head.length < 4) throw new MySqlProtocolError('truncated packet header');
  return { length: head.readUIntLE(0, 3), seq: head[3]! };
}

// ---------------------------------------------------------------------------------------
// Reading and writing payloads

/** A bounds-checked cursor over one payload. */
export class PayloadReader {
  at = 0;
  constructor(readonly buf: Buffer) {}

  get left(): number {
    return this.buf.length - this.at;
  }

  #need(n: number, what: string): void {
    if (n < 0 || this.at + n > this.buf.length) throw new MySqlProtocolError(`truncated ${what}`);
  }

  u8(what = 'integer'): number {
    this.#need(1, what);
    return this.buf[this.at++]!;
  }

  u16(what = 'integer'): number {
    this.#need(2, what);
    const v = this.buf.readUInt16LE(this.at);
    this.at += 2;
    return v;
  }

  u32(what = 'integer'): number {
    this.#need(4, what);
    const v = this.buf.readUInt32LE(this.at);
    this.at += 4;
    return v;
  }

  bytes(n: number, what = 'string'): Buffer {
    this.#need(n, what);
    const v = this.buf.subarray(this.at, this.at + n);
    this.at += n;
    return v;
  }

  rest(): Buffer {
    return this.bytes(this.left);
  }

  /** A NUL-terminated string (`string<NUL>`). */
  cstring(what = 'string'): Buffer {
    const end = this.buf.indexOf(0, this.at);
    if (end === -1) throw new MySqlProtocolError(`unterminated ${what}`);
    const v = this.buf.subarray(this.at, end);
    this.at = end + 1;
    return v;
  }

  /** A length-encoded integer; null for the NULL marker 0xfb. Above 2^53 is an error. */
  lenenc(what = 'length'): number | null {
    const first = this.u8(what);
    if (first < 0xfb) return first;
    if (first === 0xfb) return null;
    if (first === 0xfc) return this.u16(what);
    if (first === 0xfd) {
      this.#need(3, what);
      const v = this.buf.readUIntLE(this.at, 3);
      this.at += 3;
      return v;
    }
    if (first === 0xfe) {
      this.#need(8, what);
      const v = this.buf.readBigUInt64LE(this.at);
      this.at += 8;
      if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new MySqlProtocolError(`${what} out of range`);
      return Number(v);
    }
    throw new MySqlProtocolError(`invalid length-encoded ${what}`);
  }

  /** A length-encoded string. */
  lenencBytes(what = 'string'): Buffer {
    const n = this.lenenc(what);
    if (n === null) throw new MySqlProtocolError(`unexpected NULL ${what}`);
    return this.bytes(n, what);
  }
}

/** A length-encoded integer. */
export function lenencInt(n: number): Buffer {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`invalid length ${n}`);
  if (n < 0xfb) return Buffer.from([n]);
  if (n <= 0xffff) {
    const b = Buffer.alloc(3);
    b[0] = 0xfc;
    b.writeUInt16LE(n, 1);
    return b;
  }
  if (n <= 0xffffff) {
    const b = Buffer.alloc(4);
    b[0] = 0xfd;
    b.writeUIntLE(n, 1, 3);
    return b;
  }
  const b = Buffer.alloc(9);
  b[0] = 0xfe;
  b.writeBigUInt64LE(BigInt(n), 1);
  return b;
}

export function lenencString(s: Buffer | string): Buffer {
  const b = typeof s === 'string' ? Buffer.from(s, 'utf8') : s;
  return Buffer.concat([lenencInt(b.length), b]);
}

const cstr = (s: string | Buffer) =>
  Buffer.concat([typeof s === 'string' ? Buffer.from(s, 'utf8') : s, Buffer.from([0])]);
const u16 = (n: number) => {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(n & 0xffff);
  return b;
};
const u32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0);
  return b;
};

/** A name in a handshake: UTF-8 without NUL or control characters. */
function name(buf: Buffer, what: string): string {
  const s = buf.toString('utf8');
  if (/[\p{Cc}]/u.test(s) || s.includes('\uFFFD')) throw new MySqlProtocolError(`invalid ${what}`);
  return s;
}

// ---------------------------------------------------------------------------------------
// Connection phase

export interface HandshakeV10 {
  serverVersion: string;
  connectionId: number;
  /** The auth plugin's random data (20 bytes for mysql_native_password). */
  authData: Buffer;
  capabilities: number;
  charset: number;
  status: number;
  authPlugin: string;
}

/** The server's greeting. */
export function handshakeV10(h: HandshakeV10): Buffer {
  if (h.authData.length < 8) throw new RangeError('auth data needs 8 bytes at least');
  const part2 = Buffer.concat([h.authData.subarray(8), Buffer.from([0])]);
  return Buffer.concat([
    Buffer.from([10]),
    cstr(h.serverVersion),
    u32(h.connectionId),
    h.authData.subarray(0, 8),
    Buffer.from([0]),
    u16(h.capabilities),
    Buffer.from([h.charset]),
    u16(h.status),
    u16(h.capabilities >>> 16),
    Buffer.from([h.authData.length + 1]),
    Buffer.alloc(10),
    part2,
    cstr(h.authPlugin),
  ]);
}

export function parseHandshakeV10(payload: Buffer): HandshakeV10 {
  const r = new PayloadReader(payload);
  const version = r.u8('protocol version');
  if (version !== 10) throw new MySqlProtocolError(`unsupported protocol version ${version}`);
  const serverVersion = r.cstring('server version').toString('latin1');
  const connectionId = r.u32('connection id');
  const part1 = r.bytes(8, 'auth data');
  r.u8('filler');
  let capabilities = r.u16('capabilities');
  let charset = 0;
  let status = 0;
  let authLen = 0;
  if (r.left > 0) {
    charset = r.u8('charset');
    status = r.u16('status');
    capabilities |= r.u16('capabilities') << 16;
    capabilities >>>= 0;
    authLen = r.u8('auth data length');
    r.bytes(10, 'reserved');
  }
  let authData = part1;
  if (capabilities & Cap.SECURE_CONNECTION) {
    const n = Math.max(13, authLen - 8);
    const part2 = r.bytes(Math.min(n, r.left), 'auth data');
    // The second part ends in a NUL that is not data.
    authData = Buffer.concat([part1, part2[part2.length - 1] === 0 ? part2.subarray(0, -1) : part2]);
  }
  let authPlugin = NATIVE_PASSWORD;
  if (capabilities & Cap.PLUGIN_AUTH && r.left > 0) {
    const end = payload.indexOf(0, r.at);
    authPlugin = payload.toString('latin1', r.at, end === -1 ? payload.length : end);
  }
  return { serverVersion, connectionId, authData, capabilities, charset, status, authPlugin };
}

export interface HandshakeResponse {
  capabilities: number;
  maxPacketSize: number;
  charset: number;
  user: string;
  authResponse: Buffer;
  database?: string;
  authPlugin?: string;
  /** Connection attributes (`_client_name`, `program_name`…), in order. */
  attributes?: [string, string][];
}

/** Length of an SSLRequest: the first 32 bytes of a HandshakeResponse41. */
export const SSL_REQUEST_LENGTH = 32;

/** The client's SSLRequest (what the engine sends the database before TLS). */
export function sslRequest(capabilities: number, maxPacketSize: number, charset: number): Buffer {
  return Buffer.concat([
    u32(capabilities | Cap.SSL),
    u32(maxPacketSize),
    Buffer.from([charset]),
    Buffer.alloc(23),
  ]);
}

export function handshakeResponse(h: HandshakeResponse): Buffer {
  const caps = h.capabilities;
  const parts: Buffer[] = [
    u32(caps),
    u32(h.maxPacketSize),
    Buffer.from([h.charset]),
    Buffer.alloc(23),
    cstr(h.user),
  ];
  if (caps & Cap.PLUGIN_AUTH_LENENC_CLIENT_DATA) parts.push(lenencString(h.authResponse));
  else if (caps & Cap.SECURE_CONNECTION) {
    if (h.authResponse.length > 255) throw new RangeError('auth response too long');
    parts.push(Buffer.from([h.authResponse.length]), h.authResponse);
  } else parts.push(cstr(h.authResponse));
  if (caps & Cap.CONNECT_WITH_DB) parts.push(cstr(h.database ?? ''));
  if (caps & Cap.PLUGIN_AUTH) parts.push(cstr(h.authPlugin ?? NATIVE_PASSWORD));
  if (caps & Cap.CONNECT_ATTRS) {
    const kv = Buffer.concat((h.attributes ?? []).flatMap(([k, v]) => [lenencString(k), lenencString(v)]));
    parts.push(lenencString(kv));
  }
  return Buffer.concat(parts);
}

/**
 * The client's HandshakeResponse41, or `{ ssl: true }` for an SSLRequest (the client wants
 * TLS, which we do not offer inside the tunnel). Pre-4.1 clients are refused.
 */
export function parseHandshakeResponse(payload: Buffer): HandshakeResponse | { ssl: true } {
  const r = new PayloadReader(payload);
  const capabilities = r.u32('capabilities');
  if (!(capabilities & Cap.PROTOCOL_41))
    throw new MySqlProtocolError('the client does not speak protocol 4.1 (CLIENT_PROTOCOL_41)');
  const maxPacketSize = r.u32('max packet size');
  const charset = r.u8('charset');
  r.bytes(23, 'filler');
  if (capabilities & Cap.SSL && r.left === 0) return { ssl: true };
  const user = name(r.cstring('user name'), 'user name');
  let authResponse: Buffer;
  if (capabilities & Cap.PLUGIN_AUTH_LENENC_CLIENT_DATA) authResponse = r.lenencBytes('auth response');
  else if (capabilities & Cap.SECURE_CONNECTION)
    authResponse = r.bytes(r.u8('auth response'), 'auth response');
  else authResponse = r.cstring('auth response');
  const out: HandshakeResponse = { capabilities, maxPacketSize, charset, user, authResponse };
  if (capabilities & Cap.CONNECT_WITH_DB && r.left > 0) {
    const db = name(r.cstring('database'), 'database name');
    if (db !== '') out.database = db;
  }
  if (capabilities & Cap.PLUGIN_AUTH && r.left > 0)
    out.authPlugin = name(r.cstring('auth plugin'), 'auth plugin');
  if (capabilities & Cap.CONNECT_ATTRS && r.left > 0) {
    const attrs = new PayloadReader(r.lenencBytes('connection attributes'));
    const list: [string, string][] = [];
    while (attrs.left > 0) {
      const k = attrs.lenencBytes('attribute name').toString('utf8');
      const v = attrs.lenencBytes('attribute value').toString('utf8');
      list.push([k, v]);
    }
    out.attributes = list;
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// OK, ERR, auth switch

export interface ErrPacket {
  code: number;
  sqlState: string;
  message: string;
}

/** An ERR packet's payload (protocol 4.1: with the SQLSTATE marker). */
export function errPayload(e: ErrPacket): Buffer {
  const state = /^[0-9A-Z]{5}$/.test(e.sqlState) ? e.sqlState : 'HY000';
  return Buffer.concat([
    Buffer.from([0xff]),
    u16(e.code),
    Buffer.from(`#${state}`, 'latin1'),
    Buffer.from(e.message, 'utf8'),
  ]);
}

/** A whole ERR packet with sequence id `seq`. */
export function errPacket(seq: number, e: ErrPacket): Buffer {
  return packet(seq, errPayload(e));
}

export function parseErr(payload: Buffer): ErrPacket {
  const r = new PayloadReader(payload);
  if (r.u8('ERR') !== 0xff) throw new MySqlProtocolError('not an ERR packet');
  const code = r.u16('error code');
  let sqlState = 'HY000';
  if (r.left >= 6 && payload[r.at] === 0x23) {
    r.u8();
    sqlState = r.bytes(5).toString('latin1');
  }
  return { code, sqlState, message: r.rest().toString('utf8') };
}

/** A plain OK payload (no rows affected, autocommit). */
export function okPayload(status = SERVER_STATUS_AUTOCOMMIT): Buffer {
  return Buffer.concat([Buffer.from([0, 0, 0]), u16(status), u16(0)]);
}

export function parseAuthSwitch(payload: Buffer): { plugin: string; data: Buffer } {
  const r = new PayloadReader(payload);
  if (r.u8('auth switch') !== 0xfe) throw new MySqlProtocolError('not an AuthSwitchRequest');
  if (r.left === 0) return { plugin: 'mysql_old_password', data: Buffer.alloc(0) };
  const plugin = r.cstring('auth plugin').toString('latin1');
  return { plugin, data: r.rest() };
}

// ---------------------------------------------------------------------------------------
// Commands we audit

/** COM_QUERY's statement text (MySQL 8's query attributes are never negotiated). */
export function parseComQuery(payload: Buffer): string {
  if (payload[0] !== Command.QUERY) throw new MySqlProtocolError('not COM_QUERY');
  return payload.toString('utf8', 1);
}

/** A COM_QUERY packet (sequence id 0). */
export function comQuery(sql: string): Buffer {
  return packets(0, Buffer.concat([Buffer.from([Command.QUERY]), Buffer.from(sql, 'utf8')]));
}

/** COM_STMT_PREPARE's statement text. */
export function parseComStmtPrepare(payload: Buffer): string {
  if (payload[0] !== Command.STMT_PREPARE) throw new MySqlProtocolError('not COM_STMT_PREPARE');
  return payload.toString('utf8', 1);
}

/** COM_STMT_PREPARE_OK (the first packet of a successful prepare's answer). */
export function parsePrepareOk(payload: Buffer): { statementId: number; columns: number; params: number } {
  const r = new PayloadReader(payload);
  if (r.u8('prepare OK') !== 0 || payload.length < 12)
    throw new MySqlProtocolError('not COM_STMT_PREPARE_OK');
  const statementId = r.u32('statement id');
  const columns = r.u16('column count');
  const params = r.u16('parameter count');
  return { statementId, columns, params };
}

/** Column types (enum_field_types) that parameters may carry. */
const T = {
  DECIMAL: 0,
  TINY: 1,
  SHORT: 2,
  LONG: 3,
  FLOAT: 4,
  DOUBLE: 5,
  NULL: 6,
  TIMESTAMP: 7,
  LONGLONG: 8,
  INT24: 9,
  DATE: 10,
  TIME: 11,
  DATETIME: 12,
  YEAR: 13,
} as const;

const pad = (n: number, w = 2) => String(n).padStart(w, '0');

function dateTime(r: PayloadReader, type: number): string {
  const len = r.u8('date length');
  const v = new PayloadReader(r.bytes(len, 'date'));
  if (len === 0) return type === T.DATE ? '0000-00-00' : '0000-00-00 00:00:00';
  if (len !== 4 && len !== 7 && len !== 11) throw new MySqlProtocolError(`invalid date length ${len}`);
  const date = `${pad(v.u16(), 4)}-${pad(v.u8())}-${pad(v.u8())}`;
  if (len === 4) return date;
  const time = `${pad(v.u8())}:${pad(v.u8())}:${pad(v.u8())}`;
  return len === 11 ? `${date} ${time}.${pad(v.u32(), 6)}` : `${date} ${time}`;
}

function time(r: PayloadReader): string {
  const len = r.u8('time length');
  const v = new PayloadReader(r.bytes(len, 'time'));
  if (len === 0) return '00:00:00';
  if (len !== 8 && len !== 12) throw new MySqlProtocolError(`invalid time length ${len}`);
  const negative = v.u8() === 1;
  const hours = v.u32() * 24 + v.u8();
  const t = `${negative ? '-' : ''}${pad(hours)}:${pad(v.u8())}:${pad(v.u8())}`;
  return len === 12 ? `${t}.${pad(v.u32(), 6)}` : t;
}

/** One binary-protocol value as text. */
function binaryValue(r: PayloadReader, type: number, unsigned: boolean): string {
  switch (type) {
    case T.TINY: {
      const b = r.bytes(1, 'parameter');
      return String(unsigned ? b.readUInt8(0) : b.readInt8(0));
    }
    case T.SHORT:
    case T.YEAR: {
      const b = r.bytes(2, 'parameter');
      return String(unsigned ? b.readUInt16LE(0) : b.readInt16LE(0));
    }
    case T.LONG:
    case T.INT24: {
      const b = r.bytes(4, 'parameter');
      return String(unsigned ? b.readUInt32LE(0) : b.readInt32LE(0));
    }
    case T.LONGLONG: {
      const b = r.bytes(8, 'parameter');
      return String(unsigned ? b.readBigUInt64LE(0) : b.readBigInt64LE(0));
    }
    case T.FLOAT:
      return String(r.bytes(4, 'parameter').readFloatLE(0));
    case T.DOUBLE:
      return String(r.bytes(8, 'parameter').readDoubleLE(0));
    case T.DATE:
    case T.DATETIME:
    case T.TIMESTAMP:
      return dateTime(r, type);
    case T.TIME:
      return time(r);
    default: {
      // DECIMAL, strings, blobs, JSON, BIT, ENUM, SET, GEOMETRY: length-encoded bytes.
      const raw = r.lenencBytes('parameter');
      const text = raw.toString('utf8');
      const printable = !text.includes('\uFFFD') && !/[\0-\x08\x0e-\x1f]/.test(text);
      const out = printable ? text : `\\x${raw.toString('hex')}`;
      return out.length > MAX_AUDITED_PARAMETER
        ? `${out.slice(0, MAX_AUDITED_PARAMETER)}… (${raw.length} bytes)`
        : out;
    }
  }
}

export interface StmtExecute {
  statementId: number;
  /** Parameters as text (NULL as null); undefined when the count is unknown. */
  parameters?: (string | null)[];
  /** The parameter types sent with this execute (reused by later ones that omit them). */
  types?: number[];
}

/**
 * COM_STMT_EXECUTE. `params` is the statement's parameter count (from its prepare), `types`
 * those of an earlier execute, for when this one does not re-send them.
 */
export function parseComStmtExecute(
  payload: Buffer,
  params: number | undefined,
  types: readonly number[] | undefined,
): StmtExecute {
  const r = new PayloadReader(payload);
  if (r.u8('command') !== Command.STMT_EXECUTE) throw new MySqlProtocolError('not COM_STMT_EXECUTE');
  const statementId = r.u32('statement id');
  r.u8('flags');
  r.u32('iteration count');
  if (params === undefined) return { statementId };
  if (params === 0) return { statementId, parameters: [] };
  const nulls = r.bytes((params + 7) >> 3, 'NULL bitmap');
  const bound = r.u8('new-params-bound flag');
  let sent: number[] | undefined;
  if (bound === 1) {
    sent = [];
    for (let i = 0; i < params; i++) sent.push(r.u16('parameter type'));
  } else if (bound !== 0) throw new MySqlProtocolError('invalid new-params-bound flag');
  const use = sent ?? types;
  if (!use || use.length !== params) throw new MySqlProtocolError('parameter types unknown');
  const parameters: (string | null)[] = [];
  for (let i = 0; i < params; i++) {
    if (nulls[i >> 3]! & (1 << (i & 7))) {
      parameters.push(null);
      continue;
    }
    const t = use[i]!;
    const type = t & 0xff;
    if (type === T.NULL) {
      parameters.push(null);
      continue;
    }
    parameters.push(binaryValue(r, type, (t & 0x8000) !== 0));
  }
  return { statementId, parameters, ...(sent ? { types: sent } : {}) };
}
