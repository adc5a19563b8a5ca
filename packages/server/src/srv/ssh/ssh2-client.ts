/**
 * ssh2 (1.17) as the CLIENT the proxy uses towards agentless OpenSSH nodes (agentless.ts):
 * log in with a user certificate (the per-session openssh CA certificate) and accept only a
 * host certificate, checked by our code. ssh2 does neither by itself; the technique and its
 * reasons are those of `packages/client/src/ssh/ssh2-patch.ts` (wsh's SSH client), repeated
 * here because the server never imports the client package (DESIGN §2):
 *
 * 1. User certificates (PROTOCOL.certkeys): sshd wants the certificate type as the publickey
 *    algorithm, the certificate blob as the key, and a signature in the BASE algorithm's
 *    format; ssh2 would write the key's own type into both places. `patchUserCertificateAuth`
 *    builds the signed request itself (`Protocol#authPK` replaced on this connection only).
 * 2. Host certificates: `offerOnlyHostCertificates` offers ONLY `*-cert-v01@openssh.com`
 *    host key algorithms (a node with a plain host key fails the handshake: fail closed);
 *    `acceptHostCertificate`, called from `hostVerifier` once the certificate verified, lets
 *    ssh2's own exchange-hash signature check run against the certified key.
 *
 * Every internal we touch is checked before use: if ssh2 changes shape, connecting fails with
 * a clear error instead of skipping a check. Who may import: this folder (agentless.ts).
 * Tested end to end against a real OpenSSH sshd in test/ssh-agentless.e2e.test.ts.
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import { createRequire } from 'node:module';
import {
  encodeSshPublicKey,
  formatAuthorizedKey,
  parseSshCertificate,
  SshCertAlgorithms,
  type SshCertificate,
  sshSign,
  WardenError,
} from '@warden/api';
import ssh2 from 'ssh2';

/** Host key algorithms we offer: certificates only. */
export const HOST_CERT_ALGORITHMS: readonly string[] = [
  SshCertAlgorithms['ssh-ed25519'],
  SshCertAlgorithms['ecdsa-sha2-nistp256'],
];

const SSH_MSG_USERAUTH_REQUEST = 50;

// ---- the ssh2 internals we rely on (checked at run time) ---------------------------------

interface KexLists {
  kex: { array: string[] };
  serverHostKey: { array: string[] };
  cs: Record<'cipher' | 'mac' | 'compress' | 'lang', { array: string[] }>;
  sc: Record<'cipher' | 'mac' | 'compress' | 'lang', { array: string[] }>;
}
interface KexInitLike {
  lists: KexLists;
  constructor: new (obj: unknown) => KexInitLike;
}
interface KeyExchangeLike {
  _finished: boolean;
  _hostKey: Buffer | undefined;
  negotiated: { serverHostKey: string };
  sessionID: Buffer | undefined;
  getPublicKey(...args: unknown[]): unknown;
}
interface ProtocolLike {
  _offer: KexInitLike;
  _kex: KeyExchangeLike | undefined;
  _authsQueue: string[];
  _packetRW: { write: { allocStart: number; alloc(n: number): Buffer; finalize(p: Buffer): Buffer } };
  authPK(username: string, pubKey: unknown, keyAlgo?: unknown, cbSign?: unknown): void;
}
/** ssh2's private marker of parsed keys, reached through a key it parsed. */
interface Ssh2ParsedKey {
  type: string;
  getPublicSSH(): Buffer;
  isPrivateKey(): boolean;
}

const requireCjs = createRequire(import.meta.url);
type SendPacket = (proto: ProtocolLike, packet: Buffer, bypass?: boolean) => boolean;
let sendPacketFn: SendPacket | undefined;

function internalsChanged(what: string): WardenError {
  return new WardenError(
    'WARDEN_ERR_INTERNAL',
    `the installed ssh2 library is not the version Warden's proxy was written for (${what}); reinstall Warden's dependencies`,
  );
}

/** ssh2's own packet sender (queues during a key exchange, else encrypts and writes). */
function sendPacket(): SendPacket {
  if (!sendPacketFn) {
    const utils = requireCjs('ssh2/lib/protocol/utils.js') as { sendPacket?: unknown };
    if (typeof utils.sendPacket !== 'function') throw internalsChanged('no protocol sendPacket');
    sendPacketFn = utils.sendPacket as SendPacket;
  }
  return sendPacketFn;
}

function protocolOf(client: ssh2.Client): ProtocolLike {
  const proto = (client as unknown as { _protocol?: ProtocolLike })._protocol;
  if (
    !proto ||
    typeof proto.authPK !== 'function' ||
    !Array.isArray(proto._authsQueue) ||
    typeof proto._packetRW?.write?.alloc !== 'function' ||
    !Array.isArray(proto._offer?.lists?.serverHostKey?.array) ||
    typeof proto._offer.constructor !== 'function'
  ) {
    throw internalsChanged('protocol object');
  }
  return proto;
}

// ---- 1. user certificates ----------------------------------------------------------------

/** The user's key and certificate as ssh2 sees them: the certificate is the public key. */
export interface CertificateKey {
  /** What ssh2's authHandler takes as `key`. */
  readonly ssh2Key: unknown;
  readonly certificate: SshCertificate;
  readonly privateKey: KeyObject;
}

/**
 * Pairs the user's private key with its OpenSSH certificate line. Throws
 * WARDEN_ERR_BAD_CERTIFICATE when the certificate is not for this key.
 */
