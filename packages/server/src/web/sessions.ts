/**
 * Web UI sessions, stored in the backend so every proxy replica sees the same ones
 * (DESIGN §7). The browser holds a random token in an HttpOnly, Secure, SameSite=Strict
 * cookie; the backend holds only its SHA-256 (a stolen backend copy opens nothing).
 *
 *   /web_sessions/<sha256(token) hex>   { user, roles, …, expires, last_seen, csrf, device? }
 *                                       TTL = min(idle timeout, time to `expires`) + 5 min
 *
 * A session ends at the first of: sign-out, its absolute expiry (never later than the
 * certificate TTL the user's roles allow), the idle timeout, a lock on the user, a role or
 * its device (at once through the session monitor, watch.ts, which marks the record
 * `locked`; the handler also checks at every request). Internal to `web/`.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { type AuditEventInput, isWardenError, type web } from '@warden/api';
import { type Identity, makeIdentity } from '../access';
import type { Backend } from '../backend';
import type { Clock } from '../clock';

export const WEB_SESSION_PREFIX = '/web_sessions/';
/** Idle timeout: no request for this long ends the session. */
export const DEFAULT_WEB_IDLE_TIMEOUT_MS = 30 * 60 * 1000;
/** `last_seen` is written at most this often (fewer backend writes; idle precision ±this). */
const TOUCH_INTERVAL_MS = 15 * 1000;
/**
 * The record outlives the session's end by this much, so the next request still finds it and
 * can say why it ended (and audit that); the session itself is dead at its end either way.
 */
const RECORD_GRACE_MS = 5 * 60 * 1000;

export interface WebSessionData {
  user: string;
  roles: string[];
  logins: string[];
  traits: Record<string, string[]>;
  /** ISO time; the absolute end. */
  created: string;
  expires: string;
  last_seen: number;
  idle_ms: number;
  csrf: string;
  /** The browser's address at sign-in (web device challenges are bound to it). */
  addr: string;
  device?: web.SessionDevice;
  /** Set when a lock ended the session (the lock's message); the record stays to say so. */
  locked?: string;
}

/** Who learns about live and ended sessions (the session monitor's registrations, watch.ts). */
export interface WebSessionObserver {
  /** A session is live with these data (sign-in, a request, device trust): idempotent. */
  live(session: LoadedWebSession): void;
  /** A session ended (sign-out, timeout). */
  ended(id: string): void;
}

/**
 * The identity a web session speaks for: its user, roles, logins and traits, the device only
 * once the session is device-trusted, the session's end as its expiry, and the address of the
 * request (`clientAddr`) when there is one.
 */
export function sessionIdentity(s: LoadedWebSession, clientAddr?: string): Identity {
  const d = s.data;
  return makeIdentity({
    user: d.user,
    roles: d.roles,
    logins: d.logins,
    traits: d.traits,
    ...(d.device
      ? {
          device: {
            deviceId: d.device.id,
            assetTag: d.device.asset_tag,
            credentialId: d.device.credential_id,
          },
        }
      : {}),
    expires: new Date(d.expires),
    ...(clientAddr ? { clientAddr } : {}),
  });
}

export interface LoadedWebSession {
  /** The backend key's last part (SHA-256 of the token, hex). */
  id: string;
  modRev: number;
  data: WebSessionData;
}

export type WebSessionLookup =
  | { ok: true; session: LoadedWebSession }
  | { ok: false; reason: 'missing' | 'expired' | 'idle timeout' | 'locked'; session?: LoadedWebSession };

function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

/** A short, non-secret handle of a session for audit events and logs. */
export function sessionHandle(id: string): string {
  return id.slice(0, 12);
}

/**
 * The audit event of a web session's end (sign-out, a lock, expiry): who, from where, why, and
 * the device it was trusted with.
 */
