// An esbuild plugin for the CLI's start-up time: it rewrites `import { a, b } from
// '@warden/api'` (and the other workspace packages) into imports from the modules that
// define `a` and `b`. Why: with code splitting, esbuild puts a file into the chunks of every
// entry point (each lazily loaded command is one) that can *reach* it through import
// statements, `export * from` included, whether or not that entry uses it. Through a
// package's root index every command reached every module of the package, so `wsh status`
// loaded the chunk holding zod, YAML and X.509 (1.9 MB) that only other commands use.
// The map name → defining module comes from the TypeScript checker, so it follows
// `export *`, `export { x as y }` and `export * as ns` exactly; type-only names are dropped
// (esbuild erases them anyway). Sources are unchanged; only the bundle's import graph is.
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import ts from 'typescript';

const PACKAGES = {
  '@warden/api': 'packages/api/src/index.ts',
  '@warden/client': 'packages/client/src/index.ts',
};

/** name → { file, name } | { file, namespace: true } for each value the package root exports. */
function exportMap(root) {
  const program = ts.createProgram([root], {
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.ESNext,
    moduleResolution: ts.ModuleResolutionKind.Bundler,
    allowImportingTsExtensions: true,
    noEmit: true,
    skipLibCheck: true,
    types: [],
  });
  const checker = program.getTypeChecker();
  const source = program.getSourceFile(root);
  const moduleSymbol = source && checker.getSymbolAtLocation(source);
  if (!moduleSymbol) throw new Error(`precise-imports: cannot read the exports of ${root}`);
  const out = new Map();
  for (const exp of checker.getExportsOfModule(moduleSymbol)) {
    let target = exp;
    let name = exp.name;
    // Follow re-export aliases to the declaration; the last alias's name is the local name.
    while (target.flags & ts.SymbolFlags.Alias) {
      const next = checker.getImmediateAliasedSymbol(target);
      if (!next) break;
      target = next;
      name = target.name;
    }
    const decl = target.declarations?.[0];
    if (!decl) continue;
    if (ts.isSourceFile(decl)) {
      out.set(exp.name, { file: resolve(decl.fileName), namespace: true });
      continue;
    }
    // Types and interfaces have no runtime value: leave them to esbuild to erase.
    if (!(target.flags & ts.SymbolFlags.Value)) {
      out.set(exp.name, { type: true });
      continue;
    }
    out.set(exp.name, { file: resolve(decl.getSourceFile().fileName), name });
  }
  return out;
}

const IMPORT = /import\s*(type\s+)?\{([^}]*)\}\s*from\s*'(@warden\/(?:api|client))';/g;

export function preciseImports() {
  const maps = new Map();
  const mapFor = (pkg) => {
    if (!maps.has(pkg)) maps.set(pkg, exportMap(resolve(PACKAGES[pkg])));
    return maps.get(pkg);
  };
  return {
    name: 'precise-imports',
    setup(build) {
      build.onLoad({ filter: /[\\/]packages[\\/](cli|client)[\\/]src[\\/].*\.ts$/ }, (args) => {
        const text = readFileSync(args.path, 'utf8');
        if (!text.includes("from '@warden/")) return undefined;
        const contents = text.replace(IMPORT, (whole, typeOnly, list, pkg) => {
          if (typeOnly) return whole;
          const map = mapFor(pkg);
          const lines = [];
          for (const raw of list.split(',')) {
            const spec = raw.trim();
            if (!spec || spec.startsWith('type ')) continue;
            const [imported, local = imported] = spec.split(/\s+as\s+/);
            const where = map.get(imported);
            if (!where) return whole; // Unknown to the map: keep the statement as written.
            if (where.type) continue;
            const path = JSON.stringify(where.file);
            lines.push(
              where.namespace
                ? `import * as ${local} from ${path};`
                : `import { ${where.name === local ? local : `${where.name} as ${local}`} } from ${path};`,
            );
          }
          return lines.join(' ');
        });
        return { contents, loader: 'ts', resolveDir: dirname(args.path) };
      });
    },
  };
}
