import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, test } from 'node:test';
import {
  type AuditEventInput,
  type DeviceCredential,
  type DeviceResource,
  deviceCollectedDataSchema,
  isWardenError,
  WardenError,
} from '@warden/api';
import { akCredentialKeys } from '../../../../test/support/soft-tpm';
import { type AuditLog, MemoryAuditLog } from '../audit';
import { MemoryBackend } from '../backend';
import { FakeClock } from '../clock';
import { silentLogger } from '../log';
import { createServices, type Services } from '../services';
import {
  credentialIndexKey,
  DEVICE_INDEX_BACKFILLED,
  DEVICE_INDEX_PREFIX,
  DeviceInventory,
  ENROLL_TOKEN_PREFIX,
  ekIndexKey,
  INVALID_ENROLL_TOKEN_MESSAGE,
  plainCollectedData,
} from './inventory';

const admin = { user: 'admin', addr: '10.0.0.1' };
const HOUR = 60 * 60 * 1000;

const AK = akCredentialKeys();
const credential = (id = '6c9f0a1e-0000-4000-8000-000000000001'): DeviceCredential => ({
  id,
  ...AK,
  attestation_type: 'tpm_ekpub',
});

function collected(clock: FakeClock, hostname = 'laptop') {
  return {
    collect_time: new Date(clock.now()).toISOString(),
    os_type: 'linux' as const,
    serial_number: 'C00AA0AAAA0A',
    hostname,
    os_username: 'alice',
  };
}

function code(c: string, message?: RegExp | string) {
  return (e: unknown) => {
    assert.ok(isWardenError(e), String(e));
    assert.equal(e.code, c, e.message);
    if (typeof message === 'string') assert.equal(e.message, message);
    else if (message) assert.match(e.message, message);
    return true;
  };
}

