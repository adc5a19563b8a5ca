/**
 * Turning an emitter's input into a stored event, and checking search queries: the part every
 * AuditLog implementation shares. Internal to `audit/`.
 *
 * Secrets: any field whose name `isSecretFieldName` flags (password, token, otp, private_key…)
 * is removed wherever it appears, nested objects and arrays included, and so is any string
 * value holding a PEM private key; the removed paths are listed in the event's `redacted`.
 * The event is still stored (dropping the whole event would lose the audit trail). Fields the
 * type does not define are dropped as well (the per-type schema is an allow-list).
 */
import { randomFillSync } from 'node:crypto';
import {
  type AuditEvent,
  type AuditEventInput,
  type AuditEventType,
  AuditResourceSchema,
  auditCode,
  auditCommonFields,
  auditEventCatalogue,
  isAuditEventType,
  isSecretFieldName,
  WardenError,
} from '@warden/api';
import { z } from 'zod';
import type { AuditQuery, AuditStatementBase, AuditStatementDone, AuditStatementWriter } from './types';

/** Longest string value stored; longer values are cut (attackers choose user names too). */
export const MAX_AUDIT_STRING = 4096;
export const DEFAULT_AUDIT_LIMIT = 1000;
export const MAX_AUDIT_LIMIT = 10_000;
const MAX_DEPTH = 8;
const PEM_PRIVATE_KEY = /-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----/;

/** Field names already judged by `isSecretFieldName` (the same few dozen names come back). */
const secretNames = new Map<string, boolean>();
const MAX_REMEMBERED_NAMES = 4096;

function isSecretName(name: string): boolean {
  let secret = secretNames.get(name);
  if (secret === undefined) {
    secret = isSecretFieldName(name);
    if (secretNames.size < MAX_REMEMBERED_NAMES) secretNames.set(name, secret);
  }
  return secret;
}

const random = Buffer.alloc(16 * 512);
let randomAt = random.length;

/**
 * A UUID version 7 (RFC 9562): the time in ms, then 74 random bits. Ids of events stored in
 * order sort in order, so the unique index on them grows at one end instead of touching a
 * random page per insert (half the cost of an insert into the SQLite audit log).
 */
export function eventId(nowMs: number): string {
  if (randomAt === random.length) {
    randomFillSync(random);
    randomAt = 0;
  }
  const b = random.subarray(randomAt, randomAt + 16);
  randomAt += 16;
  b.writeUIntBE(Math.max(0, Math.min(nowMs, 2 ** 48 - 1)), 0, 6);
  b[6] = (b[6]! & 0x0f) | 0x70;
  b[8] = (b[8]! & 0x3f) | 0x80;
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/**
 * Event types written in bulk on a data path that does not wait for each before going on (a
 * database session's statements; a session's end, which every protocol records without
 * waiting): the stores gather them into larger commits (`GroupCommit`'s `bulkIntervalMs`)
 * instead of a commit and fsync of their own, which a connection's `session.start` after
 * them would wait for. Still acknowledged only once durable.
 */
export const BULK_AUDIT_TYPES: ReadonlySet<string> = new Set(['db.query', 'session.end']);
const BULK = { bulk: true } as const;

/** `GroupCommit.add`'s options for an event of `type`. */
export function groupOptions(type: string): { bulk: boolean } | undefined {
  return BULK_AUDIT_TYPES.has(type) ? BULK : undefined;
}

function badParameter(message: string): WardenError {
  return new WardenError('WARDEN_ERR_BAD_PARAMETER', message);
}

const schemas = new Map<AuditEventType, z.ZodObject>();
function schemaFor(type: AuditEventType): z.ZodObject {
  let schema = schemas.get(type);
  if (!schema) {
    schema = z.object({ ...auditCommonFields, ...auditEventCatalogue[type].fields.shape });
    schemas.set(type, schema);
  }
  return schema;
}

/** Copies `value` without secret-named keys or private-key strings; records what it removed. */
function scrub(value: unknown, path: string, redacted: string[], depth: number): unknown {
  if (typeof value === 'string') {
    if (PEM_PRIVATE_KEY.test(value)) {
      redacted.push(path);
      return undefined;
    }
    return value.length > MAX_AUDIT_STRING ? `${value.slice(0, MAX_AUDIT_STRING)}…` : value;
  }
  if (value === null || typeof value !== 'object') return value;
  if (depth >= MAX_DEPTH) {
    redacted.push(path);
    return undefined;
  }
  if (Array.isArray(value)) {
    return value.map((v, i) => scrub(v, `${path}[${i}]`, redacted, depth + 1)).filter((v) => v !== undefined);
  }
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    const p = path ? `${path}.${k}` : k;
    if (isSecretName(k)) {
      redacted.push(p);
      continue;
    }
    const clean = scrub(v, p, redacted, depth + 1);
    if (clean !== undefined) out[k] = clean;
  }
  return out;
}

