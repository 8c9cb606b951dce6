"""The part of uWSGI's ``uwsgidecorators`` that means something under Emperor.

``postfork`` (each worker, after the fork; ``@postfork(N)`` only in worker N) and
``thread`` (run the function in a thread of its own). The decorators built on uWSGI's
signals, spooler, mules, caches or locks (``timer``, ``cron``, ``spool``, ``mulefunc``,
``lock``...) are not here: importing them fails, as it would on a uWSGI built without
the feature, rather than an app silently losing its timers.
"""

import threading

import uwsgi

#: The functions ``postfork`` registered, in order.
postfork_chain = []


def _postfork_chain_hook():
    for f in postfork_chain:
        f()


uwsgi.post_fork_hook = _postfork_chain_hook


class postfork:
    """``@postfork``: run the function in each worker once it is forked (with
    ``lazy-apps``, once the worker imported the app). ``@postfork(N)``: in worker N only."""

    def __init__(self, f):
        if callable(f):
            self.wid = 0
            self.f = f
        else:
            self.wid = int(f)
            self.f = None
        postfork_chain.append(self)

    def __call__(self, *args, **kwargs):
        if self.f is None:
            # @postfork(N) applied to its function.
            self.f = args[0]
            return self
        if self.wid > 0 and self.wid != uwsgi.worker_id():
            return None
        return self.f()


class thread:
    """``@thread``: each call runs the function in a new daemon thread."""

    def __init__(self, f):
        self.f = f

    def __call__(self, *args, **kwargs):
        t = threading.Thread(target=self.f, args=args, kwargs=kwargs, daemon=True)
        t.start()
        return self
