import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isWardenError } from '@warden/api';
import { dbResourceFromConfig } from './heartbeat';

test('dbResourceFromConfig validates: bad names and URIs are refused', () => {
  assert.throws(
    () => dbResourceFromConfig({ name: 'a b', protocol: 'postgres', uri: 'h:1' }),
    (e) => isWardenError(e, 'WARDEN_ERR_BAD_RESOURCE'),
  );
  assert.throws(
    () => dbResourceFromConfig({ name: 'a', protocol: 'postgres', uri: 'nope' }),
    (e) => isWardenError(e, 'WARDEN_ERR_BAD_RESOURCE'),
  );
  const ca = '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n';
  assert.equal(
    dbResourceFromConfig({ name: 'a', protocol: 'mysql', uri: 'h:1', caCertPems: [ca, ca] }).spec.ca_cert,
    ca + ca,
  );
});
