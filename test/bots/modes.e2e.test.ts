/**
 * Issue 17 item 2: `required-for-humans` from the config file and in a role, as an operator
 * writes them, with a real `warden start`, wctl, wbot and wsh (no cap.yaml involved): `wctl get`
 * shows the mode and where it came from, and it is in force — a bot runs a command over SSH
 * while a person without a device is refused. cap.yaml is tested in bots.e2e.test.ts.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { inviteAndSignUp, runCli, startWarden, type WardenProcess } from '@warden/testkit';

const PASSWORD = 'correct horse battery staple';

describe('required-for-humans from the config file and a role', () => {
  let w: WardenProcess;
  const wctl = (args: string[]) => runCli('wctl', args, { env: w.env });

  before(async () => {
    w = await startWarden({
      configYaml:
        'auth_service:\n  authentication:\n    second_factor: "off"\n' +
        '    device_trust:\n      mode: required-for-humans\n',
    });
  });
  after(async () => {
    await w?.stop();
  });

  test('wctl get shows the mode (from the config file) and a role option; it is in force for people, not bots', async () => {
    const got = await wctl(['get', 'cluster_auth_preference', '--format=json']);
    assert.equal(got.code, 0, got.stderr);
    const cap = JSON.parse(got.stdout) as {
      metadata: { labels?: Record<string, string> };
      spec: { device_trust?: { mode?: string } };
    };
    assert.equal(cap.spec.device_trust?.mode, 'required-for-humans', got.stdout);
    assert.equal(cap.metadata.labels?.['warden.dev/origin'], 'config-file', got.stdout);
    const text = await wctl(['get', 'cluster_auth_preference']);
    assert.match(text.stdout, /required-for-humans/);

    // A role option says the same (and `wctl get roles` shows it back).
    writeFileSync(
      join(w.dir, 'ci.yaml'),
      'kind: role\nversion: v7\nmetadata: { name: ci }\nspec:\n' +
        '  options: { device_trust_mode: required-for-humans }\n' +
        '  allow:\n    logins: [root]\n    node_labels: { "*": "*" }\n',
    );
    const created = await wctl(['create', join(w.dir, 'ci.yaml')]);
    assert.equal(created.code, 0, created.stderr);
    const role = await wctl(['get', 'roles/ci', '--format=yaml']);
    assert.equal(role.code, 0, role.stderr);
    assert.match(role.stdout, /device_trust_mode: required-for-humans/);

    // In force: the bot (no device) runs a command; a person with the same role is refused.
    const add = await wctl(['bots', 'add', 'ci-bot', '--roles=ci', '--logins=root']);
    assert.equal(add.code, 0, add.stderr);
    const dest = join(w.dir, 'bot');
    const joined = await runCli(
      'wbot',
      [
        'start',
        `--proxy=${w.proxy}`,
        `--token=${/--token=(\S+)/.exec(add.stdout)![1]!}`,
        `--ca-pin=${w.caPin}`,
        `--destination=${dest}`,
        '--oneshot',
      ],
      { env: w.env },
    );
    assert.equal(joined.code, 0, joined.stderr);
    const bot = await runCli('wsh', ['-i', join(dest, 'identity'), 'ssh', 'root@node-1', 'echo', 'bot-ok'], {
      env: w.env,
    });
    assert.equal(bot.code, 0, bot.stderr);
    assert.equal(bot.stdout, 'bot-ok\n');

    const env = { ...w.env, WARDEN_HOME: join(w.dir, 'home-bob') };
    await inviteAndSignUp(w, 'bob', { roles: 'ci', logins: 'root', password: PASSWORD, env });
    const refused = await runCli('wsh', ['ssh', 'root@node-1', 'echo', 'person'], { env });
    assert.notEqual(refused.code, 0, refused.stdout);
    assert.match(refused.stderr, /unauthorized device/);
  });
});
