// Bundles the three commands (warden, wsh, wctl) into dist/ with esbuild so they start fast.
// Native modules (better-sqlite3) stay external and load from node_modules.
import { build } from 'esbuild';

const entries = {
  warden: 'packages/server/src/bin/warden.ts',
  wsh: 'packages/cli/src/wsh.ts',
  wctl: 'packages/cli/src/wctl.ts',
};

await build({
  entryPoints: entries,
  outdir: 'dist',
  bundle: true,
  splitting: true,
  chunkNames: 'chunks/[name]-[hash]',
  platform: 'node',
  target: 'node20',
  format: 'esm',
  sourcemap: 'linked',
  logLevel: 'warning',
  external: ['better-sqlite3', 'pg', 'pg-native', 'ssh2', 'cpu-features', 'node-pty'],
  banner: {
    js: "import { createRequire as __wardenCreateRequire } from 'node:module'; const require = __wardenCreateRequire(import.meta.url);",
  },
});
