import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { afterEach, beforeEach, describe, test } from 'node:test';
import { type DeviceResource, isWardenError, type rpc } from '@warden/api';
import { ASSET_TAG, ADMIN as admin, startEnrolledDevice } from '../../../../test/support/enrolled-device';
import { loggedIn } from '../../../../test/support/logged-in';
import type { SoftTpm } from '../../../../test/support/soft-tpm';
import type { AccessChecker } from '../access';
import type { MemoryAuditLog } from '../audit';
import { MemoryBackend } from '../backend';
import type { CertAuthorities } from '../ca';
import { FakeClock } from '../clock';
import { DeviceAuthentication, DeviceEnrollment, type DeviceInventory } from '../devicetrust';
import { silentLogger } from '../log';
import type { Services } from '../services';
import { WebDeviceErrors, WebDeviceTrust } from './device';
import { WEB_SESSION_PREFIX, WebSessions } from './sessions';

const BROWSER = '10.0.0.5';
const who = (user = 'alice', ttlMs = 8 * 3600_000) => ({
  user,
  roles: ['access'],
  logins: [user],
  traits: { logins: [user] },
  ttlMs,
});

function refused(message: string | RegExp, code?: string) {
  return (e: unknown) => {
    assert.ok(isWardenError(e), String(e));
    if (code) assert.equal(e.code, code);
    if (typeof message === 'string') assert.equal(e.message, message);
    else assert.match(e.message, message);
    return true;
  };
}

describe('WebSessions', () => {
  let clock: FakeClock;
  let backend: MemoryBackend;
  let sessions: WebSessions;
  beforeEach(() => {
    clock = new FakeClock(Date.now());
    backend = new MemoryBackend({ clock, reapIntervalMs: 0 });
    sessions = new WebSessions({ backend, clock, idleTimeoutMs: 30 * 60_000 });
  });
  afterEach(() => backend.close());

  test('the backend holds only the hash of the cookie token', async () => {
    const { token, session } = await sessions.create(who(), BROWSER);
    const { items } = await backend.range(WEB_SESSION_PREFIX);
    assert.equal(items.length, 1);
    assert.ok(!items[0]!.key.includes(token) && !items[0]!.value.includes(token));
    const found = await sessions.lookup(token);
    assert.ok(found.ok);
    assert.equal(found.session.id, session.id);
    assert.equal(found.session.data.user, 'alice');
    const other = `${token.slice(0, -1)}${token.endsWith('A') ? 'B' : 'A'}`;
    for (const bad of ['', 'x', other, `${token}x`])
      assert.equal((await sessions.lookup(bad)).ok, false, bad);
  });

  test('idle timeout: no request for 30 minutes ends the session', async () => {
    const { token } = await sessions.create(who(), BROWSER);
    clock.advance(29 * 60_000);
    assert.ok((await sessions.lookup(token)).ok, 'a request in time keeps it alive');
    clock.advance(29 * 60_000);
    assert.ok((await sessions.lookup(token)).ok);
    clock.advance(30 * 60_000 + 1);
    const r = await sessions.lookup(token);
    assert.deepEqual(r.ok ? 'ok' : r.reason, 'idle timeout');
    assert.equal((await sessions.lookup(token)).ok, false, 'and it is gone');
  });

  test('absolute timeout: the session never outlives the certificate TTL, however busy', async () => {
    const { token, session } = await sessions.create(who('alice', 60 * 60_000), BROWSER);
    assert.equal(Date.parse(session.data.expires) - clock.now(), 60 * 60_000);
    for (let t = 0; t < 5; t++) {
      clock.advance(10 * 60_000);
      assert.ok((await sessions.lookup(token)).ok);
    }
    clock.advance(10 * 60_000);
    const r = await sessions.lookup(token);
    assert.equal(r.ok ? 'ok' : r.reason, 'expired');
  });

  test('end() ends it; markTrusted on an ended session is refused', async () => {
    const { token, session } = await sessions.create(who(), BROWSER);
    assert.equal(await sessions.end(session.id), true);
    assert.equal((await sessions.lookup(token)).ok, false);
    const d = { id: 'd', asset_tag: 't', credential_id: 'c', os_type: 'linux', verified_at: 'now' };
    assert.equal(await sessions.markTrusted(session.id, d), false);
  });
});

