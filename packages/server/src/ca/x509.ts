/**
 * X.509 building blocks for the CAs: self-signed ECDSA P-256 CA certificates and leaf
 * certificates (user client certificates, host TLS certificates), made with @peculiar/x509.
 * Warden's own extensions (identity, device) use big-arc OIDs that @peculiar/x509 cannot
 * write, so they are spliced in afterwards and the certificate signed again
 * (`addCertificateExtensions` from @warden/api; see packages/api/src/certs/x509-der.ts).
 * Internal to `ca/`. Tested through `authorities.test.ts` and `issue.test.ts` (openssl verify).
 */

import 'reflect-metadata';
import { type KeyObject, randomBytes, sign, webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { addCertificateExtensions, type CertificateExtension } from '@warden/api';
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

/** A positive 128-bit serial number in hex (first byte in 0x40..0x7f: positive and minimal). */
function randomSerial(): string {
  const b = randomBytes(16);
  b[0] = ((b[0] as number) & 0x3f) | 0x40;
  return b.toString('hex');
}

function spkiDer(key: KeyObject): Buffer {
  return key.export({ type: 'spki', format: 'der' });
}

/** PEM of a DER certificate (written here so nothing re-encodes the DER on the way). */
export function certificatePem(der: Uint8Array): string {
  const b64 = Buffer.from(der).toString('base64').replace(/.{64}/g, '$&\n');
  return `-----BEGIN CERTIFICATE-----\n${b64}${b64.endsWith('\n') ? '' : '\n'}-----END CERTIFICATE-----\n`;
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
      serialNumber: randomSerial(),
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

/** A leaf certificate signed by `ca`: CA:FALSE, digitalSignature, the given EKUs and SANs. */
export async function issueLeafCertificate(opts: LeafOptions): Promise<string> {
  const sans: x509.JsonGeneralNames = [
    ...(opts.dnsNames ?? []).map((value) => ({ type: 'dns' as const, value })),
    ...(opts.ipAddresses ?? []).map((value) => ({ type: 'ip' as const, value })),
  ];
  const caKeyId = opts.ca.cert.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId;
  if (!caKeyId) throw new Error('internal: the CA certificate has no subject key identifier');
  const cert = await x509.X509CertificateGenerator.create(
    {
      serialNumber: randomSerial(),
      subject: opts.subject,
      issuer: opts.ca.cert.subjectName,
      notBefore: opts.notBefore,
      notAfter: opts.notAfter,
      publicKey: spkiDer(opts.publicKey),
      signingKey: opts.ca.webKey as unknown as PeculiarCryptoKey,
      signingAlgorithm: ECDSA_SHA256,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension(
          opts.usages.map((u) => x509.ExtendedKeyUsage[u]),
          false,
        ),
        new x509.AuthorityKeyIdentifierExtension(caKeyId, false),
        ...(sans.length > 0 ? [new x509.SubjectAlternativeNameExtension(sans, false)] : []),
      ],
    },
    crypto,
  );
  const der = new Uint8Array(cert.rawData);
  if (!opts.wardenExtensions || opts.wardenExtensions.length === 0) return certificatePem(der);
  const signed = addCertificateExtensions(der, opts.wardenExtensions, (tbs) =>
    sign('sha256', tbs, opts.ca.key.keyObject),
  );
  return certificatePem(signed);
}
