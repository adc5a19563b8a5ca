import assert from 'node:assert/strict';
import { test } from 'node:test';
import { assertBadResource, resourceOf } from '../../../../test/support/resources';
import { parseResources } from './codec';
import { resolveKind } from './kind-names';
import { validateResourceOfKind } from './validate';

const ID = '9cdfc0ad-64b7-4d9c-8e1e-0f0a0b0c0d0e';
const credential = {
  id: '6c9f0a1e-0000-4000-8000-000000000001',
  public_key_der: 'MFkwEwYHKoZIzj0CAQ==',
  attestation_type: 'tpm_ekcert',
  ek_cert_serial: '0a:0b',
  ak_public: 'ACMACwAFBHIAAAAQ',
};

const device = resourceOf('device', 'v1', ID, { os_type: 'linux', asset_tag: 'C00AA0AAAA0A' });

test('a registered device: defaults not_enrolled, source api', () => {
  const d = validateResourceOfKind('device', device({}));
  assert.equal(d.spec.enroll_status, 'not_enrolled');
  assert.equal(d.spec.source, 'api');
  assert.equal(d.spec.credential, undefined);
});

test('an enrolled device with its credential and collected data, from YAML', () => {
  const [d] = parseResources(
    [
      'kind: device',
      'version: v1',
      'metadata:',
      `  name: ${ID}`,
      'spec:',
      '  os_type: macos',
      '  asset_tag: "ek:AbC-_d"',
      '  enroll_status: enrolled',
      '  credential:',
      `    id: ${credential.id}`,
      `    public_key_der: ${credential.public_key_der}`,
      '    attestation_type: tpm_ekpub',
      `    ak_public: ${credential.ak_public}`,
      '  collected_data:',
      '    - { collect_time: "2026-01-01T00:00:00Z", os_type: macos, hostname: mac-1, os_username: alice }',
      '  owner: alice',
      '',
    ].join('\n'),
  );
  assert.equal(d?.kind, 'device');
  assert.ok(d?.kind === 'device');
  assert.equal(d.spec.credential?.attestation_type, 'tpm_ekpub');
  assert.equal(d.spec.collected_data?.[0]?.hostname, 'mac-1');
});

test('CLI aliases', () => {
  assert.equal(resolveKind('devices'), 'device');
  assert.equal(resolveKind('device'), 'device');
});

test('bad devices', () => {
  assertBadResource(device({}, { name: 'laptop-1' }), /metadata\.name: expected a UUID/);
  assertBadResource(device({ os_type: 'beos' }), /spec\.os_type: expected one of linux, macos, windows/);
  assertBadResource(device({ asset_tag: '' }), /spec\.asset_tag: must not be empty/);
  assertBadResource(device({ asset_tag: 'a b' }), /spec\.asset_tag: must not contain spaces/);
  assertBadResource(device({ asset_tag: 'x'.repeat(257) }), /spec\.asset_tag: must be at most 256/);
  assertBadResource(device({ enroll_status: 'pending' }), /spec\.enroll_status/);
  assertBadResource(
    device({ enroll_status: 'enrolled' }),
    /spec\.credential: an enrolled device needs spec\.credential/,
  );
  assertBadResource(
    device({ enroll_status: 'enrolled', credential: { ...credential, attestation_type: 'tpm_guess' } }),
    /spec\.credential\.attestation_type/,
  );
  assertBadResource(
    device({ enroll_status: 'enrolled', credential: { ...credential, public_key_der: 'not base64!' } }),
    /spec\.credential\.public_key_der: expected base64/,
  );
  assertBadResource(
    device({ enroll_status: 'enrolled', credential: { ...credential, ak_public: undefined } }),
    /spec\.credential\.ak_public: expected base64/,
  );
  assertBadResource(device({ source: 'mdm' }), /spec\.source/);
  assertBadResource(device({ serial: 'x' }), /spec\.serial: unknown field/);
  const entry = { collect_time: '2026-01-01T00:00:00Z', os_type: 'linux' };
  assertBadResource(
    device({ collected_data: Array(11).fill(entry) }),
    /spec\.collected_data: must have at most 10/,
  );
  assertBadResource(device({ collected_data: [{ ...entry, collect_time: 'yesterday' }] }), /collect_time/);
});
