/**
 * Time-based one-time passwords (RFC 6238 over RFC 4226 HOTP) and the RFC 4648 base32 that
 * authenticator apps use for secrets. Defaults are what every authenticator app supports:
 * HMAC-SHA1, 6 digits, 30-second steps from the Unix epoch.
 *
 * `verifyTotp` returns the time step it matched; callers store it and pass it back as
 * `lastUsedStep`, so a code (or any code from an earlier step) can't be used twice.
 *
 * Who may import: `auth/` (login, MFA enrollment). Tested by `totp.test.ts` against the
 * RFC 6238 appendix B vectors and the RFC 4648 §10 base32 vectors.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { WardenError } from '@warden/api';

export type TotpAlgorithm = 'SHA1' | 'SHA256' | 'SHA512';

export interface TotpOptions {
  /** Code length, 6–8 (default 6). */
  digits?: number;
  /** Step length in seconds (default 30). */
  period?: number;
  /** HMAC hash (default SHA1). */
  algorithm?: TotpAlgorithm;
}

export interface VerifyTotpOptions extends TotpOptions {
  /** Current time, ms since the Unix epoch (from the caller's Clock). */
  now: number;
  /** Steps accepted either side of the current one, 0–10 (default 1: ±30 s of drift). */
  window?: number;
  /** Step of the last code this user had accepted: that step and older ones are refused. */
  lastUsedStep?: number;
}

/** The outcome of `verifyTotp`: the step matched, or why nothing was. */
export type TotpVerification =
  | { readonly ok: true; readonly step: number }
  | { readonly ok: false; readonly reason: 'malformed' | 'mismatch' | 'replayed' };

/** Bytes of secret `generateTotpSecret` makes: 160 bits, RFC 4226 §4's recommendation. */
export const TOTP_SECRET_BYTES = 20;

const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
const HASHES: Record<TotpAlgorithm, string> = { SHA1: 'sha1', SHA256: 'sha256', SHA512: 'sha512' };

function badParameter(message: string): WardenError {
  return new WardenError('WARDEN_ERR_BAD_PARAMETER', message);
}

/**
 * RFC 4648 base32, upper case, unpadded unless `padding` (authenticator apps want it unpadded).
 *
 * @example base32Encode(Buffer.from('foobar')) === 'MZXW6YTBOI'
 */
export function base32Encode(data: Uint8Array, options: { padding?: boolean } = {}): string {
  let out = '';
  let bits = 0;
  let value = 0;
  for (const byte of data) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += BASE32[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
    value &= (1 << bits) - 1;
  }
  if (bits > 0) out += BASE32[(value << (5 - bits)) & 31];
  if (options.padding) while (out.length % 8 !== 0) out += '=';
  return out;
}

/**
 * Decodes RFC 4648 base32. Case-insensitive; spaces and trailing `=` padding are ignored
 * (secrets are often shown in groups of four). Anything else is an error.
 *
 * @throws WardenError WARDEN_ERR_BAD_PARAMETER on a character outside the alphabet or an
 *   impossible length.
 * @example base32Decode('mzxw 6ytb oi======').toString() === 'foobar'
 */
export function base32Decode(text: string): Buffer {
  if (typeof text !== 'string') throw badParameter('base32 text must be a string');
  const clean = text.replace(/ /g, '').toUpperCase();
  const body = clean.replace(/=+$/, '');
  if (clean.length !== body.length && clean.length % 8 !== 0) {
    throw badParameter('invalid base32: wrong amount of "=" padding');
  }
  // 1, 3 and 6 trailing characters can't come from whole bytes.
  if ([1, 3, 6].includes(body.length % 8)) throw badParameter('invalid base32: impossible length');
  const out: number[] = [];
  let bits = 0;
  let value = 0;
  for (const ch of body) {
    const v = BASE32.indexOf(ch);
    if (v < 0) throw badParameter(`invalid base32: unexpected character ${JSON.stringify(ch)}`);
    value = ((value << 5) | v) & 0xffff;
    bits += 5;
    if (bits >= 8) {
      out.push((value >>> (bits - 8)) & 0xff);
      bits -= 8;
    }
  }
  return Buffer.from(out);
}

/** A new random TOTP secret, base32 (32 characters for 160 bits). */
export function generateTotpSecret(): string {
  return base32Encode(randomBytes(TOTP_SECRET_BYTES));
}

function secretBytes(secret: string | Uint8Array): Buffer {
  const bytes = typeof secret === 'string' ? base32Decode(secret) : Buffer.from(secret);
  if (bytes.length < 16) throw badParameter('TOTP secret must be at least 128 bits (RFC 4226 §4)');
  return bytes;
}

function resolveOptions(options: TotpOptions): Required<TotpOptions> {
  const digits = options.digits ?? 6;
  const period = options.period ?? 30;
  const algorithm = options.algorithm ?? 'SHA1';
  if (!Number.isInteger(digits) || digits < 6 || digits > 8) throw badParameter('TOTP digits must be 6–8');
  if (!Number.isInteger(period) || period < 1 || period > 300)
    throw badParameter('TOTP period must be 1–300 s');
  if (!Object.hasOwn(HASHES, algorithm))
    throw badParameter(`unknown TOTP algorithm ${JSON.stringify(algorithm)}`);
  return { digits, period, algorithm };
}

