"""``mount`` and ``manage-script-name`` (uWSGI core/protocol.c): how the request's path is
split into SCRIPT_NAME (where the app is mounted) and PATH_INFO (the path within it),
whatever protocol brought the request."""

from __future__ import annotations


def manage_script_name(environ: dict, mountpoint: str) -> None:
    """Sets SCRIPT_NAME to ``mountpoint`` and PATH_INFO to the rest of the request's path,
    when the path is the mountpoint or under it (a whole segment: ``/app`` takes
    ``/app`` and ``/app/x``, not ``/apple``); else leaves both as they came, as uWSGI does.

    The path is PATH_INFO, or SCRIPT_NAME when PATH_INFO is empty (nginx's stock
    ``fastcgi_params`` send the whole path as SCRIPT_NAME and no PATH_INFO). uWSGI
    matches the mountpoints other than the root only; here an app at the root (``""``,
    ``mount = /=app`` or no ``mount``) takes every path, so the front end's SCRIPT_NAME
    goes: that is what gives the app the URLs the user sees behind lighttpd's
    ``/main.fcgi`` rewrite trick (SCRIPT_NAME ``/main.fcgi``, PATH_INFO the user's path).

    :param mountpoint: without a trailing slash; "" for the root
    """
    path = environ.get("PATH_INFO") or environ.get("SCRIPT_NAME") or ""
    if not path:
        return
    if mountpoint:
        size = len(mountpoint)
        if not path.startswith(mountpoint) or (len(path) > size and path[size] != "/"):
            return
        environ["SCRIPT_NAME"] = mountpoint
        environ["PATH_INFO"] = path[size:]
    else:
        environ["SCRIPT_NAME"] = ""
        environ["PATH_INFO"] = path
