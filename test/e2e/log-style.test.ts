/**
 * End to end: event lines as text or JSON (`log-style`, issue 22 point 6). The emperor
 * decides, its masters and their workers (Node and Python) follow, a vassal's own
 * `log-style` wins for that vassal, and `auto` writes text when stderr is the systemd
 * journal (JOURNAL_STREAM names it) and JSON on a plain file or pipe.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { EMPEROR_BIN, FIXTURES, descendants, freePort, isAlive, serving, spawnEmperor, tempDir, waitFor } from '../helpers/index.js';

const APP = join(FIXTURES, 'apps', 'basic.mjs');
/** A text event line: local time, level, the process's head. */
const TEXT = /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} (TRACE|DEBUG|INFO|WARN|ERROR|FATAL) \[pid: \d+(\|[^\]]*)?\] /;

interface EventLine {
  readonly style: 'text' | 'json';
  readonly line: string;
}

/** Each line of `text` that is an event line of either style. */
function events(text: string): EventLine[] {
  return text.split('\n').flatMap((line): EventLine[] => {
    if (TEXT.test(line)) return [{ style: 'text', line }];
    try {
      const o = JSON.parse(line) as { level?: unknown };
      return typeof o === 'object' && o !== null && typeof o.level === 'number' ? [{ style: 'json', line }] : [];
    } catch {
      return [];
    }
  });
}

/**
 * Runs the emperor with its stderr on a file, as systemd gives a service the journal (a
 * stream whose dev:ino is in JOURNAL_STREAM). Ended by pid, with every descendant.
 */
function emperorToFile(t: TestContext, args: readonly string[], env: NodeJS.ProcessEnv, log: string): void {
  const fd = openSync(log, 'a');
  const child = spawn(process.execPath, [EMPEROR_BIN, ...args], { stdio: ['ignore', 'ignore', fd], env: { ...process.env, EMPEROR_LOG_STYLE: undefined, ...env } });
  closeSync(fd);
  const pid = child.pid ?? 0;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  t.after(async () => {
    const tree = descendants(pid);
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    }
    for (const p of [...tree, ...descendants(pid)]) if (isAlive(p)) process.kill(p, 'SIGKILL');
  });
}

test('log-style = text: the emperor, its masters and their Node and Python workers write text; a vassal\'s own log-style wins', async (t) => {
  const dir = tempDir(t);
  const [node, json] = [await freePort(), await freePort()];
  writeFileSync(join(dir, 'node.ini'), `[uwsgi]\nhttp-socket = 127.0.0.1:${node}\nmodule = ${APP}\n`);
  writeFileSync(join(dir, 'json.ini'), `[uwsgi]\nhttp-socket = 127.0.0.1:${json}\nmodule = ${APP}\nlog-style = json\n`);
  // A Python app that cannot load, imported by its worker (lazy-apps): the worker logs the traceback.
  writeFileSync(join(dir, 'py.ini'), `[uwsgi]\nhttp-socket = 127.0.0.1:${await freePort()}\nplugin = python3\nmodule = no_such_module_x\nlazy-apps = true\n`);
  const emperor = spawnEmperor(t, ['--emperor', dir, '--log-style', 'text']);
  await serving(`http://127.0.0.1:${node}/`);
  await serving(`http://127.0.0.1:${json}/`);
  const raw = (): string => emperor.logs.lines.map((l) => l.raw).join('\n');
  await waitFor(() => /ModuleNotFoundError/.test(raw()), { message: 'the Python worker\'s error', timeoutMs: 20_000 });

  const lines = events(raw());
  const of = (pattern: RegExp): EventLine[] => lines.filter((e) => pattern.test(e.line));
  assert.ok(of(/emperor started, watching/).every((e) => e.style === 'text') && of(/emperor started/).length === 1, 'the emperor: text');
  const emperorLine = of(/emperor started, watching/)[0]?.line ?? '';
  assert.match(emperorLine, /^\S+ \S+ INFO \[pid: \d+\|emperor\] emperor started, watching /);
  const nodeMaster = of(/vassal master started/).filter((e) => /node\.ini/.test(e.line));
  assert.deepEqual(nodeMaster.map((e) => e.style), ['text'], 'node.ini\'s master: text');
  assert.match(nodeMaster[0]?.line ?? '', /\[pid: \d+\|vassal: node\.ini\] vassal master started: 1 worker\(s\) on http:\/\/127\.0\.0\.1:\d+ \| sockets=/);
  const jsonMaster = of(/vassal master started/).filter((e) => /json\.ini/.test(e.line));
  assert.deepEqual(jsonMaster.map((e) => e.style), ['json'], 'json.ini says log-style = json: its master writes JSON');
  const python = of(/cannot load|ModuleNotFoundError/).filter((e) => /py\.ini/.test(e.line));
  assert.ok(python.length > 0 && python.every((e) => e.style === 'text'), `py.ini's worker: text\n${raw()}`);
  assert.match(python[0]?.line ?? '', /^\S+ \S+ ERROR \[pid: \d+\|vassal: py\.ini\|worker: 1\] .* \| .*err="ModuleNotFoundError: No module named 'no_such_module_x'"/);
  // The traceback follows its line, indented, not as JSON.
  assert.match(raw(), /\n {4}Traceback \(most recent call last\):\n/);
});

test('log-style = auto: text when stderr is the journal (JOURNAL_STREAM), for the emperor and every vassal; JSON on a plain file', async (t) => {
  /** Runs an emperor on a fresh directory with one vassal, its stderr on a file; returns that file's event lines once the vassal is ready. */
  const runOnce = async (journal: boolean): Promise<EventLine[]> => {
    const dir = tempDir(t);
    const port = await freePort();
    writeFileSync(join(dir, 'hello.ini'), `[uwsgi]\nhttp-socket = 127.0.0.1:${port}\nmodule = ${APP}\n`);
    const log = join(dir, 'stderr.log');
    writeFileSync(log, '');
    // systemd sets JOURNAL_STREAM to the dev:ino of the stream it gives the service as stderr.
    const { dev, ino } = statSync(log);
    emperorToFile(t, ['--emperor', dir], journal ? { JOURNAL_STREAM: `${dev}:${ino}` } : {}, log);
    await serving(`http://127.0.0.1:${port}/`);
    await waitFor(() => /vassal ready/.test(readFileSync(log, 'utf8')), { message: 'the vassal\'s lines' });
    return events(readFileSync(log, 'utf8'));
  };
  const plain = await runOnce(false);
  assert.ok(plain.length >= 3 && plain.every((e) => e.style === 'json'), `a plain file: JSON\n${plain.map((e) => e.line).join('\n')}`);
  const text = await runOnce(true);
  assert.ok(text.some((e) => /\|emperor\] emperor started/.test(e.line)), 'the emperor\'s line');
  assert.ok(text.some((e) => /\|vassal: hello\.ini\] vassal master started/.test(e.line)), 'the master\'s line');
  assert.ok(text.some((e) => /\|vassal: hello\.ini\|worker: 1\] /.test(e.line)), 'a line about the worker');
  assert.ok(text.every((e) => e.style === 'text'), `the journal: text\n${text.map((e) => e.line).join('\n')}`);
});
