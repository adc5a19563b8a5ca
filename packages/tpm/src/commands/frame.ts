/**
 * Command and response framing (TPM 2.0 Library Part 1 §18, Part 3 §5): header, handle area,
 * authorization area (sessions), parameters; and the response's header, handles,
 * parameterSize and authorization area. A non-zero response code becomes a TpmError carrying
 * the decoded `TPM_RC_…`.
 */
import { TPM_CC, TPM_RH, TPM_ST } from '../constants';
import { TpmError } from '../errors';
import { Reader, Writer } from '../marshal';
import { decodeResponseCode, describeResponseCode } from '../response-code';

/** One entry of the authorization area. */
export interface AuthSession {
  /** TPM_RH_PW for a password, or a session handle. */
  handle: number;
  nonce?: Uint8Array;
  /** TPMA_SESSION bits. */
  attributes?: number;
  /** The password (for TPM_RH_PW) or HMAC; empty for a plain policy session. */
  hmac?: Uint8Array;
}

/** A password authorization: empty by default, as the EK, SRK and AK are created. */
export function passwordAuth(password: Uint8Array = new Uint8Array(0)): AuthSession {
  return { handle: TPM_RH.PW, hmac: password };
}

export function buildCommand(
  cc: number,
  handles: number[],
  auths: AuthSession[],
  params: Uint8Array,
): Uint8Array {
  const w = new Writer();
  w.u16(auths.length > 0 ? TPM_ST.SESSIONS : TPM_ST.NO_SESSIONS)
    .u32(0)
    .u32(cc);
  for (const h of handles) w.u32(h);
  if (auths.length > 0) {
    const a = new Writer();
    for (const s of auths) {
      a.u32(s.handle)
        .tpm2b(s.nonce ?? new Uint8Array(0))
        .u8(s.attributes ?? 0)
        .tpm2b(s.hmac ?? new Uint8Array(0));
    }
    const area = a.finish();
    w.u32(area.length).bytes(area);
  }
  w.bytes(params);
  const out = w.finish();
  new DataView(out.buffer).setUint32(2, out.length);
  return out;
}

export interface ParsedResponse {
  handles: number[];
  /** A reader over exactly the response parameters. */
  params: Reader;
}

const CC_NAMES = new Map<number, string>(Object.entries(TPM_CC).map(([k, v]) => [v, k]));

export function commandName(cc: number): string {
  return `TPM2_${CC_NAMES.get(cc) ?? `0x${cc.toString(16)}`}`;
}

/** Parses a response to `cc` that has `handleCount` handles and `sessions` auth entries. */
export function parseResponse(
  cc: number,
  bytes: Uint8Array,
  handleCount: number,
  sessions: number,
): ParsedResponse {
  const what = `${commandName(cc)} response`;
  const r = new Reader(bytes, what);
  const tag = r.u16();
  const size = r.u32();
  const rc = r.u32();
  if (size !== bytes.length) r.fail(`size field says ${size}, got ${bytes.length} bytes`);
  if (rc !== 0) {
    const info = decodeResponseCode(rc);
    throw new TpmError('TPM_ERR_RESPONSE', `${commandName(cc)} failed: ${describeResponseCode(info)}`, {
      response: info,
    });
  }
  if (tag !== TPM_ST.SESSIONS && tag !== TPM_ST.NO_SESSIONS) r.fail(`unknown tag 0x${tag.toString(16)}`);
  if ((tag === TPM_ST.SESSIONS) !== sessions > 0)
    r.fail('the TPM answered with another session tag than asked');
  const handles: number[] = [];
  for (let i = 0; i < handleCount; i++) handles.push(r.u32());
  if (tag === TPM_ST.NO_SESSIONS) return { handles, params: new Reader(r.rest(), what) };
  const paramSize = r.u32();
  const params = new Reader(r.bytes(paramSize), what);
  for (let i = 0; i < sessions; i++) {
    r.tpm2b(64, 'nonceTPM');
    r.u8();
    r.tpm2b(64, 'hmac');
  }
  r.end();
  return { handles, params };
}
