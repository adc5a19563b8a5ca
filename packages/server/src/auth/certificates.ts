/**
 * What a person or a bot is entitled to when certificates are issued (locks on the user and
 * their roles, logins, the lifetime the roles allow), and the certificates themselves in the
 * form login, signup and bot join/renew all return. No audit here: each caller records its
 * own event.
 * Internal to `auth/`; the public surface is `auth/index.ts`.
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import { MAX_CERT_TTL_MS, parseAuthorizedKey, type rpc, type UserResource, WardenError } from '@warden/api';
import { allowedLogins, findLockInForce, lockMessage, maxSessionTtl, sshPermits } from '../access';
import type { SshPermits } from '../ca';
import { type AuthDeps, findRoles } from './deps';

/** What a person or bot gets: logins, the certificate TTL and SSH permits (from roles). */
export interface Entitlements {
  logins: string[];
  ttlMs: number;
  permit: SshPermits;
}

/**
 * Locks (read from the backend so a fresh lock is never missed), then logins and the
 * certificate lifetime: the shortest of the request, the roles' `max_session_ttl` and
 * Warden's ceiling. WardenError LOCKED when a lock on the user or a role is in force.
 */
export async function entitlements(
  o: Pick<AuthDeps, 'services' | 'clock'>,
  user: UserResource,
  requestedTtlMs: number | undefined,
): Promise<Entitlements> {
  const name = user.metadata.name;
  const roles = await findRoles(o.services, user.spec.roles);
  const lock = findLockInForce(
    await o.services.locks.list(),
    { user: name, roles: [...user.spec.roles] },
    o.clock.now(),
  );
  if (lock) throw new WardenError('WARDEN_ERR_LOCKED', lockMessage(lock));
  const logins = allowedLogins({ user: name, roles, traits: user.spec.traits });
  const ttlMs = Math.min(
    requestedTtlMs ?? MAX_CERT_TTL_MS,
    maxSessionTtl(roles) ?? MAX_CERT_TTL_MS,
    MAX_CERT_TTL_MS,
  );
  return { logins, ttlMs, permit: sshPermits(roles) };
}

/** SSH and X.509 certificates for the client's key, with the CAs a client needs beside them. */
export async function userCertificates(
  o: Pick<AuthDeps, 'cas' | 'clusterName' | 'clock'>,
  user: UserResource,
  grant: Entitlements,
  publicKey: KeyObject,
): Promise<rpc.LoginResponse> {
  const { cas, clusterName } = o;
  const name = user.metadata.name;
  const issued = await cas.issueUserCertificates({
    user: name,
    roles: user.spec.roles,
    logins: grant.logins,
    traits: user.spec.traits,
    ...(user.spec.bot ? { kind: 'bot' as const } : {}),
    publicKey,
    ttlMs: grant.ttlMs,
    now: o.clock.now(),
    permit: grant.permit,
  });
  return {
    user: name,
    cluster_name: clusterName,
    roles: user.spec.roles,
    logins: grant.logins,
    ssh_cert: issued.sshCert,
    tls_cert: issued.tlsCert,
    user_ca_pems: cas.tlsCertPems('user'),
    host_ca_pems: cas.tlsCertPems('host'),
    host_ca_known_hosts: cas.exportHostLine(clusterName),
    expires: issued.notAfter.toISOString(),
  };
}

/** The client's key from a login-shaped request: the SSH and SPKI forms must be the same key. */
export function clientKey(req: Pick<rpc.LoginRequest, 'ssh_public_key' | 'tls_public_key'>): KeyObject {
  let ssh: ReturnType<typeof parseAuthorizedKey>;
  let spki: KeyObject;
  try {
    ssh = parseAuthorizedKey(req.ssh_public_key);
    spki = createPublicKey(req.tls_public_key);
  } catch {
    throw new WardenError('WARDEN_ERR_BAD_PARAMETER', 'invalid public key in the login request');
  }
  const der = (k: KeyObject) => k.export({ type: 'spki', format: 'der' });
  if (!der(ssh.key).equals(der(spki))) {
    throw new WardenError(
      'WARDEN_ERR_BAD_PARAMETER',
      'the SSH and TLS public keys in the login request differ',
    );
  }
  return spki;
}