export function certificateKey(privateKey: KeyObject, certLine: string): CertificateKey {
  const certificate = parseSshCertificate(certLine);
  const publicKey = createPublicKey(privateKey);
  if (!encodeSshPublicKey(publicKey).equals(encodeSshPublicKey(certificate.publicKey))) {
    throw new WardenError('WARDEN_ERR_BAD_CERTIFICATE', 'the session certificate is not for the session key');
  }
  // A key ssh2 parsed itself carries its private "parsed" marker; our object inherits it.
  const base = ssh2.utils.parseKey(formatAuthorizedKey(publicKey));
  if (base instanceof Error || Array.isArray(base)) throw internalsChanged('parseKey');
  const blob = certificate.blob;
  const ssh2Key: Ssh2ParsedKey = Object.create(base, {
    type: { value: certificate.algorithm },
    comment: { value: certificate.keyId },
    getPublicSSH: { value: () => blob },
    isPrivateKey: { value: () => true },
    getPrivatePEM: { value: () => '' },
    // Reached only if the authPK patch did not take: refuse rather than send a signature
    // sshd would reject (ssh2 then reports that authentication failed).
    sign: { value: () => new Error('certificate keys sign only through the Warden authPK patch') },
  });
  return { ssh2Key, certificate, privateKey };
}

function sshString(b: Uint8Array | string): Buffer {
  const data = typeof b === 'string' ? Buffer.from(b, 'utf8') : Buffer.from(b);
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  return Buffer.concat([len, data]);
}

/**
 * Replaces `authPK` on the client's protocol so that the signed publickey request for `key`
 * carries the certificate as the public key and a signature in the base algorithm's format:
 *
 *   byte      SSH_MSG_USERAUTH_REQUEST
 *   string    user, "ssh-connection", "publickey"
 *   boolean   TRUE
 *   string    "ecdsa-sha2-nistp256-cert-v01@openssh.com"
 *   string    certificate blob
 *   string    signature ("ecdsa-sha2-nistp256", r, s) over session id || the fields above
 *
 * Call right after `client.connect()` (authentication starts only after the handshake).
 */
export function patchUserCertificateAuth(client: ssh2.Client, key: CertificateKey): void {
  const proto = protocolOf(client);
  const send = sendPacket();
  const original = proto.authPK;
  proto.authPK = function authPK(this: ProtocolLike, username, pubKey, keyAlgo, cbSign) {
    const signing = typeof keyAlgo === 'function' || typeof cbSign === 'function';
    if (pubKey !== key.ssh2Key || !signing) {
      original.call(this, username, pubKey, keyAlgo, cbSign);
      return;
    }
    const sessionId = this._kex?.sessionID;
    if (!Buffer.isBuffer(sessionId)) throw internalsChanged('no session id');
    const body = Buffer.concat([
      Buffer.from([SSH_MSG_USERAUTH_REQUEST]),
      sshString(String(username)),
      sshString('ssh-connection'),
      sshString('publickey'),
      Buffer.from([1]),
      sshString(key.certificate.algorithm),
      sshString(key.certificate.blob),
    ]);
    const signature = sshSign(key.privateKey, Buffer.concat([sshString(sessionId), body]));
    const payload = Buffer.concat([body, sshString(signature)]);
    const writer = this._packetRW.write;
    const packet = writer.alloc(payload.length);
    packet.set(payload, writer.allocStart);
    this._authsQueue.push('publickey');
    send(this, writer.finalize(packet));
  };
}

// ---- 2. host certificates ----------------------------------------------------------------

/**
 * Makes the client offer only certificate host key algorithms. Call right after
 * `client.connect()`: the offer is read when the server's version line arrives.
 */
export function offerOnlyHostCertificates(client: ssh2.Client): void {
  const proto = protocolOf(client);
  const l = proto._offer.lists;
  const pick = (d: KexLists['cs']) => ({
    cipher: d.cipher.array,
    mac: d.mac.array,
    compress: d.compress.array,
    lang: d.lang.array,
  });
  proto._offer = new proto._offer.constructor({
    kex: l.kex.array,
    serverHostKey: [...HOST_CERT_ALGORITHMS],
    cs: pick(l.cs),
    sc: pick(l.sc),
  });
}

/**
 * Called from ssh2's hostVerifier once `verified` (decoded from `hostKeyBlob`) passed our
 * checks: lets ssh2's own exchange-hash signature check run against the certified key (see the
 * header comment for why the switch happens at `getPublicKey()`).
 */
export function acceptHostCertificate(
  client: ssh2.Client,
  hostKeyBlob: Buffer,
  verified: SshCertificate,
): void {
  const kex = protocolOf(client)._kex;
  if (
    !kex ||
    typeof kex.getPublicKey !== 'function' ||
    typeof kex.negotiated?.serverHostKey !== 'string' ||
    !Buffer.isBuffer(kex._hostKey) ||
    !kex._hostKey.equals(hostKeyBlob) ||
    kex._finished
  ) {
    throw internalsChanged('key exchange object');
  }
  const certBlob = kex._hostKey;
  const plainBlob = encodeSshPublicKey(verified.publicKey);
  const plainAlgorithm = verified.keyType;
  const getPublicKey = kex.getPublicKey;
  kex.getPublicKey = function patchedGetPublicKey(this: KeyExchangeLike, ...args: unknown[]) {
    // Only inside finish(), after K_S (the certificate) went into the exchange hash.
    if (this._finished && this._hostKey === certBlob) {
      this._hostKey = plainBlob;
      this.negotiated.serverHostKey = plainAlgorithm;
    }
    return getPublicKey.apply(this, args);
  };
}
