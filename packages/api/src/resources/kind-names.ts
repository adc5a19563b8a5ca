/**
 * The kind names without their schemas: every kind, its versions and the names the CLI
 * accepts for it (`roles`, `cap`, `cas`, …). No zod here, so a command that only names kinds
 * (`wctl get roles`) does not construct every resource schema at start-up; `kinds.ts`
 * pairs these names with the schemas. Internal to `resources/`; the public surface is
 * `resources/index.ts`.
 */
import { WardenError } from '../errors';

/** The one name a cluster_auth_preference may have. */
export const AUTH_PREFERENCE_NAME = 'cluster-auth-preference';

export interface KindNames {
  /** Names accepted by the CLI (`wctl get roles`), lower case, including the kind itself. */
  readonly aliases: readonly string[];
  /** Supported versions; the last is the version written for new resources. */
  readonly versions: readonly string[];
  /** The only name a resource of this kind may have, for singletons. */
  readonly singletonName?: string;
}

export const KIND_NAMES = {
  role: { aliases: ['role', 'roles'], versions: ['v7'] },
  user: { aliases: ['user', 'users'], versions: ['v2'] },
  cluster_auth_preference: {
    aliases: ['cluster_auth_preference', 'cap'],
    versions: ['v2'],
    singletonName: AUTH_PREFERENCE_NAME,
  },
  lock: { aliases: ['lock', 'locks'], versions: ['v2'] },
  cert_authority: { aliases: ['cert_authority', 'cert_authorities', 'cas'], versions: ['v2'] },
  node: { aliases: ['node', 'nodes'], versions: ['v2'] },
  db: { aliases: ['db', 'dbs', 'database', 'databases'], versions: ['v3'] },
  device: { aliases: ['device', 'devices'], versions: ['v1'] },
  app: { aliases: ['app', 'apps'], versions: ['v3'] },
  kube_cluster: { aliases: ['kube_cluster', 'kube_clusters', 'kube', 'kubernetes'], versions: ['v3'] },
} as const satisfies Record<string, KindNames>;

export type ResourceKind = keyof typeof KIND_NAMES;

/** All kinds, in registry order. */
export const RESOURCE_KINDS = Object.keys(KIND_NAMES) as ResourceKind[];

/** True when `kind` is a registered kind (not an alias). */
export function isResourceKind(kind: unknown): kind is ResourceKind {
  return typeof kind === 'string' && Object.hasOwn(KIND_NAMES, kind);
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
  return RESOURCE_KINDS.find((kind) => (KIND_NAMES[kind].aliases as readonly string[]).includes(w));
}

/** The version written for new resources of `kind`. */
export function currentVersion(kind: ResourceKind): string {
  const versions = KIND_NAMES[kind].versions;
  return versions[versions.length - 1]!;
}

/** The one name a resource of `kind` may have (`cluster-auth-preference`), or undefined. */
export function singletonName(kind: ResourceKind): string | undefined {
  return (KIND_NAMES[kind] as KindNames).singletonName;
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
    const known = RESOURCE_KINDS.flatMap((k) => KIND_NAMES[k].aliases).join(', ');
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
