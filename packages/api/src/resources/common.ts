/**
 * Building blocks shared by every resource schema: the metadata block, names, durations,
 * timestamps, label selectors and the `{ kind, version, metadata, spec }` envelope.
 * Internal to `resources/`; the public surface is `resources/index.ts`.
 */
import { z } from 'zod';
import { tryParseDuration } from '../duration';

/** Longest resource name accepted (DNS name length, enough for emails and UUIDs). */
export const MAX_NAME_LENGTH = 253;

const BAD_NAME_CHARS = /[/\s\p{Cc}]/u;

/**
 * A resource name: non-empty, at most 253 characters, no `/` (names become backend keys),
 * no whitespace or control characters, not `.` or `..`.
 */
export const nameSchema = z
  .string()
  .min(1, { error: 'must not be empty' })
  .max(MAX_NAME_LENGTH, { error: `must be at most ${MAX_NAME_LENGTH} characters` })
  .refine((name) => !BAD_NAME_CHARS.test(name) && name !== '.' && name !== '..', {
    error: 'must not contain "/", spaces or control characters',
  });

/** A positive duration string such as `8h`, `30m` or `1h30m`. */
export const durationSchema = z
  .string({ error: 'expected a duration like "8h"' })
  .refine((text) => tryParseDuration(text) !== undefined, { error: 'expected a duration like "8h"' });

const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})$/;

/** True when `text` is an RFC 3339 timestamp (`2026-01-01T12:00:00Z`). */
export function isRfc3339(text: string): boolean {
  return RFC3339.test(text) && !Number.isNaN(Date.parse(text));
}

/** An RFC 3339 timestamp string. */
export const timestampSchema = z
  .string({ error: 'expected an RFC 3339 time like "2026-01-01T12:00:00Z"' })
  .refine(isRfc3339, { error: 'expected an RFC 3339 time like "2026-01-01T12:00:00Z"' });

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** A UUID in its canonical 8-4-4-4-12 hex form. */
export const uuidSchema = z
  .string({ error: 'expected a UUID' })
  .refine((text) => UUID.test(text), { error: 'expected a UUID' });

/** A list of non-empty strings. */
export const stringListSchema = z.array(z.string().min(1, { error: 'must not be empty' }));

/** A label value in a selector: one string or a list of strings. */
const labelValuesSchema = z.union([z.string(), z.array(z.string())], {
  error: 'expected a string or a list of strings',
});

/**
 * A label selector in a role: label name → value or values. `'*': '*'` matches every
 * resource; a value `'*'` matches any value; `^…$` values are regular expressions.
 */
export const labelSelectorSchema = z.record(
  z.string().min(1, { error: 'must not be empty' }),
  labelValuesSchema,
);

/** Labels on a resource: label name → value. */
export const labelsSchema = z.record(z.string().min(1, { error: 'must not be empty' }), z.string());

/** The metadata block; pass a stricter schema for names when a kind needs one. */
export function metadataSchema<N extends z.ZodType<string>>(name: N) {
  return z.strictObject({
    name,
    description: z.string().optional(),
    labels: labelsSchema.optional(),
    /** When the resource expires (RFC 3339); the backend deletes it then. */
    expires: timestampSchema.optional(),
    /** Opaque revision set by the server on read; send it back to update (compare-and-swap). */
    revision: z.string().optional(),
  });
}

/** The `{ kind, version, metadata, spec }` envelope for one kind and version. */
export function resourceSchema<
  K extends string,
  V extends string,
  M extends z.ZodType<{ name: string }>,
  S extends z.ZodType,
>(kind: K, version: V, metadata: M, spec: S) {
  return z.strictObject({
    kind: z.literal(kind),
    version: z.literal(version),
    metadata,
    spec,
  });
}

/**
 * Text shown in terminals and database clients, made inert: C0/C1 control characters
 * (escape sequences, carriage returns, bells) and bidirectional overrides become visible
 * escapes (`\\n`, `\\x1b`, `\\u202e`). Idempotent: the result has no control characters.
 *
 * @example
 *   escapeControlCharacters('stop\x1b[2J') // 'stop\\x1b[2J'
 */
export function escapeControlCharacters(text: string): string {
  return text.replace(/[\p{Cc}\u202a-\u202e\u2066-\u2069]/gu, (c) => {
    if (c === '\n') return '\\n';
    if (c === '\r') return '\\r';
    if (c === '\t') return '\\t';
    const code = c.codePointAt(0)!;
    return code <= 0xff
      ? `\\x${code.toString(16).padStart(2, '0')}`
      : `\\u${code.toString(16).padStart(4, '0')}`;
  });
}
