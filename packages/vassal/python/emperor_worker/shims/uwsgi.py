"""A minimal ``uwsgi`` module, so apps written for uWSGI import and run unmodified.

uWSGI builds this module into its Python plugin (plugins/python/uwsgi_pymodule.c); here
it is a plain module on the end of ``sys.path`` (an app's own ``uwsgi`` wins), filled in
by the worker before the app is imported. What is here behaves as under uWSGI; what is
not (signals, caches, the spooler, mules, locks) raises AttributeError, as it does under
uWSGI without the feature.
"""

import os
import signal
import socket
import sys
import time

#: Emperor's version, in uWSGI's shape (bytes).
version = b"2.0.21-emperor"
version_info = (2, 0, 21, 0, "emperor")
hostname = socket.gethostname().encode()
#: ``processes``: the number of workers (uWSGI's ``numproc``).
numproc = 1
#: Request threads per worker (``threads``).
cores = 1
#: The vassal's options: name → bytes (a list of them for a repeated option), as uWSGI gives them.
opt = {}
#: Epoch seconds the app was loaded.
started_on = int(time.time())
#: Set by an app (or ``uwsgidecorators.postfork``): called in each worker after the fork
#: (with ``lazy-apps``: after the worker imported the app).
post_fork_hook = None
#: Magic table and buffer size, for apps that read them.
buffer_size = 4096

_worker_id = 0
_master_pid = 0


def worker_id():
    """This worker's id, 1-based; 0 in the template that imports the app (uWSGI's master)."""
    return _worker_id


def mule_id():
    """Always 0: there are no mules."""
    return 0


def masterpid():
    """The vassal master's pid."""
    return _master_pid


def log(message):
    """Writes ``message`` as one line on the worker's stderr (the vassal's log)."""
    text = message.decode("utf-8", "replace") if isinstance(message, bytes) else str(message)
    sys.stderr.write(text + "\n")
    return True


def reload():
    """Asks the master for a graceful reload (SIGHUP, as uWSGI's ``uwsgi.reload()``)."""
    try:
        os.kill(_master_pid, signal.SIGHUP)
        return True
    except OSError:
        return False


def _configure(worker_id_, master_pid, processes, threads, buffer_size_, options):
    """Fills the module in (the worker calls this before the app loads). ``options`` are
    ``[name, value]`` pairs in file order."""
    global _worker_id, _master_pid, numproc, cores, buffer_size
    _worker_id, _master_pid, numproc, cores, buffer_size = worker_id_, master_pid, processes, threads, buffer_size_
    opt.clear()
    for name, value in options:
        data = value.encode("utf-8", "surrogateescape")
        if name not in opt:
            opt[name] = data
        elif isinstance(opt[name], list):
            opt[name].append(data)
        else:
            opt[name] = [opt[name], data]
