/**
 * `Tpm`: the TPM 2.0 commands device trust needs, one method per command (Part 3 of the
 * Library spec), over any transport. Methods take and return plain structures from
 * marshal/; the raw bytes that get signed or hashed (attestations, public areas, creation
 * data) are returned too, so callers can send them to a verifier unchanged.
 */
import { TPM_ALG, TPM_CAP, TPM_CC, TPM_HT, TPM_RH, TPM_SE, TPM_ST, TPM_SU } from '../constants';
import { TpmError } from '../errors';
import { MAX_DIGEST_SIZE } from '../hash';
import {
  decodeAttest,
  decodeCreationData,
  decodeNvPublic,
  decodePublic,
  encode,
  type IdObject,
  type PcrSelection,
  type PcrValue,
  type Reader,
  readDigests,
  readPcrSelections,
  readSignature,
  readTicket,
  type Scheme,
  type Ticket,
  type TpmsAttest,
  type TpmsCreationData,
  type TpmsNvPublic,
  type TpmtPublic,
  type TpmtSignature,
  Writer,
  writeDigests,
  writeIdObject,
  writePcrSelections,
  writePublic,
  writeScheme,
  writeSensitiveCreate,
  writeSignature,
  writeTicket,
} from '../marshal';
import { type OpenTransportOptions, openTransport, type TpmTransport } from '../transport';
import { type AuthSession, buildCommand, parseResponse, passwordAuth } from './frame';

const EMPTY = new Uint8Array(0);

export interface CreatedObject {
  public: TpmtPublic;
  /** The TPMT_PUBLIC bytes as the TPM returned them. */
  publicBytes: Uint8Array;
  creationData: TpmsCreationData;
  /** The TPMS_CREATION_DATA bytes (their digest is `creationHash`). */
  creationDataBytes: Uint8Array;
  creationHash: Uint8Array;
  creationTicket: Ticket;
}

export interface PrimaryObject extends CreatedObject {
  handle: number;
  name: Uint8Array;
}

export interface CreatedKey extends CreatedObject {
  /** TPM2B_PRIVATE contents: the key sealed to its parent, to be loaded later. */
  private: Uint8Array;
}

export interface Attestation {
  /** The TPMS_ATTEST bytes the signature covers. */
  attest: Uint8Array;
  attestInfo: TpmsAttest;
  signature: TpmtSignature;
  /** The TPMT_SIGNATURE bytes. */
  signatureBytes: Uint8Array;
}

export interface CapabilityData {
  capability: number;
  handles?: number[];
  properties?: Map<number, number>;
  pcrs?: PcrSelection[];
  algorithms?: Map<number, number>;
  commands?: number[];
}

/** A scheme of NULL: the key's own scheme is used. */
const NULL_SCHEME: Scheme = { scheme: TPM_ALG.NULL };

export class Tpm {
  constructor(readonly transport: TpmTransport) {}

  /**
   * Opens the TPM `WARDEN_TPM` names (default `/dev/tpmrm0`, then `/dev/tpm0`).
   *
   * @example
   *   const tpm = await Tpm.open({ address: 'swtpm:host=127.0.0.1,port=2321' });
   *   try { console.log(await tpm.getRandom(16)); } finally { await tpm.close(); }
   */
  static async open(opts: OpenTransportOptions = {}): Promise<Tpm> {
    return new Tpm(await openTransport(opts));
  }

  close(): Promise<void> {
    return this.transport.close();
  }

  /**
   * Sends one command. `handles` go in the handle area, `auths` in the authorization area;
   * resolves with the response handles and a reader over the response parameters.
   */
  async execute(
    cc: number,
    handles: number[],
    auths: AuthSession[],
    params: Uint8Array,
    outHandles = 0,
  ): Promise<{ handles: number[]; params: Reader }> {
    const response = await this.transport.send(buildCommand(cc, handles, auths, params));
    return parseResponse(cc, response, outHandles, auths.length);
  }

  // ----------------------------------------------------------------- startup, capabilities

