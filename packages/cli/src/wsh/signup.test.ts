import assert from 'node:assert/strict';
import { test } from 'node:test';
import { webHelperNeeded } from './signup';

test('wsh login starts the web helper when people need a device: required and required-for-humans', () => {
  assert.equal(webHelperNeeded('required'), true);
  // Only people run `wsh login` (bots are refused there): required-for-humans is required for them.
  assert.equal(webHelperNeeded('required-for-humans'), true);
  for (const mode of ['off', 'optional', undefined, '', 'some-future-mode'])
    assert.equal(webHelperNeeded(mode), false, String(mode));
});
