/**
 * The pieces of the PostgreSQL wire protocol (v3) that the engine reads and writes: startup
 * packets (StartupMessage, SSLRequest, GSSENCRequest, CancelRequest), typed messages
 * (`type byte | int32 length | body`), the client messages we audit (Query, Parse, Bind,
 * Execute) and the server messages we make (ErrorResponse, BackendKeyData).
 * Every parser bounds lengths and throws `PgProtocolError` on malformed input.
 * Internal to `srv/db/postgres`; tested by `protocol.test.ts` (round trips and fuzz).
 */

export const PROTOCOL_V3 = 196608; // 3 << 16
export const SSL_REQUEST_CODE = 80877103;
export const GSSENC_REQUEST_CODE = 80877104;
export const CANCEL_REQUEST_CODE = 80877102;
/** PostgreSQL's own limit for a startup packet. */
export const MAX_STARTUP_LENGTH = 10_000;

/** SQLSTATEs we send. */
export const SqlState = {
  /** invalid_authorization_specification: refusals (access, device, locks). */
  invalidAuthorization: '28000',
  /** protocol_violation. */
  protocolViolation: '08P01',
  /** connection_failure: the database could not be reached. */
  connectionFailure: '08006',
  /** admin_shutdown: the session was ended from the server side (a lock). */
  adminShutdown: '57P01',
} as const;

/** Malformed input from a client or server. */
export class PgProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PgProtocolError';
  }
}

export type StartupPacket =
  | { kind: 'ssl' }
  | { kind: 'gssenc' }
  | { kind: 'cancel'; processId: number; secretKey: number }
  | { kind: 'startup'; parameters: Record<string, string> };

/** Reads the length of a startup packet from its first 4 bytes; throws when out of bounds. */
export function startupLength(head: Buffer): number {
  const len = head.readInt32BE(0);
  if (len < 8 || len > MAX_STARTUP_LENGTH) throw new PgProtocolError(`invalid startup packet length ${len}`);
  return len;
}

/** Parses a whole startup packet (length included). */
export function parseStartupPacket(packet: Buffer): StartupPacket {
  if (packet.length < 8 || packet.readInt32BE(0) !== packet.length)
    throw new PgProtocolError('invalid startup packet length');
  const code = packet.readInt32BE(4);
  if (code === SSL_REQUEST_CODE && packet.length === 8) return { kind: 'ssl' };
  if (code === GSSENC_REQUEST_CODE && packet.length === 8) return { kind: 'gssenc' };
  if (code === CANCEL_REQUEST_CODE && packet.length === 16)
    return { kind: 'cancel', processId: packet.readInt32BE(8), secretKey: packet.readInt32BE(12) };
  if (code >> 16 !== 3)
    throw new PgProtocolError(`unsupported frontend protocol ${code >> 16}.${code & 0xffff}`);
  const parameters: Record<string, string> = Object.create(null);
  let at = 8;
  for (;;) {
    const [name, next] = cstring(packet, at);
    at = next;
    if (name === '') break;
    const [value, after] = cstring(packet, at);
    at = after;
    parameters[name] = value;
  }
  if (at !== packet.length) throw new PgProtocolError('trailing bytes after the startup parameters');
  return { kind: 'startup', parameters: { ...parameters } };
}

/** A NUL-terminated UTF-8 string at `at`, and the offset after its NUL. */
function cstring(buf: Buffer, at: number): [string, number] {
  const end = buf.indexOf(0, at);
  if (end === -1) throw new PgProtocolError('unterminated string');
  return [buf.toString('utf8', at, end), end + 1];
}

export function startupMessage(parameters: Readonly<Record<string, string>>): Buffer {
  const parts: Buffer[] = [];
  for (const [k, v] of Object.entries(parameters)) parts.push(Buffer.from(`${k}\0${v}\0`, 'utf8'));
  parts.push(Buffer.from([0]));
  const body = Buffer.concat(parts);
  const head = Buffer.alloc(8);
  head.writeInt32BE(8 + body.length, 0);
  head.writeInt32BE(PROTOCOL_V3, 4);
  return Buffer.concat([head, body]);
}

export function sslRequest(): Buffer {
  const b = Buffer.alloc(8);
  b.writeInt32BE(8, 0);
  b.writeInt32BE(SSL_REQUEST_CODE, 4);
  return b;
}

export function cancelRequest(processId: number, secretKey: number): Buffer {
  const b = Buffer.alloc(16);
  b.writeInt32BE(16, 0);
  b.writeInt32BE(CANCEL_REQUEST_CODE, 4);
  b.writeInt32BE(processId, 8);
  b.writeInt32BE(secretKey, 12);
  return b;
}

/** One typed message: its type byte as a character, and its body (without the length). */
export interface PgMessage {
  type: string;
  body: Buffer;
}

/** Builds a typed message. */
export function message(type: string, body: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head.write(type, 0, 'latin1');
  head.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([head, body]);
}

/** The length field of a message header (5 bytes); throws when out of bounds. */
export function messageLength(head: Buffer, max: number, at = 0): number {
  const len = head.readInt32BE(at + 1);
  if (len < 4 || len - 4 > max)
    throw new PgProtocolError(
      `invalid length ${len} for message ${JSON.stringify(head.toString('latin1', at, at + 1))}`,
    );
  return len - 4;
}

