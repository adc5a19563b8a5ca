import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type AuditEventInput, auditEventCatalogue, isWardenError } from '@warden/api';
import {
  DbQueryTemplate,
  eventId,
  fastPathCount,
  flatPathCount,
  groupOptions,
  prepareAuditEvent,
  prepareAuditEventGeneral,
} from './prepare';
import type { AuditStatementBase } from './types';

test('event ids are UUIDv7: version and variant set, unique, ordered by time', () => {
  const t0 = Date.UTC(2026, 0, 1);
  const ids = Array.from({ length: 2000 }, (_, i) => eventId(t0 + Math.floor(i / 100)));
  for (const id of ids)
    assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.equal(new Set(ids).size, ids.length);
  assert.equal(
    Number.parseInt(ids[0]!.replace('-', '').slice(0, 12), 16),
    t0,
    'the first 48 bits are the time',
  );
  for (let i = 100; i < ids.length; i += 100)
    assert.ok(ids[i - 1]! < ids[i]!, 'a later millisecond sorts later');
});

const PEM = '-----BEGIN PRIVATE KEY-----\nMIGH\n-----END PRIVATE KEY-----';

function dbQuery(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    type: 'db.query',
    success: true,
    user: 'alice',
    addr: '10.0.0.7:5555',
    protocol: 'db',
    resource: { kind: 'db', name: 'orders', labels: { env: 'prod', team: 'pay' } },
    db_user: 'alice',
    db_name: 'orders',
    session_id: '0190a0b0-1111-7222-8333-444455556666',
    query: 'SELECT abalance FROM pgbench_accounts WHERE aid = $1;',
    parameters: ['12345', null],
    statement: 's1',
    ...extra,
  };
}

/** The stored form with the random id taken out: fields, values and their order. */
function stored(p: { event: Record<string, unknown> }): string {
  const { id, ...rest } = p.event;
  assert.match(String(id), /^[0-9a-f-]{36}$/);
  return JSON.stringify(rest);
}

/** The stored form, or the error's code and message. */
function outcome(prepare: () => { event: Record<string, unknown> }): string {
  try {
    return stored(prepare());
  } catch (e) {
    assert.ok(isWardenError(e));
    return `${e.code}: ${e.message}`;
  }
}

test('db.query fast path: the same stored event as the general path, or the general path itself', () => {
  const now = Date.UTC(2026, 5, 1, 12, 0, 0, 123);
  const variants: [string, Record<string, unknown>, boolean][] = [
    ['usual', dbQuery(), true],
    [
      'minimal',
      { type: 'db.query', protocol: 'db', session_id: 's', query: 'q', resource: { kind: 'db', name: 'x' } },
      true,
    ],
    ['key order of the input does not matter', Object.fromEntries(Object.entries(dbQuery()).reverse()), true],
    [
      'device, bot and hostname',
      dbQuery({
        device: { credential_id: 'c', id: 'd1', asset_tag: 'A-1' },
        user_kind: 'bot',
        device_exemption: 'bot',
        resource: { name: 'n', hostname: 'h', kind: 'db' },
        error: 'e',
      }),
      true,
    ],
    ['undefined fields', dbQuery({ statement: undefined, parameters: undefined, db_name: undefined }), true],
    ['a long query (cut)', dbQuery({ query: 'x'.repeat(5000) }), false],
    ['a private key in the query (redacted)', dbQuery({ query: `insert ${PEM}` }), false],
    ['a private key in a parameter', dbQuery({ parameters: [PEM] }), false],
    [
      'a secret-named label',
      dbQuery({ resource: { kind: 'db', name: 'x', labels: { api_token: 'v' } } }),
      false,
    ],
    ['an unknown field (dropped)', dbQuery({ extra: 1 }), false],
    ['a secret-named field (dropped, listed)', dbQuery({ password: 'hunter2' }), false],
    ['an unknown device field', dbQuery({ device: { id: 'd', tpm: 'x' } }), false],
    ['an unknown resource field', dbQuery({ resource: { kind: 'db', name: 'x', owner: 'y' } }), false],
  ];
  for (const [name, input, fast] of variants) {
    const before = fastPathCount.dbQuery;
    const got = outcome(() => prepareAuditEvent(input as AuditEventInput, now));
    assert.equal(fastPathCount.dbQuery - before, fast ? 1 : 0, `${name}: fast path taken`);
    assert.equal(
      got,
      outcome(() => prepareAuditEventGeneral(input as AuditEventInput, now)),
      name,
    );
  }
});

