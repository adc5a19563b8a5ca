/**
 * `kind: cluster_auth_preference`, version v2: cluster-wide authentication settings,
 * one resource named `cluster-auth-preference` (second factor, device trust mode,
 * auto-enrollment, allowed EK certificate CAs, locking mode).
 * Internal to `resources/`; the public surface is `resources/index.ts`.
 */
import { z } from 'zod';
import { metadataSchema, resourceSchema } from './common';
import { AUTH_PREFERENCE_NAME } from './kind-names';
import { deviceTrustModeSchema } from './role';

export { AUTH_PREFERENCE_NAME };

const PEM_CERTIFICATE =
  /^\s*-----BEGIN CERTIFICATE-----\r?\n[A-Za-z0-9+/=\r\n]+-----END CERTIFICATE-----\s*$/;

/** One PEM-encoded X.509 certificate. */
export const pemCertificateSchema = z
  .string({ error: 'expected a PEM certificate' })
  .refine((text) => PEM_CERTIFICATE.test(text), {
    error: 'expected one PEM certificate ("-----BEGIN CERTIFICATE-----")',
  });

export const deviceTrustSettingsSchema = z.strictObject({
  mode: deviceTrustModeSchema.default('off'),
  /** Enroll a device on login without a token when its EK certificate is trusted. */
  auto_enroll: z.boolean().default(false),
  /**
   * A device authenticates only for its owner (the user who enrolled it, or the owner an
   * administrator recorded): another user on the same machine gets no device extensions.
   */
  bind_owner: z.boolean().optional(),
  /** PEM CA certificates an EK certificate must chain to; empty or absent: any EK. */
  ekcert_allowed_cas: z.array(pemCertificateSchema).optional(),
});
export type DeviceTrustSettings = z.output<typeof deviceTrustSettingsSchema>;

export const LOCKING_MODES = ['best_effort', 'strict'] as const;
export type LockingMode = (typeof LOCKING_MODES)[number];

export const authPreferenceSpecSchema = z.strictObject({
  type: z.enum(['local']).default('local'),
  second_factor: z.enum(['on', 'otp', 'off']).default('otp'),
  device_trust: deviceTrustSettingsSchema.prefault({}),
  /** `strict`: deny everything while the lock view is stale (fail closed). */
  locking_mode: z.enum(LOCKING_MODES).default('best_effort'),
});

export const authPreferenceV2Schema = resourceSchema(
  'cluster_auth_preference',
  'v2',
  metadataSchema(z.literal(AUTH_PREFERENCE_NAME, { error: `must be "${AUTH_PREFERENCE_NAME}"` })),
  authPreferenceSpecSchema,
);
export type AuthPreferenceResource = z.output<typeof authPreferenceV2Schema>;
