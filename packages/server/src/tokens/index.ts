/**
 * Bearer tokens (invite and enrollment tokens, session IDs): generation, the hash stored
 * instead of the token, and constant-time comparison. A leaf: imports only `@warden/api`.
 * Who may import: any server folder that hands out or checks a token (auth, devicetrust).
 * Tested by `tokens.test.ts`.
 */
export {
  constantTimeEqual,
  generateToken,
  hashToken,
  MAX_TOKEN_LENGTH,
  MIN_TOKEN_BYTES,
  TOKEN_BYTES,
  tokenMatchesHash,
} from './tokens';
