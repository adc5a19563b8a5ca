/**
 * `kind: device`, version v1: a device in the trusted-device inventory (DESIGN §6). Named by
 * a UUID the server generates (the device ID). Admins add devices (`wctl devices add`); the
 * enrollment ceremony (`wsh device enroll`) sets `enroll_status: enrolled` and the
 * `credential` (the TPM attestation key); device authentication at login appends
 * `collected_data`. Setting `enroll_status: not_enrolled` (`wctl edit`) unenrolls: the
 * server removes the credential.
 * Internal to `resources/`; the public surface is `resources/index.ts`.
 *
 * @example
 *   kind: device
 *   version: v1
 *   metadata: { name: 9cdfc0ad-64b7-4d9c-8e1e-0f0a0b0c0d0e }
 *   spec: { os_type: linux, asset_tag: C00AA0AAAA0A, enroll_status: not_enrolled }
 */
import { z } from 'zod';
import { metadataSchema, resourceSchema, timestampSchema, uuidSchema } from './common';

import {
  DEVICE_ATTESTATION_TYPES,
  DEVICE_ENROLL_STATUSES,
  DEVICE_OS_TYPES,
  EK_CERT_VERIFICATIONS,
  MAX_ASSET_TAG_LENGTH,
  MAX_DEVICE_COLLECTED_DATA,
} from './device-names';

export {
  DEVICE_ATTESTATION_TYPES,
  DEVICE_ENROLL_STATUSES,
  DEVICE_OS_NAMES,
  DEVICE_OS_TYPES,
  type DeviceAttestationType,
  type DeviceEnrollStatus,
  type DeviceOsType,
  EK_CERT_VERIFICATIONS,
  type EkCertVerification,
  MAX_ASSET_TAG_LENGTH,
  MAX_DEVICE_COLLECTED_DATA,
} from './device-names';

/**
 * An asset tag: non-empty, at most 256 characters, no whitespace or control characters (the
 * Linux rule skips DMI values with spaces; `ek:<base64url>` tags fit).
 */
export const assetTagSchema = z
  .string({ error: 'expected an asset tag' })
  .min(1, { error: 'must not be empty' })
  .max(MAX_ASSET_TAG_LENGTH, { error: `must be at most ${MAX_ASSET_TAG_LENGTH} characters` })
  .refine((text) => !/[\s\p{Cc}]/u.test(text), {
    error: 'must not contain spaces or control characters',
  });

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Non-empty standard base64 (with padding). */
export const base64Schema = z
  .string({ error: 'expected base64' })
  .min(1, { error: 'must not be empty' })
  .refine((text) => BASE64.test(text), { error: 'expected base64' });

const shortText = (what: string) =>
  z
    .string({ error: `expected ${what}` })
    .max(1024, { error: 'must be at most 1024 characters' })
    .refine((text) => !/\p{Cc}/u.test(text), { error: 'must not contain control characters' });

/** The device's TPM attestation key, set by the enrollment ceremony. */
export const deviceCredentialSchema = z.strictObject({
  /** Credential ID: a UUID chosen by the client, unique across devices. */
  id: z
    .string({ error: 'expected a credential ID' })
    .min(1, { error: 'must not be empty' })
    .max(256, { error: 'must be at most 256 characters' })
    .refine((text) => !/[\s\p{Cc}]/u.test(text), {
      error: 'must not contain spaces or control characters',
    }),
  /** SubjectPublicKeyInfo DER of the AK public key, base64. */
  public_key_der: base64Schema,
  attestation_type: z.enum(DEVICE_ATTESTATION_TYPES, {
    error: `expected one of ${DEVICE_ATTESTATION_TYPES.join(', ')}`,
  }),
  /**
   * Serial number of the EK certificate, when its signature was verified (`ek_cert_verified`
   * `allowed_ca`, `tpm_root` or `tpm_issuer`); never recorded for an unchecked certificate.
   */
  ek_cert_serial: shortText('a serial number').optional(),
  /**
   * How far the EK certificate the TPM presented was verified (issue 15 item 8): `allowed_ca` —
   * chains to an `ekcert_allowed_cas` entry (`tpm_ekcert_trusted`); `tpm_root` — signatures
   * verified up to a self-signed root the TPM supplied (consistent, not trusted); `tpm_issuer`
   * — verified by an issuer certificate the TPM supplied, whose own issuer it did not;
   * `unchecked` — no issuer certificate to check the signature with: the device enrolled on
   * its bare EK (`tpm_ekpub`). Absent when the TPM had no EK certificate.
   */
  ek_cert_verified: z
    .enum(EK_CERT_VERIFICATIONS, { error: `expected one of ${EK_CERT_VERIFICATIONS.join(', ')}` })
    .optional(),
  /** Subjects of the certificates whose signatures were checked, the EK's issuer first. */
  ek_cert_issuers: z.array(shortText('a certificate subject')).max(8).optional(),
  /**
   * base64url(SHA-256 of the EK public key, SPKI DER): the TPM that backs the device. One EK
   * backs at most one device; an `ek:` asset tag must be `ek:` + this value.
   */
  ek_sha256: z
    .string({ error: 'expected base64url' })
    .regex(/^[A-Za-z0-9_-]{43}$/, { error: 'expected base64url of a SHA-256 digest' })
    .optional(),
  /** The AK's marshaled TPMT_PUBLIC, base64: what quote verification needs. */
  ak_public: base64Schema,
});
export type DeviceCredential = z.output<typeof deviceCredentialSchema>;

/** What the device reported about itself at enrollment or authentication. */
export const deviceCollectedDataSchema = z.strictObject({
  collect_time: timestampSchema,
  os_type: z.enum(DEVICE_OS_TYPES, { error: 'expected one of linux, macos, windows' }),
  serial_number: shortText('a serial number').optional(),
  os_version: shortText('an OS version').optional(),
  os_username: shortText('a user name').optional(),
  hostname: shortText('a host name').optional(),
});
export type DeviceCollectedData = z.output<typeof deviceCollectedDataSchema>;

export const deviceSpecSchema = z
  .strictObject({
    os_type: z.enum(DEVICE_OS_TYPES, { error: 'expected one of linux, macos, windows' }),
    asset_tag: assetTagSchema,
    enroll_status: z
      .enum(DEVICE_ENROLL_STATUSES, { error: 'expected "not_enrolled" or "enrolled"' })
      .default('not_enrolled'),
    /** Present once enrolled. */
    credential: deviceCredentialSchema.optional(),
    /** Newest last, at most MAX_DEVICE_COLLECTED_DATA entries. */
    collected_data: z
      .array(deviceCollectedDataSchema)
      .max(MAX_DEVICE_COLLECTED_DATA, {
        error: `must have at most ${MAX_DEVICE_COLLECTED_DATA} entries`,
      })
      .optional(),
    /** The user who enrolled the device. */
    owner: shortText('a user name').optional(),
    /** Where the device record came from (`api`). */
    source: z.enum(['api'], { error: 'expected "api"' }).default('api'),
    create_time: timestampSchema.optional(),
    update_time: timestampSchema.optional(),
  })
  .refine((s) => s.enroll_status !== 'enrolled' || s.credential !== undefined, {
    error: 'an enrolled device needs spec.credential',
    path: ['credential'],
  });

export const deviceV1Schema = resourceSchema('device', 'v1', metadataSchema(uuidSchema), deviceSpecSchema);
export type DeviceResource = z.output<typeof deviceV1Schema>;
