"""A WSGI app, standard library only: what Django's or Flask's `application` is.

The emperor's Python workers serve it on the vassal's sockets: `http-socket` for a
browser or curl, `socket` (the uwsgi protocol) for nginx's `uwsgi_pass`.
"""

import os


def application(environ, start_response):
    body = "Hello from Python worker pid %d: %s %s%s\n" % (
        os.getpid(),
        environ["REQUEST_METHOD"],
        environ["PATH_INFO"],
        "?" + environ["QUERY_STRING"] if environ.get("QUERY_STRING") else "",
    )
    data = body.encode("utf-8")
    start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(data)))])
    return [data]
