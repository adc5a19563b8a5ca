/**
 * OpenSSH certificates (PROTOCOL.certkeys) for Ed25519 and ECDSA P-256 keys:
 * `ssh-ed25519-cert-v01@openssh.com` and `ecdsa-sha2-nistp256-cert-v01@openssh.com`,
 * signed by an Ed25519 (or ECDSA P-256) CA key. Encoding, signing, strict parsing and
 * verification (signature, CA, validity window, type, principal, critical options).
 * Who may import: the certs module; its public functions are re-exported from `@warden/api`.
 * Tested by `ssh-cert.test.ts` (cross-checked with `ssh-keygen -L`) and `ssh-cert-fuzz.test.ts`.
 */

import { createPublicKey, type KeyObject } from 'node:crypto';
import { WardenError } from '../errors';
import { pooledRandomBytes } from '../random';
import {
  encodeSshPublicKey,
  parseAuthorizedKey,
  parseSshPublicKey,
  readSshPublicKeyFields,
  type SshKeyType,
  splitKeyLine,
  sshPublicKeyFields,
  sshSign,
  sshVerify,
} from './ssh-key';
import { malformed, SshReader, SshWriter } from './ssh-wire';

export type SshCertType = 'user' | 'host';

/** The certificate algorithm names, by the type of the certified key. */
export const SshCertAlgorithms = {
  'ssh-ed25519': 'ssh-ed25519-cert-v01@openssh.com',
  'ecdsa-sha2-nistp256': 'ecdsa-sha2-nistp256-cert-v01@openssh.com',
} as const satisfies Record<SshKeyType, string>;

export type SshCertAlgorithm = (typeof SshCertAlgorithms)[SshKeyType];

/** `valid before` value meaning "forever" (OpenSSH prints it as `forever`). */
export const SSH_CERT_FOREVER = 0xffff_ffff_ffff_ffffn;

/**
 * The standard user-certificate extensions OpenSSH's sshd understands. Warden's user
 * certificates always carry `permit-pty` and `permit-port-forwarding`, the agent and X11 ones
 * only when a role allows them, and never `permit-user-rc` (see docs/ssh.md).
 */
export const SshStandardUserExtensions = [
  'permit-X11-forwarding',
  'permit-agent-forwarding',
  'permit-port-forwarding',
  'permit-pty',
  'permit-user-rc',
] as const;

const CERT_TYPE_CODE: Record<SshCertType, number> = { user: 1, host: 2 };

/** What the CA decides when it issues a certificate. */
export interface SshCertificateFields {
  /** The key being certified (public, or private: its public half is used). */
  publicKey: KeyObject;
  /** Random unless given; unsigned 64-bit. */
  serial?: bigint;
  type: SshCertType;
  keyId: string;
  /** Logins for user certificates, host names for host certificates. */
  validPrincipals: readonly string[];
  /** Seconds since the epoch (inclusive). */
  validAfter: bigint;
  /** Seconds since the epoch (exclusive), or SSH_CERT_FOREVER. */
  validBefore: bigint;
  /** Name → value ('' for a flag). Warden issues none. */
  criticalOptions?: Readonly<Record<string, string>>;
  /** Name → value ('' for a flag). Written sorted by name, as OpenSSH requires. */
  extensions?: Readonly<Record<string, string>>;
  /** 32 random bytes unless given (for tests). */
  nonce?: Uint8Array;
}

/** A parsed certificate. Times are seconds since the epoch, as on the wire. */
export interface SshCertificate {
  algorithm: SshCertAlgorithm;
  keyType: SshKeyType;
  nonce: Buffer;
  publicKey: KeyObject;
  serial: bigint;
  type: SshCertType;
  keyId: string;
  validPrincipals: string[];
  validAfter: bigint;
  validBefore: bigint;
  criticalOptions: Readonly<Record<string, string>>;
  extensions: Readonly<Record<string, string>>;
  /** The CA's public key. */
  signatureKey: KeyObject;
  /** The CA's public key as an SSH wire blob (compare these, not KeyObjects). */
  signatureKeyBlob: Buffer;
  /** The SSH signature blob. */
  signature: Buffer;
  /** The bytes the signature covers: the blob up to and including the signature key. */
  signedData: Buffer;
  /** The whole certificate blob. */
  blob: Buffer;
  /** The comment of the line it was parsed from ('' if none). */
  comment: string;
}

