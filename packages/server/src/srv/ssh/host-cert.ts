/**
 * Presenting an OpenSSH host certificate from an ssh2 (1.17) server, so that `ssh` with only
 * the cluster's `@cert-authority` line in known_hosts accepts the node
 * (`StrictHostKeyChecking=yes`). ssh2's server knows nothing of certificates; what it takes
 * (PROTOCOL.certkeys, RFC 5656 §4):
 *
 *   KEXINIT   server_host_key_algorithms lists `ecdsa-sha2-nistp256-cert-v01@openssh.com`
 *   KEX reply K_S = the certificate blob (also what the exchange hash H covers)
 *             signature of H = `string "ecdsa-sha2-nistp256", string (mpint r, mpint s)`,
 *             i.e. the BASE algorithm's name and format, made with the certified key.
 *
 * How we get there without editing node_modules, in two steps:
 *
 * 1. `hostKeyEntries()` gives ssh2's `hostKeys` two keys: a "certificate key", a view of the
 *    parsed host key whose `type` is the certificate algorithm and whose `getPublicSSH()` is
 *    the certificate blob (offered first), and the plain key (for clients that don't do
 *    certificates). ssh2 offers the algorithms of the keys it is given, in order.
 * 2. ssh2 writes the NEGOTIATED algorithm name into the signature, which would be the
 *    certificate algorithm. `presentHostCertificate()` runs on each connection before its key
 *    exchange (the server's `connection` event comes with the client's version line, before
 *    the client's KEXINIT is read) and watches `protocol._kex`. When a key exchange starts
 *    that negotiated the certificate algorithm, it renames the negotiated algorithm to the
 *    base one and maps that name, for this connection only, to a view of the key that
 *    presents the certificate. ssh2 then sends K_S = certificate, signs H with the key
 *    (ssh2 converts ECDSA DER to the SSH format by the base type) and names it
 *    `ecdsa-sha2-nistp256`: exactly what OpenSSH verifies. A rekey goes through the same path.
 *
 * Every internal used is checked when a connection starts; if ssh2 changes shape, the
 * connection is refused with an error in the log (fail closed), never served half-patched.
 * Who may import: this folder. Tested end to end against the real `ssh` client in
 * `test/ssh-node/` (StrictHostKeyChecking=yes with only the @cert-authority line).
 */

import { SshCertAlgorithms, type SshKeyType } from '@warden/api';
import ssh2, { type Connection, type ParsedKey } from 'ssh2';

/** The host key and its certificate, in the forms ssh2 needs. */
export interface HostCertMaterial {
  /** The host key as ssh2 parsed it (private). */
  key: ParsedKey;
  /** The certificate's wire blob (from `cas.issueHostSshCert`). */
  certBlob: Buffer;
  baseAlgorithm: SshKeyType;
  certAlgorithm: string;
}

interface KexLike {
  negotiated?: { serverHostKey?: string };
}

interface ProtocolLike {
  _hostKeys: Record<string, unknown>;
  _kex: KexLike | undefined;
}

/**
 * Parses a host private key (PEM that ssh2 reads: `EC PRIVATE KEY` for ECDSA P-256) and
 * pairs it with its certificate. Throws when the key is not what the certificate certifies.
 */
export function hostCertMaterial(keyPem: string, certBlob: Buffer, publicKeyBlob: Buffer): HostCertMaterial {
  const parsed = ssh2.utils.parseKey(keyPem);
  if (parsed instanceof Error) throw new Error(`the SSH host key does not parse: ${parsed.message}`);
  const key = Array.isArray(parsed) ? parsed[0] : parsed;
  if (!key?.isPrivateKey()) throw new Error('the SSH host key is not a private key');
  if (!key.getPublicSSH().equals(publicKeyBlob))
    throw new Error('the SSH host key is not the key its certificate certifies');
  const baseAlgorithm = key.type as SshKeyType;
  if (!Object.hasOwn(SshCertAlgorithms, baseAlgorithm))
    throw new Error(`unsupported SSH host key type ${key.type}`);
  return { key, certBlob, baseAlgorithm, certAlgorithm: SshCertAlgorithms[baseAlgorithm] };
}

/** A view of the host key that presents the certificate; `type` names the algorithm ssh2 offers. */
function certificateView(m: HostCertMaterial, type: string): ParsedKey {
  // Object.create keeps ssh2's private symbols (the PEMs, the "parsed key" marker) reachable
  // through the prototype, so ssh2 signs with the real key.
  return Object.create(m.key, {
    type: { value: type, enumerable: true },
    getPublicSSH: { value: () => m.certBlob },
  }) as ParsedKey;
}

/**
 * The `hostKeys` for `new ssh2.Server(...)`: the certificate first (preferred by clients that
 * trust the host CA), then the plain key.
 */
export function hostKeyEntries(m: HostCertMaterial): { key: ParsedKey }[] {
  return [{ key: certificateView(m, m.certAlgorithm) }, { key: m.key }];
}

function protocolOf(conn: Connection): ProtocolLike {
  const proto = (conn as unknown as { _protocol?: unknown })._protocol as Partial<ProtocolLike> | undefined;
  const ok =
    typeof proto === 'object' &&
    proto !== null &&
    typeof proto._hostKeys === 'object' &&
    proto._hostKeys !== null &&
    '_kex' in proto &&
    Object.getOwnPropertyDescriptor(proto, '_kex')?.writable === true;
  if (!ok)
    throw new Error(
      'ssh2 internals changed (Client._protocol._hostKeys/_kex): cannot present the host certificate',
    );
  return proto as ProtocolLike;
}

/**
 * Makes this connection sign its key exchange correctly when the client picks the
 * certificate algorithm (step 2 above). Call from the server's `connection` event.
 * Throws when ssh2's internals are not as expected (refuse the connection then).
 */
export function presentHostCertificate(conn: Connection, m: HostCertMaterial): void {
  const proto = protocolOf(conn);
  const shared = proto._hostKeys;
  const asBase = certificateView(m, m.baseAlgorithm);
  let kex = proto._kex;
  Object.defineProperty(proto, '_kex', {
    configurable: true,
    enumerable: true,
    get: () => kex,
    set: (value: KexLike | undefined) => {
      kex = value;
      const negotiated = value?.negotiated;
      if (negotiated?.serverHostKey === m.certAlgorithm) {
        negotiated.serverHostKey = m.baseAlgorithm;
        proto._hostKeys = Object.assign(Object.create(null), shared, { [m.baseAlgorithm]: asBase });
      } else {
        proto._hostKeys = shared;
      }
    },
  });
}
