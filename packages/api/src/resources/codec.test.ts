import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { isWardenError, type WardenError } from '../errors';
import type { AuthPreferenceResource } from './auth-preference';
import { formatResource, formatResources, parseResources } from './codec';
import type { RoleResource } from './role';
import type { UserResource } from './user';

// The guide's examples in full form (its extraction lost the metadata/spec/allow lines).
const DEVICE_ENFORCEMENT_YAML = `kind: role
version: v7
metadata:
  name: require-trusted-device
spec:
  options:
    # require authenticated device check for this role
    device_trust_mode: "required" # add this line
  allow:
    logins: ['admin']
    kubernetes_groups: ['edit']
    node_labels:
      '*': '*'
`;

const CAP_YAML = `kind: cluster_auth_preference
version: v2
metadata:
  name: cluster-auth-preference
spec:
  type: local
  second_factor: "on"
  device_trust:
    mode: "required" # add this line
`;

const APPS_ROLE_YAML = `kind: role
version: v7
metadata:
  name: require-trusted-device-apps
spec:
  options:
    device_trust_mode: "required"
  allow:
    app_labels:
      env: production
`;

const ALICE_YAML = `kind: user
metadata:
  name: alice
spec:
  roles:
  - access
  - editor
  - require-trusted-device-apps
  traits:
    logins: [alice, ubuntu]
version: v2
`;

function badResource(fn: () => unknown): WardenError {
  try {
    fn();
  } catch (e) {
    assert.ok(isWardenError(e, 'WARDEN_ERR_BAD_RESOURCE'), `expected BAD_RESOURCE, got ${String(e)}`);
    return e;
  }
  assert.fail('expected an error');
}

/** `text` is refused as BAD_RESOURCE with exactly `expected` (or a message matching it). */
function assertRefused(text: string, expected: string | RegExp): void {
  const { message } = badResource(() => parseResources(text));
  if (typeof expected === 'string') assert.equal(message, expected);
  else assert.match(message, expected);
}

describe('parseResources: the guide examples', () => {
  test('require-trusted-device role', () => {
    const [role] = parseResources(DEVICE_ENFORCEMENT_YAML) as RoleResource[];
    assert.ok(role);
    assert.equal(role.kind, 'role');
    assert.equal(role.metadata.name, 'require-trusted-device');
    assert.equal(role.spec.options.device_trust_mode, 'required');
    assert.deepEqual(role.spec.allow.logins, ['admin']);
    assert.deepEqual(role.spec.allow.kubernetes_groups, ['edit']);
    assert.deepEqual(role.spec.allow.node_labels, { '*': '*' });
    assert.deepEqual(role.spec.deny, {}, 'deny defaults to empty');
  });

  test('cap.yaml', () => {
    const [cap] = parseResources(CAP_YAML) as AuthPreferenceResource[];
    assert.ok(cap);
    assert.equal(cap.spec.type, 'local');
    assert.equal(cap.spec.second_factor, 'on');
    assert.equal(cap.spec.device_trust.mode, 'required');
    assert.equal(cap.spec.device_trust.auto_enroll, false, 'default applied');
    assert.equal(cap.spec.locking_mode, 'best_effort', 'default applied');
  });

  test('require-trusted-device-apps role', () => {
    const [role] = parseResources(APPS_ROLE_YAML) as RoleResource[];
    assert.deepEqual(role?.spec.allow.app_labels, { env: 'production' });
    assert.equal(role?.spec.options.device_trust_mode, 'required');
  });

  test('user alice with version last', () => {
    const [user] = parseResources(ALICE_YAML) as UserResource[];
    assert.ok(user);
    assert.deepEqual(user.spec.roles, ['access', 'editor', 'require-trusted-device-apps']);
    assert.deepEqual(user.spec.traits, { logins: ['alice', 'ubuntu'] });
  });

  test('several documents, empty ones skipped', () => {
    const all = parseResources(`---\n${DEVICE_ENFORCEMENT_YAML}---\n${CAP_YAML}---\n---\n${ALICE_YAML}`);
    assert.deepEqual(
      all.map((r) => r.kind),
      ['role', 'cluster_auth_preference', 'user'],
    );
    assert.deepEqual(parseResources(''), []);
    assert.deepEqual(parseResources('# only a comment\n'), []);
  });

  test('JSON object and JSON array', () => {
    const json = JSON.stringify({
      kind: 'user',
      version: 'v2',
      metadata: { name: 'bob' },
      spec: { roles: ['access'] },
    });
    const [bob] = parseResources(json) as UserResource[];
    assert.equal(bob?.metadata.name, 'bob');
    assert.deepEqual(bob?.spec.traits, {}, 'traits default');
    const two = parseResources(`[${json},\n\t${json.replace('"bob"', '"carol"')}]`);
    assert.deepEqual(
      two.map((r) => r.metadata.name),
      ['bob', 'carol'],
    );
  });
});

