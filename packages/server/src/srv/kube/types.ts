/**
 * Who is calling kube_service: the one `Identity` (access/), plus the cluster a kube
 * certificate is bound to when the caller presented one. Internal to `srv/kube`.
 */
import type { Identity } from '../../access';

export type KubeCaller = Identity & {
  /** A kube certificate's cluster (`KubeCerts`): the only cluster it may be used for. */
  kubeCluster?: string;
};
