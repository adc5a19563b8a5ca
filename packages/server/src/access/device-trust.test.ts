import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { deviceDemanded, deviceTrustRank, strictestDeviceTrustMode } from './device-trust';

describe('device trust modes', () => {
  test('order: off < optional < required-for-humans < required; unknown is required', () => {
    assert.deepEqual(
      ['off', 'optional', 'required-for-humans', 'required'].map(deviceTrustRank),
      [0, 1, 2, 3],
    );
    assert.equal(deviceTrustRank(undefined), 0);
    assert.equal(deviceTrustRank('required-for-robots'), 3);
    assert.equal(strictestDeviceTrustMode(['optional', 'required-for-humans']), 'required-for-humans');
    assert.equal(strictestDeviceTrustMode(['required-for-humans', 'required']), 'required');
    assert.equal(strictestDeviceTrustMode(['off', 'Required']), 'required');
    assert.equal(strictestDeviceTrustMode([]), 'off');
  });

  test('a device is demanded of people by both strict modes, of bots only by required', () => {
    assert.equal(deviceDemanded('required', 'human'), true);
    assert.equal(deviceDemanded('required', 'bot'), true);
    assert.equal(deviceDemanded('required-for-humans', 'human'), true);
    assert.equal(deviceDemanded('required-for-humans', 'bot'), false);
    assert.equal(deviceDemanded('optional', 'human'), false);
    assert.equal(deviceDemanded('off', 'bot'), false);
  });
});