describe('WebDeviceTrust', () => {
  let clock: FakeClock;
  let backend: MemoryBackend;
  let audit: MemoryAuditLog;
  let services: Services;
  let cas: CertAuthorities;
  let inventory: DeviceInventory;
  let sessions: WebSessions;
  let trust: WebDeviceTrust;
  let device: DeviceResource;
  let tpm: SoftTpm;
  let credentialId: string;
  let checker: AccessChecker;

  /** What each ceremony is built with (test/support/enrolled-device.ts). */
  let o: Awaited<ReturnType<typeof startEnrolledDevice>>['deps'];
  let close: () => Promise<void>;
  /** The Web UI's device trust over this test's stores, sessions and enrolled device (`over`: its options). */
  const webDeviceTrust = (over: { checkAddress?: boolean } = {}) =>
    new WebDeviceTrust({
      backend,
      clock,
      audit,
      logger: silentLogger,
      sessions,
      authentication: new DeviceAuthentication({ ...o, cas, checker }),
      inventory,
      proxyPublicAddr: 'proxy.example:443',
      ...over,
    });

  beforeEach(async () => {
    // An enrolled device, cluster device trust required.
    const f = await startEnrolledDevice({ mode: 'required' });
    ({ clock, backend, audit, services, cas, inventory, checker, device, tpm, credentialId, close } = f);
    o = f.deps;
    sessions = new WebSessions({ backend, clock });
    trust = webDeviceTrust();
  });
  afterEach(() => close());

  function data(): rpc.DeviceData {
    return { collect_time: new Date(clock.now()).toISOString(), os_type: 'linux', serial_number: ASSET_TAG };
  }

  /** `wsh login` as `user` on the machine: a key and the caller the proxy sees for its certificate. */
  const helper = (user = 'alice', addr = BROWSER) =>
    loggedIn(cas, clock.now(), { user, traits: {}, ttlMs: 3600_000, clientAddr: addr });

  /** The helper's whole ceremony for a challenge. */
  async function prove(
    h: Awaited<ReturnType<typeof helper>>,
    ch: { id: string; secret: string },
  ): Promise<rpc.DeviceWebFinishResponse> {
    const challenge = { challenge_id: ch.id, challenge_secret: ch.secret };
    const begin = await trust.begin(h.caller, {
      ...challenge,
      credential_id: credentialId,
      device_data: data(),
    });
    return trust.finish(h.caller, { ...challenge, ...tpm.authnFinishRequest(begin, h.key.privateKey) });
  }

  async function signedIn(user = 'alice') {
    const { session } = await sessions.create(who(user), BROWSER);
    return { id: session.id, user, addr: BROWSER };
  }

  test('the helper proves the enrolled device: the web session is device-trusted, audited', async () => {
    const s = await signedIn();
    const ch = await trust.create(s);
    assert.ok(Date.parse(ch.expires) - clock.now() <= 2 * 60_000);
    assert.match(ch.link, /^wsh:\/\/device-trust\?proxy=proxy.example%3A443&id=[0-9a-f-]{36}&secret=/);
    assert.equal((await trust.status(s.id, ch.id)).state, 'pending');
    const res = await prove(await helper(), ch);
    assert.equal(res.device.id, device.metadata.name);
    const st = await trust.status(s.id, ch.id);
    assert.equal(st.state, 'trusted');
    assert.equal(st.device?.credential_id, credentialId);
    const stored = await sessions.get(s.id);
    assert.equal(stored?.data.device?.id, device.metadata.name);
    const events = await audit.search({ types: ['device.web_authenticate'] });
    assert.equal(events.length, 1);
    assert.equal(events[0]!.success, true);
    assert.equal((events[0] as { device_id?: string }).device_id, device.metadata.name);
  });

  test('a replayed challenge is refused (spent once)', async () => {
    const s = await signedIn();
    const ch = await trust.create(s);
    const h = await helper();
    await prove(h, ch);
    await assert.rejects(prove(h, ch), refused(WebDeviceErrors.expired, 'WARDEN_ERR_INVALID_TOKEN'));
  });

  test('an expired challenge is refused', async () => {
    const s = await signedIn();
    const ch = await trust.create(s);
    clock.advance(2 * 60_000 + 1);
    await assert.rejects(prove(await helper(), ch), refused(WebDeviceErrors.expired));
    assert.equal((await trust.status(s.id, ch.id)).state, 'expired');
    assert.equal((await sessions.get(s.id))?.data.device, undefined);
  });

  test('a wrong secret is refused; another session cannot read the challenge', async () => {
    const s = await signedIn();
    const ch = await trust.create(s);
    await assert.rejects(
      prove(await helper(), { id: ch.id, secret: 'guess' }),
      refused(WebDeviceErrors.expired),
    );
    const other = await signedIn();
    assert.equal((await trust.status(other.id, ch.id)).state, 'expired', 'not visible to another session');
    // Still usable by its own session after the wrong guess.
    await prove(await helper(), ch);
    assert.equal((await sessions.get(other.id))?.data.device, undefined, 'the other session stays untrusted');
  });

  test('wsh logged in as another user: refused with what to do; the page reads why', async () => {
    const s = await signedIn('alice');
    const ch = await trust.create(s);
    await assert.rejects(prove(await helper('bob'), ch), refused(WebDeviceErrors.wrongUser('bob', 'alice')));
    const st = await trust.status(s.id, ch.id);
    assert.equal(st.state, 'failed');
    assert.match(st.message!, /wsh login --user=alice/);
  });

  test('a helper at another address than the browser is refused (unless the check is off)', async () => {
    const s = await signedIn();
    const ch = await trust.create(s);
    await assert.rejects(prove(await helper('alice', '10.9.9.9'), ch), refused(WebDeviceErrors.wrongAddr));
    // proxy_service.web_ui.device_address_binding: off (NAT): the same proof from elsewhere passes.
    trust = webDeviceTrust({ checkAddress: false });
    const again = await trust.create(s);
    const res = await prove(await helper('alice', '10.9.9.9'), again);
    assert.equal(res.device.id, device.metadata.name);
    assert.equal((await trust.status(s.id, again.id)).state, 'trusted');
    // The other bindings still hold with the check off: another user is refused.
    const third = await trust.create(s);
    await assert.rejects(
      prove(await helper('bob', '10.9.9.9'), third),
      refused(WebDeviceErrors.wrongUser('bob', 'alice')),
    );
  });

  test('a locked device is refused', async () => {
    const s = await signedIn();
    const ch = await trust.create(s);
    await services.locks.create({
      kind: 'lock',
      version: 'v2',
      metadata: { name: randomUUID() },
      spec: { target: { device: device.metadata.name }, message: 'stolen laptop' },
    } as never);
    await assert.rejects(prove(await helper(), ch), refused(/stolen laptop/, 'WARDEN_ERR_LOCKED'));
    const st = await trust.status(s.id, ch.id);
    assert.equal(st.state, 'failed');
    assert.match(st.message!, /stolen laptop/);
  });

  test('no enrolled device: the challenge says how to enroll', async () => {
    await inventory.remove(admin, device.metadata.name);
    const s = await signedIn();
    const ch = await trust.create(s);
    const st = await trust.status(s.id, ch.id);
    assert.equal(st.state, 'failed');
    assert.equal(st.message, WebDeviceErrors.noDevices);
  });

  test('a device enrolled after the challenge was made is not bound to it', async () => {
    const s = await signedIn();
    const ch = await trust.create(s);
    // Replace the device with a new enrollment of the same machine (a new ID).
    await inventory.remove(admin, device.metadata.name);
    const again = await inventory.add(admin, { osType: 'linux', assetTag: ASSET_TAG });
    credentialId = randomUUID();
    await tpm.enroll(new DeviceEnrollment({ ...o, checker }), {
      token: (await inventory.createEnrollToken(admin, again.metadata.name)).token,
      credential_id: credentialId,
      device_data: data(),
    });
    await assert.rejects(prove(await helper(), ch), refused(WebDeviceErrors.notBound));
  });

  test('the session ended before the proof: refused, nothing trusted', async () => {
    const s = await signedIn();
    const ch = await trust.create(s);
    await sessions.end(s.id);
    await assert.rejects(prove(await helper(), ch), refused(WebDeviceErrors.sessionGone));
  });
});
