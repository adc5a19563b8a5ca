/**
 * Issue 15 item 5 for Kubernetes, against a real `warden start` on PostgreSQL with real
 * `kubectl` and testkit's fake API server (a test double): when the audit log cannot record a
 * client connection's access decision or an exec's or port-forward's start, kubectl prints
 * WARDEN_ERR_AUDIT_UNAVAILABLE's message (503; for the exec inside its WebSocket, for the
 * port-forward also to its SPDY retry) and nothing reaches the API server; a request record
 * the log refuses is counted in `warden_audit_write_failures_total`. The audit store is broken
 * for real, as in audit-failure.e2e: a trigger raises `disk_full` for the event types named.
 * Before the fix kube_service wrote its events fire-and-forget and everything went through.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  type FakeKubeApiServer,
  inviteAndSignUp,
  kubectl,
  requireKubectl,
  requirePostgres,
  runCli,
  startFakeKubeWithWebPod,
  type WardenProcess,
} from '@warden/testkit';
import { type BreakableAudit, startWithBreakableAudit } from './broken-audit';

const PASSWORD = 'correct horse battery staple';
const pgCheck = requirePostgres();
const tool = requireKubectl();

const ROLE = `kind: role
version: v7
metadata: { name: kube-dev }
spec:
  allow:
    kubernetes_labels: { env: test }
    kubernetes_groups: [developers]
    kubernetes_resources: [{ kind: "*", namespace: "*", name: "*", verbs: ["*"] }]
`;

describe('issue 15 item 5: Kubernetes requests and execs are not forwarded unaudited', {
  skip: pgCheck.skip || tool.skip,
}, () => {
  let audit: BreakableAudit;
  let fake: FakeKubeApiServer;
  let w: WardenProcess;
  const env = () => ({ ...w.env, WARDEN_HOME: join(w.dir, 'home-alice'), KUBECONFIG: join(w.dir, 'kc') });
  const wsh = (args: string[], input?: string) => runCli('wsh', args, { env: env(), input });
  const wctl = (args: string[]) => runCli('wctl', args, { env: w.env });
  const k = (args: string[]) => kubectl(join(w.dir, 'kc'), args, { env: env() });

  const breakAudit = (...types: string[]) => audit.breakAudit(...types);
  const metric = (type: string) => audit.metric(type);

  before(async () => {
    fake = await startFakeKubeWithWebPod('developers');
    audit = await startWithBreakableAudit([fake.kubeServiceYaml('env: test')]);
    w = audit.w;
    writeFileSync(join(w.dir, 'role.yaml'), ROLE);
    assert.equal((await wctl(['create', join(w.dir, 'role.yaml')])).code, 0);
    await inviteAndSignUp(w, 'alice', {
      roles: 'kube-dev',
      logins: 'nobody',
      password: PASSWORD,
      env: env(),
    });
    const login = await wsh(['login', `--proxy=${w.proxy}`, '--user=alice'], `${PASSWORD}\n`);
    assert.equal(login.code, 0, login.stderr);
    const kl = await wsh(['kube', 'login', 'fake']);
    assert.equal(kl.code, 0, kl.stderr);
    // The exec plugin's kube certificate is issued (and audited) now, not while the log is broken.
    const warm = await k(['get', 'pods']);
    assert.equal(warm.code, 0, warm.stderr);
  });
  after(async () => {
    await audit?.stop();
    await fake?.close();
  });

  test('a request whose access the audit log cannot record gets 503 and never reaches the API server', async () => {
    breakAudit('access.allowed');
    const before = await metric('access.allowed');
    const seen = fake.requests.length;
    const r = await k(['delete', 'pod', 'web']);
    assert.notEqual(r.code, 0, r.stdout);
    assert.match(r.stderr, /ServiceUnavailable/);
    assert.match(r.stderr, /the audit log could not record this \(access\.allowed\)/);
    assert.equal(fake.requests.length, seen, 'nothing was forwarded');
    assert.ok(fake.get('pods', 'web'), 'the pod is still there');
    assert.ok((await metric('access.allowed')) > before);
    breakAudit();
    const ok = await k(['get', 'pods', '-o', 'name']);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(ok.stdout.trim(), 'pod/web');
  });

  test('an exec whose start the audit log cannot record is refused before the API server runs it', async () => {
    breakAudit('kube.exec.start');
    const before = await metric('kube.exec.start');
    const execs = fake.execs.length;
    const r = await k(['exec', 'web', '--', 'sh', '-c', 'echo ran']);
    assert.notEqual(r.code, 0, r.stdout);
    assert.doesNotMatch(r.stdout, /ran/);
    // Warden's own message, not its refusal of kubectl's SPDY retry: the refusal comes inside
    // the WebSocket (101, a channel-3 Failure Status), which kubectl does not retry.
    // (The connection's access.allowed goes to the store in the same batch, refused with it.)
    assert.match(
      r.stderr,
      /^error: refused: the audit log could not record this \((kube\.exec\.start|access\.allowed)\), and Warden does not allow it unaudited/m,
    );
    assert.doesNotMatch(r.stderr, /SPDY/);
    assert.equal(fake.execs.length, execs, 'the API server ran nothing');
    assert.ok((await metric('kube.exec.start')) > before);
    breakAudit();
    const ok = await k(['exec', 'web', '--', 'sh', '-c', 'echo ran']);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(fake.execs.length, execs + 1);
  });

  test('a port-forward whose start the audit log cannot record: kubectl prints the reason, not Warden’s refusal of its SPDY retry', async () => {
    breakAudit('kube.portforward.start');
    const before = await metric('kube.portforward.start');
    const r = await k(['port-forward', 'pod/web', ':9']);
    assert.notEqual(r.code, 0, r.stdout);
    assert.doesNotMatch(r.stdout, /Forwarding from/);
    // The WebSocket attempt's 503 Status, also the answer to kubectl's SPDY retry.
    assert.match(
      r.stderr,
      /refused: the audit log could not record this \((kube\.portforward\.start|access\.allowed)\), and Warden does not allow it unaudited/,
    );
    assert.doesNotMatch(r.stderr, /SPDY/);
    assert.ok((await metric('kube.portforward.start')) > before);
    breakAudit();
  });

  test('a request record the audit log refuses is counted (the data path ends its connection)', async () => {
    breakAudit('kube.request');
    const before = await metric('kube.request');
    await k(['get', 'pods']);
    // Written once the response is done: wait for the write to fail (bounded).
    const until = Date.now() + 10_000;
    while ((await metric('kube.request')) <= before && Date.now() < until)
      await new Promise((r) => setTimeout(r, 50));
    assert.ok((await metric('kube.request')) > before);
    breakAudit();
  });
});
