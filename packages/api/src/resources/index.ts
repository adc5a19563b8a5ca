/**
 * Resources (DESIGN §2, §6): zod schemas and TypeScript types for every kind (role, user,
 * cluster_auth_preference, lock, cert_authority, node, db, device, app, kube_cluster), the kind registry with the CLI's aliases,
 * the YAML/JSON codec with line-accurate errors, and the preset roles.
 * Who may import: everyone, through `@warden/api`. Tested by the colocated `*.test.ts`.
 */
export {
  APP_RESERVED_HEADERS,
  type AppHeader,
  type AppResource,
  appHeaderSchema,
  appNameSchema,
  appPublicAddrSchema,
  appUriSchema,
  appV3Schema,
} from './app';
export {
  AUTH_PREFERENCE_NAME,
  type AuthPreferenceResource,
  authPreferenceV2Schema,
  type DeviceTrustSettings,
  LOCKING_MODES,
  type LockingMode,
  pemCertificateSchema,
} from './auth-preference';
export {
  CERT_AUTHORITY_TYPES,
  type CertAuthorityResource,
  type CertAuthorityType,
  certAuthorityV2Schema,
  sshPublicKeySchema,
} from './cert-authority';
export { formatResource, formatResources, type ParseResourcesOptions, parseResources } from './codec';
export {
  durationSchema,
  escapeControlCharacters,
  isRfc3339,
  labelSelectorSchema,
  labelsSchema,
  MAX_NAME_LENGTH,
  nameSchema,
  timestampSchema,
} from './common';
export {
  DB_PROTOCOLS,
  type DbProtocol,
  type DbResource,
  dbV3Schema,
  pemCertificatesSchema,
} from './db';
export {
  assetTagSchema,
  DEVICE_ATTESTATION_TYPES,
  DEVICE_ENROLL_STATUSES,
  DEVICE_OS_NAMES,
  DEVICE_OS_TYPES,
  type DeviceAttestationType,
  type DeviceCollectedData,
  type DeviceCredential,
  type DeviceEnrollStatus,
  type DeviceOsType,
  type DeviceResource,
  deviceCollectedDataSchema,
  deviceCredentialSchema,
  deviceSpecSchema,
  deviceV1Schema,
  EK_CERT_VERIFICATIONS,
  type EkCertVerification,
  MAX_ASSET_TAG_LENGTH,
  MAX_DEVICE_COLLECTED_DATA,
} from './device';
export {
  currentVersion,
  isResourceKind,
  KIND_NAMES,
  type KindNames,
  parseResourceRef,
  RESOURCE_KINDS,
  type ResourceKind,
  type ResourceRef,
  resolveKind,
  singletonName,
} from './kind-names';
export { kindSchemas, type Resource, type ResourceByKind } from './kinds';
export {
  type KubeClusterResource,
  kubeClusterNameSchema,
  kubeClusterV3Schema,
} from './kube';
export {
  LOCK_TARGET_FIELDS,
  type LockResource,
  type LockTarget,
  type LockTargetField,
  lockV2Schema,
} from './lock';
export { NODE_SUB_KINDS, type NodeResource, type NodeSubKind, nodeAddrSchema, nodeV2Schema } from './node';
export { PresetRoleNames, presetRoles } from './presets';
export { printResource, type ResourceFormat } from './print';
export {
  DEVICE_TRUST_MODES,
  type DeviceTrustMode,
  EXPLICIT_VERBS,
  type KubernetesResource,
  kubernetesResourceSchema,
  type RoleConditions,
  type RoleOptions,
  type RoleResource,
  type Rule,
  roleV7Schema,
  type Verb,
  Verbs,
  WILDCARD,
} from './role';
export { type UserResource, userV2Schema } from './user';
export {
  formatPath,
  type ResourceIssue,
  validateResource,
  validateResourceOfKind,
} from './validate';
