/**
 * Issue 15 item 12 against a real `warden start`: a node/db/app resource's address is where
 * the proxy and services connect (SSRF through the proxy). An editor may create and edit
 * those resources but needs the explicit `set_address` verb to point one at an address; the
 * change is audited with the address; a resource an agent registers by heartbeat (the
 * built-in SSH node here) is never replaced by a hand-made document, whoever writes it.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { addUserAndLogin, runCli, startWarden, type WardenProcess } from '@warden/testkit';

const PASSWORD = 'correct horse battery staple';

describe('issue 15 item 12: who may point a resource at an address', () => {
  let w: WardenProcess;
  const home = (user: string) => join(w.dir, `home-${user}`);
  /** wctl as the admin identity on the auth host. */
  const wctl = (args: string[], input?: string) => runCli('wctl', args, { env: w.env, input });
  /** wctl as a logged-in user (their profile's certificate). */
  const wctlAs = (user: string, args: string[], input?: string) =>
    runCli('wctl', args, { env: { ...w.env, WARDEN_HOME: home(user), WARDEN_DATA_DIR: '' }, input });

  async function addUser(user: string, roles: string): Promise<void> {
    await addUserAndLogin(w, user, { roles, logins: 'root', home: home(user), password: PASSWORD });
  }

  const node = (name: string, addr: string, labels = '{ env: test }') =>
    `kind: node\nversion: v2\nmetadata:\n  name: ${name}\n  labels: ${labels}\nspec:\n  hostname: ${name}\n  addr: "${addr}"\n  sub_kind: openssh\n`;
  const db = (name: string, uri: string) =>
    `kind: db\nversion: v3\nmetadata:\n  name: ${name}\nspec:\n  protocol: postgres\n  uri: "${uri}"\n`;

  interface Event {
    type: string;
    success: boolean;
    user?: string;
    kind?: string;
    name?: string;
    target_addr?: string;
    resource?: { kind: string; name: string };
    error?: string;
  }
  const events = async (type: string): Promise<Event[]> => {
    const res = await wctl(['audit', 'search', `--type=${type}`, '--format=json']);
    assert.equal(res.code, 0, res.stderr);
    return JSON.parse(res.stdout) as Event[];
  };

  before(async () => {
    w = await startWarden();
    // A role that grants addresses by name: the preset editor's `*` does not include it.
    const role = await wctl(
      ['create', '-'],
      'kind: role\nversion: v7\nmetadata:\n  name: address-admin\nspec:\n  allow:\n    rules:\n      - { resources: [node, db], verbs: [set_address] }\n',
    );
    assert.equal(role.code, 0, role.stderr);
    await addUser('ed', 'editor');
    await addUser('net', 'editor,address-admin');
  });
  after(async () => {
    await w?.stop();
  });

  test('an editor without set_address cannot point a node or a database anywhere', async () => {
    const metadata = await wctlAs('ed', ['create', '-'], node('metadata', '169.254.169.254:80'));
    assert.equal(metadata.code, 1, metadata.stdout);
    assert.match(
      metadata.stderr,
      /^ERROR: access denied: user "ed" lacks permission "set_address" on "node" \(roles: editor\)$/m,
    );
    const internal = await wctlAs('ed', ['create', '-'], db('internal', '10.0.0.1:5432'));
    assert.equal(internal.code, 1);
    assert.match(internal.stderr, /lacks permission "set_address" on "db"/);
    // Nothing was written, and the refusals are audited.
    const nodes = JSON.parse((await wctl(['get', 'nodes', '--format=json'])).stdout) as {
      metadata: { name: string };
    }[];
    assert.ok(!nodes.some((n) => n.metadata.name === 'metadata'));
    assert.equal((await wctl(['get', 'dbs/internal'])).code, 1);
    const denied = (await events('access.denied')).filter((e) => e.user === 'ed');
    assert.deepEqual(denied.map((e) => `${e.resource?.kind}:${e.resource?.name}`).sort(), [
      'db:set_address',
      'node:set_address',
    ]);
  });

  test('with set_address the resource is created, and audited with its address; keeping an address needs no permission', async () => {
    const res = await wctlAs('net', ['create', '-'], node('bastion', '10.1.2.3:22'));
    assert.equal(res.code, 0, res.stderr);
    const created = (await events('resource.create')).find((e) => e.name === 'bastion');
    assert.equal(created?.user, 'net');
    assert.equal(created?.kind, 'node');
    assert.equal(created?.target_addr, '10.1.2.3:22');
    // The editor without the permission may still relabel it (same address)…
    const relabel = await wctlAs(
      'ed',
      ['create', '-f', '-'],
      node('bastion', '10.1.2.3:22', '{ env: prod }'),
    );
    assert.equal(relabel.code, 0, relabel.stderr);
    const updated = (await events('resource.update')).find((e) => e.name === 'bastion');
    assert.equal(updated?.user, 'ed');
    assert.equal(updated?.target_addr, '10.1.2.3:22');
    // …but not move it.
    const moved = await wctlAs('ed', ['create', '-f', '-'], node('bastion', '127.0.0.1:5432'));
    assert.equal(moved.code, 1);
    assert.match(moved.stderr, /lacks permission "set_address" on "node"/);
    const stored = JSON.parse((await wctl(['get', 'nodes/bastion', '--format=json'])).stdout) as {
      spec: { addr: string };
    }[];
    assert.equal([stored].flat()[0]?.spec.addr, '10.1.2.3:22');
  });

  test("a heartbeat's node can't be replaced by a hand-made document, not even with set_address or as admin", async () => {
    const nodes = JSON.parse((await wctl(['get', 'nodes', '--format=json'])).stdout) as {
      metadata: { name: string; expires?: string };
      spec: { hostname: string; addr: string };
    }[];
    const beating = nodes.find((n) => n.spec.hostname === 'node-1');
    assert.ok(beating?.metadata.expires, 'the built-in SSH node registers by heartbeat');
    const hijack = node(beating.metadata.name, '127.0.0.1:1');
    for (const attempt of [
      await wctlAs('net', ['create', '-f', '-'], hijack),
      await wctl(['create', '-f', '-'], hijack),
    ]) {
      assert.equal(attempt.code, 1, attempt.stdout);
      assert.match(
        attempt.stderr,
        new RegExp(
          `^ERROR: node "${beating.metadata.name}" is registered by its agent's heartbeat, which decides its address`,
          'm',
        ),
      );
    }
    const after = JSON.parse((await wctl(['get', `nodes/${beating.metadata.name}`, '--format=json'])).stdout);
    assert.equal([after].flat()[0].spec.addr, beating.spec.addr);
  });
});
