/**
 * Parsers from one option value (a string after every placeholder pass) to its typed form.
 * Each throws a {@link ConfigValueError} that names the file, line, option and value.
 */
import { isIPv4, isIPv6 } from 'node:net';
import { basename, resolve } from 'node:path';
import { ConfigValueError } from './errors.js';
import { quote } from './text.js';
import type { OptionSpec, OptionUnit } from './options.js';
import type { ListenAddress, Principal, RawOption, ResolvedOption, SocketAddress, WorkerRuntime } from './types.js';

/** sun_path is 108 bytes on Linux, one of them the terminating NUL (abstract names: the leading NUL). */
export const MAX_UNIX_SOCKET_BYTES = 107;
/** `chmod-socket` alone (or `1`): uWSGI's "666 for lazy and brave users". */
export const DEFAULT_SOCKET_MODE = 0o666;

const ADDRESS_FORMS = 'host:port, :port, [ipv6]:port, @abstract-name or a unix socket path';
const BOOLEANS: ReadonlyMap<string, boolean> = new Map([
  ['', true], ['true', true], ['1', true], ['yes', true], ['on', true],
  ['false', false], ['0', false], ['no', false], ['off', false],
]);
const NOUNS: Readonly<Record<OptionUnit | 'none', string>> = {
  seconds: 'whole seconds',
  milliseconds: 'whole milliseconds',
  megabytes: 'whole megabytes',
  bytes: 'whole bytes',
  percent: 'a whole percentage',
  none: 'a whole number',
};
const TO_BASE_UNIT: Readonly<Record<OptionUnit, number>> = { seconds: 1000, milliseconds: 1, megabytes: 1024 * 1024, bytes: 1, percent: 1 };
const HOST_NAME = /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$/;
/** POSIX-ish user and group names; numbers are ids. No lookup here: the master does that. */
const PRINCIPAL_NAME = /^[a-z_][a-z0-9_.-]*\$?$/i;
/** Ids 0 .. 2^32 - 2: (uid_t)-1 means "unchanged" to setuid-like calls. */
const MAX_ID = 4_294_967_294;
const ENV_ENTRY = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/s;
const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Throws the standard value error for `option`: `file:line: name: problem, got "value"`. */
export function invalid(option: RawOption, expected: string, problem?: string): never {
  throw new ConfigValueError({
    file: option.file,
    line: option.line,
    option: option.name,
    value: option.value,
    expected,
    ...(problem === undefined ? {} : { problem }),
  });
}

/**
 * uWSGI booleans, stricter: `true/false`, `1/0`, `yes/no`, `on/off` in any case, and a bare
 * key (`""`) is true. uWSGI takes any other word as true; we refuse it, since `maser = flase`
 * style typos should not silently mean "on".
 */
export function parseBool(option: ResolvedOption): boolean {
  return BOOLEANS.get(option.value.toLowerCase()) ?? invalid(option, 'true/false, 1/0, yes/no or on/off');
}

/**
 * A whole number in the option's unit, range-checked in that unit, returned in the base
 * unit: seconds → ms, megabytes (MiB) → bytes.
 */
export function parseUint(option: ResolvedOption, spec: OptionSpec): number {
  const min = spec.min ?? 0;
  const max = spec.max ?? Number.MAX_SAFE_INTEGER;
  const noun = NOUNS[spec.unit ?? 'none'];
  if (!/^-?\d+$/.test(option.value)) invalid(option, `${noun} >= ${min}`);
  const n = Number(option.value);
  if (n < min) invalid(option, `${noun} >= ${min}`, `must be >= ${min}`);
  if (n > max) invalid(option, `${noun} <= ${max}`, `must be <= ${max}`);
  return toBaseUnit(n, spec.unit);
}

/** `n` in `unit` converted to ms (time) or bytes (size). */
export function toBaseUnit(n: number, unit: OptionUnit | undefined): number {
  return unit === undefined ? n : n * TO_BASE_UNIT[unit];
}