export function webSessionEndEvent(s: LoadedWebSession, addr: string, reason: string): AuditEventInput {
  const d = s.data.device;
  return {
    type: 'web.session.end',
    success: true,
    user: s.data.user,
    addr,
    reason,
    web_session: sessionHandle(s.id),
    ...(d
      ? { device: { id: d.id, os_type: d.os_type, asset_tag: d.asset_tag, credential_id: d.credential_id } }
      : {}),
  };
}

/** Constant-time comparison of two strings (CSRF tokens, challenge secrets). */
export function sameSecret(a: string, b: string): boolean {
  const x = createHash('sha256').update(a).digest();
  const y = createHash('sha256').update(b).digest();
  return timingSafeEqual(x, y);
}

export class WebSessions {
  readonly #backend: Backend;
  readonly #clock: Clock;
  readonly #idleMs: number;
  #observer: WebSessionObserver | undefined;

  constructor(o: { backend: Backend; clock: Clock; idleTimeoutMs?: number }) {
    this.#backend = o.backend;
    this.#clock = o.clock;
    this.#idleMs = o.idleTimeoutMs ?? DEFAULT_WEB_IDLE_TIMEOUT_MS;
  }

  get idleTimeoutMs(): number {
    return this.#idleMs;
  }

  /** Tells `o` about every session seen live and every session ended here (one observer). */
  observe(o: WebSessionObserver): void {
    this.#observer = o;
  }

