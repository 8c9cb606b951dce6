// Lint: typescript-eslint's recommended rules, plus the type-aware rules that catch what
// bites a supervisor (a promise nobody awaits or catches; a promise where a callback's
// result is ignored) and no process.exit outside the process entries (library code
// returns an exit code: packages/protocol/src/ipc.ts ExitCode). `npm run lint`.
import js from '@eslint/js';
import globals from 'globals';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['**/dist/**', 'node_modules/**', 'coverage/**', 'packages/vassal/python/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      // Control characters are what our validators look for (file names, log text).
      'no-control-regex': 'off',
      // `_name` marks what is unused on purpose; `{ a, ...rest }` drops `a` on purpose.
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', ignoreRestSiblings: true }],
    },
  },
  {
    files: ['**/*.{js,mjs,cjs}'],
    languageOptions: { globals: { ...globals.node } },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
  {
    files: ['packages/*/src/**/*.ts', 'test/**/*.ts'],
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      // node:test's test()/describe() return promises the runner awaits.
      '@typescript-eslint/no-floating-promises': ['error', { allowForKnownSafeCalls: [{ from: 'package', package: 'node:test', name: ['test', 'it', 'describe', 'suite'] }] }],
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: { arguments: false, attributes: false } }],
      'no-restricted-properties': ['error', { object: 'process', property: 'exit', message: 'library code returns an ExitCode; only a process entry (src/bin/, the Node worker main) exits' }],
    },
  },
  {
    // Process entries: the CLI and master bins, and the Node worker's main, own their exit.
    files: ['packages/*/src/bin/**/*.ts', 'packages/vassal/src/worker/node/worker-main.ts', 'test/**/*.ts'],
    rules: { 'no-restricted-properties': 'off' },
  },
);
