/**
 * Test-only: a user logged in, for the unit tests of what a logged-in caller does (the device
 * ceremonies, the Web UI's device trust): a P-256 key, the user certificates the CAs issue for
 * it, and the caller the proxy sees for the TLS one — what `AuthServer.identify` makes of it
 * (the certificate's identity, its key and expiry) plus the client address.
 * Who may import: `*.test.ts` files.
 */
import { generateKeyPairSync, X509Certificate } from 'node:crypto';
import { type DeviceExtensions, type Identity, makeIdentity } from '../../packages/server/src/access';
import type { CertAuthorities } from '../../packages/server/src/ca';

type Cas = Pick<CertAuthorities, 'issueUserCertificates' | 'verifyUserTlsCert'>;

/** The caller the proxy sees for the TLS certificate `tlsCert` (PEM) at `now`, from `clientAddr`. */
export function callerOf(cas: Cas, tlsCert: string, now: number, clientAddr = '10.0.0.5'): Identity {
  const parsed = cas.verifyUserTlsCert(tlsCert, now);
  const x = new X509Certificate(tlsCert);
  const identity = makeIdentity({
    user: parsed.user,
    roles: parsed.roles,
    logins: parsed.logins,
    traits: parsed.traits,
    admin: false,
    ...(parsed.device ? { device: parsed.device } : {}),
    cert: {
      publicKeyDer: x.publicKey.export({ type: 'spki', format: 'der' }),
      notAfter: new Date(x.validTo),
    },
  });
  return { ...identity, clientAddr };
}

/**
 * `user` (alice) logged in at `now` with `roles` (access), the login `user`, `traits` (logins:
 * [user]) for `ttlMs` (8 h), with the device extensions of `device` when given: the key, what
 * was issued, and the caller from `clientAddr` (10.0.0.5).
 */
export async function loggedIn(
  cas: Cas,
  now: number,
  o: {
    user?: string;
    roles?: string[];
    traits?: Record<string, string[]>;
    ttlMs?: number;
    device?: DeviceExtensions;
    clientAddr?: string;
  } = {},
) {
  const user = o.user ?? 'alice';
  const key = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const issued = await cas.issueUserCertificates({
    user,
    roles: o.roles ?? ['access'],
    logins: [user],
    traits: o.traits ?? { logins: [user] },
    publicKey: key.publicKey,
    ttlMs: o.ttlMs ?? 8 * 3600_000,
    now,
    ...(o.device ? { device: o.device } : {}),
  });
  return { key, issued, caller: callerOf(cas, issued.tlsCert, now, o.clientAddr) };
}
