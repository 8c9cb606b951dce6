import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigParseError } from '@emperor/config';
import { pairs, parse, throwsExactly } from './helpers.js';

const BAD = 'emperor.d/bad.xml';
const xml = (text: string) => parse(text, 'xml', BAD);
const fails = (text: string, message: string) => throwsExactly(() => xml(text), ConfigParseError, `${BAD}:${message}`);

test('XML: children of <uwsgi> are options; empty elements mean "1"; lines from element starts', () => {
  const raw = xml([
    '<?xml version="1.0"?>',
    '<!-- a comment -->',
    '<uwsgi id="ignored">',
    '  <master/>',
    '  <no-orphans></no-orphans>',
    '  <socket>:8080</socket>',
    '  <socket>',
    '    /run/shop.sock',
    '  </socket>',
    '  <env>A=&lt;&amp;&gt;&quot;&apos;&#65;&#x42;</env>',
    '  <env><![CDATA[B=<&>]]></env>',
    '  <chdir>/srv<!-- inline -->/shop</chdir>',
    '</uwsgi>',
    '<!-- trailing comment -->',
  ].join('\n'));
  assert.deepEqual(pairs(raw), [
    [4, 'master', '1'],
    [5, 'no-orphans', '1'],
    [6, 'socket', ':8080'],
    [7, 'socket', '/run/shop.sock'],
    [10, 'env', 'A=<&>"\'AB'],
    [11, 'env', 'B=<&>'],
    [12, 'chdir', '/srv/shop'],
  ]);
  assert.equal(raw.format, 'xml');
});

test('XML: syntax errors say what to fix, on the line to fix (issue 22, point 7)', () => {
  // The example: the element left open, on its own line, not the parser's
  // "Expected closing tag 'processes' (opened in line 4, col 3) instead of closing tag 'uwsgi'".
  fails('<uwsgi>\n  <socket>:3031</socket>\n  <master/>\n  <processes>4\n</uwsgi>\n', '4: <processes> is not closed (</uwsgi> on line 5 comes first)');
  fails('<uwsgi>\n  <socket>:80</uwsgi>', '2: <socket> is not closed (</uwsgi> comes first)');
  fails('<uwsgi>\n<master/>\n', '1: <uwsgi> is not closed (the file ends first)');
  fails('<uwsgi>\n<socket>:3031</sockt>\n</uwsgi>', '2: </sockt> does not match <socket>, opened on line 2');
  fails('<uwsgi>\n<a>1</a>\n</b>\n</uwsgi>', '3: </b> does not match <uwsgi>, opened on line 1');
  fails('</uwsgi>', '1: </uwsgi> closes nothing: no <uwsgi> is open here');
  fails('<uwsgi>\n<env>a & b</env></uwsgi>', '2: a bare "&"; write &amp; for an & in a value');
  fails('<uwsgi>\n<env>A<B</env>\n</uwsgi>', '2: <B< is not a valid element name; write &lt; for a < in a value');
  fails('<uwsgi>\n<env>a < b</env>\n</uwsgi>', '2: a "<" that starts no element; write &lt; for a < in a value');
  fails('<uwsgi>\n<!-- processes = 4\n<socket>:1</socket>\n</uwsgi>', '2: a comment (<!--) is not closed: no --> after it');
  fails('<uwsgi>\n<socket', '2: <socket is not finished: expected >');
  fails('<uwsgi>\n<socket>:1</socket', '2: </socket is not finished: expected >');
  fails('<uwsgi>\n  <socket>:1\n  <master/>', '2: <socket> is not closed (the file ends first)');
  fails('uwsgi>\n<socket>:1</socket>', '1: text before <uwsgi>; the file must be one <uwsgi> element');
  fails('<uwsgi/>\n<uwsgi/>', '2: more than one root element; expected only <uwsgi>');
  fails('', '1: no root element; expected <uwsgi>');
  // What the scan does not judge keeps the validator's line and words.
  fails('<uwsgi>\n<socket a=b>x</socket>\n</uwsgi>', "2: attribute 'a' is without value");
});

test('XML: wrong root, several roots, content after the root', () => {
  fails('<?xml version="1.0"?>\n<foo>\n<socket>:1</socket>\n</foo>', '2: expected root element <uwsgi>, got <foo>');
  fails('<uwsgi/>\n<uwsgi/>', '2: more than one root element; expected only <uwsgi>');
  fails('<uwsgi/>\njunk', '2: content after </uwsgi>');
});

test('XML: nested elements, text and CDATA directly in <uwsgi> are errors', () => {
  fails('<uwsgi>\n<socket>\n<port>80</port>\n</socket>\n</uwsgi>', '3: <socket> contains element <port>; expected a value');
  fails('<uwsgi>\nstray text\n<master/></uwsgi>', '1: text directly inside <uwsgi>; expected option elements');
  fails('<uwsgi>\n<![CDATA[import os]]></uwsgi>', '1: CDATA directly inside <uwsgi> (uWSGI\'s "eval", which runs code) is not supported');
});

test('XML: any entity declaration is refused before parsing (billion laughs)', () => {
  const laughs = [
    '<?xml version="1.0"?>',
    '<!DOCTYPE uwsgi [',
    ' <!ENTITY lol "lol">',
    ' <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">',
    ']>',
    '<uwsgi><socket>&lol2;</socket></uwsgi>',
  ].join('\n');
  fails(laughs, '3: entity declarations (<!ENTITY) are refused: Emperor never expands DOCTYPE entities');
  fails('<!DOCTYPE uwsgi [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n<uwsgi><a>&x;</a></uwsgi>',
    '1: entity declarations (<!ENTITY) are refused: Emperor never expands DOCTYPE entities');
});

test('XML: only predefined entities and valid character references are decoded', () => {
  fails('<uwsgi>\n<a>&nbsp;</a></uwsgi>', '2: unknown entity &nbsp;; only &lt; &gt; &amp; &quot; &apos; and &#N; are expanded');
  fails('<uwsgi>\n<a>&#0;</a></uwsgi>', '2: character reference &#0; is not a valid XML character');
});

test('XML: prototype-polluting tag names are refused', () => {
  assert.throws(() => xml('<uwsgi><__proto__>1</__proto__></uwsgi>'), (err) => err instanceof ConfigParseError && err.line === 0);
});

test('XML: a file cut anywhere names what is left open, never in the parser\'s words', () => {
  const whole = '<?xml version="1.0"?>\n<!-- shop -->\n<uwsgi>\n  <socket>:3031</socket>\n  <processes>4</processes>\n  <env>A=&amp;</env>\n  <master/>\n</uwsgi>\n';
  let refused = 0;
  for (let end = 0; end < whole.trimEnd().length; end++) {
    try {
      xml(whole.slice(0, end));
    } catch (err) {
      assert.ok(err instanceof ConfigParseError, String(err));
      assert.doesNotMatch(err.message, /Expected closing tag|Unclosed tag|Invalid '\[|is not expected|opened in line/, `cut at ${end}: ${err.message}`);
      assert.ok(err.line > 0, `cut at ${end}: a line: ${err.message}`);
      refused++;
    }
  }
  assert.equal(refused, whole.trimEnd().length, 'every cut is refused');
});