/**
 * Builds and signs a certificate with the CA's private key (Ed25519: `sign(null, data, key)`).
 *
 * @example
 *   const cert = signSshCertificate({ publicKey: userKey, type: 'user', keyId: 'alice',
 *     validPrincipals: ['root'], validAfter: 1767225540n, validBefore: 1767268800n,
 *     extensions: { 'permit-pty': '' } }, caPrivateKey);
 *   formatSshCertificate(cert) // 'ssh-ed25519-cert-v01@openssh.com AAAA…'
 */
export function signSshCertificate(fields: SshCertificateFields, caPrivateKey: KeyObject): SshCertificate {
  return signPreparedSshCertificate(prepareSshCertificate(fields), fields, caPrivateKey);
}

/**
 * The part of a certificate that is the same for every certificate of one holder (type, key
 * ID, principals, options), encoded once: a CA that certifies the same identity again (each
 * login, each device authentication) keeps it and signs with `signPreparedSshCertificate`.
 */
export interface PreparedSshCertificate {
  readonly type: SshCertType;
  readonly keyId: string;
  readonly validPrincipals: readonly string[];
  readonly criticalOptions: Readonly<Record<string, string>>;
  readonly extensions: Readonly<Record<string, string>>;
  /** Type code, key ID and principals, as written after the serial. */
  readonly head: Buffer;
  /** Critical options, extensions and the reserved field, as written after the validity. */
  readonly tail: Buffer;
}

/**
 * Checks and encodes the holder's part of a certificate (throws WARDEN_ERR_BAD_PARAMETER for
 * an empty principal).
 *
 * @example
 *   const prepared = prepareSshCertificate({ type: 'user', keyId: 'alice', validPrincipals: ['root'] });
 *   signPreparedSshCertificate(prepared, { publicKey, validAfter, validBefore }, caKey);
 */
export function prepareSshCertificate(
  fields: Pick<SshCertificateFields, 'type' | 'keyId' | 'validPrincipals' | 'criticalOptions' | 'extensions'>,
): PreparedSshCertificate {
  const criticalOptions = sortedOptions(fields.criticalOptions ?? {});
  const extensions = sortedOptions(fields.extensions ?? {});
  const head = new SshWriter()
    .uint32(CERT_TYPE_CODE[fields.type])
    .string(fields.keyId)
    .bytes(encodePrincipals(fields.validPrincipals))
    .toBuffer();
  const tail = new SshWriter()
    .bytes(encodeOptions(criticalOptions))
    .bytes(encodeOptions(extensions))
    .bytes(Buffer.alloc(0)) // reserved
    .toBuffer();
  return Object.freeze({
    type: fields.type,
    keyId: fields.keyId,
    validPrincipals: Object.freeze([...fields.validPrincipals]),
    criticalOptions,
    extensions,
    head,
    tail,
  });
}

/** Signs a certificate for `fields.publicKey` from a prepared holder's part. */
export function signPreparedSshCertificate(
  prepared: PreparedSshCertificate,
  fields: Pick<SshCertificateFields, 'publicKey' | 'validAfter' | 'validBefore' | 'nonce' | 'serial'>,
  caPrivateKey: KeyObject,
): SshCertificate {
  if (caPrivateKey.type !== 'private') throw new TypeError('signSshCertificate needs the CA private key');
  if (fields.validAfter >= fields.validBefore) {
    throw new WardenError('WARDEN_ERR_BAD_PARAMETER', 'certificate validity window is empty');
  }
  // One draw for what is random: the nonce (32 bytes) and the serial (8).
  const random =
    fields.nonce === undefined || fields.serial === undefined ? pooledRandomBytes(40) : undefined;
  const nonce = Buffer.from(fields.nonce ?? random!.subarray(0, 32));
  const serial = fields.serial ?? random!.readBigUInt64BE(32);
  const ca = caPublicParts(caPrivateKey);
  const w = new SshWriter();
  const keyType = encodeKeyPart(w, fields.publicKey, nonce);
  w.uint64(serial)
    .raw(prepared.head)
    .uint64(fields.validAfter)
    .uint64(fields.validBefore)
    .raw(prepared.tail)
    .bytes(ca.blob);
  const signedData = w.toBuffer();
  const signature = sshSign(caPrivateKey, signedData);
  const blob = new SshWriter().raw(signedData).bytes(signature).toBuffer();
  // What decodeSshCertificate(blob) would return, without parsing back what we just wrote.
  return {
    algorithm: SshCertAlgorithms[keyType],
    keyType,
    nonce,
    publicKey: fields.publicKey.type === 'private' ? createPublicKey(fields.publicKey) : fields.publicKey,
    serial,
    type: prepared.type,
    keyId: prepared.keyId,
    validPrincipals: [...prepared.validPrincipals],
    validAfter: fields.validAfter,
    validBefore: fields.validBefore,
    criticalOptions: prepared.criticalOptions,
    extensions: prepared.extensions,
    signatureKey: ca.key,
    signatureKeyBlob: ca.blob,
    signature: Buffer.from(signature),
    signedData: blob.subarray(0, signedData.length),
    blob,
    comment: '',
  };
}

