#!/usr/bin/env node
// Builds the Python worker (packages/vassal/python/emperor_worker) for every Python 3 found
// here (`python3` on PATH and /usr/bin/python3). Run by `npm run build` and `prepare`.
//
// 1. The optional C accelerator, `_speedups.c`, compiled into a CPython extension next to
//    the .py files (`_speedups<EXT_SUFFIX>`, gitignored), once per ABI (EXT_SUFFIX), with
//    the include directory from the interpreter's `sysconfig`. Without a C compiler (`cc`,
//    or $CC) or without Python.h (Debian: python3-dev), one line says the worker will use
//    its pure-Python path; the build never fails for it. The worker imports the extension
//    when it is there (EMPEROR_PY_SPEEDUPS=0 turns it off): see emperor_worker/speedups.py
//    and docs/architecture.md, "The Python worker".
// 2. Bytecode (.pyc) for the whole package, as Debian's py3compile and pip do for installed
//    modules: workers run as the vassal's user, who usually cannot write __pycache__ beside
//    a root-owned install (and PYTHONDONTWRITEBYTECODE may be set), and would otherwise
//    compile the worker's ~5,000 lines in memory at every template or lazy worker start
//    (30-40 ms of CPU each on this project's 2-core machine). Interpreters of one minor
//    version share a .pyc (`__pycache__/X.cpython-311.pyc`).
//
// No Python at all is not an error (a Node-only host).
//
//   node scripts/build-python.mjs          build (about 1 s per interpreter)
//   node scripts/build-python.mjs --clean  remove the built extensions and bytecode
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, realpathSync, rmSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const TREE = join(ROOT, 'packages', 'vassal', 'python');
const PKG = join(TREE, 'emperor_worker');
const SOURCE = join(PKG, '_speedups.c');
const PYTHONS = ['python3', '/usr/bin/python3'];
const CC = process.env.CC || 'cc';
const env = { ...process.env };
delete env.PYTHONDONTWRITEBYTECODE;

if (process.argv.includes('--clean')) {
  for (const f of readdirSync(PKG)) if (/^_speedups\..*\.so$/.test(f)) rmSync(join(PKG, f));
  const caches = (dir) => readdirSync(dir, { withFileTypes: true }).filter((e) => e.isDirectory()).flatMap((e) => (e.name === '__pycache__' ? [join(dir, e.name)] : caches(join(dir, e.name))));
  for (const dir of caches(TREE)) rmSync(dir, { recursive: true, force: true });
  process.exit(0);
}

/** `{ executable, include, suffix, version }` of a Python interpreter, or null when it does not run. */
function sysconfigOf(python) {
  const r = spawnSync(python, ['-c', 'import sysconfig, sys; print(sys.executable); print(sysconfig.get_paths()["include"]); print(sysconfig.get_config_var("EXT_SUFFIX") or ""); print(sys.version.split()[0])'], { encoding: 'utf8', env, timeout: 20_000 });
  if (r.status !== 0) return null;
  const [executable, include, suffix, version] = r.stdout.trim().split('\n');
  return executable && include && suffix ? { executable, include, suffix, version } : null;
}

/** Builds the accelerator for `conf` unless its ABI is done or it is up to date; returns why not, or undefined. */
function buildSpeedups(python, conf) {
  if (!existsSync(join(conf.include, 'Python.h'))) return `${python} ${conf.version}: no Python.h in ${conf.include} (install python3-dev)`;
  const out = join(PKG, `_speedups${conf.suffix}`);
  if (existsSync(out) && statSync(out).mtimeMs >= statSync(SOURCE).mtimeMs) return undefined; // up to date
  try {
    execFileSync(CC, ['-O2', '-shared', '-fPIC', '-Wall', '-Wextra', `-I${conf.include}`, '-o', out, SOURCE], { stdio: ['ignore', 'inherit', 'pipe'] });
    return undefined;
  } catch (err) {
    rmSync(out, { force: true });
    return `${python} ${conf.version}: ${err.code === 'ENOENT' ? `no C compiler (${CC})` : `${CC} failed: ${String(err.stderr ?? err.message).trim().split('\n')[0]}`}`;
  }
}

const abis = new Set();
const interpreters = new Set();
const skipped = [];
for (const python of PYTHONS) {
  const conf = sysconfigOf(python);
  if (conf === null) continue;
  if (!abis.has(conf.suffix)) {
    abis.add(conf.suffix);
    const why = buildSpeedups(python, conf);
    if (why !== undefined) skipped.push(why);
  }
  const real = realpathSync(conf.executable);
  if (interpreters.has(real)) continue;
  interpreters.add(real);
  try {
    execFileSync(conf.executable, ['-m', 'compileall', '-q', '-j', '0', TREE], { env, stdio: ['ignore', 'ignore', 'pipe'], timeout: 120_000 });
  } catch (err) {
    const why = String(err.stderr ?? err.message).trim().split('\n').pop();
    console.log(`emperor: Python worker bytecode not compiled with ${conf.executable} (${why}); its workers compile it in memory at each start`);
  }
}
if (skipped.length > 0) console.log(`emperor: Python worker speedups not built (${skipped.join('; ')}); those Python workers use the pure-Python path`);
