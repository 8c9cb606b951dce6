/**
 * Event lines as text or JSON (`log-style`, issue 22 point 6): which style `auto` picks,
 * what a text line looks like, and that the Python worker writes the same bytes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { LOG_STYLE_ENV, createLogger, formatTextLine, resolveLogStyle, type LogStyleContext } from '@emperor/process';
import { ROOT } from '../../helpers/index.js';

const context = (over: Partial<LogStyleContext> = {}): LogStyleContext => ({ env: {}, isTTY: false, stderrId: '2049:1234', ...over });

test('auto: text under systemd (JOURNAL_STREAM is our stderr) and on a terminal, JSON otherwise; a pinned or explicit style wins', () => {
  assert.equal(resolveLogStyle('auto', context()), 'json', 'a pipe: for machines');
  assert.equal(resolveLogStyle('auto', context({ isTTY: true })), 'text', 'a terminal');
  assert.equal(resolveLogStyle('auto', context({ env: { JOURNAL_STREAM: '2049:1234' } })), 'text', 'the journal');
  // A service that redirects its stderr elsewhere inherits JOURNAL_STREAM: systemd.exec(5) says to compare.
  assert.equal(resolveLogStyle('auto', context({ env: { JOURNAL_STREAM: '2049:9999' } })), 'json', 'stderr is not the journal');
  assert.equal(resolveLogStyle('auto', context({ env: { JOURNAL_STREAM: '2049:1234', [LOG_STYLE_ENV]: 'json' } })), 'json', 'what the parent pinned');
  assert.equal(resolveLogStyle('auto', context({ isTTY: true, env: { [LOG_STYLE_ENV]: 'bogus' } })), 'text', 'a bad pin is ignored');
  assert.equal(resolveLogStyle('json', context({ isTTY: true })), 'json', 'log-style = json');
  assert.equal(resolveLogStyle('text', context({ env: { [LOG_STYLE_ENV]: 'json' } })), 'text', 'log-style = text beats the pin');
});

/** 2026-12-06 13:42:01.123 local time, as epoch ms. */
const T = new Date(2026, 11, 6, 13, 42, 1, 123).getTime();

test('a text line: local time, level, [pid: N|role|vassal: X|worker: N], the message, then the other fields', () => {
  assert.equal(
    formatTextLine({ level: 30, time: T, pid: 4242, vassal: 'shop.ini', worker: 2, worker_pid: 4250, generation: 1, msg: 'spawned worker 2 (pid 4250)' }),
    '2026-12-06 13:42:01.123 INFO [pid: 4242|vassal: shop.ini|worker: 2] spawned worker 2 (pid 4250) | worker_pid=4250 generation=1\n',
  );
  assert.equal(
    formatTextLine({ level: 40, time: T, pid: 1, role: 'emperor', vassal: 'blog.xml', msg: 'vassal blog.xml has an invalid file' }),
    '2026-12-06 13:42:01.123 WARN [pid: 1|emperor|vassal: blog.xml] vassal blog.xml has an invalid file\n',
  );
  // Values that would make the line ambiguous are JSON; objects are compact JSON; a message stays on its line.
  assert.equal(
    formatTextLine({ level: 50, time: T, pid: 7, msg: 'two\nlines\tand\u0001', file: '/srv/my app/x.ini', sockets: [':80'], empty: '', ok: true, none: null }),
    '2026-12-06 13:42:01.123 ERROR [pid: 7] two\\nlines\\tand\\x01 | file="/srv/my app/x.ini" sockets=[":80"] empty="" ok=true none=null\n',
  );
  // An error: its type and message on the line, its stack on the lines after, indented.
  assert.equal(
    formatTextLine({ level: 50, time: T, pid: 7, vassal: 'py.ini', worker: 1, err: { type: 'ImportError', message: 'No module named x', stack: 'Traceback (most recent call last):\n  File "a.py", line 1\nImportError: No module named x' }, msg: 'cannot load app' }),
    '2026-12-06 13:42:01.123 ERROR [pid: 7|vassal: py.ini|worker: 1] cannot load app | err="ImportError: No module named x"\n' +
      '    Traceback (most recent call last):\n      File "a.py", line 1\n    ImportError: No module named x\n',
  );
});

test('createLogger writes text or JSON as its style says (pino-pretty is not used)', () => {
  const lines: string[] = [];
  const destination = { write: (line: string) => void lines.push(line) };
  createLogger({ vassal: 'shop.ini' }, { style: 'text', destination }).info({ port: 8080 }, 'listening');
  createLogger({ vassal: 'shop.ini' }, { style: 'json', destination }).info({ port: 8080 }, 'listening');
  assert.match(lines[0] ?? '', /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} INFO \[pid: \d+\|vassal: shop\.ini\] listening \| port=8080\n$/);
  assert.deepEqual(Object.keys(JSON.parse(lines[1] ?? '{}') as object), ['level', 'time', 'pid', 'vassal', 'port', 'msg']);
  const { dependencies } = JSON.parse(readFileSync(join(ROOT, 'packages', 'process', 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
  assert.equal(dependencies['pino-pretty'], undefined, 'no pino-pretty in production');
});

test('the Python worker\'s text lines are the same bytes as the Node tiers\' (one format, two languages)', () => {
  const records: Record<string, unknown>[] = [
    { level: 30, time: T, pid: 4242, vassal: 'py.ini', worker: 1, msg: 'worker 1 ready' },
    { level: 40, time: T + 7, pid: 4242, vassal: 'py.ini', worker: 1, stream: 'wsgi.errors', msg: 'a line the app wrote' },
    { level: 50, time: T + 999, pid: 1, vassal: 'café ü.ini', worker: 3, path: '/srv/a b', n: 12, list: [1, 'x'], obj: { a: 'é' }, flag: false, nothing: null, msg: 'tab\there, newline\nthere, bell\u0007' },
    { level: 60, time: T, pid: 9, vassal: 'py.ini', worker: 2, err: { type: 'ValueError', message: 'bad "value"', stack: 'Traceback (most recent call last):\n  File "app.py", line 3, in <module>\nValueError: bad "value"' }, msg: 'cannot load app' },
    { level: 30, time: T, pid: 9, vassal: 'py.ini', worker: 2, eq: 'a=b', pipe: 'a|b', quote: 'say "hi"', back: 'C:\\x', nbsp: 'a\u00a0b', msg: '' },
  ];
  const script = [
    'import importlib.util, json, sys',
    'spec = importlib.util.spec_from_file_location("emperor_worker_log", sys.argv[1])',
    'mod = importlib.util.module_from_spec(spec)',
    'spec.loader.exec_module(mod)',
    'for record in json.loads(sys.stdin.read()):',
    '    sys.stdout.write(mod.Log.format_text(record))',
  ].join('\n');
  const python = execFileSync('python3', ['-c', script, join(ROOT, 'packages', 'vassal', 'python', 'emperor_worker', 'log.py')], { input: JSON.stringify(records), encoding: 'utf8' });
  assert.equal(python, records.map(formatTextLine).join(''));
});
