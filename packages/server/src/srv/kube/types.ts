/**
 * Who is calling, as kube_service receives it (the shape of the proxy's request identity; an
 * agent does not import the proxy). Internal to `srv/kube`.
 */
import type { DeviceIdentity } from '@warden/api';

export interface KubeCaller {
  user: string;
  /** `bot` for a machine identity (required-for-humans exempts it); absent for people. */
  kind?: 'human' | 'bot';
  roles: readonly string[];
  logins: readonly string[];
  traits: Readonly<Record<string, readonly string[]>>;
  admin: boolean;
  device?: DeviceIdentity;
  cert?: { publicKeyDer: Buffer; notAfter: Date };
  /** A kube certificate's cluster (`KubeCerts`): the only cluster it may be used for. */
  kubeCluster?: string;
}
