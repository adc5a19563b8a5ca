import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { MemoryBackend } from '../backend';
import { FakeClock } from '../clock';
import { OneTimeTokens } from './one-time';

function store() {
  const clock = new FakeClock();
  const backend = new MemoryBackend({ clock });
  return { clock, backend, tokens: new OneTimeTokens<{ user: string }>(backend, clock, '/t/') };
}

describe('one-time tokens', () => {
  test('only the hash is stored; found once, spent once; a second spend loses', async () => {
    const { backend, tokens } = store();
    const { token, expires } = await tokens.create({ user: 'alice' }, 60_000);
    const { items } = await backend.range('/t/');
    assert.equal(items.length, 1);
    assert.ok(!items[0]!.key.includes(token) && !items[0]!.value.includes(token), 'no token in the backend');
    const found = await tokens.find(token);
    assert.deepEqual(found?.value, { user: 'alice', expires });
    const again = await tokens.find(token);
    assert.equal(await tokens.spend(found!), true);
    assert.equal(await tokens.spend(again!), false, 'a racing spender loses');
    assert.equal(await tokens.find(token), undefined);
  });

  test('expired, malformed and unknown tokens are not found; deleteWhere removes by record', async () => {
    const { clock, tokens } = store();
    const a = await tokens.create({ user: 'alice' }, 60_000);
    const b = await tokens.create({ user: 'bob' }, 600_000);
    assert.equal(await tokens.find('short'), undefined);
    assert.equal(await tokens.find(`${a.token}x`), undefined);
    clock.advance(61_000);
    assert.equal(await tokens.find(a.token), undefined, 'past its expiry');
    assert.ok(await tokens.find(b.token));
    await tokens.deleteWhere((v) => v.user === 'bob');
    assert.equal(await tokens.find(b.token), undefined);
  });
});
