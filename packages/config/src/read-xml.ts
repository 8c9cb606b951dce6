/**
 * The XML reader, with uWSGI's rules (core/xmlconf.c): the root is `<uwsgi>`, each child
 * element is an option, its text the value, and an empty element (`<master/>`) means "1".
 *
 * Safety: entities are never expanded by the parser (`processEntities: false`). A file that
 * declares any `<!ENTITY` is refused before parsing, so entity-expansion bombs ("billion
 * laughs") and external entities cannot start. We decode only the five predefined entities
 * and numeric character references, ourselves.
 */
import { createRequire } from 'node:module';
import type { XMLMetaData, XMLParser as XMLParserClass, XMLValidator as XMLValidatorApi } from 'fast-xml-parser';
import { ConfigParseError } from './errors.js';
import { clip, lineLocator } from './text.js';
import type { RawOption } from './types.js';
import { describeXmlProblem } from './xml-problem.js';

const ROOT = 'uwsgi';

interface Xml {
  readonly parser: XMLParserClass;
  readonly validator: typeof XMLValidatorApi;
  readonly meta: symbol;
}

let xml: Xml | undefined;
/**
 * fast-xml-parser, loaded the first time an XML file is read, from its single-file
 * CommonJS build: its ESM build is a tree of modules that costs ~9 MB of RSS (measured:
 * 9.3 MB against 1.2 MB), paid by every master and the emperor even for INI files.
 */
function loadXml(): Xml {
  if (xml === undefined) {
    const fxp = createRequire(import.meta.url)('fast-xml-parser') as typeof import('fast-xml-parser');
    const parser = new fxp.XMLParser({
      processEntities: false,
      preserveOrder: true,
      captureMetaData: true,
      parseTagValue: false,
      ignoreDeclaration: true,
      ignorePiTags: true,
      ignoreAttributes: true,
      trimValues: false,
      cdataPropName: '#cdata',
    });
    xml = { parser, validator: fxp.XMLValidator, meta: fxp.XMLParser.getMetaDataSymbol() as unknown as symbol };
  }
  return xml;
}

/** One node of fast-xml-parser's `preserveOrder` output: `{ tag: children }` or `{ '#text': text }`; metadata under a symbol. */
type XmlNode = { readonly [key: string]: XmlNode[] | string | undefined } & { readonly [key: symbol]: XMLMetaData | undefined };

