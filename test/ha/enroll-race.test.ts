/**
 * Device enrollment racing across replicas: two auth replicas (each its own PostgresBackend,
 * stores, inventory and enrollment ceremony, as two `warden start` processes have) on one
 * real PostgreSQL. Both ceremonies pass their begin (nothing is enrolled yet) and finish at
 * the same moment: the backend lets exactly one device hold the TPM's EK (or the credential
 * ID), and the other replica's finish is refused with the error a sequential duplicate gets,
 * leaving its device not enrolled and no key naming it.
 *
 * The moment is made exact: each replica's backend holds its first device write until the
 * other replica's has arrived too, so both have read the inventory as it was before either
 * wrote (the interleaving of two replicas at the same instant).
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, describe, test } from 'node:test';
import { type DeviceResource, isWardenError, type rpc } from '@warden/api';
import {
  type Backend,
  createServices,
  credentialIndexKey,
  DEVICE_INDEX_PREFIX,
  DeviceEnrollment,
  DeviceInventory,
  ekIndexKey,
  MemoryAuditLog,
  PostgresBackend,
  type Services,
  silentLogger,
  systemClock,
} from '@warden/server';
import { requirePostgres, startPostgres } from '@warden/testkit';
import { SoftTpm } from '../support/soft-tpm';

const check = requirePostgres();
const TEST = { timeout: 60_000 };
const admin = { user: 'admin' };
/** Device trust settings as a live checker gives them (no allowed CAs, no auto-enrollment). */
const checker = { enrollmentSettings: () => ({ autoEnroll: false, ekCertAllowedCas: [] as string[] }) };

/**
 * Two parties meet once, after `arm()`: the first to arrive waits for the second (at most
 * `limitMs`); before it is armed and after they met, everyone passes.
 */
function meeting(limitMs = 10_000) {
  let armed = false;
  let arrived = 0;
  let open!: () => void;
  const met = new Promise<void>((resolve) => {
    open = resolve;
  });
  let timer: NodeJS.Timeout | undefined;
  return {
    /** How many arrived (the third and later pass at once). */
    get arrived() {
      return arrived;
    },
    arm(): void {
      armed = true;
    },
    async arrive(): Promise<void> {
      if (!armed) return;
      arrived++;
      if (arrived >= 2) {
        clearTimeout(timer);
        open();
        return;
      }
      timer = setTimeout(open, limitMs);
      await met;
    },
  };
}

/** `backend`, whose writes of a device (`/devices/…`) first wait at `gate`. */
function gated(backend: Backend, gate: ReturnType<typeof meeting>): Backend {
  const writesDevice = (keys: string[]) => keys.some((k) => k.startsWith('/devices/'));
  return new Proxy(backend, {
    get(target, prop) {
      const value = Reflect.get(target, prop, target);
      if (typeof value !== 'function') return value;
      if (prop === 'compareAndSwap' || prop === 'create' || prop === 'put') {
        return async (key: string, ...rest: unknown[]) => {
          if (writesDevice([key])) await gate.arrive();
          return (value as (...a: unknown[]) => unknown).call(target, key, ...rest);
        };
      }
      if (prop === 'txn') {
        return async (ops: { key: string }[]) => {
          if (writesDevice(ops.map((o) => o.key))) await gate.arrive();
          return (value as (...a: unknown[]) => unknown).call(target, ops);
        };
      }
      return value.bind(target);
    },
  });
}

interface Replica {
  backend: Backend;
  services: Services;
  inventory: DeviceInventory;
  enrollment: DeviceEnrollment;
  audit: MemoryAuditLog;
}

