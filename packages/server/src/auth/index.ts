/**
 * Authentication primitives: password hashing and policy (`password.ts`), TOTP
 * (`totp.ts`), login rate limiting (`rate-limit.ts`) and bearer tokens (`tokens.ts`).
 * The login service that combines them lives beside them.
 * Who may import: server services (auth, devicetrust, proxy) and `bin/`; never the client.
 * Tested by the `*.test.ts` files beside each module.
 */

export { ADMIN_USER, AuthServer, type AuthServerOptions, type Caller } from './auth-server';
export { type Invite, LocalAuthStore, type LocalSecrets } from './local-auth';
export {
  checkPasswordPolicy,
  DEFAULT_SCRYPT_PARAMS,
  hashPassword,
  needsRehash,
  PASSWORD_MAX_BYTES,
  PASSWORD_MIN_CHARS,
  type ScryptParams,
  verifyPassword,
  verifyPasswordForUnknownUser,
} from './password';
export { LOGIN_RATE_LIMIT_DEFAULTS, LoginRateLimiter, type LoginRateLimiterOptions } from './rate-limit';
export {
  constantTimeEqual,
  generateToken,
  hashToken,
  MAX_TOKEN_LENGTH,
  MIN_TOKEN_BYTES,
  TOKEN_BYTES,
  tokenMatchesHash,
} from './tokens';
export {
  base32Decode,
  base32Encode,
  generateTotp,
  generateTotpSecret,
  otpauthUri,
  TOTP_SECRET_BYTES,
  type TotpAlgorithm,
  type TotpOptions,
  type TotpVerification,
  totpStep,
  type VerifyTotpOptions,
  verifyTotp,
} from './totp';
