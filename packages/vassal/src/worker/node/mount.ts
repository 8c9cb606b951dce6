/**
 * `mount` and `manage-script-name` in a Node worker. Node has no SCRIPT_NAME: the
 * request's URL (the path the user asked for, REQUEST_URI behind uwsgi and FastCGI) is
 * what the app routes on. With `manage-script-name`, a request under the mountpoint
 * reaches the app with the mountpoint taken off `req.url`, as Express does for a
 * sub-app mounted with `app.use(path, sub)`; `req.originalUrl` keeps the whole URL (and
 * Express, which sets it only when unset, keeps ours). A request outside the mountpoint
 * is left as it came, as uWSGI leaves SCRIPT_NAME alone when no mountpoint matches.
 */
import type { IncomingMessage, RequestListener } from 'node:http';

/** A request whose URL the mount changed: the URL as it came. */
interface Mounted extends IncomingMessage {
  originalUrl?: string;
}

/**
 * `url` without `mountpoint` when its path is the mountpoint or under it (a whole path
 * segment: `/app` matches `/app`, `/app/`, `/app?x`, not `/apple`); else undefined.
 * @param mountpoint a path without a trailing slash, not ""
 */
export function unmount(url: string, mountpoint: string): string | undefined {
  if (!url.startsWith(mountpoint)) return undefined;
  const rest = url.slice(mountpoint.length);
  if (rest === '') return '/';
  if (rest.startsWith('/')) return rest;
  if (rest.startsWith('?')) return `/${rest}`;
  return undefined;
}

/**
 * The request listener that applies the mount (put after the worker's accounting, which
 * logs the URL as it came, and before the app), or undefined when there is nothing to do:
 * no `manage-script-name`, or the app mounted at the root.
 */
export function mountListener(mountpoint: string, manageScriptName: boolean): RequestListener | undefined {
  if (!manageScriptName || mountpoint === '') return undefined;
  return (req: Mounted) => {
    const url = req.url ?? '/';
    const inner = unmount(url, mountpoint);
    if (inner === undefined) return;
    req.originalUrl ??= url;
    req.url = inner;
  };
}

/** The URL a request came with, before a mount took its mountpoint off (for the request log). */
export function requestUrl(req: IncomingMessage): string {
  return (req as Mounted).originalUrl ?? req.url ?? '';
}