test('db.query fast path: what the general path refuses is refused with its words', () => {
  const bad: Record<string, unknown>[] = [
    dbQuery({ success: false }),
    dbQuery({ query: 7 }),
    dbQuery({ protocol: 'ftp' }),
    dbQuery({ parameters: [1] }),
    dbQuery({ parameters: 'x' }),
    dbQuery({ resource: { kind: 'db' } }),
    dbQuery({ resource: undefined }),
    dbQuery({ device: { os_type: 'linux' } }),
    dbQuery({ user_kind: 'robot' }),
    dbQuery({ resource: { kind: 'db', name: 'x', labels: { a: 1 } } }),
  ];
  for (const input of bad) {
    let general: unknown;
    try {
      prepareAuditEventGeneral(input as AuditEventInput, 0);
    } catch (e) {
      general = e;
    }
    assert.ok(isWardenError(general), JSON.stringify(input));
    assert.throws(
      () => prepareAuditEvent(input as AuditEventInput, 0),
      (e: unknown) =>
        isWardenError(e) && e.code === 'WARDEN_ERR_BAD_PARAMETER' && e.message === (general as Error).message,
    );
  }
});

/**
 * Values of each JSON kind, secrets and the words the fast paths look for: what the random
 * tests below put into an event's fields.
 */
const POOL: unknown[] = [
  undefined,
  null,
  1,
  -1,
  1.5,
  '',
  'x',
  'q"\\\n',
  'y'.repeat(4097),
  PEM,
  {},
  [],
  ['a', 'b'],
  ['a', null],
  [PEM],
  { id: 'd' },
  { id: 'd', os_type: 'linux', extra: 1 },
  { kind: 'db', name: 'n' },
  { kind: 'db', name: 'n', labels: { env: 'x' } },
  { kind: 'db', name: 'n', labels: { env: 'x', token: 'y' } },
  { kind: 'node', name: 'n', hostname: 'h', extra: 1 },
  { kind: 'node', name: 'n', hostname: 'h' },
  true,
  false,
  'user',
  'db',
  'bot',
  'human',
  'local',
];

/** A repeatable random source (a 32-bit LCG from `seed`): `rand(n)` is in [0, n). */
function seeded(seed: number): (n: number) => number {
  return (n) => {
    seed = (Math.imul(seed, 1103515245) + 12345) & 0x7fffffff;
    return (seed >>> 16) % n;
  };
}

/** Sets 1 to `most` of `keys` (random ones) in `input` to random values of POOL. */
function scramble(
  input: Record<string, unknown>,
  keys: string[],
  most: number,
  rand: (n: number) => number,
): Record<string, unknown> {
  for (let m = rand(most); m >= 0; m--) input[keys[rand(keys.length)]!] = POOL[rand(POOL.length)];
  return input;
}

test('db.query fast path: random inputs come out as the general path makes them', () => {
  const keys = [
    ...Object.keys(dbQuery()),
    'device',
    'user_kind',
    'device_exemption',
    'error',
    'secret',
    'other',
  ];
  const rand = seeded(42);
  for (let round = 0; round < 2000; round++) {
    const input = scramble(dbQuery(), keys, 3, rand);
    const name = JSON.stringify(input);
    assert.equal(
      outcome(() => prepareAuditEvent(input as AuditEventInput, 1_700_000_000_000)),
      outcome(() => prepareAuditEventGeneral(input as AuditEventInput, 1_700_000_000_000)),
      name,
    );
  }
});

/**
 * The session template's JSON for `input` split into base and statement, or why there is none;
 * when there is one it must be exactly the general path's stored event with the same id.
 */
function viaTemplate(input: Record<string, unknown>, now: number): 'no template' | 'no statement' | 'same' {
  const { query, parameters, statement, ...base } = input;
  const template = DbQueryTemplate.for(base as AuditStatementBase);
  if (!template) return 'no template';
  const s = { query, parameters, statement } as { query: string };
  for (const k of ['parameters', 'statement'] as const)
    if ((s as Record<string, unknown>)[k] === undefined) delete (s as Record<string, unknown>)[k];
  const p = template.prepare(s, now);
  if (!p) return 'no statement';
  const general = prepareAuditEventGeneral(input as AuditEventInput, now).event;
  assert.equal(p.json, JSON.stringify({ ...general, id: p.id }), JSON.stringify(input));
  assert.equal(p.timeMs, now);
  assert.equal(template.user, general.user);
  assert.equal(template.device, general.device?.id);
  return 'same';
}

