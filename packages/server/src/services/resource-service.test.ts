import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, test } from 'node:test';
import { isWardenError, type LockResource, type RoleResource, type UserResource } from '@warden/api';
import { MemoryBackend } from '../backend';
import { FakeClock } from '../clock';
import { createServices, type Services } from './services';

const role = (name: string, logins: string[] = ['dev']): RoleResource => ({
  kind: 'role',
  version: 'v7',
  metadata: { name },
  spec: { options: {}, allow: { logins }, deny: {} },
});

const user = (name: string, roles: string[]): UserResource => ({
  kind: 'user',
  version: 'v2',
  metadata: { name },
  spec: { roles, traits: {} },
});

const LOCK_ID = '5444970a-39a0-4814-968d-e58b4a8fa686';
const lock = (
  spec: Partial<LockResource['spec']>,
  metadata: Partial<LockResource['metadata']> = {},
): LockResource => ({
  kind: 'lock',
  version: 'v2',
  metadata: { name: LOCK_ID, ...metadata },
  spec: { target: { device: 'dev-1' }, ...spec },
});

function code(c: string) {
  return (e: unknown) => {
    assert.ok(isWardenError(e), String(e));
    assert.equal(e.code, c, e.message);
    return true;
  };
}

let clock: FakeClock;
let backend: MemoryBackend;
let services: Services;

beforeEach(() => {
  clock = new FakeClock(Date.UTC(2026, 0, 1));
  backend = new MemoryBackend({ clock, reapIntervalMs: 0 });
  services = createServices({ backend, clock });
});
afterEach(async () => {
  await backend.close();
});

