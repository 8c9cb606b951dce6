#!/usr/bin/env node
// Compiles the Python worker's optional C accelerator,
// packages/vassal/python/emperor_worker/_speedups.c, into a CPython extension next to the
// .py files (`_speedups<EXT_SUFFIX>`, gitignored), once for each Python interpreter found:
// `python3` on PATH and /usr/bin/python3 (an ABI, i.e. an EXT_SUFFIX, is built once). The
// include directory and EXT_SUFFIX come from the interpreter's `sysconfig`.
//
// Without a C compiler (`cc`) or without Python.h (Debian: python3-dev) it prints one line
// saying the worker will use its pure-Python path and exits 0: the build never fails for it.
// The worker imports the extension when it is there (EMPEROR_PY_SPEEDUPS=0 turns it off):
// see emperor_worker/speedups.py and docs/architecture.md, "The Python worker".
//
//   node scripts/build-speedups.mjs          build (about 1 s per interpreter)
//   node scripts/build-speedups.mjs --clean  remove the built extensions
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, rmSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const PKG = join(ROOT, 'packages', 'vassal', 'python', 'emperor_worker');
const SOURCE = join(PKG, '_speedups.c');
const PYTHONS = ['python3', '/usr/bin/python3'];
const CC = process.env.CC || 'cc';

if (process.argv.includes('--clean')) {
  for (const f of readdirSync(PKG)) if (/^_speedups\..*\.so$/.test(f)) rmSync(join(PKG, f));
  process.exit(0);
}

/** `{ include, suffix, version }` of a Python interpreter, or null when it does not run. */
function sysconfigOf(python) {
  const r = spawnSync(python, ['-c', 'import sysconfig, sys; print(sysconfig.get_paths()["include"]); print(sysconfig.get_config_var("EXT_SUFFIX") or ""); print(sys.version.split()[0])'], { encoding: 'utf8' });
  if (r.status !== 0) return null;
  const [include, suffix, version] = r.stdout.trim().split('\n');
  return include && suffix ? { include, suffix, version } : null;
}

const built = new Set();
const skipped = [];
for (const python of PYTHONS) {
  const conf = sysconfigOf(python);
  if (conf === null || built.has(conf.suffix)) continue;
  if (!existsSync(join(conf.include, 'Python.h'))) {
    skipped.push(`${python} ${conf.version}: no Python.h in ${conf.include} (install python3-dev)`);
    continue;
  }
  const out = join(PKG, `_speedups${conf.suffix}`);
  if (existsSync(out) && statSync(out).mtimeMs >= statSync(SOURCE).mtimeMs) {
    built.add(conf.suffix);
    continue; // up to date
  }
  try {
    execFileSync(CC, ['-O2', '-shared', '-fPIC', '-Wall', '-Wextra', `-I${conf.include}`, '-o', out, SOURCE], { stdio: ['ignore', 'inherit', 'pipe'] });
    built.add(conf.suffix);
  } catch (err) {
    const why = err.code === 'ENOENT' ? `no C compiler (${CC})` : `${CC} failed: ${String(err.stderr ?? err.message).trim().split('\n')[0]}`;
    skipped.push(`${python} ${conf.version}: ${why}`);
    rmSync(out, { force: true });
  }
}
for (const s of skipped) console.log(`emperor: Python worker speedups not built for ${s}; that Python worker uses its pure-Python path`);
