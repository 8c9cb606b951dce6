/**
 * The JSON reader, with uWSGI's rules (core/json.c): the object `uwsgi` holds the options;
 * a string is taken as is, an integer as decimal, `true` as "1", `false` and `null` as "0",
 * and an array repeats the option.
 *
 * `JSON.parse` is not enough: it loses duplicate keys (a repeated `"socket"` must stay
 * repeated, as in INI) and on Node 20 its messages do not always carry a position. So a
 * small scanner walks the text once, keeping each key's offset for line numbers.
 */
import { ConfigParseError } from './errors.js';
import { clip, lineLocator } from './text.js';
import type { RawOption } from './types.js';

const ROOT_KEY = 'uwsgi';
/** Deeper nesting than this is junk, and refusing it keeps the recursion off the stack limit. */
const MAX_DEPTH = 64;

/** A JSON value with the offset where it starts. Object members keep their order and duplicates. */
type JsonValue =
  | { readonly kind: 'object'; readonly at: number; readonly members: readonly JsonMember[] }
  | { readonly kind: 'array'; readonly at: number; readonly items: readonly JsonValue[] }
  | { readonly kind: 'string'; readonly at: number; readonly value: string }
  | { readonly kind: 'number'; readonly at: number; readonly text: string }
  | { readonly kind: 'literal'; readonly at: number; readonly value: boolean | null };

interface JsonMember {
  readonly key: string;
  readonly at: number;
  readonly value: JsonValue;
}

/**
 * Reads the options of `{"uwsgi": {...}}`, in document order.
 *
 * @throws {ConfigParseError} invalid JSON (with its line), a top level that is not an
 *   object, no object `uwsgi`, an object or nested array where a value belongs, a number
 *   that is not an integer.
 */
export function readJson(text: string, file: string): RawOption[] {
  const lineOf = lineLocator(text);
  const fail = (offset: number, problem: string): never => {
    throw new ConfigParseError({ file, line: lineOf(offset) }, clip(problem));
  };
  const document = new JsonScanner(text, fail).document();
  if (document.kind !== 'object') return fail(document.at, `expected an object with an object "${ROOT_KEY}", got ${describe(document)}`);
  const root = document.members.findLast((member) => member.key === ROOT_KEY);
  if (root === undefined) return fail(document.at, `no object "${ROOT_KEY}"`);
  if (root.value.kind !== 'object') return fail(root.value.at, `"${ROOT_KEY}" must be an object, got ${describe(root.value)}`);

  const options: RawOption[] = [];
  for (const { key, at, value } of root.value.members) {
    const values = value.kind === 'array' ? value.items : [value];
    for (const item of values) {
      const where = value.kind === 'array' ? 'an array item' : 'a value';
      const scalar = scalarOf(item) ?? fail(item.at, `"${key}": expected a string, integer, boolean or null as ${where}, got ${describe(item)}`);
      options.push({ file, line: lineOf(item === value ? at : item.at), name: key, value: scalar });
    }
  }
  return options;
}

/** uWSGI's conversion of a JSON scalar to an option value; `undefined` for what it refuses. */
function scalarOf(value: JsonValue): string | undefined {
  switch (value.kind) {
    case 'string':
      return value.value;
    case 'number':
      return /^-?\d+$/.test(value.text) ? value.text : undefined;
    case 'literal':
      return value.value === true ? '1' : '0';
    case 'object':
    case 'array':
      return undefined;
  }
}

function describe(value: JsonValue): string {
  switch (value.kind) {
    case 'object':
      return 'an object';
    case 'array':
      return 'an array';
    case 'string':
      return 'a string';
    case 'number':
      return `the number ${value.text}`;
    case 'literal':
      return String(value.value);
  }
}

/** A strict RFC 8259 recursive-descent scanner that remembers where each value starts. */
class JsonScanner {
  readonly #text: string;
  readonly #fail: (offset: number, problem: string) => never;
  #pos = 0;

