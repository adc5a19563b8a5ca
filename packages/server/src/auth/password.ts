/**
 * Password hashing with scrypt (memory-hard, in node:crypto) and the password policy.
 *
 * Stored form, PHC-like, parameters inside so they can be raised later without breaking
 * existing hashes (`needsRehash` tells the login service when to re-hash):
 *
 *   $scrypt$ln=15,r=8,p=1$<salt, base64 unpadded>$<key, base64 unpadded>
 *
 * Default parameters: N = 2^15 (ln=15), r = 8, p = 1, a 16-byte random salt and a 32-byte
 * key: 32 MiB of memory and about 100–200 ms per hash on one server core, which is
 * OWASP's recommended minimum for scrypt. Passwords are NFKC-normalised before hashing so
 * the same password typed through different input methods matches (NIST SP 800-63B §5.1.1.2).
 *
 * Who may import: `auth/` (login, user management). Tested by `password.test.ts`.
 */
import { randomBytes, scrypt, timingSafeEqual } from 'node:crypto';
import { WardenError } from '@warden/api';

/** scrypt cost parameters: N = 2^ln, block size r, parallelism p. */
export interface ScryptParams {
  readonly ln: number;
  readonly r: number;
  readonly p: number;
}

export const DEFAULT_SCRYPT_PARAMS: ScryptParams = Object.freeze({ ln: 15, r: 8, p: 1 });

/** Shortest password `checkPasswordPolicy` accepts, in characters (Unicode code points). */
export const PASSWORD_MIN_CHARS = 12;
/** Longest password accepted anywhere, in UTF-8 bytes (bounds the work one request can ask for). */
export const PASSWORD_MAX_BYTES = 1024;

const SALT_BYTES = 16;
const KEY_BYTES = 32;
/** Bounds on parameters read from a stored hash: never weaker than today's minimum, never absurd. */
const MIN_LN = 15;
const MAX_LN = 20;
const MAX_R = 32;
const MAX_P = 16;
/** Largest scrypt working set we agree to allocate (128 · r · N bytes). */
const MAX_SCRYPT_MEMORY = 256 * 1024 * 1024;

const ENCODED = /^\$scrypt\$ln=(\d{1,2}),r=(\d{1,2}),p=(\d{1,2})\$([A-Za-z0-9+/]+)\$([A-Za-z0-9+/]+)$/;

function b64(buf: Buffer): string {
  return buf.toString('base64').replace(/=+$/, '');
}

function checkParams(params: ScryptParams): string | undefined {
  const { ln, r, p } = params;
  if (!Number.isInteger(ln) || ln < MIN_LN || ln > MAX_LN) return `ln must be ${MIN_LN}–${MAX_LN}`;
  if (!Number.isInteger(r) || r < 1 || r > MAX_R) return `r must be 1–${MAX_R}`;
  if (!Number.isInteger(p) || p < 1 || p > MAX_P) return `p must be 1–${MAX_P}`;
  if (128 * r * 2 ** ln > MAX_SCRYPT_MEMORY) return 'parameters need more than 256 MiB';
  return undefined;
}

function derive(password: string, salt: Buffer, keylen: number, params: ScryptParams): Promise<Buffer> {
  const N = 2 ** params.ln;
  // OpenSSL needs 128·r·(N + 2) bytes for V plus 128·r·p for B; leave a little headroom.
  const maxmem = 128 * params.r * (N + 2 + params.p) + 1024 * 1024;
  return new Promise((resolve, reject) => {
    scrypt(
      Buffer.from(password.normalize('NFKC'), 'utf8'),
      salt,
      keylen,
      { N, r: params.r, p: params.p, maxmem },
      (err, key) => (err ? reject(err) : resolve(key)),
    );
  });
}

function byteLength(password: string): number {
  return Buffer.byteLength(password, 'utf8');
}

interface ParsedHash {
  params: ScryptParams;
  salt: Buffer;
  key: Buffer;
}

function parseHash(encoded: string): ParsedHash | undefined {
  const m = typeof encoded === 'string' ? ENCODED.exec(encoded) : null;
  if (!m) return undefined;
  const params = { ln: Number(m[1]), r: Number(m[2]), p: Number(m[3]) };
  if (checkParams(params) !== undefined) return undefined;
  const salt = Buffer.from(m[4]!, 'base64');
  const key = Buffer.from(m[5]!, 'base64');
  if (salt.length < 16 || salt.length > 64 || key.length < 16 || key.length > 64) return undefined;
  return { params, salt, key };
}

