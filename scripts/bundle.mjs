#!/usr/bin/env node
// Bundles each process entry (the emperor CLI, the vassal master, the Node worker) into one
// file with esbuild, from tsc's output (run `tsc -b` first; `npm run build` does both):
//
//   packages/cli/dist/bin/emperor.js              → packages/cli/dist/bundle/emperor.js
//   packages/vassal/dist/bin/master.js            → packages/vassal/dist/bundle/master.js
//   packages/vassal/dist/worker/node/worker-main.js → packages/vassal/dist/bundle/worker-main.js
//   packages/vassal/dist/bin/dup-sockets.js       → packages/vassal/dist/bundle/dup-sockets.js (cheap mode's watch)
//
// Why: a process that imports ~100 ES modules resolves, reads and links each one before it
// does anything; one file costs one read and one compile (measured in docs/architecture.md,
// "Process start-up"). The source layout and tsc -b (types, declarations, tests) stay.
//
// - Every `import.meta.url` of a bundled module is rewritten to the URL its tsc output file
//   has, relative to the bundle (`new URL('../../dist/x.js', import.meta.url).href`), so
//   paths computed from it (the Python worker's launcher, the stack thread, docs) are
//   those of the unbundled layout, wherever the package is installed.
// - What a configuration may not use stays outside and is loaded on first use, from
//   node_modules: prom-client (metrics), pg and pgpass (PostgreSQL sources),
//   fast-xml-parser (XML files).
// - Source maps chain through tsc's, so coverage (c8) and `--enable-source-maps` stack
//   traces point at the TypeScript sources.
//
//   node scripts/bundle.mjs            bundle (about 0.3 s)
//   node scripts/bundle.mjs --metafile write dist/bundle/*.meta.json (what each bundle holds)
import { readFile, rename, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { dirname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

/** The process entries: tsc output in, one bundle out. */
export const ENTRIES = [
  // The vassal package is loaded by the CLI only to run one vassal in the foreground
  // (`emperor --ini app.ini`) or check one; the emperor itself never runs vassal code.
  { entry: 'packages/cli/dist/bin/emperor.js', out: 'packages/cli/dist/bundle/emperor.js', external: ['@emperor/vassal'] },
  { entry: 'packages/vassal/dist/bin/master.js', out: 'packages/vassal/dist/bundle/master.js' },
  { entry: 'packages/vassal/dist/worker/node/worker-main.js', out: 'packages/vassal/dist/bundle/worker-main.js' },
  { entry: 'packages/vassal/dist/bin/dup-sockets.js', out: 'packages/vassal/dist/bundle/dup-sockets.js' },
];

/** Loaded on first use only, never by a configuration that does not need them. */
const EXTERNAL = ['prom-client', 'pg', 'pgpass', 'pgpass/*', 'fast-xml-parser'];

/**
 * A module's lazy `require` that the bundle includes: `const require = createRequire(import.meta.url);`
 * on a line of its own (the logger's pino, loaded by the first line a process logs). Dropping
 * the line leaves calls to the free `require`, which esbuild bundles and still evaluates only
 * when called. An inline `createRequire(import.meta.url)('x')` is not touched: x stays outside.
 */
const LAZY_REQUIRE = /^[ \t]*const require = createRequire\(import\.meta\.url\);[ \t]*$/m;

/** esbuild plugin: `import.meta.url` of a workspace module means its tsc output file's URL; {@link LAZY_REQUIRE}. */
function workspaceModules(outFile) {
  return {
    name: 'workspace-modules',
    setup(b) {
      b.onLoad({ filter: /[\\/]packages[\\/][^\\/]+[\\/]dist[\\/].*\.js$/ }, async (args) => {
        let text = await readFile(args.path, 'utf8');
        if (!text.includes('import.meta.url')) return undefined;
        text = text.replace(LAZY_REQUIRE, '');
        const rel = relative(dirname(outFile), args.path).split(sep).join('/');
        const url = `new URL(${JSON.stringify(rel)}, import.meta.url).href`;
        return { contents: text.replaceAll('import.meta.url', url), loader: 'js', resolveDir: dirname(args.path) };
      });
    },
  };
}

/** Bundles every entry; resolves to the output files. */
export async function bundle({ metafile = false } = {}) {
  const out = [];
  await Promise.all(ENTRIES.map(async ({ entry, out: file, external = [] }) => {
    const outfile = join(ROOT, file);
    const result = await build({
      entryPoints: [join(ROOT, entry)],
      outfile,
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      sourcemap: 'linked',
      sourcesContent: false,
      external: [...EXTERNAL, ...external],
      metafile,
      logLevel: 'warning',
      legalComments: 'none',
      // CommonJS dependencies (pino, yargs' helpers) call require() for Node's modules;
      // an ES module bundle has no `require` of its own.
      banner: { js: "import { createRequire as __emperorCreateRequire } from 'node:module'; const require = __emperorCreateRequire(import.meta.url);" },
      plugins: [workspaceModules(outfile)],
      write: false,
    });
    // Another test or bench run may be starting processes from these files right now: a
    // file is replaced only when its bytes changed, and then whole (written aside, renamed).
    for (const file of result.outputFiles) {
      let old;
      try { old = readFileSync(file.path); } catch { old = undefined; }
      if (old !== undefined && Buffer.compare(old, file.contents) === 0) continue;
      const { mkdir } = await import('node:fs/promises');
      await mkdir(dirname(file.path), { recursive: true });
      const aside = `${file.path}.${process.pid}.tmp`;
      await writeFile(aside, file.contents, { mode: file.path.endsWith('.js') ? 0o755 : 0o644 });
      await rename(aside, file.path);
    }
    if (metafile) {
      const { writeFileSync } = await import('node:fs');
      writeFileSync(outfile.replace(/\.js$/, '.meta.json'), JSON.stringify(result.metafile));
    }
    out.push(outfile);
  }));
  return out;
}

/** Removes the bundles (`npm run clean`). */
export async function clean() {
  const { rmSync } = await import('node:fs');
  for (const { out } of ENTRIES) rmSync(dirname(join(ROOT, out)), { recursive: true, force: true });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  if (process.argv.includes('--clean')) await clean();
  else await bundle({ metafile: process.argv.includes('--metafile') });
}
