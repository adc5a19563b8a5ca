/**
 * kube_service (DESIGN §7): Kubernetes API access through the proxy port with impersonation from
 * roles, the one AccessChecker, audit and the one SessionMonitor. See `service.ts` for the flow.
 * Who may import: `bin/` (composition). Tested by the colocated tests and end to end in
 * `test/kube/` (real kubectl, testkit's fake API server).
 */

export { KUBE_CERTS_PREFIX, KubeCerts } from './certs';
export { type KubeRequestInfo, kubeRequestInfo } from './request-info';
export {
  KUBE_PATH_PREFIX,
  KubeService,
  type KubeServiceOptions,
  kubeClusterResource,
  kubeStatus,
} from './service';
export type { KubeCaller } from './types';
export { type KubeUpstream, loadKubeUpstream } from './upstream';
export { closeFrame, serverFrame } from './ws-frames';
