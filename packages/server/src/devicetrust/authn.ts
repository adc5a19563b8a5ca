/**
 * Device authentication at login, server side (DESIGN §6): after the user logged in, the
 * client proves it holds the enrolled device's AK (a fresh quote over a nonce) and that the
 * same client holds the user's key (a signature over the nonce and the session ID); the
 * answer is the user's certificates again, with the three device extensions and the SAME
 * NotAfter. Both messages need the user's fresh certificate (mTLS).
 *
 *   wsh login                                            auth (DeviceAuthentication)
 *     │ begin { credential_id, device_data } ─────────▶  │ 1. device trust on (cluster or roles)
 *     │                                                  │ 2. a certificate without device extensions
 *     │                                                  │ 3. the device: found, enrolled, this
 *     │                                                  │    credential, not locked
 *     │ ◀── { session_id, nonce, pcr_selection } ──────  │ 4. nonce (single-use session)
 *     │ finish { session_id, quote, ssh_signature } ───▶ │ 5. same user and key as begin
 *     │                                                  │ 6. quote by the stored AK over the nonce
 *     │                                                  │ 7. the user's key signed nonce‖session
 *     │ ◀── { ssh_cert, tls_cert, expires, device } ───  │ 8. augmented certificates
 *
 * Every outcome is audited as `device.authenticate` (failures with the reason).
 * Internal to `devicetrust/`; the public surface is `devicetrust/index.ts`. Tested by
 * `authn.test.ts` (a software TPM) and against swtpm in test/devicetrust/.
 */
import { createHash, type KeyObject, verify } from 'node:crypto';
import {
  type AuditEventInput,
  type DeviceResource,
  type ErrorCode,
  isWardenError,
  keyFromSpki,
  pooledRandomBytes,
  rpc,
  WardenError,
} from '@warden/api';
import { isTpmError, verifyQuote } from '@warden/tpm';
import { type AccessChecker, type Identity, lockedError, sshPermits } from '../access';
import { type AuditLog, writeAuditEvent } from '../audit';
import type { Backend } from '../backend';
import type { CertAuthorities } from '../ca';
import type { Clock } from '../clock';
import type { Logger } from '../log';
import {
  akPublicOf,
  CeremonySessions,
  DEFAULT_MAX_OPEN_SESSIONS_PER_USER,
  DEVICE_PCR_SELECTION,
  fromB64,
  pcrSelectionForClient,
  quotePcrs,
  toB64,
} from './ceremony';
import { deviceSummary } from './enroll';
import type { DeviceInventory } from './inventory';

/** Errors users see, word for word (issue 5). */
export const AuthnErrors = {
  notFound: 'device not found',
  notEnrolled: 'device not enrolled',
  unknownCredential: 'unknown device credential',
  failed: 'device authentication failed',
  disabled: 'device trust disabled by cluster settings',
  alreadyAugmented:
    'this certificate already carries device extensions; log in again (`wsh login`) to authenticate the device',
} as const;

/** What the ceremony needs of the inventory (DeviceInventory; tests pass fakes). */
export type AuthnInventory = Pick<DeviceInventory, 'list' | 'findByCredentialId' | 'recordCollectedData'>;

export interface DeviceAuthenticationOptions {
  inventory: AuthnInventory;
  /**
   * The process's access checker: the device trust mode that applies to the caller, their
   * roles (SSH permits) and locks, from its live views (no backend read per ceremony).
   */
  checker: Pick<AccessChecker, 'deviceTrustMode' | 'resolve' | 'lockReason' | 'deviceOwnerBound'>;
  cas: Pick<CertAuthorities, 'issueUserCertificates'>;
  backend: Backend;
  clock: Clock;
  audit: AuditLog;
  logger: Logger;
  /** Time between begin and finish (default 5 min). */
  sessionTtlMs?: number;
  /** Device authentications a user may have begun and not finished (default 8). */
  maxOpenSessionsPerUser?: number;
}

