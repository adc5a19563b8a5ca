/**
 * The error catalogue: every error a user can see has a stable code here, an HTTP status for
 * the RPC layer, a one-line summary and what the user should do. Codes are never reused or
 * renamed; clients decide by code, never by message text. `docs/errors.md` lists the same
 * entries (test/errors-doc.test.ts keeps the two equal).
 * Who may import: everyone. Protocol mappings (HTTP, SSH, Postgres, MySQL) live with each
 * protocol and map from these codes.
 *
 * @example
 *   throw new WardenError('WARDEN_ERR_NOT_FOUND', 'user "alice" not found');
 */

export const errorCatalogue = {
  WARDEN_ERR_BAD_PARAMETER: {
    status: 400,
    summary: 'a parameter is missing or invalid',
    action: 'Correct the flag or field the message names; `--help` lists what each command accepts.',
  },
  WARDEN_ERR_BAD_CONFIG: {
    status: 400,
    summary: 'the configuration file is invalid',
    action: 'Fix the field and line the message names in warden.yaml, then start again.',
  },
  WARDEN_ERR_BAD_RESOURCE: {
    status: 400,
    summary: 'the resource is invalid',
    action: 'Fix the field and line the message names in the YAML or JSON document; nothing was changed.',
  },
  WARDEN_ERR_NOT_FOUND: {
    status: 404,
    summary: 'the object does not exist',
    action: 'Check the name (`wctl get KIND` lists what exists).',
  },
  WARDEN_ERR_ALREADY_EXISTS: {
    status: 409,
    summary: 'the object already exists',
    action: 'Pick another name, or overwrite it with `wctl create -f`.',
  },
  WARDEN_ERR_COMPARE_FAILED: {
    status: 412,
    summary: 'the object changed since it was read',
    action:
      'Someone else changed it meanwhile: read it again (`wctl edit` reopens it) and repeat your change.',
  },
  WARDEN_ERR_ACCESS_DENIED: {
    status: 403,
    summary: 'access denied',
    action:
      'Your roles do not allow this; the message names what is missing. Ask an administrator for a role that grants it.',
  },
  WARDEN_ERR_LOCKED: {
    status: 403,
    summary: 'a lock is in force',
    action:
      'A lock on you, one of your roles, your device, the login or the node refuses this until it expires or is removed; the message says which. Contact your administrator.',
  },
  WARDEN_ERR_LOCK_VIEW_STALE: {
    status: 403,
    summary: 'locking mode is strict and the lock view is stale',
    action:
      'This service cannot confirm that no lock applies (its view of locks is out of date) and the cluster uses `locking_mode: strict`. Try again shortly; administrators should check the connection to the backend.',
  },
  WARDEN_ERR_ROLE_VIEW_STALE: {
    status: 503,
    summary: "this service's view of roles is out of date",
    action:
      'This service cannot check your permissions while its view of roles is out of date. Try again shortly; administrators should check the connection to the backend.',
  },
  WARDEN_ERR_LOGIN_FAILED: {
    status: 401,
    summary: 'invalid credentials',
    action:
      'Check the user name, password and OTP code (the authenticator app and this machine must agree on the time).',
  },
  WARDEN_ERR_INVALID_TOKEN: {
    status: 401,
    summary: 'the token is invalid or expired',
    action:
      'Tokens work once and expire: ask an administrator for a new one (`wctl users reset NAME`, `wctl devices enroll`).',
  },
  WARDEN_ERR_RATE_LIMITED: {
    status: 429,
    summary: 'too many attempts',
    action: 'Wait for the time the message gives, then try again.',
  },
  WARDEN_ERR_AUDIT_UNAVAILABLE: {
    status: 503,
    summary: 'the audit log cannot record this, so it was refused',
    action:
      'Security events are never allowed unaudited: an administrator must fix the audit store (disk, database; see the server log and warden_audit_write_failures_total), then try again.',
  },
  WARDEN_ERR_NOT_LOGGED_IN: {
    status: 401,
    summary: 'not logged in',
    action: 'Log in with `wsh login` (or, for `wctl`, use the admin identity on the auth host).',
  },
  WARDEN_ERR_BAD_CERTIFICATE: {
    status: 401,
    summary: 'the certificate is invalid',
    action: 'Your certificate expired or is not from this cluster: log in again with `wsh login`.',
  },
  WARDEN_ERR_DEVICE_UNAUTHORIZED: {
    status: 403,
    summary: 'unauthorized device',
    action:
      'Device trust is required here: log in with `wsh login` on an enrolled device (`wsh device enroll`), so your certificate carries the device.',
  },
  WARDEN_ERR_DEVICE_TRUST_DISABLED: {
    status: 403,
    summary: 'device trust disabled by cluster settings',
    action:
      'Nothing to do: neither the cluster nor your roles use device trust, so `wsh login` skips device authentication.',
  },
  WARDEN_ERR_DEVICE_NOT_FOUND: {
    status: 404,
    summary: 'device not found',
    action:
      'This machine is not in the device inventory: ask an administrator to add it (`wctl devices add`) and to give you an enrollment token.',
  },
  WARDEN_ERR_DEVICE_NOT_ENROLLED: {
    status: 403,
    summary: 'device not enrolled',
    action: 'Enroll this machine with the token an administrator gives you: `wsh device enroll --token=…`.',
  },
  WARDEN_ERR_DEVICE_UNKNOWN_CREDENTIAL: {
    status: 403,
    summary: 'unknown device credential',
    action:
      'The device was enrolled again with another credential (or from another machine): enroll this machine again with a new token.',
  },
  WARDEN_ERR_DEVICE_ALREADY_AUGMENTED: {
    status: 403,
    summary: 'the certificate already carries device extensions',
    action: 'Log in again (`wsh login`) to authenticate the device.',
  },
  WARDEN_ERR_DEVICE_AUTHN_FAILED: {
    status: 403,
    summary: 'device authentication failed',
    action:
      'Log in again with `wsh login`. If it keeps failing, the TPM or the enrolled credential changed: ask an administrator to check `wctl audit search --type=device.authenticate`.',
  },
  WARDEN_ERR_DEVICE_MISMATCH: {
    status: 403,
    summary: 'the enrollment token is for another device',
    action:
      'Enroll on the machine the token was made for (the message names it), or ask for a token for this one (`wsh device asset-tag` prints its asset tag).',
  },
  WARDEN_ERR_DEVICE_ATTESTATION_FAILED: {
    status: 403,
    summary: 'the TPM attestation did not verify',
    action:
      "The TPM could not prove it holds the keys it presented (or its EK certificate is not trusted by the cluster). Use the machine's own TPM; administrators can check `ekcert_allowed_cas`.",
  },
  WARDEN_ERR_DEVICE_CEREMONY_EXPIRED: {
    status: 403,
    summary: 'the device ceremony expired or was already used',
    action: 'Run the command again (`wsh device enroll` with a new token, or `wsh login`).',
  },
  WARDEN_ERR_COMPACTED: {
    status: 410,
    summary: 'the requested revision was compacted',
    action: 'Internal: the watcher restarts from the current state by itself; report it if it repeats.',
  },
  WARDEN_ERR_CLOSED: {
    status: 503,
    summary: 'the component is closed',
    action: 'Warden is shutting down: try again once it has restarted.',
  },
  WARDEN_ERR_CONNECTION: {
    status: 502,
    summary: 'could not reach the server',
    action: 'Check the address, that the server runs and that the network lets you reach it.',
  },
  WARDEN_ERR_NOT_IMPLEMENTED: {
    status: 501,
    summary: 'not yet supported',
    action: 'This Warden does not serve that yet; check the version on both sides (`warden version`).',
  },
  WARDEN_ERR_INTERNAL: {
    status: 500,
    summary: 'internal error',
    action:
      'A bug or an unexpected failure: the server log has the details. Report it with the time it happened.',
  },
} as const satisfies Record<string, { status: number; summary: string; action: string }>;

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

/**
 * Codes that refuse an access for policy (RBAC, a lock, device trust), as opposed to a failure
 * to reach or parse something: SSH clients print them as `ssh: rejected: administratively
 * prohibited (…)`.
 */
export const ACCESS_DENIAL_CODES: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'WARDEN_ERR_ACCESS_DENIED',
  'WARDEN_ERR_LOCKED',
  'WARDEN_ERR_LOCK_VIEW_STALE',
  'WARDEN_ERR_DEVICE_UNAUTHORIZED',
]);

/** True when `e` is a WardenError refusing an access for policy (see ACCESS_DENIAL_CODES). */
export function isAccessDenial(e: unknown): e is WardenError {
  return e instanceof WardenError && ACCESS_DENIAL_CODES.has(e.code);
}
