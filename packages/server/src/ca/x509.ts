/**
 * X.509 building blocks for the CAs: self-signed ECDSA P-256 CA certificates (made once, with
 * @peculiar/x509) and leaf certificates (user client certificates, host and database TLS
 * certificates), written as DER here: the hot path of logins and database connections.
 * Warden's own extensions (identity, device) use big-arc OIDs (`encodeOid` from @warden/api
 * writes them exactly; see packages/api/src/certs/x509-der.ts).
 * Internal to `ca/`. Tested through `authorities.test.ts` and `issue.test.ts` (openssl verify).
 */

import 'reflect-metadata';
import { type KeyObject, sign, webcrypto } from 'node:crypto';
import { isIPv6 } from 'node:net';
import * as x509 from '@peculiar/x509';
import {
  type CertificateExtension,
  derTlv,
  encodeExtension,
  encodeOid,
  pooledRandomBytes,
  spkiFromKey,
} from '@warden/api';
import type { PrivateKey } from './private-key';

const ECDSA_SHA256 = { name: 'ECDSA', hash: 'SHA-256' } as const;
// @peculiar/x509's types name the DOM's Crypto and CryptoKey; node's webcrypto is the same thing.
type PeculiarCrypto = NonNullable<Parameters<typeof x509.X509CertificateGenerator.create>[1]>;
type PeculiarCryptoKey = x509.X509CertificateCreateWithKeyParams['signingKey'];
const crypto = webcrypto as unknown as PeculiarCrypto;

/** A name in @peculiar/x509's JSON form: one RDN per entry, e.g. `[{ CN: ['alice'] }, { O: ['dev'] }]`. */
export type JsonName = Record<string, string[]>[];

/** A CA's X.509 half, ready to sign. */
export interface X509Signer {
  key: PrivateKey;
  webKey: webcrypto.CryptoKey;
  cert: x509.X509Certificate;
}

/** A positive 128-bit serial number (first byte in 0x40..0x7f: positive and minimal). */
function randomSerial(): Buffer {
  const b = pooledRandomBytes(16);
  b[0] = ((b[0] as number) & 0x3f) | 0x40;
  return b;
}

function spkiDer(key: KeyObject): Buffer {
  return spkiFromKey(key);
}

/** PEM of a DER certificate (written here so nothing re-encodes the DER on the way). */
export function certificatePem(der: Uint8Array): string {
  const b64 = Buffer.from(der.buffer, der.byteOffset, der.byteLength).toString('base64');
  let lines = '';
  for (let at = 0; at < b64.length; at += 64) lines += `${b64.slice(at, at + 64)}\n`;
  return `-----BEGIN CERTIFICATE-----\n${lines || '\n'}-----END CERTIFICATE-----\n`;
}

/** A self-signed CA certificate for `key` (ECDSA P-256): CA:TRUE, pathlen 0, keyCertSign. */
export async function createCaCertificate(opts: {
  key: PrivateKey;
  subject: JsonName;
  notBefore: Date;
  notAfter: Date;
}): Promise<string> {
  const publicKey = await crypto.subtle.importKey(
    'spki',
    spkiDer(opts.key.publicKey),
    { name: 'ECDSA', namedCurve: 'P-256' },
    true,
    ['verify'],
  );
  const cert = await x509.X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: randomSerial().toString('hex'),
      name: opts.subject,
      notBefore: opts.notBefore,
      notAfter: opts.notAfter,
      keys: {
        privateKey: (await opts.key.toWebCryptoSigningKey()) as unknown as PeculiarCryptoKey,
        publicKey,
      },
      signingAlgorithm: ECDSA_SHA256,
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(
          x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature,
          true,
        ),
        await x509.SubjectKeyIdentifierExtension.create(spkiDer(opts.key.publicKey), false, crypto),
      ],
    },
    crypto,
  );
  return certificatePem(new Uint8Array(cert.rawData));
}

export interface LeafOptions {
  ca: X509Signer;
  subject: JsonName;
  /** The subject's public key (ECDSA P-256 or Ed25519). */
  publicKey: KeyObject;
  notBefore: Date;
  notAfter: Date;
  usages: readonly ('clientAuth' | 'serverAuth')[];
  dnsNames?: readonly string[];
  ipAddresses?: readonly string[];
  /** Warden extensions (identity, device), never critical. */
  wardenExtensions?: readonly CertificateExtension[];
}