interface AuthnSession {
  user: string;
  /** SHA-256 of the caller's certificate key (SPKI DER). */
  key_sha256: string;
  device_id: string;
  credential_id: string;
  nonce: string;
  collected: rpc.DeviceData;
  /**
   * `web`: a proof for a browser's web session (`verifyForWeb`), never augments certificates;
   * `bind` names the web device challenge it answers.
   */
  purpose?: 'web';
  bind?: string;
}

/** What a verified web proof returns: the device, and the challenge the proof was bound to. */
export interface WebProof {
  device: DeviceResource;
  credentialId: string;
  bind: string;
  collected: rpc.DeviceData;
}

/** Key hashes by certificate (`Identity.cert`: one object per verified certificate, shared by its calls). */
const keyHashes = new WeakMap<object, string>();

/** SHA-256 of the caller's certificate key (SPKI DER), base64; once per certificate object. */
function keyHash(cert: { publicKeyDer: Buffer }): string {
  let h = keyHashes.get(cert);
  if (h === undefined) {
    h = createHash('sha256').update(cert.publicKeyDer).digest('base64');
    // Only frozen ones (identify's): a mutable object could be given another key later.
    if (Object.isFrozen(cert)) keyHashes.set(cert, h);
  }
  return h;
}

/** The catalogue code of each refusal: clients decide by it, never by the message. */
export const AuthnErrorCodes = {
  notFound: 'WARDEN_ERR_DEVICE_NOT_FOUND',
  notEnrolled: 'WARDEN_ERR_DEVICE_NOT_ENROLLED',
  unknownCredential: 'WARDEN_ERR_DEVICE_UNKNOWN_CREDENTIAL',
  failed: 'WARDEN_ERR_DEVICE_AUTHN_FAILED',
  disabled: 'WARDEN_ERR_DEVICE_TRUST_DISABLED',
  alreadyAugmented: 'WARDEN_ERR_DEVICE_ALREADY_AUGMENTED',
} as const satisfies Record<keyof typeof AuthnErrors, ErrorCode>;

/** A refusal with a reason for the audit log that is not shown to the user. */
function failure(which: keyof typeof AuthnErrors, reason?: string): WardenError {
  return new WardenError(AuthnErrorCodes[which], AuthnErrors[which], reason ? { reason } : undefined);
}

/** User keys kept parsed (a user's key comes back at each ceremony of their login). */
const USER_KEY_CACHE_SIZE = 4096;

/**
 * Keys by their SPKI DER (the whole DER is the map key, so only the same bytes find a key),
 * oldest dropped first. A KeyObject never changes, and the JWK export the certificates
 * need is kept with it (`publicJwk`), so a key is parsed and exported once.
 */
class KeyCache {
  readonly #keys = new Map<string, KeyObject>();

  /** The key in `spkiDer`; undefined when it does not parse (not cached). */
  get(spkiDer: Buffer): KeyObject | undefined {
    const id = spkiDer.toString('base64');
    let key = this.#keys.get(id);
    if (!key) {
      try {
        key = keyFromSpki(spkiDer);
      } catch {
        return undefined;
      }
      if (this.#keys.size >= USER_KEY_CACHE_SIZE) this.#keys.delete(this.#keys.keys().next().value!);
      this.#keys.set(id, key);
    }
    return key;
  }
}

/** Verifies a signature by the user's key (ECDSA P-256 with SHA-256, or Ed25519). */
function verifyUserSignature(key: KeyObject | undefined, data: Buffer, signature: Uint8Array): boolean {
  if (!key) return false;
  try {
    const alg = key.asymmetricKeyType === 'ed25519' ? null : 'sha256';
    return verify(alg, data, key, signature);
  } catch {
    return false;
  }
}

export class DeviceAuthentication {
  readonly #o: DeviceAuthenticationOptions;
  readonly #sessions: CeremonySessions<AuthnSession>;
  readonly #userKeys = new KeyCache();
  /** Per device: the last write of collected data, and the batch waiting for it. */
  readonly #collecting = new Map<
    string,
    { tail: Promise<unknown>; next: { entries: rpc.DeviceData[]; written: Promise<void> } | undefined }
  >();

