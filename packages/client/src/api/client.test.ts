/**
 * ApiClient checks every answer before use: the resource listings `wctl get` reads with a
 * check that needs no zod (so that command starts without it), everything else with its zod
 * schema, loaded on the first call. A malformed answer is WARDEN_ERR_CONNECTION either way.
 * Served by a real HTTPS server (a throwaway self-signed certificate from openssl; the
 * client runs with `insecure`, which this test is not about).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { isWardenError } from '@warden/api';
import { ApiClient } from './client';

const answers = new Map<string, unknown>();
let api: ApiClient;
let close: () => void = () => {};
const skip = spawnSync('openssl', ['version']).status === 0 ? false : 'openssl is not installed';

before(async () => {
  if (skip) return;
  const dir = mkdtempSync(join(tmpdir(), 'warden-api-client-'));
  const made = spawnSync('openssl', [
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-subj',
    '/CN=127.0.0.1',
    '-days',
    '1',
    '-keyout',
    join(dir, 'key.pem'),
    '-out',
    join(dir, 'cert.pem'),
  ]);
  assert.equal(made.status, 0, made.stderr.toString());
  const server = createServer(
    { cert: readFileSync(join(dir, 'cert.pem')), key: readFileSync(join(dir, 'key.pem')) },
    (req, res) => {
      const body = answers.get(`${req.method} ${req.url}`);
      res.writeHead(body === undefined ? 404 : 200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body ?? { error: { code: 'WARDEN_ERR_NOT_FOUND', message: 'no such route' } }));
    },
  );
  rmSync(dir, { recursive: true, force: true });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  api = new ApiClient({ proxy: `127.0.0.1:${(server.address() as AddressInfo).port}`, insecure: true });
  close = () => server.close();
});
after(() => close());

const unexpected = (e: unknown) =>
  isWardenError(e) && e.code === 'WARDEN_ERR_CONNECTION' && /unexpected answer/.test(e.message);

test('a resource listing is checked without zod: items of mappings, nothing else', { skip }, async () => {
  const role = { kind: 'role', version: 'v7', metadata: { name: 'access' }, spec: {} };
  answers.set('GET /v1/resources/role', { items: [role] });
  assert.deepEqual(await api.listResources('role'), { items: [role] });
  for (const bad of [{ items: [1] }, { items: {} }, { items: [[]] }, [], null, { item: [] }]) {
    answers.set('GET /v1/resources/role', bad);
    await assert.rejects(api.listResources('role'), unexpected, JSON.stringify(bad));
  }
});

test('one resource is checked without zod: a mapping under resource', { skip }, async () => {
  const role = { kind: 'role', version: 'v7', metadata: { name: 'access' }, spec: {} };
  answers.set('GET /v1/resources/role/access', { resource: role, outcome: 'ignored' });
  assert.deepEqual((await api.getResource('role', 'access')).resource, role);
  for (const bad of [{ resource: [] }, { resource: 'role' }, {}]) {
    answers.set('GET /v1/resources/role/access', bad);
    await assert.rejects(api.getResource('role', 'access'), unexpected, JSON.stringify(bad));
  }
});

test('other answers are checked with their zod schema', { skip }, async () => {
  answers.set('GET /v1/whoami', { user: 'alice', roles: ['access'], logins: ['root'] });
  assert.deepEqual(await api.whoami(), { user: 'alice', roles: ['access'], logins: ['root'] });
  answers.set('GET /v1/whoami', { user: 'alice', roles: 'access', logins: [] });
  await assert.rejects(api.whoami(), unexpected);
  answers.set('GET /v1/tokens', { items: [{ id: 1 }] });
  await assert.rejects(api.listTokens(), unexpected);
});
