/**
 * The kind registry: every kind's versions paired with their schemas. The names (aliases,
 * versions, singletons) live in `kind-names.ts`, without zod, for commands that only name
 * kinds. To add a kind (e.g. `device`): write its schema file, add one entry to `KIND_NAMES`,
 * one to `kindSchemas` and one line to `ResourceByKind`.
 * Internal to `resources/`; the public surface is `resources/index.ts`.
 */
import type { z } from 'zod';
import { type AppResource, appV3Schema } from './app';
import { type AuthPreferenceResource, authPreferenceV2Schema } from './auth-preference';
import { type CertAuthorityResource, certAuthorityV2Schema } from './cert-authority';
import { type DbResource, dbV3Schema } from './db';
import { type DeviceResource, deviceV1Schema } from './device';
import type { KIND_NAMES, ResourceKind } from './kind-names';
import { type KubeClusterResource, kubeClusterV3Schema } from './kube';
import { type LockResource, lockV2Schema } from './lock';
import { type NodeResource, nodeV2Schema } from './node';
import { type RoleResource, roleV7Schema } from './role';
import { type UserResource, userV2Schema } from './user';

/** Each kind's schema per version; exactly the versions `KIND_NAMES` lists (checked below). */
export const kindSchemas = {
  role: { v7: roleV7Schema },
  user: { v2: userV2Schema },
  cluster_auth_preference: { v2: authPreferenceV2Schema },
  lock: { v2: lockV2Schema },
  cert_authority: { v2: certAuthorityV2Schema },
  node: { v2: nodeV2Schema },
  db: { v3: dbV3Schema },
  device: { v1: deviceV1Schema },
  app: { v3: appV3Schema },
  kube_cluster: { v3: kubeClusterV3Schema },
} as const satisfies {
  [K in ResourceKind]: Record<(typeof KIND_NAMES)[K]['versions'][number], z.ZodType>;
};

/** The resource type of each kind. */
export interface ResourceByKind {
  role: RoleResource;
  user: UserResource;
  cluster_auth_preference: AuthPreferenceResource;
  lock: LockResource;
  cert_authority: CertAuthorityResource;
  node: NodeResource;
  db: DbResource;
  device: DeviceResource;
  app: AppResource;
  kube_cluster: KubeClusterResource;
}

/** Any resource. Narrow on `kind`. */
export type Resource = ResourceByKind[ResourceKind];

// Compile-time check that the registry and ResourceByKind list the same kinds.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const kindsAgree: Same<ResourceKind, keyof ResourceByKind> = true;
void kindsAgree;
// …and the schemas list no version that KIND_NAMES does not.
const versionsAgree: {
  [K in ResourceKind]: Same<keyof (typeof kindSchemas)[K], (typeof KIND_NAMES)[K]['versions'][number]>;
} = {
  role: true,
  user: true,
  cluster_auth_preference: true,
  lock: true,
  cert_authority: true,
  node: true,
  db: true,
  device: true,
  app: true,
  kube_cluster: true,
};
void versionsAgree;

/** The schema for `kind` at `version`, or undefined when that version is not supported. */
export function schemaFor(kind: ResourceKind, version: string): z.ZodType | undefined {
  const versions: Readonly<Record<string, z.ZodType>> = kindSchemas[kind];
  return Object.hasOwn(versions, version) ? versions[version] : undefined;
}
