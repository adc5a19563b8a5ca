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
  auditCode,
  auditCommonFields,
  auditEventCatalogue,
  isAuditEventType,
  isSecretFieldName,
  WardenError,
} from '@warden/api';
import { z } from 'zod';
import type { AuditQuery } from './types';

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

/** Validates, scrubs and completes an event for storage at time `now`. */
export function prepareAuditEvent(input: AuditEventInput, now: number): PreparedEvent {
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