/** A CA's public key and its SSH wire blob, computed once per CA key object. */
const caParts = new WeakMap<KeyObject, { key: KeyObject; blob: Buffer }>();
function caPublicParts(caPrivateKey: KeyObject): { key: KeyObject; blob: Buffer } {
  let parts = caParts.get(caPrivateKey);
  if (!parts) {
    const key = createPublicKey(caPrivateKey);
    parts = { key, blob: encodeSshPublicKey(key) };
    caParts.set(caPrivateKey, parts);
  }
  return parts;
}

/** The options as a plain object in the order they are written (sorted by name). */
function sortedOptions(options: Readonly<Record<string, string>>): Readonly<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const name of Object.keys(options).sort(compareNames)) out[name] = options[name] ?? '';
  return Object.freeze(out);
}

function encodeKeyPart(w: SshWriter, key: KeyObject, nonce: Uint8Array): SshKeyType {
  // The type string comes first, then the nonce, then the key's own fields.
  const { type, fields } = sshPublicKeyFields(key);
  w.string(SshCertAlgorithms[type]).bytes(nonce).raw(fields);
  return type;
}

function encodePrincipals(principals: readonly string[]): Buffer {
  const w = new SshWriter();
  for (const p of principals) {
    if (p === '') throw new WardenError('WARDEN_ERR_BAD_PARAMETER', 'empty certificate principal');
    w.string(p);
  }
  return w.toBuffer();
}

/** ASCII only: there, code unit order is byte order (and no buffer is needed to compare). */
const ASCII = /^[\x00-\x7f]*$/;

