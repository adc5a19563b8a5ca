/**
 * Rules shared by every backend: validation of keys, values, options and revisions, the
 * key order (Unicode code point order, which equals UTF-8 byte order, so SQLite's BINARY
 * collation and PostgreSQL's `COLLATE "C"` agree with the memory backend), and prefix bounds.
 * Internal to `backend/`.
 */
import { WardenError } from '@warden/api';
import type { TxnOp, WriteOptions } from './types';

/** Most operations in one `txn`. */
export const MAX_TXN_OPS = 64;

/** Longest key accepted, in UTF-16 code units. */
export const MAX_KEY_LENGTH = 4096;

const LONE_SURROGATE = /\p{Cs}/u;

function badParameter(message: string): WardenError {
  return new WardenError('WARDEN_ERR_BAD_PARAMETER', message);
}

/** A key is a non-empty, well-formed string without NUL, at most MAX_KEY_LENGTH long. */
export function checkKey(key: unknown, what = 'key'): asserts key is string {
  if (typeof key !== 'string' || key.length === 0) throw badParameter(`${what} must be a non-empty string`);
  checkKeyChars(key, what);
}

/** A prefix follows the key rules but may be empty (every key). */
export function checkPrefix(prefix: unknown): asserts prefix is string {
  if (typeof prefix !== 'string') throw badParameter('prefix must be a string');
  checkKeyChars(prefix, 'prefix');
}

function checkKeyChars(key: string, what: string): void {
  if (key.length > MAX_KEY_LENGTH) throw badParameter(`${what} is longer than ${MAX_KEY_LENGTH} characters`);
  if (key.includes('\0')) throw badParameter(`${what} must not contain NUL`);
  if (LONE_SURROGATE.test(key)) throw badParameter(`${what} must be well-formed Unicode`);
}

/** Values are well-formed strings (JSON by convention). */
export function checkValue(value: unknown): asserts value is string {
  if (typeof value !== 'string') throw badParameter('value must be a string');
  if (LONE_SURROGATE.test(value)) throw badParameter('value must be well-formed Unicode');
}

export function checkWriteOptions(opts: WriteOptions | undefined): void {
  if (opts === undefined || opts.ttlMs === undefined) return;
  if (typeof opts.ttlMs !== 'number' || !Number.isFinite(opts.ttlMs) || opts.ttlMs <= 0) {
    throw badParameter('ttlMs must be a positive number of milliseconds');
  }
}

/** Revisions are non-negative safe integers. */
export function checkRev(rev: unknown, what: string): asserts rev is number {
  if (typeof rev !== 'number' || !Number.isSafeInteger(rev) || rev < 0) {
    throw badParameter(`${what} must be a non-negative integer revision`);
  }
}

/** The error of `compact(rev)` past the latest revision. */
export function compactPastHead(rev: number, latest: number): WardenError {
  return badParameter(`cannot compact revision ${rev}: the latest is ${latest}`);
}

/** Expiry time for a write at `now`, or undefined without a TTL. */
export function expiresAt(now: number, opts: WriteOptions | undefined): number | undefined {
  return opts?.ttlMs === undefined ? undefined : Math.ceil(now + opts.ttlMs);
}

/** An item with `expires <= now` is expired (invisible, and absent for writes). */
export function isExpired(expires: number | undefined | null, now: number): boolean {
  return expires !== undefined && expires !== null && expires <= now;
}

function rank(unit: number): number {
  // Surrogates (code points above U+FFFF) sort after U+E000..U+FFFF in code point order.
  if (unit < 0xd800) return unit;
  return unit >= 0xe000 ? unit - 0x800 : unit + 0x2000;
}

/** Compares keys in Unicode code point order (= UTF-8 byte order). */
export function compareKeys(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y) return rank(x) - rank(y);
  }
  return a.length - b.length;
}

/**
 * The least string greater than every string starting with `prefix`, or undefined when there
 * is none (empty prefix, or a prefix made only of U+10FFFF). `key >= prefix AND key < end`
 * selects exactly the keys with the prefix.
 */