/**
 * Hashes a password with a fresh random salt. Does not apply the policy (call
 * `checkPasswordPolicy` where passwords are set); refuses only empty or over-long input.
 *
 * @throws WardenError WARDEN_ERR_BAD_PARAMETER for an empty or over-long password, or bad params.
 * @example
 *   const stored = await hashPassword('correct horse battery staple');
 *   // '$scrypt$ln=15,r=8,p=1$…$…'
 */
export async function hashPassword(
  password: string,
  params: ScryptParams = DEFAULT_SCRYPT_PARAMS,
): Promise<string> {
  if (typeof password !== 'string' || password.length === 0) {
    throw new WardenError('WARDEN_ERR_BAD_PARAMETER', 'password must not be empty');
  }
  if (byteLength(password) > PASSWORD_MAX_BYTES) {
    throw new WardenError(
      'WARDEN_ERR_BAD_PARAMETER',
      `password must be at most ${PASSWORD_MAX_BYTES} bytes long`,
    );
  }
  const bad = checkParams(params);
  if (bad !== undefined)
    throw new WardenError('WARDEN_ERR_BAD_PARAMETER', `invalid scrypt parameters: ${bad}`);
  const salt = randomBytes(SALT_BYTES);
  const key = await derive(password, salt, KEY_BYTES, params);
  return `$scrypt$ln=${params.ln},r=${params.r},p=${params.p}$${b64(salt)}$${b64(key)}`;
}

/**
 * Checks a password against a stored hash in constant time (with respect to the key),
 * using the parameters recorded in the hash. Wrong, empty, non-string or over-long
 * passwords are simply `false`.
 *
 * @throws WardenError WARDEN_ERR_INTERNAL when the stored hash is malformed (fail closed, loudly).
 * @example
 *   if (!(await verifyPassword(input, user.passwordHash))) throw loginFailed();
 */
export async function verifyPassword(password: string, encoded: string): Promise<boolean> {
  const parsed = parseHash(encoded);
  if (parsed === undefined) {
    throw new WardenError(
      'WARDEN_ERR_INTERNAL',
      'stored password hash is malformed or uses unsupported parameters',
    );
  }
  if (typeof password !== 'string' || password.length === 0 || byteLength(password) > PASSWORD_MAX_BYTES) {
    return false;
  }
  const key = await derive(password, parsed.salt, parsed.key.length, parsed.params);
  return timingSafeEqual(key, parsed.key);
}

const DECOY_SALT = Buffer.alloc(SALT_BYTES);

/**
 * Spends the same work as `verifyPassword` with default parameters and returns false: for
 * unknown users, so response time doesn't reveal whether a user exists.
 */
export async function verifyPasswordForUnknownUser(password: string): Promise<false> {
  const input = typeof password === 'string' && byteLength(password) <= PASSWORD_MAX_BYTES ? password : '';
  await derive(input, DECOY_SALT, KEY_BYTES, DEFAULT_SCRYPT_PARAMS);
  return false;
}

/**
 * True when a stored hash is weaker than `params` (or unreadable): re-hash it after the
 * next successful login.
 */
export function needsRehash(encoded: string, params: ScryptParams = DEFAULT_SCRYPT_PARAMS): boolean {
  const parsed = parseHash(encoded);
  if (parsed === undefined) return true;
  const have = parsed.params;
  return have.ln < params.ln || have.r < params.r || have.p < params.p || parsed.key.length < KEY_BYTES;
}

/**
 * The password policy for new passwords: at least 12 characters (Unicode code points, after
 * NFKC normalisation), at most 1024 UTF-8 bytes, valid Unicode without control characters,
 * not only whitespace. Length over composition rules, as NIST SP 800-63B recommends.
 *
 * @throws WardenError WARDEN_ERR_BAD_PARAMETER saying which rule failed.
 * @example
 *   checkPasswordPolicy('hunter2'); // throws: password must be at least 12 characters long
 */
export function checkPasswordPolicy(password: string): void {
  const problem = passwordPolicyProblem(password);
  if (problem !== undefined) throw new WardenError('WARDEN_ERR_BAD_PARAMETER', problem);
}

function passwordPolicyProblem(password: string): string | undefined {
  if (typeof password !== 'string') return 'password must be a string';
  if (byteLength(password) > PASSWORD_MAX_BYTES)
    return `password must be at most ${PASSWORD_MAX_BYTES} bytes long`;
  if (/\p{Cc}/u.test(password)) return 'password must not contain control characters';
  if (/\p{Cs}/u.test(password)) return 'password must be valid Unicode text (it has a lone surrogate)';
  if ([...password.normalize('NFKC')].length < PASSWORD_MIN_CHARS) {
    return `password must be at least ${PASSWORD_MIN_CHARS} characters long`;
  }
  if (password.trim().length === 0) return 'password must not be only whitespace';
  return undefined;
}
