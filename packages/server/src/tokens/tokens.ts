/**
 * Bearer secrets (enrollment tokens, invite tokens, session IDs): generation, the hash that is
 * stored instead of the token, and constant-time comparison. Tokens are 256 random bits,
 * base64url without padding (43 characters), safe in URLs, file names and shell arguments.
 * Only `hashToken(token)` is ever stored or logged, so a backend dump yields no usable token.
 *
 * Who may import: through `tokens/index.ts`, any service that hands out tokens.
 * Tested by `tokens.test.ts`.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { WardenError } from '@warden/api';

/** Bytes of randomness in a token by default (256 bits). */
export const TOKEN_BYTES = 32;
/** Fewest bytes `generateToken` accepts (128 bits). */
export const MIN_TOKEN_BYTES = 16;
/** Longest token `hashToken` accepts, in characters; longer input is not one of ours. */
export const MAX_TOKEN_LENGTH = 512;

/**
 * A new random token: `bytes` of randomness (default 32, at least 16), base64url unpadded.
 *
 * @example generateToken(); // 'Qx3V…' (43 characters)
 */
export function generateToken(bytes: number = TOKEN_BYTES): string {
  if (!Number.isInteger(bytes) || bytes < MIN_TOKEN_BYTES || bytes > 256) {
    throw new WardenError(
      'WARDEN_ERR_BAD_PARAMETER',
      `token size must be ${MIN_TOKEN_BYTES}–256 bytes, got ${bytes}`,
    );
  }
  return randomBytes(bytes).toString('base64url');
}

/**
 * The SHA-256 of a token, lower-case hex: what the backend stores and looks tokens up by.
 * Tokens have full entropy, so a fast hash is enough (no salt or stretching needed).
 *
 * @throws WardenError WARDEN_ERR_INVALID_TOKEN for an empty, non-string or over-long token.
 * @example const key = `/tokens/${hashToken(token)}`;
 */
export function hashToken(token: string): string {
  if (typeof token !== 'string' || token.length === 0 || token.length > MAX_TOKEN_LENGTH) {
    throw new WardenError('WARDEN_ERR_INVALID_TOKEN', 'the token is empty or malformed');
  }
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/**
 * Compares two secrets in time that doesn't depend on where they differ (both are hashed
 * first, so the length of the expected value doesn't leak either).
 *
 * @example if (!constantTimeEqual(given, expected)) throw invalidToken();
 */
export function constantTimeEqual(a: string, b: string): boolean {
  if (typeof a !== 'string' || typeof b !== 'string') return false;
  const da = createHash('sha256').update(a, 'utf8').digest();
  const db = createHash('sha256').update(b, 'utf8').digest();
  return timingSafeEqual(da, db) && a === b;
}

/**
 * True when `token` hashes to `storedHash` (compared in constant time). Malformed tokens
 * are simply false.
 */
export function tokenMatchesHash(token: string, storedHash: string): boolean {
  if (typeof token !== 'string' || token.length === 0 || token.length > MAX_TOKEN_LENGTH) return false;
  return constantTimeEqual(hashToken(token), storedHash);
}