  /** TPM2_Startup(CLEAR); a TPM that is already started (TPM_RC_INITIALIZE) is fine. */
  async startup(type: number = TPM_SU.CLEAR): Promise<void> {
    try {
      await this.execute(TPM_CC.Startup, [], [], new Writer().u16(type).finish());
    } catch (e) {
      if (e instanceof TpmError && e.response?.name === 'TPM_RC_INITIALIZE') return;
      throw e;
    }
  }

  async getCapability(
    capability: number,
    property: number,
    count: number,
  ): Promise<{ moreData: boolean; data: CapabilityData }> {
    const { params: r } = await this.execute(
      TPM_CC.GetCapability,
      [],
      [],
      new Writer().u32(capability).u32(property).u32(count).finish(),
    );
    const moreData = r.u8() !== 0;
    const cap = r.u32();
    const data: CapabilityData = { capability: cap };
    if (cap === TPM_CAP.HANDLES) {
      const n = r.count(254, 4, 'TPML_HANDLE');
      data.handles = Array.from({ length: n }, () => r.u32());
    } else if (cap === TPM_CAP.TPM_PROPERTIES) {
      const n = r.count(256, 8, 'TPML_TAGGED_TPM_PROPERTY');
      data.properties = new Map();
      for (let i = 0; i < n; i++) data.properties.set(r.u32(), r.u32());
    } else if (cap === TPM_CAP.PCRS) {
      data.pcrs = readPcrSelections(r);
    } else if (cap === TPM_CAP.ALGS) {
      const n = r.count(256, 6, 'TPML_ALG_PROPERTY');
      data.algorithms = new Map();
      for (let i = 0; i < n; i++) data.algorithms.set(r.u16(), r.u32());
    } else if (cap === TPM_CAP.COMMANDS) {
      const n = r.count(256, 4, 'TPML_CCA');
      data.commands = Array.from({ length: n }, () => r.u32());
    } else {
      throw new TpmError('TPM_ERR_UNSUPPORTED', `capability 0x${cap.toString(16)}`);
    }
    r.end();
    return { moreData, data };
  }

  /** All handles of one type (TPM_HT_… in the top byte of `first`). */
  async getHandles(first: number = TPM_HT.TRANSIENT << 24): Promise<number[]> {
    const out: number[] = [];
    const top = first >>> 24;
    let next = first >>> 0;
    for (let guard = 0; guard < 64; guard++) {
      const { moreData, data } = await this.getCapability(TPM_CAP.HANDLES, next, 64);
      const hs = (data.handles ?? []).filter((h) => h >>> 24 === top);
      out.push(...hs);
      if (!moreData || hs.length === 0) break;
      next = (hs[hs.length - 1]! + 1) >>> 0;
    }
    return out;
  }

  /** TPM properties from `first` (e.g. TPM_PT.MANUFACTURER). */
  async getProperties(first: number, count: number): Promise<Map<number, number>> {
    const { data } = await this.getCapability(TPM_CAP.TPM_PROPERTIES, first, count);
    return data.properties ?? new Map();
  }

  /** The allocated PCR banks and their PCRs. */
  async getPcrBanks(): Promise<PcrSelection[]> {
    const { data } = await this.getCapability(TPM_CAP.PCRS, 0, 1);
    return data.pcrs ?? [];
  }

  async getRandom(bytes: number): Promise<Uint8Array> {
    const out = new Uint8Array(bytes);
    let filled = 0;
    while (filled < bytes) {
      const want = Math.min(bytes - filled, MAX_DIGEST_SIZE);
      const { params: r } = await this.execute(TPM_CC.GetRandom, [], [], new Writer().u16(want).finish());
      const got = r.tpm2b(MAX_DIGEST_SIZE, 'randomBytes');
      r.end();
      if (got.length === 0) throw new TpmError('TPM_ERR_RESPONSE', 'TPM2_GetRandom returned no bytes');
      out.set(got.subarray(0, bytes - filled), filled);
      filled += got.length;
    }
    return out;
  }

  // ----------------------------------------------------------------------------- objects

