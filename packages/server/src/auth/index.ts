/**
 * The auth service: `AuthServer` (the API the proxy calls; every method checks the caller's
 * permission in one place, then runs the job's implementation), the implementations
 * (login, identify, users, resources, locks, devices, signing, audit search), and the
 * authentication primitives they use: password hashing and policy, TOTP, login rate limits,
 * and the local secrets and invite store. Composed in `bin/auth.ts`.
 * Who may import: `proxy/` (the API routes and tunnels call `AuthServer`), `web/` (the Web UI API) and `bin/`.
 * Tested by the `*.test.ts` files beside each module.
 */

export { AUDIT_SEARCH_DEFAULT_LIMIT, AuditSearch, type AuditSearchQuery } from './audit-search';
export { type AuthParts, AuthServer } from './auth-server';
export { BOT_TOKEN_PREFIX, type BotInfo, BotService, INVALID_BOT_TOKEN_MESSAGE } from './bots';
export { type AuthDeps, findRoles } from './deps';
export { DeviceAdmin } from './devices';
export { ADMIN_USER, Identifier, type IdentifierOptions } from './identify';
export { type Invite, LocalAuthStore, type LocalSecrets } from './local-auth';
export { LockService, type LockServiceOptions, type LockWrite } from './locks';
export { LoginService, type LoginServiceOptions } from './login';
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
export {
  isRefusedCredential,
  LOGIN_RATE_LIMIT_DEFAULTS,
  LoginRateLimiter,
  type LoginRateLimiterOptions,
  SOURCE_RATE_LIMIT_DEFAULTS,
  type SourceRateLimitOptions,
  SourceRateLimits,
} from './rate-limit';
export { type PutOptions, type PutResult, ResourceAdmin, type ResourceAdminOptions } from './resources';
export { SigningService } from './signing';
export { TokenAdmin } from './token-admin';
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
export { checkUserName, UserAdmin, type UserAdminOptions } from './users';
