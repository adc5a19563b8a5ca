/**
 * The error catalogue: every error a user can see has a stable code here, an HTTP status for
 * the RPC layer, and a one-line summary. Codes are never reused or renamed.
 * Who may import: everyone. Protocol mappings (HTTP, SSH, Postgres, MySQL) live with each
 * protocol and map from these codes.
 *
 * @example
 *   throw new WardenError('WARDEN_ERR_NOT_FOUND', 'user "alice" not found');
 */

export const errorCatalogue = {
  WARDEN_ERR_BAD_PARAMETER: { status: 400, summary: 'a parameter is missing or invalid' },
  WARDEN_ERR_BAD_CONFIG: { status: 400, summary: 'the configuration file is invalid' },
  WARDEN_ERR_BAD_RESOURCE: { status: 400, summary: 'the resource is invalid' },
  WARDEN_ERR_NOT_FOUND: { status: 404, summary: 'the object does not exist' },
  WARDEN_ERR_ALREADY_EXISTS: { status: 409, summary: 'the object already exists' },
  WARDEN_ERR_COMPARE_FAILED: { status: 412, summary: 'the object changed since it was read' },
  WARDEN_ERR_ACCESS_DENIED: { status: 403, summary: 'access denied' },
  WARDEN_ERR_LOCKED: { status: 403, summary: 'a lock is in force' },
  WARDEN_ERR_LOGIN_FAILED: { status: 401, summary: 'invalid credentials' },
  WARDEN_ERR_INVALID_TOKEN: { status: 401, summary: 'the token is invalid or expired' },
  WARDEN_ERR_RATE_LIMITED: { status: 429, summary: 'too many attempts' },
  WARDEN_ERR_NOT_LOGGED_IN: { status: 401, summary: 'not logged in' },
  WARDEN_ERR_BAD_CERTIFICATE: { status: 401, summary: 'the certificate is invalid' },
  WARDEN_ERR_COMPACTED: { status: 410, summary: 'the requested revision was compacted' },
  WARDEN_ERR_CLOSED: { status: 503, summary: 'the component is closed' },
  WARDEN_ERR_CONNECTION: { status: 502, summary: 'could not reach the server' },
  WARDEN_ERR_NOT_IMPLEMENTED: { status: 501, summary: 'not yet supported' },
  WARDEN_ERR_INTERNAL: { status: 500, summary: 'internal error' },
} as const satisfies Record<string, { status: number; summary: string }>;

export type ErrorCode = keyof typeof errorCatalogue;

/** An error with a stable code from the catalogue; `message` is what the user reads. */
export class WardenError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  /** Optional structured detail (never secrets). */
  readonly details: Readonly<Record<string, unknown>> | undefined;

  constructor(code: ErrorCode, message?: string, details?: Record<string, unknown>) {
    super(message ?? errorCatalogue[code].summary);
    this.name = 'WardenError';
    this.code = code;
    this.status = errorCatalogue[code].status;
    this.details = details;
  }

  toJSON(): { code: ErrorCode; message: string; details?: Record<string, unknown> } {
    return this.details
      ? { code: this.code, message: this.message, details: { ...this.details } }
      : { code: this.code, message: this.message };
  }
}

/** True when `e` is a WardenError, optionally with the given code. */
export function isWardenError(e: unknown, code?: ErrorCode): e is WardenError {
  return e instanceof WardenError && (code === undefined || e.code === code);
}

/** True when `code` names an entry of the catalogue (used when decoding RPC errors). */
export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === 'string' && Object.hasOwn(errorCatalogue, code);
}
