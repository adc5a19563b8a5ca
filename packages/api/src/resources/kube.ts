/**
 * `kind: kube_cluster`, version v3: a Kubernetes cluster that kube_service forwards to. Two
 * sources, as for databases and apps:
 *
 *   - kube_service registers the clusters of its config by heartbeat (`metadata.expires` is the
 *     heartbeat's TTL, so a cluster whose agent stops heartbeating drops out). Credentials stay in
 *     the config file; the resource carries only the API server's URL.
 *   - Admins `wctl create` them; `spec` then says where the kube_service host finds the
 *     credential: a kubeconfig file, or the server URL with a CA file and a token file or a
 *     client certificate and key (paths on the kube_service host, never the secrets themselves).
 *
 * `metadata.name` is what users type (`wsh kube login NAME`) and becomes part of a kubeconfig
 * context name and of the proxy URL, so it must be a DNS label. `metadata.labels` are what roles'
 * `kubernetes_labels` match.
 * Internal to `resources/`; the public surface is `resources/index.ts`.
 *
 * @example
 *   kind: kube_cluster
 *   version: v3
 *   metadata: { name: prod, labels: { env: prod } }
 *   spec: { kubeconfig_path: /etc/warden/prod.kubeconfig }
 */
import { z } from 'zod';
import { metadataSchema, resourceSchema } from './common';

const DNS_LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

export const kubeClusterNameSchema = z
  .string({ error: 'expected a cluster name' })
  .refine((name) => DNS_LABEL.test(name), {
    error:
      'must be a DNS label: 1 to 63 lower-case letters, digits or "-", starting and ending with a letter or digit',
  });

const httpsUrl = z.string({ error: 'expected an https:// URL' }).refine(
  (text) => {
    try {
      const u = new URL(text);
      return u.protocol === 'https:' && u.hostname !== '' && !u.username && !u.password;
    } catch {
      return false;
    }
  },
  { error: 'expected an https:// URL without user or password, like "https://10.0.0.1:6443"' },
);

const path = z.string().min(1, { error: 'must not be empty' });

export const kubeClusterSpecSchema = z
  .strictObject({
    /** The API server (informational for heartbeated clusters). */
    server: httpsUrl.optional(),
    /** A kubeconfig on the kube_service host (its current context is used). */
    kubeconfig_path: path.optional(),
    ca_file: path.optional(),
    token_file: path.optional(),
    cert_file: path.optional(),
    key_file: path.optional(),
  })
  .superRefine((s, ctx) => {
    if (s.kubeconfig_path && (s.token_file || s.cert_file || s.key_file || s.ca_file)) {
      ctx.addIssue({
        code: 'custom',
        message: 'kubeconfig_path excludes ca_file, token_file, cert_file and key_file',
      });
    }
    if ((s.cert_file === undefined) !== (s.key_file === undefined)) {
      ctx.addIssue({ code: 'custom', message: 'cert_file and key_file go together' });
    }
    if (s.token_file && s.cert_file) {
      ctx.addIssue({ code: 'custom', message: 'use token_file or cert_file/key_file, not both' });
    }
  });

export const kubeClusterV3Schema = resourceSchema(
  'kube_cluster',
  'v3',
  metadataSchema(kubeClusterNameSchema),
  kubeClusterSpecSchema.prefault({}),
);
export type KubeClusterResource = z.output<typeof kubeClusterV3Schema>;