  async readPublic(handle: number): Promise<{
    public: TpmtPublic;
    publicBytes: Uint8Array;
    name: Uint8Array;
    qualifiedName: Uint8Array;
  }> {
    const { params: r } = await this.run(TPM_CC.ReadPublic, [handle], [], EMPTY);
    const publicBytes = r.tpm2b(0xffff, 'outPublic');
    const name = r.tpm2b(MAX_DIGEST_SIZE + 2, 'name');
    const qualifiedName = r.tpm2b(MAX_DIGEST_SIZE + 2, 'qualifiedName');
    r.end();
    return { public: decodePublic(publicBytes), publicBytes, name, qualifiedName };
  }

  /**
   * TPM2_CreatePrimary under a hierarchy (TPM_RH.ENDORSEMENT for an EK, OWNER for an SRK).
   * The object is transient: flush it with `flushContext` when done.
   */
  async createPrimary(opts: {
    hierarchy: number;
    template: TpmtPublic;
    hierarchyAuth?: Uint8Array;
    userAuth?: Uint8Array;
    outsideInfo?: Uint8Array;
    creationPcrs?: PcrSelection[];
  }): Promise<PrimaryObject> {
    const params = new Writer()
      .sized((w) => writeSensitiveCreate(w, { userAuth: opts.userAuth ?? EMPTY, data: EMPTY }))
      .sized((w) => writePublic(w, opts.template))
      .tpm2b(opts.outsideInfo ?? EMPTY);
    writePcrSelections(params, opts.creationPcrs ?? []);
    const { handles, params: r } = await this.execute(
      TPM_CC.CreatePrimary,
      [opts.hierarchy],
      [passwordAuth(opts.hierarchyAuth)],
      params.finish(),
      1,
    );
    const created = readCreated(r);
    const name = r.tpm2b(MAX_DIGEST_SIZE + 2, 'name');
    r.end();
    return { handle: handles[0]!, name, ...created };
  }

  /** TPM2_Create: a key under a loaded parent (e.g. an AK under the SRK). */
  async create(opts: {
    parent: number;
    template: TpmtPublic;
    parentAuth?: Uint8Array;
    userAuth?: Uint8Array;
    outsideInfo?: Uint8Array;
    creationPcrs?: PcrSelection[];
  }): Promise<CreatedKey> {
    const params = new Writer()
      .sized((w) => writeSensitiveCreate(w, { userAuth: opts.userAuth ?? EMPTY, data: EMPTY }))
      .sized((w) => writePublic(w, opts.template))
      .tpm2b(opts.outsideInfo ?? EMPTY);
    writePcrSelections(params, opts.creationPcrs ?? []);
    const { params: r } = await this.execute(
      TPM_CC.Create,
      [opts.parent],
      [passwordAuth(opts.parentAuth)],
      params.finish(),
    );
    const priv = r.tpm2b(0xffff, 'outPrivate');
    const created = readCreated(r);
    r.end();
    return { private: priv, ...created };
  }

  /** TPM2_Load: loads a key created by `create` under the same parent. */
  async load(opts: {
    parent: number;
    private: Uint8Array;
    public: TpmtPublic;
    parentAuth?: Uint8Array;
  }): Promise<{ handle: number; name: Uint8Array }> {
    const params = new Writer()
      .tpm2b(opts.private, 'inPrivate')
      .sized((w) => writePublic(w, opts.public))
      .finish();
    const { handles, params: r } = await this.execute(
      TPM_CC.Load,
      [opts.parent],
      [passwordAuth(opts.parentAuth)],
      params,
      1,
    );
    const name = r.tpm2b(MAX_DIGEST_SIZE + 2, 'name');
    r.end();
    return { handle: handles[0]!, name };
  }

  async flushContext(handle: number): Promise<void> {
    await this.execute(TPM_CC.FlushContext, [], [], new Writer().u32(handle).finish());
  }

  // ---------------------------------------------------------------------------------- NV