export function prefixEnd(prefix: string): string | undefined {
  const cps = Array.from(prefix);
  while (cps.length > 0) {
    const last = cps.pop()!.codePointAt(0)!;
    if (last < 0x10ffff) {
      const next = last + 1 === 0xd800 ? 0xe000 : last + 1;
      return cps.join('') + String.fromCodePoint(next);
    }
  }
  return undefined;
}

/** Default interval of the expiry reaper timer. */
export const DEFAULT_REAP_INTERVAL_MS = 1000;

/** Checks an integer option (at least `min`) and returns it, or `fallback` when absent. */
export function integerOption(
  value: number | undefined,
  fallback: number,
  name: string,
  min: number,
): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value < min) {
    throw new WardenError('WARDEN_ERR_BAD_PARAMETER', `${name} must be an integer >= ${min}`);
  }
  return value;
}

/** The arguments of a write (create, put, compare-and-swap), checked in one place for every backend. */
export function checkWrite(
  key: unknown,
  value: unknown,
  opts: WriteOptions | undefined,
): asserts key is string {
  checkKey(key);
  checkValue(value);
  checkWriteOptions(opts);
}

/** The arguments of a compare-and-swap. */
export function checkSwap(
  key: unknown,
  expectedModRev: unknown,
  value: unknown,
  opts: WriteOptions | undefined,
): asserts key is string {
  checkWrite(key, value, opts);
  checkRev(expectedModRev, 'expectedModRev');
}

/** The arguments of a delete; the revision it expects, if any. */
export function checkDelete(key: unknown, opts: { expectedModRev?: number } | undefined): number | undefined {
  checkKey(key);
  const expected = opts?.expectedModRev;
  if (expected !== undefined) checkRev(expected, 'expectedModRev');
  return expected;
}

/** `compact(rev)`'s argument, for a backend that knows its latest revision (`head`). */
export function checkCompact(rev: unknown, head: number): asserts rev is number {
  checkRev(rev, 'rev');
  if (rev > head) throw compactPastHead(rev, head);
}

/** The errors every backend gives for a key, with one wording. */
export const keyError = {
  exists: (key: string) =>
    new WardenError('WARDEN_ERR_ALREADY_EXISTS', `key "${key}" already exists`, { key }),
  missing: (key: string) => new WardenError('WARDEN_ERR_NOT_FOUND', `key "${key}" not found`, { key }),
  changed: (key: string) =>
    new WardenError('WARDEN_ERR_COMPARE_FAILED', `key "${key}" changed since it was read`, { key }),
};

/**
 * A `txn` operation's condition against the key as stored now (`modRev` undefined: absent),
 * with the error the single write gives; memory and SQLite ask it (PostgreSQL's function
 * checks the same in SQL).
 */
export function checkTxnCondition(op: TxnOp, modRev: number | undefined): void {
  if (op.type === 'create' && modRev !== undefined) throw keyError.exists(op.key);
  if (op.type === 'cas' && modRev === undefined) throw keyError.missing(op.key);
  const expected = op.type === 'cas' || op.type === 'delete' ? op.expectedModRev : undefined;
  if (modRev !== undefined && expected !== undefined && modRev !== expected) throw keyError.changed(op.key);
}

/** `txn`'s operations, checked in one place for every backend (BAD_PARAMETER, see `Backend.txn`). */
export function checkTxn(ops: unknown): asserts ops is readonly TxnOp[] {
  if (!Array.isArray(ops) || ops.length === 0 || ops.length > MAX_TXN_OPS) {
    throw badParameter(`a transaction has 1 to ${MAX_TXN_OPS} operations`);
  }
  const keys = new Set<string>();
  for (const op of ops as TxnOp[]) {
    if (op === null || typeof op !== 'object')
      throw badParameter('a transaction operation must be an object');
    if (op.type === 'create' || op.type === 'put') checkWrite(op.key, op.value, op.opts);
    else if (op.type === 'cas') checkSwap(op.key, op.expectedModRev, op.value, op.opts);
    else if (op.type === 'delete') checkDelete(op.key, op);
    else
      throw badParameter(`unknown transaction operation ${JSON.stringify((op as { type?: unknown }).type)}`);
    if (keys.has(op.key)) throw badParameter(`key "${op.key}" is named twice in one transaction`);
    keys.add(op.key);
  }
}