describe('ResourceService', () => {
  test('create, get, list, delete', async () => {
    const created = await services.roles.create(role('dev'));
    assert.equal(created.metadata.name, 'dev');
    assert.match(created.metadata.revision ?? '', /^\d+$/);
    assert.deepEqual(await services.roles.get('dev'), created);
    await services.roles.create(role('ops'));
    assert.deepEqual(
      (await services.roles.list()).map((r) => r.metadata.name),
      ['dev', 'ops'],
    );
    await services.roles.delete('dev');
    assert.equal(await services.roles.find('dev'), undefined);
    await assert.rejects(services.roles.get('dev'), /role "dev" not found/);
    await assert.rejects(services.roles.delete('dev'), code('WARDEN_ERR_NOT_FOUND'));
  });

  test('stores under the kind prefix, without the revision', async () => {
    await services.users.create({
      ...user('alice', ['access']),
      metadata: { name: 'alice', revision: '99' },
    });
    const item = await backend.get('/users/alice');
    assert.ok(item);
    assert.deepEqual(JSON.parse(item.value), {
      kind: 'user',
      version: 'v2',
      metadata: { name: 'alice' },
      spec: { roles: ['access'], traits: {} },
    });
  });

  test('create refuses a duplicate', async () => {
    await services.roles.create(role('dev'));
    await assert.rejects(services.roles.create(role('dev')), (e) => {
      code('WARDEN_ERR_ALREADY_EXISTS')(e);
      assert.equal((e as Error).message, 'role "dev" already exists');
      return true;
    });
  });

  test('update is a compare-and-swap on metadata.revision', async () => {
    const v1 = await services.roles.create(role('dev'));
    const v2 = await services.roles.update({
      ...v1,
      spec: { ...v1.spec, allow: { logins: ['dev', 'ubuntu'] } },
    });
    assert.notEqual(v2.metadata.revision, v1.metadata.revision);
    assert.deepEqual((await services.roles.get('dev')).spec.allow.logins, ['dev', 'ubuntu']);
    // A writer holding the old revision loses.
    await assert.rejects(services.roles.update(v1), (e) => {
      code('WARDEN_ERR_COMPARE_FAILED')(e);
      assert.match((e as Error).message, /role "dev" changed since it was read/);
      return true;
    });
    // No revision: refused rather than silently overwriting.
    await assert.rejects(services.roles.update(role('dev')), code('WARDEN_ERR_BAD_PARAMETER'));
    await assert.rejects(
      services.roles.update({ ...role('dev'), metadata: { name: 'dev', revision: 'abc' } }),
      code('WARDEN_ERR_BAD_PARAMETER'),
    );
    await assert.rejects(
      services.roles.update({ ...role('gone'), metadata: { name: 'gone', revision: '1' } }),
      code('WARDEN_ERR_NOT_FOUND'),
    );
  });

  test('delete with a revision deletes only that revision', async () => {
    const v1 = await services.roles.create(role('dev'));
    const v2 = await services.roles.update({ ...v1, spec: { ...v1.spec, allow: { logins: ['root'] } } });
    await assert.rejects(services.roles.delete('dev', v1.metadata.revision), (e) => {
      code('WARDEN_ERR_COMPARE_FAILED')(e);
      assert.match((e as Error).message, /role "dev" changed since it was read/);
      return true;
    });
    assert.deepEqual((await services.roles.get('dev')).spec.allow.logins, ['root']);
    await assert.rejects(services.roles.delete('dev', 'abc'), code('WARDEN_ERR_BAD_PARAMETER'));
    await services.roles.delete('dev', v2.metadata.revision);
    assert.equal(await services.roles.find('dev'), undefined);
    await assert.rejects(services.roles.delete('dev', v2.metadata.revision), code('WARDEN_ERR_NOT_FOUND'));
  });

  test('upsert overwrites regardless of revision', async () => {
    await services.roles.create(role('dev'));
    await services.roles.upsert(role('dev', ['root']));
    assert.deepEqual((await services.roles.get('dev')).spec.allow.logins, ['root']);
  });

  test('writes are validated with the schema', async () => {
    const bad = {
      ...role('dev'),
      spec: { ...role('dev').spec, allow: { loginz: ['x'] } },
    } as unknown as RoleResource;
    await assert.rejects(services.roles.create(bad), (e) => {
      code('WARDEN_ERR_BAD_RESOURCE')(e);
      assert.equal((e as Error).message, 'role "dev": spec.allow.loginz: unknown field');
      return true;
    });
    await assert.rejects(
      services.roles.upsert(user('x', []) as unknown as RoleResource),
      /kind: expected "role"/,
    );
    assert.deepEqual(await services.roles.list(), []);
  });

  test('reads are validated too: corrupt stored values fail closed', async () => {
    await backend.put('/roles/dev', JSON.stringify({ ...role('dev'), spec: { allow: { logins: 'root' } } }));
    await assert.rejects(services.roles.get('dev'), (e) => {
      code('WARDEN_ERR_INTERNAL')(e);
      assert.match((e as Error).message, /stored role at "\/roles\/dev" is invalid: .*spec\.allow\.logins/);
      return true;
    });
    await backend.put('/roles/dev', 'not json');
    await assert.rejects(services.roles.list(), code('WARDEN_ERR_INTERNAL'));
    await backend.put('/roles/dev', JSON.stringify(role('other')));
    await assert.rejects(services.roles.get('dev'), /is named "other"/);
  });

  test('names that are not resource names are refused before touching the backend', async () => {
    for (const name of ['', 'a/b', '..', 'has space']) {
      await assert.rejects(services.roles.get(name), code('WARDEN_ERR_BAD_PARAMETER'), name);
    }
  });

  test('metadata.expires becomes a TTL', async () => {
    const expires = new Date(clock.now() + 60_000).toISOString();
    await services.roles.create({ ...role('temp'), metadata: { name: 'temp', expires } });
    assert.ok(await services.roles.find('temp'));
    clock.advance(60_000);
    assert.equal(await services.roles.find('temp'), undefined);
    await assert.rejects(
      services.roles.create({ ...role('old'), metadata: { name: 'old', expires: '2025-01-01T00:00:00Z' } }),
      /role "old" expires in the past/,
    );
  });
});