  async nvReadPublic(index: number): Promise<{ nvPublic: TpmsNvPublic; name: Uint8Array }> {
    const { params: r } = await this.run(TPM_CC.NV_ReadPublic, [index], [], EMPTY);
    const nvPublic = decodeNvPublic(r.tpm2b(0xffff, 'nvPublic'));
    const name = r.tpm2b(MAX_DIGEST_SIZE + 2, 'nvName');
    r.end();
    return { nvPublic, name };
  }

  /**
   * Reads `size` bytes of an NV index (default: all of it) in chunks of at most
   * `chunkSize` (default: the TPM's TPM_PT_NV_BUFFER_MAX, else 512).
   * Authorized by the index itself with an empty password unless `authHandle` says otherwise.
   */
  async nvRead(
    index: number,
    opts: { authHandle?: number; auth?: Uint8Array; size?: number; offset?: number; chunkSize?: number } = {},
  ): Promise<Uint8Array> {
    const size = opts.size ?? (await this.nvReadPublic(index)).nvPublic.dataSize;
    const chunk = opts.chunkSize ?? (await this.nvBufferMax());
    const out = new Uint8Array(size);
    const base = opts.offset ?? 0;
    for (let done = 0; done < size; ) {
      const n = Math.min(chunk, size - done);
      const { params: r } = await this.run(
        TPM_CC.NV_Read,
        [opts.authHandle ?? index, index],
        [passwordAuth(opts.auth)],
        new Writer()
          .u16(n)
          .u16(base + done)
          .finish(),
      );
      const data = r.tpm2b(0xffff, 'data');
      r.end();
      if (data.length !== n)
        throw new TpmError('TPM_ERR_RESPONSE', `TPM2_NV_Read returned ${data.length} of ${n} bytes`);
      out.set(data, done);
      done += n;
    }
    return out;
  }

  private nvChunk: number | undefined;

  private async nvBufferMax(): Promise<number> {
    if (this.nvChunk === undefined) {
      const props = await this.getProperties(0x12c, 1).catch(() => new Map<number, number>());
      const v = props.get(0x12c);
      this.nvChunk = v && v > 0 && v <= 4096 ? v : 512;
    }
    return this.nvChunk;
  }

  // --------------------------------------------------------------------------------- PCRs

  /** Reads every selected PCR (several round trips: the TPM returns at most 8 per call). */
  async pcrRead(selections: PcrSelection[]): Promise<PcrValue[]> {
    const want = selections.map((s) => ({ hash: s.hash, pcrs: [...new Set(s.pcrs)].sort((a, b) => a - b) }));
    const got = new Map<string, Uint8Array>();
    for (let guard = 0; guard < 64; guard++) {
      const remaining = want
        .map((s) => ({ hash: s.hash, pcrs: s.pcrs.filter((p) => !got.has(`${s.hash}:${p}`)) }))
        .filter((s) => s.pcrs.length > 0);
      if (remaining.length === 0) break;
      const { params: r } = await this.execute(
        TPM_CC.PCR_Read,
        [],
        [],
        encode(writePcrSelections, remaining),
      );
      r.u32(); // pcrUpdateCounter
      const readSel = readPcrSelections(r);
      const digests = readDigests(r);
      r.end();
      let i = 0;
      for (const s of readSel) for (const p of s.pcrs) got.set(`${s.hash}:${p}`, digests[i++] ?? EMPTY);
      if (i === 0) {
        const first = remaining[0]!;
        throw new TpmError(
          'TPM_ERR_NOT_FOUND',
          `PCR ${first.pcrs[0]} of bank 0x${first.hash.toString(16)} is not allocated on this TPM`,
        );
      }
    }
    const out: PcrValue[] = [];
    for (const s of want)
      for (const p of s.pcrs) out.push({ hash: s.hash, pcr: p, digest: got.get(`${s.hash}:${p}`)! });
    return out;
  }

  /** TPM2_PCR_Extend of one PCR in the given banks (tests use it to change PCR values). */
  async pcrExtend(pcr: number, digests: { hash: number; digest: Uint8Array }[]): Promise<void> {
    const w = new Writer().u32(digests.length);
    for (const d of digests) w.u16(d.hash).bytes(d.digest);
    await this.execute(TPM_CC.PCR_Extend, [pcr], [passwordAuth()], w.finish());
  }

