/**
 * docs/getting-started.md, followed as written: its code blocks run in bash, in order,
 * with the page's own text. Only what a test cannot take over is changed: the paths it
 * creates live in a temporary root, the fixed ports become free ones, `sudo` runs the
 * command (CI is root), and nginx is a private instance with the page's server block.
 * Steps 1 and 2 install: apt-get only simulates (a test must not change the machine's
 * packages), `REPOSITORY` is this checkout, and `npm link` links into a private prefix.
 * Steps 3 to 7 use the built CLI as `emperor`, on PATH. Step 6 creates the emperor's
 * user (under a name of the test's own, removed after it), installs the shipped systemd
 * unit and /etc/emperor.ini (tyrant mode on) and runs the unit's ExecStart line by hand,
 * as systemd would: as the unit's User= with its AmbientCapabilities=,
 * CapabilityBoundingSet= and NoNewPrivileges= (applied with setpriv). So the page's order
 * (the vassal file chowned before tyrant mode sees it) and its user are tested. A page
 * that drifts from what Emperor does (an option renamed, an output changed, a package, a
 * user or a build step missing) fails here.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, closeSync, existsSync, mkdirSync, openSync, readFileSync, realpathSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { userInfo } from 'node:os';
import { EMPEROR_BIN, FIXTURES, ROOT, descendants, freePort, httpGet, isAlive, spawnProcess, statsOf, tempDir, waitFor, type EmperorStatsDoc, type Spawned } from '../helpers/index.js';
import { startNginx } from '../helpers/nginx.js';

const PAGE = readFileSync(join(ROOT, 'docs', 'getting-started.md'), 'utf8');

/** The page's fenced code blocks, in order. */
const BLOCKS = [...PAGE.matchAll(/^```[a-z]*\n([\s\S]*?)^```$/gm)].map((m) => m[1] as string);

/** The one block that contains `marker`; fails when there is none or more than one. */
function block(marker: string): string {
  const found = BLOCKS.filter((b) => b.includes(marker));
  assert.equal(found.length, 1, `docs/getting-started.md: one code block with ${JSON.stringify(marker)}`);
  return found[0] as string;
}

/** `vMAJOR.MINOR.PATCH` as a number that orders versions. */
function versionNumber(text: string): number {
  const m = /v?(\d+)\.(\d+)\.(\d+)/.exec(text);
  assert.ok(m, `a version in ${JSON.stringify(text)}`);
  return Number(m[1]) * 1e6 + Number(m[2]) * 1e3 + Number(m[3]);
}

