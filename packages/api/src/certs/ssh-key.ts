/**
 * OpenSSH public keys and signatures for the two key types Warden uses, `ssh-ed25519` and
 * `ecdsa-sha2-nistp256` (RFC 8709, RFC 5656): wire blob and authorized_keys line <-> node
 * `KeyObject`, SHA256 fingerprints as `ssh-keygen -l` prints them, and SSH signature blobs.
 * Who may import: the certs module; its public functions are re-exported from `@warden/api`.
 * Tested by `ssh-key.test.ts` against `ssh-keygen`.
 */

import { createHash, createPublicKey, type KeyObject, sign, verify } from 'node:crypto';
import { publicJwk } from './spki';
import { malformed, SshReader, SshWriter } from './ssh-wire';

export type SshKeyType = 'ssh-ed25519' | 'ecdsa-sha2-nistp256';

const ED25519 = 'ssh-ed25519';
const ECDSA_P256 = 'ecdsa-sha2-nistp256';
const P256_CURVE = 'nistp256';

/** The key type of a node key (public or private), or an error for a type Warden doesn't use. */
export function sshKeyType(key: KeyObject): SshKeyType {
  if (key.asymmetricKeyType === 'ed25519') return ED25519;
  if (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1')
    return ECDSA_P256;
  throw malformed(
    `unsupported key type ${key.asymmetricKeyType ?? key.type}${key.asymmetricKeyDetails?.namedCurve ? ` (${key.asymmetricKeyDetails.namedCurve})` : ''}; use Ed25519 or ECDSA P-256`,
  );
}

function jwkBytes(v: unknown): Buffer {
  if (typeof v !== 'string') throw malformed('key has no coordinates');
  return Buffer.from(v, 'base64url');
}

/** A key's type and encoded fields, once per key object (a CA certifies the same key again). */
const encodedFields = new WeakMap<KeyObject, { type: SshKeyType; fields: Buffer }>();

/** A key's type and its encoded fields (without the leading type string), kept per key object. */
export function sshPublicKeyFields(key: KeyObject): { readonly type: SshKeyType; readonly fields: Buffer } {
  let known = encodedFields.get(key);
  if (!known) {
    const type = sshKeyType(key);
    const jwk = publicJwk(key);
    const f = new SshWriter();
    if (type === ED25519) {
      f.bytes(jwkBytes(jwk.x));
    } else {
      f.string(P256_CURVE).bytes(Buffer.concat([Buffer.from([4]), jwkBytes(jwk.x), jwkBytes(jwk.y)]));
    }
    known = { type, fields: f.toBuffer() };
    encodedFields.set(key, known);
  }
  return known;
}

/** Writes the public key fields (without the leading type string) to `w`. */
export function writeSshPublicKeyFields(w: SshWriter, key: KeyObject): SshKeyType {
  const { type, fields } = sshPublicKeyFields(key);
  w.raw(fields);
  return type;
}

/** Reads the public key fields of a key of `type` (the type string was already read). */
export function readSshPublicKeyFields(r: SshReader, type: SshKeyType): KeyObject {
  if (type === ED25519) {
    const pk = r.bytes('ed25519 public key');
    if (pk.length !== 32) throw malformed('ed25519 public key must be 32 bytes');
    return importJwk({ kty: 'OKP', crv: 'Ed25519', x: pk.toString('base64url') });
  }
  const curve = r.string('curve name');
  if (curve !== P256_CURVE) throw malformed(`curve ${JSON.stringify(curve)} does not match ${type}`);
  const q = r.bytes('ecdsa public point');
  if (q.length !== 65 || q[0] !== 4) throw malformed('ecdsa public point must be 65 bytes, uncompressed');
  return importJwk({
    kty: 'EC',
    crv: 'P-256',
    x: q.subarray(1, 33).toString('base64url'),
    y: q.subarray(33).toString('base64url'),
  });
}

function importJwk(jwk: Record<string, string>): KeyObject {
  try {
    return createPublicKey({ key: jwk, format: 'jwk' });
  } catch {
    throw malformed('public key is not a valid point');
  }
}

export function isSshKeyType(s: string): s is SshKeyType {
  return s === ED25519 || s === ECDSA_P256;
}

/** The SSH wire blob of a public key (`string type, …`). */
export function encodeSshPublicKey(key: KeyObject): Buffer {
  const w = new SshWriter();
  w.string(sshKeyType(key));
  writeSshPublicKeyFields(w, key);
  return w.toBuffer();
}

/** Parses an SSH wire public key blob; the whole blob must be consumed. */
export function parseSshPublicKey(blob: Uint8Array): { type: SshKeyType; key: KeyObject } {
  const r = new SshReader(blob);
  const type = r.string('key type');
  if (!isSshKeyType(type)) throw malformed(`unsupported public key type ${JSON.stringify(type)}`);
  const key = readSshPublicKeyFields(r, type);
  r.end('public key');
  return { type, key };
}

/**
 * One authorized_keys / `.pub` line: `ssh-ed25519 AAAA… comment`.
 *
 * @example
 *   formatAuthorizedKey(caPublicKey, 'warden user CA') // 'ssh-ed25519 AAAAC3Nz… warden user CA'
 */
export function formatAuthorizedKey(key: KeyObject, comment?: string): string {
  const line = `${sshKeyType(key)} ${encodeSshPublicKey(key).toString('base64')}`;
  return comment ? `${line} ${comment}` : line;
}

/** Parses `type base64 [comment]` (no options prefix). Throws WARDEN_ERR_BAD_CERTIFICATE. */
export function parseAuthorizedKey(line: string): { type: SshKeyType; key: KeyObject; comment: string } {
  const { type, blob, comment } = splitKeyLine(line);
  if (!isSshKeyType(type)) throw malformed(`unsupported public key type ${JSON.stringify(type)}`);
  const parsed = parseSshPublicKey(blob);
  if (parsed.type !== type) throw malformed(`key line says ${type} but the key is ${parsed.type}`);
  return { ...parsed, comment };
}

/** Splits `type base64 [comment]` and decodes the base64 strictly. */
export function splitKeyLine(line: string): { type: string; blob: Buffer; comment: string } {
  const m = /^\s*(\S+)\s+([A-Za-z0-9+/]+={0,2})(?:\s+(.*?))?\s*$/.exec(line);
  if (!m) throw malformed('expected "<type> <base64> [comment]"');
  const [, type = '', b64 = '', comment = ''] = m;
  const blob = Buffer.from(b64, 'base64');
  if (blob.toString('base64').replace(/=+$/, '') !== b64.replace(/=+$/, '')) throw malformed('bad base64');
  return { type, blob, comment };
}

/** `SHA256:<base64, no padding>` of the key blob, as `ssh-keygen -l` prints it. */
export function sshFingerprint(keyOrBlob: KeyObject | Uint8Array): string {
  const blob = keyOrBlob instanceof Uint8Array ? keyOrBlob : encodeSshPublicKey(keyOrBlob);
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}

/** Signs `data` with an Ed25519 or ECDSA P-256 private key; returns the SSH signature blob. */
export function sshSign(privateKey: KeyObject, data: Uint8Array): Buffer {
  const type = sshKeyType(privateKey);
  const w = new SshWriter().string(type);
  if (type === ED25519) {
    w.bytes(sign(null, data, privateKey));
  } else {
    const rs = sign('sha256', data, { key: privateKey, dsaEncoding: 'ieee-p1363' });
    w.bytes(
      new SshWriter()
        .bytes(mpint(rs.subarray(0, 32)))
        .bytes(mpint(rs.subarray(32)))
        .toBuffer(),
    );
  }
  return w.toBuffer();
}

/**
 * Verifies an SSH signature blob over `data` with `publicKey`. False for a bad signature or a
 * signature algorithm that doesn't match the key; throws only for malformed blobs.
 */
export function sshVerify(publicKey: KeyObject, data: Uint8Array, signature: Uint8Array): boolean {
  const type = sshKeyType(publicKey);
  const r = new SshReader(signature);
  const alg = r.string('signature algorithm');
  const sig = r.bytes('signature');
  r.end('signature');
  if (alg !== type) return false;
  if (type === ED25519) {
    if (sig.length !== 64) return false;
    return verify(null, data, publicKey, sig);
  }
  const inner = new SshReader(sig);
  const rr = fromMpint(inner.bytes('ecdsa r'));
  const ss = fromMpint(inner.bytes('ecdsa s'));
  inner.end('ecdsa signature');
  return verify('sha256', data, { key: publicKey, dsaEncoding: 'ieee-p1363' }, Buffer.concat([rr, ss]));
}

/** A positive 32-byte big-endian integer as an SSH mpint (minimal, sign bit clear). */
function mpint(n: Uint8Array): Buffer {
  let i = 0;
  while (i < n.length && n[i] === 0) i++;
  const v = Buffer.from(n.subarray(i));
  return v.length > 0 && (v[0] as number) & 0x80 ? Buffer.concat([Buffer.from([0]), v]) : v;
}

/** An SSH mpint holding a positive number < 2^256, as 32 big-endian bytes. */
function fromMpint(b: Buffer): Buffer {
  if (b.length > 0 && (b[0] as number) & 0x80) throw malformed('negative mpint in signature');
  let i = 0;
  while (i < b.length && b[i] === 0) i++;
  const v = b.subarray(i);
  if (v.length > 32) throw malformed('mpint in signature too large');
  return Buffer.concat([Buffer.alloc(32 - v.length), v]);
}
