/**
 * `kind: cert_authority`, version v2: the public view of a certificate authority (SSH public
 * keys in authorized_keys format, TLS certificates in PEM, the `jwt` CA's keys as JWKs). Private parts never appear here:
 * unknown fields are rejected and values must be public-key or certificate encodings.
 * Read-only for users. Internal to `resources/`; the public surface is `resources/index.ts`.
 */
import { z } from 'zod';
import { pemCertificateSchema } from './auth-preference';
import { metadataSchema, nameSchema, resourceSchema } from './common';

export const CERT_AUTHORITY_TYPES = ['user', 'host', 'db', 'openssh', 'jwt'] as const;
export type CertAuthorityType = (typeof CERT_AUTHORITY_TYPES)[number];

const SSH_PUBLIC_KEY =
  /^(?:ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(?:256|384|521)) [A-Za-z0-9+/]+={0,2}(?: [^\r\n]*)?$/;

/** One SSH public key, authorized_keys format without options (`ssh-ed25519 AAAA… comment`). */
export const sshPublicKeySchema = z
  .string({ error: 'expected an SSH public key' })
  .refine((text) => SSH_PUBLIC_KEY.test(text), {
    error: 'expected an SSH public key like "ssh-ed25519 AAAA…"',
  });

export const certAuthoritySpecSchema = z.strictObject({
  type: z.enum(CERT_AUTHORITY_TYPES),
  /** The cluster this CA belongs to. */
  cluster: z.string().min(1, { error: 'must not be empty' }),
  ssh_public_keys: z.array(sshPublicKeySchema).default([]),
  tls_certs: z.array(pemCertificateSchema).default([]),
  /** The `jwt` CA's public keys as JWKs (EC P-256 `x`/`y`, `kid`, `alg`): what apps verify with. */
  jwt_public_keys: z
    .array(
      z.strictObject({
        kty: z.literal('EC'),
        crv: z.literal('P-256'),
        x: z.string().regex(/^[A-Za-z0-9_-]+$/),
        y: z.string().regex(/^[A-Za-z0-9_-]+$/),
        kid: z.string().min(1),
        alg: z.literal('ES256'),
        use: z.literal('sig'),
      }),
    )
    .optional(),
});

export const certAuthorityV2Schema = resourceSchema(
  'cert_authority',
  'v2',
  metadataSchema(nameSchema),
  certAuthoritySpecSchema,
);
export type CertAuthorityResource = z.output<typeof certAuthorityV2Schema>;