test('db.query session template: the same JSON as the general path, or no template', () => {
  const now = Date.UTC(2026, 5, 1, 12, 0, 0, 123);
  const cases: [string, Record<string, unknown>, ReturnType<typeof viaTemplate>][] = [
    ['usual', dbQuery(), 'same'],
    ['no parameters, no statement', dbQuery({ parameters: undefined, statement: undefined }), 'same'],
    [
      'device, bot, hostname, error',
      dbQuery({
        device: { credential_id: 'c', id: 'd1', asset_tag: 'A-1', os_type: 'linux' },
        user_kind: 'bot',
        device_exemption: 'bot',
        resource: { name: 'n', hostname: 'h', kind: 'db' },
        error: 'e',
      }),
      'same',
    ],
    [
      'quotes and control characters',
      dbQuery({ query: 'SELECT "a\\b"\n\u0001 \u2028 é', parameters: ['"', null, '\\'] }),
      'same',
    ],
    ['a long query', dbQuery({ query: 'x'.repeat(5000) }), 'no statement'],
    ['a private key in the query', dbQuery({ query: `insert ${PEM}` }), 'no statement'],
    ['a private key in a parameter', dbQuery({ parameters: [PEM] }), 'no statement'],
    [
      'a secret-named label',
      dbQuery({ resource: { kind: 'db', name: 'x', labels: { api_token: 'v' } } }),
      'no template',
    ],
    ['an unknown field', dbQuery({ extra: 1 }), 'no template'],
    ['a failure', dbQuery({ success: false }), 'no template'],
  ];
  for (const [name, input, want] of cases) assert.equal(viaTemplate(input, now), want, name);
  assert.equal(
    DbQueryTemplate.for({ ...dbQuery(), type: 'db.query' } as AuditStatementBase),
    undefined,
    'a base with a statement',
  );
});

test('db.query session template: random inputs come out as the general path makes them', () => {
  const keys = [...Object.keys(dbQuery()), 'device', 'user_kind', 'error', 'other'];
  const rand = seeded(7);
  let same = 0;
  const counts: Record<string, number> = {};
  for (let round = 0; round < 2400; round++) {
    const input = scramble(dbQuery(), keys, 3, rand);
    let general = true;
    try {
      prepareAuditEventGeneral(input as AuditEventInput, 1_700_000_000_000);
    } catch {
      general = false;
    }
    // Whatever the general path refuses, the template path must not store.
    let got: ReturnType<typeof viaTemplate> | 'threw';
    try {
      got = viaTemplate(input, 1_700_000_000_000);
    } catch (e) {
      if (e instanceof assert.AssertionError) throw e;
      got = 'threw';
    }
    if (!general) assert.notEqual(got, 'same', JSON.stringify(input));
    if (got === 'same') same++;
    counts[got] = (counts[got] ?? 0) + 1;
  }
  assert.ok(
    same > 100 && counts['no statement']! > 10 && counts['no template']! > 100,
    JSON.stringify(counts),
  );
});

test('statements and session ends are bulk events; what someone waits for is not', () => {
  for (const type of ['db.query', 'session.end']) assert.deepEqual(groupOptions(type), { bulk: true }, type);
  for (const type of ['session.start', 'user.login', 'access.denied', 'lock.created'])
    assert.equal(groupOptions(type), undefined, type);
});

/** Times the flat fast path prepared an event of `type`. */
const flatCount = (type: string) => flatPathCount.get(type) ?? 0;

