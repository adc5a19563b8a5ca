/**
 * Which nodes we believe: a node must present an SSH host CERTIFICATE signed by the cluster's
 * host CA (the key on the profile's known_hosts `@cert-authority` line), of type host, valid
 * now, listing one of the node's names. Warden's own nodes and agentless OpenSSH nodes (host
 * certificate from `wctl auth sign --host=NAME`) both qualify; a plain host key never does.
 * Who may import: this folder (index.ts re-exports). Tested by host-cert.test.ts.
 */
import type { KeyObject } from 'node:crypto';
import {
  decodeSshCertificate,
  parseAuthorizedKey,
  SshCertAlgorithms,
  type SshCertificate,
  verifySshCertificate,
  WardenError,
} from '@warden/api';

/**
 * The CA keys of the `@cert-authority` lines in known_hosts text (OpenSSH format:
 * `@cert-authority <patterns> <key type> <base64> [comment]`). Other lines are ignored; a
 * malformed `@cert-authority` line is an error (never silently skipped).
 *
 * The host patterns are for OpenSSH's own lookups (`wsh config`); `wsh ssh` trusts the CA for
 * the nodes the proxy routes to and checks the certificate's principals instead.
 *
 * @example
 *   hostCaKeys('@cert-authority *.example,example ssh-ed25519 AAAAC3… type=host') // [KeyObject]
 */
export function hostCaKeys(knownHosts: string): KeyObject[] {
  const keys: KeyObject[] = [];
  for (const raw of knownHosts.split('\n')) {
    const line = raw.trim();
    if (!line.startsWith('@cert-authority')) continue;
    const m = /^@cert-authority\s+\S+\s+(\S+\s+\S+.*)$/.exec(line);
    if (!m?.[1]) {
      throw new WardenError(
        'WARDEN_ERR_BAD_CERTIFICATE',
        'malformed @cert-authority line in your profile; run `wsh login` again',
      );
    }
    keys.push(parseAuthorizedKey(m[1]).key);
  }
  return keys;
}

const CERT_ALGORITHMS = new Set<string>(Object.values(SshCertAlgorithms));

export interface HostCertificateCheck {
  /** Host CA public keys (from hostCaKeys()). */
  caKeys: readonly KeyObject[];
  /** Names of the node (name, hostname…); the certificate must list at least one. */
  principals: readonly string[];
  /** Milliseconds since the epoch. */
  now: number;
  /** For messages: how the user named the node. */
  nodeName: string;
}

function keyType(blob: Uint8Array): string {
  if (blob.length < 4) return '';
  const len = Buffer.from(blob).readUInt32BE(0);
  return Buffer.from(blob)
    .subarray(4, 4 + len)
    .toString('latin1');
}

/**
 * Checks the host key a node presented (its SSH wire blob). Returns the certificate; throws
 * WARDEN_ERR_BAD_CERTIFICATE with a message that names the node and the reason.
 *
 * @example
 *   verifyHostCertificate(blob, { caKeys: hostCaKeys(profile.knownHosts),
 *     principals: ['node1', 'node1.example.com'], now: Date.now(), nodeName: 'node1' })
 */
export function verifyHostCertificate(blob: Uint8Array, check: HostCertificateCheck): SshCertificate {
  const refuse = (reason: string) =>
    new WardenError(
      'WARDEN_ERR_BAD_CERTIFICATE',
      `refusing to connect to node "${check.nodeName}": ${reason}`,
    );
  const type = keyType(blob);
  if (!CERT_ALGORITHMS.has(type)) {
    throw refuse(
      `it presented a plain ${type || 'unknown'} host key; Warden nodes must present a host certificate from the cluster's host CA`,
    );
  }
  if (check.caKeys.length === 0) {
    throw refuse('your profile has no host CA (@cert-authority line); run `wsh login` again');
  }
  let cert: SshCertificate;
  try {
    cert = decodeSshCertificate(blob);
    verifySshCertificate(cert, check.caKeys, { now: check.now, type: 'host' });
  } catch (e) {
    throw refuse(
      `host certificate rejected: ${(e as Error).message.replace(/^SSH certificate rejected: /, '')}`,
    );
  }
  if (!check.principals.some((p) => p !== '' && cert.validPrincipals.includes(p))) {
    throw refuse(
      `its host certificate is for ${JSON.stringify(cert.validPrincipals)}, not ${check.principals
        .filter(Boolean)
        .map((p) => JSON.stringify(p))
        .join(' or ')}`,
    );
  }
  return cert;
}