  // ----------------------------------------------------------------- signing, attestation

  /** TPM2_Quote: the AK signs the digest of the selected PCRs together with `qualifyingData`. */
  async quote(opts: {
    signHandle: number;
    qualifyingData: Uint8Array;
    pcrs: PcrSelection[];
    scheme?: Scheme;
    auth?: Uint8Array;
  }): Promise<Attestation> {
    const w = new Writer().tpm2b(opts.qualifyingData, 'qualifyingData');
    writeScheme(w, opts.scheme ?? NULL_SCHEME);
    writePcrSelections(w, opts.pcrs);
    const { params: r } = await this.execute(
      TPM_CC.Quote,
      [opts.signHandle],
      [passwordAuth(opts.auth)],
      w.finish(),
    );
    return readAttestation(r);
  }

  /**
   * TPM2_CertifyCreation: `signHandle` signs that `objectHandle` was created by this TPM
   * with the given creation hash and ticket (an AK may certify its own creation).
   */
  async certifyCreation(opts: {
    signHandle: number;
    objectHandle: number;
    qualifyingData: Uint8Array;
    creationHash: Uint8Array;
    creationTicket: Ticket;
    scheme?: Scheme;
    auth?: Uint8Array;
  }): Promise<Attestation> {
    const w = new Writer()
      .tpm2b(opts.qualifyingData, 'qualifyingData')
      .tpm2b(opts.creationHash, 'creationHash');
    writeScheme(w, opts.scheme ?? NULL_SCHEME);
    writeTicket(w, opts.creationTicket);
    const { params: r } = await this.execute(
      TPM_CC.CertifyCreation,
      [opts.signHandle, opts.objectHandle],
      [passwordAuth(opts.auth)],
      w.finish(),
    );
    return readAttestation(r);
  }

  /**
   * TPM2_Sign of an externally computed digest. Restricted keys (AKs) refuse digests the
   * TPM did not hash itself unless a validation ticket is given.
   */
  async sign(opts: {
    keyHandle: number;
    digest: Uint8Array;
    scheme?: Scheme;
    validation?: Ticket;
    auth?: Uint8Array;
  }): Promise<{ signature: TpmtSignature; signatureBytes: Uint8Array }> {
    const w = new Writer().tpm2b(opts.digest, 'digest');
    writeScheme(w, opts.scheme ?? NULL_SCHEME);
    writeTicket(w, opts.validation ?? { tag: TPM_ST.HASHCHECK, hierarchy: TPM_RH.NULL, digest: EMPTY });
    const { params: r } = await this.execute(
      TPM_CC.Sign,
      [opts.keyHandle],
      [passwordAuth(opts.auth)],
      w.finish(),
    );
    const signature = readSignature(r);
    r.end();
    return { signature, signatureBytes: encode(writeSignature, signature) };
  }

  // ------------------------------------------------------------------ sessions, credentials

  /** TPM2_StartAuthSession, unbound and unsalted. */
  async startAuthSession(opts: { type?: number; hash?: number; nonceCaller?: Uint8Array } = {}): Promise<{
    handle: number;
    nonceTPM: Uint8Array;
  }> {
    const hash = opts.hash ?? TPM_ALG.SHA256;
    const nonceCaller = opts.nonceCaller ?? (await this.getRandom(16));
    const params = new Writer()
      .tpm2b(nonceCaller, 'nonceCaller')
      .tpm2b(EMPTY)
      .u8(opts.type ?? TPM_SE.POLICY)
      .u16(TPM_ALG.NULL)
      .u16(hash)
      .finish();
    const { handles, params: r } = await this.execute(
      TPM_CC.StartAuthSession,
      [TPM_RH.NULL, TPM_RH.NULL],
      [],
      params,
      1,
    );
    const nonceTPM = r.tpm2b(MAX_DIGEST_SIZE, 'nonceTPM');
    r.end();
    return { handle: handles[0]!, nonceTPM };
  }

