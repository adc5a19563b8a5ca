/**
 * Client-side device-trust steps over `Tpm`: create the EK from the TCG template, read its
 * certificate from NV, create and load an AK under an SRK, answer a credential challenge
 * (ActivateCredential with the EK's PolicySecret(ENDORSEMENT) session), and clean up
 * transient objects left behind on a TPM without a resource manager.
 *
 * Enrollment, client side:
 *   1. ek = createEk(tpm, 'rsa'); cert = readEkCertificate(tpm, 'rsa')
 *   2. srk = createSrk(tpm); ak = createAk(tpm, srk.handle); loaded = loadAk(...)
 *   3. creation = tpm.certifyCreation({ signHandle: ak, objectHandle: ak, … })
 *   4. (server: makeCredential(ek.public, objectName(ak.public), secret))
 *   5. secret = activateCredential(tpm, { akHandle, ekHandle, credentialBlob, secret })
 *   6. quote = tpm.quote({ signHandle: ak, qualifyingData: nonce, pcrs })
 */
import { EK_CERT_CHAIN_NV_RANGE, EK_CERT_NV_INDEX, TPM_HT, TPM_RH, TPM_SE, TPMA_NV } from '../constants';
import { TpmError } from '../errors';
import { type IdObject, type TpmtPublic, toHex } from '../marshal';
import { passwordAuth } from './frame';
import { akTemplate, EK_POLICIES, type EkKind, ekTemplate, type KeyKind, srkTemplate } from './templates';
import type { CreatedKey, PrimaryObject, Tpm } from './tpm';

/** The EK certificate NV index for each EK kind (TCG EK Credential Profile). */
export const EK_CERT_INDEX: Record<EkKind, number> = {
  rsa: EK_CERT_NV_INDEX.rsa2048,
  ecc: EK_CERT_NV_INDEX.eccP256,
  'ecc-p384': EK_CERT_NV_INDEX.eccP384,
};

/** CreatePrimary of the TCG EK under the endorsement hierarchy (same key on every call). */
export function createEk(
  tpm: Tpm,
  kind: EkKind = 'rsa',
  endorsementAuth?: Uint8Array,
): Promise<PrimaryObject> {
  return tpm.createPrimary({
    hierarchy: TPM_RH.ENDORSEMENT,
    template: ekTemplate(kind),
    hierarchyAuth: endorsementAuth,
  });
}

/** CreatePrimary of the storage root key under the owner hierarchy. */
export function createSrk(tpm: Tpm, kind: KeyKind = 'ecc', ownerAuth?: Uint8Array): Promise<PrimaryObject> {
  return tpm.createPrimary({
    hierarchy: TPM_RH.OWNER,
    template: srkTemplate(kind),
    hierarchyAuth: ownerAuth,
  });
}

/** Creates an AK (restricted signing key) under a loaded SRK; load it with `loadAk`. */
export function createAk(tpm: Tpm, parent: number, kind: KeyKind = 'ecc'): Promise<CreatedKey> {
  return tpm.create({ parent, template: akTemplate(kind) });
}

/** Loads an AK created by `createAk` (its private part is sealed to the SRK). */
export function loadAk(
  tpm: Tpm,
  parent: number,
  ak: { private: Uint8Array; public: TpmtPublic },
): Promise<{ handle: number; name: Uint8Array }> {
  return tpm.load({ parent, private: ak.private, public: ak.public });
}

/**
 * The EK certificate (DER) from its NV index, or undefined when the TPM has none there.
 * Trailing padding after the DER certificate (some manufacturers pad the index) is cut.
 */
export async function readEkCertificate(
  tpm: Tpm,
  which: EkKind | number = 'rsa',
): Promise<Uint8Array | undefined> {
  const data = await readNvIndex(tpm, typeof which === 'number' ? which : EK_CERT_INDEX[which]);
  return data && trimDer(data);
}

/**
 * The EK certificate chain the TPM holds (NV 0x01c00100–0x01c001ff, ascending): every DER
 * certificate of those indices, in order; empty when there is none. What the certificates
 * say is the TPM's claim: the server checks the signatures.
 */
export async function readEkCertificateChain(tpm: Tpm): Promise<Uint8Array[]> {
  const indices = (await tpm.getHandles(EK_CERT_CHAIN_NV_RANGE.first)).filter(
    (h) => h >= EK_CERT_CHAIN_NV_RANGE.first && h <= EK_CERT_CHAIN_NV_RANGE.last,
  );
  const out: Uint8Array[] = [];
  for (const index of indices.slice(0, 16)) {
    const data = await readNvIndex(tpm, index);
    if (data) out.push(...splitDer(data));
  }
  return out;
}

