/**
 * Regression (issue 15 item 15, from the acceptance run) against a real `warden start` with its
 * SSH node and a swtpm-enrolled device:
 *
 * - an SSH session refused by a lock left no audit event (role refusals did): the proxy's
 *   identify refused the locked certificate before any decision was recorded;
 * - session and access events carried the device without `os_type`;
 * - nodes were named by ID in the node's events and by hostname in the proxy's: now always both.
 */
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { AuditEvent } from '@warden/api';
import {
  enrollMachine,
  inviteAndSignUp,
  requireSwtpm,
  requireTool,
  runCli,
  type SwtpmProcess,
  startSwtpm,
  startWarden,
  type WardenProcess,
} from '@warden/testkit';

const PASSWORD = 'correct horse battery staple';
const ssh = requireTool('ssh');
const setup = requireSwtpm();

describe('SSH audit events: lock refusals, device os_type, node ID and hostname', {
  skip: ssh.skip || setup.skip,
}, () => {
  let w: WardenProcess;
  let tpm: SwtpmProcess;
  let nodeId = '';
  let deviceId = '';
  const envOf = (user: string): NodeJS.ProcessEnv => ({
    ...w.env,
    WARDEN_HOME: join(w.dir, `home-${user}`),
    WARDEN_TPM: tpm.address,
    WARDEN_DEVICE_CACHE: join(w.dir, `device-cache-${user}`),
    WARDEN_DEVICE_DMI_DIR: join(w.dir, 'dmi'),
  });
  const wsh = (user: string, args: string[], input?: string) =>
    runCli('wsh', args, { env: envOf(user), input });
  const wctl = (args: string[], input?: string) => runCli('wctl', args, { env: w.env, input });
  const events = async (args: string[]): Promise<AuditEvent[]> => {
    const r = await wctl(['audit', 'search', '--format=json', ...args]);
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout) as AuditEvent[];
  };
  /** Audit events are written as the session goes: wait for the one we expect. */
  async function waitFor(args: string[], pick: (e: AuditEvent) => boolean): Promise<AuditEvent> {
    for (const until = Date.now() + 10_000; Date.now() < until; ) {
      const found = (await events(args)).find(pick);
      if (found) return found;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.fail(`no audit event for ${args.join(' ')}: ${JSON.stringify(await events(args))}`);
  }

  const addUser = (user: string, logins: string) =>
    inviteAndSignUp(w, user, { roles: 'access', logins, password: PASSWORD, env: envOf(user) });
  const login = (user: string) =>
    wsh(user, ['login', `--proxy=${w.proxy}`, `--user=${user}`, `--ca-pin=${w.caPin}`], `${PASSWORD}\n`);

  before(async () => {
    tpm = await startSwtpm({ ekCert: true });
    w = await startWarden({
      nodeName: 'node-1',
      configYaml: 'auth_service:\n  authentication:\n    second_factor: "off"\n',
    });
    mkdirSync(join(w.dir, 'dmi'));
    await addUser('alice', 'root');
    await addUser('bob', 'root');
    // alice's machine is an enrolled device (swtpm), so her certificates carry it.
    ({ deviceId } = await enrollMachine(w, envOf('alice')));
    for (const user of ['alice', 'bob']) {
      const l = await login(user);
      assert.equal(l.code, 0, l.stderr);
    }
    const nodes = JSON.parse((await wsh('alice', ['ls', '--format=json'])).stdout) as {
      metadata: { name: string };
      spec: { hostname: string };
    }[];
    nodeId = nodes.find((n) => n.spec.hostname === 'node-1')!.metadata.name;
    assert.notEqual(nodeId, 'node-1', 'a Warden node is named by its UUID');
  });
  after(async () => {
    await w?.stop();
    await tpm?.stop();
  });

  test('access and session events carry the device with its os_type and the node by ID and hostname', async () => {
    const res = await wsh('alice', ['ssh', 'root@node-1', 'echo', 'audited']);
    assert.equal(res.code, 0, res.stderr);
    const node = { kind: 'node', name: nodeId, hostname: 'node-1' };
    for (const type of ['access.allowed', 'session.start', 'session.end']) {
      const e = await waitFor([`--type=${type}`, '--user=alice'], (x) => x.protocol === 'ssh');
      assert.equal(e.device?.id, deviceId, type);
      assert.equal(e.device?.os_type, 'linux', `${type}: ${JSON.stringify(e.device)}`);
      assert.deepEqual(
        { ...(e.resource as object), labels: undefined },
        { ...node, labels: undefined },
        type,
      );
    }
    // Refused by the proxy (no such login): the node by ID and hostname too, and the device's OS.
    const denied = await wsh('alice', ['ssh', 'nobody-here@node-1', 'true']);
    assert.equal(denied.code, 255);
    const e = await waitFor(['--type=access.denied', '--user=alice'], () => true);
    assert.equal((e.resource as { name: string }).name, nodeId);
    assert.equal((e.resource as { hostname: string }).hostname, 'node-1');
    assert.equal(e.device?.os_type, 'linux');
  });

  test('an SSH session refused by a lock is audited like a role refusal', async () => {
    const lock = await wctl(['lock', '--user=bob', '--message=incident 7', '--ttl=1h']);
    assert.equal(lock.code, 0, lock.stderr);
    const res = await wsh('bob', ['ssh', 'root@node-1', 'true']);
    assert.equal(res.code, 255);
    assert.match(res.stderr, /lock targeting User:"bob" is in force: incident 7/);
    const e = await waitFor(['--type=access.denied', '--user=bob'], () => true);
    assert.equal(e.success, false);
    assert.equal(e.protocol, 'ssh');
    assert.equal(e.login, 'root');
    assert.match(String(e.error), /lock targeting User:"bob" is in force: incident 7/);
    assert.deepEqual(
      {
        name: (e.resource as { name: string }).name,
        hostname: (e.resource as { hostname: string }).hostname,
      },
      { name: nodeId, hostname: 'node-1' },
    );
  });
});
