/**
 * Bots in the auth service (in process, FakeClock): `wctl bots add` makes a bot and a one-time
 * join token; the token is spent once for certificates that say `bot`; renewal needs the bot's
 * current certificate and stops under a lock; bots have no password path; `wctl tokens` lists
 * and removes open tokens without ever showing one.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseIdentityFromCertificate, parseSshCertificate, SshIdentityExtensions } from '@warden/api';
import {
  CLIENT_ADDR,
  certDer,
  newUserKey,
  PASSWORD,
  startTestCluster,
  type TestCluster,
} from '../../../../test/support/auth-cluster';
import { rejectsWith } from '../../../../test/support/warden-errors';
import type { Identity } from '../access';
import { DeviceInventory } from '../devicetrust';
import { silentLogger } from '../log';

async function addBot(c: TestCluster, name = 'ci', extra: { ttl?: string; token_ttl?: string } = {}) {
  return c.auth.addBot(c.admin, { name, roles: ['access'], logins: ['deploy'], ...extra });
}

async function botCaller(c: TestCluster, tlsCert: string): Promise<Identity> {
  return { ...(await c.auth.identify(certDer(tlsCert))), clientAddr: CLIENT_ADDR };
}

describe('bots', () => {
  test('add → join: certificates say bot, for the bot’s logins and ttl; the token works once', async () => {
    const c = await startTestCluster();
    const added = await addBot(c, 'ci', { ttl: '20m' });
    assert.match(
      added.join_command,
      /^warden bot start --proxy=\S+ --token=\S+ --ca-pin=sha256:\S+ --destination=\.\/ci$/,
    );
    const joined = await c.auth.joinBot({ token: added.token, ...newUserKey() }, CLIENT_ADDR);
    assert.equal(joined.user, 'ci');
    assert.deepEqual(joined.logins, ['deploy']);
    assert.equal(Date.parse(joined.expires) - c.clock.now() <= 20 * 60_000, true);
    assert.equal(parseIdentityFromCertificate(joined.tls_cert).kind, 'bot');
    assert.equal(parseSshCertificate(joined.ssh_cert).extensions[SshIdentityExtensions.userKind], 'bot');
    const caller = await botCaller(c, joined.tls_cert);
    assert.equal(caller.kind, 'bot');

    await rejectsWith(
      c.auth.joinBot({ token: added.token, ...newUserKey() }, CLIENT_ADDR),
      'WARDEN_ERR_INVALID_TOKEN',
      /invalid or expired bot join token/,
    );
    const joins = await c.audit.search({ types: ['bot.join'], order: 'asc' });
    assert.deepEqual(
      joins.map((e) => [e.success, e.user, e.user_kind]),
      [
        [true, 'ci', 'bot'],
        // A spent token is gone: the refusal cannot (and does not) say whose it was.
        [false, undefined, undefined],
      ],
    );
    const all = await c.audit.search({});
    assert.ok(!JSON.stringify(all).includes(added.token), 'the token never reaches the audit log');
  });

  test('an expired, forged or other user’s token is refused', async () => {
    const c = await startTestCluster();
    const added = await addBot(c, 'ci', { token_ttl: '10m' });
    // Another last character (a fixed "AA" ending was the token itself once in 1,024 runs).
    const forged = `${added.token.slice(0, -1)}${added.token.endsWith('A') ? 'B' : 'A'}`;
    await rejectsWith(
      c.auth.joinBot({ token: forged, ...newUserKey() }, CLIENT_ADDR),
      'WARDEN_ERR_INVALID_TOKEN',
    );
    const invite = await c.invite('alice', ['access']);
    await rejectsWith(
      c.auth.joinBot({ token: invite, ...newUserKey() }, CLIENT_ADDR),
      'WARDEN_ERR_INVALID_TOKEN',
    );
    c.clock.advance(11 * 60_000);
    await rejectsWith(
      c.auth.joinBot({ token: added.token, ...newUserKey() }, CLIENT_ADDR),
      'WARDEN_ERR_INVALID_TOKEN',
    );
  });

  test('renewal uses the current certificate; a person cannot renew; a lock stops it', async () => {
    const c = await startTestCluster({ secondFactor: 'off' });
    const added = await addBot(c);
    const first = await c.auth.joinBot({ token: added.token, ...newUserKey() }, CLIENT_ADDR);
    c.clock.advance(30 * 60_000);
    const second = await c.auth.renewBot(await botCaller(c, first.tls_cert), newUserKey());
    assert.ok(Date.parse(second.expires) > Date.parse(first.expires), 'the renewed certificate lives longer');
    assert.equal(parseIdentityFromCertificate(second.tls_cert).kind, 'bot');

    await c.signUp('alice', ['access']);
    const alice = await c.auth.login(c.loginRequest('alice'), CLIENT_ADDR);
    await rejectsWith(
      c.auth.renewBot(await c.callerOf(alice), newUserKey()),
      'WARDEN_ERR_ACCESS_DENIED',
      /only bots renew/,
    );

    // A caller identified before the lock (a request in flight): renewal itself checks locks.
    const inFlight = await botCaller(c, second.tls_cert);
    await c.auth.createLock(c.admin, { target: { user: 'ci' }, message: 'rotating CI secrets' });
    await rejectsWith(c.auth.renewBot(inFlight, newUserKey()), 'WARDEN_ERR_LOCKED', /rotating CI secrets/);
    // And a new request with the bot's certificate is refused at identification.
    await rejectsWith(botCaller(c, second.tls_cert), 'WARDEN_ERR_LOCKED');
    const renewals = (await c.audit.search({ types: ['bot.renew'], order: 'asc' })).map((e) => e.success);
    assert.deepEqual(renewals, [true, false, false]);
  });

  test('a bot has no password path, and `wctl users reset` will not give it one', async () => {
    const c = await startTestCluster({ secondFactor: 'off' });
    await addBot(c);
    await rejectsWith(
      c.auth.login({ user: 'ci', password: PASSWORD, ...newUserKey() }, CLIENT_ADDR),
      'WARDEN_ERR_LOGIN_FAILED',
    );
    await rejectsWith(c.auth.resetUser(c.admin, 'ci'), 'WARDEN_ERR_BAD_PARAMETER', /is a bot/);
  });

  test('ls, rm (its token dies with it), and names already taken', async () => {
    const c = await startTestCluster();
    const added = await addBot(c);
    assert.deepEqual(
      (await c.auth.listBots(c.admin)).map((b) => [b.name, b.roles, b.logins, b.ttl]),
      [['ci', ['access'], ['deploy'], '1h']],
    );
    await rejectsWith(addBot(c), 'WARDEN_ERR_ALREADY_EXISTS');
    await rejectsWith(
      c.auth.addBot(c.admin, { name: 'x', roles: ['nope'], logins: [] }),
      'WARDEN_ERR_NOT_FOUND',
      /role "nope"/,
    );
    await rejectsWith(addBot(c, 'y', { ttl: '2s' }), 'WARDEN_ERR_BAD_PARAMETER', /--ttl/);
    assert.equal((await c.auth.listBots(c.admin)).length, 1, 'refused adds leave nothing behind');
    await c.auth.removeBot(c.admin, 'ci');
    assert.deepEqual(await c.auth.listBots(c.admin), []);
    await rejectsWith(
      c.auth.joinBot({ token: added.token, ...newUserKey() }, CLIENT_ADDR),
      'WARDEN_ERR_INVALID_TOKEN',
    );
  });

  test('a bot added or removed unaudited is undone: nothing added, the bot and its token stay (issue 15 item 5)', async () => {
    const c = await startTestCluster();
    // Fault injection on the in-memory store: these event types are refused, as a full disk would.
    const refuse = new Set<string>();
    const emit = c.audit.emit.bind(c.audit);
    c.audit.emit = (e) => (refuse.has(e.type) ? Promise.reject(new Error('disk full')) : emit(e));
    refuse.add('bot.create');
    await rejectsWith(addBot(c), 'WARDEN_ERR_AUDIT_UNAVAILABLE', /\(bot\.create\)/);
    assert.deepEqual(await c.auth.listBots(c.admin), []);
    assert.deepEqual(await c.auth.listTokens(c.admin), [], 'no join token left');
    refuse.clear();
    const added = await addBot(c);
    refuse.add('bot.delete');
    await rejectsWith(c.auth.removeBot(c.admin, 'ci'), 'WARDEN_ERR_AUDIT_UNAVAILABLE', /\(bot\.delete\)/);
    refuse.clear();
    assert.equal((await c.auth.listBots(c.admin)).length, 1, 'the bot is still there');
    const joined = await c.auth.joinBot({ token: added.token, ...newUserKey() }, CLIENT_ADDR);
    assert.ok(joined.tls_cert, 'its join token still works');
  });

  test('tokens ls shows IDs (never tokens) of every kind; rm removes one', async () => {
    const c = await startTestCluster();
    const bot = await addBot(c);
    const invite = await c.invite('alice', ['access']);
    const device = await c.auth.addDevice(c.admin, { os_type: 'linux', asset_tag: 'TOK1', enroll: true });
    const enrollToken = device.enroll_token!.token;
    const tokens = await c.auth.listTokens(c.admin);
    assert.deepEqual(tokens.map((t) => [t.type, t.for]).sort(), [
      ['bot', 'ci'],
      ['enroll', device.enroll_token!.device_id],
      ['invite', 'alice'],
    ]);
    const text = JSON.stringify(tokens);
    assert.ok(
      !text.includes(bot.token) && !text.includes(invite) && !text.includes(enrollToken),
      'no token in the listing',
    );
    // An enrollment token removed with `wctl tokens rm` no longer enrolls (audited refusal).
    await c.auth.deleteToken(c.admin, tokens.find((t) => t.type === 'enroll')!.id);
    const inventory = new DeviceInventory({ ...c, logger: silentLogger });
    await rejectsWith(inventory.spendEnrollToken(enrollToken), 'WARDEN_ERR_INVALID_TOKEN');
    const id = tokens.find((t) => t.type === 'bot')!.id;
    assert.match(id, /^[0-9a-f]{12}$/);
    await c.auth.deleteToken(c.admin, id);
    await rejectsWith(
      c.auth.joinBot({ token: bot.token, ...newUserKey() }, CLIENT_ADDR),
      'WARDEN_ERR_INVALID_TOKEN',
    );
    await rejectsWith(c.auth.deleteToken(c.admin, id), 'WARDEN_ERR_NOT_FOUND');
    await rejectsWith(c.auth.deleteToken(c.admin, 'zz'), 'WARDEN_ERR_BAD_PARAMETER');
  });

  test('a user without the bot permission cannot add, list or remove bots', async () => {
    const c = await startTestCluster({ secondFactor: 'off' });
    await c.signUp('mallory', ['access']);
    const mallory = await c.callerOf(await c.auth.login(c.loginRequest('mallory'), CLIENT_ADDR));
    await rejectsWith(
      c.auth.addBot(mallory, { name: 'evil', roles: ['editor'], logins: [] }),
      'WARDEN_ERR_ACCESS_DENIED',
    );
    await rejectsWith(c.auth.listBots(mallory), 'WARDEN_ERR_ACCESS_DENIED');
    await rejectsWith(c.auth.listTokens(mallory), 'WARDEN_ERR_ACCESS_DENIED');
  });
});
