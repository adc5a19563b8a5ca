/**
 * Decoding of TPM_RC response codes into their names (TPM 2.0 Library Part 2, TPM_RC):
 * format 0 (version-1 errors, warnings, vendor and TPM 1.2 codes) and format 1 (errors about
 * a numbered handle, parameter or session).
 * Who may import: every module of this package; re-exported from the package root.
 * Tested by response-code.test.ts.
 */
import type { ResponseCodeInfo } from './errors';

const RC_VER1 = 0x100;
const RC_FMT1 = 0x080;
const RC_WARN = 0x900;

const VER1_NAMES: Record<number, string> = {
  0: 'INITIALIZE',
  1: 'FAILURE',
  3: 'SEQUENCE',
  11: 'PRIVATE',
  25: 'HMAC',
  32: 'DISABLED',
  33: 'EXCLUSIVE',
  36: 'AUTH_TYPE',
  37: 'AUTH_MISSING',
  38: 'POLICY',
  39: 'PCR',
  40: 'PCR_CHANGED',
  45: 'UPGRADE',
  46: 'TOO_MANY_CONTEXTS',
  47: 'AUTH_UNAVAILABLE',
  48: 'REBOOT',
  49: 'UNBALANCED',
  66: 'COMMAND_SIZE',
  67: 'COMMAND_CODE',
  68: 'AUTHSIZE',
  69: 'AUTH_CONTEXT',
  70: 'NV_RANGE',
  71: 'NV_SIZE',
  72: 'NV_LOCKED',
  73: 'NV_AUTHORIZATION',
  74: 'NV_UNINITIALIZED',
  75: 'NV_SPACE',
  76: 'NV_DEFINED',
  80: 'BAD_CONTEXT',
  81: 'CPHASH',
  82: 'PARENT',
  83: 'NEEDS_TEST',
  84: 'NO_RESULT',
  85: 'SENSITIVE',
};

const FMT1_NAMES: Record<number, string> = {
  1: 'ASYMMETRIC',
  2: 'ATTRIBUTES',
  3: 'HASH',
  4: 'VALUE',
  5: 'HIERARCHY',
  7: 'KEY_SIZE',
  8: 'MGF',
  9: 'MODE',
  10: 'TYPE',
  11: 'HANDLE',
  12: 'KDF',
  13: 'RANGE',
  14: 'AUTH_FAIL',
  15: 'NONCE',
  16: 'PP',
  18: 'SCHEME',
  21: 'SIZE',
  22: 'SYMMETRIC',
  23: 'TAG',
  24: 'SELECTOR',
  26: 'INSUFFICIENT',
  27: 'SIGNATURE',
  28: 'KEY',
  29: 'POLICY_FAIL',
  31: 'INTEGRITY',
  32: 'TICKET',
  33: 'RESERVED_BITS',
  34: 'BAD_AUTH',
  35: 'EXPIRED',
  36: 'POLICY_CC',
  37: 'BINDING',
  38: 'CURVE',
  39: 'ECC_POINT',
};

const WARN_NAMES: Record<number, string> = {
  1: 'CONTEXT_GAP',
  2: 'OBJECT_MEMORY',
  3: 'SESSION_MEMORY',
  4: 'MEMORY',
  5: 'SESSION_HANDLES',
  6: 'OBJECT_HANDLES',
  7: 'LOCALITY',
  8: 'YIELDED',
  9: 'CANCELED',
  10: 'TESTING',
  16: 'REFERENCE_H0',
  17: 'REFERENCE_H1',
  18: 'REFERENCE_H2',
  19: 'REFERENCE_H3',
  20: 'REFERENCE_H4',
  21: 'REFERENCE_H5',
  22: 'REFERENCE_H6',
  24: 'REFERENCE_S0',
  25: 'REFERENCE_S1',
  26: 'REFERENCE_S2',
  27: 'REFERENCE_S3',
  28: 'REFERENCE_S4',
  29: 'REFERENCE_S5',
  30: 'REFERENCE_S6',
  32: 'NV_RATE',
  33: 'LOCKOUT',
  34: 'RETRY',
  35: 'NV_UNAVAILABLE',
  127: 'NOT_USED',
};

/** Well-known response codes (base values, without handle/parameter/session numbers). */
export const TPM_RC = {
  SUCCESS: 0x000,
  INITIALIZE: 0x100,
  FAILURE: 0x101,
  COMMAND_CODE: 0x143,
  NV_UNINITIALIZED: 0x14a,
  HANDLE: 0x08b,
  VALUE: 0x084,
  AUTH_FAIL: 0x08e,
  BAD_AUTH: 0x0a2,
  INTEGRITY: 0x09f,
  POLICY_FAIL: 0x09d,
  SIZE: 0x095,
  OBJECT_MEMORY: 0x902,
  YIELDED: 0x908,
  TESTING: 0x90a,
  RETRY: 0x922,
  NV_RANGE: 0x146,
} as const;

const hex = (n: number, width = 3) => `0x${n.toString(16).padStart(width, '0')}`;

/**
 * Decodes a response code.
 *
 * @example
 *   decodeResponseCode(0x1c4) // { name: 'TPM_RC_VALUE', kind: 'format1', parameter: 1, base: 0x084, … }
 */
export function decodeResponseCode(rc: number): ResponseCodeInfo {
  rc >>>= 0;
  if (rc === 0) return { rc, name: 'TPM_RC_SUCCESS', base: 0, kind: 'success' };
  if (rc & RC_FMT1) {
    const base = (rc & 0x3f) | RC_FMT1;
    const name = `TPM_RC_${FMT1_NAMES[rc & 0x3f] ?? hex(base)}`;
    const n = (rc >>> 8) & 0xf;
    if (rc & 0x040) return { rc, name, base, kind: 'format1', parameter: n };
    if (n & 0x8) return { rc, name, base, kind: 'format1', session: n & 0x7 };
    return n === 0 ? { rc, name, base, kind: 'format1' } : { rc, name, base, kind: 'format1', handle: n };
  }
  if ((rc & RC_VER1) === 0) return { rc, name: `TPM_RC_TPM12_${hex(rc)}`, base: rc, kind: 'tpm12' };
  if (rc & 0x400) return { rc, name: `TPM_RC_VENDOR_${hex(rc)}`, base: rc, kind: 'vendor' };
  const code = rc & 0x7f;
  if (rc & 0x800) {
    const base = RC_WARN | code;
    return { rc, name: `TPM_RC_${WARN_NAMES[code] ?? hex(base)}`, base, kind: 'warning' };
  }
  const base = RC_VER1 | code;
  return { rc, name: `TPM_RC_${VER1_NAMES[code] ?? hex(base)}`, base, kind: 'format0' };
}

/** A short human description: `TPM_RC_VALUE (parameter 1, rc 0x1c4)`. */
export function describeResponseCode(info: ResponseCodeInfo): string {
  const where =
    info.parameter !== undefined
      ? `parameter ${info.parameter}, `
      : info.handle !== undefined
        ? `handle ${info.handle}, `
        : info.session !== undefined
          ? `session ${info.session}, `
          : '';
  return `${info.name} (${where}rc ${hex(info.rc)})`;
}

/** True for the warnings after which the same command should simply be sent again. */
export function isRetryable(rc: number): boolean {
  const info = decodeResponseCode(rc);
  return (
    info.kind === 'warning' &&
    (info.base === TPM_RC.RETRY || info.base === TPM_RC.YIELDED || info.base === TPM_RC.TESTING)
  );
}