export interface ErrorFields {
  severity: 'FATAL' | 'ERROR';
  code: string;
  message: string;
  detail?: string;
  hint?: string;
}

/**
 * ErrorResponse: what `psql` prints as `FATAL:  <message>`.
 *
 * @example
 *   socket.end(errorResponse({ severity: 'FATAL', code: SqlState.invalidAuthorization, message: 'unauthorized device' }));
 */
export function errorResponse(f: ErrorFields): Buffer {
  const fields: [string, string][] = [
    ['S', f.severity],
    ['V', f.severity],
    ['C', f.code],
    ['M', f.message],
  ];
  if (f.detail) fields.push(['D', f.detail]);
  if (f.hint) fields.push(['H', f.hint]);
  const body = Buffer.concat([
    ...fields.map(([k, v]) => Buffer.from(`${k}${v.replaceAll('\0', '')}\0`, 'utf8')),
    Buffer.from([0]),
  ]);
  return message('E', body);
}

/** The fields of an ErrorResponse or NoticeResponse body, by field code. */
export function parseErrorFields(body: Buffer): Record<string, string> {
  const out: Record<string, string> = {};
  let at = 0;
  while (at < body.length) {
    const code = body.toString('latin1', at, at + 1);
    if (code === '\0') break;
    const [value, next] = cstring(body, at + 1);
    out[code] = value;
    at = next;
  }
  return out;
}

export function backendKeyData(processId: number, secretKey: number): Buffer {
  const body = Buffer.alloc(8);
  body.writeInt32BE(processId, 0);
  body.writeInt32BE(secretKey, 4);
  return message('K', body);
}

export function parseBackendKeyData(body: Buffer): { processId: number; secretKey: number } {
  if (body.length !== 8) throw new PgProtocolError('invalid BackendKeyData');
  return { processId: body.readInt32BE(0), secretKey: body.readInt32BE(4) };
}

/** Query ('Q'): the SQL text. */
export function parseQuery(body: Buffer): string {
  const [sql, end] = cstring(body, 0);
  if (end !== body.length) throw new PgProtocolError('trailing bytes after Query');
  return sql;
}

/** Parse ('P'): statement name and SQL text (parameter types are ignored). */
export function parseParse(body: Buffer): { statement: string; query: string } {
  const [statement, a] = cstring(body, 0);
  const [query, b] = cstring(body, a);
  if (b + 2 > body.length) throw new PgProtocolError('truncated Parse');
  const n = body.readInt16BE(b);
  if (n < 0 || b + 2 + 4 * n !== body.length) throw new PgProtocolError('invalid Parse parameter types');
  return { statement, query };
}

/** Longest parameter value kept in the audit log (longer ones are cut with a note). */
export const MAX_AUDITED_PARAMETER = 4096;

/**
 * Bind ('B'): portal, statement and parameter values as text (binary values as `\x` hex,
 * NULL as null, long values cut to MAX_AUDITED_PARAMETER characters).
 */
export function parseBind(body: Buffer): {
  portal: string;
  statement: string;
  parameters: (string | null)[];
} {
  const [portal, a] = cstring(body, 0);
  const [statement, b] = cstring(body, a);
  let at = b;
  const int16 = () => {
    if (at + 2 > body.length) throw new PgProtocolError('truncated Bind');
    const v = body.readInt16BE(at);
    at += 2;
    return v;
  };
  const nFormats = int16();
  if (nFormats < 0) throw new PgProtocolError('invalid Bind format count');
  const formats: number[] = [];
  for (let i = 0; i < nFormats; i++) formats.push(int16());
  const nParams = int16();
  if (nParams < 0 || (nFormats > 1 && nFormats !== nParams))
    throw new PgProtocolError('invalid Bind parameter count');
  const parameters: (string | null)[] = [];
  for (let i = 0; i < nParams; i++) {
    if (at + 4 > body.length) throw new PgProtocolError('truncated Bind');
    const len = body.readInt32BE(at);
    at += 4;
    if (len === -1) {
      parameters.push(null);
      continue;
    }
    if (len < 0 || at + len > body.length) throw new PgProtocolError('invalid Bind parameter length');
    const binary = (nFormats === 1 ? formats[0] : formats[i]) === 1;
    const raw = body.subarray(at, at + len);
    at += len;
    let text = binary ? `\\x${raw.toString('hex')}` : raw.toString('utf8');
    if (text.length > MAX_AUDITED_PARAMETER)
      text = `${text.slice(0, MAX_AUDITED_PARAMETER)}… (${raw.length} bytes)`;
    parameters.push(text);
  }
  // Result format codes follow; they do not matter for the audit but must be well formed.
  const nResults = int16();
  if (nResults < 0 || at + 2 * nResults !== body.length)
    throw new PgProtocolError('invalid Bind result formats');
  return { portal, statement, parameters };
}

/** Execute ('E'): the portal to run. */
export function parseExecute(body: Buffer): { portal: string } {
  const [portal, end] = cstring(body, 0);
  if (end + 4 !== body.length) throw new PgProtocolError('invalid Execute');
  return { portal };
}
