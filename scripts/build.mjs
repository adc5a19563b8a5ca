// Bundles the four commands (warden, wsh, wctl, wbot) into dist/ with esbuild so they start fast,
// and the Web UI (packages/web) into dist/web, which the proxy serves under /web.
// Native modules (better-sqlite3) stay external and load from node_modules.
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, rmSync } from 'node:fs';
import { build } from 'esbuild';
import { preciseImports } from './precise-imports.mjs';

// zod's `z.locales` namespace bundles its error messages in 60 languages (370 kB) for every
// command that validates anything; Warden speaks English (zod registers `en` itself), so the
// namespace holds only that.
const zodEnglishOnly = {
  name: 'zod-english-only',
  setup(b) {
    b.onResolve({ filter: /^\.\.\/locales\/index\.js$/ }, (args) =>
      /[\\/]zod[\\/]v4[\\/](classic|core)$/.test(args.resolveDir)
        ? { path: 'zod-locales-en', namespace: 'zod-locales' }
        : undefined,
    );
    b.onLoad({ filter: /.*/, namespace: 'zod-locales' }, () => ({
      contents: "export { default as en } from 'zod/v4/locales/en.js';",
      resolveDir: process.cwd(),
      loader: 'js',
    }));
  },
};

// Chunks of earlier builds would pile up (their names carry content hashes).
rmSync('dist/chunks', { recursive: true, force: true });

const entries = {
  warden: 'packages/server/src/bin/warden.ts',
  wsh: 'packages/cli/src/wsh.ts',
  wctl: 'packages/cli/src/wctl.ts',
  wbot: 'packages/cli/src/wbot.ts',
};

// What both command bundles share: Node 20 ESM with source maps, native and optional modules
// from node_modules, and a `require` for the CommonJS dependencies that call it.
const EXTERNAL = ['better-sqlite3', 'pg', 'pg-native', 'ssh2', 'cpu-features', 'node-pty'];
const nodeBundle = {
  outdir: 'dist',
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'esm',
  sourcemap: 'linked',
  logLevel: 'warning',
  // Each command's chunk holds only the modules it uses (see precise-imports.mjs).
  plugins: [preciseImports(), zodEnglishOnly],
  external: EXTERNAL,
  banner: {
    js: "import { createRequire as __wardenCreateRequire } from 'node:module'; const require = __wardenCreateRequire(import.meta.url);",
  },
};

await build({ ...nodeBundle, entryPoints: entries, splitting: true, chunkNames: 'chunks/[name]-[hash]' });

// `wsh proxy ssh` alone in one file, for OpenSSH's ProxyCommand (`wsh config` names it): it
// starts for every SSH session, and one file loads faster than wsh's shared chunks.
await build({
  ...nodeBundle,
  entryPoints: { 'wsh-proxy-ssh': 'packages/cli/src/wsh-proxy-ssh.ts' },
  // yaml only for --format=yaml, which this command has no use for: from node_modules if ever.
  external: [...EXTERNAL, 'yaml'],
});

// The Web UI: one script and one stylesheet, no runtime downloads (it works offline), no
// inline scripts (the proxy's CSP forbids them).
mkdirSync('dist/web', { recursive: true });
await build({
  entryPoints: { app: 'packages/web/src/main.ts' },
  outdir: 'dist/web',
  bundle: true,
  platform: 'browser',
  target: ['chrome120', 'firefox120', 'safari17'],
  format: 'esm',
  minify: true,
  legalComments: 'none',
  logLevel: 'warning',
});
for (const f of ['index.html', 'app.css', 'favicon.svg'])
  copyFileSync(`packages/web/src/${f}`, `dist/web/${f}`);

// Man pages for wsh and wctl, from the same command tables as --help (dist/man/*.1).
const man = spawnSync(process.execPath, ['--import', 'tsx', 'scripts/man.ts', 'dist/man'], {
  stdio: 'inherit',
});
if (man.status !== 0) process.exit(man.status ?? 1);
