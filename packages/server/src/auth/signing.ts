/**
 * Certificates for infrastructure: SSH host certificates for agentless OpenSSH nodes,
 * database server certificates, and the CA lines `wctl auth export` prints. Permissions are
 * checked by the caller (`AuthServer`), not here.
 * Internal to `auth/`; the public surface is `auth/index.ts`.
 */
import { isIP } from 'node:net';
import { type rpc, WardenError } from '@warden/api';
import type { z } from 'zod';
import type { Actor } from '../access';
import { type AuthDeps, auditWith } from './deps';

export class SigningService {
  readonly #o: AuthDeps;
  readonly #audit: ReturnType<typeof auditWith>;

  constructor(o: AuthDeps) {
    this.#o = o;
    this.#audit = auditWith(o);
  }

  /** An SSH host certificate for a host key (the cert goes to `HostCertificate` in sshd_config). */
  async signHost(
    actor: Actor,
    req: z.infer<typeof rpc.SignHostRequest>,
  ): Promise<z.infer<typeof rpc.SignHostResponse>> {
    const ssh_cert = this.#o.cas.issueHostSshCert({
      publicKey: req.public_key,
      hostId: req.hostnames[0]!,
      hostnames: req.hostnames,
      ttlMs: req.ttl_ms,
    });
    await this.#audit({
      type: 'cert.create',
      success: true,
      user: actor.user,
      addr: actor.addr,
      cert_type: 'host',
    });
    return { ssh_cert, host_ca_known_hosts: this.#o.cas.exportHostLine(this.#o.clusterName) };
  }

  /**
   * A database's TLS server certificate from the db CA (`wctl auth sign --format=db`), and
   * the db CA as the CA for the database's `ssl_ca_file`: the db CA signs the client
   * certificates db_service presents (CN = db user), and db_service trusts it for the
   * database's server certificate.
   */
  async signDb(
    actor: Actor,
    req: z.infer<typeof rpc.SignDbRequest>,
  ): Promise<z.infer<typeof rpc.SignDbResponse>> {
    const issued = await this.#o.cas.issueDbServerCert({
      dnsNames: req.hostnames.filter((h) => !isIP(h)),
      ipAddresses: req.hostnames.filter((h) => isIP(h)),
      publicKey: req.public_key,
      ...(req.ttl_ms !== undefined ? { ttlMs: req.ttl_ms } : {}),
    });
    await this.#audit({
      type: 'cert.create',
      success: true,
      user: actor.user,
      addr: actor.addr,
      cert_type: 'db',
      expires: issued.notAfter.toISOString(),
    });
    return {
      cert_pem: issued.certPem,
      client_ca_pems: this.#o.cas.tlsCertPems('db'),
      expires: issued.notAfter.toISOString(),
    };
  }

  /**
   * The public CA line of the user, openssh or host CA (no permission needed: it is public).
   * `openssh` is what agentless nodes trust (TrustedUserCAKeys): only the proxy gets its
   * certificates, per session, after the access check (DESIGN §4).
   */
  exportAuthority(type: string): { type: string; line: string } {
    if (type === 'user' || type === 'openssh') return { type, line: this.#o.cas.exportUserLine(type) };
    if (type === 'host') return { type, line: this.#o.cas.exportHostLine(this.#o.clusterName) };
    throw new WardenError(
      'WARDEN_ERR_BAD_PARAMETER',
      `unknown CA type "${type}" (expected openssh, user or host)`,
    );
  }
}