/**
 * A listening address, as uWSGI reads `socket`, `http-socket` and `stats`:
 * - contains `:` → TCP: `host:port`, `:port` (= `0.0.0.0`), `[v6]:port`; port 0..65535;
 * - `@name` → an abstract unix socket;
 * - anything else → a unix socket path, resolved against `baseDir`, at most 107 bytes.
 */
export function parseAddress(option: ResolvedOption, baseDir: string): ListenAddress {
  const value = option.value;
  if (value === '') invalid(option, ADDRESS_FORMS);
  if (value.startsWith('=') || value.startsWith('fd://')) {
    invalid(option, ADDRESS_FORMS, value.startsWith('=') ? 'shared (=N) sockets are not supported' : 'fd:// names an inherited socket, for socket options only');
  }
  if (value.startsWith('@')) {
    const name = value.slice(1);
    if (name === '' || Buffer.byteLength(name) > MAX_UNIX_SOCKET_BYTES) {
      invalid(option, `an abstract socket name of 1 to ${MAX_UNIX_SOCKET_BYTES} bytes`);
    }
    return { kind: 'unix', path: name, abstract: true };
  }
  if (value.includes(':')) return parseTcpAddress(option);
  const path = resolve(baseDir, value);
  const bytes = Buffer.byteLength(path);
  if (bytes > MAX_UNIX_SOCKET_BYTES) {
    invalid(option, `a unix socket path of at most ${MAX_UNIX_SOCKET_BYTES} bytes`,
      `unix socket path is ${bytes} bytes once resolved to ${quote(path)}; the limit is ${MAX_UNIX_SOCKET_BYTES}`);
  }
  return { kind: 'unix', path, abstract: false };
}

function parseTcpAddress(option: ResolvedOption): ListenAddress {
  const value = option.value;
  let host: string;
  let port: string;
  if (value.startsWith('[')) {
    const end = value.indexOf(']');
    host = value.slice(1, end);
    port = value.slice(end + 2);
    if (end === -1 || value[end + 1] !== ':' || !isIPv6(host)) invalid(option, ADDRESS_FORMS, 'expected [ipv6-address]:port');
  } else {
    const colon = value.lastIndexOf(':');
    host = value.slice(0, colon);
    port = value.slice(colon + 1);
    if (host.includes(':')) invalid(option, ADDRESS_FORMS, 'an IPv6 address needs brackets, as in [::1]:8080');
    if (host === '') host = '0.0.0.0';
    else if (!isIPv4(host) && !HOST_NAME.test(host)) invalid(option, ADDRESS_FORMS, 'expected an IP address or host name before the ":"');
  }
  if (!/^\d{1,5}$/.test(port) || Number(port) > 65535) invalid(option, 'a port from 0 to 65535 after the ":"');
  return { kind: 'tcp', host, port: Number(port) };
}

/** File descriptors an `fd://N` socket may name (the default RLIMIT_NOFILE soft limit). */
const MAX_INHERITED_FD = 1023;

/**
 * A vassal socket's address (`socket`, `http-socket`, `uwsgi-socket`, `fastcgi-socket`):
 * what {@link parseAddress} reads, or `fd://N`, a socket inherited open on file
 * descriptor N (uWSGI core/socket.c). Whether N really is a socket is the master's to
 * check, when it starts.
 */
export function parseSocketAddress(option: ResolvedOption, baseDir: string): SocketAddress {
  if (!option.value.startsWith('fd://')) return parseAddress(option, baseDir);
  const n = option.value.slice('fd://'.length);
  if (!/^\d{1,4}$/.test(n) || Number(n) > MAX_INHERITED_FD) invalid(option, `fd://N with N a file descriptor from 0 to ${MAX_INHERITED_FD}`);
  return { kind: 'fd', fd: Number(n) };
}

