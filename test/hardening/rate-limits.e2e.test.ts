/**
 * Issue 15 item 4 against a real `warden start` (SQLite): guessing invite and enrollment
 * tokens from one address gets 429 `WARDEN_ERR_RATE_LIMITED` with `Retry-After` once the
 * address has used its failed attempts (10 per 10 minutes by default), on the RPC API and the
 * Web UI alike, while a user from another address signs up as usual. Before, 30 guesses got
 * 30 × 401. The same limits shared by two replicas on PostgreSQL: test/ha/rate-limits.e2e.test.ts.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { runCli, signupWithTotp, startWarden, type WardenProcess } from '@warden/testkit';
import { guessEnrollToken, guessInviteToken } from '../support/guess';

const PASSWORD = 'correct horse battery staple';

describe('issue 15 item 4: unauthenticated routes are rate-limited per source address', () => {
  let w: WardenProcess;
  before(async () => {
    w = await startWarden();
  });
  after(async () => {
    await w?.stop();
  });

  test('30 token guesses from one address: 10 × 401, then 429 with Retry-After; another address signs up', async () => {
    const from = '127.0.0.2';
    const answers = [];
    for (let i = 0; i < 30; i++) {
      answers.push(
        i % 2 === 0 ? await guessInviteToken(w.proxy, from) : await guessEnrollToken(w.proxy, from),
      );
    }
    assert.deepEqual(
      answers.map((a) => a.status),
      [...Array(10).fill(401), ...Array(20).fill(429)],
    );
    assert.equal(answers[0]!.code, 'WARDEN_ERR_INVALID_TOKEN');
    for (const a of answers.slice(10)) {
      assert.equal(a.code, 'WARDEN_ERR_RATE_LIMITED');
      const retry = Number(a.retryAfter);
      assert.ok(retry > 0 && retry <= 600, `Retry-After: ${a.retryAfter}`);
    }
    assert.match(
      answers[10]!.message,
      /too many failed attempts .* from 127\.0\.0\.2; try again in (9|10)m$/,
    );
    // A valid token from that address waits too (the address is out of attempts)…
    const add = await runCli('wctl', ['users', 'add', 'alice', '--roles=access', '--logins=root'], {
      env: w.env,
    });
    assert.equal(add.code, 0, add.stderr);
    const token = /--token=(\S+)/.exec(add.stdout)![1]!;
    assert.equal((await guessInviteToken(w.proxy, from, token)).status, 429);
    // …and the Web UI's sign-up is the same budget.
    const webAnswer = await guessInviteToken(w.proxy, from, randomUUID(), { web: true });
    assert.equal(webAnswer.status, 429);
    assert.equal(webAnswer.code, 'WARDEN_ERR_RATE_LIMITED');
    // The legitimate user, from 127.0.0.1, is unaffected.
    const s = await signupWithTotp(
      [`--proxy=${w.proxy}`, `--token=${token}`, `--ca-pin=${w.caPin}`],
      PASSWORD,
      { ...w.env, WARDEN_HOME: `${w.dir}/home-alice` },
    );
    assert.equal(s.code, 0, s.stderr);
  });
});