const PREDEFINED_ENTITIES: Readonly<Record<string, string>> = { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" };
const REFERENCE = /&(#x[0-9a-fA-F]+|#[0-9]+|[^;&\s]+);/g;

/**
 * Reads the options of a `<uwsgi>` document, in document order.
 *
 * @throws {ConfigParseError} invalid XML, said as a person can act on it (`<processes> is
 *   not closed`, on the line where it opens; see describeXmlProblem), an `<!ENTITY`
 *   declaration, a root other than `<uwsgi>`, more than one root, content after the root,
 *   text or CDATA directly inside `<uwsgi>` (uWSGI runs CDATA there as code), an element
 *   inside an option element, an unknown entity reference.
 */
export function readXml(text: string, file: string): RawOption[] {
  const lineOf = lineLocator(text);
  const fail = (line: number, problem: string, cause?: unknown): never => {
    throw new ConfigParseError({ file, line }, clip(problem), cause === undefined ? undefined : { cause });
  };

  const entity = /<!ENTITY/i.exec(text);
  if (entity !== null) {
    fail(lineOf(entity.index), 'entity declarations (<!ENTITY) are refused: Emperor never expands DOCTYPE entities');
  }
  const { parser, validator, meta } = loadXml();
  const validation = validator.validate(text);
  if (validation !== true) {
    // The validator only says whether the text is XML: the words come from our own scan,
    // or, for what that scan does not recognise, from the validator's message.
    const found = describeXmlProblem(text, lineOf);
    fail(found?.line ?? validation.err.line, found?.problem ?? describeValidatorMessage(validation.err.msg));
  }

  let document: XmlNode[] = [];
  try {
    document = parser.parse(text) as XmlNode[];
  } catch (err) {
    fail(0, `not accepted by the XML parser: ${err instanceof Error ? err.message : String(err)}`, err);
  }

  const [root, extra] = document.filter((node) => tagOf(node) !== '#text');
  if (root === undefined) return fail(0, `no root element; expected <${ROOT}>`);
  const rootLine = lineOf(root[meta]?.startIndex ?? 0);
  if (extra !== undefined) fail(lineOf(extra[meta]?.startIndex ?? 0), `more than one root element; expected only <${ROOT}>`);
  const rootTag = tagOf(root);
  if (rootTag !== ROOT) fail(rootLine, `expected root element <${ROOT}>, got <${rootTag}>`);
  const trailing = text.slice(root[meta]?.endIndex ?? text.length).replace(/<!--[\s\S]*?-->|<\?[\s\S]*?\?>|\s+/g, '');
  if (trailing !== '') fail(lineOf(text.length - 1), `content after </${ROOT}>`);

  const options: RawOption[] = [];
  for (const node of childrenOf(root)) {
    const tag = tagOf(node);
    if (tag === '#text') {
      if (textOf(node).trim() !== '') fail(rootLine, `text directly inside <${ROOT}>; expected option elements`);
      continue;
    }
    if (tag === '#cdata') fail(rootLine, `CDATA directly inside <${ROOT}> (uWSGI's "eval", which runs code) is not supported`);
    const line = lineOf(node[meta]?.startIndex ?? 0);
    options.push({ file, line, name: tag, value: valueOf(node, line, fail, lineOf) });
  }
  return options;
}

/** The value of an option element: its text and CDATA, trimmed; `"1"` when it has no content at all. */
function valueOf(element: XmlNode, line: number, fail: (line: number, problem: string) => never, lineOf: (offset: number) => number): string {
  const children = childrenOf(element);
  if (children.length === 0) return '1';
  let value = '';
  for (const child of children) {
    const kind = tagOf(child);
    if (kind === '#text') value += decodeReferences(textOf(child), (problem) => fail(line, problem));
    else if (kind === '#cdata') value += childrenOf(child).map(textOf).join('');
    else fail(lineOf(child[loadXml().meta]?.startIndex ?? 0), `<${tagOf(element)}> contains element <${kind}>; expected a value`);
  }
  return value.trim();
}

function decodeReferences(text: string, fail: (problem: string) => never): string {
  return text.replace(REFERENCE, (whole, ref: string) => {
    if (!ref.startsWith('#')) {
      return PREDEFINED_ENTITIES[ref] ?? fail(`unknown entity ${whole}; only &lt; &gt; &amp; &quot; &apos; and &#N; are expanded`);
    }
    const codePoint = ref.startsWith('#x') ? Number.parseInt(ref.slice(2), 16) : Number.parseInt(ref.slice(1), 10);
    if (!isXmlChar(codePoint)) fail(`character reference ${whole} is not a valid XML character`);
    return String.fromCodePoint(codePoint);
  });
}

/** XML 1.0 `Char`: what a character reference may produce. */
function isXmlChar(cp: number): boolean {
  return cp === 0x9 || cp === 0xa || cp === 0xd || (cp >= 0x20 && cp <= 0xd7ff) || (cp >= 0xe000 && cp <= 0xfffd) || (cp >= 0x10000 && cp <= 0x10ffff);
}

function tagOf(node: XmlNode): string {
  return Object.keys(node).find((key) => key !== ':@') ?? '#text';
}

function childrenOf(node: XmlNode): XmlNode[] {
  const children = node[tagOf(node)];
  return Array.isArray(children) ? children : [];
}

function textOf(node: XmlNode): string {
  const text = node['#text'];
  return typeof text === 'string' ? text : '';
}

/** Our phrasing for the validator's most common messages; others pass through, lower-cased. */
function describeValidatorMessage(message: string): string {
  const closing = /^Expected closing tag '(.*)' \(opened in line \d+, col \d+\) instead of closing tag '(.*)'\.$/.exec(message);
  if (closing !== null) return `expected closing tag </${closing[1] ?? ''}>, got </${closing[2] ?? ''}>`;
  const unclosed = /^Unclosed tag '(.*)'\.$/.exec(message);
  if (unclosed !== null) return `unclosed tag <${unclosed[1] ?? ''}>`;
  if (message === 'Start tag expected.') return `no root element; expected <${ROOT}>`;
  return message.charAt(0).toLowerCase() + message.slice(1).replace(/\.$/, '');
}
