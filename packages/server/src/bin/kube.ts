/**
 * Composition of Kubernetes access for `warden start`: kube_service (its configured clusters'
 * credentials and heartbeat, the live AccessChecker and SessionMonitor over watch-fed views) and
 * the proxy's `/kube/<cluster>/` route. `start.ts` calls `startKubeAccess` and routes requests
 * and upgrades whose path `service.matches`; tests compose it the same way.
 */

import { type Identity, liveAccessChecker, SessionMonitor } from '../access';
import type { AuditLog } from '../audit';
import type { Backend } from '../backend';
import type { CertAuthorities } from '../ca';
import type { Clock } from '../clock';
import type { KubeServiceConfig } from '../config';
import type { Logger } from '../log';
import type { Services } from '../services';
import { KubeCerts, KubeService } from '../srv/kube';

export interface KubeAccessDeps {
  config: KubeServiceConfig;
  services: Services;
  backend: Backend;
  cas: CertAuthorities;
  audit: AuditLog;
  clock: Clock;
  logger: Logger;
  identify(certDer: Buffer): Promise<Identity>;
}

export interface KubeAccessComposition {
  /** undefined when `kube_service.enabled` is false. */
  service: KubeService | undefined;
  /** For `apiRoutes(…, { listKubeClusters })`. */
  listKubeClusters(identity: Identity): Promise<unknown[]>;
  /** For `apiRoutes(…, { issueKubeCert })`. */
  issueKubeCert?(identity: Identity, publicKeyPem: string): Promise<{ certPem: string; notAfter: Date }>;
  close(): Promise<void>;
}

export async function startKubeAccess(d: KubeAccessDeps): Promise<KubeAccessComposition> {
  if (!d.config.enabled)
    return { service: undefined, listKubeClusters: async () => [], close: async () => undefined };
  const certs = new KubeCerts({ backend: d.backend, cas: d.cas, clock: d.clock });
  const views = d.services.accessViews({ logger: d.logger });
  await views.start();
  const checker = liveAccessChecker(views, { clock: d.clock });
  const monitor = new SessionMonitor({
    checker,
    clock: d.clock,
    logger: d.logger,
    changes: [
      (l) => views.locks.onChange(l),
      (l) => views.preference.onChange(l),
      (l) => views.roles.onChange(l),
    ],
  });
  let service: KubeService;
  try {
    service = await KubeService.start({
      clusters: d.config.clusters,
      kubeClusters: d.services.kubeClusters,
      checker,
      monitor,
      audit: d.audit,
      clock: d.clock,
      logger: d.logger,
      identify: d.identify,
      identifyKube: (der) => certs.identify(der),
    });
  } catch (e) {
    monitor.close();
    views.close();
    throw e;
  }
  return {
    service,
    issueKubeCert: (identity, pem) => certs.issue(identity, pem),
    listKubeClusters: async (identity) =>
      (await service.listFor(identity)).map((c) => ({
        name: c.metadata.name,
        labels: { ...(c.metadata.labels ?? {}) },
      })),
    async close() {
      service.close();
      monitor.close();
      views.close();
    },
  };
}
