/**
 * Bearer tokens (invite and enrollment tokens, session IDs): generation, the hash stored
 * instead of the token, constant-time comparison, and one-time tokens kept in the backend
 * (`OneTimeTokens`). Imports only `@warden/api`, the backend and the clock.
 * Who may import: any server folder that hands out or checks a token (auth, devicetrust).
 * Tested by `tokens.test.ts`.
 */

export { type FoundToken, OneTimeTokens, type TokenRecord } from './one-time';
export {
  constantTimeEqual,
  generateToken,
  hashToken,
  MAX_TOKEN_LENGTH,
  MIN_TOKEN_BYTES,
  TOKEN_BYTES,
  tokenMatchesHash,
} from './tokens';