/** What a leaf needs of its CA, read once per CA certificate. */
interface IssuerParts {
  /** The CA certificate's subject, DER, as the leaf's issuer. */
  name: Buffer;
  /** AuthorityKeyIdentifier extension (the CA's subject key identifier). */
  aki: Buffer;
}
const issuers = new WeakMap<x509.X509Certificate, IssuerParts>();

function issuerParts(cert: x509.X509Certificate): IssuerParts {
  let parts = issuers.get(cert);
  if (!parts) {
    const keyId = cert.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId;
    if (!keyId) throw new Error('internal: the CA certificate has no subject key identifier');
    parts = {
      name: Buffer.from(cert.subjectName.toArrayBuffer()),
      aki: encodeExtension({
        oid: '2.5.29.35',
        critical: false,
        value: der(0x30, der(0x80, Buffer.from(keyId, 'hex'))),
      }),
    };
    issuers.set(cert, parts);
  }
  return parts;
}

const der = (tag: number, ...content: Uint8Array[]): Buffer =>
  derTlv(tag, content.length === 1 ? content[0]! : Buffer.concat(content));

/** Attribute types a Warden subject may use. */
const NAME_OIDS: Record<string, string> = {
  CN: '2.5.4.3',
  O: '2.5.4.10',
  OU: '2.5.4.11',
  C: '2.5.4.6',
  L: '2.5.4.7',
  ST: '2.5.4.8',
};
const nameOids = new Map(Object.entries(NAME_OIDS).map(([k, oid]) => [k, der(0x06, encodeOid(oid))]));
/** Values of these characters only are PrintableStrings (as @peculiar/x509 writes them); others UTF8String. */
const PRINTABLE = /^[A-Za-z0-9 '()+,\-./:=?]*$/;

/** A Name: one RDN per entry, each attribute written as given (no escaping, no parsing). */
function encodeName(name: JsonName): Buffer {
  const rdns = name.map((rdn) => {
    const attrs: Buffer[] = [];
    for (const [type, values] of Object.entries(rdn)) {
      const oid = nameOids.get(type);
      if (!oid) throw new Error(`internal: unsupported name attribute ${type}`);
      for (const v of values) {
        const value = PRINTABLE.test(v)
          ? der(0x13, Buffer.from(v, 'latin1'))
          : der(0x0c, Buffer.from(v, 'utf8'));
        attrs.push(der(0x30, oid, value));
      }
    }
    return der(0x31, ...attrs);
  });
  return der(0x30, ...rdns);
}

/** UTCTime through 2049, GeneralizedTime after (RFC 5280 §4.1.2.5), whole seconds. */
function encodeTime(d: Date): Buffer {
  const iso = d.toISOString(); // YYYY-MM-DDTHH:MM:SS.sssZ
  const digits = `${iso.slice(0, 4)}${iso.slice(5, 7)}${iso.slice(8, 10)}${iso.slice(11, 13)}${iso.slice(14, 16)}${iso.slice(17, 19)}Z`;
  const year = d.getUTCFullYear();
  if (year >= 1950 && year < 2050) return der(0x17, Buffer.from(digits.slice(2), 'latin1'));
  return der(0x18, Buffer.from(digits, 'latin1'));
}

/** An IPv4 or IPv6 address as the 4 or 16 bytes of an iPAddress name. */
export function ipBytes(ip: string): Buffer {
  const v4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(ip);
  if (v4) {
    const b = v4.slice(1).map(Number);
    if (b.some((x) => x > 255)) throw new Error(`invalid IP address ${ip}`);
    return Buffer.from(b);
  }
  if (!isIPv6(ip)) throw new Error(`invalid IP address ${ip}`);
  // A trailing dotted quad (::ffff:1.2.3.4) becomes its two hex groups.
  const text = ip.replace(/(\d+\.\d+\.\d+\.\d+)$/, (quad) => {
    const b = ipBytes(quad);
    return `${((b[0]! << 8) | b[1]!).toString(16)}:${((b[2]! << 8) | b[3]!).toString(16)}`;
  });
  const groups = (part: string) => (part === '' ? [] : part.split(':').map((h) => Number.parseInt(h, 16)));
  const [head = '', rest] = text.split('::');
  const left = groups(head);
  const right = rest === undefined ? [] : groups(rest);
  const words =
    rest === undefined ? left : [...left, ...Array(8 - left.length - right.length).fill(0), ...right];
  if (words.length !== 8) throw new Error(`invalid IP address ${ip}`);
  const out = Buffer.alloc(16);
  for (let i = 0; i < 8; i++) out.writeUInt16BE(words[i]!, i * 2);
  return out;
}

const BASIC_CONSTRAINTS_LEAF = encodeExtension({ oid: '2.5.29.19', critical: true, value: der(0x30) });
const KEY_USAGE_DIGITAL_SIGNATURE = encodeExtension({
  oid: '2.5.29.15',
  critical: true,
  value: Buffer.from([0x03, 0x02, 0x07, 0x80]),
});
const EKU_OIDS = { serverAuth: '1.3.6.1.5.5.7.3.1', clientAuth: '1.3.6.1.5.5.7.3.2' } as const;
const VERSION_3 = Buffer.from([0xa0, 0x03, 0x02, 0x01, 0x02]);
const ECDSA_WITH_SHA256 = der(0x30, der(0x06, encodeOid('1.2.840.10045.4.3.2')));

/**
 * What a leaf certificate says besides its key, serial and validity: the subject and the
 * extensions (CA:FALSE, digitalSignature, the EKUs, the issuer's key ID, SANs, Warden's
 * extensions), encoded once. A CA that certifies the same holder again keeps it
 * (`CertAuthorities` does for user certificates) and signs with `signLeafCertificate`.
 */
export interface LeafParts {
  /** The CA certificate these parts were made for (its key ID is in them). */
  readonly caCert: x509.X509Certificate;
  /** The subject Name, DER. */
  readonly subject: Buffer;
  /** The `[3] Extensions` field, DER. */
  readonly extensions: Buffer;
}

export function leafParts(opts: Omit<LeafOptions, 'publicKey' | 'notBefore' | 'notAfter'>): LeafParts {
  const issuer = issuerParts(opts.ca.cert);
  const sans = [
    ...(opts.dnsNames ?? []).map((name) => der(0x82, Buffer.from(name, 'latin1'))),
    ...(opts.ipAddresses ?? []).map((ip) => der(0x87, ipBytes(ip))),
  ];
  const extensions = [
    BASIC_CONSTRAINTS_LEAF,
    KEY_USAGE_DIGITAL_SIGNATURE,
    encodeExtension({
      oid: '2.5.29.37',
      critical: false,
      value: der(0x30, ...opts.usages.map((u) => der(0x06, encodeOid(EKU_OIDS[u])))),
    }),
    issuer.aki,
    ...(sans.length > 0
      ? [encodeExtension({ oid: '2.5.29.17', critical: false, value: der(0x30, ...sans) })]
      : []),
    ...(opts.wardenExtensions ?? []).map((e) => encodeExtension({ ...e, critical: false })),
  ];
  return Object.freeze({
    caCert: opts.ca.cert,
    subject: encodeName(opts.subject),
    extensions: der(0xa3, der(0x30, ...extensions)),
  });
}

/**
 * A leaf certificate signed by `ca`: CA:FALSE, digitalSignature, the given EKUs and SANs, then
 * Warden's extensions. Written as DER directly and signed once with node:crypto (about a
 * twentieth of the time @peculiar/x509 takes to build, re-parse and sign one, which matters:
 * every login, device authentication and database connection issues certificates). The
 * layout is the one @peculiar/x509 wrote before (`issue.test.ts` checks it with openssl).
 */
export async function issueLeafCertificate(opts: LeafOptions): Promise<string> {
  return signLeafCertificate(opts.ca, leafParts(opts), opts);
}

/** The leaf certificate of `parts` for `publicKey`, valid from `notBefore` to `notAfter`, signed by `ca`. */
export function signLeafCertificate(
  ca: X509Signer,
  parts: LeafParts,
  cert: { publicKey: KeyObject; notBefore: Date; notAfter: Date },
): string {
  if (parts.caCert !== ca.cert) throw new Error('internal: leaf parts made for another CA certificate');
  const issuer = issuerParts(ca.cert);
  const tbs = der(
    0x30,
    VERSION_3,
    der(0x02, randomSerial()),
    ECDSA_WITH_SHA256,
    issuer.name,
    der(0x30, encodeTime(cert.notBefore), encodeTime(cert.notAfter)),
    parts.subject,
    spkiDer(cert.publicKey),
    parts.extensions,
  );
  const signature = sign('sha256', tbs, ca.key.keyObject);
  return certificatePem(der(0x30, tbs, ECDSA_WITH_SHA256, der(0x03, ZERO_BYTE, signature)));
}

const ZERO_BYTE = Buffer.from([0]);
