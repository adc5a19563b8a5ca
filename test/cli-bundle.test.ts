/**
 * The CLI bundles stay small per command (issue 16 item 13, bench/cli.ts measures the time):
 * what `wsh status` loads — dist/wsh.js, the chunks it imports, the command table and the
 * status command's chunk, with their static imports — holds no zod, YAML, X.509 or ssh2; nor
 * does `wsh proxy ssh` (OpenSSH's ProxyCommand, started for every session: bench/ssh.ts); and
 * `wctl get` loads no zod, X.509 or ssh2 (it prints what the server validated; zod alone took
 * a third of its start-up). Each came back once through an import of a package root, a folder
 * index or a schema built at import; this reads the built files (`npm run build` first).
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { bundleClosure, commandChunk, DIST, skipWithoutDist } from './support/bundle';

const skip = skipWithoutDist('wsh.js');

const HEAVY: [string, RegExp][] = [
  ['zod', /^\/\/ node_modules\/zod\//m],
  ['yaml', /^\/\/ node_modules\/yaml\//m],
  ['@peculiar/x509', /^\/\/ node_modules\/@peculiar\/x509\//m],
  ['ssh2', /require\("ssh2"\)|from "ssh2"/],
];

function heavyIn(files: Map<string, string>): string[] {
  return HEAVY.filter(([, re]) => [...files.values()].some((t) => re.test(t))).map(([n]) => n);
}

test('wsh status loads no zod, YAML, X.509 or ssh2', { skip }, () => {
  const base = bundleClosure([join(DIST, 'wsh.js')], /\/(io|program)-/);
  const files = bundleClosure([...base.keys(), commandChunk(base, 'runStatus')], /^$/);
  assert.deepEqual(heavyIn(files), []);
  const bytes = [...files.values()].reduce((n, t) => n + t.length, 0);
  assert.ok(bytes < 200_000, `wsh status loads ${bytes} bytes of JavaScript`);
});

test('wctl get loads no zod, X.509 or ssh2', { skip }, () => {
  const base = bundleClosure([join(DIST, 'wctl.js')], /\/(io|program)-/);
  const files = bundleClosure([...base.keys(), commandChunk(base, 'runGet')], /^$/);
  assert.deepEqual(
    heavyIn(files).filter((n) => n !== 'yaml'),
    [],
  );
});

test('wsh proxy ssh (OpenSSH starts it for every session) loads no zod, YAML, X.509 or ssh2', {
  skip,
}, () => {
  const base = bundleClosure([join(DIST, 'wsh.js')], /\/(io|program)-/);
  const files = bundleClosure([...base.keys(), commandChunk(base, 'runProxySsh')], /^$/);
  assert.deepEqual(heavyIn(files), []);
  const bytes = [...files.values()].reduce((n, t) => n + t.length, 0);
  assert.ok(bytes < 200_000, `wsh proxy ssh loads ${bytes} bytes of JavaScript`);
});

test('dist/wsh-proxy-ssh.js, the ProxyCommand `wsh config` writes, is one small file without zod, YAML, X.509 or ssh2', {
  skip,
}, () => {
  const files = bundleClosure([join(DIST, 'wsh-proxy-ssh.js')], /^$/);
  assert.deepEqual([...files.keys()], [join(DIST, 'wsh-proxy-ssh.js')]);
  assert.deepEqual(heavyIn(files), []);
  const bytes = [...files.values()].reduce((n, t) => n + t.length, 0);
  assert.ok(bytes < 100_000, `dist/wsh-proxy-ssh.js has ${bytes} bytes of JavaScript`);
});

test('wsh ssh loads no zod or X.509 (ssh2 it needs)', { skip }, () => {
  const base = bundleClosure([join(DIST, 'wsh.js')], /\/(io|program)-/);
  const files = bundleClosure([...base.keys(), commandChunk(base, 'runSsh')], /^$/);
  assert.deepEqual(
    heavyIn(files).filter((n) => n !== 'ssh2'),
    [],
  );
});
