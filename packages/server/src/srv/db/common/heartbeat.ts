/**
 * The databases a db_service serves from its config, as the `db` resources `bin/` publishes
 * with services' `ResourceHeartbeat` (a TTL renewed at every beat).
 * Internal to `srv/db`; the public surface is `common/index.ts`. Tested by `heartbeat.test.ts`.
 */
import { type DbProtocol, type DbResource, validateResourceOfKind } from '@warden/api';

/** A `db` resource (validated) from the plain fields of a `db_service.databases` entry. */
export function dbResourceFromConfig(d: {
  name: string;
  protocol: DbProtocol;
  /** `host:port`. */
  uri: string;
  labels?: Readonly<Record<string, string>>;
  /** CA certificates (PEM) of the database's server certificate. */
  caCertPems?: readonly string[];
}): DbResource {
  return validateResourceOfKind('db', {
    kind: 'db',
    version: 'v3',
    metadata: {
      name: d.name,
      ...(d.labels && Object.keys(d.labels).length ? { labels: { ...d.labels } } : {}),
    },
    spec: {
      protocol: d.protocol,
      uri: d.uri,
      ...(d.caCertPems?.length ? { ca_cert: d.caCertPems.join('') } : {}),
    },
  });
}
