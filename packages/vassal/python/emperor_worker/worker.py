"""One worker process's life: load the app, listen, run the loop, stop gracefully or
recycle, and the bookkeeping around each request (counters, the scoreboard slot, the
request log).

Mirror of the Node worker (packages/vassal/src/worker/node/worker-main.ts): same log
lines, same scoreboard layout, same graceful stop. Change them together.
"""

from __future__ import annotations

import faulthandler
import importlib
import importlib.machinery
import importlib.util
import json
import os
import re
import signal
import sys
import threading
import time
from typing import Any, Callable, Optional

from .channel import Channel
from .connection import Conn
from .contract import EXIT_APP_LOAD, EXIT_OK, EXIT_UNAVAILABLE, IPC_VERSION, SPEC_VERSION
from . import speedups
from .log import Log, exc_text
from .mount import manage_script_name
from .protocols.http import date_clock
from .request_log import RequestLog, count_vars
from .scoreboard import BUSY, IDLE, STARTING, STOPPING, RequestCounters, Scoreboard
from .server import ListenError, Server
from .template import set_title
from .wsgi import ErrorStream, FileWrapper, Input, Response, run_app

# uWSGI's `socket-timeout` default: how long one read or write on a client may block, s
# (the spec's socketTimeoutMs sets it per vassal).
SOCKET_TIMEOUT_S = 4.0
# Without harakiri, how often request starts and ends may be written to the slot, s
# (the Node worker's rates: stats stay fresh at low traffic, cost is bounded under load).
START_PUBLISH_S = 0.001
IDLE_PUBLISH_S = 0.1
# After the master's death (its IPC channel closed) the worker is gone within this, s.
ORPHAN_EXIT_S = 0.9


