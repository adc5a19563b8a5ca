/**
 * Enforces DESIGN §2: which package may import which. Scans every TypeScript source file for
 * `@warden/*` imports (static, dynamic and re-exports) and relative imports that escape the
 * package, and fails on anything the table does not allow.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, resolve, sep } from 'node:path';
import { test } from 'node:test';

const ALLOWED: Record<string, string[]> = {
  api: [],
  tpm: [],
  server: ['api', 'tpm'],
  client: ['api', 'tpm'],
  cli: ['api', 'client'],
  web: ['api'],
  testkit: ['api', 'tpm', 'server', 'client', 'cli'],
};

const root = resolve(import.meta.dirname, '..');

function sources(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    if (name === 'node_modules' || name === 'dist') continue;
    const p = join(dir, name);
    if (statSync(p).isDirectory()) sources(p, out);
    else if (name.endsWith('.ts')) out.push(p);
  }
  return out;
}

const IMPORT =
  /(?:import|export)\s[^'"]*?from\s*['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)|import\s+['"]([^'"]+)['"]/g;

export function violations(pkg: string, file: string, text: string): string[] {
  const found: string[] = [];
  for (const m of text.matchAll(IMPORT)) {
    const spec = m[1] ?? m[2] ?? m[3] ?? '';
    const internal = /^@warden\/([^/]+)/.exec(spec);
    if (internal) {
      const target = internal[1]!;
      if (target !== pkg && !ALLOWED[pkg]?.includes(target)) found.push(`${file}: imports ${spec}`);
      if (spec.includes('/', '@warden/'.length))
        found.push(`${file}: deep import ${spec} (use the package root)`);
    } else if (spec.startsWith('.')) {
      const abs = resolve(root, file, '..', spec);
      const rel = relative(join(root, 'packages', pkg), abs);
      if (rel.startsWith('..')) found.push(`${file}: relative import ${spec} leaves packages/${pkg}`);
    }
  }
  return found;
}

test('packages import only what DESIGN §2 allows', () => {
  const problems: string[] = [];
  for (const pkg of Object.keys(ALLOWED)) {
    for (const file of sources(join(root, 'packages', pkg, 'src'))) {
      problems.push(
        ...violations(pkg, relative(root, file).split(sep).join('/'), readFileSync(file, 'utf8')),
      );
    }
  }
  assert.deepEqual(problems, []);
});

test('the Web UI imports @warden/api for its types only (nothing of it is bundled)', () => {
  const problems: string[] = [];
  for (const file of sources(join(root, 'packages', 'web', 'src'))) {
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(/^(import|export)\s+(type\s+)?[^'"]*?from\s*['"]@warden\/api['"]/gm)) {
      if (!m[2]) problems.push(`${relative(root, file)}: ${m[0]}`);
    }
  }
  assert.deepEqual(problems, []);
});

test('testkit is imported only by tests under test/', () => {
  const problems: string[] = [];
  for (const pkg of Object.keys(ALLOWED).filter((p) => p !== 'testkit')) {
    for (const file of sources(join(root, 'packages', pkg, 'src'))) {
      if (readFileSync(file, 'utf8').includes('@warden/testkit')) problems.push(relative(root, file));
    }
  }
  assert.deepEqual(problems, []);
});

test('the checker itself catches a forbidden import', () => {
  assert.equal(
    violations('server', 'packages/server/src/x.ts', "import { a } from '@warden/client';").length,
    1,
  );
  assert.equal(
    violations('client', 'packages/client/src/x.ts', "const m = await import('@warden/server');").length,
    1,
  );
  assert.equal(violations('api', 'packages/api/src/x.ts', "export * from '@warden/tpm';").length, 1);
  assert.equal(violations('cli', 'packages/cli/src/x.ts', "import '../../server/src/y';").length, 1);
  assert.equal(
    violations('cli', 'packages/cli/src/x.ts', "import { a } from '@warden/client/src/x';").length,
    1,
  );
  assert.equal(violations('cli', 'packages/cli/src/x.ts', "import { a } from '@warden/client';").length, 0);
});
