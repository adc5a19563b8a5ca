/**
 * `wbot start` stays light to start (issue 17): what it loads — dist/wbot.js, its chunks and the
 * start command's chunk with their static imports — holds no ssh2 (it only writes ssh_config)
 * and no YAML (only a start with --kubernetes-cluster writes a kubeconfig: loaded then). Reads
 * the built files (`npm run build` first), as test/cli-bundle.test.ts does for wsh and wctl.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { bundleClosure, DIST, skipWithoutDist } from '../support/bundle';

const skip = skipWithoutDist('wbot.js');

test('wbot start loads no ssh2 and no YAML until a kubeconfig is asked for', { skip }, () => {
  const base = bundleClosure([join(DIST, 'wbot.js')], /^$/);
  const table = [...base].find(([, t]) => /\)\)\.runStart\(/.test(t));
  assert.ok(table, 'the command table imports the start chunk');
  const chunk = /import\("(\.[^"]+)"\)\)\.runStart\(/.exec(table[1])![1]!;
  const files = bundleClosure([...base.keys(), join(dirname(table[0]), chunk)], /^$/);
  const all = [...files.values()];
  assert.ok(!all.some((t) => /require\("ssh2"\)|from "ssh2"/.test(t)), 'ssh2 is loaded');
  assert.ok(!all.some((t) => /^\/\/ node_modules\/yaml\//m.test(t)), 'yaml is loaded');
  // The ProxyCommand it writes is the one-file build, which this build has.
  assert.ok(existsSync(join(DIST, 'wsh-proxy-ssh.js')));
});