  constructor(o: DeviceAuthenticationOptions) {
    this.#o = o;
    this.#sessions = new CeremonySessions({
      backend: o.backend,
      clock: o.clock,
      kind: 'authn',
      ...(o.sessionTtlMs !== undefined ? { ttlMs: o.sessionTtlMs } : {}),
    });
  }

  /**
   * Records the data a device sent; ceremonies of the same device that finish while a write
   * for it is under way share the next write (one compare-and-swap for all of them).
   */
  #recordCollected(deviceId: string, data: rpc.DeviceData): Promise<void> {
    let q = this.#collecting.get(deviceId);
    if (!q) {
      q = { tail: Promise.resolve(), next: undefined };
      this.#collecting.set(deviceId, q);
    }
    if (q.next) {
      q.next.entries.push(data);
      return q.next.written;
    }
    const queue = q;
    const batch: { entries: rpc.DeviceData[]; written: Promise<void> } = {
      entries: [data],
      written: Promise.resolve(),
    };
    queue.next = batch;
    batch.written = queue.tail.then(() => {
      // Data arriving from now on waits for the next write.
      if (queue.next === batch) queue.next = undefined;
      return this.#o.inventory.recordCollectedData(deviceId, batch.entries);
    });
    const tail = batch.written.catch(() => undefined);
    queue.tail = tail;
    void tail.then(() => {
      if (queue.tail === tail && !queue.next) this.#collecting.delete(deviceId);
    });
    return batch.written;
  }

  async #audit(event: AuditEventInput): Promise<void> {
    await writeAuditEvent(this.#o.audit, this.#o.logger, event);
  }

  async #fail(caller: Identity, e: unknown, about: { deviceId?: string; credentialId?: string }) {
    const reason = isWardenError(e)
      ? typeof e.details?.reason === 'string'
        ? `${e.message}: ${e.details.reason}`
        : e.message
      : 'internal error';
    await this.#audit({
      type: 'device.authenticate',
      success: false,
      user: caller.user,
      ...(caller.clientAddr ? { addr: caller.clientAddr } : {}),
      ...(about.deviceId ? { device_id: about.deviceId } : {}),
      ...(about.credentialId ? { credential_id: about.credentialId } : {}),
      error: reason,
    });
    if (isWardenError(e) && e.details?.reason !== undefined) {
      // The reason is for the audit log; users read the catalogue message.
      return new WardenError(e.code, e.message);
    }
    return e;
  }

  /**
   * Steps 1–2: device trust applies to this user, and the certificate is a fresh, plain one
   * (a web proof may come with an augmented certificate: it augments nothing).
   */
  async #checkCaller(id: Identity, web = false): Promise<{ publicKeyDer: Buffer; notAfter: Date }> {
    if (id.admin || !id.cert) {
      throw new WardenError('WARDEN_ERR_ACCESS_DENIED', 'device authentication needs a user certificate');
    }
    if (this.#o.checker.deviceTrustMode(id) === 'off') throw failure('disabled');
    if (id.device && !web) throw failure('alreadyAugmented');
    return id.cert;
  }

  /**
   * Step 3: the enrolled device holding this credential, not locked (nor the caller with it,
   * nor everything while strict locking mode cannot trust the lock view).
   */
  async #device(
    identity: Identity,
    credentialId: string,
    data?: rpc.DeviceData,
    deviceId?: string,
  ): Promise<DeviceResource> {
    let device = await this.#o.inventory.findByCredentialId(credentialId);
    if (deviceId !== undefined && device && device.metadata.name !== deviceId) device = undefined;
    if (!device) {
      // Tell the user why: no such device, a device that is not enrolled, or another credential.
      const all = await this.#o.inventory.list();
      const same = all.find((d) =>
        deviceId !== undefined
          ? d.metadata.name === deviceId
          : d.spec.os_type === data?.os_type && d.spec.asset_tag === data?.serial_number,
      );
      if (!same) throw failure('notFound');
      if (same.spec.enroll_status !== 'enrolled' || !same.spec.credential) throw failure('notEnrolled');
      throw failure('unknownCredential');
    }
    if (data && (data.os_type !== device.spec.os_type || data.serial_number !== device.spec.asset_tag)) {
      throw failure(
        'failed',
        `device data (${data.os_type}, "${data.serial_number}") does not match the enrolled device`,
      );
    }
    const why = this.#o.checker.lockReason({
      ...identity,
      device: {
        deviceId: device.metadata.name,
        assetTag: device.spec.asset_tag,
        credentialId: device.spec.credential?.id ?? credentialId,
      },
    });
    if (why) throw lockedError(why);
    return device;
  }

  /**
   * Device authentication, first message: checks caller and device, answers with a nonce.
   * With `web`, the session can only be finished by `verifyForWeb` (browser device trust).
   */
  async begin(
    caller: Identity,
    req: rpc.DeviceAuthnBeginRequest,
    web?: { bind: string },
  ): Promise<rpc.DeviceAuthnBeginResponse> {
    let deviceId: string | undefined;
    try {
      // 1–2. Device trust applies; the certificate is plain (login).
      const cert = await this.#checkCaller(caller, web !== undefined);
      // 3. The device (and, with bind_owner, its owner).
      const device = await this.#device(caller, req.credential_id, req.device_data);
      deviceId = device.metadata.name;
      await this.#checkOwner(device, caller.user);
      // 4. The challenge.
      const nonce = pooledRandomBytes(32);
      const session_id = await this.#sessions.open(
        {
          user: caller.user,
          key_sha256: keyHash(cert),
          device_id: device.metadata.name,
          credential_id: req.credential_id,
          nonce: toB64(nonce),
          collected: req.device_data,
          ...(web ? { purpose: 'web' as const, bind: web.bind } : {}),
        },
        {
          owner: caller.user,
          max: this.#o.maxOpenSessionsPerUser ?? DEFAULT_MAX_OPEN_SESSIONS_PER_USER,
        },
      );
      return { session_id, nonce: toB64(nonce), pcr_selection: pcrSelectionForClient() };
    } catch (e) {
      throw await this.#fail(caller, e, { deviceId, credentialId: req.credential_id });
    }
  }

  /**
   * `device_trust.bind_owner`: a device with an owner authenticates only for that user, so
   * another account on a shared machine gets no device extensions (and is told whose it is).
   */
  async #checkOwner(device: DeviceResource, user: string): Promise<void> {
    const owner = device.spec.owner;
    if (!owner || owner === user) return;
    if (!this.#o.checker.deviceOwnerBound()) return;
    throw new WardenError(
      AuthnErrorCodes.failed,
      `${AuthnErrors.failed}: this device belongs to "${owner}"; with device_trust.bind_owner only its owner gets device extensions on it`,
    );
  }

  /** Steps 5–7 of both purposes: the caller of begin, a fresh quote by the AK, the user's signature. */
  async #verifyProof(id: Identity, session: AuthnSession, req: rpc.DeviceAuthnFinishRequest) {
    // 5. The caller of begin: same user, same key.
    const cert = await this.#checkCaller(id, session.purpose === 'web');
    if (session.user !== id.user || session.key_sha256 !== keyHash(cert)) {
      throw failure('failed', 'the session was begun with another certificate');
    }
    const device = await this.#device(id, session.credential_id, undefined, session.device_id);
    await this.#checkOwner(device, id.user);
    const credential = device.spec.credential!;
    // 6. A fresh quote by the enrolled AK.
    const nonce = fromB64(session.nonce);
    try {
      verifyQuote({
        akPublic: akPublicOf(credential.ak_public),
        attest: fromB64(req.quote.attest),
        signature: fromB64(req.quote.signature),
        nonce,
        pcrs: quotePcrs(req.quote),
        expectedSelection: [...DEVICE_PCR_SELECTION],
      });
    } catch (e) {
      if (isTpmError(e)) throw failure('failed', `quote: ${e.message}`);
      throw e;
    }
    // 7. The user's key signed this ceremony.
    const signed = rpc.deviceAuthnSignedData(nonce, req.session_id);
    const userKey = this.#userKeys.get(cert.publicKeyDer);
    if (!userKey || !verifyUserSignature(userKey, signed, fromB64(req.ssh_signature))) {
      throw failure('failed', "the signature by the user's key does not verify");
    }
    return { device, credential, cert, userKey };
  }

  /**
   * Browser device trust, second message: verifies the proof of a session begun with `web`
   * (steps 5–7) and returns the device and the challenge it was bound to; issues nothing.
   * The caller (the web module) checks the challenge's binding and audits the outcome.
   */
  async verifyForWeb(caller: Identity, req: rpc.DeviceAuthnFinishRequest): Promise<WebProof> {
    const session = await this.#sessions.take(req.session_id);
    const bind = session?.purpose === 'web' ? session.bind : undefined;
    if (!session || !bind) throw failure('failed', 'unknown, expired or used session');
    const { device } = await this.#verifyProof(caller, session, req);
    return { device, credentialId: session.credential_id, bind, collected: session.collected };
  }

  /** Device authentication, second message: checks the proofs and augments the certificates. */
  async finish(id: Identity, req: rpc.DeviceAuthnFinishRequest): Promise<rpc.DeviceAuthnFinishResponse> {
    const session = await this.#sessions.take(req.session_id);
    if (!session || session.purpose === 'web')
      throw await this.#fail(id, failure('failed', 'unknown, expired or used session'), {});
    const about = { deviceId: session.device_id, credentialId: session.credential_id };
    let device: DeviceResource;
    let issued: Awaited<ReturnType<CertAuthorities['issueUserCertificates']>>;
    try {
      // 5–7. Same caller; quote by the enrolled AK; the user's key signed.
      const proved = await this.#verifyProof(id, session, req);
      device = proved.device;
      const { cert, credential, userKey } = proved;
      // 8. The same certificates, with the device.
      issued = await this.#o.cas.issueUserCertificates({
        user: id.user,
        roles: id.roles,
        logins: id.logins,
        traits: id.traits,
        ...(id.kind === 'bot' && { kind: 'bot' as const }),
        publicKey: userKey,
        notAfter: cert.notAfter,
        now: this.#o.clock.now(),
        // The roles as they are now (a role edited since the login counts).
        permit: sshPermits(this.#o.checker.resolve(id).roles),
        device: {
          deviceId: device.metadata.name,
          assetTag: device.spec.asset_tag,
          credentialId: credential.id,
        },
      });
    } catch (e) {
      throw await this.#fail(id, e, about);
    }
    const auditDevice = {
      id: device.metadata.name,
      os_type: device.spec.os_type,
      asset_tag: device.spec.asset_tag,
      credential_id: session.credential_id,
    };
    // The device's collected data and both audit events (one batch of the audit log, in this
    // order) are written side by side: two durable writes, one wait.
    await Promise.all([
      this.#recordCollected(device.metadata.name, session.collected).catch((e: unknown) => {
        this.#o.logger.warn(
          { err: e, device: device.metadata.name },
          'could not record collected device data',
        );
      }),
      this.#audit({
        type: 'device.authenticate',
        success: true,
        user: id.user,
        ...(id.clientAddr ? { addr: id.clientAddr } : {}),
        device_id: device.metadata.name,
        credential_id: session.credential_id,
        device: auditDevice,
      }),
      this.#audit({
        type: 'cert.create',
        success: true,
        user: id.user,
        ...(id.clientAddr ? { addr: id.clientAddr } : {}),
        cert_type: 'user',
        roles: [...id.roles],
        logins: [...id.logins],
        expires: issued.notAfter.toISOString(),
        device_extensions: true,
        device: auditDevice,
      }),
    ]);
    return {
      ssh_cert: issued.sshCert,
      tls_cert: issued.tlsCert,
      expires: issued.notAfter.toISOString(),
      device: deviceSummary(device),
    };
  }
}