export interface PreparedEvent {
  event: AuditEvent;
  /** `event.time` in ms since the epoch, for indexing. */
  timeMs: number;
}

/**
 * The fast path for `db.query`, the event of every database statement (half of db_service's
 * CPU per statement went to the general path: scrub, then zod). An input of the usual shape
 * (only the type's fields, strings within bounds, no private key, no secret-named label) is
 * checked by hand and comes out exactly as the general path would make it (`prepare.test.ts`
 * compares both); anything else returns undefined and takes the general path, which also
 * words the errors.
 */
const DB_QUERY_FIELDS = new Set([
  ...Object.keys(auditCommonFields),
  ...Object.keys(auditEventCatalogue['db.query'].fields.shape),
  'type',
]);
const DB_QUERY_CODE = auditCode('db.query', true)!;
const PROTOCOLS = new Set(['ssh', 'db', 'app', 'kube', 'api']);
const DEVICE_FIELDS = new Set(['id', 'os_type', 'asset_tag', 'credential_id']);
const RESOURCE_FIELDS = new Set(['kind', 'name', 'hostname', 'labels']);
/** Counts inputs the fast path took (tests). */
export const fastPathCount = { dbQuery: 0 };

/** A string the general path would keep as it is. */
function plain(v: unknown): v is string {
  return typeof v === 'string' && v.length <= MAX_AUDIT_STRING && !PEM_PRIVATE_KEY.test(v);
}

function optional(v: unknown): boolean {
  return v === undefined || plain(v);
}

