/**
 * The TPM enrollment ceremony, server side (DESIGN §6). The enrollment token authenticates
 * the client; no user certificate is needed.
 *
 *   wsh device enroll                                   auth (DeviceEnrollment)
 *     │ begin { token, credential_id, device_data,        │ 1. spend the token (single use, even if
 *     │         ek { public, cert_der? },                 │    what follows fails)
 *     │         ak { public, creation_* } } ────────────▶ │ 2. device data = the registered device
 *     │                                                   │ 3. EK: classify (tpm_ekcert_trusted |
 *     │                                                   │    tpm_ekcert | tpm_ekpub)
 *     │                                                   │ 4. AK: attributes, certified creation
 *     │ ◀── { session_id, nonce, challenge, pcr_selection }  5. MakeCredential(EK, AK name) + nonce
 *     │ finish { session_id, solution, quote } ─────────▶ │ 6. solution = credential
 *     │                                                   │ 7. AK quote over the nonce
 *     │ ◀── { device } ─────────────────────────────────  │ 8. device enrolled with the AK
 *
 * EK classification: with `cluster_auth_preference.spec.device_trust.ekcert_allowed_cas`
 * set, the EK certificate is required and must chain to one of them (`tpm_ekcert_trusted`);
 * without it, the EK certificate is verified as far as the issuer certificates the TPM holds
 * go (`tpm_ekcert`, `ek_cert_verified` tpm_root | tpm_issuer; a bad signature is refused),
 * and one whose signature can't be checked counts for nothing (`tpm_ekpub`, `unchecked`), as
 * does a bare EK. Every outcome is audited as `device.enroll`.
 *
 * Binding to the device: an `ek:` asset tag must be the hash of the EK presented (which
 * credential activation then proves); a DMI asset tag is self-reported (`wctl devices ls`
 * says so) unless the EK certificate chains to an allowed CA. One EK backs at most one
 * device (`ek_sha256` in the credential).
 * Internal to `devicetrust/`; the public surface is `devicetrust/index.ts`. Tested by
 * `enroll.test.ts` (a software TPM) and against swtpm in test/devicetrust/.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import {
  type AuditEventInput,
  type DeviceAttestationType,
  type DeviceResource,
  type EkCertVerification,
  isWardenError,
  type rpc,
  spkiFromKey,
  WardenError,
} from '@warden/api';
import {
  type Certificate,
  checkAkAttributes,
  checkEkCertificateChain,
  checkEkMatchesCertificate,
  decodePublic,
  encodeIdObject,
  isTpmError,
  makeCredential,
  objectName,
  publicKeyFromTpmt,
  TPMA_OBJECT,
  type TpmtPublic,
  verifyCertifyCreation,
  verifyEkCertificate,
  verifyQuote,
} from '@warden/tpm';
import { type AccessChecker, type Identity, NO_CLUSTER_SETTINGS } from '../access';
import { type AuditLog, writeAuditEvent } from '../audit';
import type { Backend } from '../backend';
import type { Clock } from '../clock';
import type { Logger } from '../log';
import {
  akPublicOf,
  CeremonySessions,
  DEVICE_PCR_SELECTION,
  fromB64,
  pcrSelectionForClient,
  quotePcrs,
  refused,
  rememberAkPublic,
  toB64,
} from './ceremony';
import type { DeviceInventory } from './inventory';
import { deviceLabel, ekAlreadyBacks } from './inventory';

/** Errors users see, word for word (issue 5). */
export const EnrollErrors = {
  missingEkCert: 'tpm device did not submit an ek_cert and ekcert_allowed_cas is configured',
  ekCertPrefix: 'presented EKCert failed verification: ',
  activation: 'credential activation verification failed',
  attestation: 'platform attestation verification failed',
  session:
    'the enrollment session expired or was already used; run `wsh device enroll` again with a new token',
} as const;

/** What the ceremony needs of the inventory (DeviceInventory; tests pass fakes). */
export type EnrollInventory = Pick<
  DeviceInventory,
  'spendEnrollToken' | 'enroll' | 'undoEnroll' | 'enrollConflicts' | 'list'