  #ttl(data: WebSessionData, now: number): number {
    return Math.max(1, Math.min(data.idle_ms, Date.parse(data.expires) - now)) + RECORD_GRACE_MS;
  }

  /** Starts a session for a signed-in user; returns the cookie token (shown to nobody else). */
  async create(
    who: { user: string; roles: string[]; logins: string[]; traits: Record<string, string[]>; ttlMs: number },
    addr: string,
  ): Promise<{ token: string; session: LoadedWebSession }> {
    const now = this.#clock.now();
    const token = randomBytes(32).toString('base64url');
    const id = hashToken(token);
    const data: WebSessionData = {
      user: who.user,
      roles: who.roles,
      logins: who.logins,
      traits: who.traits,
      created: new Date(now).toISOString(),
      expires: new Date(now + who.ttlMs).toISOString(),
      last_seen: now,
      idle_ms: this.#idleMs,
      csrf: randomBytes(24).toString('base64url'),
      addr,
    };
    const item = await this.#backend.create(WEB_SESSION_PREFIX + id, JSON.stringify(data), {
      ttlMs: this.#ttl(data, now),
    });
    const session = { id, modRev: item.modRev, data };
    this.#observer?.live(session);
    return { token, session };
  }

  /** The live session of a cookie token; refreshes `last_seen` (at most every 15 s). */
  async lookup(token: string): Promise<WebSessionLookup> {
    const found = await this.#lookup(token);
    if (found.ok) this.#observer?.live(found.session);
    return found;
  }

  async #lookup(token: string): Promise<WebSessionLookup> {
    if (!/^[A-Za-z0-9_-]{43}$/.test(token)) return { ok: false, reason: 'missing' };
    const loaded = await this.get(hashToken(token));
    if (!loaded) return { ok: false, reason: 'missing' };
    const now = this.#clock.now();
    const { data } = loaded;
    if (data.locked !== undefined) return { ok: false, reason: 'locked', session: loaded };
    if (!(Date.parse(data.expires) > now)) {
      await this.end(loaded.id);
      return { ok: false, reason: 'expired', session: loaded };
    }
    if (now - data.last_seen >= data.idle_ms) {
      await this.end(loaded.id);
      return { ok: false, reason: 'idle timeout', session: loaded };
    }
    if (now - data.last_seen >= TOUCH_INTERVAL_MS) {
      const touched = { ...data, last_seen: now };
      try {
        const item = await this.#backend.compareAndSwap(
          WEB_SESSION_PREFIX + loaded.id,
          loaded.modRev,
          JSON.stringify(touched),
          { ttlMs: this.#ttl(touched, now) },
        );
        return { ok: true, session: { id: loaded.id, modRev: item.modRev, data: touched } };
      } catch (e) {
        // A concurrent request touched it (or marked it trusted): read it again.
        if (!isWardenError(e, 'WARDEN_ERR_COMPARE_FAILED')) throw e;
        const again = await this.get(loaded.id);
        return again ? { ok: true, session: again } : { ok: false, reason: 'missing' };
      }
    }
    return { ok: true, session: loaded };
  }

  /** A session by its ID (no expiry checks; the backend's TTL has dropped long-dead ones). */
  async get(id: string): Promise<LoadedWebSession | undefined> {
    if (!/^[0-9a-f]{64}$/.test(id)) return undefined;
    const item = await this.#backend.get(WEB_SESSION_PREFIX + id);
    if (!item) return undefined;
    try {
      return { id, modRev: item.modRev, data: JSON.parse(item.value) as WebSessionData };
    } catch {
      return undefined;
    }
  }

  /**
   * Marks the session device-trusted (compare-and-swap; retried when a touch raced it).
   * False when the session is gone or past its end.
   */
  async markTrusted(id: string, device: web.SessionDevice): Promise<boolean> {
    for (let attempt = 0; attempt < 5; attempt++) {
      const s = await this.get(id);
      const now = this.#clock.now();
      if (!s || !(Date.parse(s.data.expires) > now) || s.data.locked !== undefined) return false;
      const data = { ...s.data, device, last_seen: now };
      try {
        const item = await this.#backend.compareAndSwap(
          WEB_SESSION_PREFIX + id,
          s.modRev,
          JSON.stringify(data),
          { ttlMs: this.#ttl(data, now) },
        );
        this.#observer?.live({ id, modRev: item.modRev, data });
        return true;
      } catch (e) {
        if (!isWardenError(e, 'WARDEN_ERR_COMPARE_FAILED') && !isWardenError(e, 'WARDEN_ERR_NOT_FOUND'))
          throw e;
      }
    }
    return false;
  }

  /** Ends a session (sign-out, lock, timeout). */
  async end(id: string): Promise<boolean> {
    this.#observer?.ended(id);
    return this.#backend.delete(WEB_SESSION_PREFIX + id);
  }

  /**
   * Ends a session because a lock came into force, at once (the session monitor calls it):
   * the record stays for a while, marked, so the browser's next request learns why.
   * False when it was gone or already ended by a lock.
   */
  async markLocked(id: string, message: string): Promise<LoadedWebSession | undefined> {
    for (let attempt = 0; attempt < 5; attempt++) {
      const s = await this.get(id);
      if (!s || s.data.locked !== undefined) return undefined;
      const data = { ...s.data, locked: message };
      try {
        const item = await this.#backend.compareAndSwap(
          WEB_SESSION_PREFIX + id,
          s.modRev,
          JSON.stringify(data),
          {
            ttlMs: RECORD_GRACE_MS,
          },
        );
        return { id, modRev: item.modRev, data };
      } catch (e) {
        if (!isWardenError(e, 'WARDEN_ERR_COMPARE_FAILED') && !isWardenError(e, 'WARDEN_ERR_NOT_FOUND'))
          throw e;
      }
    }
    return undefined;
  }

  /** Every live session (for tests and a future admin view). */
  async list(): Promise<LoadedWebSession[]> {
    const { items } = await this.#backend.range(WEB_SESSION_PREFIX);
    const out: LoadedWebSession[] = [];
    for (const item of items) {
      try {
        out.push({
          id: item.key.slice(WEB_SESSION_PREFIX.length),
          modRev: item.modRev,
          data: JSON.parse(item.value) as WebSessionData,
        });
      } catch {
        // A corrupt record opens nothing.
      }
    }
    return out;
  }
}