/** Consecutive DER SEQUENCEs (certificates) of an NV index; padding after them is cut. */
function splitDer(data: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  let rest = data;
  for (let len = derLength(rest); len !== undefined; len = derLength(rest)) {
    out.push(rest.slice(0, len));
    rest = rest.subarray(len);
  }
  return out;
}

/** An NV index's contents, or undefined when it does not exist or was never written. */
async function readNvIndex(tpm: Tpm, index: number): Promise<Uint8Array | undefined> {
  let nvPublic: Awaited<ReturnType<Tpm['nvReadPublic']>>['nvPublic'];
  try {
    nvPublic = (await tpm.nvReadPublic(index)).nvPublic;
  } catch (e) {
    if (e instanceof TpmError && e.code === 'TPM_ERR_NOT_FOUND') return undefined;
    throw e;
  }
  if (!(nvPublic.attributes & TPMA_NV.WRITTEN)) return undefined;
  // EK certificate indices allow reads with the index's own (empty) auth or the owner's.
  const authHandle = nvPublic.attributes & TPMA_NV.AUTHREAD ? index : TPM_RH.OWNER;
  return tpm.nvRead(index, { authHandle, size: nvPublic.dataSize });
}

function trimDer(data: Uint8Array): Uint8Array {
  const len = derLength(data);
  return len === undefined ? data : data.slice(0, len);
}

/** The length of the DER SEQUENCE at the start of `data`, if one is there whole. */
function derLength(data: Uint8Array): number | undefined {
  if (data.length < 2 || data[0] !== 0x30) return undefined;
  const first = data[1]!;
  let len: number;
  let header: number;
  if (first < 0x80) {
    len = first;
    header = 2;
  } else {
    const n = first & 0x7f;
    if (n === 0 || n > 3 || data.length < 2 + n) return undefined;
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + data[2 + i]!;
    header = 2 + n;
  }
  return header + len <= data.length ? header + len : undefined;
}

/**
 * Answers a MakeCredential challenge: the TPM releases the credential only if the EK can
 * decrypt the seed and the AK's Name is the one the credential was made for.
 * Starts (and always ends) the policy session the EK's TCG policy needs, in the EK's name
 * hash: PolicySecret(TPM_RH_ENDORSEMENT), followed for high-range EKs (PolicyB) by
 * PolicyOR(PolicyA, PolicyC). `ekPublic` saves a ReadPublic when the caller has it.
 */
export async function activateCredential(
  tpm: Tpm,
  opts: {
    akHandle: number;
    ekHandle: number;
    credentialBlob: IdObject;
    secret: Uint8Array;
    ekPublic?: TpmtPublic;
    akAuth?: Uint8Array;
    endorsementAuth?: Uint8Array;
  },
): Promise<Uint8Array> {
  const ek = opts.ekPublic ?? (await tpm.readPublic(opts.ekHandle)).public;
  const policies = EK_POLICIES[ek.nameAlg];
  const policy = toHex(ek.authPolicy);
  if (!policies || (policy !== toHex(policies.a) && policy !== toHex(policies.b))) {
    throw new TpmError('TPM_ERR_UNSUPPORTED', "the EK's authPolicy is not one of the TCG EK policies");
  }
  const session = await tpm.startAuthSession({ type: TPM_SE.POLICY, hash: ek.nameAlg });
  let flushed = false;
  try {
    await tpm.policySecret({
      authHandle: TPM_RH.ENDORSEMENT,
      policySession: session.handle,
      auth: opts.endorsementAuth,
    });
    if (policy === toHex(policies.b)) await tpm.policyOR(session.handle, [policies.a, policies.c]);
    // continueSession is clear: the TPM ends the session when the command succeeds.
    const result = await tpm.activateCredentialRaw({
      activateHandle: opts.akHandle,
      keyHandle: opts.ekHandle,
      credentialBlob: opts.credentialBlob,
      secret: opts.secret,
      activateAuth: passwordAuth(opts.akAuth),
      keyAuth: { handle: session.handle, attributes: 0 },
    });
    flushed = true;
    return result;
  } finally {
    if (!flushed) await tpm.flushContext(session.handle).catch(() => undefined);
  }
}

/**
 * Flushes every transient object (and, with `sessions`, every loaded session). Needed on
 * swtpm and /dev/tpm0, where objects of a crashed client stay loaded (TPM_RC_OBJECT_MEMORY).
 */
export async function flushTransientObjects(tpm: Tpm, opts: { sessions?: boolean } = {}): Promise<number> {
  const handles = await tpm.getHandles(TPM_HT.TRANSIENT << 24);
  if (opts.sessions) {
    handles.push(...(await tpm.getHandles(TPM_HT.HMAC_SESSION << 24)));
    handles.push(...(await tpm.getHandles(TPM_HT.POLICY_SESSION << 24)));
  }
  for (const h of handles) await tpm.flushContext(h);
  return handles.length;
}
