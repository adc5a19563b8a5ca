/**
 * SSH user authentication for the node: only Warden user certificates, checked by our code
 * (ssh2 has no certificate support). A `publickey` request names the certificate algorithm
 * and carries the certificate blob; ssh2 hands us, unchanged, the whole SSH signature blob
 * (it strips the algorithm only when it equals the key's, which for certificates it never
 * does) and the data the client signed (session ID + request).
 *
 *   1. The algorithm is a certificate algorithm and matches the blob.
 *   2. The certificate: signed by a user CA key, of type user, within its validity window,
 *      no critical options (`CertAuthorities.verifyUserSshCert`).
 *   3. Warden's identity extensions: roles (JSON array), traits (JSON object), and the device
 *      extensions when present. Missing or malformed → refused (fail closed).
 *   4. The client's signature over the session, by the certified key.
 *
 * The principal (requested login) is NOT checked here: a valid certificate without the login
 * authenticates, and the connection is then refused channel by channel with the reason (see
 * service.ts), so users read why. Who may import: this folder. Tested by `user-cert.test.ts`.
 */
import {
  decodeSshCertificate,
  formatSshCertificate,
  SshCertAlgorithms,
  type SshCertificate,
  SshDeviceExtensions,
  SshIdentityExtensions,
  sshVerify,
  WardenError,
} from '@warden/api';
import type { CertAuthorities } from '../../ca';

/** Who a verified certificate speaks for. */
export interface CertHolder {
  user: string;
  roles: string[];
  traits: Record<string, string[]>;
  /** The logins (principals) the certificate allows. */
  principals: string[];
  /** `bot` when the certificate is a bot's (`warden-user-kind@…`). */
  kind?: 'bot';
  /** Device extensions as present on the certificate (all three when it was augmented). */
  device?: { deviceId: string; assetTag: string; credentialId: string };
  /** Extensions such as `permit-pty` and `permit-port-forwarding`. */
  extensions: Readonly<Record<string, string>>;
  /** Certificate expiry, milliseconds since the epoch. */
  expiresAt: number;
  serial: string;
}

const CERT_ALGORITHMS: readonly string[] = Object.values(SshCertAlgorithms);

function bad(reason: string): WardenError {
  return new WardenError('WARDEN_ERR_BAD_CERTIFICATE', `SSH certificate rejected: ${reason}`);
}

/** True when `algo` names an OpenSSH certificate type Warden issues. */
export function isCertificateAlgorithm(algo: string): boolean {
  return CERT_ALGORITHMS.includes(algo);
}

function parseJson(text: string | undefined, what: string): unknown {
  if (text === undefined) throw bad(`it has no ${what} extension (not a Warden user certificate)`);
  try {
    return JSON.parse(text);
  } catch {
    throw bad(`the ${what} extension is not valid JSON`);
  }
}

/** Reads the Warden identity out of a verified certificate (step 3). */
export function certHolder(cert: SshCertificate): CertHolder {
  const roles = parseJson(cert.extensions[SshIdentityExtensions.roles], 'roles');
  if (!Array.isArray(roles) || !roles.every((r) => typeof r === 'string' && r.length > 0))
    throw bad('the roles extension is not a list of role names');
  const traits = parseJson(cert.extensions[SshIdentityExtensions.traits], 'traits');
  if (
    typeof traits !== 'object' ||
    traits === null ||
    Array.isArray(traits) ||
    !Object.values(traits).every((v) => Array.isArray(v) && v.every((x) => typeof x === 'string'))
  )
    throw bad('the traits extension is not a map of lists of strings');
  if (cert.keyId === '') throw bad('it names no user (empty key ID)');
  const deviceId = cert.extensions[SshDeviceExtensions.deviceId];
  const assetTag = cert.extensions[SshDeviceExtensions.assetTag];
  const credentialId = cert.extensions[SshDeviceExtensions.credentialId];
  const anyDevice = [deviceId, assetTag, credentialId].some((v) => v !== undefined);
  return {
    user: cert.keyId,
    roles: roles as string[],
    traits: traits as Record<string, string[]>,
    principals: [...cert.validPrincipals],
    ...(cert.extensions[SshIdentityExtensions.userKind] === 'bot' && { kind: 'bot' as const }),
    // Partial device extensions stay visible (a device lock still matches the ID); the access
    // checker grants device trust only when all three are there.
    ...(anyDevice && {
      device: { deviceId: deviceId ?? '', assetTag: assetTag ?? '', credentialId: credentialId ?? '' },
    }),
    extensions: cert.extensions,
    expiresAt: Number(cert.validBefore) * 1000,
    serial: cert.serial.toString(),
  };
}

/**
 * Steps 1–3: the certificate in a `publickey` request. Throws WARDEN_ERR_BAD_CERTIFICATE.
 *
 * @example
 *   const { cert, holder } = verifyUserCertificate(cas, ctx.key.algo, ctx.key.data, clock.now());
 */
export function verifyUserCertificate(
  cas: CertAuthorities,
  algo: string,
  blob: Uint8Array,
  now: number,
): { cert: SshCertificate; holder: CertHolder } {
  if (!isCertificateAlgorithm(algo))
    throw bad(`${algo} is a plain key; this node accepts Warden certificates only`);
  let cert: SshCertificate;
  try {
    cert = decodeSshCertificate(blob);
  } catch {
    throw bad('it does not parse');
  }
  if (cert.algorithm !== algo) throw bad(`the request says ${algo} but the certificate is ${cert.algorithm}`);
  cas.verifyUserSshCert(formatSshCertificate(cert), { now });
  return { cert, holder: certHolder(cert) };
}

/** Step 4: the client's signature over `signedData`, by the certified key. */
export function verifyClientSignature(
  cert: SshCertificate,
  signedData: Uint8Array,
  signature: Uint8Array,
): boolean {
  try {
    return sshVerify(cert.publicKey, signedData, signature);
  } catch {
    return false;
  }
}
