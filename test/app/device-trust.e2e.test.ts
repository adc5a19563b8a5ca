/**
 * The guide's "App Access support" with real parts: a real `warden start` (app_service from
 * its config file, apps at `<name>.localhost:<port>`), a real node:http app, two machines each
 * with its own swtpm. The role `require-trusted-device-apps` (device trust required for
 * env:production apps) is assigned to alice:
 *
 *   machine B (no trusted device): `wsh app login` warns, curl and `wsh proxy app` get the 403
 *   with `Access to this app requires a trusted device.`;
 *   machine A (enrolled): the app certificate carries the device, requests pass, the JWT's
 *   `device` claim names it; `wctl lock --device` then refuses A with the lock message.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  type HttpApp,
  requireSwtpm,
  requireTool,
  runCli,
  spawnCli,
  startHttpApp,
  type WardenProcess,
} from '@warden/testkit';
import { createLocalJWKSet, jwtVerify } from 'jose';
import { type AppCertConfig, appCurlArgs, curl } from '../support/curl';
import { DeviceFleet, type TpmMachine } from '../support/device-fleet';

const setup = requireSwtpm();
const curlCheck = requireTool('curl');

type Machine = TpmMachine;

describe('device trust for apps: the guide, end to end', { skip: setup.skip || curlCheck.skip }, () => {
  let app: HttpApp;
  let w: WardenProcess;
  let a: Machine;
  let b: Machine;
  let port = 0;
  let deviceA = '';

  const fleet = new DeviceFleet();
  const wctl = (args: string[]) => fleet.wctl(args);
  const wsh = (m: Machine, args: string[], input?: string) =>
    runCli('wsh', args, { env: fleet.env(m, 'alice'), input });
  const login = (m: Machine) => fleet.login(fleet.env(m, 'alice'), 'alice');
  /** curl with the app certificate of machine m (from `wsh app config`). */
  const withCert = async (m: Machine, path: string, extra: string[] = []) => {
    const cfg = JSON.parse(
      (await wsh(m, ['app', 'config', 'prod', '--format=json'])).stdout,
    ) as AppCertConfig;
    return curl([...appCurlArgs(cfg, port), ...extra, `${cfg.uri}${path}`]);
  };

  before(async () => {
    app = await startHttpApp();
    w = await fleet.start({
      publicHost: 'localhost',
      configYaml:
        'auth_service:\n  authentication:\n    second_factor: "off"\n' +
        `app_service:\n  apps:\n    - name: prod\n      uri: ${app.url}\n      labels: { env: production }\n`,
    });
    port = Number(w.proxy.split(':')[1]);
    const role = join(w.dir, 'require-trusted-device-apps.yaml');
    writeFileSync(
      role,
      'kind: role\nversion: v7\nmetadata:\n  name: require-trusted-device-apps\nspec:\n  options:\n    device_trust_mode: "required"\n  allow:\n    app_labels:\n      env: production\n',
    );
    const created = await wctl(['create', role]);
    assert.equal(created.code, 0, created.stderr);
    a = await fleet.machine('a');
    b = await fleet.machine('b');
    await fleet.signUp('alice', fleet.env(a, 'alice'), {
      roles: 'access,editor,require-trusted-device-apps',
    });
    for (const m of [a, b]) {
      const l = await fleet.login(fleet.env(m, 'alice'), 'alice', [`--ca-pin=${w.caPin}`]);
      assert.equal(l.code, 0, l.stderr);
    }
  });

  after(async () => {
    await fleet.stop();
    await app?.close();
  });

  test('machine B (no trusted device): a warning at login, then the 403 with the exact sentence', async () => {
    const l = await wsh(b, ['app', 'login', 'prod']);
    assert.equal(l.code, 0, l.stderr);
    assert.match(l.stderr, /^WARNING: Access to this app requires a trusted device\./m);
    const r = await withCert(b, '/');
    assert.equal(r.status, 403, r.stderr);
    assert.match(r.body, /<h1>Access to this app requires a trusted device\.<\/h1>/);
    const proxy = spawnCli('wsh', ['proxy', 'app', 'prod', '-p', '0'], {
      env: fleet.env(b, 'alice'),
    });
    try {
      const until = Date.now() + 15_000;
      const started = () => /on (http:\/\/127\.0\.0\.1:\d+)/.exec(proxy.stdout());
      while (!started() && Date.now() < until) await new Promise((res) => setTimeout(res, 50));
      const local = started();
      assert.ok(local, proxy.stdout() + proxy.stderr());
      const viaProxy = await curl(['-H', 'Accept: application/json', `${local[1]}/`]);
      assert.equal(viaProxy.status, 403);
      assert.deepEqual(
        JSON.parse(viaProxy.body).error.message,
        'Access to this app requires a trusted device.',
      );
    } finally {
      proxy.child.kill('SIGTERM');
      await proxy.exited;
    }
  });

  test('machine A, enrolled: the app certificate carries the device; requests pass; the JWT names the device', async () => {
    ({ deviceId: deviceA } = await fleet.enroll(fleet.env(a, 'alice')));
    const l = await login(a);
    assert.equal(l.code, 0, l.stderr);

    const al = await wsh(a, ['app', 'login', 'prod']);
    assert.equal(al.code, 0, al.stderr);
    assert.doesNotMatch(al.stderr, /WARNING/);
    const r = await withCert(a, '/headers');
    assert.equal(r.status, 200, r.body);
    const token2 = (JSON.parse(r.body) as { headers: Record<string, string> }).headers[
      'warden-jwt-assertion'
    ]!;
    // The JWKS from the proxy (curl trusts the cluster's host CA), then a local verification.
    const cfg = JSON.parse(
      (await wsh(a, ['app', 'config', 'prod', '--format=json'])).stdout,
    ) as AppCertConfig;
    const keys = await curl(['--cacert', cfg.ca, `https://127.0.0.1:${port}/.well-known/jwks.json`]);
    const { payload } = await jwtVerify(token2, createLocalJWKSet(JSON.parse(keys.body)), {
      audience: app.url,
    });
    assert.equal(payload.sub, 'alice');
    assert.equal((payload.device as { id: string }).id, deviceA);
    // The session start is audited with the device.
    const audit = await wctl([
      'audit',
      'search',
      '--type=app.session.start',
      '--user=alice',
      '--format=json',
    ]);
    const starts = JSON.parse(audit.stdout) as { success: boolean; device?: { id: string } }[];
    assert.ok(
      starts.some((e) => e.success && e.device?.id === deviceA),
      audit.stdout,
    );
  });

  test('wctl lock --device refuses machine A with the lock message', async () => {
    const lock = await wctl(['lock', `--device=${deviceA}`, '--ttl=1h']);
    assert.equal(lock.code, 0, lock.stderr);
    const until = Date.now() + 10_000;
    let r = await withCert(a, '/', ['-H', 'Accept: application/json']);
    while (r.status !== 403 && Date.now() < until) {
      await new Promise((res) => setTimeout(res, 100));
      r = await withCert(a, '/', ['-H', 'Accept: application/json']);
    }
    assert.equal(r.status, 403);
    assert.equal(JSON.parse(r.body).error.message, `lock targeting Device:"${deviceA}" is in force`);
  });
});
