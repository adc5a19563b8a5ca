import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type rpc, WardenError } from '@warden/api';
import { FakeDevice } from '../../../../test/support/fake-device';
import { type EnrollApi, EnrollCeremony } from './enroll';

const b64 = (a: number[]) => Buffer.from(a).toString('base64');
const SELECTION = [{ hash: 11, pcrs: [0, 1, 2] }];

function fakeApi(opts: { failBegin?: Error } = {}) {
  const sent: unknown[] = [];
  const api: EnrollApi = {
    async deviceEnrollBegin(req) {
      sent.push(req);
      if (opts.failBegin) throw opts.failBegin;
      return {
        session_id: 'sess-1',
        nonce: b64([7, 7]),
        challenge: { credential_blob: b64([1, 2]), secret: b64([3]) },
        pcr_selection: SELECTION,
      };
    },
    async deviceEnrollFinish(req) {
      sent.push(req);
      const device: rpc.DeviceSummary = {
        id: 'dev-1',
        os_type: 'linux',
        asset_tag: 'TAG1',
        enroll_status: 'enrolled',
        credential_id: FakeDevice.credential().id,
      };
      return { device };
    },
  };
  return { api, sent };
}

describe('EnrollCeremony (client)', () => {
  test('1. init → begin, 2. activate + quote → finish, 3. remember the cluster', async () => {
    const dev = new FakeDevice();
    const phases: string[] = [];
    const c = new EnrollCeremony({ onPhase: (p) => phases.push(p) });
    c.openDevice = async () => dev;
    c.now = () => new Date('2026-02-02T00:00:00.000Z');
    const { api, sent } = fakeApi();
    const res = await c.run(api, { token: 'T', cluster: 'warden', proxy: '127.0.0.1:3080' });
    assert.equal(res.device.id, 'dev-1');
    assert.ok(res.timings.deviceMs >= 0 && res.timings.serverMs >= 0);
    assert.deepEqual(dev.calls, [
      'collectDeviceData',
      'credential(create)',
      'enrollInit',
      'activate(1,2,3)',
      `quote(7,7,${JSON.stringify(SELECTION)})`,
      'recordEnrollment',
    ]);
    assert.deepEqual(sent[0], {
      token: 'T',
      credential_id: FakeDevice.credential().id,
      device_data: { collect_time: '2026-01-01T00:00:00.000Z', os_type: 'linux', serial_number: 'TAG1' },
      ek: { public: b64([10]), cert_der: b64([11]) },
      ak: {
        public: b64([1]),
        creation_data: b64([3]),
        creation_attest: b64([12]),
        creation_signature: b64([13]),
      },
    });
    assert.deepEqual(sent[1], {
      session_id: 'sess-1',
      solution: b64([42, 42]),
      quote: { attest: b64([20]), signature: b64([21]), pcrs: [{ hash: 11, pcr: 0, digest: b64([22]) }] },
    });
    assert.deepEqual(dev.enrollments, [
      {
        cluster: 'warden',
        proxy: '127.0.0.1:3080',
        deviceId: 'dev-1',
        assetTag: 'TAG1',
        time: '2026-02-02T00:00:00.000Z',
      },
    ]);
    assert.ok(dev.closed);
    assert.deepEqual(phases.slice(0, 3), ['device', 'device', 'server']);
  });

  test('a refusal from the server passes through; nothing is remembered; the TPM is closed', async () => {
    const dev = new FakeDevice();
    const c = new EnrollCeremony();
    c.openDevice = async () => dev;
    const { api } = fakeApi({
      failBegin: new WardenError('WARDEN_ERR_INVALID_TOKEN', 'invalid device enrollment token'),
    });
    await assert.rejects(
      c.run(api, { token: 'T', cluster: 'w', proxy: 'p:1' }),
      /^WardenError: invalid device enrollment token$/,
    );
    assert.ok(!dev.calls.includes('recordEnrollment'));
    assert.ok(dev.closed);
  });

  test('a TPM failure stops the ceremony before the server is asked', async () => {
    const dev = new FakeDevice();
    dev.failOn = 'enrollInit';
    const c = new EnrollCeremony();
    c.openDevice = async () => dev;
    const { api, sent } = fakeApi();
    await assert.rejects(c.run(api, { token: 'T', cluster: 'w', proxy: 'p:1' }), /enrollInit failed/);
    assert.equal(sent.length, 0);
    assert.ok(dev.closed);
  });
});
