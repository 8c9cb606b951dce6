/**
 * Real nginx and Python tools for the end-to-end tests. CI installs them (`.ci/run`:
 * nginx, python3-django from Debian); on a developer box without them the tests fail
 * with a message saying what to install, never skip silently.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { freePort, spawnProcess, waitFor, type Spawned } from './index.js';

/** Debian's interpreter, the one python3-django installs into. */
export const DEBIAN_PYTHON = '/usr/bin/python3';
export const NGINX = '/usr/sbin/nginx';
/** The stock file nginx's Debian package ships. */
export const UWSGI_PARAMS = '/etc/nginx/uwsgi_params';

/** Fails with a clear message when `check` throws. */
function need(what: string, install: string, check: () => void): void {
  try {
    check();
  } catch (err) {
    throw new Error(`${what} is missing (${(err as Error).message.split('\n')[0]}): run \`${install}\` (CI does it in .ci/run)`, { cause: err });
  }
}

/** Asserts nginx and its uwsgi_params are installed. */
export function requireNginx(): void {
  need('nginx', 'apt-get install nginx', () => {
    execFileSync(NGINX, ['-v'], { stdio: 'ignore' });
    readFileSync(UWSGI_PARAMS);
  });
}

/** Asserts Debian's python3 has FastAPI, Starlette and the websockets client. */
export function requireFastapi(): void {
  need('FastAPI for /usr/bin/python3', 'apt-get install python3-fastapi python3-starlette python3-websockets python3-uvicorn', () => {
    execFileSync(DEBIAN_PYTHON, ['-c', 'import fastapi, starlette, websockets'], { stdio: 'ignore' });
  });
}

/** Asserts Debian's python3 has Django. */
export function requireDjango(): void {
  need('Django for /usr/bin/python3', 'apt-get install python3-django', () => {
    execFileSync(DEBIAN_PYTHON, ['-c', 'import django'], { stdio: 'ignore' });
  });
}

/** A running nginx. */
export interface Nginx {
  readonly port: number;
  readonly proc: Spawned;
  readonly url: string;
  /** nginx's error log so far, for failure messages. */
  errorLog(): string;
}

/**
 * Starts nginx in the foreground on a free port with `server` as the body of its one
 * server block (without `listen`). Everything it writes (pid, logs, temp files) stays in
 * `dir`; it is ended by PID after the test.
 */
export async function startNginx(t: TestContext, dir: string, server: string, httpExtra = ''): Promise<Nginx> {
  requireNginx();
  const port = await freePort();
  const prefix = join(dir, 'nginx');
  mkdirSync(prefix, { recursive: true });
  const errorLog = join(prefix, 'error.log');
  const temp = (name: string): string => `${name}_temp_path ${join(prefix, name)};`;
  const conf = `
${process.getuid?.() === 0 ? 'user root;' : ''}
worker_processes 1;
error_log ${errorLog} warn;
events { worker_connections 1024; }
http {
  include /etc/nginx/mime.types;
  access_log off;
  ${temp('client_body')} ${temp('proxy')} ${temp('fastcgi')} ${temp('uwsgi')} ${temp('scgi')}
  client_max_body_size 64m;
  ${httpExtra}
  server {
    listen 127.0.0.1:${port};
    server_name localhost;
    ${server}
  }
}
`;
  const file = join(prefix, 'nginx.conf');
  writeFileSync(file, conf);
  const proc = spawnProcess(t, NGINX, ['-p', prefix, '-e', errorLog, '-c', file, '-g', `daemon off; pid ${join(prefix, 'nginx.pid')};`]);
  const readLog = (): string => {
    try {
      return readFileSync(errorLog, 'utf8');
    } catch {
      return '';
    }
  };
  await waitFor(
    () =>
      new Promise<boolean>((resolve, reject) => {
        if (proc.child.exitCode !== null) reject(new Error(`nginx exited with ${proc.child.exitCode}: ${readLog()}`));
        const s = connect(port, '127.0.0.1');
        s.once('connect', () => {
          s.destroy();
          resolve(true);
        });
        s.once('error', () => resolve(false));
      }),
    { message: `nginx listening on ${port}`, timeoutMs: 10_000 },
  );
  return { port, proc, url: `http://127.0.0.1:${port}`, errorLog: readLog };
}
