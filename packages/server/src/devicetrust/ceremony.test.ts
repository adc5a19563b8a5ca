import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isWardenError } from '@warden/api';
import { type Backend, MemoryBackend } from '../backend';
import { FakeClock } from '../clock';
import { CEREMONY_PREFIX, CeremonySessions } from './ceremony';

/** A memory backend that says it is shared (as PostgreSQL does), so sessions go to it. */
function sharedBackend(clock: FakeClock): Backend {
  const backend = new MemoryBackend({ clock, reapIntervalMs: 0 });
  return Object.assign(backend, { staleForMs: () => 0 });
}

for (const shared of [false, true]) {
  const where = shared ? 'backend' : 'memory';
  test(`ceremony sessions (${where}): single use, expire, other kinds untouched, per-user limit`, async () => {
    const clock = new FakeClock();
    const backend = shared ? sharedBackend(clock) : new MemoryBackend({ clock, reapIntervalMs: 0 });
    const authn = new CeremonySessions<{ nonce: string }>({ backend, clock, kind: 'authn', ttlMs: 60_000 });
    const enroll = new CeremonySessions<{ nonce: string }>({ backend, clock, kind: 'enroll', ttlMs: 60_000 });
    assert.equal(authn.storage, where);

    const id = await authn.open({ nonce: 'n1' });
    assert.equal(await enroll.take(id), undefined, 'another kind cannot spend it');
    assert.deepEqual(await authn.take(id), { nonce: 'n1' });
    assert.equal(await authn.take(id), undefined, 'a replayed finish finds nothing');

    const racing = await authn.open({ nonce: 'n2' });
    const [a, b] = await Promise.all([authn.take(racing), authn.take(racing)]);
    assert.equal([a, b].filter(Boolean).length, 1, 'of two racing finishes exactly one continues');

    const old = await authn.open({ nonce: 'n3' });
    clock.advance(60_001);
    assert.equal(await authn.take(old), undefined, 'expired');

    const limit = { owner: 'alice', max: 2 };
    await authn.open({ nonce: 'a' }, limit);
    await authn.open({ nonce: 'b' }, limit);
    await assert.rejects(authn.open({ nonce: 'c' }, limit), (e: unknown) =>
      isWardenError(e, 'WARDEN_ERR_RATE_LIMITED'),
    );
    await authn.open({ nonce: 'c' }, { owner: 'bob', max: 2 });
    clock.advance(60_001);
    await authn.open({ nonce: 'd' }, limit);

    const stored = (await backend.range(CEREMONY_PREFIX)).items.length;
    assert.ok(shared ? stored > 0 : stored === 0, `sessions in the ${where}`);
  });
}
