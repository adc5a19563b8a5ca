/**
 * `wbot start` stays light to start (issue 17): what it loads — dist/wbot.js, its chunks and the
 * start command's chunk with their static imports — holds no ssh2 (it only writes ssh_config)
 * and no YAML (only a start with --kubernetes-cluster writes a kubeconfig: loaded then). Reads
 * the built files (`npm run build` first), as test/cli-bundle.test.ts does for wsh and wctl.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { test } from 'node:test';

const dist = resolve(import.meta.dirname, '..', '..', 'dist');
const skip = existsSync(join(dist, 'wbot.js')) ? false : 'dist/ is missing: run `npm run build`';

/** The files `start` loads through static imports (dynamic ones only when they match `follow`). */
function closure(start: string[], follow: RegExp): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (file: string) => {
    if (out.has(file)) return;
    const text = readFileSync(file, 'utf8');
    out.set(file, text);
    for (const m of text.matchAll(
      /^import[^;]*?from\s*"(\.[^"]+)"|^import\s*"(\.[^"]+)"|import\("(\.[^"]+)"\)/gm,
    )) {
      const spec = m[1] ?? m[2] ?? m[3]!;
      if (m[3] && !follow.test(spec)) continue;
      walk(join(dirname(file), spec));
    }
  };
  for (const f of start) walk(f);
  return out;
}

test('wbot start loads no ssh2 and no YAML until a kubeconfig is asked for', { skip }, () => {
  const base = closure([join(dist, 'wbot.js')], /^$/);
  const table = [...base].find(([, t]) => /\)\)\.runStart\(/.test(t));
  assert.ok(table, 'the command table imports the start chunk');
  const chunk = /import\("(\.[^"]+)"\)\)\.runStart\(/.exec(table[1])![1]!;
  const files = closure([...base.keys(), join(dirname(table[0]), chunk)], /^$/);
  const all = [...files.values()];
  assert.ok(!all.some((t) => /require\("ssh2"\)|from "ssh2"/.test(t)), 'ssh2 is loaded');
  assert.ok(!all.some((t) => /^\/\/ node_modules\/yaml\//m.test(t)), 'yaml is loaded');
  // The ProxyCommand it writes is the one-file build, which this build has.
  assert.ok(existsSync(join(dist, 'wsh-proxy-ssh.js')));
});
