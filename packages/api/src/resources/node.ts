/**
 * `kind: node`, version v2: an SSH server Warden can route to. Two sorts:
 *
 *   - Warden nodes: the ssh_service registers itself by heartbeat. `metadata.name` is the
 *     node's stable ID (a UUID it keeps in `<data_dir>/host_uuid`), `metadata.expires` the
 *     heartbeat's TTL, so a node that stops heartbeating drops out.
 *   - Agentless OpenSSH nodes (`spec.sub_kind: openssh`): created by an admin with
 *     `wctl create`, usually without expiry; the proxy is their gate (DESIGN §4).
 *
 * `metadata.labels` are the node's static labels (what roles' `node_labels` match).
 * Internal to `resources/`; the public surface is `resources/index.ts`.
 *
 * @example
 *   kind: node
 *   version: v2
 *   metadata: { name: 0b7a6a1e-4a47-4a0f-9d4c-3e1d1c7c1a11, labels: { env: prod } }
 *   spec: { hostname: web-1, addr: "10.0.0.7:3022" }
 */
import { z } from 'zod';
import { metadataSchema, nameSchema, resourceSchema } from './common';

/** Sorts of node; absent means a node running Warden's ssh_service. */
export const NODE_SUB_KINDS = ['openssh'] as const;
export type NodeSubKind = (typeof NODE_SUB_KINDS)[number];

const HOST_PORT = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(\d{1,5})$/;

/** `host:port` (IPv6 hosts in brackets), port 1–65535. */
export const nodeAddrSchema = z.string({ error: 'expected host:port' }).refine(
  (text) => {
    const m = HOST_PORT.exec(text);
    const port = Number(m?.[1]);
    return m !== null && port >= 1 && port <= 65535;
  },
  { error: 'expected host:port like "10.0.0.7:3022" (IPv6 as "[::1]:3022")' },
);

export const nodeSpecSchema = z.strictObject({
  /** The host's name, as users type it (`wsh ssh root@web-1`). */
  hostname: z
    .string({ error: 'expected a host name' })
    .min(1, { error: 'must not be empty' })
    .max(253, { error: 'must be at most 253 characters' })
    .refine((text) => !/[\s/\p{Cc}]/u.test(text), {
      error: 'must not contain spaces, "/" or control characters',
    }),
  /** Where the proxy dials the node's SSH server. */
  addr: nodeAddrSchema,
  sub_kind: z.enum(NODE_SUB_KINDS).optional(),
});

export const nodeV2Schema = resourceSchema('node', 'v2', metadataSchema(nameSchema), nodeSpecSchema);
export type NodeResource = z.output<typeof nodeV2Schema>;
