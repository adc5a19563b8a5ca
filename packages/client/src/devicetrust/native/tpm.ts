/**
 * The TPM side of device trust on a client (Linux): which EK to present, the AK (created once,
 * kept TPM-wrapped in the device cache, reloaded under a re-created SRK), TPM2_CertifyCreation
 * for enrollment, ActivateCredential for the enrollment challenge, and quotes over the
 * server's nonce. One `TpmDevice` holds one TPM connection for one ceremony; `close()` flushes
 * what it loaded (swtpm and /dev/tpm0 have no resource manager) and closes the connection.
 *
 * EK choice: the first EK kind whose certificate is in NV (RSA-2048, ECC P-256, ECC P-384 —
 * swtpm certifies RSA-2048 and P-384), using the persistent EK when the TPM has one at the
 * TCG handle; without any certificate, the RSA-2048 EK from the TCG template.
 * Internal to `devicetrust/`; reached through `native/index.ts`. Tested against swtpm under
 * test/devicetrust/.
 */
import { randomUUID } from 'node:crypto';
import { WardenError } from '@warden/api';
import {
  activateCredential,
  createAk,
  createEk,
  createSrk,
  decodeIdObject,
  decodePublic,
  EK_PERSISTENT_HANDLE,
  type EkKind,
  flushTransientObjects,
  isTpmError,
  loadAk,
  type PcrSelection,
  publicKeyFromTpmt,
  readEkCertificate,
  readEkCertificateChain,
  TPM_ALG,
  TPMA_OBJECT,
  Tpm,
  type TpmtPublic,
} from '@warden/tpm';
import type { StoredCredential } from '../cache';

/** What enrollment sends about the TPM's keys (rpc DeviceEnrollBeginRequest `ek` and `ak`). */
export interface TpmEnrollInit {
  /** The EK, its certificate, and the certificates of its issuers the TPM holds (NV chain). */
  ek: { public: Uint8Array; certDer?: Uint8Array; chainDer?: Uint8Array[] };
  ak: {
    public: Uint8Array;
    creationData: Uint8Array;
    creationAttest: Uint8Array;
    creationSignature: Uint8Array;
  };
}

/** A quote by the AK and the PCR values it covers. */
export interface TpmQuoteResult {
  attest: Uint8Array;
  signature: Uint8Array;
  pcrs: { hash: number; pcr: number; digest: Uint8Array }[];
}

interface Ek {
  kind: EkKind;
  handle: number;
  public: TpmtPublic;
  publicBytes: Uint8Array;
  certDer?: Uint8Array;
  chainDer?: Uint8Array[];
  /** A transient EK we created (flushed on close), not a persistent one. */
  transient: boolean;
}

const PERSISTENT: Partial<Record<EkKind, number>> = {
  rsa: EK_PERSISTENT_HANDLE.rsa2048,
  'ecc-p384': EK_PERSISTENT_HANDLE.eccP384,
};

const EK_BITS = TPMA_OBJECT.fixedTPM | TPMA_OBJECT.restricted | TPMA_OBJECT.decrypt;

/** Maps TPM failures a user can act on to WardenErrors; everything else passes through. */
export function tpmFailure(e: unknown, what: string): unknown {
  if (!isTpmError(e)) return e;
  switch (e.code) {
    case 'TPM_ERR_DEVICE_PERMISSION':
    case 'TPM_ERR_DEVICE_MISSING':
    case 'TPM_ERR_BAD_CONFIG':
      return new WardenError('WARDEN_ERR_BAD_PARAMETER', e.message);
    case 'TPM_ERR_TRANSPORT':
      return new WardenError('WARDEN_ERR_CONNECTION', `cannot talk to the TPM: ${e.message}`);
    default:
      return new WardenError('WARDEN_ERR_INTERNAL', `${what}: ${e.message}`, { tpm_code: e.code });
  }
}

export class TpmDevice {
  readonly #tpm: Tpm;
  #ek: Ek | undefined;
  #srk: number | undefined;
  readonly #aks = new Map<string, number>();
  readonly #loaded: number[] = [];

  private constructor(tpm: Tpm) {
    this.#tpm = tpm;
  }

  /** Opens the TPM `WARDEN_TPM` names (default /dev/tpmrm0, then /dev/tpm0). */
  static async open(env: NodeJS.ProcessEnv = process.env): Promise<TpmDevice> {
    let tpm: Tpm;
    try {
      tpm = await Tpm.open({ env });
    } catch (e) {
      throw tpmFailure(e, 'cannot open the TPM');
    }
    const dev = new TpmDevice(tpm);
    // Without a resource manager, objects of a crashed client stay loaded and fill the TPM.
    if (!tpm.transport.description.includes('tpmrm')) {
      await flushTransientObjects(tpm).catch(() => undefined);
    }
    return dev;
  }

