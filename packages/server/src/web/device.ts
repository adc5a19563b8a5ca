/**
 * Browser device trust (DESIGN §7): single-use web device challenges, and the two mTLS
 * calls `wsh device web-helper` makes to answer one with the device's TPM.
 *
 *   page ── POST /v1/web/device/challenge ──▶ create(): { id, secret } bound to the web
 *           session, its user, the enrolled devices, the browser's address; TTL ≤ 2 min
 *   helper ── begin(caller, { challenge_id, challenge_secret, credential_id, … }) ──▶
 *           1. challenge pending, unexpired, secret right  2. same user  3. same address
 *           4. DeviceAuthentication.begin (device found, enrolled, not locked) → nonce
 *   helper ── finish(caller, { …, session_id, quote, ssh_signature }) ──▶
 *           5. the proof verifies (DeviceAuthentication.verifyForWeb) and answers THIS challenge
 *           6. the device is one the challenge was bound to
 *           7. spend: compare-and-swap pending → trusted (of two racing finishes one wins)
 *           8. the web session is marked device-trusted
 *   page ── GET /v1/web/device/challenge/:id ──▶ status(): the page trusts only this.
 *
 * A refused step marks the challenge failed with a message saying what to do (the page
 * shows it); every outcome is audited as `device.web_authenticate`.
 *
 *   /web_device_challenges/<uuid>  { session, user, devices, addr, secret_sha256, expires, state … }
 *
 * Internal to `web/`.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { type DeviceResource, isWardenError, type rpc, WardenError, type web } from '@warden/api';
import type { Identity } from '../access';
import { type AuditLog, writeAuditEvent } from '../audit';
import type { Backend } from '../backend';
import type { Clock } from '../clock';
import { type DeviceAuthentication, type DeviceInventory, deviceSummary } from '../devicetrust';
import type { Logger } from '../log';
import { sameSecret, sessionHandle, type WebSessions } from './sessions';

export const WEB_CHALLENGE_PREFIX = '/web_device_challenges/';
/** How long the outcome stays readable after the challenge's end. */
const STATUS_GRACE_MS = 60 * 1000;

interface ChallengeRecord {
  session: string;
  user: string;
  /** IDs of the devices enrolled when the challenge was made. */
  devices: string[];
  addr: string;
  secret_sha256: string;
  expires: number;
  /** `spending`: spent by the helper, not yet audited and applied (the page reads `pending`). */
  state: 'pending' | 'spending' | 'trusted' | 'failed';
  message?: string;
  device?: web.SessionDevice;
}

/** What users read when a step refuses, word for word (the page shows them). */
export const WebDeviceErrors = {
  expired:
    'the device challenge expired or was already used: press "Trust this device" again to get a new one',
  wrongUser: (wshUser: string, webUser: string) =>
    `wsh on this machine is logged in as "${wshUser}", but this browser is signed in as "${webUser}": ` +
    `log in to wsh as ${webUser} (wsh login --user=${webUser}) and try again`,
  wrongAddr:
    'the device helper reached Warden from another network address than this browser: ' +
    'run the browser and wsh on the same machine',
  noDevices:
    'no enrolled device: enroll this machine with `wsh device enroll --token=TOKEN` (ask an administrator ' +
    'for a token, or `wsh device enroll --current-device`), then try again',
  notBound: 'this device was not enrolled when the challenge was made; press "Trust this device" again',
  sessionGone: 'the web session ended before the device was proved: sign in again',
} as const;

export interface WebDeviceTrustOptions {
  backend: Backend;
  clock: Clock;
  audit: AuditLog;
  logger: Logger;
  sessions: WebSessions;
  authentication: DeviceAuthentication;
  inventory: Pick<DeviceInventory, 'list'>;
  /** `wsh://` link host part: the proxy's public address. */
  proxyPublicAddr: string;
  /** Compare the helper's address with the browser's (default true; off behind NAT). */
  checkAddress?: boolean;
  ttlMs?: number;
}

function sha256(s: string): string {
  return createHash('sha256').update(s).digest('hex');
}

export class WebDeviceTrust {
  readonly #o: WebDeviceTrustOptions;
  readonly #ttlMs: number;

  constructor(o: WebDeviceTrustOptions) {
    this.#o = o;
    this.#ttlMs = Math.min(o.ttlMs ?? 2 * 60 * 1000, 2 * 60 * 1000);
  }

  async #audit(e: Parameters<AuditLog['emit']>[0]): Promise<void> {
    await writeAuditEvent(this.#o.audit, this.#o.logger, e);
  }

