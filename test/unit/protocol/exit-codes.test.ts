import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ExitCode } from '@emperor/protocol';

const ROOT = fileURLToPath(new URL('../../../../', import.meta.url));

/** Every TypeScript source file of every package, as `packages/NAME/src/...` paths, without comment lines. */
function packageSources(): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir).sort()) {
      const path = join(dir, name);
      if (statSync(path).isDirectory()) walk(path);
      else if (name.endsWith('.ts')) {
        const text = readFileSync(path, 'utf8').split('\n').filter((line) => !/^\s*(?:\/\/|\/\*|\*)/.test(line)).join('\n');
        out.set(relative(ROOT, path).split(sep).join('/'), text);
      }
    }
  };
  for (const pkg of readdirSync(join(ROOT, 'packages')).sort()) walk(join(ROOT, 'packages', pkg, 'src'));
  return out;
}

/**
 * `process.exit` calls left in library files owned by the master and Node worker
 * restructures (issue 16), at most this many per file; lower the count (or drop the line)
 * as they move to their bin entries.
 */
const KNOWN_LIBRARY_EXITS: Readonly<Record<string, number>> = {
  'packages/vassal/src/worker/node/worker-main.ts': 7,
};

/** Bare exit numbers left in those files, at most this many per file. */
const KNOWN_BARE_EXIT_NUMBERS: Readonly<Record<string, number>> = {
  'packages/vassal/src/worker/node/worker-main.ts': 1,
};

test('exit codes are distinct and in the range a process can exit with', () => {
  const values = Object.values(ExitCode);
  assert.equal(new Set(values).size, values.length);
  for (const v of values) assert.ok(Number.isInteger(v) && v >= 0 && v <= 255, String(v));
  // Fixed values: other programs (systemd units, the Python worker, scripts) depend on them.
  const fixed = { OK: 0, FAILURE: 1, USAGE: 2, CONFIG: 78, APP_LOAD: 22, UNAVAILABLE: 69 } as const;
  for (const [name, value] of Object.entries(fixed)) assert.equal(ExitCode[name as keyof typeof fixed], value, name);
});

test('only bin entries exit the process, and never with a bare number (only the listed leftovers, which may only shrink)', () => {
  const over: string[] = [];
  for (const [file, text] of packageSources()) {
    const exits = text.match(/\bprocess\.exit\(/g)?.length ?? 0;
    if (!file.includes('/src/bin/') && exits > (KNOWN_LIBRARY_EXITS[file] ?? 0)) over.push(`${file}: ${exits} process.exit in library code`);
    const bare = text.match(/\bprocess\.exit\(\s*\d|\bprocess\.exitCode\s*=\s*\d/g)?.length ?? 0;
    if (bare > (KNOWN_BARE_EXIT_NUMBERS[file] ?? 0)) over.push(`${file}: ${bare} bare exit number(s)`);
  }
  assert.deepEqual(over, [], 'return the code to the bin entry, and name it with ExitCode (packages/protocol/src/ipc.ts)');
  assert.match(packageSources().get('packages/cli/src/bin/emperor.ts') ?? '', /process\.exit\(await main\(/, 'the CLI bin exits with what main resolves to');
});
