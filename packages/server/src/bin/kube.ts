/**
 * Composition of Kubernetes access for `warden start`: kube_service (its configured clusters'
 * credentials and heartbeat, over the process's AccessChecker and SessionMonitor) and
 * its own HTTP server on the proxy port, chosen by TLS server name: connections for
 * `kube.<proxy name>` (`kubeTlsServerName`, in the proxy's certificate) carry only Kubernetes
 * requests (`/kube/<cluster>/…`), so kubectl never reaches the API or the Web UI, and those never
 * see Kubernetes paths. `start.ts` calls `startKubeAccess`, checks `isKubeHost` in its SNI, ALPN
 * and connection routing before the app host names, and hands such connections to `handle`.
 */
import { createServer as createHttpServer, type ServerOptions } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { kubeTlsServerName } from '@warden/api';

import type { Identity } from '../access';
import type { Backend } from '../backend';
import type { KubeServiceConfig } from '../config';
import type { ApiDeps } from '../proxy';
import { KubeCerts, KubeService } from '../srv/kube';
import type { ProtocolDeps } from './protocol-deps';

export interface KubeAccessDeps extends ProtocolDeps {
  config: KubeServiceConfig;
  backend: Backend;
  identify(certDer: Buffer): Promise<Identity>;
  /** The DNS names in the proxy's certificate (each gets a `kube.` name too: `kubeDnsNames`). */
  proxyDnsNames: readonly string[];
  /** The proxy's HTTP timeouts, for the Kubernetes HTTP server too. */
  http: ServerOptions;
  idleTimeoutMs: number;
}

/** The `kube.<name>` TLS server names to add to the proxy's certificate. */
export function kubeDnsNames(proxyDnsNames: readonly string[]): string[] {
  return [...new Set(proxyDnsNames.map((n) => kubeTlsServerName(n)))];
}

export interface KubeAccessComposition {
  /** undefined when `kube_service.enabled` is false. */
  service: KubeService | undefined;
  /** True when a TLS connection's server name is Kubernetes traffic (always false when disabled). */
  isKubeHost(servername: string | false | null | undefined): boolean;
  /** A TLS connection for a kube server name: Kubernetes requests only. */
  handle(socket: TLSSocket): void;
  /** For `apiRoutes(…, { listKubeClusters })`. */
  listKubeClusters(identity: Identity): Promise<unknown[]>;
  /** For `apiRoutes(…, { issueKubeCert })`. */
  issueKubeCert?: ApiDeps['issueKubeCert'];
  close(): Promise<void>;
}

export async function startKubeAccess(d: KubeAccessDeps): Promise<KubeAccessComposition> {
  if (!d.config.enabled)
    return {
      service: undefined,
      isKubeHost: () => false,
      handle: (socket) => socket.destroy(),
      listKubeClusters: async () => [],
      close: async () => undefined,
    };
  const certs = new KubeCerts({ backend: d.backend, cas: d.cas, clock: d.clock });
  const service = await KubeService.start({
    clusters: d.config.clusters,
    kubeClusters: d.services.kubeClusters,
    checker: d.checker,
    monitor: d.monitor,
    audit: d.audit,
    clock: d.clock,
    logger: d.logger,
    identify: d.identify,
    identifyKube: (der) => certs.identify(der),
  });
  const hosts = new Set(kubeDnsNames(d.proxyDnsNames));
  const http = createHttpServer(d.http, (req, res) => service.handleRequest(req, res));
  http.timeout = d.idleTimeoutMs;
  // Fed sockets by the proxy's TLS server, never listen()ed: start the timeout checks (as start.ts).
  http.emit('listening');
  http.on('upgrade', (req, socket, head) => service.handleUpgrade(req, socket, head));
  return {
    service,
    isKubeHost: (servername) => !!servername && hosts.has(servername.toLowerCase()),
    // The proxy's TLS server leaves Nagle on; a response's head and body are separate writes, and
    // with Nagle and the client's delayed ACK each small response could wait for the ACK.
    handle: (socket) => {
      socket.setNoDelay(true);
      http.emit('connection', socket);
    },
    issueKubeCert: (identity, pem, cluster, lifetime) => certs.issue(identity, pem, cluster, lifetime),
    listKubeClusters: async (identity) =>
      (await service.listFor(identity)).map((c) => ({
        name: c.metadata.name,
        labels: { ...(c.metadata.labels ?? {}) },
      })),
    async close() {
      http.close();
      service.close();
    },
  };
}