describe('device enrollment racing across two replicas on one PostgreSQL', { skip: check.skip }, async () => {
  if (!check.ok) return;
  const server = await startPostgres();
  after(() => server.stop());
  let schemas = 0;

  type Ctx = { after(fn: () => unknown): void };
  /** Two replicas on a fresh schema; their device writes meet at `gate`. */
  async function replicas(t: Ctx, gate: ReturnType<typeof meeting>): Promise<[Replica, Replica]> {
    const schema = `enroll_race_${++schemas}`;
    const open = async (): Promise<Replica> => {
      const raw = await PostgresBackend.open({ connString: server.connString, schema, reapIntervalMs: 0 });
      t.after(() => raw.close());
      const backend = gated(raw, gate);
      const clock = systemClock;
      const services = createServices({ backend, clock });
      const audit = new MemoryAuditLog({ clock });
      const logger = silentLogger;
      const inventory = new DeviceInventory({ services, backend, clock, audit, logger });
      const enrollment = new DeviceEnrollment({ inventory, checker, backend, clock, audit, logger });
      return { backend, services, inventory, enrollment, audit };
    };
    const a = await open();
    return [a, await open()];
  }

  const deviceData = (assetTag: string): rpc.DeviceData => ({
    collect_time: new Date().toISOString(),
    os_type: 'linux',
    serial_number: assetTag,
  });

  /** Registers a device through `r` and begins its enrollment there with `tpm`. */
  async function begun(r: Replica, tpm: SoftTpm, assetTag: string, credentialId = randomUUID()) {
    const device = await r.inventory.add(admin, { osType: 'linux', assetTag });
    const { token } = await r.inventory.createEnrollToken(admin, device.metadata.name);
    const req: rpc.DeviceEnrollBeginRequest = {
      token,
      credential_id: credentialId,
      device_data: deviceData(assetTag),
      ...tpm.enrollInit(),
    };
    return { device, req, begin: await r.enrollment.begin(req) };
  }

  /** What each finish gave, and the enrolled devices the store holds afterwards. */
  async function race(
    gate: ReturnType<typeof meeting>,
    a: Replica,
    b: Replica,
    runs: [() => Promise<unknown>, () => Promise<unknown>],
  ): Promise<{ won: number; lost: unknown; enrolled: DeviceResource[] }> {
    gate.arm();
    const results = await Promise.allSettled(runs.map((run) => run()));
    const won = results.findIndex((r) => r.status === 'fulfilled');
    const lost = results.find((r) => r.status === 'rejected');
    const enrolled = (await a.inventory.list()).filter((d) => d.spec.enroll_status === 'enrolled');
    assert.deepEqual(
      (await b.inventory.list()).filter((d) => d.spec.enroll_status === 'enrolled'),
      enrolled,
      'both replicas read one store',
    );
    return { won, lost: lost?.status === 'rejected' ? lost.reason : undefined, enrolled };
  }

  test('one TPM, two devices enrolled at once through two replicas: exactly one device', TEST, async (t) => {
    const gate = meeting();
    const [a, b] = await replicas(t, gate);
    const tpm = new SoftTpm();
    const first = await begun(a, tpm, 'RACE-A');
    const second = await begun(b, tpm, 'RACE-B');
    const { won, lost, enrolled } = await race(gate, a, b, [
      () => a.enrollment.finish(tpm.finishRequest(first.begin)),
      () => b.enrollment.finish(tpm.finishRequest(second.begin)),
    ]);
    assert.equal(gate.arrived >= 2, true, 'both finishes reached their device write');
    assert.equal(enrolled.length, 1, `exactly one device enrolled (got ${enrolled.length})`);
    assert.notEqual(won, -1);
    const [winner, loser] = won === 0 ? [first, second] : [second, first];
    assert.equal(enrolled[0]!.metadata.name, winner.device.metadata.name);
    // The loser is told what a sequential duplicate is told: try a third device now.
    const third = await a.inventory.add(admin, { osType: 'linux', assetTag: 'RACE-C' });
    const { token } = await a.inventory.createEnrollToken(admin, third.metadata.name);
    const sequential = await a.enrollment
      .begin({ token, credential_id: randomUUID(), device_data: deviceData('RACE-C'), ...tpm.enrollInit() })
      .then(
        () => assert.fail('a sequential duplicate was not refused'),
        (e: unknown) => e,
      );
    assert.ok(isWardenError(lost, 'WARDEN_ERR_ALREADY_EXISTS'), String(lost));
    assert.ok(isWardenError(sequential, 'WARDEN_ERR_ALREADY_EXISTS'), String(sequential));
    assert.equal(lost.message, sequential.message);
    assert.match(lost.message, /^this TPM already backs device RACE-[AB]\/Linux/);
    // Nothing half-written: the loser's device is as registered, no index key names it.
    const loserNow = await b.inventory.get(loser.device.metadata.name);
    assert.equal(loserNow.spec.enroll_status, 'not_enrolled');
    assert.equal(loserNow.spec.credential, undefined);
    const index = (await a.backend.range(DEVICE_INDEX_PREFIX)).items;
    assert.ok(
      index.every((i) => !i.value.includes(loser.device.metadata.name)),
      'no index key names the loser',
    );
    assert.equal(
      JSON.parse((await a.backend.get(credentialIndexKey(winner.req.credential_id)))!.value).device_id,
      winner.device.metadata.name,
    );
    // The refusal is audited on the replica that refused.
    const loserAudit = won === 0 ? b.audit : a.audit;
    const events = await loserAudit.search({ types: ['device.enroll'] });
    assert.deepEqual(
      events
        .filter((e) => (e as { device_id?: string }).device_id === loser.device.metadata.name)
        .map((e) => [e.success, (e as { error?: string }).error]),
      [[false, lost.message]],
    );
  });

  test(
    'two TPMs with one credential ID, enrolled at once through two replicas: exactly one device',
    TEST,
    async (t) => {
      const gate = meeting();
      const [a, b] = await replicas(t, gate);
      const credentialId = randomUUID();
      const [tpmA, tpmB] = [new SoftTpm(), new SoftTpm()];
      const first = await begun(a, tpmA, 'CRED-A', credentialId);
      const second = await begun(b, tpmB, 'CRED-B', credentialId);
      const { won, lost, enrolled } = await race(gate, a, b, [
        () => a.enrollment.finish(tpmA.finishRequest(first.begin)),
        () => b.enrollment.finish(tpmB.finishRequest(second.begin)),
      ]);
      assert.equal(gate.arrived >= 2, true, 'both finishes reached their device write');
      assert.equal(enrolled.length, 1, `exactly one device enrolled (got ${enrolled.length})`);
      assert.ok(isWardenError(lost, 'WARDEN_ERR_ALREADY_EXISTS'), String(lost));
      assert.equal(
        lost.message,
        `device credential "${credentialId}" is already enrolled for another device`,
      );
      const winner = won === 0 ? first : second;
      const loserTpm = won === 0 ? tpmB : tpmA;
      assert.equal(enrolled[0]!.metadata.name, winner.device.metadata.name);
      // The loser's EK was not claimed: its TPM can still enroll its device, with another credential.
      assert.equal(
        (await a.backend.get(ekIndexKey(enrolled[0]!.spec.credential!.ek_sha256!))) !== undefined,
        true,
      );
      const loser = won === 0 ? second : first;
      const { token } = await a.inventory.createEnrollToken(admin, loser.device.metadata.name);
      const again = await a.enrollment.begin({
        token,
        credential_id: randomUUID(),
        device_data: deviceData(loser.device.spec.asset_tag),
        ...loserTpm.enrollInit(),
      });
      const done = await b.enrollment.finish(loserTpm.finishRequest(again));
      assert.equal(done.device.enroll_status, 'enrolled');
    },
  );
});
