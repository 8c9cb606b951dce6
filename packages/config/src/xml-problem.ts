/**
 * What is wrong with an XML file that does not parse, in words a person can act on:
 * `<processes> is not closed`, on the line where `<processes>` opens, rather than the
 * parser's "Expected closing tag 'processes' (opened in line 4, col 3) instead of closing
 * tag 'uwsgi'" on the line of `</uwsgi>`.
 *
 * A small scan of the markup (tags, comments, CDATA, processing instructions, the
 * DOCTYPE, `&` references) that keeps the open elements on a stack with their lines. It
 * is run only on text the validator refused, and reports the first problem in document
 * order; what it does not recognise is left to the validator's own message.
 */

/** A problem found by {@link describeXmlProblem}: its 1-based line and one sentence. */
export interface XmlProblem {
  readonly line: number;
  readonly problem: string;
}

interface Open {
  readonly name: string;
  readonly line: number;
}

/** XML 1.0 name characters, restricted to what an option name can be (ASCII) plus any non-ASCII letter. */
const NAME_START = /[A-Za-z_:\u00c0-\uffff]/;
const NAME = /^[A-Za-z_:\u00c0-\uffff][A-Za-z0-9_:.\-\u00b7\u00c0-\uffff]*$/;
const REFERENCE = /&(?:#x[0-9a-fA-F]+|#[0-9]+|[A-Za-z_:][\w.:-]*);/y;
const SPACE = /\s/;

/**
 * The first well-formedness problem of `text`, or `undefined` when this scan finds none.
 * @param text the whole document (a leading BOM already dropped)
 * @param lineOf the 1-based line of a 0-based offset in `text`
 */
export function describeXmlProblem(text: string, lineOf: (offset: number) => number): XmlProblem | undefined {
  const stack: Open[] = [];
  let rootSeen = false;
  let i = 0;
  const at = (offset: number, problem: string): XmlProblem => ({ line: lineOf(offset), problem });
  while (i < text.length) {
    const c = text[i] as string;
    if (c === '<') {
      if (text.startsWith('<!--', i)) {
        const end = text.indexOf('-->', i + 4);
        if (end === -1) return at(i, 'a comment (<!--) is not closed: no --> after it');
        i = end + 3;
        continue;
      }
      if (text.startsWith('<![CDATA[', i)) {
        const end = text.indexOf(']]>', i + 9);
        if (end === -1) return at(i, '<![CDATA[ is not closed: no ]]> after it');
        i = end + 3;
        continue;
      }
      if (text.startsWith('<?', i)) {
        const end = text.indexOf('?>', i + 2);
        if (end === -1) return at(i, '<? is not closed: no ?> after it');
        i = end + 2;
        continue;
      }
      if (text.startsWith('<!', i)) {
        const end = declarationEnd(text, i + 2);
        if (end === -1) return at(i, `${text.slice(i, i + 9).split(/\s/)[0] ?? '<!'} is not closed: no > after it`);
        i = end + 1;
        continue;
      }
      if (text[i + 1] === '/') {
        const name = /^[^\s>]*/.exec(text.slice(i + 2))?.[0] ?? '';
        const close = /^\s*>/.exec(text.slice(i + 2 + name.length));
        if (name === '') return at(i, 'a "</" without an element name; write &lt; for a < in a value');
        if (close === null) return at(i, `</${name} is not finished: expected >`);
        const top = stack.at(-1);
        if (top === undefined) return at(i, `</${name}> closes nothing: no <${name}> is open here`);
        if (top.name !== name) {
          if (stack.some((open) => open.name === name)) {
            const where = lineOf(i) === top.line ? `</${name}> comes first` : `</${name}> on line ${lineOf(i)} comes first`;
            return { line: top.line, problem: `<${top.name}> is not closed (${where})` };
          }
          return at(i, `</${name}> does not match <${top.name}>, opened on line ${top.line}`);
        }
        stack.pop();
        i += 2 + name.length + close[0].length;
        continue;
      }
      // A start tag.
      if (!NAME_START.test(text[i + 1] ?? '')) return at(i, 'a "<" that starts no element; write &lt; for a < in a value');
      const name = /^[^\s>/]*/.exec(text.slice(i + 1))?.[0] ?? '';
      if (!NAME.test(name)) {
        return at(i, `<${name} is not a valid element name${name.includes('<') ? '; write &lt; for a < in a value' : ''}`);
      }
      const end = tagEnd(text, i + 1 + name.length);
      if (end === -1) return at(i, `<${name} is not finished: expected >`);
      if (stack.length === 0) {
        if (rootSeen) return at(i, 'more than one root element; expected only <uwsgi>');
        rootSeen = true;
      }
      if (text[end - 1] !== '/') stack.push({ name, line: lineOf(i) });
      i = end + 1;
      continue;
    }
    if (c === '&') {
      REFERENCE.lastIndex = i;
      if (!REFERENCE.test(text)) return at(i, 'a bare "&"; write &amp; for an & in a value');
      i = REFERENCE.lastIndex;
      continue;
    }
    if (stack.length === 0 && !SPACE.test(c)) {
      return at(i, rootSeen ? 'content after </uwsgi>' : 'text before <uwsgi>; the file must be one <uwsgi> element');
    }
    i++;
  }
  const top = stack.at(-1);
  if (top !== undefined) return { line: top.line, problem: `<${top.name}> is not closed (the file ends first)` };
  if (!rootSeen) return { line: 1, problem: 'no root element; expected <uwsgi>' };
  return undefined;
}

/** Offset of the `>` ending a start tag whose attributes begin at `from`, past quoted values; -1 if none. */
function tagEnd(text: string, from: number): number {
  let quote = '';
  for (let i = from; i < text.length; i++) {
    const c = text[i];
    if (quote !== '') {
      if (c === quote) quote = '';
    } else if (c === '"' || c === "'") {
      quote = c;
    } else if (c === '>') {
      return i;
    } else if (c === '<') {
      return -1;
    }
  }
  return -1;
}

/** Offset of the `>` ending a `<!DOCTYPE ...>` (with its `[...]` internal subset), -1 if none. */
function declarationEnd(text: string, from: number): number {
  let depth = 0;
  for (let i = from; i < text.length; i++) {
    const c = text[i];
    if (c === '[') depth++;
    else if (c === ']') depth--;
    else if (c === '>' && depth <= 0) return i;
  }
  return -1;
}