/** A socket's address as a user writes it: see {@link formatListenAddress}, and `fd://N`. */
export function formatSocketAddress(address: SocketAddress): string {
  return address.kind === 'fd' ? `fd://${address.fd}` : formatListenAddress(address);
}

/** An address as a user writes it: `host:port`, a unix path, or `@name` for an abstract socket. */
export function formatListenAddress(address: ListenAddress): string {
  if (address.kind === 'tcp') return address.host.includes(':') ? `[${address.host}]:${address.port}` : `${address.host}:${address.port}`;
  return address.abstract ? `@${address.path}` : address.path;
}

/** `chmod-socket`: empty or `1` → 0o666 (uWSGI), else exactly 3 octal digits. */
export function parseMode(option: ResolvedOption): number {
  if (option.value === '' || option.value === '1') return DEFAULT_SOCKET_MODE;
  if (!/^[0-7]{3}$/.test(option.value)) invalid(option, '3 octal digits such as 660, or nothing for 666');
  return Number.parseInt(option.value, 8);
}

/** `uid` / `gid`: a name (`www-data`) or a number; not looked up here. */
export function parsePrincipal(option: ResolvedOption): Principal {
  return principalOf(option.value) ?? invalid(option, 'a name such as www-data, or a number');
}

/** `chown-socket`: `user[:group]`, each a name or a number. */
export function parseOwner(option: ResolvedOption): { readonly user: Principal; readonly group: Principal | undefined } {
  const colon = option.value.indexOf(':');
  const user = principalOf(colon === -1 ? option.value : option.value.slice(0, colon));
  const group = colon === -1 ? undefined : principalOf(option.value.slice(colon + 1));
  if (user === undefined || (colon !== -1 && group === undefined)) invalid(option, 'user[:group], names or numbers');
  return { user, group };
}

function principalOf(text: string): Principal | undefined {
  if (/^\d+$/.test(text)) return Number(text) <= MAX_ID ? Number(text) : undefined;
  return PRINCIPAL_NAME.test(text) ? text : undefined;
}

/** `env`: `KEY=VALUE` with a shell-style name; the value may be empty or contain `=`. */
export function parseEnv(option: ResolvedOption): readonly [key: string, value: string] {
  const match = ENV_ENTRY.exec(option.value);
  if (match === null) invalid(option, 'KEY=VALUE with KEY made of letters, digits and _');
  return [match[1] ?? '', match[2] ?? ''];
}

/** A path resolved once against `baseDir`; empty is refused. */
export function parsePath(option: ResolvedOption, baseDir: string): string {
  if (option.value === '') invalid(option, 'a path');
  return resolve(baseDir, option.value);
}

/** A Python identifier (`callable`). */
export function parseIdentifier(option: ResolvedOption): string {
  if (!IDENTIFIER.test(option.value)) invalid(option, 'a Python identifier such as application');
  return option.value;
}

/** One of `spec.choices`, case-sensitive. */
export function parseChoice(option: ResolvedOption, spec: OptionSpec): string {
  const choices = spec.choices ?? [];
  if (!choices.includes(option.value)) invalid(option, `one of ${choices.join(', ')}`);
  return option.value;
}

/**
 * `plugin` / `plugins`: names split on commas and spaces. uWSGI also accepts a path to the
 * shared object (`/usr/lib/uwsgi/python3_plugin.so`), which we reduce to its name.
 */
export function parsePlugins(option: ResolvedOption): readonly string[] {
  return option.value
    .split(/[\s,]+/)
    .filter((name) => name !== '')
    .map((name) => basename(name).replace(/_plugin\.so$/, ''));
}

/** The runtime a plugin name selects: `node`/`nodejs`, `python`, `python3`, `pythonNN`, `python3NN`; else none. */
export function runtimeOfPlugin(name: string): WorkerRuntime | undefined {
  if (name === 'node' || name === 'nodejs') return 'node';
  if (/^python\d{0,3}$/.test(name)) return 'python';
  return undefined;
}