>;

export interface DeviceEnrollmentOptions {
  inventory: EnrollInventory;
  /**
   * The process's access checker: `auto_enroll` and `ekcert_allowed_cas` from its live view
   * of the cluster settings (no backend read per ceremony).
   */
  checker: Pick<AccessChecker, 'enrollmentSettings'>;
  backend: Backend;
  clock: Clock;
  audit: AuditLog;
  logger: Logger;
  /** Time between begin and finish (default 5 min). */
  sessionTtlMs?: number;
}

/** What enrollment reads of the cluster settings (`AccessChecker.enrollmentSettings`). */
type EnrollmentSettings = NonNullable<ReturnType<AccessChecker['enrollmentSettings']>>;

/**
 * Who asks: the caller's identity when the request carried a user certificate (the user then
 * owns the device), else only the client's address (the enrollment token authenticates).
 */
type EnrollCaller = Identity | { clientAddr?: string };

/** The user of a caller with a certificate. */
function userOf(caller: EnrollCaller): string | undefined {
  return 'user' in caller ? caller.user : undefined;
}

interface EnrollSession {
  device_id: string;
  asset_tag: string;
  os_type: string;
  credential: {
    id: string;
    public_key_der: string;
    attestation_type: DeviceAttestationType;
    ek_cert_serial?: string;
    ek_cert_verified?: EkCertVerification;
    ek_cert_issuers?: string[];
    ek_sha256: string;
    ak_public: string;
  };
  collected: rpc.DeviceData;
  owner?: string;
  /** Enrolled without a token at the owner's login (`auto_enroll`). */
  auto?: boolean;
  nonce: string;
  /** SHA-256 of the MakeCredential secret (the secret itself is never stored). */
  challenge_sha256: string;
}

/** EK attributes every TCG EK template sets: a restricted decryption key that never leaves the TPM. */
const EK_REQUIRED =
  TPMA_OBJECT.fixedTPM | TPMA_OBJECT.fixedParent | TPMA_OBJECT.restricted | TPMA_OBJECT.decrypt;

function sha256(b: Uint8Array): Buffer {
  return createHash('sha256').update(b).digest();
}

/** A device as the ceremonies report it to clients. */
export function deviceSummary(d: DeviceResource): rpc.DeviceSummary {
  return {
    id: d.metadata.name,
    os_type: d.spec.os_type,
    asset_tag: d.spec.asset_tag,
    enroll_status: d.spec.enroll_status,
    ...(d.spec.credential ? { credential_id: d.spec.credential.id } : {}),
    ...(d.spec.credential ? { attestation_type: d.spec.credential.attestation_type } : {}),
    ...(d.spec.owner ? { owner: d.spec.owner } : {}),
  };
}

export class DeviceEnrollment {
  readonly #o: DeviceEnrollmentOptions;
  readonly #sessions: CeremonySessions<EnrollSession>;

