"""Emperor's Python WSGI worker: one process of a vassal's pool.

A vassal master spawns it with the interpreter it picked (the vassal's ``home``
environment, else ``python3`` on PATH) as ``python3 -u .../emperor-worker.py vassal=NAME
worker=N`` (the launcher beside this package; ``python3 -m emperor_worker`` runs the same).
It inherits:

* the listening sockets at fds 3, 4, ... (bound by the master, not listening yet: the
  worker calls listen() and accept() itself, so there is no proxy hop);
* the scoreboard file after them, where it publishes its state in its own slot;
* Node's IPC channel (``NODE_CHANNEL_FD``, one JSON object per line both ways);
* its spec in ``EMPEROR_WORKER`` (packages/vassal/src/shared/worker-spec.ts).

It serves one request at a time per thread (a sync worker, like uWSGI's default and
gunicorn's ``sync``), on ``http-socket`` (HTTP/1.1 with keep-alive) and on ``socket`` /
``uwsgi-socket`` (the uwsgi binary protocol nginx's ``uwsgi_pass`` speaks), calling the
app as PEP 3333 says. Standard library only; Python 3.9 or newer.

Modules, each about one thing:

* ``worker``: the process's life (load the app, signals, stop, recycle), the bookkeeping
  around each request, and ``main``;
* ``server``: the loop's connections (accept, heads, keep-alive, request threads);
* ``protocols``: HTTP and uwsgi, sans-IO (bytes in, requests out, response heads back);
* ``wsgi``: environ streams, start_response, the response writer, file_wrapper;
* ``connection``, ``scoreboard``, ``channel`` (IPC), ``log``, ``request_log``, ``contract``.
"""
