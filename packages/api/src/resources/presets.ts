/**
 * Preset roles, created at first start (never overwriting an edited copy): `access`,
 * `editor`, `auditor` and `require-trusted-device`.
 * Internal to `resources/`; the public surface is `resources/index.ts`.
 */
import type { RoleResource } from './role';

export const PresetRoleNames = {
  access: 'access',
  editor: 'editor',
  auditor: 'auditor',
  requireTrustedDevice: 'require-trusted-device',
} as const;

const ALL = { '*': '*' };

/** Resource kinds an editor manages with every verb. */
const EDITOR_KINDS = [
  'user',
  'bot',
  'role',
  'lock',
  'cluster_auth_preference',
  'device',
  'token',
  'node',
  'db',
  'app',
];

/**
 * Fresh copies of the preset roles (callers may mutate them).
 *
 * - `access`: every node, database, app and Kubernetes cluster, with the user's own
 *   logins, db users, db names and kube groups (traits).
 * - `editor`: manages users, roles, locks, cluster auth preference, devices and tokens;
 *   reads CAs and the audit log.
 * - `auditor`: reads the audit log and session records.
 * - `require-trusted-device`: grants no logins by itself; it matches every node, database,
 *   app and Kubernetes cluster so that holders need a trusted device for all of them.
 *
 * @example
 *   for (const role of presetRoles()) await roles.create(role);
 */
export function presetRoles(): RoleResource[] {
  return [
    {
      kind: 'role',
      version: 'v7',
      metadata: {
        name: PresetRoleNames.access,
        description: 'Access to all infrastructure with the user’s traits',
      },
      spec: {
        options: {},
        allow: {
          logins: ['{{internal.logins}}'],
          node_labels: { ...ALL },
          db_labels: { ...ALL },
          db_users: ['{{internal.db_users}}'],
          db_names: ['{{internal.db_names}}'],
          app_labels: { ...ALL },
          kubernetes_groups: ['{{internal.kubernetes_groups}}'],
          kubernetes_labels: { ...ALL },
        },
        deny: {},
      },
    },
    {
      kind: 'role',
      version: 'v7',
      metadata: { name: PresetRoleNames.editor, description: 'Edit cluster configuration' },
      spec: {
        options: {},
        allow: {
          rules: [
            { resources: [...EDITOR_KINDS], verbs: ['*'] },
            { resources: ['cert_authority'], verbs: ['list', 'read'] },
            { resources: ['event'], verbs: ['list', 'read'] },
          ],
        },
        deny: {},
      },
    },
    {
      kind: 'role',
      version: 'v7',
      metadata: { name: PresetRoleNames.auditor, description: 'Review the audit log and session records' },
      spec: {
        options: {},
        allow: {
          rules: [
            { resources: ['event'], verbs: ['list', 'read'] },
            { resources: ['session'], verbs: ['list', 'read'] },
          ],
        },
        deny: {},
      },
    },
    {
      kind: 'role',
      version: 'v7',
      metadata: {
        name: PresetRoleNames.requireTrustedDevice,
        description: 'Require a trusted device to access resources',
      },
      spec: {
        options: { device_trust_mode: 'required' },
        allow: {
          node_labels: { ...ALL },
          db_labels: { ...ALL },
          app_labels: { ...ALL },
          kubernetes_labels: { ...ALL },
        },
        deny: {},
      },
    },
  ];
}
