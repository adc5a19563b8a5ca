/**
 * Enforces the structure (docs/architecture.md): which package may import which, and inside
 * packages/server which folder may import which, always through the folder's `index.ts`.
 * Scans every TypeScript source file for `@warden/*` imports (static, dynamic and re-exports)
 * and relative imports, and fails on anything the tables do not allow. Test-only helpers live
 * in test/support/ and only `*.test.ts` files may import them.
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

/** The subpaths each package's `exports` map declares (`@warden/api/ssh2-patch`): the only deep imports. */
function subpathExports(pkg: string): string[] {
  const json = JSON.parse(readFileSync(join(root, 'packages', pkg, 'package.json'), 'utf8')) as {
    exports?: Record<string, string>;
  };
  return Object.keys(json.exports ?? {})
    .filter((k) => k !== '.')
    .map((k) => `@warden/${pkg}/${k.replace(/^\.\//, '')}`);
}
const EXPORTED = new Set(Object.keys(ALLOWED).flatMap(subpathExports));

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
      if (spec.includes('/', '@warden/'.length) && !EXPORTED.has(spec))
        found.push(
          `${file}: deep import ${spec} (use the package root or a subpath its exports map declares)`,
        );
    } else if (spec.startsWith('.')) {
      const abs = resolve(root, file, '..', spec);
      const rel = relative(join(root, 'packages', pkg), abs);
      const support = relative(join(root, 'test', 'support'), abs);
      const testOnly = file.endsWith('.test.ts') && !support.startsWith('..');
      if (rel.startsWith('..') && !testOnly)
        found.push(`${file}: relative import ${spec} leaves packages/${pkg}`);
    }
  }
  return found;
}

test('packages import only what ALLOWED allows (docs/architecture.md)', () => {
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
  assert.equal(
    violations('server', 'packages/server/src/x.ts', "import { a } from '@warden/api/ssh2-patch';").length,
    0,
    'a subpath the exports map declares',
  );
  assert.equal(
    violations('server', 'packages/server/src/x.ts', "import { a } from '@warden/api/src/ssh2-patch';")
      .length,
    1,
  );
});