  /** A new challenge for a web session (the page asks after sign-in and on "Trust this device"). */
  async create(session: { id: string; user: string; addr: string }): Promise<web.DeviceChallengeResponse> {
    const devices = (await this.#o.inventory.list())
      .filter((d) => d.spec.enroll_status === 'enrolled' && d.spec.credential)
      .map((d) => d.metadata.name);
    const id = randomUUID();
    const secret = randomBytes(24).toString('base64url');
    const now = this.#o.clock.now();
    const record: ChallengeRecord = {
      session: session.id,
      user: session.user,
      devices,
      addr: session.addr,
      secret_sha256: sha256(secret),
      expires: now + this.#ttlMs,
      state: devices.length ? 'pending' : 'failed',
      ...(devices.length ? {} : { message: WebDeviceErrors.noDevices }),
    };
    await this.#o.backend.create(WEB_CHALLENGE_PREFIX + id, JSON.stringify(record), {
      ttlMs: this.#ttlMs + STATUS_GRACE_MS,
    });
    const link = `wsh://device-trust?${new URLSearchParams({
      proxy: this.#o.proxyPublicAddr,
      id,
      secret,
    }).toString()}`;
    return { id, secret, expires: new Date(record.expires).toISOString(), link };
  }

  async #load(id: string): Promise<{ modRev: number; record: ChallengeRecord } | undefined> {
    if (!/^[0-9a-f-]{36}$/i.test(id)) return undefined;
    const item = await this.#o.backend.get(WEB_CHALLENGE_PREFIX + id);
    if (!item) return undefined;
    try {
      return { modRev: item.modRev, record: JSON.parse(item.value) as ChallengeRecord };
    } catch {
      return undefined;
    }
  }

  /** What the page polls: only the session that made the challenge may read it. */
  async status(sessionId: string, id: string): Promise<web.ChallengeStatusResponse> {
    const c = await this.#load(id);
    if (!c || c.record.session !== sessionId) return { state: 'expired', message: WebDeviceErrors.expired };
    const r = c.record;
    if (r.state === 'pending' && !(r.expires > this.#o.clock.now()))
      return { state: 'expired', message: WebDeviceErrors.expired };
    if (r.state === 'spending') return { state: 'pending' };
    return {
      state: r.state,
      ...(r.message ? { message: r.message } : {}),
      ...(r.device ? { device: r.device } : {}),
    };
  }

  /**
   * Steps 1–3: the challenge the helper presents is pending, unexpired, its secret right, and
   * the helper's certificate and address match the browser's session.
   */
  async #check(
    caller: Identity,
    req: { challenge_id: string; challenge_secret: string },
  ): Promise<{ modRev: number; record: ChallengeRecord }> {
    const c = await this.#load(req.challenge_id);
    // 1. Pending, unexpired, the secret. An unknown ID and a wrong secret read the same.
    if (!c || !sameSecret(sha256(req.challenge_secret), c.record.secret_sha256))
      throw new WardenError('WARDEN_ERR_INVALID_TOKEN', WebDeviceErrors.expired);
    const r = c.record;
    if (r.state !== 'pending' || !(r.expires > this.#o.clock.now()))
      throw new WardenError('WARDEN_ERR_INVALID_TOKEN', r.message ?? WebDeviceErrors.expired);
    // 2. The same user.
    if (caller.user !== r.user) {
      throw await this.#refuse(
        c,
        caller,
        new WardenError('WARDEN_ERR_ACCESS_DENIED', WebDeviceErrors.wrongUser(caller.user, r.user)),
        { challengeId: req.challenge_id },
      );
    }
    // 3. The same machine, as far as the network tells.
    if (this.#o.checkAddress !== false && caller.clientAddr !== r.addr)
      throw await this.#refuse(
        c,
        caller,
        new WardenError('WARDEN_ERR_ACCESS_DENIED', WebDeviceErrors.wrongAddr),
        {
          challengeId: req.challenge_id,
        },
      );
    return c;
  }

  /** Marks the challenge failed with the message the page shows; audits; returns the error. */
  async #refuse(
    c: { modRev: number; record: ChallengeRecord },
    caller: Identity,
    e: unknown,
    about: { challengeId: string; deviceId?: string; credentialId?: string },
  ): Promise<unknown> {
    const message = isWardenError(e) ? e.message : 'internal error';
    const failed: ChallengeRecord = { ...c.record, state: 'failed', message };
    // Best effort: a challenge that changed meanwhile (spent, failed) keeps its state.
    await this.#o.backend
      .compareAndSwap(WEB_CHALLENGE_PREFIX + about.challengeId, c.modRev, JSON.stringify(failed), {
        ttlMs: STATUS_GRACE_MS,
      })
      .catch(() => undefined);
    await this.#audit({
      type: 'device.web_authenticate',
      success: false,
      user: caller.user,
      ...(caller.clientAddr ? { addr: caller.clientAddr } : {}),
      ...(about.deviceId ? { device_id: about.deviceId } : {}),
      ...(about.credentialId ? { credential_id: about.credentialId } : {}),
      challenge_id: about.challengeId,
      web_session: sessionHandle(c.record.session),
      error: message,
    });
    return e;
  }

  /** The helper's first message (mTLS as the user): checks the challenge, answers with a nonce. */
  async begin(caller: Identity, req: rpc.DeviceWebBeginRequest): Promise<rpc.DeviceAuthnBeginResponse> {
    const c = await this.#check(caller, req).catch(async (e) => {
      throw await this.#refuseById(req.challenge_id, caller, e);
    });
    // 4. The device: found, enrolled, this credential, not locked.
    const { challenge_id, challenge_secret: _, ...authn } = req;
    try {
      return await this.#o.authentication.begin(caller, authn, { bind: challenge_id });
    } catch (e) {
      throw await this.#refuse(c, caller, e, { credentialId: req.credential_id, challengeId: challenge_id });
    }
  }

  /** The helper's second message: verifies the proof, spends the challenge, trusts the session. */
  async finish(caller: Identity, req: rpc.DeviceWebFinishRequest): Promise<rpc.DeviceWebFinishResponse> {
    const c = await this.#check(caller, req).catch(async (e) => {
      throw await this.#refuseById(req.challenge_id, caller, e);
    });
    const about = { challengeId: req.challenge_id } as {
      challengeId: string;
      deviceId?: string;
      credentialId?: string;
    };
    const { challenge_id, challenge_secret: _, ...authn } = req;
    let trusted: web.SessionDevice;
    let device: DeviceResource;
    try {
      // 5. The proof, for this challenge.
      const proof = await this.#o.authentication.verifyForWeb(caller, authn);
      device = proof.device;
      about.deviceId = proof.device.metadata.name;
      about.credentialId = proof.credentialId;
      if (proof.bind !== challenge_id)
        throw new WardenError('WARDEN_ERR_ACCESS_DENIED', WebDeviceErrors.expired);
      // 6. A device the challenge was bound to.
      if (!c.record.devices.includes(proof.device.metadata.name))
        throw new WardenError('WARDEN_ERR_ACCESS_DENIED', WebDeviceErrors.notBound);
      trusted = {
        id: proof.device.metadata.name,
        asset_tag: proof.device.spec.asset_tag,
        credential_id: proof.credentialId,
        os_type: proof.device.spec.os_type,
        verified_at: new Date(this.#o.clock.now()).toISOString(),
      };
    } catch (e) {
      throw await this.#refuse(c, caller, e, about);
    }
    // 7. Spend: pending → spending, exactly once (→ trusted once audited and applied, step 8).
    const spent: ChallengeRecord = { ...c.record, state: 'spending', device: trusted };
    try {
      await this.#o.backend.compareAndSwap(
        WEB_CHALLENGE_PREFIX + challenge_id,
        c.modRev,
        JSON.stringify(spent),
        {
          ttlMs: STATUS_GRACE_MS,
        },
      );
    } catch (e) {
      if (!isWardenError(e, 'WARDEN_ERR_COMPARE_FAILED') && !isWardenError(e, 'WARDEN_ERR_NOT_FOUND'))
        throw e;
      const err = new WardenError('WARDEN_ERR_INVALID_TOKEN', WebDeviceErrors.expired);
      await this.#audit({
        type: 'device.web_authenticate',
        success: false,
        user: caller.user,
        ...(caller.clientAddr ? { addr: caller.clientAddr } : {}),
        device_id: trusted.id,
        challenge_id,
        error: `${err.message} (lost the race to spend it)`,
      });
      throw err;
    }
    // Audited before the session is trusted: not trusted unaudited (issue 15 item 5).
    const failChallenge = (message: string) =>
      this.#o.backend
        .put(
          WEB_CHALLENGE_PREFIX + challenge_id,
          JSON.stringify({ ...spent, state: 'failed', message, device: undefined }),
          { ttlMs: STATUS_GRACE_MS },
        )
        .catch(() => undefined);
    const recorded = this.#audit({
      type: 'device.web_authenticate',
      success: true,
      user: caller.user,
      ...(caller.clientAddr ? { addr: caller.clientAddr } : {}),
      device_id: trusted.id,
      credential_id: trusted.credential_id,
      challenge_id,
      web_session: sessionHandle(c.record.session),
      device: {
        id: trusted.id,
        os_type: trusted.os_type,
        asset_tag: trusted.asset_tag,
        credential_id: trusted.credential_id,
      },
    });
    try {
      await recorded;
    } catch (e) {
      await failChallenge((e as Error).message);
      throw e;
    }
    // 8. The web session is now device-trusted.
    if (!(await this.#o.sessions.markTrusted(c.record.session, trusted))) {
      const err = new WardenError('WARDEN_ERR_NOT_LOGGED_IN', WebDeviceErrors.sessionGone);
      await failChallenge(err.message);
      throw err;
    }
    // The page, polling, sees `trusted` only now that the session is.
    await this.#o.backend.put(
      WEB_CHALLENGE_PREFIX + challenge_id,
      JSON.stringify({ ...spent, state: 'trusted' }),
      { ttlMs: STATUS_GRACE_MS },
    );
    return { device: deviceSummary(device) };
  }

  /** Audits a refusal before the challenge could be read (unknown ID, bad secret). */
  async #refuseById(id: string, caller: Identity, e: unknown): Promise<unknown> {
    if (isWardenError(e, 'WARDEN_ERR_INVALID_TOKEN')) {
      await this.#audit({
        type: 'device.web_authenticate',
        success: false,
        user: caller.user,
        ...(caller.clientAddr ? { addr: caller.clientAddr } : {}),
        challenge_id: id.slice(0, 64),
        error: e.message,
      });
    }
    return e;
  }
}
