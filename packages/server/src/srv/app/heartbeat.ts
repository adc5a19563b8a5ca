/**
 * The apps an app_service serves from its config, as the `app` resources `bin/` publishes
 * with services' `ResourceHeartbeat` (a TTL renewed at every beat, as for databases).
 * Internal to `srv/app`; the public surface is `index.ts`.
 */
import { type AppResource, validateResourceOfKind } from '@warden/api';
import type { AppConfig } from '../../config';

/** An `app` resource (validated) from an `app_service.apps` entry. */
export function appResourceFromConfig(a: AppConfig): AppResource {
  return validateResourceOfKind('app', {
    kind: 'app',
    version: 'v3',
    metadata: {
      name: a.name,
      ...(a.description ? { description: a.description } : {}),
      ...(Object.keys(a.labels).length ? { labels: { ...a.labels } } : {}),
    },
    spec: {
      uri: a.uri,
      ...(a.publicAddr ? { public_addr: a.publicAddr } : {}),
      ...(a.rewriteHeaders.length ? { rewrite: { headers: a.rewriteHeaders.map((h) => ({ ...h })) } } : {}),
      ...(a.insecureSkipVerify ? { insecure_skip_verify: true } : {}),
      ...(a.auditRequests ? { audit_requests: true } : {}),
    },
  });
}