describe('locks', () => {
  test('spec.expires is the TTL and created_at is filled in', async () => {
    const expires = new Date(clock.now() + 12 * 3_600_000).toISOString();
    const created = await services.locks.create(
      lock({ expires, message: 'stolen laptop', created_by: 'admin' }),
    );
    assert.equal(created.spec.created_at, new Date(clock.now()).toISOString());
    assert.equal((await backend.get(`/locks/${LOCK_ID}`))?.expires, Date.parse(expires));
    clock.advance(12 * 3_600_000);
    assert.deepEqual(await services.locks.list(), []);
  });

  test('the earlier of spec.expires and metadata.expires wins', async () => {
    const soon = new Date(clock.now() + 1000).toISOString();
    const later = new Date(clock.now() + 5000).toISOString();
    await services.locks.create(lock({ expires: later }, { expires: soon }));
    assert.equal((await backend.get(`/locks/${LOCK_ID}`))?.expires, Date.parse(soon));
  });

  test('a given created_at is kept; a lock without target is refused', async () => {
    const created = await services.locks.create(lock({ created_at: '2025-12-31T00:00:00Z' }));
    assert.equal(created.spec.created_at, '2025-12-31T00:00:00Z');
    await assert.rejects(
      services.locks.upsert(lock({ target: {} })),
      /spec\.target: needs at least one of user, role, login, node, device/,
    );
  });
});

describe('cluster auth preference', () => {
  test('defaults when absent: device trust optional, second factor otp, origin default', async () => {
    const cap = await services.authPreference.get();
    assert.equal(cap.metadata.name, 'cluster-auth-preference');
    assert.equal(cap.metadata.revision, undefined);
    assert.equal(cap.spec.device_trust.mode, 'optional');
    assert.deepEqual(cap.metadata.labels, { 'warden.dev/origin': 'default' });
    assert.equal(cap.spec.second_factor, 'otp');
    assert.equal(
      await backend.get('/cluster_config/cluster-auth-preference'),
      undefined,
      'reading stores nothing',
    );
  });

  test('edit: read default, update creates; a stale update fails', async () => {
    const cap = await services.authPreference.get();
    const stored = await services.authPreference.update({
      ...cap,
      spec: { ...cap.spec, device_trust: { ...cap.spec.device_trust, mode: 'required' } },
    });
    assert.equal((await services.authPreference.get()).spec.device_trust.mode, 'required');
    await assert.rejects(services.authPreference.update(cap), code('WARDEN_ERR_ALREADY_EXISTS'));
    await services.authPreference.update({ ...stored, spec: { ...stored.spec, second_factor: 'on' } });
    await assert.rejects(services.authPreference.update(stored), code('WARDEN_ERR_COMPARE_FAILED'));
    await services.authPreference.reset();
    await services.authPreference.reset();
    assert.equal((await services.authPreference.get()).spec.device_trust.mode, 'optional');
  });

  test('only the one name is accepted', async () => {
    const cap = await services.authPreference.get();
    await assert.rejects(
      services.authPreference.upsert({ ...cap, metadata: { name: 'other' } } as unknown as typeof cap),
      /metadata\.name: must be "cluster-auth-preference"/,
    );
  });
});

describe('ensurePresets', () => {
  test('creates the presets once and never overwrites edits', async () => {
    assert.deepEqual(await services.ensurePresets(), [
      'access',
      'editor',
      'auditor',
      'require-trusted-device',
    ]);
    const rtd = await services.roles.get('require-trusted-device');
    await services.roles.update({
      ...rtd,
      spec: {
        ...rtd.spec,
        allow: { logins: ['admin'], kubernetes_groups: ['edit'], node_labels: { '*': '*' } },
      },
    });
    await services.roles.delete('auditor');
    assert.deepEqual(await services.ensurePresets(), ['auditor']);
    assert.deepEqual((await services.roles.get('require-trusted-device')).spec.allow.logins, ['admin']);
    assert.deepEqual(await services.ensurePresets(), []);
  });
});
