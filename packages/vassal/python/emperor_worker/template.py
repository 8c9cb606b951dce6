"""The app template: imports the app once and forks every worker from it (uWSGI's
default, where the master is the template; ``lazy-apps`` turns it off). The master side
is packages/vassal/src/master/runtimes/python-fork.ts.

The template is spawned by the vassal master exactly as a lazy worker would be (same
fds, environment, working directory, ``limit-as``, pdeathsig), with ``EMPEROR_TEMPLATE``
set. It imports the app with the garbage collector off and freezes the heap
(``gc.freeze()``), so a worker's collections never write to the pages it shares with the
template (the CPython docs' recipe for fork without exec; Instagram's measured savings,
gunicorn#1640). Then it serves the master's channel, one JSON object per line both ways
(``MasterToTemplate`` / ``TemplateToMaster`` in packages/protocol/src/ipc.ts):

* ``fork``: a socket pair, ``fork()``; the parent answers ``forked`` with the pid; the
  child becomes the worker (:func:`Template.become_worker`) with its end of the pair as
  its channel to the master;
* each worker's messages on its pair go up as ``from-worker``; ``to-worker`` comes down;
* SIGCHLD: every exited worker is reaped and reported, ``worker-exit`` with its code or
  signal;
* ``stop`` (no worker left): exit; EOF (the master died): close every worker's channel
  (each exits within a second, as a lazy worker does) and exit.

A worker dies with its template: ``PR_SET_PDEATHSIG`` (SIGKILL), set first thing after
the fork, from the template's only thread (the kernel ties it to the thread that forked).
"""

from __future__ import annotations

import ctypes
import gc
import os
import resource
import selectors
import signal
import socket
import sys
import time
from typing import Any, Callable, Dict, Tuple

from .channel import Channel
from .contract import EXIT_APP_LOAD, EXIT_OK, IPC_VERSION
from . import speedups
from .log import Log

PR_SET_PDEATHSIG = 1
PR_SET_NAME = 15
# After the master's death, how long the template waits for its workers to end, s.
ORPHAN_WAIT_S = 1.5


def exit_of(status: int) -> Tuple[Any, Any]:
    """``(code, signal name)`` of a wait status, exactly one of them set (as Node's exit event)."""
    if os.WIFSIGNALED(status):
        num = os.WTERMSIG(status)
        try:
            return None, signal.Signals(num).name
        except ValueError:
            return None, "SIG%d" % num
    return os.WEXITSTATUS(status), None


def set_title(title: str) -> None:
    """The process name ``ps`` and ``ss`` show (PR_SET_NAME, 15 bytes)."""
    try:
        ctypes.CDLL(None).prctl(PR_SET_NAME, ctypes.c_char_p(title.encode()[:15]), 0, 0, 0)
    except Exception:
        pass