  constructor(o: DeviceEnrollmentOptions) {
    this.#o = o;
    this.#sessions = new CeremonySessions({
      backend: o.backend,
      clock: o.clock,
      kind: 'enroll',
      ...(o.sessionTtlMs !== undefined ? { ttlMs: o.sessionTtlMs } : {}),
    });
  }

  /** The enrollment settings from the checker's live view; refused while they are unknown. */
  #settings(): EnrollmentSettings {
    const settings = this.#o.checker.enrollmentSettings();
    if (!settings) throw new WardenError('WARDEN_ERR_ACCESS_DENIED', NO_CLUSTER_SETTINGS);
    return settings;
  }

  async #audit(event: AuditEventInput): Promise<void> {
    await writeAuditEvent(this.#o.audit, this.#o.logger, event);
  }

  /** Audits a refusal and returns the error to throw (unknown errors pass unchanged). */
  async #fail(
    caller: EnrollCaller,
    e: unknown,
    about: { device?: { id: string; asset_tag?: string; os_type?: string }; credentialId?: string },
  ): Promise<unknown> {
    const message = isWardenError(e) ? e.message : 'internal error';
    await this.#audit({
      type: 'device.enroll',
      success: false,
      ...(userOf(caller) ? { user: userOf(caller) } : {}),
      ...(caller.clientAddr ? { addr: caller.clientAddr } : {}),
      ...(about.device
        ? {
            device_id: about.device.id,
            ...(about.device.asset_tag ? { asset_tag: about.device.asset_tag } : {}),
            ...(about.device.os_type ? { os_type: about.device.os_type } : {}),
          }
        : {}),
      ...(about.credentialId ? { credential_id: about.credentialId } : {}),
      error: message,
    });
    return e;
  }

  /**
   * Enrollment, first message: spends the token, checks the device and its keys, and answers
   * with the credential challenge and a nonce.
   */
  async begin(
    req: rpc.DeviceEnrollBeginRequest,
    caller: EnrollCaller = {},
  ): Promise<rpc.DeviceEnrollBeginResponse> {
    // 1. The token, spent whatever happens next — or, without one, auto-enrollment.
    let device: DeviceResource;
    let settings: EnrollmentSettings;
    const auto = req.token === undefined;
    try {
      // The settings first: while they are unknown here, no token is spent.
      settings = this.#settings();
      device = auto
        ? await this.#autoEnrollable(req.device_data, caller, settings)
        : await this.#o.inventory.spendEnrollToken(req.token!, caller.clientAddr);
    } catch (e) {
      throw await this.#fail(caller, e, { credentialId: req.credential_id, ...(auto ? { auto } : {}) });
    }
    const about = {
      device: { id: device.metadata.name, asset_tag: device.spec.asset_tag, os_type: device.spec.os_type },
      credentialId: req.credential_id,
    };
    try {
      // 2. The device data must describe the registered device.
      checkDeviceData(device, req.device_data);
      // 3. The EK, and the device it may back: an `ek:` asset tag names exactly this EK, and
      //    one EK backs at most one device.
      const ek = this.#classifyEk(req.ek, settings);
      const ekSha256 = ekFingerprint(ek.public);
      checkEkAssetTag(device, ekSha256);
      const conflicts = await this.#o.inventory.enrollConflicts(
        ekSha256,
        req.credential_id,
        device.metadata.name,
      );
      if (conflicts.ek) throw ekAlreadyBacks(conflicts.ek);
      // 4. The AK: an attestation key created inside this TPM.
      const akPublic = checkAk(req.ak);
      if (conflicts.credential) {
        throw new WardenError(
          'WARDEN_ERR_ALREADY_EXISTS',
          `device credential "${req.credential_id}" is already enrolled for another device`,
        );
      }
      // 5. The challenge: a credential only this EK can release, and only to this AK.
      const challenge = randomBytes(32);
      const made = makeCredential({
        ekPublic: ek.public,
        objectName: objectName(akPublic),
        credential: challenge,
      });
      const nonce = randomBytes(32);
      const session_id = await this.#sessions.open({
        device_id: device.metadata.name,
        asset_tag: device.spec.asset_tag,
        os_type: device.spec.os_type,
        credential: {
          id: req.credential_id,
          public_key_der: toB64(spkiFromKey(publicKeyFromTpmt(akPublic))),
          attestation_type: ek.type,
          ...ek.record,
          ek_sha256: ekSha256,
          ak_public: req.ak.public,
        },
        collected: req.device_data,
        ...(userOf(caller) ? { owner: userOf(caller) } : {}),
        ...(auto ? { auto } : {}),
        nonce: toB64(nonce),
        challenge_sha256: toB64(sha256(challenge)),
      });
      // Finish (and the device's authentications after it) verify with this AK: its key once.
      rememberAkPublic(req.ak.public, akPublic);
      return {
        session_id,
        nonce: toB64(nonce),
        challenge: {
          credential_blob: toB64(encodeIdObject(made.credentialBlob)),
          secret: toB64(made.secret),
        },
        pcr_selection: pcrSelectionForClient(),
      };
    } catch (e) {
      throw await this.#fail(caller, mapTpmError(e, 'invalid enrollment request'), about);
    }
  }

  /**
   * Auto-enrollment (`device_trust.auto_enroll`): no token — a logged-in user's TPM enrolls
   * the device an admin (or an inventory import) registered by its asset tag, if it is not
   * enrolled yet. The rest of the ceremony (EK binding of `ek:` tags, `ekcert_allowed_cas`,
   * credential activation, quote) is the same as with a token. A device that is not in the
   * inventory is never auto-enrolled.
   */
  async #autoEnrollable(
    data: rpc.DeviceData,
    caller: EnrollCaller,
    settings: EnrollmentSettings,
  ): Promise<DeviceResource> {
    if (!settings.autoEnroll)
      throw new WardenError(
        'WARDEN_ERR_INVALID_TOKEN',
        'an enrollment token is required: auto-enrollment is off in this cluster (device_trust.auto_enroll)',
      );
    const user = userOf(caller);
    if (!user)
      throw new WardenError(
        'WARDEN_ERR_NOT_LOGGED_IN',
        'auto-enrollment needs a logged-in user (`wsh login`)',
      );
    const registered = (await this.#o.inventory.list()).filter(
      (d) => d.spec.asset_tag === data.serial_number && d.spec.os_type === data.os_type,
    );
    if (registered.length === 0)
      throw refused(
        'WARDEN_ERR_DEVICE_NOT_FOUND',
        `device "${data.serial_number}" (${data.os_type}) is not in the inventory, so it is not enrolled ` +
          'automatically; ask an administrator to register it (`wctl devices add` or `wctl devices import`)',
      );
    const open = registered.find((d) => d.spec.enroll_status !== 'enrolled');
    // An owner recorded by an administrator (an inventory import) is whose machine it is.
    if (open?.spec.owner && open.spec.owner !== user)
      throw new WardenError(
        'WARDEN_ERR_ACCESS_DENIED',
        `device "${data.serial_number}" is registered to "${open.spec.owner}"; only they enroll it automatically`,
      );
    if (!open)
      throw new WardenError(
        'WARDEN_ERR_ALREADY_EXISTS',
        `device "${data.serial_number}" is already enrolled; auto-enrollment enrolls a registered device once`,
      );
    return open;
  }

  /** Enrollment, second message: checks the solution and the quote, then enrolls the device. */
  async finish(
    req: rpc.DeviceEnrollFinishRequest,
    caller: EnrollCaller = {},
  ): Promise<rpc.DeviceEnrollFinishResponse> {
    const session = await this.#sessions.take(req.session_id);
    if (!session)
      throw await this.#fail(caller, refused('WARDEN_ERR_DEVICE_CEREMONY_EXPIRED', EnrollErrors.session), {});
    const about = {
      device: { id: session.device_id, asset_tag: session.asset_tag, os_type: session.os_type },
      credentialId: session.credential.id,
    };
    let enrolled: DeviceResource;
    try {
      // 6. ActivateCredential released exactly the challenge.
      const want = fromB64(session.challenge_sha256);
      const got = sha256(fromB64(req.solution));
      if (want.length !== got.length || !timingSafeEqual(want, got))
        throw refused('WARDEN_ERR_DEVICE_ATTESTATION_FAILED', EnrollErrors.activation);
      // 7. The AK quotes the PCRs over the nonce.
      try {
        verifyQuote({
          akPublic: akPublicOf(session.credential.ak_public),
          attest: fromB64(req.quote.attest),
          signature: fromB64(req.quote.signature),
          nonce: fromB64(session.nonce),
          pcrs: quotePcrs(req.quote),
          expectedSelection: [...DEVICE_PCR_SELECTION],
        });
      } catch (e) {
        if (isTpmError(e))
          throw refused('WARDEN_ERR_DEVICE_ATTESTATION_FAILED', EnrollErrors.attestation, {
            tpm_code: e.code,
          });
        throw e;
      }
      // 8. Enrolled.
      enrolled = await this.#o.inventory.enroll(
        session.device_id,
        session.credential,
        session.collected,
        session.owner,
      );
    } catch (e) {
      throw await this.#fail(caller, e, about);
    }
    const recorded = this.#audit({
      type: 'device.enroll',
      success: true,
      ...(userOf(caller) ? { user: userOf(caller) } : {}),
      ...(caller.clientAddr ? { addr: caller.clientAddr } : {}),
      device_id: enrolled.metadata.name,
      asset_tag: enrolled.spec.asset_tag,
      os_type: enrolled.spec.os_type,
      credential_id: session.credential.id,
      attestation_type: session.credential.attestation_type,
      ...(session.auto ? { auto: true } : {}),
      ...(session.credential.ek_cert_verified
        ? { ek_cert_verified: session.credential.ek_cert_verified }
        : {}),
      device: {
        id: enrolled.metadata.name,
        os_type: enrolled.spec.os_type,
        asset_tag: enrolled.spec.asset_tag,
        credential_id: session.credential.id,
      },
    });
    try {
      await recorded;
    } catch (e) {
      // Not enrolled unaudited (issue 15 item 5): the enrollment is taken back.
      await this.#o.inventory
        .undoEnroll(enrolled.metadata.name, session.credential.id)
        .catch((err) => this.#o.logger.error({ err }, 'could not undo an unaudited enrollment'));
      throw e;
    }
    this.#o.logger.info(
      { device: enrolled.metadata.name, attestation: session.credential.attestation_type },
      `device ${deviceLabel(enrolled)} enrolled`,
    );
    return { device: deviceSummary(enrolled) };
  }

  /**
   * The EK and how far its certificate was verified (issue 15 item 8). With allowed CAs the
   * certificate must chain to one of them (through the issuers the TPM holds). Without, it is
   * checked as far as the TPM's own chain goes — validity dates, then each signature up to a
   * self-signed root — and a signature that doesn't verify with its issuer's key is refused;
   * with no issuer at hand the signature can't be checked, so the certificate is recorded as
   * `unchecked` and the device enrolls on its bare EK (`tpm_ekpub`), never as `tpm_ekcert`.
   */
  #classifyEk(
    ek: rpc.DeviceEnrollBeginRequest['ek'],
    settings: EnrollmentSettings,
  ): { public: TpmtPublic; type: DeviceAttestationType; record: EkCertRecord } {
    let ekPublic: TpmtPublic;
    try {
      ekPublic = decodePublic(fromB64(ek.public));
    } catch {
      throw new WardenError('WARDEN_ERR_BAD_PARAMETER', 'invalid EK public area');
    }
    if (
      (ekPublic.objectAttributes & EK_REQUIRED) !== EK_REQUIRED ||
      ekPublic.objectAttributes & TPMA_OBJECT.sign
    ) {
      throw refused(
        'WARDEN_ERR_DEVICE_ATTESTATION_FAILED',
        'the presented EK is not an endorsement key (a restricted decryption key bound to the TPM)',
      );
    }
    const allowed = settings.ekCertAllowedCas;
    const certDer = ek.cert_der ? fromB64(ek.cert_der) : undefined;
    const issuers = (ek.chain_der ?? []).map(fromB64);
    const now = new Date(this.#o.clock.now());
    if (allowed.length > 0 && !certDer) {
      throw refused('WARDEN_ERR_DEVICE_ATTESTATION_FAILED', EnrollErrors.missingEkCert);
    }
    if (!certDer) return { public: ekPublic, type: 'tpm_ekpub', record: {} };
    try {
      if (allowed.length > 0) {
        const { certificate, chain } = verifyEkCertificate(certDer, {
          roots: [...allowed],
          intermediates: issuers,
          now,
        });
        checkEkMatchesCertificate(ekPublic, certificate);
        return {
          public: ekPublic,
          type: 'tpm_ekcert_trusted',
          record: ekCertRecord(certificate.serialNumber, 'allowed_ca', chain),
        };
      }
      const { certificate, chain, reach } = checkEkCertificateChain(certDer, { issuers, now });
      checkEkMatchesCertificate(ekPublic, certificate);
      if (reach === 'none')
        return { public: ekPublic, type: 'tpm_ekpub', record: { ek_cert_verified: 'unchecked' } };
      return {
        public: ekPublic,
        type: 'tpm_ekcert',
        record: ekCertRecord(certificate.serialNumber, reach === 'root' ? 'tpm_root' : 'tpm_issuer', chain),
      };
    } catch (e) {
      if (isTpmError(e))
        throw refused('WARDEN_ERR_DEVICE_ATTESTATION_FAILED', EnrollErrors.ekCertPrefix + e.message, {
          tpm_code: e.code,
        });
      throw e;
    }
  }
}