  /** TPM2_PolicySecret: satisfies "authorized by `authHandle`" (the EK's policy uses ENDORSEMENT). */
  async policySecret(opts: { authHandle: number; policySession: number; auth?: Uint8Array }): Promise<void> {
    const params = new Writer().tpm2b(EMPTY).tpm2b(EMPTY).tpm2b(EMPTY).u32(0).finish();
    await this.execute(
      TPM_CC.PolicySecret,
      [opts.authHandle, opts.policySession],
      [passwordAuth(opts.auth)],
      params,
    );
  }

  /** TPM2_PolicyOR: the session's policy becomes the OR of `digests` (2–8), one of which it matches. */
  async policyOR(policySession: number, digests: Uint8Array[]): Promise<void> {
    await this.execute(TPM_CC.PolicyOR, [policySession], [], encode(writeDigests, digests));
  }

  /**
   * TPM2_ActivateCredential with explicit sessions: `activateAuth` for the AK (a password),
   * `keyAuth` for the EK (a policy session). Most callers want `activateCredential()` from
   * commands/device.ts, which starts the EK policy session itself.
   */
  async activateCredentialRaw(opts: {
    activateHandle: number;
    keyHandle: number;
    credentialBlob: IdObject;
    secret: Uint8Array;
    activateAuth: AuthSession;
    keyAuth: AuthSession;
  }): Promise<Uint8Array> {
    const w = new Writer();
    writeIdObject(w, opts.credentialBlob);
    w.tpm2b(opts.secret, 'secret');
    try {
      const { params: r } = await this.execute(
        TPM_CC.ActivateCredential,
        [opts.activateHandle, opts.keyHandle],
        [opts.activateAuth, opts.keyAuth],
        w.finish(),
      );
      const certInfo = r.tpm2b(MAX_DIGEST_SIZE, 'certInfo');
      r.end();
      return certInfo;
    } catch (e) {
      // A credential made for another EK or AK name fails the TPM's integrity check or the
      // seed decryption: both are about the parameters, not the handles or sessions.
      if (e instanceof TpmError && e.code === 'TPM_ERR_RESPONSE' && e.response?.parameter !== undefined) {
        throw new TpmError(
          'TPM_ERR_CREDENTIAL_REJECTED',
          `the TPM refused the credential (${e.response.name}): it was not made for this EK and AK`,
          { response: e.response },
        );
      }
      throw e;
    }
  }

  /** Runs a command; TPM_RC_HANDLE on the first handle becomes TPM_ERR_NOT_FOUND. */
  private async run(
    cc: number,
    handles: number[],
    auths: AuthSession[],
    params: Uint8Array,
  ): Promise<{ handles: number[]; params: Reader }> {
    try {
      return await this.execute(cc, handles, auths, params);
    } catch (e) {
      if (e instanceof TpmError && e.response?.name === 'TPM_RC_HANDLE' && e.response.handle === 1) {
        throw new TpmError('TPM_ERR_NOT_FOUND', `0x${handles[0]!.toString(16)} does not exist on this TPM`, {
          response: e.response,
        });
      }
      throw e;
    }
  }
}

function readCreated(r: Reader): CreatedObject {
  const publicBytes = r.tpm2b(0xffff, 'outPublic');
  const creationDataBytes = r.tpm2b(0xffff, 'creationData');
  const creationHash = r.tpm2b(MAX_DIGEST_SIZE, 'creationHash');
  const creationTicket = readTicket(r);
  return {
    public: decodePublic(publicBytes),
    publicBytes,
    creationData: decodeCreationData(creationDataBytes),
    creationDataBytes,
    creationHash,
    creationTicket,
  };
}

function readAttestation(r: Reader): Attestation {
  const attest = r.tpm2b(0xffff, 'TPM2B_ATTEST');
  const signature = readSignature(r);
  r.end();
  return {
    attest,
    attestInfo: decodeAttest(attest),
    signature,
    signatureBytes: encode(writeSignature, signature),
  };
}
