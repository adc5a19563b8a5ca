/**
 * `kind: role`, version v7: options (session TTL, device trust mode) and allow/deny
 * conditions (logins, labels, db users and names, kube users, groups and resources, rules over
 * resource kinds).
 * Internal to `resources/`; the public surface is `resources/index.ts`.
 */
import { z } from 'zod';
import {
  durationSchema,
  labelSelectorSchema,
  metadataSchema,
  nameSchema,
  resourceSchema,
  stringListSchema,
} from './common';

/**
 * Device trust modes, weakest first. `required-for-humans` demands a device of people and not
 * of bots (machine identities, `wctl bots add`); `required` demands one of everybody.
 * Anything else counts as `required` (fail closed).
 */
export const DEVICE_TRUST_MODES = ['off', 'optional', 'required-for-humans', 'required'] as const;
export type DeviceTrustMode = (typeof DEVICE_TRUST_MODES)[number];
export const deviceTrustModeSchema = z.enum(DEVICE_TRUST_MODES);

/**
 * Verbs used in role rules; `'*'` in an allow rule means all of them except the explicit ones
 * below (a deny rule's `'*'` means all of them).
 */
export const Verbs = {
  list: 'list',
  read: 'read',
  create: 'create',
  update: 'update',
  delete: 'delete',
  /**
   * Point a `node`, `db` or `app` resource at an address (its `spec.addr` / `spec.uri`) when
   * creating or changing it by hand: where the proxy and services will connect, so it is an
   * SSRF lever (issue 15 item 12). Agents' heartbeats need no permission for their own.
   */
  setAddress: 'set_address',
} as const;
export type Verb = (typeof Verbs)[keyof typeof Verbs];

/** Verbs an allow rule grants only when it names them (`'*'` does not include them). */
export const EXPLICIT_VERBS: readonly string[] = [Verbs.setAddress];

/** Wildcard for rule resources and verbs, and for label selectors (`'*': '*'`). */
export const WILDCARD = '*';

/** One rule: the verbs allowed (or denied) on the resource kinds. */
export const ruleSchema = z.strictObject({
  resources: z
    .array(z.string().min(1, { error: 'must not be empty' }))
    .min(1, { error: 'must not be empty' }),
  verbs: z.array(z.string().min(1, { error: 'must not be empty' })).min(1, { error: 'must not be empty' }),
});
export type Rule = z.output<typeof ruleSchema>;

/**
 * Kubernetes objects a role grants (allow) or refuses (deny), as users of the seed product write
 * them: `kind` (`pod`, `pods`, `configmap`, `namespace`, `*`…), `namespace` and `name` (`*` and
 * globs allowed), `verbs` (`get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `exec`,
 * `portforward`, `*`). Omitted fields mean `*`.
 */
export const kubernetesResourceSchema = z.strictObject({
  kind: z.string().min(1, { error: 'must not be empty' }),
  namespace: z.string().min(1, { error: 'must not be empty' }).optional(),
  name: z.string().min(1, { error: 'must not be empty' }).optional(),
  verbs: z.array(z.string().min(1, { error: 'must not be empty' })).optional(),
});
export type KubernetesResource = z.output<typeof kubernetesResourceSchema>;

/** Allow or deny conditions. Login-like lists may hold `{{internal.X}}` trait templates. */
export const roleConditionsSchema = z.strictObject({
  logins: stringListSchema.optional(),
  node_labels: labelSelectorSchema.optional(),
  db_labels: labelSelectorSchema.optional(),
  db_users: stringListSchema.optional(),
  db_names: stringListSchema.optional(),
  app_labels: labelSelectorSchema.optional(),
  kubernetes_groups: stringListSchema.optional(),
  kubernetes_users: stringListSchema.optional(),
  kubernetes_labels: labelSelectorSchema.optional(),
  kubernetes_resources: z.array(kubernetesResourceSchema).optional(),
  rules: z.array(ruleSchema).optional(),
});
export type RoleConditions = z.output<typeof roleConditionsSchema>;

export const roleOptionsSchema = z.strictObject({
  /** Longest certificate lifetime for holders of this role (`8h`, `30m`, `1h30m`). */
  max_session_ttl: durationSchema.optional(),
  /** Device trust required for resources this role's allow rules match. */
  device_trust_mode: deviceTrustModeSchema.optional(),
  /**
   * SSH agent forwarding (`ssh -A`, `wsh ssh -A`): the certificate carries
   * `permit-agent-forwarding` when any of the user's roles sets this (default false).
   */
  permit_agent_forwarding: z.boolean().optional(),
  /** X11 forwarding (`ssh -X`): `permit-X11-forwarding`, when any role sets it (default false). */
  permit_x11_forwarding: z.boolean().optional(),
});
export type RoleOptions = z.output<typeof roleOptionsSchema>;

export const roleSpecSchema = z.strictObject({
  options: roleOptionsSchema.prefault({}),
  allow: roleConditionsSchema.prefault({}),
  deny: roleConditionsSchema.prefault({}),
});

export const roleV7Schema = resourceSchema('role', 'v7', metadataSchema(nameSchema), roleSpecSchema);
export type RoleResource = z.output<typeof roleV7Schema>;