function hotp(key: Buffer, counter: number, digits: number, algorithm: TotpAlgorithm): string {
  const msg = Buffer.alloc(8);
  msg.writeBigUInt64BE(BigInt(counter));
  const mac = createHmac(HASHES[algorithm], key).update(msg).digest();
  // RFC 4226 §5.3 dynamic truncation.
  const offset = mac[mac.length - 1]! & 0x0f;
  const binary = (mac.readUInt32BE(offset) & 0x7fffffff) >>> 0;
  return (binary % 10 ** digits).toString().padStart(digits, '0');
}

/** The time step (RFC 6238's T) that `nowMs` falls in. */
export function totpStep(nowMs: number, period = 30): number {
  if (!Number.isFinite(nowMs) || nowMs < 0) throw badParameter('time must be a non-negative number of ms');
  return Math.floor(nowMs / 1000 / period);
}

/**
 * The code for a secret at a time (for enrollment checks and tests).
 *
 * @example generateTotp('GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ', 59_000, { digits: 8 }) === '94287082'
 */
export function generateTotp(secret: string | Uint8Array, nowMs: number, options: TotpOptions = {}): string {
  const o = resolveOptions(options);
  return hotp(secretBytes(secret), totpStep(nowMs, o.period), o.digits, o.algorithm);
}

/**
 * Checks a code against the steps within `window` of now. Returns the matched step (the
 * newest, if several match) so the caller can store it; a code whose only matches are at or
 * before `lastUsedStep` is `replayed`. Codes are compared in constant time and every step
 * in the window is computed, whatever matches.
 *
 * @throws WardenError WARDEN_ERR_BAD_PARAMETER for an undecodable secret or bad options
 *   (not for a bad code: that is `{ ok: false, reason: 'malformed' }`).
 * @example
 *   const r = verifyTotp(user.totpSecret, code, { now: clock.now(), lastUsedStep: user.totpLastStep });
 *   if (!r.ok) throw new WardenError('WARDEN_ERR_LOGIN_FAILED', 'invalid one-time code');
 *   await saveLastStep(user, r.step);
 */
export function verifyTotp(
  secret: string | Uint8Array,
  code: string,
  options: VerifyTotpOptions,
): TotpVerification {
  const o = resolveOptions(options);
  const window = options.window ?? 1;
  if (!Number.isInteger(window) || window < 0 || window > 10) throw badParameter('TOTP window must be 0–10');
  const last = options.lastUsedStep;
  if (last !== undefined && !Number.isSafeInteger(last))
    throw badParameter('lastUsedStep must be an integer');
  const key = secretBytes(secret);
  const current = totpStep(options.now, o.period);

  if (typeof code !== 'string' || code.length !== o.digits || !/^\d+$/.test(code)) {
    return { ok: false, reason: 'malformed' };
  }
  const given = Buffer.from(code);
  let fresh: number | undefined;
  let replayed = false;
  for (let step = current - window; step <= current + window; step++) {
    if (step < 0) continue;
    const match = timingSafeEqual(Buffer.from(hotp(key, step, o.digits, o.algorithm)), given);
    if (!match) continue;
    if (last !== undefined && step <= last) replayed = true;
    else fresh = step;
  }
  if (fresh !== undefined) return { ok: true, step: fresh };
  return { ok: false, reason: replayed ? 'replayed' : 'mismatch' };
}

/**
 * The `otpauth://` URI that authenticator apps scan as a QR code (Google's Key URI Format).
 *
 * @throws WardenError WARDEN_ERR_BAD_PARAMETER when issuer or account is empty or contains ":".
 * @example
 *   otpauthUri({ secret: 'JBSWY3DPEHPK3PXP', account: 'alice', issuer: 'Warden' });
 *   // 'otpauth://totp/Warden:alice?secret=JBSWY3DPEHPK3PXP&issuer=Warden&algorithm=SHA1&digits=6&period=30'
 */
export function otpauthUri(
  params: { secret: string; account: string; issuer: string } & TotpOptions,
): string {
  const o = resolveOptions(params);
  for (const [name, value] of [
    ['issuer', params.issuer],
    ['account', params.account],
  ] as const) {
    if (typeof value !== 'string' || value.length === 0)
      throw badParameter(`otpauth ${name} must not be empty`);
    if (value.includes(':')) throw badParameter(`otpauth ${name} must not contain ":"`);
  }
  // Normalise the secret (and prove it decodes) before publishing it.
  const secret = base32Encode(secretBytes(params.secret));
  const label = `${encodeURIComponent(params.issuer)}:${encodeURIComponent(params.account)}`;
  const query = [
    `secret=${secret}`,
    `issuer=${encodeURIComponent(params.issuer)}`,
    `algorithm=${o.algorithm}`,
    `digits=${o.digits}`,
    `period=${o.period}`,
  ].join('&');
  return `otpauth://totp/${label}?${query}`;
}