  async #run<T>(what: string, f: () => Promise<T>): Promise<T> {
    try {
      return await f();
    } catch (e) {
      throw tpmFailure(e, what);
    }
  }

  /** The EK this device presents (see the header for the choice). */
  async ek(): Promise<Ek> {
    if (this.#ek) return this.#ek;
    return this.#run('reading the endorsement key', async () => {
      for (const kind of ['rsa', 'ecc', 'ecc-p384'] as const) {
        const certDer = await readEkCertificate(this.#tpm, kind);
        if (certDer) {
          const chainDer = await readEkCertificateChain(this.#tpm);
          this.#ek = { ...(await this.#loadEk(kind)), certDer, ...(chainDer.length ? { chainDer } : {}) };
          return this.#ek;
        }
      }
      this.#ek = await this.#loadEk('rsa');
      return this.#ek;
    });
  }

  async #loadEk(kind: EkKind): Promise<Omit<Ek, 'certDer' | 'chainDer'>> {
    const handle = PERSISTENT[kind];
    if (handle !== undefined) {
      try {
        const p = await this.#tpm.readPublic(handle);
        const template = kind === 'rsa' ? 'rsa' : 'ecc';
        const typeOk = (p.public.type === TPM_ALG.RSA) === (template === 'rsa');
        if (typeOk && (p.public.objectAttributes & EK_BITS) === EK_BITS) {
          return { kind, handle, public: p.public, publicBytes: p.publicBytes, transient: false };
        }
      } catch (e) {
        if (!isTpmError(e)) throw e;
      }
    }
    const ek = await createEk(this.#tpm, kind);
    this.#loaded.push(ek.handle);
    return { kind, handle: ek.handle, public: ek.public, publicBytes: ek.publicBytes, transient: true };
  }

  /** The EK public key as SubjectPublicKeyInfo DER (for the `ek:` asset tag). */
  async ekSpkiDer(): Promise<Uint8Array> {
    const ek = await this.ek();
    return new Uint8Array(publicKeyFromTpmt(ek.public).export({ type: 'spki', format: 'der' }));
  }

  async #srkHandle(): Promise<number> {
    if (this.#srk === undefined) {
      const srk = await createSrk(this.#tpm);
      this.#loaded.push(srk.handle);
      this.#srk = srk.handle;
    }
    return this.#srk;
  }

  /** Creates a new AK under the SRK: a credential to store in the device cache. */
  async createCredential(now: Date): Promise<StoredCredential> {
    return this.#run('creating the attestation key', async () => {
      const ak = await createAk(this.#tpm, await this.#srkHandle());
      return {
        id: randomUUID(),
        akPublic: ak.publicBytes,
        akPrivate: ak.private,
        creationData: ak.creationDataBytes,
        creationHash: ak.creationHash,
        creationTicket: ak.creationTicket,
        createTime: now.toISOString(),
        enrollments: [],
      };
    });
  }

  async #loadAk(cred: StoredCredential): Promise<number> {
    const known = this.#aks.get(cred.id);
    if (known !== undefined) return known;
    try {
      const loaded = await loadAk(this.#tpm, await this.#srkHandle(), {
        private: cred.akPrivate,
        public: decodePublic(cred.akPublic),
      });
      this.#loaded.push(loaded.handle);
      this.#aks.set(cred.id, loaded.handle);
      return loaded.handle;
    } catch (e) {
      if (isTpmError(e, 'TPM_ERR_RESPONSE')) {
        throw new WardenError(
          'WARDEN_ERR_BAD_PARAMETER',
          'the device credential does not belong to this TPM (it cannot load it); ' +
            'remove ~/.cache/warden-device (or $WARDEN_DEVICE_CACHE) and enroll the device again',
        );
      }
      throw e;
    }
  }

  /** EK, AK and the AK's certified creation: what enrollment begins with. */
  async enrollInit(cred: StoredCredential): Promise<TpmEnrollInit> {
    const ek = await this.ek();
    return this.#run('attesting the AK', async () => {
      const handle = await this.#loadAk(cred);
      const creation = await this.#tpm.certifyCreation({
        signHandle: handle,
        objectHandle: handle,
        qualifyingData: new Uint8Array(0),
        creationHash: cred.creationHash,
        creationTicket: cred.creationTicket,
      });
      return {
        ek: {
          public: ek.publicBytes,
          ...(ek.certDer ? { certDer: ek.certDer } : {}),
          ...(ek.chainDer ? { chainDer: ek.chainDer } : {}),
        },
        ak: {
          public: cred.akPublic,
          creationData: cred.creationData,
          creationAttest: creation.attest,
          creationSignature: creation.signatureBytes,
        },
      };
    });
  }

  /** ActivateCredential: what the TPM releases for the server's MakeCredential challenge. */
  async activate(
    cred: StoredCredential,
    credentialBlob: Uint8Array,
    secret: Uint8Array,
  ): Promise<Uint8Array> {
    const ek = await this.ek();
    return this.#run('answering the enrollment challenge', async () =>
      activateCredential(this.#tpm, {
        akHandle: await this.#loadAk(cred),
        ekHandle: ek.handle,
        ekPublic: ek.public,
        credentialBlob: decodeIdObject(credentialBlob),
        secret,
      }),
    );
  }

  /** Loads the AK of `cred` (and the SRK it lives under), ahead of a quote. */
  async prepare(cred: StoredCredential): Promise<void> {
    await this.#run('loading the attestation key', () => this.#loadAk(cred));
  }

  /** A quote by the AK over `nonce` and the selected PCRs, with their values. */
  async quote(cred: StoredCredential, nonce: Uint8Array, selection: PcrSelection[]): Promise<TpmQuoteResult> {
    return this.#run('quoting PCRs', async () => {
      const handle = await this.#loadAk(cred);
      const q = await this.#tpm.quote({ signHandle: handle, qualifyingData: nonce, pcrs: selection });
      const pcrs = await this.#tpm.pcrRead(selection);
      return { attest: q.attest, signature: q.signatureBytes, pcrs };
    });
  }

  /** Flushes what this device loaded and closes the TPM connection. */
  async close(): Promise<void> {
    for (const h of this.#loaded.reverse()) await this.#tpm.flushContext(h).catch(() => undefined);
    this.#loaded.length = 0;
    this.#aks.clear();
    await this.#tpm.close().catch(() => undefined);
  }
}
