import { test } from 'node:test';
import assert from 'node:assert/strict';
import { OPTIONS, OPTION_GROUPS, UNSUPPORTED_UWSGI_OPTIONS, findOption, findUnsupportedOption, suggestOptionName } from '@emperor/config';

test('every option name and alias is unique and not also listed as unsupported', () => {
  const names = OPTIONS.flatMap((spec) => [spec.name, ...spec.aliases]);
  assert.equal(new Set(names).size, names.length);
  const unsupported = UNSUPPORTED_UWSGI_OPTIONS.map((entry) => entry.name);
  assert.equal(new Set(unsupported).size, unsupported.length);
  assert.deepEqual(unsupported.filter((name) => names.includes(name)), []);
  assert.ok(unsupported.length >= 120, `only ${unsupported.length} unsupported options`);
  for (const name of ['gevent', 'thunder-lock', 'post-buffering', 'static-map', 'route', 'logger', 'log-encoder', 'req-logger',
    'spooler', 'mule', 'cron', 'attach-daemon', 'emperor-cap', 'unshare', 'chroot', 'procname', 'auto-procname', 'py-autoreload',
    'worker-mount', 'vhost', 'http', 'https', 'fastcgi-nph-socket', 'scgi-socket', 'memory-report',
    'emperor-use-clone', 'emperor-broodlord', 'vassals-include', 'offload-threads']) {
    assert.ok(findUnsupportedOption(name), name);
  }
  for (const name of ['emperor-on-demand-extension', 'emperor-on-demand-ext', 'emperor-on-demand-directory', 'emperor-on-demand-dir', 'emperor-on-demand-exec', 'idle', 'die-on-idle', 'cheap']) {
    assert.ok(findOption(name), `${name} is supported`);
  }
});

test('every option is in a documented group, and every default parses as its type', () => {
  const groups = new Set(OPTION_GROUPS.map((g) => g.group));
  for (const spec of OPTIONS) {
    assert.ok(groups.has(spec.group), spec.name);
    assert.ok(spec.doc.length > 0, spec.name);
    if (spec.type === 'uint' && spec.default !== undefined) {
      const n = Number(spec.default);
      assert.ok(/^\d+$/.test(spec.default) && n >= (spec.min ?? 0) && n <= (spec.max ?? Number.MAX_SAFE_INTEGER), spec.name);
    }
    // A flag is off by default, unless Emperor always has it on (fixed: accepted, no effect).
    if (spec.type === 'bool') assert.equal(spec.default, spec.fixed === true ? 'true' : 'false', spec.name);
    if (spec.fixed === true) assert.match(spec.doc, /^Accepted\b/, `${spec.name}: a fixed option says it is accepted with no effect`);
    if (spec.type === 'choice') assert.ok(spec.default !== undefined && spec.choices?.includes(spec.default), spec.name);
  }
});

test('defaults and units are uWSGI\'s', () => {
  const row = (name: string) => {
    const spec = findOption(name);
    assert.ok(spec, name);
    return [spec.default, spec.unit];
  };
  assert.deepEqual(row('listen'), ['100', undefined]);
  assert.deepEqual(row('buffer-size'), ['4096', 'bytes']);
  assert.deepEqual(row('worker-reload-mercy'), ['60', 'seconds']);
  assert.deepEqual(row('min-worker-lifetime'), ['10', 'seconds']);
  assert.deepEqual(row('harakiri'), ['0', 'seconds']);
  assert.deepEqual(row('limit-as'), ['0', 'megabytes']);
  assert.deepEqual(row('reload-on-rss'), ['0', 'megabytes']);
  assert.deepEqual(row('cheaper-rss-limit-soft'), ['0', 'bytes']);
  assert.deepEqual(row('log-slow'), ['0', 'milliseconds']);
  assert.deepEqual(row('emperor-freq'), ['3', 'seconds']);
  assert.deepEqual(row('emperor-throttle'), ['1000', 'milliseconds']);
  assert.deepEqual(row('emperor-max-throttle'), ['180000', 'milliseconds']);
  assert.deepEqual(row('emperor-required-heartbeat'), ['30', 'seconds']);
  assert.deepEqual(row('cheaper-overload'), ['3', undefined]);
  assert.deepEqual(row('cheaper-busyness-max'), ['50', 'percent']);
  assert.deepEqual(row('cheaper-busyness-min'), ['25', 'percent']);
  assert.deepEqual(row('cheaper-busyness-multiplier'), ['10', undefined]);
  assert.deepEqual(row('cheaper-busyness-penalty'), ['2', undefined]);
  assert.deepEqual(row('cheaper-busyness-backlog-alert'), ['33', undefined]);
  assert.deepEqual(row('cheaper-busyness-backlog-multiplier'), ['3', undefined]);
  assert.deepEqual(row('cheaper-busyness-backlog-step'), ['1', undefined]);
  assert.deepEqual(row('cheaper-busyness-backlog-nonzero'), ['60', 'seconds']);
  assert.deepEqual(row('heartbeat'), ['10', 'seconds']);
  assert.deepEqual(findOption('cheaper-algo')?.choices, ['spare', 'backlog', 'busyness']);
});