  constructor(text: string, fail: (offset: number, problem: string) => never) {
    this.#text = text;
    this.#fail = fail;
  }

  document(): JsonValue {
    const value = this.#value(0);
    this.#skipSpace();
    if (this.#pos < this.#text.length) this.#unexpected('the end of the file');
    return value;
  }

  #value(depth: number): JsonValue {
    if (depth > MAX_DEPTH) this.#fail(this.#pos, `nested more than ${MAX_DEPTH} levels deep`);
    this.#skipSpace();
    const at = this.#pos;
    const c = this.#text[at];
    if (c === '{') return this.#object(depth);
    if (c === '[') return this.#array(depth);
    if (c === '"') return { kind: 'string', at, value: this.#string() };
    if (c === '-' || (c !== undefined && c >= '0' && c <= '9')) return this.#number();
    for (const [word, value] of [['true', true], ['false', false], ['null', null]] as const) {
      if (this.#text.startsWith(word, at)) {
        this.#pos += word.length;
        return { kind: 'literal', at, value };
      }
    }
    return this.#unexpected('a value');
  }

  #object(depth: number): JsonValue {
    const at = this.#pos++;
    const members: JsonMember[] = [];
    this.#skipSpace();
    if (this.#eat('}')) return { kind: 'object', at, members };
    do {
      this.#skipSpace();
      const keyAt = this.#pos;
      if (this.#text[keyAt] !== '"') this.#unexpected('a quoted key');
      const key = this.#string();
      this.#skipSpace();
      if (!this.#eat(':')) this.#unexpected('":"');
      members.push({ key, at: keyAt, value: this.#value(depth + 1) });
      this.#skipSpace();
    } while (this.#eat(','));
    if (!this.#eat('}')) this.#unexpected('"," or "}"');
    return { kind: 'object', at, members };
  }

  #array(depth: number): JsonValue {
    const at = this.#pos++;
    const items: JsonValue[] = [];
    this.#skipSpace();
    if (this.#eat(']')) return { kind: 'array', at, items };
    do {
      items.push(this.#value(depth + 1));
      this.#skipSpace();
    } while (this.#eat(','));
    if (!this.#eat(']')) this.#unexpected('"," or "]"');
    return { kind: 'array', at, items };
  }

  /** Scans a string token; `JSON.parse` of the token then decodes its escapes exactly. */
  #string(): string {
    const start = this.#pos;
    let i = start + 1;
    for (;;) {
      const c = this.#text.charCodeAt(i);
      if (Number.isNaN(c)) this.#fail(start, 'unterminated string');
      if (c < 0x20) this.#fail(i, 'control character in a string; write it as an escape such as \\n');
      if (c === 0x22) break;
      i += c === 0x5c ? 2 : 1;
    }
    this.#pos = i + 1;
    const token = this.#text.slice(start, this.#pos);
    try {
      return JSON.parse(token) as string;
    } catch {
      return this.#fail(start, 'invalid escape in a string');
    }
  }

  #number(): JsonValue {
    const at = this.#pos;
    const match = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
    match.lastIndex = at;
    const found = match.exec(this.#text);
    if (found === null) return this.#unexpected('a number');
    this.#pos = at + found[0].length;
    return { kind: 'number', at, text: found[0] };
  }

  #skipSpace(): void {
    const space = /[ \t\n\r]*/y;
    space.lastIndex = this.#pos;
    space.exec(this.#text);
    this.#pos = space.lastIndex;
  }

  #eat(char: string): boolean {
    if (this.#text[this.#pos] !== char) return false;
    this.#pos++;
    return true;
  }

  #unexpected(expected: string): never {
    const c = this.#text[this.#pos];
    const got = c === undefined ? 'the end of the file' : JSON.stringify(c);
    return this.#fail(this.#pos, `expected ${expected}, got ${got}`);
  }
}
