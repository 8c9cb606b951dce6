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

test('XML: syntax errors carry the validator\'s line', () => {
  fails('<uwsgi>\n  <socket>:80\n</uwsgi>', '3: expected closing tag </socket>, got </uwsgi>');
  fails('<uwsgi>\n<master/>\n', '1: unclosed tag <uwsgi>');
  fails('<uwsgi>\n<env>a & b</env></uwsgi>', "2: char '&' is not expected");
  fails('', '1: no root element; expected <uwsgi>');
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