function compareNames(a: string, b: string): number {
  if (ASCII.test(a) && ASCII.test(b)) return a < b ? -1 : a > b ? 1 : 0;
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

function encodeOptions(options: Readonly<Record<string, string>>): Buffer {
  const w = new SshWriter();
  for (const name of Object.keys(options).sort(compareNames)) {
    const value = options[name] ?? '';
    w.string(name);
    // The value is itself a string inside the option's string (or empty).
    if (value === '') w.uint32(0);
    else w.uint32(Buffer.byteLength(value, 'utf8') + 4).string(value);
  }
  return w.toBuffer();
}

/** One line in OpenSSH's format: `<algorithm> <base64> [comment]` (what `-cert.pub` files hold). */
export function formatSshCertificate(
  cert: Pick<SshCertificate, 'algorithm' | 'blob'>,
  comment?: string,
): string {
  const line = `${cert.algorithm} ${cert.blob.toString('base64')}`;
  return comment ? `${line} ${comment}` : line;
}

/** Parses a certificate line (`<algorithm> <base64> [comment]`). Throws WARDEN_ERR_BAD_CERTIFICATE. */
export function parseSshCertificate(line: string): SshCertificate {
  const { type, blob, comment } = splitKeyLine(line);
  const cert = decodeSshCertificate(blob);
  if (cert.algorithm !== type) throw malformed(`line says ${type} but the certificate is ${cert.algorithm}`);
  return { ...cert, comment };
}

/** Parses a certificate wire blob; the whole blob must be consumed. */
export function decodeSshCertificate(blob: Uint8Array): SshCertificate {
  const r = new SshReader(blob);
  const name = r.string('certificate type');
  const keyType = (Object.keys(SshCertAlgorithms) as SshKeyType[]).find((k) => SshCertAlgorithms[k] === name);
  if (!keyType) throw malformed(`unsupported certificate type ${JSON.stringify(name)}`);
  const algorithm = SshCertAlgorithms[keyType];
  const nonce = r.bytes('nonce');
  const publicKey = readSshPublicKeyFields(r, keyType);
  const serial = r.uint64('serial');
  const typeCode = r.uint32('certificate type code');
  const type = typeCode === 1 ? 'user' : typeCode === 2 ? 'host' : undefined;
  if (!type) throw malformed(`unknown certificate type code ${typeCode}`);
  const keyId = r.string('key id');
  const validPrincipals = decodePrincipals(r.bytes('valid principals'));
  const validAfter = r.uint64('valid after');
  const validBefore = r.uint64('valid before');
  const criticalOptions = decodeOptions(r.bytes('critical options'), 'critical option');
  const extensions = decodeOptions(r.bytes('extensions'), 'extension');
  r.bytes('reserved');
  const signatureKeyBlob = r.bytes('signature key');
  const signedEnd = r.offset;
  const signature = r.bytes('signature');
  r.end('certificate');

  const signatureKey = parseSshPublicKey(signatureKeyBlob).key;
  const buf = Buffer.from(blob);
  return {
    algorithm,
    keyType,
    nonce,
    publicKey,
    serial,
    type,
    keyId,
    validPrincipals,
    validAfter,
    validBefore,
    criticalOptions,
    extensions,
    signatureKey,
    signatureKeyBlob,
    signature,
    signedData: buf.subarray(0, signedEnd),
    blob: buf,
    comment: '',
  };
}

function decodePrincipals(buf: Buffer): string[] {
  const r = new SshReader(buf);
  const out: string[] = [];
  while (r.remaining > 0) out.push(r.string('principal'));
  return out;
}

function decodeOptions(buf: Buffer, what: string): Readonly<Record<string, string>> {
  const r = new SshReader(buf);
  const entries: [string, string][] = [];
  let previous: string | undefined;
  while (r.remaining > 0) {
    const name = r.string(`${what} name`);
    const data = r.bytes(`${what} data`);
    if (previous !== undefined && compareNames(previous, name) >= 0) {
      throw malformed(`${what}s are not sorted or repeat ${JSON.stringify(name)}`);
    }
    previous = name;
    let value = '';
    if (data.length > 0) {
      const inner = new SshReader(data);
      value = inner.string(`${what} value`);
      inner.end(`${what} ${name}`);
    }
    entries.push([name, value]);
  }
  return Object.freeze(Object.fromEntries(entries));
}

export interface VerifySshCertificateOptions {
  /** Milliseconds since the epoch (from the caller's clock). */
  now: number;
  type: SshCertType;
  /** When given, it must be one of the certificate's principals. */
  principal?: string;
}

/**
 * Checks that `cert` was signed by one of `caPublicKeys` (KeyObjects or authorized_keys lines),
 * that the signature is valid, that it is of `type`, valid at `now` (valid after <= now <
 * valid before, as OpenSSH), lists `principal`, and has no critical options (Warden issues none
 * and enforces none, so it refuses them: fail closed). Returns the certificate.
 * Throws WardenError('WARDEN_ERR_BAD_CERTIFICATE', reason).
 *
 * @example
 *   verifySshCertificate(parseSshCertificate(line), [userCaKey], { now: clock.now(), type: 'user', principal: 'root' })
 */
export function verifySshCertificate(
  cert: SshCertificate | string,
  caPublicKeys: readonly (KeyObject | string)[],
  opts: VerifySshCertificateOptions,
): SshCertificate {
  const c = typeof cert === 'string' ? parseSshCertificate(cert) : cert;
  const bad = (reason: string) =>
    new WardenError('WARDEN_ERR_BAD_CERTIFICATE', `SSH certificate rejected: ${reason}`);

  const trusted = caPublicKeys.some((k) =>
    encodeSshPublicKey(typeof k === 'string' ? parseAuthorizedKey(k).key : k).equals(c.signatureKeyBlob),
  );
  if (!trusted) throw bad('not signed by a trusted certificate authority');
  let signatureOk = false;
  try {
    signatureOk = sshVerify(c.signatureKey, c.signedData, c.signature);
  } catch {
    signatureOk = false;
  }
  if (!signatureOk) throw bad('signature is invalid');
  if (c.type !== opts.type) throw bad(`${c.type} certificate used as a ${opts.type} certificate`);
  const nowSeconds = BigInt(Math.floor(opts.now / 1000));
  if (nowSeconds < c.validAfter) throw bad('not yet valid');
  if (nowSeconds >= c.validBefore) throw bad('expired');
  if (opts.principal !== undefined && !c.validPrincipals.includes(opts.principal)) {
    throw bad(`principal ${JSON.stringify(opts.principal)} is not in the certificate`);
  }
  const critical = Object.keys(c.criticalOptions);
  if (critical.length > 0) throw bad(`unsupported critical option ${JSON.stringify(critical[0])}`);
  return c;
}
