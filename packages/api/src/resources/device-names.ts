/**
 * The device kind's names and limits, without zod: the CLI's device tables read them at
 * start-up without constructing the device schema. Internal to `resources/`; the public
 * surface is `resources/index.ts` (through device.ts).
 */

/** Operating systems a device may run. */
export const DEVICE_OS_TYPES = ['linux', 'macos', 'windows'] as const;
export type DeviceOsType = (typeof DEVICE_OS_TYPES)[number];

/** How an OS is written in messages (`Device C00AA/Linux added to the inventory`). */
export const DEVICE_OS_NAMES: Readonly<Record<DeviceOsType, string>> = {
  linux: 'Linux',
  macos: 'macOS',
  windows: 'Windows',
};

export const DEVICE_ENROLL_STATUSES = ['not_enrolled', 'enrolled'] as const;
export type DeviceEnrollStatus = (typeof DEVICE_ENROLL_STATUSES)[number];

/**
 * How the TPM's endorsement key was vouched for at enrollment: `tpm_ekpub` (a bare EK public
 * key), `tpm_ekcert` (an EK certificate, no allowed CAs configured), `tpm_ekcert_trusted`
 * (an EK certificate that chains to one of `ekcert_allowed_cas`).
 */
export const DEVICE_ATTESTATION_TYPES = ['tpm_ekpub', 'tpm_ekcert', 'tpm_ekcert_trusted'] as const;
export type DeviceAttestationType = (typeof DEVICE_ATTESTATION_TYPES)[number];
/** How far an EK certificate was verified (`credential.ek_cert_verified`). */
export const EK_CERT_VERIFICATIONS = ['allowed_ca', 'tpm_root', 'tpm_issuer', 'unchecked'] as const;
export type EkCertVerification = (typeof EK_CERT_VERIFICATIONS)[number];

/** How many `collected_data` entries a device keeps (newest last). */
export const MAX_DEVICE_COLLECTED_DATA = 10;

/** Longest asset tag accepted. */
export const MAX_ASSET_TAG_LENGTH = 256;