test('flat fast path: device authentication, certificate and session events take it and store what the general path stores', () => {
  const now = Date.UTC(2026, 5, 1, 12, 0, 0, 123);
  const device = { id: 'd1', os_type: 'linux', asset_tag: 'C00AA0AAAA0A', credential_id: 'c1' };
  const variants: [string, Record<string, unknown>, boolean][] = [
    [
      'device.authenticate, success',
      {
        type: 'device.authenticate',
        success: true,
        user: 'alice',
        addr: '10.0.0.5',
        device_id: 'd1',
        credential_id: 'c1',
        device,
      },
      true,
    ],
    [
      'device.authenticate, failure',
      {
        type: 'device.authenticate',
        success: false,
        user: 'alice',
        credential_id: 'c1',
        error: 'device not found',
      },
      true,
    ],
    [
      'cert.create with device extensions',
      {
        device,
        type: 'cert.create',
        success: true,
        user: 'alice',
        addr: '10.0.0.5',
        cert_type: 'user',
        roles: ['access', 'editor'],
        logins: ['root'],
        expires: '2026-06-01T20:00:00.000Z',
        device_extensions: true,
        user_kind: 'bot',
      },
      true,
    ],
    [
      'cert.create without success (defaults to true)',
      { type: 'cert.create', cert_type: 'db', user: 'u' },
      true,
    ],
    [
      'cert.create: a failure it cannot have',
      { type: 'cert.create', cert_type: 'db', success: false },
      false,
    ],
    ['cert.create: missing cert_type', { type: 'cert.create', user: 'u' }, false],
    ['cert.create: unknown cert_type', { type: 'cert.create', cert_type: 'x' }, false],
    [
      'cert.create: a role that is not a string',
      { type: 'cert.create', cert_type: 'user', roles: ['a', 1] },
      false,
    ],
    [
      'cert.create: a private key in a login',
      { type: 'cert.create', cert_type: 'user', logins: [PEM] },
      false,
    ],
    [
      'device.authenticate: a long error (cut)',
      { type: 'device.authenticate', error: 'e'.repeat(5000) },
      false,
    ],
    ['device.authenticate: an unknown field', { type: 'device.authenticate', extra: 1 }, false],
    ['device.authenticate: a secret-named field', { type: 'device.authenticate', token: 'x' }, false],
    [
      'device.authenticate: an unknown device field',
      { type: 'device.authenticate', device: { id: 'd', x: 1 } },
      false,
    ],
    ['undefined fields', { type: 'device.authenticate', user: undefined, device_id: undefined }, true],
    [
      'session.start of a database session',
      {
        type: 'session.start',
        success: true,
        user: 'alice',
        addr: '10.0.0.5:5000',
        device,
        protocol: 'db',
        resource: { kind: 'db', name: 'shop', labels: { env: 'prod' } },
        db_user: 'alice',
        db_name: 'orders',
        session_id: 's1',
        roles: ['db'],
        device_exemption: 'bot',
        user_kind: 'bot',
      },
      true,
    ],
    [
      'session.end with its duration and the lock that ended it',
      {
        type: 'session.end',
        user: 'alice',
        protocol: 'ssh',
        resource: { kind: 'node', name: 'n1', hostname: 'web-1' },
        session_id: 's1',
        roles: [],
        duration_ms: 12.5,
        exit_code: 0,
        terminated_by: 'lock targeting User:"alice" is in force',
      },
      true,
    ],
    [
      'session.end: a negative duration',
      {
        type: 'session.end',
        protocol: 'db',
        resource: { kind: 'db', name: 'x' },
        session_id: 's',
        duration_ms: -1,
      },
      false,
    ],
    [
      'session.end: an exit code that is not an integer',
      {
        type: 'session.end',
        protocol: 'db',
        resource: { kind: 'db', name: 'x' },
        session_id: 's',
        exit_code: 1.5,
      },
      false,
    ],
    [
      'session.start: a secret-named label',
      {
        type: 'session.start',
        protocol: 'db',
        resource: { kind: 'db', name: 'x', labels: { token: 't' } },
        session_id: 's',
      },
      false,
    ],
    ['session.start: no resource', { type: 'session.start', protocol: 'db', session_id: 's' }, false],
  ];
  for (const [name, input, fast] of variants) {
    const before = flatCount(String(input.type));
    const got = outcome(() => prepareAuditEvent(input as AuditEventInput, now));
    assert.equal(flatCount(String(input.type)) - before, fast ? 1 : 0, `${name}: fast path taken`);
    assert.equal(
      got,
      outcome(() => prepareAuditEventGeneral(input as AuditEventInput, now)),
      name,
    );
  }
});

test('flat fast path: for every event type, random inputs come out as the general path makes them', () => {
  const rand = seeded(7);
  let taken = 0;
  for (const type of Object.keys(auditEventCatalogue)) {
    if (type === 'db.query') continue;
    const keys = [
      ...Object.keys(auditEventCatalogue[type as keyof typeof auditEventCatalogue].fields.shape),
      'success',
      'user',
      'addr',
      'error',
      'device',
      'user_kind',
      'device_exemption',
      'secret',
      'other',
    ];
    for (let round = 0; round < 420; round++) {
      const input = scramble({ type }, keys, 6, rand);
      const before = flatCount(type);
      assert.equal(
        outcome(() => prepareAuditEvent(input as AuditEventInput, 1_700_000_000_000)),
        outcome(() => prepareAuditEventGeneral(input as AuditEventInput, 1_700_000_000_000)),
        JSON.stringify(input),
      );
      taken += flatCount(type) - before;
    }
  }
  assert.ok(taken > 100, `the fast path was taken only ${taken} times`);
});
