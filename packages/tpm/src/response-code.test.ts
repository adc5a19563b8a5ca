import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TpmError, tpmErrorCatalogue } from './errors';
import { decodeResponseCode, describeResponseCode, isRetryable } from './response-code';

test('format 1: parameter, handle and session numbers', () => {
  assert.deepEqual(decodeResponseCode(0x1c4), {
    rc: 0x1c4,
    name: 'TPM_RC_VALUE',
    base: 0x084,
    kind: 'format1',
    parameter: 1,
  });
  assert.deepEqual(decodeResponseCode(0x18b), {
    rc: 0x18b,
    name: 'TPM_RC_HANDLE',
    base: 0x08b,
    kind: 'format1',
    handle: 1,
  });
  const session = decodeResponseCode(0x98e);
  assert.equal(session.name, 'TPM_RC_AUTH_FAIL');
  assert.equal(session.session, 1);
  assert.equal(decodeResponseCode(0x29f).name, 'TPM_RC_INTEGRITY');
  assert.equal(decodeResponseCode(0x29f).handle, 2);
  assert.equal(decodeResponseCode(0x2d5).parameter, 2); // TPM_RC_SIZE on parameter 2
  assert.equal(describeResponseCode(decodeResponseCode(0x1c4)), 'TPM_RC_VALUE (parameter 1, rc 0x1c4)');
});

test('format 0: errors, warnings, vendor and TPM 1.2 codes', () => {
  assert.equal(decodeResponseCode(0).name, 'TPM_RC_SUCCESS');
  assert.equal(decodeResponseCode(0x100).name, 'TPM_RC_INITIALIZE');
  assert.equal(decodeResponseCode(0x14a).name, 'TPM_RC_NV_UNINITIALIZED');
  assert.equal(decodeResponseCode(0x902).name, 'TPM_RC_OBJECT_MEMORY');
  assert.equal(decodeResponseCode(0x922).name, 'TPM_RC_RETRY');
  assert.equal(decodeResponseCode(0x922).kind, 'warning');
  assert.equal(decodeResponseCode(0x500).kind, 'vendor');
  assert.equal(decodeResponseCode(0x01e).kind, 'tpm12');
  assert.equal(decodeResponseCode(0x17f).name, 'TPM_RC_0x17f');
});

test('only RETRY, YIELDED and TESTING are retried', () => {
  assert.equal(isRetryable(0x922), true);
  assert.equal(isRetryable(0x908), true);
  assert.equal(isRetryable(0x90a), true);
  assert.equal(isRetryable(0x902), false);
  assert.equal(isRetryable(0x1c4), false);
  assert.equal(isRetryable(0), false);
});

test('every catalogue code has a TPM_ERR_ prefix and a message; toJSON carries the rc name', () => {
  for (const [code, message] of Object.entries(tpmErrorCatalogue)) {
    assert.match(code, /^TPM_ERR_[A-Z0-9_]+$/);
    assert.ok(message.length > 10);
  }
  const e = new TpmError('TPM_ERR_RESPONSE', 'Quote failed', { response: decodeResponseCode(0x1c4) });
  assert.deepEqual(e.toJSON(), { code: 'TPM_ERR_RESPONSE', message: 'Quote failed', rc: 'TPM_RC_VALUE' });
  assert.equal(e.rcName, 'TPM_RC_VALUE');
});