/** What the credential records about the EK certificate. */
type EkCertRecord = Pick<
  EnrollSession['credential'],
  'ek_cert_serial' | 'ek_cert_verified' | 'ek_cert_issuers'
>;

function ekCertRecord(serial: string, verified: EkCertVerification, chain: Certificate[]): EkCertRecord {
  return {
    ek_cert_serial: serial,
    ek_cert_verified: verified,
    ek_cert_issuers: chain.slice(1).map((c) => c.subjectText || c.issuerText || '(unnamed CA)'),
  };
}

/** The device data must name the registered device: same OS, same asset tag. */
function checkDeviceData(device: DeviceResource, data: rpc.DeviceData): void {
  if (data.os_type !== device.spec.os_type) {
    throw refused(
      'WARDEN_ERR_DEVICE_MISMATCH',
      `this enrollment token is for device ${deviceLabel(device)}, but this device runs ${data.os_type}`,
    );
  }
  if (data.serial_number !== device.spec.asset_tag) {
    throw refused(
      'WARDEN_ERR_DEVICE_MISMATCH',
      `this enrollment token is for device ${deviceLabel(device)}, but this device's asset tag is ` +
        `"${data.serial_number}" (\`wsh device asset-tag\`)`,
    );
  }
}

/** base64url(SHA-256 of the EK public key, SPKI DER): what an `ek:` asset tag holds. */
export function ekFingerprint(ekPublic: TpmtPublic): string {
  return sha256(spkiFromKey(publicKeyFromTpmt(ekPublic))).toString('base64url');
}

