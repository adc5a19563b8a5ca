/**
 * `kind: lock`, version v2: blocks certificate issuance and every current and future access
 * matching its target (user, role, login, node, device; all given fields must match).
 * Named by a UUID. Internal to `resources/`; the public surface is `resources/index.ts`.
 */
import { z } from 'zod';
import {
  escapeControlCharacters,
  metadataSchema,
  resourceSchema,
  timestampSchema,
  uuidSchema,
} from './common';

/** Longest lock message (it is written into SSH terminals and database clients). */
export const MAX_LOCK_MESSAGE_LENGTH = 1024;

/** Target fields in the order they appear in messages (`User:"alice", Role:"dev"`). */
export const LOCK_TARGET_FIELDS = ['user', 'role', 'login', 'node', 'device'] as const;
export type LockTargetField = (typeof LOCK_TARGET_FIELDS)[number];

const targetValue = z.string().min(1, { error: 'must not be empty' }).optional();

export const lockTargetSchema = z
  .strictObject({
    user: targetValue,
    role: targetValue,
    login: targetValue,
    node: targetValue,
    device: targetValue,
  })
  .refine((t) => LOCK_TARGET_FIELDS.some((f) => t[f] !== undefined), {
    error: `needs at least one of ${LOCK_TARGET_FIELDS.join(', ')}`,
  });
export type LockTarget = z.output<typeof lockTargetSchema>;

export const lockSpecSchema = z.strictObject({
  target: lockTargetSchema,
  /**
   * Shown to the locked-out user after `lock targeting … is in force: `, in their terminal or
   * database client: control characters are escaped when the lock is made (and when read).
   */
  message: z
    .string()
    .max(MAX_LOCK_MESSAGE_LENGTH, { error: `must be at most ${MAX_LOCK_MESSAGE_LENGTH} characters` })
    .transform(escapeControlCharacters)
    .optional(),
  /** When the lock stops being in force (RFC 3339); absent: until deleted. */
  expires: timestampSchema.optional(),
  /** Set by the server. */
  created_at: timestampSchema.optional(),
  /** Set by the server: the user who created the lock. */
  created_by: z.string().optional(),
});

export const lockV2Schema = resourceSchema('lock', 'v2', metadataSchema(uuidSchema), lockSpecSchema);
export type LockResource = z.output<typeof lockV2Schema>;
