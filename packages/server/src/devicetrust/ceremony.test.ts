import assert from 'node:assert/strict';
import { createPublicKey } from 'node:crypto';
import { test } from 'node:test';
import { isWardenError } from '@warden/api';
import { decodePublic, encodePublic, isTpmError, publicKeyFromTpmt } from '@warden/tpm';
import { SoftTpm } from '../../../../test/support/soft-tpm';
import { type Backend, MemoryBackend } from '../backend';
import { FakeClock } from '../clock';
import { akPublicOf, CEREMONY_PREFIX, CeremonySessions, rememberAkPublic } from './ceremony';

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

test('akPublicOf: an AK public area decoded once per encoding (its key object with it); bad ones refused, not kept', () => {
  const tpm = new SoftTpm();
  const b64 = Buffer.from(encodePublic(tpm.ak.public)).toString('base64');
  const first = akPublicOf(b64);
  assert.equal(akPublicOf(b64), first, 'the same decoded object');
  assert.equal(publicKeyFromTpmt(akPublicOf(b64)), publicKeyFromTpmt(first), 'so the same key object');
  assert.ok(publicKeyFromTpmt(first).equals(createPublicKey(tpm.ak.private)));
  // What begin decoded and verified is what finish gets.
  const other = new SoftTpm();
  const otherB64 = Buffer.from(encodePublic(other.ak.public)).toString('base64');
  const decoded = decodePublic(encodePublic(other.ak.public));
  rememberAkPublic(otherB64, decoded);
  assert.equal(akPublicOf(otherB64), decoded);
  assert.throws(() => akPublicOf('AAAA'), isTpmError);
  assert.throws(() => akPublicOf('AAAA'), isTpmError, 'still refused: nothing was kept');
});
