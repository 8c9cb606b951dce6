/**
 * A real Django project for the end-to-end tests (Debian's python3-django, on
 * /usr/bin/python3): `django-admin startproject`, production settings, migrated, static
 * files collected, a superuser. Without Django the tests fail with the apt-get command.
 */
import { execFileSync } from 'node:child_process';
import { appendFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DEBIAN_PYTHON, requireDjango } from './nginx.js';

/** The superuser's password (user `admin`). */
export const DJANGO_PASSWORD = 'correct horse battery staple';

/** A made Django project. */
export interface DjangoProject {
  /** The directory with manage.py (the vassals' `chdir`). */
  readonly project: string;
  /** The web server's document root: `static/` holds the collected static files. */
  readonly publicDir: string;
}

/**
 * `django-admin startproject mysite` in `dir/project`, settings for production behind a
 * web server (DEBUG off, any host, static files collected into `dir/public/static`),
 * migrated, with a superuser. `files` are written into the `mysite` package first
 * (extra settings modules, urlconfs, views), relative to it.
 */
export function makeDjangoProject(dir: string, files: Readonly<Record<string, string>> = {}): DjangoProject {
  requireDjango();
  const project = join(dir, 'project');
  const publicDir = join(dir, 'public');
  mkdirSync(project);
  const run = (args: string[]): void => {
    execFileSync(DEBIAN_PYTHON, args, {
      cwd: project,
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, DJANGO_SUPERUSER_PASSWORD: DJANGO_PASSWORD, DJANGO_SETTINGS_MODULE: 'mysite.settings' },
    });
  };
  run(['-m', 'django', 'startproject', 'mysite', project]);
  appendFileSync(
    join(project, 'mysite', 'settings.py'),
    `\nDEBUG = False\nALLOWED_HOSTS = ['*']\nSTATIC_URL = '/static/'\nSTATIC_ROOT = ${JSON.stringify(join(publicDir, 'static'))}\n`,
  );
  for (const [name, text] of Object.entries(files)) writeFileSync(join(project, 'mysite', name), text);
  run(['manage.py', 'migrate', '--noinput']);
  run(['manage.py', 'collectstatic', '--noinput']);
  run(['manage.py', 'createsuperuser', '--noinput', '--username', 'admin', '--email', 'admin@example.test']);
  return { project, publicDir };
}

/** `name=value` pairs of every Set-Cookie. */
export function cookiesOf(res: Response): Map<string, string> {
  const out = new Map<string, string>();
  for (const c of res.headers.getSetCookie()) {
    const [pair = ''] = c.split(';');
    const i = pair.indexOf('=');
    out.set(pair.slice(0, i), pair.slice(i + 1));
  }
  return out;
}
