/**
 * Test-only: reading the built CLI bundles (dist/, `npm run build` first) the way Node loads
 * them, for the tests that keep a command's start-up light (test/cli-bundle.test.ts,
 * test/bots/wbot-bundle.test.ts).
 * Who may import: `*.test.ts` files.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';

export const DIST = resolve(import.meta.dirname, '..', '..', 'dist');

/** node:test's `skip` for a test that reads `dist/<file>`. */
export const skipWithoutDist = (file: string): string | false =>
  existsSync(join(DIST, file)) ? false : 'dist/ is missing: run `npm run build`';

/** The files `start` loads: static imports, and the dynamic imports matching `follow`. */
export function bundleClosure(start: string[], follow: RegExp): Map<string, string> {
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

/** The chunk a command's `run` imports, from the command table's `(await import("…")).runX(ctx)`. */
export function commandChunk(files: Map<string, string>, fn: string): string {
  for (const [file, text] of files) {
    const m = new RegExp(`import\\("(\\.[^"]+)"\\)\\)\\.${fn}\\(`).exec(text);
    if (m) return join(dirname(file), m[1]!);
  }
  throw new Error(`no chunk runs ${fn}`);
}