test('aliases and scopes', () => {
  const canonical = (name: string) => findOption(name)?.name;
  assert.deepEqual(
    ['workers', 'plugins', 'python-path', 'virtualenv', 'venv', 'pyhome', 'stats-server', 'stats-min', 'set-ph', 'emperor-stats-server', 'file', 'wsgi'].map(canonical),
    ['processes', 'plugin', 'pythonpath', 'home', 'home', 'home', 'stats', 'stats-minified', 'set-placeholder', 'emperor-stats', 'wsgi-file', 'module'],
  );
  assert.deepEqual(['pidfile', 'die-on-term', 'strict', 'set-placeholder'].map((n) => findOption(n)?.scope), ['both', 'both', 'both', 'both']);
  assert.deepEqual(['emperor', 'vassals-inherit', 'emperor-pidfile'].map((n) => findOption(n)?.scope), ['emperor', 'emperor', 'emperor']);
  assert.equal(findOption('harakiri')?.scope, 'vassal');
  assert.equal(findOption('Harakiri'), undefined, 'names are case-sensitive, as in uWSGI');
});

test('suggestions: the closest known name within 2 edits', () => {
  assert.equal(suggestOptionName('harakiry'), 'harakiri');
  assert.equal(suggestOptionName('proceses'), 'processes');
  assert.equal(suggestOptionName('http-sockett'), 'http-socket');
  assert.equal(suggestOptionName('workres'), 'workers');
  assert.equal(suggestOptionName('completely-different'), undefined);
  assert.equal(suggestOptionName('ui'), 'uid');
  assert.equal(suggestOptionName('x'), undefined);
  assert.equal(suggestOptionName('xy'), undefined);
});

/**
 * Every uWSGI option with "log" in its name: the `{"name"` entries of the option tables
 * of core/uwsgi.c and the plugins (unbit/uwsgi master, which 2.0.21 shares for these).
 */
const UWSGI_LOG_OPTIONS = `alarm-log disable-logging ini-paste-logged log log-4xx log-5xx log-alarm log-backupname log-big
  log-date log-drain log-encoder log-filter log-format log-format-strftime log-ioerror log-master log-master-bufsize
  log-master-req-stream log-master-stream log-maxsize log-micros log-prefix log-reopen log-req-encoder log-req-route
  log-route log-sendfile log-slow log-socket log-syslog log-truncate log-x-forwarded-for log-zero log-zeromq logdate
  logfile-chmod logfile-chown logformat logformat-strftime logger logger-list logger-req loggers-list logsize logto logto2
  not-alarm-log not-log-alarm notfound-log paste-logger pty-log req-logger syslog threaded-logger touch-logreopen
  touch-logrotate worker-log-encoder worker-log-req-encoder worker-logger worker-logger-req`.split(/\s+/);

test('log-style, the event line style, is no uWSGI option; log-format stays uWSGI\'s request line template (issue 22, point 6)', () => {
  assert.ok(!UWSGI_LOG_OPTIONS.includes('log-style'), 'log-style would change the meaning of a uWSGI file');
  assert.equal(findUnsupportedOption('log-style'), undefined);
  const style = findOption('log-style');
  assert.deepEqual([style?.scope, style?.type, style?.choices, style?.default], ['both', 'choice', ['auto', 'text', 'json'], 'auto']);
  assert.match(style?.doc ?? '', /Emperor's addition/);
  assert.match(findOption('log-format')?.doc ?? '', /^Request log line template with uWSGI's `%\(var\)` variables/);
  // Each of uWSGI's logging options is ours with its meaning, or reported as unsupported, or unknown: never log-style.
  for (const name of UWSGI_LOG_OPTIONS) assert.notEqual(findOption(name)?.name, 'log-style', name);
});
