/**
 * `emperor top` in a real terminal (a private tmux server), `emperor stats` as text and
 * JSON, and `top` into a pipe, against a running vassal.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { EMPEROR_BIN, FIXTURES, descendants, httpGet, isAlive, serving, startVassal, statsUntil, tempDir, waitFor, type VassalStatsDoc } from '../helpers/index.js';

const run = promisify(execFile);
const APP = join(FIXTURES, 'apps', 'basic.mjs');

async function twoWorkers(t: TestContext): Promise<{ stats: string; doc: VassalStatsDoc; url: string }> {
  const v = await startVassal(t, (port) => `http-socket = 127.0.0.1:${port}\nmodule = ${APP}\nprocesses = 2`);
  await serving(`${v.url}/`);
  for (let i = 0; i < 5; i++) await httpGet(`${v.url}/`);
  const doc = await statsUntil(v.stats, (d) => d.workers.length === 2 && d.workers.every((w) => w.pid > 0 && w.accepting === 1) && d.workers.reduce((a, w) => a + w.requests, 0) >= 6);
  return { stats: v.stats, doc, url: v.url };
}

/**
 * A private tmux server (its own socket in its own temp dir). After the test it is killed
 * with every process in its panes, by PID, before its directory is removed.
 */
function tmux(t: TestContext): (...args: string[]) => string {
  const dir = mkdtempSync(join(tmpdir(), 'emperor-tmux-'));
  const socket = join(dir, 'tmux.sock');
  const call = (...args: string[]): string => execFileSync('tmux', ['-S', socket, ...args], { encoding: 'utf8', timeout: 10_000 });
  t.after(() => {
    let pids: number[] = [];
    try {
      pids = call('list-panes', '-a', '-F', '#{pid} #{pane_pid}').split(/\s+/).filter((p) => p !== '').map(Number);
    } catch {
      // the server is gone already (its last session ended)
    }
    const all = [...new Set(pids)].flatMap((pid) => [pid, ...descendants(pid)]);
    try {
      call('kill-server');
    } catch {
      // gone
    }
    for (const pid of all) {
      if (!isAlive(pid)) continue;
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    rmSync(dir, { recursive: true, force: true });
  });
  return call;
}

test('emperor top in a real terminal: the workers, a sort key, a resize, and q restores the terminal', async (t) => {
  const { stats, doc } = await twoWorkers(t);
  const dir = tempDir(t);
  const status = join(dir, 'status');
  const tm = tmux(t);
  const command = `${process.execPath} ${EMPEROR_BIN} top ${stats} --interval 0.3; echo "exit=$?" > ${status}`;
  tm('new-session', '-d', '-s', 'top', '-x', '120', '-y', '30', command);
  // The pane outlives its command, so the screen after q can still be captured.
  tm('set-option', '-t', 'top', 'remain-on-exit', 'on');
  const pane = (): string => tm('capture-pane', '-p', '-t', 'top');
  const pids = doc.workers.map((w) => String(w.pid));
  const screen = await waitFor(() => {
    const text = pane();
    return /^\s*WID\s+%\s+PID\s+REQ\s+RPS/m.test(text) && pids.every((p) => text.includes(p)) && /^\s*1\s+\S+\s+\d+\s+\d+\s+\d+/m.test(text) ? text : undefined;
  }, { message: 'top showing both workers with requests per second', timeoutMs: 15_000 });
  assert.match(screen, /^v\.ini · state ready · version \S+ · master pid \d+/m);
  assert.match(screen, /sort: WID ▲ {3}s: next column {3}r: reverse {3}q: quit/);
  assert.match(screen, /LastSpwn/, '120 columns fit every column');

  tm('send-keys', '-t', 'top', 's');
  await waitFor(() => pane().includes('sort: % ▼'), { message: 'the footer showing the next sort column' });

  tm('resize-window', '-t', 'top', '-x', '64', '-y', '20');
  const narrow = await waitFor(() => {
    const text = pane();
    return /^\s*WID\s/m.test(text) && !text.includes('LastSpwn') ? text : undefined;
  }, { message: 'a narrower table after the resize' });
  for (const line of narrow.split('\n')) assert.ok(line.trimEnd().length <= 64, line);

  tm('send-keys', '-t', 'top', 'q');
  await waitFor(() => existsSync(status) && readFileSync(status, 'utf8').trim() === 'exit=0', { message: 'top exiting 0 after q' });
  // Back on the main screen: the live view is gone from the pane.
  assert.doesNotMatch(pane(), /WID\s+%\s+PID/);
});

test('emperor stats prints the same text as top into a pipe; --json prints the document', async (t) => {
  const { stats, doc } = await twoWorkers(t);
  const text = (await run(process.execPath, [EMPEROR_BIN, 'stats', stats])).stdout;
  assert.match(text, /^v\.ini · state ready · version \S+ · master pid \d+ · /);
  assert.match(text, /^WID\s+%\s+PID\s+REQ\s+RPS\s+EXC\s+SIG\s+STATUS\s+AVG\s+RSS\s+VSZ\s+TX\s+ReSpwn\s+HC\s+RunT\s+LastSpwn$/m);
  for (const w of doc.workers) assert.match(text, new RegExp(`^\\s*${w.id}\\s+[\\d.]+\\s+${w.pid}\\s`, 'm'));
  const piped = (await run(process.execPath, [EMPEROR_BIN, 'top', stats])).stdout;
  // The same layout; memory may have been sampled anew in between, so compare ids and pids.
  const table = (out: string): string[] => out.split('\n').slice(4).map((l) => l.trim().split(/\s+/).slice(0, 4).join(' '));
  assert.deepEqual(table(piped), table(text));
  const json = JSON.parse((await run(process.execPath, [EMPEROR_BIN, 'stats', stats, '--json'])).stdout) as VassalStatsDoc;
  assert.deepEqual(json.workers.map((w) => w.pid).sort(), doc.workers.map((w) => w.pid).sort());
});

test('emperor stats and top on an address where nothing listens: one line on stderr, exit 1', async (t) => {
  const nothing = join(tempDir(t), 'nothing.sock');
  for (const command of ['stats', 'top']) {
    await assert.rejects(run(process.execPath, [EMPEROR_BIN, command, nothing]), (err: { code: number; stderr: string }) => {
      assert.equal(err.code, 1);
      assert.match(err.stderr, new RegExp(`^emperor: stats ${nothing}: connect ENOENT`));
      assert.equal(err.stderr.trim().split('\n').length, 1);
      return true;
    });
  }
});
