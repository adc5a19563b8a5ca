/**
 * The kind registry: every resource kind, its versions' schemas and the names the CLI
 * accepts for it (`roles`, `cap`, `cas`, …). To add a kind (e.g. `device`): write its
 * schema file, add one entry to `resourceKinds` and one line to `ResourceByKind`.
 * Internal to `resources/`; the public surface is `resources/index.ts`.
 */
import type { z } from 'zod';
import { WardenError } from '../errors';
import { type AppResource, appV3Schema } from './app';
import { AUTH_PREFERENCE_NAME, type AuthPreferenceResource, authPreferenceV2Schema } from './auth-preference';
import { type CertAuthorityResource, certAuthorityV2Schema } from './cert-authority';
import { type DbResource, dbV3Schema } from './db';
import { type DeviceResource, deviceV1Schema } from './device';
import { type KubeClusterResource, kubeClusterV3Schema } from './kube';
import { type LockResource, lockV2Schema } from './lock';
import { type NodeResource, nodeV2Schema } from './node';
import { type RoleResource, roleV7Schema } from './role';
import { type UserResource, userV2Schema } from './user';

export interface KindDefinition {
  /** Names accepted by the CLI (`wctl get roles`), lower case, including the kind itself. */
  readonly aliases: readonly string[];
  /** Schema per version; the last entry is the version written for new resources. */
  readonly versions: Readonly<Record<string, z.ZodType>>;
  /** The only name a resource of this kind may have, for singletons. */
  readonly singletonName?: string;
}

export const resourceKinds = {
  role: { aliases: ['role', 'roles'], versions: { v7: roleV7Schema } },
  user: { aliases: ['user', 'users'], versions: { v2: userV2Schema } },
  cluster_auth_preference: {
    aliases: ['cluster_auth_preference', 'cap'],
    versions: { v2: authPreferenceV2Schema },
    singletonName: AUTH_PREFERENCE_NAME,
  },
  lock: { aliases: ['lock', 'locks'], versions: { v2: lockV2Schema } },
  cert_authority: {
    aliases: ['cert_authority', 'cert_authorities', 'cas'],
    versions: { v2: certAuthorityV2Schema },
  },
  node: { aliases: ['node', 'nodes'], versions: { v2: nodeV2Schema } },
  db: { aliases: ['db', 'dbs', 'database', 'databases'], versions: { v3: dbV3Schema } },
  device: { aliases: ['device', 'devices'], versions: { v1: deviceV1Schema } },
  app: { aliases: ['app', 'apps'], versions: { v3: appV3Schema } },
  kube_cluster: {
    aliases: ['kube_cluster', 'kube_clusters', 'kube', 'kubernetes'],
    versions: { v3: kubeClusterV3Schema },
  },
} as const satisfies Record<string, KindDefinition>;

export type ResourceKind = keyof typeof resourceKinds;

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

/** All kinds, in registry order. */
export const RESOURCE_KINDS = Object.keys(resourceKinds) as ResourceKind[];

/** True when `kind` is a registered kind (not an alias). */
export function isResourceKind(kind: unknown): kind is ResourceKind {
  return typeof kind === 'string' && Object.hasOwn(resourceKinds, kind);
}

/**
 * The kind named by a CLI word, or undefined.
 *
 * @example
 *   resolveKind('cas'); // 'cert_authority'
 *   resolveKind('Roles'); // 'role'
 */
export function resolveKind(word: string): ResourceKind | undefined {
  const w = word.toLowerCase();
  return RESOURCE_KINDS.find((kind) => (resourceKinds[kind].aliases as readonly string[]).includes(w));
}

/** The version written for new resources of `kind`. */
export function currentVersion(kind: ResourceKind): string {
  const versions = Object.keys(resourceKinds[kind].versions);
  return versions[versions.length - 1]!;
}

/** The schema for `kind` at `version`, or undefined when that version is not supported. */
export function schemaFor(kind: ResourceKind, version: string): z.ZodType | undefined {
  const versions: Readonly<Record<string, z.ZodType>> = resourceKinds[kind].versions;
  return Object.hasOwn(versions, version) ? versions[version] : undefined;
}

/** A parsed CLI reference like `users/alice` or `roles`. */
export interface ResourceRef {
  kind: ResourceKind;
  name?: string;
}

/**
 * Parses `kind` or `kind/name` as the CLI accepts it (any alias); BAD_PARAMETER otherwise.
 *
 * @example
 *   parseResourceRef('users/alice'); // { kind: 'user', name: 'alice' }
 */
export function parseResourceRef(text: string): ResourceRef {
  const slash = text.indexOf('/');
  const word = slash === -1 ? text : text.slice(0, slash);
  const name = slash === -1 ? undefined : text.slice(slash + 1);
  const kind = resolveKind(word);
  if (!kind) {
    const known = RESOURCE_KINDS.flatMap((k) => resourceKinds[k].aliases).join(', ');
    throw new WardenError(
      'WARDEN_ERR_BAD_PARAMETER',
      `unknown resource kind "${word}" (expected one of: ${known})`,
    );
  }
  if (name === undefined) return { kind };
  if (name.length === 0 || name.includes('/')) {
    throw new WardenError('WARDEN_ERR_BAD_PARAMETER', `"${text}" is not a valid reference (use kind/name)`);
  }
  return { kind, name };
}