class Template:
    """The template of one vassal generation: ``spec`` as for a worker (its app, sockets,
    ``logto``), the master's channel on ``channel_fd``; ``load`` imports the app
    (exiting 22 when it cannot), ``run`` serves forks until stopped."""

    def __init__(self, spec: dict, channel_fd: int, load: Callable[[], Callable], start_worker: Callable[[dict, int, Callable], None]) -> None:
        self.spec = spec
        self.log = Log({"vassal": spec["vassal"], "template": spec["generation"]})
        self.channel = Channel(channel_fd)
        self.load = load
        self.start_worker = start_worker
        self.app: Callable = None  # type: ignore[assignment]
        self.pid = os.getpid()
        self.links: Dict[int, Tuple[int, Channel]] = {}  # fork id → (pid, its channel)
        self.pids: Dict[int, int] = {}  # pid → fork id, until reaped
        self.stopping = False
        self.orphaned_at = 0.0
        self.sel = selectors.DefaultSelector()
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(self.wake_w, False)

    def send(self, message: dict) -> None:
        self.channel.send(message)

    def run(self) -> None:
        """Imports the app, reports ``loaded``, then serves the master until stopped."""
        set_title("emperor tmpl %s" % self.spec["generation"])
        # CPython's recipe for fork without exec: no collection in the parent (it would
        # leave holes that the children then fill, copying pages), freeze before forking.
        gc.disable()
        self.app = self.load()
        from .asgi import wanted  # noqa: PLC0415 - light: no asyncio unless the app is ASGI

        if wanted(self.spec, self.app):
            # The ASGI server and asyncio load here, once, into pages the workers share,
            # rather than in every worker after the fork.
            from .asgi import server  # noqa: F401, PLC0415
        gc.freeze()
        signal.set_wakeup_fd(self.wake_w, warn_on_full_buffer=False)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.signal(signal.SIGTERM, self._on_sigterm)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        self.sel.register(self.wake_r, selectors.EVENT_READ, self.reap)
        self.sel.register(self.channel.fd, selectors.EVENT_READ, self.on_master)
        self.log.info("app loaded; forking workers from it", {"template_pid": self.pid, **speedups.load_fields()})
        self.send({"v": IPC_VERSION, "type": "loaded"})
        while True:
            if self.stopping and not self.pids:
                break
            timeout = None
            if self.orphaned_at:
                timeout = max(0.0, self.orphaned_at + ORPHAN_WAIT_S - time.monotonic())
                if timeout == 0.0:
                    break
            for key, _ in self.sel.select(timeout):
                key.data()
        os._exit(EXIT_OK)

    def _on_sigterm(self, *_: Any) -> None:
        # Only a flag: the wake-up fd ends select(). Workers stop on the master's word.
        self.stopping = True

    # -- the master's side -------------------------------------------------------------

    def on_master(self) -> None:
        messages = self.channel.read()
        if messages is None:
            # The master is gone: close every worker's channel (each then exits within a
            # second) and wait a little for them; pdeathsig ends any that is left.
            self.sel.unregister(self.channel.fd)
            for wid in list(self.links):
                self.unlink(wid)
            self.stopping = True
            self.orphaned_at = time.monotonic()
            return
        for m in messages:
            if not isinstance(m, dict) or "cmd" in m:
                continue  # Node's internal messages (NODE_*)
            kind = m.get("type") if m.get("v") == IPC_VERSION else None
            if kind == "fork":
                self.fork(m)
            elif kind == "to-worker":
                link = self.links.get(m.get("id"))  # type: ignore[arg-type]
                if link is not None:
                    link[1].send(m.get("message"))
            elif kind == "stop":
                self.stopping = True
            else:
                self.log.warn("master→template: unknown message %s" % str(m)[:120])

    def fork(self, m: dict) -> None:
        """Forks worker ``m["id"]``; answers ``forked`` or ``fork-failed``."""
        wid = int(m["id"])
        try:
            ours, theirs = socket.socketpair()
        except OSError as err:
            self.send({"v": IPC_VERSION, "type": "fork-failed", "id": wid, "reason": "socketpair: %s" % err})
            return
        try:
            pid = os.fork()
        except OSError as err:
            ours.close()
            theirs.close()
            self.send({"v": IPC_VERSION, "type": "fork-failed", "id": wid, "reason": "fork: %s" % err})
            return
        if pid == 0:
            try:
                ours.close()
                self.become_worker(m, theirs.detach())
            except BaseException as err:  # noqa: B036 - nothing may return into the template's loop
                try:
                    self.log.error("worker failed after the fork: %s: %s" % (type(err).__name__, err), None, err)
                finally:
                    os._exit(1)
            os._exit(EXIT_OK)
        theirs.close()
        fd = ours.detach()
        link = Channel(fd)
        self.links[wid] = (pid, link)
        self.pids[pid] = wid
        self.sel.register(fd, selectors.EVENT_READ, lambda: self.on_worker(wid))
        self.send({"v": IPC_VERSION, "type": "forked", "id": wid, "pid": pid})

    # -- the workers' side -------------------------------------------------------------

    def on_worker(self, wid: int) -> None:
        link = self.links.get(wid)
        if link is None:
            return
        messages = link[1].read()
        if messages is None:
            self.unlink(wid)  # it exited (or closed its channel); SIGCHLD reports how
            return
        for message in messages:
            self.send({"v": IPC_VERSION, "type": "from-worker", "id": wid, "message": message})

    def unlink(self, wid: int) -> None:
        link = self.links.pop(wid, None)
        if link is None:
            return
        try:
            self.sel.unregister(link[1].fd)
        except (KeyError, ValueError):
            pass
        os.close(link[1].fd)

    def reap(self) -> None:
        """SIGCHLD (or any signal): reports every worker that exited."""
        try:
            while os.read(self.wake_r, 512):
                pass
        except OSError:
            pass
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            wid = self.pids.pop(pid, None)
            if wid is None:
                continue
            # Messages it wrote before it died go up before its exit.
            if wid in self.links:
                self.on_worker(wid)
                self.unlink(wid)
            code, sig = exit_of(status)
            self.send({"v": IPC_VERSION, "type": "worker-exit", "id": wid, "pid": pid, "code": code, "signal": sig})

    def become_worker(self, m: dict, fd: int) -> None:
        """In the forked child: die with the template, leave its state, apply this
        worker's limits, then run as a worker on ``fd`` (never returns)."""
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != self.pid:
            os._exit(1)  # the template died before the line above: no orphan
        signal.set_wakeup_fd(-1)
        for sig in (signal.SIGCHLD, signal.SIGTERM):
            signal.signal(sig, signal.SIG_DFL)
        self.sel.close()
        for link_fd in [self.channel.fd, self.wake_r, self.wake_w] + [link.fd for _, link in self.links.values()]:
            try:
                os.close(link_fd)
            except OSError:
                pass
        self.links.clear()
        self.pids.clear()
        cpus = m.get("cpus") or []
        if cpus:
            os.sched_setaffinity(0, cpus)
        limit_as = int(m.get("limitAsBytes") or 0)
        if limit_as > 0:
            resource.setrlimit(resource.RLIMIT_AS, (limit_as, limit_as))
        gc.enable()
        spec = m["spec"]
        logto = spec.get("logto")
        if logto:
            # The template's stdout and stderr may be a file logrotate moved since: each
            # worker opens the path itself, as after a reopen-logs.
            log_fd = os.open(logto, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
            os.dup2(log_fd, 1)
            os.dup2(log_fd, 2)
            os.close(log_fd)
        set_title("emperor worker %d" % spec["id"])
        self.start_worker(spec, fd, self.app)
        sys.stdout.flush()
