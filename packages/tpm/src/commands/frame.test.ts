import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TPM_CC, TPM_RH } from '../constants';
import { isTpmError, type TpmError } from '../errors';
import { fromHex, toHex } from '../marshal';
import { buildCommand, parseResponse, passwordAuth } from './frame';

test('a command without sessions: GetRandom(16)', () => {
  assert.equal(toHex(buildCommand(TPM_CC.GetRandom, [], [], fromHex('0010'))), '80010000000c0000017b0010');
});

test('a command with a password session: NV_Read of the RSA EK certificate index', () => {
  const cmd = buildCommand(TPM_CC.NV_Read, [0x01c00002, 0x01c00002], [passwordAuth()], fromHex('04000000'));
  assert.equal(
    toHex(cmd),
    // tag, size 35, cc, 2 handles, auth size 9: PW, empty nonce, attrs 0, empty hmac; size 1024, offset 0
    `8002000000230000014e01c0000201c0000200000009${TPM_RH.PW.toString(16)}000000000004000000`,
  );
});

test('an error response becomes TPM_ERR_RESPONSE with the decoded code', () => {
  assert.throws(
    () => parseResponse(TPM_CC.Quote, fromHex('80010000000a000001c4'), 0, 1),
    (e) =>
      isTpmError(e, 'TPM_ERR_RESPONSE') &&
      (e as TpmError).response?.name === 'TPM_RC_VALUE' &&
      (e as TpmError).response?.parameter === 1 &&
      /TPM2_Quote failed: TPM_RC_VALUE \(parameter 1/.test((e as Error).message),
  );
});

test('a response with sessions: handles, parameterSize, parameters and auth area', () => {
  const bytes = fromHex('80020000001900000000' + '80000001' + '00000002' + 'abcd' + '0000' + '01' + '0000');
  const r = parseResponse(TPM_CC.Load, bytes, 1, 1);
  assert.deepEqual(r.handles, [0x80000001]);
  assert.equal(toHex(r.params.rest()), 'abcd');
});

test('malformed responses are TPM_ERR_MARSHAL', () => {
  for (const hex of [
    '8001000000',
    '80010000000b00000000',
    '80020000000e00000000ffffffff',
    '12340000000a00000000',
  ]) {
    assert.throws(
      () => parseResponse(TPM_CC.GetRandom, fromHex(hex), 0, hex.startsWith('8002') ? 1 : 0),
      (e) => isTpmError(e, 'TPM_ERR_MARSHAL'),
    );
  }
});
