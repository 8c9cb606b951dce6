"""The app template (emperor_worker/template.py) and the uwsgi shims, without a master:
the test plays the master on a socket pair, the template runs in a forked process."""

import json
import os
import select
import signal
import socket
import sys
import time
import unittest

import helpers  # noqa: F401 - puts the package on sys.path

from emperor_worker import template as tmpl
from emperor_worker.channel import Channel
from emperor_worker.log import Log

SHIMS = os.path.join(helpers.PACKAGE_DIR, "shims")
if SHIMS not in sys.path:
    sys.path.append(SHIMS)

import uwsgi  # noqa: E402
import uwsgidecorators  # noqa: E402


def gone(pid):
    """True when no running process has ``pid`` (missing, or a zombie nobody reaped yet)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except OSError:
        return True


class ExitOf(unittest.TestCase):
    def status_of(self, child):
        pid = os.fork()
        if pid == 0:
            child()
            os._exit(0)
        return os.waitpid(pid, 0)[1]

    def test_code_and_signal(self):
        self.assertEqual(tmpl.exit_of(self.status_of(lambda: os._exit(3))), (3, None))
        self.assertEqual(tmpl.exit_of(self.status_of(lambda: os.kill(os.getpid(), signal.SIGKILL))), (None, "SIGKILL"))
        self.assertEqual(tmpl.exit_of(self.status_of(lambda: None)), (0, None))


class Shims(unittest.TestCase):
    def test_uwsgi_module(self):
        uwsgi._configure(2, 4242, 4, 1, 8192, [["processes", "4"], ["env", "A=1"], ["env", "B=2"], ["env", "C=3"], ["master", ""]])
        self.assertEqual(uwsgi.worker_id(), 2)
        self.assertEqual(uwsgi.masterpid(), 4242)
        self.assertEqual(uwsgi.numproc, 4)
        self.assertEqual(uwsgi.opt["processes"], b"4")
        self.assertEqual(uwsgi.opt["env"], [b"A=1", b"B=2", b"C=3"])
        self.assertEqual(uwsgi.opt["master"], b"")
        self.assertEqual(uwsgi.mule_id(), 0)
        self.assertIsInstance(uwsgi.version, bytes)
        uwsgi._configure(1, 4242, 4, 1, 8192, [])
        self.assertEqual(uwsgi.opt, {})

    def test_postfork_chain(self):
        ran = []
        uwsgidecorators.postfork_chain.clear()

        @uwsgidecorators.postfork
        def everywhere():
            ran.append(("all", uwsgi.worker_id()))

        @uwsgidecorators.postfork(2)
        def second():
            ran.append(("two", uwsgi.worker_id()))

        self.assertEqual(uwsgi.post_fork_hook.__name__, "_postfork_chain_hook")
        for wid in (1, 2):
            uwsgi._worker_id = wid
            uwsgi.post_fork_hook()
        self.assertEqual(ran, [("all", 1), ("all", 2), ("two", 2)])
        uwsgidecorators.postfork_chain.clear()

    def test_thread(self):
        done = []

        @uwsgidecorators.thread
        def work(x):
            done.append(x)

        work(5)
        deadline = time.monotonic() + 5
        while not done and time.monotonic() < deadline:
            time.sleep(0.01)
        self.assertEqual(done, [5])


class Master:
    """The master's end of a template's channel."""

    def __init__(self, fd):
        self.channel = Channel(fd)
        self.pending = []

    def send(self, message):
        self.channel.send(message)

    def next(self, timeout=10.0):
        deadline = time.monotonic() + timeout
        while not self.pending:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("no message from the template in %.0f s" % timeout)
            select.select([self.channel.fd], [], [], left)
            got = self.channel.read()
            if got is None:
                raise AssertionError("the template closed its channel")
            self.pending.extend(got)
        return self.pending.pop(0)


def start_worker(spec, fd, app):
    """A worker that says what the app returns, echoes one message from the master, and exits with ``spec["code"]``."""
    link = Channel(fd)
    link.send({"v": 1, "type": "said", "app": app(), "pid": os.getpid(), "pdeathsig": _pdeathsig()})
    if spec.get("sleep"):
        time.sleep(spec["sleep"])
    select.select([fd], [], [], 10)
    for m in link.read() or []:
        link.send({"v": 1, "type": "echo", "message": m})
    os._exit(spec["code"])


def _pdeathsig():
    import ctypes

    out = ctypes.c_int(0)
    ctypes.CDLL(None).prctl(2, ctypes.byref(out), 0, 0, 0)  # PR_GET_PDEATHSIG
    return out.value


class TemplateProcess(unittest.TestCase):
    def start(self, load=lambda: (lambda: "hello")):
        ours, theirs = socket.socketpair()
        pid = os.fork()
        if pid == 0:
            try:
                ours.close()
                os.environ["EMPEROR_LOG_PRETTY"] = "0"
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, 2)
                tmpl.Template({"vassal": "t.ini", "generation": 1}, theirs.detach(), load, start_worker).run()
            finally:
                os._exit(70)
        theirs.close()
        master = Master(ours.detach())
        self.addCleanup(self.reap, pid)
        return pid, master

    def reap(self, pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass

    def fork(self, master, wid, **spec):
        master.send({"v": 1, "type": "fork", "id": wid, "spec": dict(spec, id=wid), "cpus": [], "limitAsBytes": 0})

    def test_forks_relays_and_reports_exits(self):
        pid, master = self.start()
        self.assertEqual(master.next(), {"v": 1, "type": "loaded"})
        self.fork(master, 7, code=3)
        forked = master.next()
        self.assertEqual((forked["type"], forked["id"]), ("forked", 7))
        said = master.next()
        self.assertEqual(said["type"], "from-worker")
        self.assertEqual(said["message"]["app"], "hello", "the app the template imported")
        self.assertEqual(said["message"]["pid"], forked["pid"])
        self.assertEqual(said["message"]["pdeathsig"], signal.SIGKILL)
        master.send({"v": 1, "type": "to-worker", "id": 7, "message": {"v": 1, "type": "stop"}})
        echo = master.next()
        self.assertEqual(echo["message"], {"v": 1, "type": "echo", "message": {"v": 1, "type": "stop"}})
        self.assertEqual(master.next(), {"v": 1, "type": "worker-exit", "id": 7, "pid": forked["pid"], "code": 3, "signal": None})
        # A worker killed by a signal is reported with its name.
        self.fork(master, 8, code=0, sleep=30)
        victim = master.next()["pid"]
        master.next()  # its "said"
        os.kill(victim, signal.SIGKILL)
        self.assertEqual(master.next(), {"v": 1, "type": "worker-exit", "id": 8, "pid": victim, "code": None, "signal": "SIGKILL"})
        # stop: the template exits 0 once no worker is left.
        master.send({"v": 1, "type": "stop"})
        _, status = os.waitpid(pid, 0)
        self.assertEqual(tmpl.exit_of(status), (0, None))

    def test_no_worker_outlives_its_template(self):
        pid, master = self.start()
        master.next()
        workers = []
        for wid in (1, 2):
            self.fork(master, wid, code=0, sleep=30)
            workers.append(master.next()["pid"])
            master.next()
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        deadline = time.monotonic() + 5
        while not all(gone(w) for w in workers) and time.monotonic() < deadline:
            time.sleep(0.01)
        self.assertTrue(all(gone(w) for w in workers), "workers %s outlived their template" % workers)

    def test_import_failure_exits_before_loaded(self):
        def broken():
            Log({"vassal": "t.ini"}).error("cannot load app")
            os._exit(22)

        pid, master = self.start(broken)
        _, status = os.waitpid(pid, 0)
        self.assertEqual(tmpl.exit_of(status), (22, None))
        self.assertIsNone(master.channel.read(), "nothing but EOF: no 'loaded'")

    def test_master_gone(self):
        pid, master = self.start()
        master.next()
        self.fork(master, 1, code=5)
        master.next()
        master.next()
        os.close(master.channel.fd)
        _, status = os.waitpid(pid, 0)
        self.assertEqual(tmpl.exit_of(status), (0, None), "the template exits when the master is gone")


if __name__ == "__main__":
    unittest.main()
