/**
 * `kind: db`, version v3: a database Warden can route to (PostgreSQL or MySQL). Two sources:
 *
 *   - db_service registers the databases of its config by heartbeat: `metadata.expires` is
 *     the heartbeat's TTL, so a database whose agent stops heartbeating drops out.
 *   - Admins `wctl create` them (usually without expiry) for a db_service to serve.
 *
 * `metadata.name` is what users type (`wsh db connect NAME`), `metadata.labels` what roles'
 * `db_labels` match. `spec.uri` is where db_service dials the database; `spec.ca_cert` the
 * CA that signs the database's server certificate when it is not Warden's db CA.
 * Internal to `resources/`; the public surface is `resources/index.ts`.
 *
 * @example
 *   kind: db
 *   version: v3
 *   metadata: { name: orders, labels: { env: prod } }
 *   spec: { protocol: postgres, uri: "db-1.internal:5432" }
 */
import { z } from 'zod';
import { metadataSchema, nameSchema, resourceSchema } from './common';
import { nodeAddrSchema } from './node';

/** Database protocols Warden speaks. */
export const DB_PROTOCOLS = ['postgres', 'mysql'] as const;
export type DbProtocol = (typeof DB_PROTOCOLS)[number];

const PEM_CERTIFICATES =
  /^\s*(?:-----BEGIN CERTIFICATE-----\r?\n[A-Za-z0-9+/=\r\n]+-----END CERTIFICATE-----\s*)+$/;

/** One or more PEM certificates (a CA bundle). */
export const pemCertificatesSchema = z
  .string({ error: 'expected PEM certificates' })
  .refine((text) => PEM_CERTIFICATES.test(text), {
    error: 'expected one or more PEM certificates ("-----BEGIN CERTIFICATE-----")',
  });

export const dbSpecSchema = z.strictObject({
  protocol: z.enum(DB_PROTOCOLS, { error: 'expected "postgres" or "mysql"' }),
  /** `host:port` where db_service reaches the database (TLS with a client certificate). */
  uri: nodeAddrSchema,
  /** CA of the database's server certificate; absent: Warden's db CA signed it. */
  ca_cert: pemCertificatesSchema.optional(),
});

/** Database names are what users type: no `/`, spaces or control characters. */
export const dbV3Schema = resourceSchema('db', 'v3', metadataSchema(nameSchema), dbSpecSchema);
export type DbResource = z.output<typeof dbV3Schema>;