test('@warden/api/ssh2-patch is a subpath only: the package root never loads ssh2', () => {
  const apiSrc = join(root, 'packages', 'api', 'src');
  const problems: string[] = [];
  for (const file of sources(apiSrc)) {
    if (file.endsWith('.test.ts') || file.endsWith('ssh2-patch.ts')) continue;
    const text = readFileSync(file, 'utf8');
    if (/from\s*['"](ssh2|\.\/ssh2-patch)['"]/.test(text)) problems.push(relative(root, file));
  }
  assert.deepEqual(problems, []);
});

// ---- Folders inside packages/server ------------------------------------------------------

/**
 * Which folder of packages/server/src may import which (besides itself), and why. `srv/<x>`
 * are folders of their own. A test file may import any folder (it composes real parts), but
 * like everyone only through the folder's `index.ts`. `bin/` (the composition root) and the
 * package's `index.ts` may import every folder; nothing imports `bin/` but them and tests.
 * A new folder needs a row here (with its reason) before anything may import it.
 */
const SERVER_FOLDERS: Record<string, { may: string[]; why: string }> = {
  clock: { may: [], why: 'time, for everyone; a leaf' },
  log: { may: [], why: 'the logger interface and its pino/text writers; a leaf' },
  tokens: {
    may: ['backend', 'clock'],
    why: 'bearer-token primitives and one-time token storage shared by auth and devicetrust, so neither imports the other for it',
  },
  config: { may: [], why: 'warden.yaml into plain data; knows no service' },
  backend: { may: ['clock', 'log'], why: 'the key-value store under every service' },
  audit: {
    may: ['backend', 'clock', 'log'],
    why: 'the append-only event log; services write to it, it calls none',
  },
  ca: { may: ['backend', 'clock'], why: 'certificate authorities: keys in the backend, no policy' },
  services: {
    may: ['backend', 'clock', 'config', 'log'],
    why: 'typed resource stores and watch-fed caches over the backend (config: the start-up preference)',
  },
  access: {
    may: ['clock', 'log'],
    why: 'who may do what: identity, locks, RBAC, device trust, session monitor; over views handed in, no store, no transport',
  },
  devicetrust: {
    may: ['access', 'audit', 'backend', 'ca', 'clock', 'log', 'services', 'tokens'],
    why: 'TPM ceremonies and the inventory; never auth (auth builds on the inventory) nor a transport',
  },
  auth: {
    may: ['access', 'audit', 'backend', 'ca', 'clock', 'devicetrust', 'log', 'services', 'tokens'],
    why: 'login, identify and the admin API; transport-free, so the proxy and the Web UI both call it',
  },
  'srv/ssh': {
    may: ['access', 'audit', 'backend', 'ca', 'clock', 'config', 'log', 'services'],
    why: 'ssh_service, an agent: reaches the cluster through services, never through the proxy or auth',
  },
  'srv/db': {
    may: ['access', 'audit', 'clock', 'log'],
    why: 'db_service engines: get identities and decisions handed in; never the proxy, auth or stores directly',
  },
  'srv/app': {
    may: ['access', 'audit', 'clock', 'config', 'log'],
    why: 'app_service, an agent: identities and decisions handed in by the proxy; never the proxy, auth or stores',
  },
  'srv/kube': {
    may: ['access', 'audit', 'backend', 'ca', 'clock', 'config', 'log'],
    why: 'kube_service, an agent: identities handed in by the proxy; its kube certificates from the user CA with their identity records in the backend; never the proxy or auth',
  },
  diag: {
    may: ['audit', 'backend', 'log'],
    why: 'the diagnostics listener: health and metrics of the parts it is given',
  },
  proxy: {
    may: [
      'access',
      'audit',
      'auth',
      'clock',
      'devicetrust',
      'log',
      'services',
      'srv/app',
      'srv/db',
      'srv/ssh',
    ],
    why: 'the transport: HTTPS API over auth and the ceremonies, ALPN tunnels handed to the in-process agents (srv/ssh: sessions to agentless OpenSSH nodes)',
  },
  web: {
    may: [
      'access',
      'audit',
      'auth',
      'backend',
      'clock',
      'devicetrust',
      'log',
      'proxy',
      'services',
      'srv/app',
    ],
    why: "the Web UI's JSON API, mounted in the proxy's HTTPS router; apps launched from it (srv/app's WebAppHooks)",
  },
};

/**
 * Imports the table forbids that exist today, each with the work that removes it. The test
 * fails when one is added and when one is gone (then delete its row).
 */
const PENDING: Record<string, string> = {};

const SERVER_SRC = join(root, 'packages', 'server', 'src');

/** The folder of a path under packages/server/src: `auth`, `srv/db`, or '' for the package root. */
function folderOf(absPath: string): string {
  const parts = relative(SERVER_SRC, absPath).split(sep);
  if (parts.length === 1) return '';
  if (parts[0] === 'srv' && parts.length > 2) return `srv/${parts[1]}`;
  return parts[0]!;
}

export function folderViolations(file: string, text: string): string[] {
  const found: string[] = [];
  const abs = resolve(root, file);
  const from = folderOf(abs);
  const test = file.endsWith('.test.ts');
  if (from !== '' && from !== 'bin' && !SERVER_FOLDERS[from]) {
    return [`${file}: folder ${from}/ has no row in SERVER_FOLDERS (add one with its reason)`];
  }
  for (const m of text.matchAll(IMPORT)) {
    const spec = m[1] ?? m[2] ?? m[3] ?? '';
    if (!spec.startsWith('.')) continue;
    const target = resolve(abs, '..', spec);
    if (relative(SERVER_SRC, target).startsWith('..')) continue; // test/support, checked above
    const to =
      folderOf(join(target, 'x.ts')) === folderOf(target) ? folderOf(target) : folderOf(join(target, 'x.ts'));
    if (to === from || to === '') continue;
    const folderRoot = join(SERVER_SRC, to);
    if (target !== folderRoot && target !== join(folderRoot, 'index')) {
      found.push(`${file}: imports ${spec}, not the folder index`);
    }
    if (from === '' || from === 'bin' || test) continue;
    if (to === 'bin') found.push(`${file}: ${from} imports bin (${spec})`);
    else if (!SERVER_FOLDERS[from]!.may.includes(to)) found.push(`${file}: ${from} imports ${to} (${spec})`);
  }
  return found;
}

test('inside packages/server, folders import only what SERVER_FOLDERS allows, through index.ts', () => {
  const problems: string[] = [];
  for (const file of sources(SERVER_SRC)) {
    const rel = relative(root, file).split(sep).join('/');
    problems.push(...folderViolations(rel, readFileSync(file, 'utf8')));
  }
  assert.deepEqual(problems.sort(), Object.keys(PENDING).sort());
});

test('every folder rule names a reason and only known folders', () => {
  for (const [folder, rule] of Object.entries(SERVER_FOLDERS)) {
    assert.ok(rule.why.length > 10, `${folder}: say why`);
    for (const to of rule.may) assert.ok(SERVER_FOLDERS[to], `${folder} may import unknown folder ${to}`);
  }
});

/**
 * A file under test/ that composes server parts itself (an in-process cluster, an engine
 * under test) reaches into packages/server/src as the package's own folders do: through a
 * folder's `index.ts` (`bin/index.ts` too: it exports what tests compose in process).
 */
export function testDeepImports(file: string, text: string): string[] {
  const found: string[] = [];
  for (const m of text.matchAll(IMPORT)) {
    const spec = m[1] ?? m[2] ?? m[3] ?? '';
    if (!spec.startsWith('.')) continue;
    const rel = relative(SERVER_SRC, resolve(root, file, '..', spec));
    if (rel.startsWith('..')) continue;
    const parts = rel.split(sep);
    const folder = parts[0] === 'srv' ? join('srv', parts[1] ?? '') : (parts[0] ?? '');
    if (![folder, join(folder, 'index'), 'index'].includes(rel))
      found.push(`${file}: imports ${spec}, not the folder index`);
  }
  return found;
}

test('test/ imports packages/server/src only through a folder index', () => {
  const problems: string[] = [];
  for (const file of sources(join(root, 'test'))) {
    const rel = relative(root, file).split(sep).join('/');
    problems.push(...testDeepImports(rel, readFileSync(file, 'utf8')));
  }
  assert.deepEqual(problems, []);
  const f = 'test/db/x.ts';
  assert.deepEqual(testDeepImports(f, "import { a } from '../../packages/server/src/bin/db';"), [
    'test/db/x.ts: imports ../../packages/server/src/bin/db, not the folder index',
  ]);
  assert.equal(testDeepImports(f, "import { a } from '../../packages/server/src/srv/db/engine';").length, 1);
  for (const ok of ['bin', 'srv/db', 'proxy/index', '']) {
    const spec = `../../packages/server/src${ok ? `/${ok}` : ''}`;
    assert.deepEqual(testDeepImports(f, `import { a } from '${spec}';`), [], spec);
  }
});

test('test/support is for tests only', () => {
  const problems: string[] = [];
  for (const pkg of Object.keys(ALLOWED)) {
    for (const file of sources(join(root, 'packages', pkg, 'src'))) {
      if (file.endsWith('.test.ts')) continue;
      for (const m of readFileSync(file, 'utf8').matchAll(IMPORT)) {
        if ((m[1] ?? m[2] ?? m[3] ?? '').includes('test/support/')) problems.push(relative(root, file));
      }
    }
  }
  assert.deepEqual(problems, []);
});

test('shipped src/ holds no test helpers: only *.test.ts files use node:test or node:assert or say "Test-only"', () => {
  const problems: string[] = [];
  for (const pkg of Object.keys(ALLOWED).filter((p) => p !== 'testkit')) {
    for (const file of sources(join(root, 'packages', pkg, 'src'))) {
      if (file.endsWith('.test.ts')) continue;
      const text = readFileSync(file, 'utf8');
      if (/from\s*['"]node:(test|assert)(\/strict)?['"]|^\s*\*?\s*Test-only/m.test(text))
        problems.push(`${relative(root, file)} (move it to test/support/)`);
    }
  }
  assert.deepEqual(problems, []);
});

test('the folder checker catches a forbidden, a deep and a bin import', () => {
  const f = 'packages/server/src/auth/x.ts';
  assert.deepEqual(folderViolations(f, "import { a } from '../proxy';"), [
    'packages/server/src/auth/x.ts: auth imports proxy (../proxy)',
  ]);
  assert.deepEqual(folderViolations(f, "import { a } from '../access/check';"), [
    'packages/server/src/auth/x.ts: imports ../access/check, not the folder index',
  ]);
  assert.equal(folderViolations(f, "import { a } from '../proxy/router';").length, 2, 'deep and forbidden');
  assert.equal(folderViolations(f, "import { a } from '../bin';").length, 1);
  assert.deepEqual(folderViolations(f, "import { a } from '../access';"), []);
  assert.deepEqual(folderViolations(f, "import { a } from './login';"), []);
  assert.deepEqual(
    folderViolations('packages/server/src/srv/db/mysql/x.ts', "import { a } from '../common';"),
    [],
  );
  assert.equal(
    folderViolations('packages/server/src/auth/x.test.ts', "import { a } from '../bin';").length,
    0,
  );
  assert.equal(folderViolations('packages/server/src/nowhere/x.ts', '').length, 1);
  assert.equal(
    violations('server', 'packages/server/src/auth/x.ts', "import { a } from '../../../../test/support/y';")
      .length,
    1,
  );
  assert.equal(
    violations(
      'server',
      'packages/server/src/auth/x.test.ts',
      "import { a } from '../../../../test/support/y';",
    ).length,
    0,
  );
});
