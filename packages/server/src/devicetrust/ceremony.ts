/**
 * What the enrollment and authentication ceremonies share: single-use ceremony sessions in
 * the backend (short TTL; taking one deletes it with compare-and-swap, so of two racing
 * finishes exactly one continues and a replayed finish finds nothing), the PCR selection
 * quotes must cover, base64 decoding at the RPC edge, and turning an RPC quote into what
 * `verifyQuote` takes.
 * Internal to `devicetrust/`.
 *
 *   /device_ceremonies/<uuid>   { kind: 'enroll' | 'authn', expires, … }   TTL = sessionTtlMs
 *
 * Where they live: in the backend when it is shared by several processes (PostgreSQL: begin
 * and finish may reach different auth replicas), else in this process's memory. A backend
 * that is not shared (SQLite, owned by one process through its exclusive lock; memory) has
 * exactly one auth service, so a map here is the same single-use store without two
 * fsync'd writes per ceremony. A shared backend is one that implements `staleForMs`.
 */
import { randomUUID } from 'node:crypto';
import { type ErrorCode, isWardenError, type rpc, WardenError } from '@warden/api';
import { decodePublic, type PcrSelection, type PcrValue, TPM_ALG, type TpmtPublic } from '@warden/tpm';
import type { Backend } from '../backend';
import type { Clock } from '../clock';

/** Backend prefix of ceremony sessions. */
export const CEREMONY_PREFIX = '/device_ceremonies/';

/** How long a client has between begin and finish. */
export const DEFAULT_CEREMONY_TTL_MS = 5 * 60 * 1000;

/** The PCRs every device quote covers: SHA-256 bank, PCRs 0–7 (firmware and boot). */
export const DEVICE_PCR_SELECTION: readonly PcrSelection[] = Object.freeze([
  { hash: TPM_ALG.SHA256, pcrs: [0, 1, 2, 3, 4, 5, 6, 7] },
]);

/** Device authentications one user may have begun and not finished (each lives sessionTtlMs). */
export const DEFAULT_MAX_OPEN_SESSIONS_PER_USER = 8;

/** A session kept in memory (a backend that no other process shares). */
interface LocalSession {
  owner: string | undefined;
  expiresMs: number;
  /** The data as JSON, as the backend would keep it (no object shared with the caller). */
  json: string;
}

/** Single-use ceremony sessions of one kind. */
export class CeremonySessions<T extends object> {
  readonly #backend: Backend;
  readonly #clock: Clock;
  readonly #kind: string;
  readonly #ttlMs: number;
  /** Set when the backend is not shared: the sessions live here instead. */
  readonly #local: Map<string, LocalSession> | undefined;
  #lastSweep = 0;

  constructor(o: { backend: Backend; clock: Clock; kind: 'enroll' | 'authn'; ttlMs?: number }) {
    this.#backend = o.backend;
    this.#clock = o.clock;
    this.#kind = o.kind;
    this.#ttlMs = o.ttlMs ?? DEFAULT_CEREMONY_TTL_MS;
    this.#local = typeof o.backend.staleForMs === 'function' ? undefined : new Map();
  }

  /** Where the sessions live (for tests). */
  get storage(): 'backend' | 'memory' {
    return this.#local ? 'memory' : 'backend';
  }

  #openLocal(local: Map<string, LocalSession>, data: T, now: number, limit?: { owner: string; max: number }) {
    if (now - this.#lastSweep > this.#ttlMs / 10) {
      this.#lastSweep = now;
      for (const [id, s] of local) if (s.expiresMs <= now) local.delete(id);
    }
    if (limit) {
      let open = 0;
      for (const s of local.values()) if (s.owner === limit.owner && s.expiresMs > now) open++;
      if (open >= limit.max) throw this.#tooMany(limit);
    }
    const id = randomUUID();
    local.set(id, { owner: limit?.owner, expiresMs: now + this.#ttlMs, json: JSON.stringify(data) });
    return id;
  }

  #tooMany(limit: { owner: string; max: number }): WardenError {
    return new WardenError(
      'WARDEN_ERR_RATE_LIMITED',
      `too many device ceremonies in progress for user "${limit.owner}" (at most ${limit.max}); ` +
        `finish one or wait ${Math.ceil(this.#ttlMs / 60_000)} min for them to expire`,
    );
  }