describe('parseResources: bad input names the field and its line', () => {
  test('unknown field', () => {
    const text = `kind: role
version: v7
metadata:
  name: dev
spec:
  allow:
    loginz: [root]
`;
    assertRefused(text, 'role "dev": spec.allow.loginz: unknown field (line 7)');
  });

  test('bad duration', () => {
    const text = `kind: role
version: v7
metadata:
  name: dev
spec:
  allow:
    logins: [dev]
  options:
    max_session_ttl: 8 hours
`;
    assertRefused(text, 'role "dev": spec.options.max_session_ttl: expected a duration like "8h" (line 9)');
  });

  test('duration of the wrong type', () => {
    assertRefused(
      'kind: role\nversion: v7\nmetadata: {name: dev}\nspec:\n  options: {max_session_ttl: 3600}\n',
      'role "dev": spec.options.max_session_ttl: expected a duration like "8h" (line 5)',
    );
  });

  test('good durations', () => {
    for (const ttl of ['8h', '30m', '1h30m', '90s']) {
      const [role] = parseResources(
        `kind: role\nversion: v7\nmetadata: {name: dev}\nspec:\n  options: {max_session_ttl: "${ttl}"}\n`,
      ) as RoleResource[];
      assert.equal(role?.spec.options.max_session_ttl, ttl);
    }
  });

  test('wrong type, unknown enum value, several issues sorted by line', () => {
    const text = `kind: role
version: v7
metadata:
  name: dev
spec:
  options:
    device_trust_mode: always
  allow:
    logins: root
    node_labels:
      env: 3
`;
    const err = badResource(() => parseResources(text, { source: 'dev.yaml' }));
    assert.equal(
      err.message,
      'dev.yaml: role "dev": spec.options.device_trust_mode: expected one of "off", "optional", "required-for-humans", "required" (line 7); ' +
        'spec.allow.logins: expected a list, got a string (line 9); ' +
        'spec.allow.node_labels.env: expected a string or a list of strings (line 11)',
    );
    assert.equal(err.details?.source, 'dev.yaml');
    assert.equal((err.details?.issues as unknown[] | undefined)?.length, 3);
  });

  test('empty value where a list belongs', () => {
    assertRefused(
      'kind: user\nversion: v2\nmetadata:\n  name: a\nspec:\n  roles:\n',
      'user "a": spec.roles: expected a list, got an empty value (line 6)',
    );
  });

  test('missing required fields point at the parent', () => {
    assertRefused(
      'kind: role\nversion: v7\nmetadata:\n  description: x\nspec: {}\n',
      'role (document 1): metadata.name: required (line 3)',
    );
    assertRefused('kind: role\nversion: v7\nmetadata: {name: a}\n', 'role "a": spec: required (line 1)');
  });

  test('unknown kind, missing kind, unsupported version', () => {
    assert.equal(
      badResource(() => parseResources('version: v7\nkind: rol\n')).message,
      'rol (document 1): kind: unknown kind "rol" (expected one of: role, user, cluster_auth_preference, lock, cert_authority, node, db, device, app, kube_cluster) (line 2)',
    );
    assert.equal(
      badResource(() => parseResources('metadata: {name: x}\n')).message,
      'document 1: kind: required (line 1)',
    );
    assert.equal(
      badResource(() => parseResources('kind: role\nversion: v6\nmetadata: {name: x}\nspec: {}\n')).message,
      'role "x": version: unsupported version "v6" for role (supported: v7) (line 2)',
    );
  });

  test('the second document is named in the message', () => {
    assertRefused(
      `${CAP_YAML}---\nkind: user\nversion: v2\nmetadata: {}\nspec: {}\n`,
      'user (document 2): metadata.name: required (line 13)',
    );
  });

  test('a document that is not a mapping', () => {
    assert.equal(
      badResource(() => parseResources('- just\n- a list\n')).message,
      'document 1: expected a resource: a mapping with kind, version, metadata and spec (line 1)',
    );
    assert.match(badResource(() => parseResources('hello\n')).message, /expected a resource/);
  });

  test('malformed YAML reports its line', () => {
    const err = badResource(() =>
      parseResources('kind: role\nversion: v7\nmetadata:\n  name: [dev\nspec: {}\n'),
    );
    assert.match(err.message, /^invalid YAML: .* \(line \d\)$/);
    assert.ok((err.details?.line as number) >= 4, err.message);
    const dup = badResource(() => parseResources('kind: role\nkind: user\n', { source: 'x.yaml' }));
    assert.match(dup.message, /^x\.yaml: invalid YAML: Map keys must be unique \(line 2\)$/);
  });

  test('malformed JSON reports its line', () => {
    assertRefused('{\n  "kind": "role",\n  "version": "v7",,\n}\n', /invalid YAML: .*\(line 3\)/);
  });

  test('alias bombs are refused', () => {
    const bomb = ['a: &a ["x","x","x","x","x","x","x","x","x","x"]'];
    for (let i = 1; i < 8; i++) {
      const prev = String.fromCharCode(96 + i);
      const cur = String.fromCharCode(97 + i);
      bomb.push(`${cur}: &${cur} [${Array(10).fill(`*${prev}`).join(',')}]`);
    }
    assertRefused(bomb.join('\n'), /invalid YAML/);
  });

  test('wrong metadata for the kind', () => {
    assertRefused(
      'kind: cluster_auth_preference\nversion: v2\nmetadata:\n  name: other\nspec: {}\n',
      'cluster_auth_preference "other": metadata.name: must be "cluster-auth-preference" (line 4)',
    );
    assertRefused(
      'kind: lock\nversion: v2\nmetadata:\n  name: not-a-uuid\nspec:\n  target: {}\n',
      'lock "not-a-uuid": metadata.name: expected a UUID (line 4); spec.target: needs at least one of user, role, login, node, device (line 6)',
    );
    assertRefused(
      'kind: user\nversion: v2\nmetadata:\n  name: a/b\nspec: {}\n',
      'user "a/b": metadata.name: must not contain "/", spaces or control characters (line 4)',
    );
  });

  test('field paths with odd keys and list indexes', () => {
    assertRefused(
      'kind: user\nversion: v2\nmetadata: {name: a}\nspec:\n  traits:\n    "team.io/x": [ok, 5]\n',
      'user "a": spec.traits["team.io/x"][1]: expected a string, got a number (line 6)',
    );
  });
});