const root = process.getuid?.() === 0;
const debian = existsSync('/etc/os-release') ? (/^VERSION_ID="?(\d+)/m.exec(readFileSync('/etc/os-release', 'utf8'))?.[1] ?? '') : '';
const aptLists = existsSync('/var/lib/apt/lists') && execFileSync('ls', ['/var/lib/apt/lists'], { encoding: 'utf8' }).includes('_Packages');

test('getting started, step 1: the packages exist and the Node.js here is new enough', {
  skip: !root ? 'needs root (apt-get)' : !['12', '13'].includes(debian) ? 'the page covers Debian 12 and 13' : !aptLists ? 'no apt lists (run apt-get update)' : false,
}, () => {
  const step = block('sudo apt-get install -y');
  const install = step.split('\n').find((l) => l.startsWith('sudo apt-get install -y')) as string;
  // Debian 12's Node.js is 18: the page has the reader install Node.js 20 first, then
  // the same line without `nodejs npm` (Debian's npm would replace nodejs.org's).
  assert.match(PAGE, /On Debian 12 \(bookworm\)[\s\S]*?the same line without\s+`nodejs npm`/);
  assert.ok(install.includes(' nodejs npm'), `the line installs nodejs and npm: ${install}`);
  const line = debian === '12' ? install.replace(' nodejs npm', '') : install;
  // -s: apt-get resolves the line and prints what it would do, without doing it.
  execFileSync('bash', ['-c', line.replace(/^sudo apt-get install/, 'apt-get install -s')], { encoding: 'utf8', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  if (debian === '13') {
    const candidate = /Candidate:\s+(\S+)/.exec(execFileSync('apt-cache', ['policy', 'nodejs'], { encoding: 'utf8' }))?.[1] ?? '';
    assert.ok(versionNumber(candidate) >= 20_019_000, `Debian 13's nodejs ${candidate} is 20.19 or newer, as the page says`);
  }
  // `node --version  # v20.19.0 or newer`: the page, package.json's engines and this Node agree.
  const minimum = /node --version\s+# (v\d+\.\d+\.\d+) or newer/.exec(step)?.[1] as string;
  assert.ok(minimum, 'step 1 says which Node.js version is needed');
  const engines = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { engines: { node: string } }).engines.node;
  assert.equal(versionNumber(`${engines.replace('>=', '')}.0`), versionNumber(minimum), `package.json engines ${engines} says what the page says`);
  assert.match(PAGE, new RegExp(`Node\\.js ${minimum.slice(1).replace(/\.0$/, '').replaceAll('.', '\\.')} or newer`), 'the opening line says the same version');
  assert.ok(versionNumber(execFileSync('bash', ['-c', 'node --version'], { encoding: 'utf8' })) >= versionNumber(minimum), 'the Node.js on PATH');
});

test('getting started, step 2: clone, npm ci, npm link, emperor --version', { skip: !root ? 'needs root (sudo in the page)' : false }, (t) => {
  const dir = tempDir(t);
  const opt = join(dir, 'opt', 'emperor');
  const prefix = join(dir, 'npm-prefix');
  // npm link puts the command in the global prefix's bin: a private one, first on PATH.
  const env = { ...process.env, USER: userInfo().username, npm_config_prefix: prefix, PATH: `${join(prefix, 'bin')}:${process.env.PATH ?? ''}`, npm_config_update_notifier: 'false', npm_config_fund: 'false', npm_config_audit: 'false' };
  const script = block('sudo npm link').replaceAll('/opt/emperor', opt).replace('REPOSITORY', JSON.stringify(ROOT));
  const out = execFileSync('bash', ['-c', `set -eo pipefail\nsudo() { "$@"; }\n${script}`], { encoding: 'utf8', cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
  const version = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
  assert.equal(out.trim().split('\n').at(-1), version, `emperor --version, last:\n${out}`);
  // The linked command is the clone's (its bin/emperor.js runs the CLI package's build, which `npm ci` made).
  const linked = realpathSync(join(prefix, 'bin', 'emperor'));
  assert.equal(linked, join(realpathSync(opt), 'bin', 'emperor.js'));
  // The page's fallback path runs too, and the clone's build checks a vassal file.
  assert.match(PAGE, /run `node \/opt\/emperor\/packages\/cli\/dist\/bin\/emperor\.js`/);
  const checked = execFileSync(process.execPath, [join(opt, 'packages', 'cli', 'dist', 'bin', 'emperor.js'), 'check', join(opt, 'emperor.d', 'hello.ini')], { encoding: 'utf8', env });
  assert.match(checked, /hello\.ini: valid vassal file/);
});

test('getting started, steps 3 to 7, as the page writes them, step 6 under the shipped systemd config (tyrant mode)', { skip: !root ? 'needs root (the page runs vassals as www-data)' : false }, async (t) => {
  const root = tempDir(t);
  chmodSync(root, 0o755); // www-data reads the app under it, as under /srv
  const [app, vassalStats, emperorStats] = [await freePort(), await freePort(), await freePort()];
  const local = (text: string): string => text
    .replaceAll('/opt/emperor', ROOT)
    .replaceAll('/srv/hello', join(root, 'srv', 'hello'))
    .replaceAll('/etc/emperor.d', join(root, 'etc', 'emperor.d'))
    .replaceAll('/etc/emperor.ini', join(root, 'etc', 'emperor.ini'))
    .replaceAll('/etc/systemd/system', join(root, 'etc', 'systemd', 'system'))
    .replaceAll('/run/emperor', join(root, 'run', 'emperor'))
    .replaceAll('/var/log/emperor', join(root, 'var', 'log', 'emperor'))
    .replaceAll('127.0.0.1:8080', `127.0.0.1:${app}`)
    .replaceAll('127.0.0.1:9191', `127.0.0.1:${vassalStats}`)
    .replaceAll('127.0.0.1:9190', `127.0.0.1:${emperorStats}`);
  // `emperor` is on PATH, as `npm link` put it there in step 2: a script running the built CLI.
  const bin = join(root, 'usr', 'local', 'bin');
  mkdirSync(bin, { recursive: true });
  writeFileSync(join(bin, 'emperor'), `#!/bin/sh\nexec ${JSON.stringify(process.execPath)} ${JSON.stringify(EMPEROR_BIN)} "$@"\n`, { mode: 0o755 });
  const env = { ...process.env, USER: userInfo().username, PATH: `${bin}:${process.env.PATH ?? ''}`, EMPEROR_LOG_STYLE: undefined };
  const prelude = 'set -eo pipefail\nsudo() { "$@"; }\n';
  // The reader's shell stays where the page's `cd` left it: in the app's directory.
  let cwd = root;
  const sh = (script: string): string => execFileSync('bash', ['-c', prelude + local(script)], { encoding: 'utf8', cwd, env });
  const background = (command: string): Spawned => spawnProcess(t, 'bash', ['-c', `${prelude}exec ${local(command).replace(/^sudo /, '')}`], { cwd, env });

  // 3. The app and its vassal file; `emperor check` says what the page says it says.
  sh(block('cat > app.mjs'));
  cwd = join(root, 'srv', 'hello');
  const checked = sh(block('cat > hello.ini')).trim();
  assert.match(PAGE, /`emperor check` prints `hello\.ini: valid vassal file`/);
  assert.equal(checked, 'hello.ini: valid vassal file');

  // 4. In the foreground, then the second terminal's commands; Ctrl-C ends it.
  const foreground = background(block('emperor --ini hello.ini').trim());
  const url = `http://127.0.0.1:${app}/`;
  await waitFor(async () => (await httpGet(url)).status === 200, { message: 'hello.ini serving', timeoutMs: 20_000 });
  const second = block('curl http://127.0.0.1:8080/          # hello from worker');
  const out = sh(second);
  assert.match(out, /^hello from worker \d+$/m);
  assert.equal(out.match(/^WID\s+%\s+PID\s+REQ/gm)?.length, 2, `emperor stats, then top (a snapshot: not a terminal), print the worker table:\n${out}`);
  foreground.child.kill('SIGINT');
  assert.deepEqual(await foreground.exited, { code: 0, signal: null }, 'Ctrl-C: the vassal stops and exits 0');

  // 5. Under the emperor, as root, the vassal as www-data; its file is www-data's, and
  // `emperor check --tyrant` says so as the page says.
  const fifthBlock = block('sudo tee /etc/emperor.d/hello.ini');
  const [setUp, emperorLine] = fifthBlock.split(/\n(?=sudo emperor --emperor)/) as [string, string];
  const setUpOut = sh(setUp);
  const printed = /It prints `(\/etc\/emperor\.d\/hello\.ini: valid vassal file)`/.exec(PAGE.replace(/\n/g, ' '))?.[1];
  assert.ok(printed, 'the page says what emperor check --tyrant prints');
  assert.equal(setUpOut.trim(), local(printed));
  const wwwData = Number(execFileSync('id', ['-u', 'www-data'], { encoding: 'utf8' }).trim());
  const vassalFile = join(root, 'etc', 'emperor.d', 'hello.ini');
  assert.equal(statSync(vassalFile).uid, wwwData, 'the vassal file is www-data\'s, as tyrant mode needs');
  const byHand = background(emperorLine.trim());
  const doc = await waitFor(async () => {
    const d = await statsOf<EmperorStatsDoc>(`127.0.0.1:${emperorStats}`);
    return d.vassals.find((v) => v.id === 'hello.ini' && v.ready === 1) ? d : undefined;
  }, { message: 'hello.ini ready under the emperor', timeoutMs: 20_000 });
  assert.equal(doc.vassals[0]?.uid, wwwData, 'the file is www-data\'s');
  const workerUid = async (): Promise<number> => {
    const pid = Number(/worker (\d+)/.exec((await httpGet(url)).body)?.[1]);
    return Number(/^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]);
  };
  assert.equal(await workerUid(), wwwData, 'the worker runs as www-data');
  const fifth = block('tail /var/log/emperor/hello.log');
  const log = sh(fifth.split('\n').filter((l) => !l.startsWith('sudo touch')).join('\n'));
  assert.match(log, /^hello\.ini\s+ready\s/m, 'emperor stats: hello.ini ready');
  assert.match(log, /vassal master started/, 'tail: the master\'s lines');
  const logFile = join(root, 'var', 'log', 'emperor', 'hello.log');
  // Request lines reach the file within 250 ms of their requests (docs/logging.md).
  await waitFor(() => /\] GET \/ => generated \d+ bytes in \d+ msecs \(HTTP\/1\.1 200\)/.test(readFileSync(logFile, 'utf8')), { message: 'one line per request in hello.log' });
  sh(fifth.split('\n').filter((l) => l.startsWith('sudo touch')).join('\n'));
  await waitFor(async () => {
    const d = await statsOf<EmperorStatsDoc>(`127.0.0.1:${emperorStats}`);
    return d.vassals[0]?.respawns === 1 && d.vassals[0]?.ready === 1;
  }, { message: 'the touch reloaded hello.ini', timeoutMs: 20_000 });
  assert.match(PAGE, /Stop the emperor with Ctrl-C in the first terminal/);
  byHand.child.kill('SIGINT');
  assert.deepEqual(await byHand.exited, { code: 0, signal: null }, 'Ctrl-C: the emperor stops its vassal and exits 0');

  // 6. Under systemd, with the shipped unit and /etc/emperor.ini (tyrant mode on). Without
  // systemd as PID 1, the systemctl lines are what this test does by hand: it runs the
  // unit's ExecStart line with its config as the unit's user and capabilities, with
  // /run/emperor made for that user (RuntimeDirectory=), stderr on a stream named by
  // JOURNAL_STREAM and a stand-in for NOTIFY_SOCKET. The page's `emperor` user gets a
  // name of the test's own wherever the page, the unit and the ini name it.
  mkdirSync(join(root, 'etc', 'systemd', 'system'), { recursive: true });
  const sixth = block('sudo cp /opt/emperor/docs/systemd/emperor.service');
  const lines = sixth.trim().split('\n');
  assert.deepEqual(lines.filter((l) => l.includes('systemctl')), ['sudo systemctl daemon-reload', 'sudo systemctl enable --now emperor']);
  const user = `empgs${process.pid}`;
  const addUser = /^sudo useradd (.*) emperor$/m;
  assert.match(sixth, addUser, 'step 6 creates the emperor\'s user');
  t.after(() => {
    try {
      execFileSync('userdel', ['--force', user], { stdio: 'ignore' });
    } catch {
      // never made
    }
  });
  sh(lines.filter((l) => !l.includes('systemctl')).join('\n').replace(addUser, `sudo useradd $1 ${user}`));
  const id = (flag: string): number => Number(execFileSync('id', [flag, user], { encoding: 'utf8' }).trim());
  const [uid, gid] = [id('-u'), id('-g')];
  assert.equal(execFileSync('getent', ['group', String(gid)], { encoding: 'utf8' }).split(':')[0], user, 'useradd made the user\'s own group, which Group= names');
  const unit = readFileSync(join(root, 'etc', 'systemd', 'system', 'emperor.service'), 'utf8');
  const setting = (name: string): string => new RegExp(`^${name}=(.*)$`, 'm').exec(unit)?.[1]?.trim() ?? '';
  const execStart = setting('ExecStart');
  assert.ok(execStart.startsWith(`${join(bin, 'emperor')} `), `the sed pointed ExecStart at the emperor on PATH: ${execStart}`);
  assert.deepEqual([setting('User'), setting('Group')], ['emperor', 'emperor'], 'the unit runs as the user the page creates');
  const caps = (name: string): string => setting(name).split(/\s+/).map((c) => `+${c.replace(/^CAP_/, '').toLowerCase()}`).join(',');
  const config = join(root, 'etc', 'emperor.ini');
  const shipped = readFileSync(config, 'utf8');
  assert.match(shipped, /^emperor-tyrant = true$/m, 'the shipped config turns tyrant mode on');
  assert.match(shipped, /^uid = emperor$/m, 'the shipped config names the unit\'s user');
  assert.match(PAGE, new RegExp(`stats on \`${/^emperor-stats = (.*)$/m.exec(shipped)?.[1] ?? '?'}\``), 'the page names the shipped stats address');
  // The test's stand-in for / (paths), and its user for `emperor`.
  writeFileSync(config, local(shipped).replace(/^uid = emperor$/m, `uid = ${user}`).replace(/^gid = emperor$/m, `gid = ${user}`));
  const runtime = join(root, 'run', 'emperor');
  mkdirSync(runtime, { recursive: true, mode: 0o755 });
  chownSync(runtime, uid, gid); // RuntimeDirectory= belongs to User=
  const journal = join(root, 'journal');
  const journalFd = openSync(journal, 'a');
  const { dev, ino } = statSync(journal);
  const notify = join(root, 'notify.sock');
  const notifications = await listenForNotify(t, notify);
  chmodSync(notify, 0o777); // as systemd's own notify socket: any process of the unit may send
  // What systemd does for the unit: the bounding set, no_new_privs, then User=/Group= with
  // the user's groups and the ambient capabilities; ExecStart= then runs as that user.
  assert.equal(setting('NoNewPrivileges'), 'yes');
  const service = spawn('setpriv', [
    '--bounding-set', `-all,${caps('CapabilityBoundingSet')}`, '--no-new-privs',
    '--reuid', user, '--regid', user, '--init-groups', '--inh-caps', caps('AmbientCapabilities'), '--ambient-caps', caps('AmbientCapabilities'),
    '--', 'bash', '-c', `exec ${local(execStart)}`,
  ], { cwd: '/', stdio: ['ignore', 'ignore', journalFd], env: { ...env, JOURNAL_STREAM: `${dev}:${ino}`, NOTIFY_SOCKET: notify } });
  closeSync(journalFd);
  t.after(() => stopTree(service));
  const status = /^systemctl status emperor\s+# Status: "(.*)"$/m.exec(PAGE)?.[1];
  await waitFor(() => notifications.some((n) => n.READY === '1') && notifications.some((n) => n.STATUS === status), { message: `READY=1 and STATUS=${status ?? '?'}`, timeoutMs: 20_000 });
  await waitFor(async () => (await httpGet(url)).status === 200, { message: 'hello.ini serving under the unit', timeoutMs: 20_000 });
  const seventh = block('sudo emperor stats /run/emperor/stats.sock');
  const underUnit = sh(seventh.split('\n').filter((l) => /^(sudo emperor|curl) /.test(l)).join('\n'));
  assert.match(underUnit, /^hello\.ini\s+ready\s/m, 'emperor stats: hello.ini ready, not refused by tyrant mode');
  assert.match(underUnit, /^hello from worker \d+$/m);
  assert.equal(await workerUid(), wwwData, 'tyrant mode runs the worker as the file\'s owner, www-data');
  // The process the unit starts is the emperor itself (each exec keeps the pid), as its
  // user, with CAP_SETGID and CAP_SETUID only.
  const procField = (pid: number, field: string): string => new RegExp(`^${field}:\\s+(.*)$`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? '';
  assert.equal(procField(service.pid ?? 0, 'Uid').split(/\s+/)[0], String(uid), 'the emperor runs as the unit\'s user');
  assert.equal(procField(service.pid ?? 0, 'CapEff'), '00000000000000c0', 'CAP_SETGID and CAP_SETUID');
  // journalctl: one line per event, as text (log-style auto under the journal).
  const events = readFileSync(journal, 'utf8').split('\n').filter((l) => l !== '' && !/^ {4}/.test(l));
  assert.ok(events.length > 3 && events.every((l) => /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} [A-Z]+ \[pid: \d+/.test(l)), `text lines in the journal:\n${events.join('\n')}`);
  assert.ok(events.some((l) => /\|emperor\] tyrant mode: each vassal runs as the owner of its file/.test(l)), 'tyrant mode is on');
  assert.ok(events.some((l) => l.includes(`|emperor] emperor running as ${user} (uid ${uid} gid ${gid}) with capabilities setgid, setuid: vassals start as their own users`)), 'the emperor says who it is');
  assert.ok(!events.some((l) => /hello\.ini: refused/.test(l)), 'hello.ini is not refused');

  // 7. nginx with the page's server block (its listen and server_name are the test's own).
  const site = block('sudo tee /etc/nginx/sites-available/hello');
  const body = /server \{\n([\s\S]*?)\n\}\nEOF/.exec(site)?.[1] as string;
  const blockLines = body.split('\n').filter((l) => !/^\s*(listen|server_name)\s/.test(l));
  assert.equal(blockLines.length, body.split('\n').length - 2, 'the page\'s block has one listen and one server_name');
  const nginx = await startNginx(t, root, local(blockLines.join('\n')));
  const viaNginx = await httpGet(`${nginx.url}/`, { headers: { 'x-forwarded-for': '203.0.113.7' } });
  assert.equal(viaNginx.status, 200, nginx.errorLog());
  assert.match(viaNginx.body, /^hello from worker \d+$/m);
  // log-x-forwarded-for: the request line shows the client, not nginx.
  await waitFor(() => /^\[pid: \d+\|app: 0\|req: \d+\/\d+\] 203\.0\.113\.7 /m.test(readFileSync(logFile, 'utf8')), { message: 'the client address in hello.log' });
});

/** The sd_notify fields received on `address` (a path), as a stand-in for systemd: one record per datagram. */
async function listenForNotify(t: TestContext, address: string): Promise<Record<string, string>[]> {
  const child = spawn('python3', [join(FIXTURES, 'bin', 'notify-listener.py'), address], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.after(() => child.kill('SIGKILL'));
  const seen: Record<string, string>[] = [];
  let ready = false;
  let partial = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    const lines = (partial + chunk).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) {
      if (line === 'listening') ready = true;
      else if (line !== '') seen.push((JSON.parse(line) as { fields: Record<string, string> }).fields);
    }
  });
  await waitFor(() => ready, { message: `the notify listener on ${address}` });
  return seen;
}

/** SIGTERM to a service started by hand and everything under it, then SIGKILL to what is left (by pid). */
async function stopTree(child: ChildProcess): Promise<void> {
  const pid = child.pid ?? 0;
  const tree = descendants(pid);
  if (child.exitCode === null && child.signalCode === null) {
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  }
  for (const p of [...tree, ...descendants(pid)]) {
    if (isAlive(p)) process.kill(p, 'SIGKILL');
  }
}