class Worker(RequestCounters):
    """One process of a vassal's pool, as ``spec`` (``EMPEROR_WORKER``) describes it, talking
    to the master over the IPC channel on ``channel_fd`` (None: no master, no messages)."""

    def __init__(self, spec: dict, channel_fd: Optional[int]) -> None:
        self.spec = spec
        self.log = Log({"vassal": spec["vassal"], "worker": spec["id"]})
        self.errors = ErrorStream(self.log)
        self.reqlog = RequestLog(spec, self.log)
        self.scoreboard = Scoreboard(spec["scoreboard"]["fd"], spec["scoreboard"]["index"], self.log)
        self.channel = Channel(channel_fd) if channel_fd is not None else None
        self.heartbeat_s = max(0.05, spec["heartbeatIntervalMs"] / 1000)
        self.max_requests = int(spec.get("maxRequests") or 0)
        self.exact_slot = spec.get("harakiriMs", 0) > 0
        self.min_lifetime_s = (spec.get("minWorkerLifetimeMs") or 0) / 1000
        mount = spec.get("mount") or {}
        self.mountpoint = mount.get("mountpoint") or ""  # mount.py
        self.manage_script_name = bool(mount.get("manageScriptName"))
        self.started = time.monotonic()
        self.app: Callable = None  # type: ignore[assignment]
        self.stopping = False
        self.stop_requested = False  # set by SIGTERM; acted on by the loop, not in the handler
        self.recycling = False
        # With threads: the thread that ended the max-requests-th request sets this at once,
        # so no connection is taken (or kept) in the moment before the loop recycles.
        self.recycle_pending = False
        self.status = STARTING
        self.current: Optional[tuple] = None  # (start epoch ms, method, uri) of the (oldest) request in flight
        threads = max(1, int(spec.get("threads") or 1))
        self.lock: Optional[threading.RLock] = threading.RLock() if threads > 1 else None
        self.inflight: Optional[dict] = {} if threads > 1 else None  # id → (start ms, method, uri), oldest first
        self.init_counters()
        # True while the slot lags the worker's state (a request ended without a write):
        # the loop then wakes within heartbeat_s to catch up; otherwise an idle worker
        # sleeps in select() until a connection, a signal or the master's channel.
        self.stale = False
        # What the slot last said: a request that starts while it says idle is written at
        # once, whatever the rate limit, or back-to-back requests would show idle to the
        # master (cheaper's spare algorithm counts busy workers) for as long as they run.
        self.shown_busy = False
        # The environ's wsgi.* keys that are the same for every request, in PEP 3333's order
        # (wsgi.input's place is kept; handle sets it): one dict update per request.
        self.wsgi_keys = {
            "wsgi.version": (1, 0), "wsgi.input": None, "wsgi.errors": self.errors, "wsgi.multithread": self.lock is not None,
            "wsgi.multiprocess": True, "wsgi.run_once": False, "wsgi.file_wrapper": FileWrapper, "wsgi.input_terminated": True,
        }
        socket_timeout_s = (spec.get("socketTimeoutMs") or SOCKET_TIMEOUT_S * 1000) / 1000
        self.server = Server(self, self.log, int(spec["bufferSize"]), socket_timeout_s, threads, self.lock, date_clock())
        self.server.defer_accept = not spec.get("noDeferAccept")

    # -- state ----------------------------------------------------------------------

    def locked(self, fn: Callable[[], None]) -> None:
        """Runs ``fn`` under the lock request threads share (slot, counters, request log);
        directly in a worker without threads."""
        lock = self.lock
        if lock is None:
            fn()
        else:
            with lock:
                fn()

    def publish(self) -> None:
        """Writes the slot from the worker's state (request threads publish too: one write at a time, from one state)."""
        self.locked(self._publish)

    def _publish(self) -> None:
        self.stale = False
        current = self.current
        status = STOPPING if self.stopping else self.status if self.status == STARTING else BUSY if current else IDLE
        self.shown_busy = status == BUSY
        inflight = self.inflight
        self.scoreboard.write(
            status, self.server.accepting, len(inflight) if inflight is not None else 1 if current else 0, current,
            self.requests, self.exceptions, self.tx_bytes, self.running_time_us, self.avg_rt_us, self.last_request_end_ms,
        )

    def send(self, message: dict) -> None:
        """A message to the master (packages/protocol/src/ipc.ts); nothing without a channel."""
        if self.channel is not None:
            self.channel.send(message)

    def going_away(self) -> bool:
        """This process will stop soon: its responses tell clients to reconnect elsewhere."""
        return self.stopping or self.stop_requested or self.recycling or self.recycle_pending

    # -- start ----------------------------------------------------------------------

    def load_app(self) -> None:
        """Imports the app (lazy-apps), then runs the post-fork hooks as uWSGI does after a lazy import."""
        self.app = load_app(self.spec, self.log)
        self.log.info("app loaded", speedups.load_fields())
        run_postfork_hooks(self.log)

    def listen(self) -> None:
        """Listens on the inherited sockets; exits 69 when one cannot."""
        try:
            self.server.listen(self.spec["sockets"], int(self.spec["backlog"]))
        except ListenError as err:
            # Two vassals bound the same port before either listened: the second loses here.
            self.log.error(str(err), {"code": err.cause.errno})
            os._exit(EXIT_UNAVAILABLE)

    def _on_sigterm(self, *_: Any) -> None:
        # Python runs this between any two bytecodes of the main thread, maybe in the
        # middle of the loop's bookkeeping: only set a flag (the wake-up fd ends select).
        self.stop_requested = True

    def install_signals(self) -> None:
        """SIGTERM stops gracefully, SIGINT and SIGHUP are ignored, SIGUSR2 dumps the stacks
        (harakiri-verbose); the master's channel is watched."""
        signal.set_wakeup_fd(self.server.wake_w, warn_on_full_buffer=False)
        signal.signal(signal.SIGTERM, self._on_sigterm)
        # SIGINT and SIGHUP come from a terminal or a session ending; the master decides.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        stack_file = self.spec.get("stackFile")
        if stack_file:
            # harakiri-verbose: the master sends SIGUSR2 and reads this file before SIGKILL.
            try:
                self._stack_file = open(os.open(stack_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w")
                faulthandler.register(signal.SIGUSR2, file=self._stack_file, all_threads=True)
            except OSError as err:
                self.log.error("harakiri-verbose: cannot open the stack file %s: %s; no stacks will be logged" % (stack_file, err))
        if self.channel is not None:
            self.server.watch(self.channel.fd, self.on_channel)

    # -- stopping -------------------------------------------------------------------

    def begin_stop(self) -> None:
        """Graceful stop: stop accepting, finish the request in flight, let keep-alive connections end."""
        if self.stopping:
            return
        self.stopping = True
        self.server.stop_accepting()
        if not self.current:
            self.publish()

    def on_channel(self) -> None:
        """The master wrote (``stop``, ``reopen-logs``, ``publish``), or went away (EOF: exit within ORPHAN_EXIT_S)."""
        assert self.channel is not None
        messages = self.channel.read()
        if messages is None:
            # The master is gone: no orphans. Exit within 1 s whatever is running
            # (setpriv --pdeathsig KILL covers a worker stuck in C code).
            self.log.warn("lost the master; exiting")
            self.server.unwatch(self.channel.fd)
            self.channel = None
            timer = threading.Timer(ORPHAN_EXIT_S, lambda: (self.reqlog.flush(), os._exit(EXIT_OK)))
            timer.daemon = True
            timer.start()
            self.begin_stop()
            self.server.close_all()
            return
        for m in messages:
            if isinstance(m, dict) and "cmd" in m:
                continue  # Node's internal messages (NODE_*), not ours
            if isinstance(m, dict) and m.get("v") == IPC_VERSION and m.get("type") == "stop":
                self.begin_stop()
            elif isinstance(m, dict) and m.get("v") == IPC_VERSION and m.get("type") == "reopen-logs":
                self.locked(self.reqlog.reopen)
            elif isinstance(m, dict) and m.get("v") == IPC_VERSION and m.get("type") == "publish":
                # A stats read waits for this: the slot shows every request that ended. Not
                # the last write for the start-of-request rule (see handle): a request that
                # starts right after it is still written at once.
                last = self.scoreboard.last_write
                self.publish()
                self.scoreboard.last_write = last
                self.send({"v": IPC_VERSION, "type": "published"})
            else:
                self.log.warn("master→worker: unknown message %s" % json.dumps(m)[:120])

    def recycle_due(self) -> bool:
        """uWSGI's max-requests reached, and min-worker-lifetime past."""
        return (
            self.max_requests > 0
            and not self.recycling
            and not self.stopping
            and self.requests >= self.max_requests
            and time.monotonic() - self.started >= self.min_lifetime_s
        )

    def check_recycle(self) -> None:
        """uWSGI's max-requests, checked after each request and gated by min-worker-lifetime."""
        if self.recycle_due():
            self.recycling = True
            self.log.info(
                "served %d requests (max-requests %d); asking to be replaced" % (self.requests, self.max_requests),
                {"requests": self.requests},
            )
            self.server.stop_accepting()
            self.publish()
            self.send({"v": IPC_VERSION, "type": "recycle", "reason": "max-requests"})

    def die(self, message: str) -> None:
        """Ends the process now (exit 1) after one error line, from a request thread that
        met SystemExit or KeyboardInterrupt: as it would end without threads."""
        self.log.error(message)
        self.errors.flush()
        self.locked(self.reqlog.flush)
        os._exit(1)

    # -- the loop -------------------------------------------------------------------

    def run(self) -> None:
        """Starts (slot, signals, app unless forked with it, sockets, ``ready``), then runs
        the loop until a graceful stop has let every connection end."""
        self.publish()  # "starting", as the Node worker does before its app loads
        self.install_signals()
        if self.app is None:
            self.load_app()
        from .asgi import wanted  # noqa: PLC0415 - the one place that chooses WSGI or ASGI

        if wanted(self.spec, self.app):
            from .asgi.server import serve  # noqa: PLC0415 - asyncio only for ASGI apps

            serve(self)
            return
        self.listen()
        server = self.server
        server.start()
        self.status = IDLE
        self.publish()
        self.send({"v": IPC_VERSION, "type": "ready"})
        reqlog = self.reqlog
        while True:
            if self.stop_requested and not self.stopping:
                self.begin_stop()
            if self.stopping and not server.conns:
                break
            # Nothing to catch up, no connection to sweep, no log to flush: sleep until
            # something happens (a 1 s wake-up per idle worker costs CPU on a host of many vassals).
            wait = self.heartbeat_s if self.stale or server.conns else None
            due = reqlog.due()
            if due is not None:
                wait = due if wait is None else min(wait, due)
            if server.partial:
                until = server.head_deadline()
                wait = until if wait is None else min(wait, until)
            server.poll(wait)
            if self.stale and time.time() - self.scoreboard.last_write >= self.heartbeat_s:
                self.publish()
            if reqlog.due() == 0.0:
                self.locked(reqlog.flush)
        self.publish()
        self.errors.flush()
        reqlog.flush()

    # -- a request ------------------------------------------------------------------

    def handle(self, conn: Conn, request: tuple) -> bool:
        """Serves one request (a protocol's request tuple, see protocols/base.py): the
        slot shows it, the app answers it, the counters and the request log count it.
        Returns whether the connection may serve another request."""
        environ, reader, interim, keep_alive, context = request
        method = environ["REQUEST_METHOD"]
        uri = environ.get("REQUEST_URI") or (
            environ["PATH_INFO"] + ("?" + environ["QUERY_STRING"] if environ["QUERY_STRING"] else "")
        )
        if self.manage_script_name:
            manage_script_name(environ, self.mountpoint)  # after the log's uri: that is the request as it came
        # Before the wsgi.* keys and the app's own; only when a request may be logged.
        nvars, pktsize = count_vars(environ) if self.reqlog.active else (0, 0)
        body = Input(conn, reader, interim)
        environ.update(self.wsgi_keys)
        environ["wsgi.input"] = body
        t0 = time.perf_counter()
        now = time.time()
        start_ms = now * 1000
        entry = (start_ms, method, uri)
        lock = self.lock
        if lock is None:
            self.current = entry
            # With harakiri the slot's request start is the master's clock for a sync worker:
            # always written. Without, as the Node worker: unless written in the last 1 ms.
            if self.exact_slot or not self.shown_busy or now - self.scoreboard.last_write >= START_PUBLISH_S:
                self._publish()
        else:
            with lock:
                self.inflight[id(entry)] = entry  # type: ignore[index]
                if self.current is None:
                    self.current = entry  # the oldest request in flight: what harakiri times
                # The max-requests-th request has started: take no other (one could come in
                # before this one ends and the loop recycles the worker).
                if (self.max_requests and not self.recycle_pending
                        and self.requests + len(self.inflight) >= self.max_requests  # type: ignore[arg-type]
                        and time.monotonic() - self.started >= self.min_lifetime_s):
                    self.recycle_pending = True
                if self.exact_slot or not self.shown_busy or now - self.scoreboard.last_write >= START_PUBLISH_S:
                    self._publish()
                else:
                    self.stale = True  # another start was just written: the loop writes this one soon
        response = Response(conn, context, keep_alive, self, method, uri)
        app_failed = True
        try:
            app_failed = run_app(self.app, environ, response, self.log)
        except Exception as err:
            # Past run_app's own handling (a protocol failing to frame the response, a bug
            # here): the request still ends once, below, as an app failure would.
            self.escaped(response, err)
        finally:
            self.request_done(entry, environ, response, app_failed, (time.perf_counter() - t0) * 1e6, nvars, pktsize)
        keep = response.keep
        if keep and not body.eof:
            keep = body.drain()
        return keep and not self.going_away()

    def escaped(self, response: Response, err: Exception) -> None:
        """An exception that escaped ``run_app``: one error line with its traceback, a 500
        if nothing was sent yet, and the connection closes."""
        response.keep = False
        method, uri = response.method, response.uri
        self.log.error(
            "exception in %s %s: %s: %s" % (method, uri, type(err).__name__, exc_text(err)), {"method": method, "uri": uri}, err
        )
        if not response.sent:
            response.send_error()

    def request_done(
        self, entry: tuple, environ: dict, response: Response, app_failed: bool, rt_us: float, nvars: int, pktsize: int
    ) -> None:
        """Counts a finished request, shows the worker idle again, logs the request."""
        # The counters, the slot and the request log are the worker's, shared by its threads.
        lock = self.lock
        if lock is not None:
            lock.acquire()
        try:
            now = self.count_request(rt_us, response.tx, app_failed)
            inflight = self.inflight
            if inflight is None:
                self.current = None
            else:
                del inflight[id(entry)]
                self.current = next(iter(inflight.values()), None)
                if self.max_requests and self.recycle_due():
                    self.recycle_pending = True  # the loop recycles when this thread hands the connection back
            # Idle again: always with harakiri (a stale "busy" would be killed), else at most
            # every 100 ms; the loop's heartbeat writes the rest within heartbeatIntervalMs.
            if self.exact_slot or now - self.scoreboard.last_write >= IDLE_PUBLISH_S:
                self._publish()
            else:
                self.stale = True
            log = self.reqlog
            if not log.active:
                return  # (the finally below still releases the lock)
            status = int(response.status[:3]) if response.sent else 0  # type: ignore[index]
            rsize = max(0, response.tx - response.hsize)
            log.finished(self.spec["id"], self.requests, entry, environ, status, rt_us, rsize,
                         response.hcount, response.hsize, nvars, pktsize)
        finally:
            if lock is not None:
                lock.release()


def load_app(spec: dict, log: Log) -> Callable:
    """Imports the app (uWSGI's ``module`` / ``wsgi-file`` / ``callable``) and returns the
    WSGI callable; on any failure, one line naming the file and the exception, then exit 22."""
    app = spec["app"]
    target = app.get("wsgiFile") or app.get("module") or ""
    try:
        if app.get("wsgiFile"):
            path = app["wsgiFile"]
            # uWSGI names a wsgi-file's module after its path (uwsgi_pythonize).
            name = "uwsgi_file_" + re.sub(r"[^0-9A-Za-z_]", "_", path)
            mod_spec = importlib.util.spec_from_file_location(name, path)
            if mod_spec is None or mod_spec.loader is None:
                raise ImportError("cannot load %s as Python source" % path)
            module = importlib.util.module_from_spec(mod_spec)
            sys.modules[name] = module
            mod_spec.loader.exec_module(module)
            attr = app["callable"]
        else:
            name, _, attr = app["module"].partition(":")
            module = importlib.import_module(name)
            attr = attr or app["callable"]
        obj = getattr(module, attr, None)
        if obj is None:
            raise AttributeError("%s has no callable %r" % (target, attr))
        if not callable(obj):
            raise TypeError("%s: %r is a %s, not a WSGI callable" % (target, attr, type(obj).__name__))
        return obj
    except BaseException as err:  # noqa: B036 - SystemExit at import is a load failure too
        log.error("cannot load app %s: %s: %s" % (target, type(err).__name__, err), {"module": target}, err)
        os._exit(EXIT_APP_LOAD)


SHIMS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "shims")


def configure_uwsgi(spec: dict, worker_id: int) -> None:
    """Fills in the ``uwsgi`` module apps may import (``shims/uwsgi.py``): this worker's
    id (0 in the template), ``numproc``, ``opt``, ``masterpid()``."""
    found = importlib.machinery.PathFinder.find_spec("uwsgi")
    if found is None or found.origin is None or os.path.dirname(found.origin) != SHIMS_DIR:
        return  # the app brings a `uwsgi` module of its own: leave it alone
    import uwsgi  # noqa: PLC0415 - the shim, filled in before the app can import it

    app = spec["app"]
    uwsgi._configure(worker_id, int(app.get("masterPid") or 0), int(app.get("processes") or 1), int(spec.get("threads") or 1),
                  int(spec.get("bufferSize") or 4096), app.get("options") or [])


def run_postfork_hooks(log: Log) -> None:
    """Runs ``uwsgi.post_fork_hook`` (set by ``uwsgidecorators.postfork`` or the app), as
    uWSGI's python plugin does in each worker after the fork; exits 22 when it raises."""
    uwsgi = sys.modules.get("uwsgi")
    hook = getattr(uwsgi, "post_fork_hook", None)
    if hook is None:
        return
    try:
        hook()
    except BaseException as err:  # noqa: B036 - as a failed import
        log.error("post-fork hook failed: %s: %s" % (type(err).__name__, err), None, err)
        os._exit(EXIT_APP_LOAD)


def serve_and_exit(worker: "Worker") -> None:
    """Runs ``worker`` until it stops, flushes its request log and exits the process (1,
    with one line, when the loop itself failed); never returns."""
    try:
        worker.run()
    except Exception as err:
        worker.reqlog.flush()
        worker.log.write(60, "worker failed: %s: %s" % (type(err).__name__, err), None, err)
        os._exit(1)
    worker.reqlog.flush()
    os._exit(EXIT_OK)


def forked_worker(spec: dict, channel_fd: int, app: Callable) -> None:
    """Runs a worker forked by the template (``template.py``) with the app it imported,
    once the post-fork hooks ran; exits, never returns."""
    uwsgi = sys.modules.get("uwsgi")
    if uwsgi is not None and hasattr(uwsgi, "_configure"):
        uwsgi._worker_id = spec["id"]  # type: ignore[attr-defined]
    worker = Worker(spec, channel_fd)
    worker.app = app
    run_postfork_hooks(worker.log)
    serve_and_exit(worker)


def app_sys_path(path: list, ours: str, pythonpath: list, cwd: str) -> list:
    """The app's ``sys.path``: ``pythonpath`` entries first, in the order given, then the
    app's directory (the cwd, uWSGI's ``chdir``) where Python put the script's directory,
    then the rest of ``path`` without ``ours`` (the directory holding this package and its
    launcher, so none of our names can shadow the app's imports)."""
    rest = [p for p in path if os.path.abspath(p or ".") != ours]
    return list(pythonpath) + [cwd] + rest


def main() -> None:
    """The worker process: reads its spec, tidies the environment and ``sys.path`` for the
    app, and runs until stopped. Exits 0 after a graceful stop, 22 when the app or the spec
    cannot be loaded, 69 when a socket cannot be listened on, 1 on a bug."""
    raw = os.environ.pop("EMPEROR_WORKER", None)
    if raw is None:
        sys.stderr.write("EMPEROR_WORKER is not set: this program is started by a vassal master\n")
        os._exit(EXIT_APP_LOAD)
    spec = json.loads(raw)
    if spec.get("v") != SPEC_VERSION:
        sys.stderr.write("EMPEROR_WORKER: unsupported version %r\n" % spec.get("v"))
        os._exit(EXIT_APP_LOAD)
    # Nothing of the supervision leaks into the app's environment.
    for name in ("LISTEN_FDS", "LISTEN_FDNAMES", "LISTEN_PID", "NODE_CHANNEL_SERIALIZATION_MODE"):
        os.environ.pop(name, None)
    template = os.environ.pop("EMPEROR_TEMPLATE", None) == "1"
    channel = os.environ.pop("NODE_CHANNEL_FD", None)
    # The inherited fds are ours alone: a subprocess the app starts must not keep the
    # listening sockets, the scoreboard or the master's channel open.
    for fd in [s["fd"] for s in spec["sockets"]] + [spec["scoreboard"]["fd"]] + ([int(channel)] if channel else []):
        try:
            os.set_inheritable(fd, False)
        except OSError:
            pass
    faulthandler.enable()  # a crash in C code leaves its Python stack on stderr
    app = spec["app"]
    ours = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    # The shims last: an app that ships its own `uwsgi` or `uwsgidecorators` keeps it.
    sys.path[:] = app_sys_path(sys.path, ours, app.get("pythonpath") or [], os.getcwd()) + [SHIMS_DIR]
    sys.argv = [app.get("wsgiFile") or app.get("module") or "emperor-worker"]
    if template:
        if not channel:
            sys.stderr.write("EMPEROR_TEMPLATE: no channel to the master\n")
            os._exit(EXIT_APP_LOAD)
        configure_uwsgi(spec, 0)
        from .template import Template

        Template(spec, int(channel), lambda: load_app(spec, Log({"vassal": spec["vassal"], "template": spec["generation"]})),
                 forked_worker).run()
        os._exit(EXIT_OK)
    configure_uwsgi(spec, spec["id"])
    set_title("emperor worker %d" % spec["id"])
    worker = Worker(spec, int(channel) if channel else None)
    serve_and_exit(worker)