/**
 * A device whose asset tag is EK-derived (`ek:…`) can only be enrolled by that TPM: the
 * self-reported serial proves nothing, the EK presented (and then proven by credential
 * activation) does.
 */
function checkEkAssetTag(device: DeviceResource, ekSha256: string): void {
  if (device.spec.asset_tag.startsWith('ek:') && device.spec.asset_tag !== `ek:${ekSha256}`) {
    throw refused(
      'WARDEN_ERR_DEVICE_MISMATCH',
      `this enrollment token is for device ${deviceLabel(device)}, whose asset tag names another TPM ` +
        `(this TPM's asset tag is "ek:${ekSha256}")`,
    );
  }
}

/** The AK: attributes of an attestation key, and certified as created by itself in the TPM. */
function checkAk(ak: rpc.DeviceEnrollBeginRequest['ak']): TpmtPublic {
  let akPublic: TpmtPublic;
  try {
    akPublic = decodePublic(fromB64(ak.public));
  } catch {
    throw new WardenError('WARDEN_ERR_BAD_PARAMETER', 'invalid AK public area');
  }
  try {
    checkAkAttributes(akPublic);
    verifyCertifyCreation({
      akPublic,
      creationData: fromB64(ak.creation_data),
      attest: fromB64(ak.creation_attest),
      signature: fromB64(ak.creation_signature),
    });
  } catch (e) {
    if (isTpmError(e))
      throw refused('WARDEN_ERR_DEVICE_ATTESTATION_FAILED', `invalid attestation key: ${e.message}`, {
        tpm_code: e.code,
      });
    throw e;
  }
  return akPublic;
}

/** A TpmError that escaped the steps above (malformed structures) becomes BAD_PARAMETER. */
function mapTpmError(e: unknown, what: string): unknown {
  if (isTpmError(e)) return new WardenError('WARDEN_ERR_BAD_PARAMETER', `${what}: ${e.message}`);
  return e;
}