/** Only keys of `allowed`, none named like a secret (the allowed names never are). */
function onlyKeys(o: object, allowed: ReadonlySet<string>): boolean {
  for (const k in o) if (!allowed.has(k)) return false;
  return true;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function prepareDbQuery(input: Record<string, unknown>, now: number): PreparedEvent | undefined {
  if (!onlyKeys(input, DB_QUERY_FIELDS)) return undefined;
  const i = input;
  if (i.success !== undefined && i.success !== true) return undefined;
  if (!(optional(i.user) && optional(i.addr) && optional(i.error) && plain(i.session_id) && plain(i.query)))
    return undefined;
  if (!(optional(i.db_user) && optional(i.db_name) && optional(i.statement))) return undefined;
  if (typeof i.protocol !== 'string' || !PROTOCOLS.has(i.protocol)) return undefined;
  const caller = checkedCaller(i);
  if (!caller) return undefined;
  const { device } = caller;
  const resource = checkedResource(i.resource);
  if (!resource) return undefined;
  let parameters: (string | null)[] | undefined;
  if (i.parameters !== undefined) {
    if (!Array.isArray(i.parameters)) return undefined;
    parameters = new Array(i.parameters.length);
    for (let k = 0; k < i.parameters.length; k++) {
      const v: unknown = i.parameters[k];
      if (v !== null && !plain(v)) return undefined;
      parameters[k] = v;
    }
  }
  const event = withCaller(
    {
      id: eventId(now),
      code: DB_QUERY_CODE,
      type: 'db.query',
      time: new Date(now).toISOString(),
      success: true,
    },
    i,
    device,
  );
  event.protocol = i.protocol;
  event.session_id = i.session_id;
  event.resource = resource;
  if (i.db_user !== undefined) event.db_user = i.db_user;
  if (i.db_name !== undefined) event.db_name = i.db_name;
  event.query = i.query;
  if (parameters) event.parameters = parameters;
  if (i.statement !== undefined) event.statement = i.statement;
  fastPathCount.dbQuery++;
  return { event, timeMs: now };
}

/**
 * An event's `resource` as the general path stores it, when it is of the usual shape (known
 * fields, plain strings, no secret-named label); else undefined (the general path decides).
 */
function checkedResource(r: unknown): Record<string, unknown> | undefined {
  if (
    !isRecord(r) ||
    !onlyKeys(r, RESOURCE_FIELDS) ||
    !plain(r.kind) ||
    !plain(r.name) ||
    !optional(r.hostname)
  )
    return undefined;
  const resource: Record<string, unknown> = { kind: r.kind, name: r.name };
  if (r.hostname !== undefined) resource.hostname = r.hostname;
  if (r.labels !== undefined) {
    if (!isRecord(r.labels)) return undefined;
    const labels: Record<string, string> = {};
    for (const [k, v] of Object.entries(r.labels)) {
      if (isSecretName(k) || !plain(v)) return undefined;
      labels[k] = v;
    }
    resource.labels = labels;
  }
  return resource;
}

/** What changes from one `db.query` event of a session to the next. */
export interface StatementFields {
  query: string;
  parameters?: readonly (string | null)[];
  statement?: string;
}

/** One statement's stored form, ready for a store's insert. */
export interface PreparedStatement {
  id: string;
  timeMs: number;
  /** `JSON.stringify` of the event the general path would store. */
  json: string;
}

/** What a store's calls refuse once it is closed. */
export function auditClosedError(): WardenError {
  return new WardenError('WARDEN_ERR_CLOSED', 'the audit log is closed');
}

/** What `templateStatements` needs of a store. */
export interface StatementStore {
  closed(): boolean;
  now(): number;
  /** The general path, for a statement the template will not take. */
  emit(event: AuditEventInput): Promise<unknown>;
}

/**
 * A store's `AuditLog.statements` over the session's template: a statement the template takes
 * goes to `push` prepared (the store's row, its group commit calling `done`); one it will not
 * take goes through the store's `emit`; a closed store refuses at once.
 */
export function templateStatements(
  base: AuditStatementBase,
  template: DbQueryTemplate,
  store: StatementStore,
  push: (p: PreparedStatement, done: AuditStatementDone) => void,
): AuditStatementWriter {
  return {
    write: (statement, done) => {
      if (store.closed()) {
        done(auditClosedError());
        return;
      }
      const p = template.prepare(statement, store.now());
      if (!p) {
        store.emit({ ...base, ...statement } as AuditEventInput).then(
          () => done(),
          (e: unknown) => done(e ?? auditClosedError()),
        );
        return;
      }
      push(p, done);
    },
  };
}

const ENVELOPE_KEYS = new Set(['id', 'code', 'type', 'time', 'success']);
const STATEMENT_KEYS = new Set(['query', 'parameters', 'statement']);

/**
 * The `db.query` events of one database session, pre-serialised: the fields every event of the
 * session shares (who, from where, which database, the session) are checked by the fast path's
 * rules and turned into JSON once; each statement only adds its id, time and own fields, checked
 * by hand (no scrub, no zod, no event object). The JSON is byte for byte what `prepareAuditEvent`
 * stores for the same input (`prepare.test.ts`). `for` returns undefined for a base the fast
 * path would not take; `prepare` for a statement it would not take (a private key, an
 * over-long string): the caller then emits that statement the general way.
 *
 * @example
 *   const t = DbQueryTemplate.for({ type: 'db.query', success: true, user, protocol: 'db', session_id, resource });
 *   const row = t?.prepare({ query: 'SELECT 1' }, Date.now());
 */
/** The last millisecond's RFC 3339 form: a busy session's statements share most milliseconds. */
let isoMs = Number.NaN;
let isoText = '';
function isoTime(ms: number): string {
  if (ms !== isoMs) {
    isoText = new Date(ms).toISOString();
    isoMs = ms;
  }
  return isoText;
}

export class DbQueryTemplate {
  /** `"user":…,…,"db_name":…` — the shared fields, in the general path's key order. */
  readonly #middle: string;
  /** The acting user and device, for the stores' indexes. */
  readonly user: string | undefined;
  readonly device: string | undefined;

  private constructor(middle: string, user: string | undefined, device: string | undefined) {
    this.#middle = middle;
    this.user = user;
    this.device = device;
  }

  static for(base: AuditStatementBase): DbQueryTemplate | undefined {
    if (base === null || typeof base !== 'object' || base.type !== 'db.query') return undefined;
    for (const k in base as object) if (STATEMENT_KEYS.has(k)) return undefined;
    const sample = prepareDbQuery({ ...base, query: '' } as Record<string, unknown>, 0);
    if (!sample) return undefined;
    const shared: Record<string, unknown> = {};
    let afterQuery = false;
    for (const [k, v] of Object.entries(sample.event)) {
      if (k === 'query') afterQuery = true;
      else if (!ENVELOPE_KEYS.has(k)) {
        // The general path puts nothing of the base after the statement's fields.
        if (afterQuery) return undefined;
        shared[k] = v;
      }
    }
    const middle = JSON.stringify(shared).slice(1, -1);
    if (middle === '') return undefined;
    return new DbQueryTemplate(middle, sample.event.user, sample.event.device?.id);
  }

  /** The stored form of one statement at time `now`, or undefined for the general path. */
  prepare(s: StatementFields, now: number): PreparedStatement | undefined {
    if (!plain(s.query) || !optional(s.statement)) return undefined;
    const params = s.parameters;
    if (params !== undefined) {
      if (!Array.isArray(params)) return undefined;
      for (let k = 0; k < params.length; k++) {
        const v: unknown = params[k];
        if (v !== null && !plain(v)) return undefined;
      }
    }
    const id = eventId(now);
    let json = `{"id":"${id}","code":"${DB_QUERY_CODE}","type":"db.query","time":"${isoTime(now)}","success":true,${this.#middle},"query":${JSON.stringify(s.query)}`;
    if (params !== undefined) json += `,"parameters":${JSON.stringify(params)}`;
    if (s.statement !== undefined) json += `,"statement":${JSON.stringify(s.statement)}`;
    return { id, timeMs: now, json: `${json}}` };
  }
}

/**
 * The fast path for every other type whose fields are all flat (strings, booleans, enums,
 * string lists, no checks beyond the type; numbers, checked by their own schema; a `resource`):
 * `device.authenticate`, `cert.create`, logins…, the events of each login and device
 * authentication, and `session.start`/`session.end` of every SSH and database session. Each type's field kinds are read once
 * from the catalogue's zod schema; an input of the usual shape (known fields only, strings
 * within bounds, no private key) is checked by hand and comes out exactly as the general path
 * would make it (`prepare.test.ts` compares both for every type); anything else returns
 * undefined and takes the general path, which also words the errors.
 */
type FlatKind =
  | { kind: 'resource' }
  /** A number, checked by the field's own schema (integer, non-negative…). */
  | { kind: 'number'; schema: z.ZodType }
  | { kind: 'string' }
  | { kind: 'boolean' }
  | { kind: 'strings' }
  | { kind: 'enum'; values: ReadonlySet<string> };
interface FlatField {
  name: string;
  optional: boolean;
  kind: FlatKind;
}
interface FlatSpec {
  /** The type's own fields, in the schema's order (the general path's output order). */
  fields: FlatField[];
  allowed: ReadonlySet<string>;
}

/** A zod schema's definition (zod 4 keeps it at `_zod.def`). */
interface ZodDef {
  type: string;
  checks?: unknown[];
  innerType?: { _zod: { def: ZodDef } };
  element?: { _zod: { def: ZodDef } };
  entries?: Record<string, unknown>;
}

/** The flat kind of a field schema, or undefined when it is anything else. */
function flatKind(schema: z.ZodType): { optional: boolean; kind: FlatKind } | undefined {
  let def = (schema as unknown as { _zod: { def: ZodDef } })._zod.def;
  let inner = schema;
  let optional = false;
  if (def.type === 'optional' && def.innerType) {
    optional = true;
    inner = def.innerType as unknown as z.ZodType;
    def = def.innerType._zod.def;
  }
  if (inner === AuditResourceSchema) return { optional, kind: { kind: 'resource' } };
  if (def.type === 'number') return { optional, kind: { kind: 'number', schema: inner } };
  if (def.checks && def.checks.length > 0) return undefined;
  if (def.type === 'string') return { optional, kind: { kind: 'string' } };
  if (def.type === 'boolean') return { optional, kind: { kind: 'boolean' } };
  if (def.type === 'enum' && def.entries) {
    const values = Object.values(def.entries);
    if (!values.every((v) => typeof v === 'string')) return undefined;
    return { optional, kind: { kind: 'enum', values: new Set(values as string[]) } };
  }
  if (def.type === 'array' && def.element) {
    const e = def.element._zod.def;
    if (e.type === 'string' && !(e.checks && e.checks.length > 0))
      return { optional, kind: { kind: 'strings' } };
  }
  return undefined;
}

const COMMON_FIELDS = new Set([...Object.keys(auditCommonFields), 'type']);
const flatSpecs = new Map<string, FlatSpec | null>();

function flatSpec(type: AuditEventType): FlatSpec | undefined {
  let spec = flatSpecs.get(type);
  if (spec === undefined) {
    spec = null;
    const fields: FlatField[] = [];
    let flat = true;
    for (const [name, schema] of Object.entries(auditEventCatalogue[type].fields.shape)) {
      const k = flatKind(schema as z.ZodType);
      if (!k || COMMON_FIELDS.has(name) || isSecretName(name)) {
        flat = false;
        break;
      }
      fields.push({ name, ...k });
    }
    if (flat) spec = { fields, allowed: new Set([...COMMON_FIELDS, ...fields.map((f) => f.name)]) };
    flatSpecs.set(type, spec);
  }
  return spec ?? undefined;
}

/** A value of `kind` the general path would keep as it is (a copy for lists), or undefined. */
function flatValue(kind: FlatKind, v: unknown): unknown {
  switch (kind.kind) {
    case 'resource':
      return checkedResource(v);
    case 'number':
      return typeof v === 'number' && kind.schema.safeParse(v).success ? v : undefined;
    case 'string':
      return plain(v) ? v : undefined;
    case 'boolean':
      return typeof v === 'boolean' ? v : undefined;
    case 'enum':
      return typeof v === 'string' && kind.values.has(v) ? v : undefined;
    case 'strings': {
      if (!Array.isArray(v)) return undefined;
      const out = new Array<string>(v.length);
      for (let k = 0; k < v.length; k++) {
        const s: unknown = v[k];
        if (!plain(s)) return undefined;
        out[k] = s;
      }
      return out;
    }
  }
}

/** Counts inputs the flat fast path took, by type (tests). */
export const flatPathCount = new Map<string, number>();

function prepareFlat(
  type: AuditEventType,
  input: Record<string, unknown>,
  now: number,
): PreparedEvent | undefined {
  const spec = flatSpec(type);
  if (!spec || !onlyKeys(input, spec.allowed)) return undefined;
  const i = input;
  if (i.success !== undefined && typeof i.success !== 'boolean') return undefined;
  if (!(optional(i.user) && optional(i.addr) && optional(i.error))) return undefined;
  const caller = checkedCaller(i);
  if (!caller) return undefined;
  const { device } = caller;
  const success = (i.success as boolean | undefined) ?? auditEventCatalogue[type].code !== undefined;
  const code = auditCode(type, success);
  if (code === undefined) return undefined;
  const event = withCaller({ id: '', code, type, time: new Date(now).toISOString(), success }, i, device);
  for (const f of spec.fields) {
    const v = i[f.name];
    if (v === undefined) {
      if (!f.optional) return undefined;
      continue;
    }
    const value = flatValue(f.kind, v);
    if (value === undefined) return undefined;
    event[f.name] = value;
  }
  event.id = eventId(now);
  flatPathCount.set(type, (flatPathCount.get(type) ?? 0) + 1);
  return { event, timeMs: now };
}

/** Validates, scrubs and completes an event for storage at time `now`. */
export function prepareAuditEvent(input: AuditEventInput, now: number): PreparedEvent {
  if (input === null || typeof input !== 'object') throw badParameter('an audit event must be an object');
  const type: unknown = input.type;
  if (type === 'db.query') {
    const fast = prepareDbQuery(input as Record<string, unknown>, now);
    if (fast) return fast;
  } else if (isAuditEventType(type)) {
    const fast = prepareFlat(type, input as Record<string, unknown>, now);
    if (fast) return fast;
  }
  return prepareAuditEventGeneral(input, now);
}

/** `prepareAuditEvent` without the fast path (exported for the test that compares both). */
export function prepareAuditEventGeneral(input: AuditEventInput, now: number): PreparedEvent {
  if (input === null || typeof input !== 'object') throw badParameter('an audit event must be an object');
  const type: unknown = input.type;
  if (!isAuditEventType(type)) throw badParameter(`unknown audit event type "${String(type)}"`);
  const redacted: string[] = [];
  const clean = scrub(input, '', redacted, 0) as Record<string, unknown>;
  const parsed = schemaFor(type).safeParse(clean);
  if (!parsed.success) throw badParameter(`invalid ${type} audit event: ${z.prettifyError(parsed.error)}`);
  const {
    success: given,
    user,
    addr,
    error,
    device,
    ...fields
  } = parsed.data as Record<string, unknown> &
    Partial<Pick<AuditEvent, 'success' | 'user' | 'addr' | 'error' | 'device'>>;
  const success = given ?? auditEventCatalogue[type].code !== undefined;
  const code = auditCode(type, success);
  if (code === undefined) throw badParameter(`a ${type} event cannot ${success ? 'succeed' : 'fail'}`);
  const event: AuditEvent = { id: eventId(now), code, type, time: new Date(now).toISOString(), success };
  if (user !== undefined) event.user = user;
  if (addr !== undefined) event.addr = addr;
  if (error !== undefined) event.error = error;
  if (device !== undefined) event.device = device;
  Object.assign(event, fields);
  if (redacted.length > 0) event.redacted = redacted;
  return { event, timeMs: now };
}

export interface NormalizedQuery {
  fromMs: number | undefined;
  toMs: number | undefined;
  types: AuditEventType[] | undefined;
  user: string | undefined;
  device: string | undefined;
  limit: number;
  order: 'asc' | 'desc';
}

function timeOf(value: string | Date | undefined, name: string): number | undefined {
  if (value === undefined) return undefined;
  const ms =
    value instanceof Date ? value.getTime() : typeof value === 'string' ? Date.parse(value) : Number.NaN;
  if (Number.isNaN(ms)) throw badParameter(`${name} must be an RFC 3339 time`);
  return ms;
}

/** Checks and defaults a search query. */
export function normalizeQuery(q: AuditQuery = {}): NormalizedQuery {
  const limit = q.limit ?? DEFAULT_AUDIT_LIMIT;
  if (!Number.isSafeInteger(limit) || limit < 1 || limit > MAX_AUDIT_LIMIT) {
    throw badParameter(`limit must be a whole number from 1 to ${MAX_AUDIT_LIMIT}`);
  }
  const order = q.order ?? 'desc';
  if (order !== 'asc' && order !== 'desc') throw badParameter('order must be "asc" or "desc"');
  let types: AuditEventType[] | undefined;
  if (q.types !== undefined && q.types.length > 0) {
    for (const t of q.types) if (!isAuditEventType(t)) throw badParameter(`unknown audit event type "${t}"`);
    types = [...new Set(q.types)] as AuditEventType[];
  }
  for (const [name, v] of [
    ['user', q.user],
    ['device', q.device],
  ] as const) {
    if (v !== undefined && typeof v !== 'string') throw badParameter(`${name} must be a string`);
  }
  return {
    fromMs: timeOf(q.from, 'from'),
    toMs: timeOf(q.to, 'to'),
    types,
    user: q.user,
    device: q.device,
    limit,
    order,
  };
}

/** The device IDs an event can be found by: the actor's device and the device it is about. */
export function deviceIdsOf(event: AuditEvent): {
  device: string | undefined;
  subjectDevice: string | undefined;
} {
  const subject = (event as Record<string, unknown>).device_id;
  return { device: event.device?.id, subjectDevice: typeof subject === 'string' ? subject : undefined };
}

/**
 * A fast path's event so far: the envelope, then the caller's fields in the general path's
 * key order (user, addr, error, device, user_kind, device_exemption); the schema's follow.
 */
function withCaller(
  envelope: Pick<AuditEvent, 'id' | 'code' | 'type' | 'time' | 'success'>,
  i: Record<string, unknown>,
  device: AuditEvent['device'],
): AuditEvent & Record<string, unknown> {
  const event = envelope as AuditEvent & Record<string, unknown>;
  if (i.user !== undefined) event.user = i.user as string;
  if (i.addr !== undefined) event.addr = i.addr as string;
  if (i.error !== undefined) event.error = i.error as string;
  if (device) event.device = device;
  if (i.user_kind !== undefined) event.user_kind = i.user_kind;
  if (i.device_exemption !== undefined) event.device_exemption = i.device_exemption;
  return event;
}

/**
 * The caller's fields both fast paths check alike (`user_kind`, `device_exemption`, `device`):
 * the checked device (undefined when the event names none), or undefined when a field does
 * not pass (the general path decides).
 */
function checkedCaller(i: Record<string, unknown>): { device: AuditEvent['device'] } | undefined {
  if (i.user_kind !== undefined && i.user_kind !== 'human' && i.user_kind !== 'bot') return undefined;
  if (i.device_exemption !== undefined && i.device_exemption !== 'bot') return undefined;
  if (i.device === undefined) return { device: undefined };
  const device = checkedDevice(i.device);
  return device ? { device } : undefined;
}

/** An event's `device` when every field is a plain string of the allowed ones, else false (the general path decides). */
function checkedDevice(d: unknown): NonNullable<AuditEvent['device']> | false {
  if (!isRecord(d) || !onlyKeys(d, DEVICE_FIELDS) || !plain(d.id)) return false;
  if (!(optional(d.os_type) && optional(d.asset_tag) && optional(d.credential_id))) return false;
  const device: NonNullable<AuditEvent['device']> = { id: d.id };
  if (d.os_type !== undefined) device.os_type = d.os_type as string;
  if (d.asset_tag !== undefined) device.asset_tag = d.asset_tag as string;
  if (d.credential_id !== undefined) device.credential_id = d.credential_id as string;
  return device;
}

/**
 * A `session.end` with every field set: what ending a live session writes (SSH at the node
 * and the agentless forwarder, databases). Its type is not flat (numbers), so the general path
 * checks it with zod, and zod compiles an object schema's checks on its first parse: 3–4 ms of
 * CPU that `bench:locks` saw on replica B in the first lock of a run, between the session
 * monitor's pass and the clients seeing their ends. Sessions only start before any ends, and a
 * real lock is rare, so every process's first lock met it.
 */
export const SESSION_END_PRIMING: AuditEventInput = {
  type: 'session.end',
  success: true,
  user: 'u',
  user_kind: 'human',
  addr: '127.0.0.1',
  device: { id: 'd', os_type: 'linux', asset_tag: 'a', credential_id: 'c' },
  protocol: 'ssh',
  session_id: '00000000-0000-4000-8000-000000000000',
  resource: { kind: 'node', name: 'n', hostname: 'h', labels: { l: 'v' } },
  login: 'l',
  roles: ['r'],
  node: 'h',
  session_type: 'shell',
  command: 'c',
  forward_addr: 'h:1',
  db_user: 'u',
  db_name: 'd',
  exit_code: 0,
  exit_signal: 'TERM',
  duration_ms: 1,
  terminated_by: 'priming',
};

let sessionEndPrimed = false;

/**
 * Checks `SESSION_END_PRIMING` once per process on both paths (the flat fast path, and the
 * general one an unusual input takes), so that the first session a lock ends does not compile
 * the event's schema. For the composition root, next to the session monitor.
 */
export function primeSessionEndAudit(): void {
  if (sessionEndPrimed) return;
  sessionEndPrimed = true;
  prepareAuditEvent(SESSION_END_PRIMING, 0);
  prepareAuditEventGeneral(SESSION_END_PRIMING, 0);
}