  /**
   * Stores a new session; returns its ID (a random UUID). With `limit`, refuses
   * (RATE_LIMITED) when `limit.owner` already has `limit.max` unexpired sessions of this kind.
   */
  async open(data: T, limit?: { owner: string; max: number }): Promise<string> {
    const now = this.#clock.now();
    if (this.#local) return this.#openLocal(this.#local, data, now, limit);
    if (limit) {
      const { items } = await this.#backend.range(CEREMONY_PREFIX);
      let open = 0;
      for (const item of items) {
        const s = parse(item.value);
        if (s?.kind === this.#kind && s.owner === limit.owner && Date.parse(String(s.expires)) > now) open++;
      }
      if (open >= limit.max) throw this.#tooMany(limit);
    }
    const id = randomUUID();
    const expires = new Date(now + this.#ttlMs).toISOString();
    const stored = { kind: this.#kind, expires, ...(limit ? { owner: limit.owner } : {}), data };
    await this.#backend.create(CEREMONY_PREFIX + id, JSON.stringify(stored), { ttlMs: this.#ttlMs });
    return id;
  }

  /**
   * Takes a session: deletes it and returns its data, or undefined when it is unknown,
   * already taken, expired or of another kind. A session of another kind is left alone (a
   * client can't spend someone's enrollment by presenting its ID to device authentication).
   */
  async take(id: string): Promise<T | undefined> {
    if (!/^[0-9a-f-]{36}$/i.test(id)) return undefined;
    if (this.#local) {
      const s = this.#local.get(id);
      if (!s) return undefined;
      this.#local.delete(id);
      if (!(s.expiresMs > this.#clock.now())) return undefined;
      return JSON.parse(s.json) as T;
    }
    const key = CEREMONY_PREFIX + id;
    const item = await this.#backend.get(key);
    if (!item) return undefined;
    const stored = parse(item.value);
    if (stored?.kind !== this.#kind || typeof stored.expires !== 'string') return undefined;
    let taken = false;
    try {
      taken = await this.#backend.delete(key, { expectedModRev: item.modRev });
    } catch (e) {
      if (!isWardenError(e, 'WARDEN_ERR_COMPARE_FAILED')) throw e;
    }
    if (!taken) return undefined;
    if (!(Date.parse(stored.expires) > this.#clock.now())) return undefined;
    return stored.data as T;
  }
}

function parse(
  value: string,
): { kind?: unknown; expires?: unknown; owner?: unknown; data?: unknown } | undefined {
  try {
    const v = JSON.parse(value) as unknown;
    return v && typeof v === 'object' ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** Decodes standard base64 from a request (the schemas already checked the alphabet). */
export function fromB64(s: string): Uint8Array {
  return new Uint8Array(Buffer.from(s, 'base64'));
}

export function toB64(b: Uint8Array): string {
  return Buffer.from(b).toString('base64');
}

/** AK public areas kept decoded (the enrolled credentials in use, and enrollments under way). */
const AK_CACHE_SIZE = 4096;
const decodedAks = new Map<string, TpmtPublic>();

/**
 * An AK public area (base64 TPMT_PUBLIC, as stored in a credential or an enrollment session),
 * decoded once: the key object `publicKeyFromTpmt` builds for it (a P-256 import, ~70 µs) is
 * kept with the decoded object, so an enrollment's finish reuses its begin's and every
 * device authentication of that credential reuses it too. Keyed by the exact encoding, so the
 * object is the one `decodePublic` gives for those bytes; nobody changes decoded areas.
 * Throws as `decodePublic` does (nothing is kept then).
 */
export function akPublicOf(b64: string): TpmtPublic {
  let pub = decodedAks.get(b64);
  if (!pub) {
    pub = decodePublic(fromB64(b64));
    rememberAkPublic(b64, pub);
  }
  return pub;
}

/** Keeps an AK public area decoded from `b64` (the oldest go first). */
export function rememberAkPublic(b64: string, pub: TpmtPublic): void {
  if (decodedAks.has(b64)) return;
  if (decodedAks.size >= AK_CACHE_SIZE) decodedAks.delete(decodedAks.keys().next().value!);
  decodedAks.set(b64, pub);
}

/** The PCR values of an RPC quote, as `verifyQuote` takes them. */
export function quotePcrs(quote: rpc.TpmQuote): PcrValue[] {
  return quote.pcrs.map((p) => ({ hash: p.hash, pcr: p.pcr, digest: fromB64(p.digest) }));
}

/** The selection to send to clients (a plain copy of DEVICE_PCR_SELECTION). */
export function pcrSelectionForClient(): rpc.PcrSelection {
  return DEVICE_PCR_SELECTION.map((s) => ({ hash: s.hash, pcrs: [...s.pcrs] }));
}

/** A user-facing refusal of a ceremony step (403), with the catalogue code clients decide by. */
export function refused(
  code: Extract<ErrorCode, `WARDEN_ERR_DEVICE_${string}`>,
  message: string,
  details?: Record<string, unknown>,
): WardenError {
  return new WardenError(code, message, details);
}
