/**
 * Kubernetes client certificates. kubectl is a Go program, and Go's X.509 parser refuses the
 * big-arc OIDs (`2.25.<uuid>`) of Warden's identity and device extensions, so kubectl cannot
 * load a login certificate. `wsh kube credentials` therefore asks for a kube certificate: a
 * plain user-CA client certificate (CN = user, OU = `warden-kube`) for a fresh key, valid for at
 * most an hour (the exec plugin's) or until the caller's certificate expires (`lifetime: login`,
 * the files of `wsh kube login --cert-files`; see docs/kubernetes.md), never past the caller's
 * certificate, issued only over mTLS with the caller's login certificate. The identity that certificate stood for — user, roles, traits and the
 * verified device extensions — is recorded in the backend under the new certificate's SHA-256
 * fingerprint (with the same expiry), and kube_service reads it back when kubectl presents the
 * certificate. So the device claim is kept without putting it into the certificate; the general
 * API refuses such certificates (no identity extension). The record also names the Kubernetes
 * cluster the certificate was asked for (`wsh kube credentials --cluster`): kube_service refuses
 * it for any other cluster.
 * Internal to `srv/kube`; the public surface is `index.ts`. Tested end to end in `test/kube/`.
 */
import { createHash, createPublicKey, X509Certificate } from 'node:crypto';
import { WardenError } from '@warden/api';
import { makeIdentity } from '../../access';
import type { Backend } from '../../backend';
import type { CertAuthorities } from '../../ca';
import type { Clock } from '../../clock';
import type { KubeCaller } from './types';

export const KUBE_CERTS_PREFIX = '/kube_certs/';
export const KUBE_CERT_MAX_TTL_MS = 60 * 60 * 1000;
const CLUSTER_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$/;

export class KubeCerts {
  constructor(private readonly o: { backend: Backend; cas: CertAuthorities; clock: Clock }) {}

  /**
   * Issues a kube certificate for `publicKeyPem` standing for `caller` (see the header), good for
   * `cluster` only when one is named (kube_service refuses it for any other). `login`: valid as
   * long as the caller's certificate, else at most an hour.
   */
  async issue(
    caller: KubeCaller,
    publicKeyPem: string,
    cluster?: string,
    lifetime: 'short' | 'login' = 'short',
  ): Promise<{ certPem: string; notAfter: Date }> {
    if (caller.admin)
      throw new WardenError('WARDEN_ERR_ACCESS_DENIED', 'the admin identity cannot use Kubernetes clusters');
    if (cluster !== undefined && !CLUSTER_NAME.test(cluster))
      throw new WardenError('WARDEN_ERR_BAD_PARAMETER', 'cluster must be a kube_cluster name');
    let publicKey: ReturnType<typeof createPublicKey>;
    try {
      publicKey = createPublicKey(publicKeyPem);
    } catch {
      throw new WardenError('WARDEN_ERR_BAD_PARAMETER', 'public_key must be a PEM public key');
    }
    const now = this.o.clock.now();
    const callerEnd = caller.cert?.notAfter.getTime() ?? now;
    const notAfter = new Date(
      lifetime === 'login' ? callerEnd : Math.min(callerEnd, now + KUBE_CERT_MAX_TTL_MS),
    );
    if (notAfter.getTime() - now < 1000) {
      throw new WardenError(
        'WARDEN_ERR_NOT_LOGGED_IN',
        'your certificate is about to expire; run `wsh login`',
      );
    }
    const issued = await this.o.cas.issueKubeClientCert({ user: caller.user, publicKey, notAfter, now });
    const fp = fingerprint(new X509Certificate(issued.certPem).raw);
    // What the certificate stands for (its key, expiry and the client's address come with each use).
    const record: KubeCaller = {
      ...makeIdentity({
        user: caller.user,
        kind: caller.kind,
        roles: caller.roles,
        logins: caller.logins,
        traits: caller.traits,
        ...(caller.device ? { device: caller.device } : {}),
      }),
      ...(cluster !== undefined ? { kubeCluster: cluster } : {}),
    };
    await this.o.backend.put(KUBE_CERTS_PREFIX + fp, JSON.stringify(record), {
      ttlMs: issued.notAfter.getTime() - now,
    });
    return issued;
  }

  /** The identity recorded for a kube certificate (already verified by TLS), or undefined. */
  async identify(certDer: Buffer): Promise<KubeCaller | undefined> {
    const cert = new X509Certificate(certDer);
    if (!/(^|\n)OU=warden-kube(\n|$)/.test(cert.subject)) return undefined;
    const item = await this.o.backend.get(KUBE_CERTS_PREFIX + fingerprint(certDer));
    if (!item) {
      throw new WardenError(
        'WARDEN_ERR_BAD_CERTIFICATE',
        'this Kubernetes certificate is unknown or expired; run `wsh kube login`',
      );
    }
    const { kubeCluster, ...fields } = JSON.parse(item.value) as Partial<KubeCaller> &
      Pick<KubeCaller, 'user'>;
    return {
      // Records written before kube callers were Identities have no `kind`: makeIdentity's default.
      ...makeIdentity({
        ...fields,
        admin: false,
        cert: {
          publicKeyDer: cert.publicKey.export({ type: 'spki', format: 'der' }),
          notAfter: new Date(cert.validTo),
        },
      }),
      ...(kubeCluster !== undefined ? { kubeCluster } : {}),
    };
  }
}

function fingerprint(der: Buffer): string {
  return createHash('sha256').update(der).digest('hex');
}