describe('DeviceInventory', () => {
  let clock: FakeClock;
  let backend: MemoryBackend;
  let audit: MemoryAuditLog;
  let services: Services;
  let inv: DeviceInventory;

  beforeEach(() => {
    clock = new FakeClock();
    backend = new MemoryBackend({ clock, reapIntervalMs: 0 });
    audit = new MemoryAuditLog({ clock });
    services = createServices({ backend, clock });
    inv = new DeviceInventory({ services, backend, clock, audit, logger: silentLogger });
  });
  afterEach(async () => {
    await backend.close();
  });

  const types = async () => (await audit.search({ order: 'asc' })).map((e) => `${e.type}:${e.code}`);

  test('add registers a not-enrolled device with a server-made UUID, audited', async () => {
    const d = await inv.add(admin, { osType: 'Linux', assetTag: 'C00AA0AAAA0A' });
    assert.match(d.metadata.name, /^[0-9a-f-]{36}$/);
    assert.equal(d.spec.os_type, 'linux');
    assert.equal(d.spec.enroll_status, 'not_enrolled');
    assert.equal(d.spec.source, 'api');
    assert.equal(d.spec.create_time, '2026-01-01T00:00:00.000Z');
    assert.deepEqual(await inv.get(d.metadata.name), d);
    const [ev] = await audit.search({ types: ['device.create'] });
    assert.equal(ev?.code, 'W5000I');
    assert.equal(ev?.user, 'admin');
    assert.equal((ev as unknown as { device_id: string }).device_id, d.metadata.name);
  });

  test('add refuses a second device with the same OS and asset tag, bad OS and bad tags', async () => {
    const d = await inv.add(admin, { osType: 'linux', assetTag: 'TAG1' });
    await assert.rejects(
      inv.add(admin, { osType: 'linux', assetTag: 'TAG1' }),
      code(
        'WARDEN_ERR_ALREADY_EXISTS',
        `device TAG1/Linux is already in the inventory (device ID ${d.metadata.name})`,
      ),
    );
    // Same tag on another OS is another device.
    await inv.add(admin, { osType: 'macos', assetTag: 'TAG1' });
    await assert.rejects(
      inv.add(admin, { osType: 'beos', assetTag: 'X' }),
      code('WARDEN_ERR_BAD_PARAMETER', /unknown OS "beos"/),
    );
    await assert.rejects(
      inv.add(admin, { osType: 'linux', assetTag: '' }),
      code('WARDEN_ERR_BAD_PARAMETER', /invalid asset tag/),
    );
    await assert.rejects(
      inv.add(admin, { osType: 'linux', assetTag: 'a b' }),
      code('WARDEN_ERR_BAD_PARAMETER', /invalid asset tag/),
    );
    assert.equal((await inv.list()).length, 2);
  });

  test('get and find: by ID, by asset tag, not found, and several devices with one tag ask for the ID', async () => {
    const linux = await inv.add(admin, { osType: 'linux', assetTag: 'SHARED' });
    const only = await inv.add(admin, { osType: 'windows', assetTag: 'ONLY' });
    assert.equal((await inv.find('ONLY')).metadata.name, only.metadata.name);
    assert.equal((await inv.find(linux.metadata.name)).metadata.name, linux.metadata.name);
    assert.equal((await inv.find('SHARED')).metadata.name, linux.metadata.name);
    const mac = await inv.add(admin, { osType: 'macos', assetTag: 'SHARED' });
    await assert.rejects(inv.find('SHARED'), (e) => {
      assert.ok(isWardenError(e, 'WARDEN_ERR_BAD_PARAMETER'));
      assert.match(e.message, /several devices have asset tag "SHARED" .*use the device ID/);
      assert.ok(e.message.includes(linux.metadata.name) && e.message.includes(mac.metadata.name));
      return true;
    });
    await assert.rejects(inv.find('nope'), code('WARDEN_ERR_NOT_FOUND', 'device "nope" not found'));
    await assert.rejects(inv.get('ONLY'), code('WARDEN_ERR_NOT_FOUND', 'device "ONLY" not found'));
    const gone = '00000000-0000-4000-8000-000000000000';
    await assert.rejects(inv.get(gone), code('WARDEN_ERR_NOT_FOUND', `device "${gone}" not found`));
  });

  test('remove by asset tag deletes the device and its tokens, audited', async () => {
    const d = await inv.add(admin, { osType: 'linux', assetTag: 'GONE' });
    const { token } = await inv.createEnrollToken(admin, d.metadata.name);
    const removed = await inv.remove(admin, 'GONE');
    assert.equal(removed.metadata.name, d.metadata.name);
    assert.deepEqual(await inv.list(), []);
    assert.equal((await backend.range(ENROLL_TOKEN_PREFIX)).items.length, 0);
    await assert.rejects(
      inv.spendEnrollToken(token),
      code('WARDEN_ERR_INVALID_TOKEN', INVALID_ENROLL_TOKEN_MESSAGE),
    );
    await assert.rejects(inv.remove(admin, 'GONE'), code('WARDEN_ERR_NOT_FOUND'));
    assert.ok((await types()).includes('device.delete:W5001I'));
  });

  test('enrollment tokens: single use, hashed at rest, audited when made and spent', async () => {
    const d = await inv.add(admin, { osType: 'linux', assetTag: 'T1' });
    const { token, expires } = await inv.createEnrollToken(admin, 'T1');
    assert.match(token, /^[A-Za-z0-9_-]{43}$/);
    assert.equal(expires, new Date(clock.now() + HOUR).toISOString());
    // Nothing in the backend holds the token itself.
    for (const prefix of ['/']) {
      for (const item of (await backend.range(prefix)).items) {
        assert.ok(!item.key.includes(token) && !item.value.includes(token), `token at rest in ${item.key}`);
      }
    }
    const spent = await inv.spendEnrollToken(token, '10.0.0.9');
    assert.equal(spent.metadata.name, d.metadata.name);
    await assert.rejects(
      inv.spendEnrollToken(token),
      code('WARDEN_ERR_INVALID_TOKEN', INVALID_ENROLL_TOKEN_MESSAGE),
    );
    const events = await types();
    assert.ok(events.includes('device.token.create:W5002I'));
    assert.ok(events.includes('device.token.spent:W5006I'));
    assert.ok(events.includes('device.token.spent:W5006W'));
    // The audit log does not hold the token either.
    assert.ok(!JSON.stringify(await audit.search({})).includes(token));
  });

  test('two ceremonies racing with one token: exactly one gets the device', async () => {
    await inv.add(admin, { osType: 'linux', assetTag: 'RACE' });
    const { token } = await inv.createEnrollToken(admin, 'RACE');
    const results = await Promise.allSettled([1, 2, 3, 4].map(() => inv.spendEnrollToken(token)));
    assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
  });

  test('enrollment tokens expire (FakeClock), and a new token replaces the old one', async () => {
    await inv.add(admin, { osType: 'linux', assetTag: 'EXP' });
    const short = await inv.createEnrollToken(admin, 'EXP', 60_000);
    clock.advance(60_000);
    await assert.rejects(
      inv.spendEnrollToken(short.token),
      code('WARDEN_ERR_INVALID_TOKEN', INVALID_ENROLL_TOKEN_MESSAGE),
    );
    const first = await inv.createEnrollToken(admin, 'EXP');
    const second = await inv.createEnrollToken(admin, 'EXP');
    await assert.rejects(inv.spendEnrollToken(first.token), code('WARDEN_ERR_INVALID_TOKEN'));
    clock.advance(HOUR - 1);
    assert.equal((await inv.spendEnrollToken(second.token)).spec.asset_tag, 'EXP');
  });

  test('bad tokens and TTLs', async () => {
    await inv.add(admin, { osType: 'linux', assetTag: 'BAD' });
    for (const t of ['', 'x'.repeat(600), 'not-a-token']) {
      await assert.rejects(
        inv.spendEnrollToken(t),
        code('WARDEN_ERR_INVALID_TOKEN', INVALID_ENROLL_TOKEN_MESSAGE),
      );
    }
    for (const ttl of [0, -1, 25 * HOUR, Number.NaN, 1.5]) {
      await assert.rejects(
        inv.createEnrollToken(admin, 'BAD', ttl),
        code('WARDEN_ERR_BAD_PARAMETER'),
        String(ttl),
      );
    }
    await assert.rejects(inv.createEnrollToken(admin, 'NOPE'), code('WARDEN_ERR_NOT_FOUND'));
  });

  test('enroll: credential, collected data, owner; tokens of an enrolled device stop working', async () => {
    const d = await inv.add(admin, { osType: 'linux', assetTag: 'ENR' });
    const { token } = await inv.createEnrollToken(admin, 'ENR');
    const spare = await inv.createEnrollToken(admin, 'ENR').catch(() => undefined);
    assert.ok(spare);
    const spent = await inv.spendEnrollToken(spare.token);
    const enrolled = await inv.enroll(spent.metadata.name, credential(), collected(clock), 'alice');
    assert.equal(enrolled.spec.enroll_status, 'enrolled');
    assert.equal(enrolled.spec.owner, 'alice');
    assert.deepEqual(enrolled.spec.credential, credential());
    assert.equal(enrolled.spec.collected_data?.length, 1);
    await assert.rejects(inv.spendEnrollToken(token), code('WARDEN_ERR_INVALID_TOKEN'));
    assert.equal((await inv.findByCredentialId(credential().id))?.metadata.name, d.metadata.name);
    assert.equal(await inv.findByCredentialId('other'), undefined);
    // Enrolled devices get no new tokens and can't be enrolled twice.
    await assert.rejects(
      inv.createEnrollToken(admin, 'ENR'),
      code('WARDEN_ERR_BAD_PARAMETER', /already enrolled/),
    );
    await assert.rejects(
      inv.enroll(d.metadata.name, credential(), collected(clock)),
      code('WARDEN_ERR_BAD_PARAMETER', /already enrolled/),
    );
  });

  test('enroll refuses a credential ID another device holds, and bad credentials or data', async () => {
    const a = await inv.add(admin, { osType: 'linux', assetTag: 'A' });
    const b = await inv.add(admin, { osType: 'linux', assetTag: 'B' });
    await inv.enroll(a.metadata.name, credential(), collected(clock));
    await assert.rejects(
      inv.enroll(b.metadata.name, credential(), collected(clock)),
      code('WARDEN_ERR_ALREADY_EXISTS', /already enrolled for another device/),
    );
    await assert.rejects(
      inv.enroll(
        b.metadata.name,
        { ...credential('c2'), attestation_type: 'guess' } as never,
        collected(clock),
      ),
      code('WARDEN_ERR_BAD_PARAMETER', /invalid device credential: attestation_type/),
    );
    await assert.rejects(
      inv.enroll(b.metadata.name, credential('c2'), { ...collected(clock), collect_time: 'now' }),
      code('WARDEN_ERR_BAD_PARAMETER', /invalid device collected data: collect_time/),
    );
    assert.equal((await inv.get(b.metadata.name)).spec.enroll_status, 'not_enrolled');
  });

  test('enroll refuses a credential whose public_key_der is not the key of its ak_public (forged)', async () => {
    const d = await inv.add(admin, { osType: 'linux', assetTag: 'A' });
    const other = akCredentialKeys();
    const forged: DeviceCredential[] = [
      // Another key than the AK that authentications verify with.
      { ...credential(), public_key_der: other.public_key_der },
      // The other way round: the AK swapped, the public key kept.
      { ...credential(), ak_public: other.ak_public },
    ];
    for (const cred of forged) {
      await assert.rejects(
        inv.enroll(d.metadata.name, cred, collected(clock)),
        code(
          'WARDEN_ERR_BAD_PARAMETER',
          'invalid device credential: public_key_der is not the public key of ak_public',
        ),
      );
    }
    await assert.rejects(
      inv.enroll(d.metadata.name, { ...credential(), ak_public: 'AAAA' }, collected(clock)),
      code('WARDEN_ERR_BAD_PARAMETER', /ak_public is not the public area of a TPM key/),
    );
    assert.equal((await inv.get(d.metadata.name)).spec.enroll_status, 'not_enrolled');
    assert.equal(await inv.findByCredentialId(credential().id), undefined);
  });

  test('enrollConflicts: the EK-backed and the credential-holding device, from the index (no listing)', async () => {
    const ek = 'E'.repeat(43);
    const a = await inv.add(admin, { osType: 'linux', assetTag: 'CON-A' });
    const b = await inv.add(admin, { osType: 'linux', assetTag: 'CON-B' });
    const tagged = await inv.add(admin, { osType: 'linux', assetTag: `ek:${'T'.repeat(43)}` });
    assert.deepEqual(await inv.enrollConflicts(ek, credential().id, b.metadata.name), {});
    await inv.enroll(a.metadata.name, { ...credential(), ek_sha256: ek }, collected(clock));
    await inv.enroll(
      tagged.metadata.name,
      credential('6c9f0a1e-0000-4000-8000-0000000000t1'),
      collected(clock),
    );
    const ranges: string[] = [];
    const range = backend.range.bind(backend);
    backend.range = (prefix, ...rest) => {
      ranges.push(prefix);
      return range(prefix, ...rest);
    };
    const both = await inv.enrollConflicts(ek, credential().id, b.metadata.name);
    assert.equal(both.ek?.metadata.name, a.metadata.name);
    assert.equal(both.credential?.metadata.name, a.metadata.name);
    assert.deepEqual(ranges, [], 'no listing: the index keys of the EK and the credential');
    // The device being enrolled does not conflict with itself; an `ek:` tag names its EK.
    assert.equal((await inv.enrollConflicts(ek, 'x', a.metadata.name)).ek, undefined);
    assert.equal(
      (await inv.enrollConflicts('T'.repeat(43), 'x', b.metadata.name)).ek?.metadata.name,
      tagged.metadata.name,
    );
    // Unenrolled devices hold nothing.
    const stored = await inv.get(a.metadata.name);
    await inv.update(admin, { ...stored, spec: { ...stored.spec, enroll_status: 'not_enrolled' } });
    assert.deepEqual(await inv.enrollConflicts(ek, credential().id, b.metadata.name), {});
  });

  test('enroll: the uniqueness checks list nothing (the index keys); the written device is what the store decodes; a bad owner writes nothing', async () => {
    const ek = 'F'.repeat(43);
    const a = await inv.add(admin, { osType: 'linux', assetTag: 'ONE-A' });
    const b = await inv.add(admin, { osType: 'linux', assetTag: 'ONE-B' });
    await inv.enroll(a.metadata.name, { ...credential(), ek_sha256: ek }, collected(clock));
    let listings = 0;
    const range = backend.range.bind(backend);
    backend.range = (prefix, ...rest) => {
      if (prefix === services.devices.prefix) listings++;
      return range(prefix, ...rest);
    };
    await assert.rejects(
      inv.enroll(
        b.metadata.name,
        { ...credential('6c9f0a1e-0000-4000-8000-0000000000b2'), ek_sha256: ek },
        collected(clock),
      ),
      code('WARDEN_ERR_ALREADY_EXISTS', /this TPM already backs device ONE-A/),
    );
    assert.equal(listings, 0);
    await assert.rejects(
      inv.enroll(
        b.metadata.name,
        credential('6c9f0a1e-0000-4000-8000-0000000000b2'),
        collected(clock),
        'x'.repeat(5000),
      ),
      code('WARDEN_ERR_BAD_PARAMETER', /invalid device owner/),
    );
    assert.equal((await services.devices.get(b.metadata.name)).spec.enroll_status, 'not_enrolled');
    const enrolled = await inv.enroll(
      b.metadata.name,
      credential('6c9f0a1e-0000-4000-8000-0000000000b2'),
      collected(clock),
      'bob',
    );
    assert.deepEqual(enrolled, await services.devices.get(b.metadata.name));
    assert.deepEqual(await inv.findByCredentialId(enrolled.spec.credential!.id), enrolled);
  });

  test('findByCredentialId: the index is a hint — never the device of another credential, fresh after edits', async () => {
    const a = await inv.add(admin, { osType: 'linux', assetTag: 'IDX-A' });
    const b = await inv.add(admin, { osType: 'linux', assetTag: 'IDX-B' });
    const c1 = credential('6c9f0a1e-0000-4000-8000-0000000000c1');
    const c2 = credential('6c9f0a1e-0000-4000-8000-0000000000c2');
    await inv.enroll(a.metadata.name, c1, collected(clock), 'alice');
    await inv.enroll(b.metadata.name, c2, collected(clock), 'bob');
    // Warm the index, then find each credential's own device (and only it).
    assert.equal((await inv.findByCredentialId(c1.id))?.metadata.name, a.metadata.name);
    assert.equal((await inv.findByCredentialId(c2.id))?.metadata.name, b.metadata.name);
    assert.equal(await inv.findByCredentialId('6c9f0a1e-0000-4000-8000-0000000000ff'), undefined);
    // A device found is frozen: a caller can't change what the next ceremony reads.
    const found = await inv.findByCredentialId(c1.id);
    assert.throws(() => {
      (found!.spec as { owner?: string }).owner = 'mallory';
    }, TypeError);
    // Another process (a second auth replica: its own inventory, same backend) unenrolls
    // alice's device and enrolls bob's device with alice's old credential ID: this process's
    // index still says c1 → a, and must not answer with a, nor with b for c2.
    const other = new DeviceInventory({ services, backend, clock, audit, logger: silentLogger });
    const storedA = await other.get(a.metadata.name);
    await other.update(admin, { ...storedA, spec: { ...storedA.spec, enroll_status: 'not_enrolled' } });
    assert.equal(await inv.findByCredentialId(c1.id), undefined, 'an unenrolled device no longer holds c1');
    const storedB = await other.get(b.metadata.name);
    await other.update(admin, { ...storedB, spec: { ...storedB.spec, enroll_status: 'not_enrolled' } });
    await other.enroll(b.metadata.name, c1, collected(clock), 'bob');
    const now = await inv.findByCredentialId(c1.id);
    assert.equal(now?.metadata.name, b.metadata.name);
    assert.equal(now?.spec.owner, 'bob');
    assert.equal(await inv.findByCredentialId(c2.id), undefined, 'b holds c1 now, not c2');
    // Removed elsewhere: gone here too.
    await other.remove(admin, b.metadata.name);
    assert.equal(await inv.findByCredentialId(c1.id), undefined);
  });

  describe('the uniqueness index (one EK, one credential: one enrolled device)', () => {
    const EK = 'K'.repeat(43);
    const keys = async () => (await backend.range(DEVICE_INDEX_PREFIX)).items.map((i) => i.key);
    const named = async (key: string) => JSON.parse((await backend.get(key))!.value).device_id as string;
    /** The transactions and the listings of the inventory the inventory makes, as `type key…`. */
    const spy = () => {
      const calls: string[] = [];
      const txn = backend.txn.bind(backend);
      backend.txn = (ops) => {
        calls.push(`txn ${ops.map((o) => `${o.type} ${o.key}`).join(', ')}`);
        return txn(ops);
      };
      const range = backend.range.bind(backend);
      backend.range = (prefix) => {
        if (prefix === services.devices.prefix) calls.push(`range ${prefix}`);
        return range(prefix);
      };
      return calls;
    };

    test('enroll writes the device and its keys in one transaction; unenroll, undo and removal delete them in theirs', async () => {
      const d = await inv.add(admin, { osType: 'linux', assetTag: 'IX-1' });
      const id = d.metadata.name;
      const cred = credentialIndexKey(credential().id);
      await inv.findByEk(EK); // the (empty) backfill, before the spy
      const calls = spy();
      await inv.enroll(id, { ...credential(), ek_sha256: EK }, collected(clock));
      assert.deepEqual(calls, [`txn cas /devices/${id}, create ${cred}, create ${ekIndexKey(EK)}`]);
      assert.deepEqual(await keys(), [DEVICE_INDEX_BACKFILLED, cred, ekIndexKey(EK)]);
      assert.equal(await named(ekIndexKey(EK)), id);
      // Collected data changes no hold: no index operation.
      calls.length = 0;
      await inv.recordCollectedData(id, collected(clock));
      assert.deepEqual(calls, []);
      // Unenrolled by an edit: the keys go with it.
      const stored = await inv.get(id);
      await inv.update(admin, { ...stored, spec: { ...stored.spec, enroll_status: 'not_enrolled' } });
      assert.deepEqual(calls, [`txn cas /devices/${id}, delete ${cred}, delete ${ekIndexKey(EK)}`]);
      assert.deepEqual(await keys(), [DEVICE_INDEX_BACKFILLED]);
      // Enrolled again, then the enrollment undone (unaudited): the keys go.
      await inv.enroll(id, { ...credential(), ek_sha256: EK }, collected(clock));
      await inv.undoEnroll(id, credential().id);
      assert.deepEqual(await keys(), [DEVICE_INDEX_BACKFILLED]);
      // Removed while enrolled: the device and its keys in one transaction.
      await inv.enroll(id, { ...credential(), ek_sha256: EK }, collected(clock));
      calls.length = 0;
      await inv.remove(admin, id);
      assert.deepEqual(calls, [`txn delete /devices/${id}, delete ${cred}, delete ${ekIndexKey(EK)}`]);
      assert.deepEqual(await keys(), [DEVICE_INDEX_BACKFILLED]);
    });

    test('a refused enrollment writes nothing: no device record without its keys, no key without its device', async () => {
      const a = await inv.add(admin, { osType: 'linux', assetTag: 'IX-A' });
      const b = await inv.add(admin, { osType: 'linux', assetTag: 'IX-B' });
      await inv.enroll(a.metadata.name, { ...credential(), ek_sha256: EK }, collected(clock));
      const before = await backend.currentRev();
      // Another credential, the same EK: refused by the EK's key, whose create fails the transaction.
      await assert.rejects(
        inv.enroll(b.metadata.name, { ...credential('c-b'), ek_sha256: EK }, collected(clock)),
        code('WARDEN_ERR_ALREADY_EXISTS', /this TPM already backs device IX-A\/Linux/),
      );
      // The same credential, another EK: refused by the credential's key.
      await assert.rejects(
        inv.enroll(b.metadata.name, { ...credential(), ek_sha256: 'L'.repeat(43) }, collected(clock)),
        code(
          'WARDEN_ERR_ALREADY_EXISTS',
          `device credential "${credential().id}" is already enrolled for another device`,
        ),
      );
      assert.equal(await backend.currentRev(), before, 'nothing written');
      assert.equal((await inv.get(b.metadata.name)).spec.enroll_status, 'not_enrolled');
      assert.equal(await backend.get(credentialIndexKey('c-b')), undefined);
      assert.equal(await backend.get(ekIndexKey('L'.repeat(43))), undefined);
    });

    test('two inventories (replicas) enrolling one EK at once: exactly one device, the other told as a sequential duplicate', async () => {
      const replica = new DeviceInventory({ services, backend, clock, audit, logger: silentLogger });
      const a = await inv.add(admin, { osType: 'linux', assetTag: 'RACE-A' });
      const b = await inv.add(admin, { osType: 'linux', assetTag: 'RACE-B' });
      await Promise.all([inv.findByEk(EK), replica.findByEk(EK)]);
      // Both have read their device before either writes (as two replicas at the same moment).
      const results = await Promise.allSettled([
        inv.enroll(a.metadata.name, { ...credential('c-a'), ek_sha256: EK }, collected(clock)),
        replica.enroll(b.metadata.name, { ...credential('c-b'), ek_sha256: EK }, collected(clock)),
      ]);
      const enrolled = (await inv.list()).filter((d) => d.spec.enroll_status === 'enrolled');
      assert.equal(enrolled.length, 1, 'exactly one device enrolled');
      const loser = results.find((r) => r.status === 'rejected');
      assert.ok(loser && loser.status === 'rejected');
      code(
        'WARDEN_ERR_ALREADY_EXISTS',
        `this TPM already backs device ${enrolled[0]!.spec.asset_tag}/Linux`,
      )(new WardenError(loser.reason.code, loser.reason.message.split(' (device ID')[0]));
      assert.equal(await named(ekIndexKey(EK)), enrolled[0]!.metadata.name);
    });

    test('a stale key (its device no longer holds it) is claimed again; lookups never answer with it', async () => {
      const a = await inv.add(admin, { osType: 'linux', assetTag: 'ST-A' });
      const b = await inv.add(admin, { osType: 'linux', assetTag: 'ST-B' });
      await inv.findByEk(EK);
      // Written by an older warden that unenrolled without clearing it, or garbage.
      await backend.put(ekIndexKey(EK), JSON.stringify({ device_id: a.metadata.name }));
      await backend.put(credentialIndexKey(credential().id), 'not json');
      assert.equal(await inv.findByEk(EK), undefined);
      assert.equal(await inv.findByCredentialId(credential().id), undefined);
      await inv.enroll(b.metadata.name, { ...credential(), ek_sha256: EK }, collected(clock));
      assert.equal(await named(ekIndexKey(EK)), b.metadata.name);
      assert.equal(await named(credentialIndexKey(credential().id)), b.metadata.name);
      assert.equal((await inv.findByEk(EK))?.metadata.name, b.metadata.name);
    });

    test('an inventory from before the index is backfilled once; its devices then count', async () => {
      // Enrolled as an older warden did: the device only, no keys.
      const old = await inv.add(admin, { osType: 'linux', assetTag: 'OLD' });
      const tagged = await inv.add(admin, { osType: 'linux', assetTag: `ek:${'T'.repeat(43)}` });
      for (const [d, cred] of [
        [old, { ...credential('c-old'), ek_sha256: EK }],
        [tagged, credential('c-tag')],
      ] as const) {
        const s = await services.devices.get(d.metadata.name);
        await services.devices.update({
          ...s,
          spec: { ...s.spec, enroll_status: 'enrolled', credential: cred },
        });
      }
      const fresh = new DeviceInventory({ services, backend, clock, audit, logger: silentLogger });
      const calls = spy();
      const b = await inv.add(admin, { osType: 'linux', assetTag: 'NEW' });
      calls.length = 0;
      await assert.rejects(
        fresh.enroll(b.metadata.name, { ...credential('c-new'), ek_sha256: EK }, collected(clock)),
        code('WARDEN_ERR_ALREADY_EXISTS', /this TPM already backs device OLD\/Linux/),
      );
      assert.deepEqual(
        calls.filter((c) => c.startsWith('range')),
        ['range /devices/'],
        'one listing, once',
      );
      assert.deepEqual(await keys(), [
        DEVICE_INDEX_BACKFILLED,
        credentialIndexKey('c-old'),
        credentialIndexKey('c-tag'),
        ekIndexKey(EK),
        ekIndexKey('T'.repeat(43)),
      ]);
      // Another process finds the marker: no listing.
      calls.length = 0;
      const other = new DeviceInventory({ services, backend, clock, audit, logger: silentLogger });
      assert.equal((await other.findByEk('T'.repeat(43)))?.metadata.name, tagged.metadata.name);
      assert.equal((await other.findByCredentialId('c-old'))?.metadata.name, old.metadata.name);
      assert.deepEqual(calls, []);
    });

    test('a removal the audit log refuses is put back with its keys, unless another device holds them by now', async () => {
      const d = await inv.add(admin, { osType: 'linux', assetTag: 'UR' });
      await inv.enroll(d.metadata.name, { ...credential(), ek_sha256: EK }, collected(clock));
      const failing: AuditLog = {
        emit: async (e: AuditEventInput) => {
          if (e.type === 'device.delete') throw new Error('disk full');
          return audit.emit(e);
        },
        search: (q) => audit.search(q),
        close: () => audit.close(),
      };
      const refusing = new DeviceInventory({
        services,
        backend,
        clock,
        audit: failing,
        logger: silentLogger,
      });
      await assert.rejects(refusing.remove(admin, 'UR'), code('WARDEN_ERR_AUDIT_UNAVAILABLE'));
      assert.equal(await named(ekIndexKey(EK)), d.metadata.name, 'put back with its keys');
      assert.equal((await inv.findByEk(EK))?.metadata.name, d.metadata.name);
    });
  });

  test('recordCollectedData keeps the newest 10 entries', async () => {
    const d = await inv.add(admin, { osType: 'linux', assetTag: 'COL' });
    await inv.enroll(d.metadata.name, credential(), collected(clock, 'h0'));
    for (let i = 1; i <= 12; i++) {
      clock.advance(1000);
      await inv.recordCollectedData(d.metadata.name, collected(clock, `h${i}`));
    }
    const data = (await inv.get(d.metadata.name)).spec.collected_data ?? [];
    assert.equal(data.length, 10);
    assert.equal(data[0]?.hostname, 'h3');
    assert.equal(data[9]?.hostname, 'h12');
  });

  test('a device written with collected data comes back from the cache as the store decodes it', async () => {
    const d = await inv.add(admin, { osType: 'linux', assetTag: 'CACHE' });
    await inv.enroll(d.metadata.name, credential(), collected(clock, 'h0'));
    for (let i = 1; i <= 11; i++) {
      clock.advance(1000);
      await inv.recordCollectedData(d.metadata.name, [
        collected(clock, `h${i}`),
        { ...collected(clock), os_version: '6.1' },
      ]);
      const cached = await inv.findByCredentialId(credential().id);
      const fresh = await services.devices.get(d.metadata.name);
      assert.deepEqual(cached, fresh, `after write ${i}`);
      assert.ok(Object.isFrozen(cached?.spec.collected_data), 'the cached device is frozen');
    }
    // Entries the store would refuse are refused before anything is written.
    const before = await services.devices.get(d.metadata.name);
    await assert.rejects(
      inv.recordCollectedData(d.metadata.name, { ...collected(clock), collect_time: 'yesterday' }),
      code('WARDEN_ERR_BAD_PARAMETER', /collect_time/),
    );
    await assert.rejects(
      inv.recordCollectedData(d.metadata.name, { ...collected(clock), extra: 1 } as never),
      code('WARDEN_ERR_BAD_PARAMETER'),
    );
    assert.deepEqual(await services.devices.get(d.metadata.name), before);
    // Written by someone else meanwhile: read and decoded afresh.
    await services.devices.update({ ...before, spec: { ...before.spec, owner: 'bob' } });
    assert.equal((await inv.findByCredentialId(credential().id))?.spec.owner, 'bob');
  });

  test("collected data's fast path returns what the schema returns, and leaves the rest to it", () => {
    const base = { collect_time: '2026-12-06T20:00:00.123Z', os_type: 'linux' };
    const taken: unknown[] = [
      base,
      { hostname: 'h', os_type: 'macos', serial_number: 'S1', collect_time: '2026-12-06T20:00:00Z' },
      { ...base, os_version: '6.1', os_username: 'alice', hostname: 'x'.repeat(1024), serial_number: '' },
    ];
    for (const c of taken) {
      const fast = plainCollectedData(c);
      assert.ok(fast, JSON.stringify(c));
      const zod = deviceCollectedDataSchema.parse(c);
      assert.deepEqual(fast, zod);
      assert.deepEqual(Object.keys(fast), Object.keys(zod), 'same key order');
      assert.notEqual(fast, c, 'a copy');
    }
    const refused: unknown[] = [
      null,
      'linux',
      [base],
      { ...base, collect_time: 'yesterday' },
      { ...base, os_type: 'plan9' },
      { ...base, extra: 1 },
      { ...base, hostname: 7 },
      { ...base, hostname: 'x'.repeat(1025) },
      { ...base, os_username: 'a\nb' },
      { ...base, serial_number: '\u0085' },
      { os_type: 'linux' },
    ];
    for (const c of refused) {
      assert.equal(plainCollectedData(c), undefined, JSON.stringify(c));
      assert.equal(deviceCollectedDataSchema.safeParse(c).success, false, JSON.stringify(c));
    }
    // Shapes the schema takes in its own way are left to it.
    for (const c of [{ ...base, hostname: undefined }, Object.assign(Object.create({ inherited: 1 }), base)])
      assert.equal(plainCollectedData(c), undefined);
  });

  test('concurrent collected data writes are not lost (compare-and-swap retried)', async () => {
    const d = await inv.add(admin, { osType: 'linux', assetTag: 'CAS' });
    await Promise.all(
      [1, 2, 3, 4].map((i) => inv.recordCollectedData(d.metadata.name, collected(clock, `h${i}`))),
    );
    assert.equal((await inv.get(d.metadata.name)).spec.collected_data?.length, 4);
  });

  describe('admin edits', () => {
    let enrolled: DeviceResource;
    beforeEach(async () => {
      const d = await inv.add(admin, { osType: 'linux', assetTag: 'EDIT' });
      enrolled = await inv.enroll(d.metadata.name, credential(), collected(clock), 'alice');
    });

    test('enroll_status: not_enrolled unenrolls: the credential is removed, audited', async () => {
      const edited = await inv.update(
        admin,
        { ...enrolled, spec: { ...enrolled.spec, enroll_status: 'not_enrolled' } },
        enrolled.metadata.revision,
      );
      assert.equal(edited.spec.enroll_status, 'not_enrolled');
      assert.equal(edited.spec.credential, undefined);
      assert.equal(await inv.findByCredentialId(credential().id), undefined);
      const [ev] = await audit.search({ types: ['device.update'] });
      assert.equal(ev?.code, 'W5005I');
      assert.equal((ev as unknown as { unenrolled?: boolean }).unenrolled, true);
      // It can be enrolled again with a new token.
      const { token } = await inv.createEnrollToken(admin, 'EDIT');
      assert.equal((await inv.spendEnrollToken(token)).metadata.name, enrolled.metadata.name);
    });

    test('the credential cannot be set or changed by edit; server fields are kept', async () => {
      await assert.rejects(
        inv.update(admin, { ...enrolled, spec: { ...enrolled.spec, credential: credential('forged') } }),
        code('WARDEN_ERR_BAD_PARAMETER', /credential can't be changed/),
      );
      const unenrolled = await inv.update(admin, {
        ...enrolled,
        spec: { ...enrolled.spec, enroll_status: 'not_enrolled' },
      });
      await assert.rejects(
        inv.update(admin, {
          ...unenrolled,
          spec: { ...unenrolled.spec, enroll_status: 'enrolled', credential: credential() },
        }),
        code('WARDEN_ERR_BAD_PARAMETER', /can only be enrolled with `wsh device enroll`/),
      );
      const owner = await inv.update(admin, {
        ...unenrolled,
        spec: { ...unenrolled.spec, owner: 'bob', collected_data: [], create_time: '2020-01-01T00:00:00Z' },
      });
      assert.equal(owner.spec.owner, 'bob');
      assert.equal(owner.spec.collected_data?.length, 1);
      assert.equal(owner.spec.create_time, enrolled.spec.create_time);
    });

    test('a stale revision is COMPARE_FAILED; renaming onto another device is ALREADY_EXISTS', async () => {
      const fresh = await inv.update(admin, { ...enrolled, spec: { ...enrolled.spec, owner: 'carol' } });
      await assert.rejects(
        inv.update(
          admin,
          { ...enrolled, spec: { ...enrolled.spec, owner: 'dave' } },
          enrolled.metadata.revision,
        ),
        code('WARDEN_ERR_COMPARE_FAILED'),
      );
      await inv.add(admin, { osType: 'linux', assetTag: 'OTHER' });
      await assert.rejects(
        inv.update(admin, { ...fresh, spec: { ...fresh.spec, asset_tag: 'OTHER' } }),
        code('WARDEN_ERR_ALREADY_EXISTS'),
      );
    });

    test('create from a resource: not enrolled only, duplicates refused', async () => {
      const base = {
        kind: 'device' as const,
        version: 'v1' as const,
        metadata: { name: '11111111-2222-4333-8444-555555555555' },
        spec: {
          os_type: 'windows' as const,
          asset_tag: 'NEW',
          enroll_status: 'not_enrolled' as const,
          source: 'api' as const,
        },
      };
      const made = await inv.create(admin, base);
      assert.equal(made.spec.create_time, new Date(clock.now()).toISOString());
      await assert.rejects(
        inv.create(admin, { ...base, metadata: { name: '11111111-2222-4333-8444-555555555556' } }),
        code('WARDEN_ERR_ALREADY_EXISTS'),
      );
      await assert.rejects(
        inv.create(admin, {
          ...base,
          metadata: { name: '11111111-2222-4333-8444-555555555557' },
          spec: { ...base.spec, asset_tag: 'N2', enroll_status: 'enrolled', credential: credential('x') },
        }),
        code('WARDEN_ERR_BAD_PARAMETER', /cannot be enrolled/),
      );
    });
  });

  /**
   * Issue 15 follow-up: a change the audit log refuses is undone only over what this call
   * wrote. `meanwhile` is another admin (or replica) writing the device while the audit write
   * is pending; the audit write then fails.
   */
  describe('undo after an audit failure', () => {
    const undoErrors: string[] = [];
    const logger = { ...silentLogger, error: (_: object, msg?: string) => void undoErrors.push(msg ?? '') };

    function failingAudit(type: string, meanwhile?: (deviceId: string) => Promise<unknown>): AuditLog {
      return {
        emit: async (e: AuditEventInput) => {
          if (e.type !== type) return audit.emit(e);
          await meanwhile?.((e as { device_id: string }).device_id);
          throw new Error('disk full');
        },
        search: (q) => audit.search(q),
        close: () => audit.close(),
      };
    }
    const inventory = (a: AuditLog) => new DeviceInventory({ services, backend, clock, audit: a, logger });
    const tags = async () => (await inv.list()).map((d) => `${d.spec.asset_tag}:${d.spec.owner ?? ''}`);
    const setOwner = async (id: string, owner: string) => {
      const d = await services.devices.get(id);
      await services.devices.update({ ...d, spec: { ...d.spec, owner } });
    };

    beforeEach(() => {
      undoErrors.length = 0;
    });

    test('add: the device is taken back, unless someone wrote it meanwhile', async () => {
      await assert.rejects(
        inventory(failingAudit('device.create')).add(admin, { osType: 'linux', assetTag: 'A1' }),
        code('WARDEN_ERR_AUDIT_UNAVAILABLE'),
      );
      assert.deepEqual(await tags(), []);
      await assert.rejects(
        inventory(failingAudit('device.create', (id) => setOwner(id, 'bob'))).add(admin, {
          osType: 'linux',
          assetTag: 'A2',
        }),
        code('WARDEN_ERR_AUDIT_UNAVAILABLE'),
      );
      assert.deepEqual(await tags(), ['A2:bob'], "bob's edit is not deleted");
      assert.deepEqual(undoErrors.slice(-1), ['could not undo a change the audit log did not record']);
    });

    test('edit: the device as it was is put back, unless someone wrote it meanwhile', async () => {
      const d = await inv.add(admin, { osType: 'linux', assetTag: 'E1', owner: 'alice' });
      const edit = { ...d, spec: { ...d.spec, owner: 'mallory' } };
      await assert.rejects(
        inventory(failingAudit('device.update')).update(admin, edit),
        code('WARDEN_ERR_AUDIT_UNAVAILABLE'),
      );
      assert.deepEqual(await tags(), ['E1:alice']);
      const now = await inv.get(d.metadata.name);
      await assert.rejects(
        inventory(failingAudit('device.update', (id) => setOwner(id, 'bob'))).update(admin, {
          ...now,
          spec: { ...now.spec, owner: 'mallory' },
        }),
        code('WARDEN_ERR_AUDIT_UNAVAILABLE'),
      );
      assert.deepEqual(await tags(), ['E1:bob'], "bob's edit is not overwritten by the old value");
      assert.deepEqual(undoErrors.slice(-1), ['could not undo a change the audit log did not record']);
    });

    test('removal: the device is put back, unless a device with its ID was written meanwhile', async () => {
      const d = await inv.add(admin, { osType: 'linux', assetTag: 'R1', owner: 'alice' });
      await assert.rejects(
        inventory(failingAudit('device.delete')).remove(admin, 'R1'),
        code('WARDEN_ERR_AUDIT_UNAVAILABLE'),
      );
      assert.deepEqual((await inv.get(d.metadata.name)).spec, d.spec);
      assert.deepEqual(await tags(), ['R1:alice']);
      await assert.rejects(
        inventory(
          failingAudit('device.delete', (id) =>
            services.devices.create({ ...d, spec: { ...d.spec, owner: 'carol' } }).then(() => id),
          ),
        ).remove(admin, 'R1'),
        code('WARDEN_ERR_AUDIT_UNAVAILABLE'),
      );
      assert.deepEqual(await tags(), ['R1:carol'], "carol's device is not overwritten by the removed one");
      assert.deepEqual(undoErrors.slice(-1), ['could not undo a change the audit log did not record']);
    });
  });
});
