// Shared fixtures of the config unit tests (not a test file itself).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import {
  ConfigParseError, ConfigReadError, ConfigValueError, parseConfigText, resolveVassalConfig,
  type ConfigFormat, type LoadedConfig, type RawConfig, type ResolveConfigOptions, type VassalConfig,
} from '@emperor/config';

/** The file name the fixtures pretend to come from. */
export const SHOP = 'emperor.d/shop.ini';
/** The smallest valid vassal body (a socket and a Node app): lines 2 and 3 after `[uwsgi]`. */
export const MINIMAL = 'socket = :3031\nmodule = app.js\n';

/** `text` parsed as `format`, named `file`. */
export function parse(text: string, format: ConfigFormat = 'ini', file = SHOP): RawConfig {
  return parseConfigText(text, file, format);
}

/** `[line, name, value]` of each option, for compact assertions. */
export function pairs(raw: RawConfig): (string | number)[][] {
  return raw.options.map((o) => [o.line, o.name, o.value]);
}

/** `[uwsgi]` + `body` parsed as INI. */
export function ini(body: string, file = SHOP): RawConfig {
  return parse(`[uwsgi]\n${body}`, 'ini', file);
}

/** A vassal made of MINIMAL then `body` (so `body` overrides MINIMAL's scalars), with an empty environment. */
export function vassal(body: string, options: ResolveConfigOptions = {}): LoadedConfig<VassalConfig> {
  return resolveVassalConfig([ini(`${MINIMAL}${body}`)], { env: {}, ...options });
}

/** The config of {@link vassal}. */
export function config(body: string, options: ResolveConfigOptions = {}): VassalConfig {
  return vassal(body, options).config;
}

/** A fresh temp directory removed after the test. */
export function tempDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'emperor-config-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

type ErrorClass = typeof ConfigReadError | typeof ConfigParseError | typeof ConfigValueError;

/** Asserts that `fn` throws exactly `kind` with exactly `message`, and returns the error. */
export function throwsExactly<E extends ErrorClass>(fn: () => unknown, kind: E, message: string): InstanceType<E> {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof kind, `expected ${kind.name}, got ${String(caught)}`);
  assert.equal((caught as Error).message, message);
  return caught as InstanceType<E>;
}

/** Asserts that the vassal made of MINIMAL + `body` fails with this ConfigValueError message. */
export function rejects(body: string, message: string, options: ResolveConfigOptions = {}): ConfigValueError {
  return throwsExactly(() => vassal(body, options), ConfigValueError, message);
}