describe('formatResource', () => {
  test('YAML round trip with stable field order and quoted YAML 1.1 booleans', () => {
    const [cap] = parseResources(CAP_YAML);
    assert.ok(cap);
    const yaml = formatResource(cap, 'yaml');
    assert.equal(
      yaml,
      `kind: cluster_auth_preference
version: v2
metadata:
  name: cluster-auth-preference
spec:
  type: local
  second_factor: "on"
  device_trust:
    mode: required
    auto_enroll: false
  locking_mode: best_effort
`,
    );
    assert.deepEqual(parseResources(yaml), [cap]);
  });

  test('order comes from the schema, not the input', () => {
    const [alice] = parseResources(ALICE_YAML);
    assert.ok(alice);
    const shuffled = {
      spec: alice.spec,
      metadata: alice.metadata,
      version: alice.version,
      kind: alice.kind,
    } as typeof alice;
    assert.equal(formatResource(shuffled, 'yaml'), formatResource(alice, 'yaml'));
    assert.ok(formatResource(shuffled, 'yaml').startsWith('kind: user\nversion: v2\nmetadata:\n'));
    const json = formatResource(shuffled, 'json');
    assert.deepEqual(Object.keys(JSON.parse(json)), ['kind', 'version', 'metadata', 'spec']);
    assert.deepEqual(parseResources(json), [alice]);
  });

  test('wildcard labels survive a round trip', () => {
    const [role] = parseResources(DEVICE_ENFORCEMENT_YAML);
    assert.ok(role);
    assert.deepEqual(parseResources(formatResource(role, 'yaml')), [role]);
  });

  test('several resources', () => {
    const all = parseResources(`${CAP_YAML}---\n${ALICE_YAML}`);
    const yaml = formatResources(all, 'yaml');
    assert.equal(yaml.split('\n---\n').length, 2);
    assert.deepEqual(parseResources(yaml), all);
    assert.deepEqual(parseResources(formatResources(all, 'json')), all);
  });

  test('refuses an invalid resource', () => {
    const [alice] = parseResources(ALICE_YAML);
    assert.ok(alice);
    const bad = { ...alice, spec: { ...alice.spec, password: 'x' } } as unknown as typeof alice;
    assert.equal(
      badResource(() => formatResource(bad, 'yaml')).message,
      'user "alice": spec.password: unknown field',
    );
  });
});
