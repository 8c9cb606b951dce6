/**
 * Real lighttpd (Debian's `lighttpd` package) for the end-to-end tests. CI installs it
 * (`.ci/run`); without it the tests fail with the apt-get command to run, never skip.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { freePort, spawnProcess, waitFor, type Spawned } from './index.js';

export const LIGHTTPD = '/usr/sbin/lighttpd';

/** Asserts lighttpd is installed. */
export function requireLighttpd(): void {
  try {
    execFileSync(LIGHTTPD, ['-v'], { stdio: 'ignore' });
  } catch (err) {
    throw new Error(`lighttpd is missing (${(err as Error).message.split('\n')[0]}): run \`apt-get install lighttpd\` (CI does it in .ci/run)`, { cause: err });
  }
}

/** A running lighttpd. */
export interface Lighttpd {
  readonly port: number;
  readonly proc: Spawned;
  readonly url: string;
  /** lighttpd's error log so far, for failure messages. */
  errorLog(): string;
}

/**
 * Starts lighttpd in the foreground (`-D`) on a free port of 127.0.0.1, serving
 * `docroot`, with `config` appended (fastcgi.server, url.rewrite, ...). Its files stay in
 * `dir`; it is ended by PID after the test (and ends the backends it spawned).
 */
export async function startLighttpd(t: TestContext, dir: string, docroot: string, config: string): Promise<Lighttpd> {
  requireLighttpd();
  const port = await freePort();
  const prefix = join(dir, 'lighttpd');
  mkdirSync(prefix, { recursive: true });
  const errorLog = join(prefix, 'error.log');
  const file = join(prefix, 'lighttpd.conf');
  writeFileSync(file, `
server.document-root = "${docroot}"
server.bind = "127.0.0.1"
server.port = ${port}
server.errorlog = "${errorLog}"
server.pid-file = "${join(prefix, 'lighttpd.pid')}"
server.modules = ("mod_rewrite", "mod_fastcgi")
mimetype.assign = (".css" => "text/css", ".js" => "text/javascript", ".txt" => "text/plain")
${config}
`);
  const readLog = (): string => {
    try {
      return readFileSync(errorLog, 'utf8');
    } catch {
      return '';
    }
  };
  const proc = spawnProcess(t, LIGHTTPD, ['-D', '-f', file]);
  await waitFor(
    () =>
      new Promise<boolean>((resolve, reject) => {
        if (proc.child.exitCode !== null) reject(new Error(`lighttpd exited with ${proc.child.exitCode}: ${readLog()}${proc.logs.tail()}`));
        const s = connect(port, '127.0.0.1');
        s.once('connect', () => {
          s.destroy();
          resolve(true);
        });
        s.once('error', () => resolve(false));
      }),
    { message: `lighttpd listening on ${port}`, timeoutMs: 10_000 },
  );
  return { port, proc, url: `http://127.0.0.1:${port}`, errorLog: readLog };
}
