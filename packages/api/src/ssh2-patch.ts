/**
 * `@warden/api/ssh2-patch`: where ssh2 (1.17) falls short as an SSH client that logs in with
 * an OpenSSH user certificate and accepts only a certified host key, patched at run time on
 * ONE `Client` instance (never in node_modules, never on a shared prototype). Two callers:
 * wsh's SSH client (packages/client/src/ssh/connect.ts, towards Warden and OpenSSH nodes) and
 * the proxy towards agentless OpenSSH nodes (packages/server/src/srv/ssh/agentless.ts, with
 * the per-session openssh CA certificate). It lives here, as a subpath export of the package
 * both may import, so that `@warden/api` itself never loads ssh2.
 *
 * 1. User certificates (PROTOCOL.certkeys). OpenSSH's sshd wants, in the publickey request,
 *    the certificate type as the public key algorithm (`ecdsa-sha2-nistp256-cert-v01@openssh.com`),
 *    the certificate blob as the public key, and the signature in the BASE algorithm's format
 *    (`ecdsa-sha2-nistp256`). ssh2 writes the key's own type into both places, so sshd refuses
 *    the signature. We hand ssh2 a key object whose public half is the certificate; the query
 *    (no signature) goes through ssh2 unchanged, and the signed request for that key is built
 *    here (`Protocol#authPK` replaced on this connection's protocol object).
 *
 * 2. Host certificates. ssh2 neither offers `*-cert-v01@openssh.com` host key algorithms nor
 *    can it check a key exchange signed by a certified host key. We offer ONLY certificate
 *    algorithms (a node with a plain host key fails the handshake: fail closed), verify the
 *    certificate with our code in `hostVerifier`, and then let ssh2 check the exchange-hash
 *    signature against the certified key. Its `KeyExchange#finish()` hashes K_S (which must stay
 *    the certificate blob, as sent), then calls `getPublicKey()` (the next field of H), then
 *    compares the signature's algorithm with `negotiated.serverHostKey` and parses K_S as a
 *    plain key. From that `getPublicKey()` call on we show it the certified plain key and its
 *    algorithm, so its own signature check runs against the key we verified.
 *
 * 3. Both callers log in through `connectWithCertificates`, which puts 1 and 2 together on one
 *    `client.connect` (one publickey attempt, the host judged by the caller's check).
 *
 * Every internal we touch is checked before use: if ssh2 changes shape, connecting fails with
 * a clear error instead of skipping a check. Who may import: the two callers above, through
 * the subpath (never re-exported from the package root). Unit tests beside this file; tested
 * against a real OpenSSH sshd in test/ssh-client/ (a wrong CA, a plain host key and a wrong
 * principal are refused; cert login works) and test/ssh-agentless.e2e.test.ts.
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import { createRequire } from 'node:module';
import ssh2 from 'ssh2';
// The SSH files directly, not ./certs (whose X.509 half wsh ssh must not load).
import { parseSshCertificate, SshCertAlgorithms, type SshCertificate } from './certs/ssh-cert';
import { encodeSshPublicKey, formatAuthorizedKey, sshSign } from './certs/ssh-key';
import { WardenError } from './errors';

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
    `the installed ssh2 library is not the version Warden was written for (${what}); reinstall Warden's dependencies`,
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
 * WARDEN_ERR_BAD_CERTIFICATE, with `mismatch` as its message (the caller knows what the user
 * should do), when the certificate is not for this key.
 *
 * @example
 *   const key = certificateKey(privateKey, certLine, 'the SSH certificate in your profile is not for your key; run `wsh login` again');
 */
export function certificateKey(
  privateKey: KeyObject,
  certLine: string,
  mismatch = 'the SSH certificate is not for this key',
): CertificateKey {
  const certificate = parseSshCertificate(certLine);
  const publicKey = createPublicKey(privateKey);
  if (!encodeSshPublicKey(publicKey).equals(encodeSshPublicKey(certificate.publicKey))) {
    throw new WardenError('WARDEN_ERR_BAD_CERTIFICATE', mismatch);
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

// ---- both, for one login -----------------------------------------------------------------

/** How `connectWithCertificates` logs in and judges the host. */
export interface CertificateLogin {
  /** The user's key and certificate: the one publickey attempt. */
  key: CertificateKey;
  /** Decodes and checks the host's certificate from its key blob; throws to refuse the host. */
  checkHost(hostKeyBlob: Buffer): SshCertificate;
  /** The host was refused (`checkHost` threw, or its key exchange could not be taken over). */
  hostRefused(e: unknown): void;
  /** The connection could not be patched (ssh2 changed): the attempt must end. */
  failed(e: unknown): void;
}

/**
 * Starts `client` logging in over `config.sock` with a certificate only, from both sides: one
 * publickey attempt with `login.key` (patchUserCertificateAuth), certificate host key
 * algorithms only (offerOnlyHostCertificates), and the host's certificate checked by
 * `login.checkHost` before ssh2 checks the exchange's signature (acceptHostCertificate). The
 * caller listens for 'ready' and 'error' as with `client.connect`.
 *
 * @example
 *   connectWithCertificates(client, { sock, username: 'root', readyTimeout: 20_000 }, {
 *     key,
 *     checkHost: (blob) => verifyHostCertificate(blob, { caKeys, principals, now: Date.now() }),
 *     hostRefused: fail,
 *     failed: fail,
 *   });
 */
export function connectWithCertificates(
  client: ssh2.Client,
  config: Omit<ssh2.ConnectConfig, 'username' | 'authHandler' | 'hostVerifier'> & { username: string },
  login: CertificateLogin,
): void {
  let authTried = false;
  client.connect({
    ...config,
    authHandler: (_methodsLeft, _partial, next) => {
      if (authTried) return next(false as never);
      authTried = true;
      next({
        type: 'publickey',
        username: config.username,
        key: login.key.ssh2Key,
      } as ssh2.PublicKeyAuthMethod);
    },
    hostVerifier: (blob: Buffer, done: (ok: boolean) => void) => {
      try {
        acceptHostCertificate(client, blob, login.checkHost(blob));
        done(true);
      } catch (e) {
        // Not done(false): ssh2 1.17 then keeps parsing the rest of the chunk (NEWKEYS),
        // reaches a second fatal error and throws from the socket's data handler. The caller
        // drops the transport instead; the unfinished key exchange can never complete.
        login.hostRefused(e);
      }
    },
  });
  try {
    offerOnlyHostCertificates(client);
    patchUserCertificateAuth(client, login.key);
  } catch (e) {
    login.failed(e);
  }
}
