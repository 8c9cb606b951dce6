"""The serving loop's connections: accept on the inherited listeners, gather request heads,
keep idle keep-alive connections, hand each request to the worker, and with ``threads``
hand connections to request threads and back.

One ``poll`` is one round of the loop (``worker.py`` runs the rounds): an epoll (or
poll(2)) wait over the listeners, the connections, and whatever the worker watches (its
IPC channel; a wake-up pipe that signals and request threads write to). The bytes are the
protocols' business (``protocols/``), the request the worker's (``Worker.handle``).
"""

from __future__ import annotations

import os
import queue
import select
import socket
import struct
import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Any, Callable, Optional

from .connection import FD_SOCKETS, RECV_SIZE, ClientError, Conn, FdSock
from .protocols import ProtocolError, make_protocol
from .speedups import C as SPEEDUPS

# accept4 + the first read in one C call, where the C accelerator is built (speedups.py).
ACCEPT_READ = SPEEDUPS.accept_read if SPEEDUPS is not None and FD_SOCKETS else None

if TYPE_CHECKING:
    from .log import Log
    from .worker import Worker

# An idle keep-alive connection is closed after this long, s (Node's http keepAliveTimeout).
KEEPALIVE_TIMEOUT_S = 5.0
# How often idle keep-alive connections are looked for, s.
SWEEP_S = 0.5
# With threads, while every thread is taken the listening sockets leave the selector (a
# readable listener would wake the loop at once, again and again). As requests end, one
# connection is still taken from them at most this often, s, so busy keep-alive
# connections cannot starve new ones (a worker whose threads are all stuck takes none:
# other workers can).
ACCEPT_PAUSED_S = 0.01
# Open connections per worker; past it the longest-idle keep-alive connection is closed.
MAX_CONNECTIONS = 512
# Without threads, after a connection served and closed at accept, the worker takes the
# next one from the same listener at once, up to this many in a row, instead of going
# back to the wait first (one epoll_wait and one loop round fewer per request under load;
# uWSGI's workers wait once per connection). A failed try costs one accept4 (EAGAIN).
ACCEPT_BURST = 8
# Without threads, how long accept waits for a new connection's first bytes when they are
# not there yet, ms. An HTTP client writes its request right after connect, a few µs
# later; a worker that parked such a connection and went back to the wait would take the
# next one too before its idle peers woke (measured: 4 concurrent slow requests to 4
# workers all landed on one, and were served one after the other). Waiting this long
# serves it at once, so the next connections go to the other workers; a client that
# sends nothing holds the worker this long and is then parked (slowloris still holds a
# connection, not the worker).
FIRST_BYTES_WAIT_MS = 2


class Poller:
    """The loop's readiness wait: epoll where there is one (Linux), else poll(2). Level-
    triggered readability only, by fd; each fd has the loop's ``data`` for it.

    Used in place of ``selectors`` on the hot path: one C call per wait returns
    ``(fd, events)`` pairs, without selectors' key objects and map lookups per event.
    """

    __slots__ = ("impl", "data", "epoll")

    def __init__(self) -> None:
        self.epoll = hasattr(select, "epoll")
        self.impl: Any = select.epoll() if self.epoll else select.poll()
        self.data: dict = {}  # fd → the loop's data for it

    def register(self, fd: int, data: tuple) -> None:
        """Watches ``fd`` for readability.

        :raises OSError: an invalid fd; FileExistsError when it is watched already (epoll)
        """
        if fd in self.data:
            raise KeyError("fd %d is already registered" % fd)
        self.impl.register(fd, select.EPOLLIN if self.epoll else select.POLLIN)
        self.data[fd] = data

    def unregister(self, fd: int) -> None:
        """Stops watching ``fd``.

        :raises KeyError: it was not watched
        """
        del self.data[fd]
        try:
            self.impl.unregister(fd)
        except (OSError, ValueError):
            pass  # closed already: the kernel dropped it

    def close(self) -> None:
        """Closes the epoll fd (nothing for poll(2)); the fds watched stay open."""
        if self.epoll:
            self.impl.close()
        self.data.clear()

    def wait(self, timeout_s: Optional[float]) -> list:
        """``(fd, events)`` of the fds ready within ``timeout_s`` (None: no limit)."""
        if self.epoll:
            return self.impl.poll(-1 if timeout_s is None else timeout_s)
        return self.impl.poll(None if timeout_s is None else int(timeout_s * 1000 + 0.999))


class ListenError(Exception):
    """listen() failed on an inherited socket (``name`` as configured; ``cause`` the OSError)."""

    def __init__(self, name: str, cause: OSError) -> None:
        super().__init__("cannot listen on %s: %s" % (name, cause))
        self.name = name
        self.cause = cause


class Server:
    """The connections of one worker process.

    ``worker`` is what requests go to and what decides the lifecycle: its ``handle(conn,
    request)`` serves one request and says whether the connection stays open; the loop
    also reads its ``recycle_pending`` and ``max_requests``, calls ``check_recycle()``
    after requests, and ``die()`` when a request thread meets SystemExit.
    ``buffer_size`` (bytes) bounds request heads; ``socket_timeout_s`` each client read
    and write, and how long a head may take from its first byte. ``threads`` > 1 serves
    that many requests at once, one per thread; ``lock`` is then the worker's lock.
    """

    def __init__(
        self, worker: "Worker", log: "Log", buffer_size: int, socket_timeout_s: float, threads: int,
        lock: Optional[threading.RLock], date: Callable[[], str],
    ) -> None:
        self.worker = worker
        self.log = log
        self.buffer_size = buffer_size
        self.socket_timeout_s = socket_timeout_s
        #: ``TCP_DEFER_ACCEPT`` on uwsgi TCP listeners (off with ``no-defer-accept``).
        self.defer_accept = True
        self.date = date
        self.selector = Poller()
        self.listeners: list = []
        self.listener_keys: dict = {}  # fd → each listener's poller data, to register it again (see dispatch)
        self.conns: dict = {}
        self.partial: set = set()  # connections whose request head is not all there (see request_ready)
        self.accepting = False
        self.last_sweep = time.monotonic()
        # What accept reads a new connection's first bytes into (see accept).
        self.first_read = [bytearray(RECV_SIZE)]
        self.first_waiter = select.poll()  # see first_bytes
        # `threads` > 1: request threads take connections whose request head is all there
        # (see dispatch); the loop keeps accepting, reading heads and keep-alive for them.
        self.threads = threads
        self.lock = lock
        self.ready_conns: "queue.SimpleQueue[Conn]" = queue.SimpleQueue()
        self.done: deque = deque()  # (conn, keep) handed back by request threads
        self.busy = 0  # connections handed to request threads and not back yet
        self.paused_since = 0.0  # listeners out of the selector (every thread taken) since, or the last accept then; 0 when not
        # Written to wake the loop: by signals (signal.set_wakeup_fd) and request threads.
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(self.wake_w, False)
        self.selector.register(self.wake_r, ("wake",))

    # -- setting up -----------------------------------------------------------------

    def listen(self, sockets: list, backlog: int) -> None:
        """Listens on the inherited sockets (``{fd, name, protocol}`` each, from the spec).

        :raises ListenError: listen() failed (two vassals bound the same port before
            either listened: the second loses here)
        :raises ValueError: a socket protocol this worker does not speak
        """
        for s in sockets:
            sock = socket.socket(fileno=s["fd"])
            try:
                sock.listen(backlog)
            except OSError as err:
                raise ListenError(s["name"], err)
            sock.setblocking(False)
            # Set once here, inherited by every accepted connection (Linux copies them in
            # accept): kernel timeouts on blocking sockets make each recv/send one syscall,
            # where a Python socket timeout polls before every call.
            # SO_RCVTIMEO / SO_SNDTIMEO: each recv or send waits at most socket-timeout for progress.
            timeval = struct.pack("ll", int(self.socket_timeout_s), int(self.socket_timeout_s % 1 * 1e6))
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeval)
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no Nagle delay on keep-alive
                if s["protocol"] == "uwsgi" and self.defer_accept and hasattr(socket, "TCP_DEFER_ACCEPT"):
                    # A connection is accepted once its first bytes are there (a uwsgi
                    # client speaks first: nginx writes the packet right after connecting),
                    # so accept's non-waiting read finds the request, instead of the worker
                    # waking for the connection and again for its bytes. One that sends
                    # nothing is accepted after about this long anyway (Linux: tcp(7)).
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT, max(1, int(self.socket_timeout_s)))
            try:
                name = sock.getsockname()
            except OSError:
                name = ""
            if isinstance(name, tuple):
                server = (str(name[0]), str(name[1]), "")
            else:
                server = ("localhost", "80", name if isinstance(name, str) else "")
            protocol = make_protocol(s["protocol"], self.buffer_size, server, self.date, getattr(self.worker, "spec", None))
            self.listeners.append(sock)
            key = ("listener", protocol, (int(sock.family), int(sock.type)), sock)
            self.listener_keys[sock.fileno()] = key
            self.selector.register(sock.fileno(), key)

    def start(self) -> None:
        """Starts the request threads (with ``threads`` > 1) and accepting."""
        for i in range(self.threads if self.threads > 1 else 0):
            threading.Thread(target=self.request_thread, name="request-%d" % (i + 1), daemon=True).start()
        self.accepting = True

    def watch(self, fd: int, on_readable: Callable[[], None]) -> None:
        """Calls ``on_readable`` from the loop whenever ``fd`` is readable."""
        self.selector.register(fd, ("call", on_readable))

    def unwatch(self, fd: int) -> None:
        """Stops calling back for ``fd`` (see watch)."""
        try:
            self.selector.unregister(fd)
        except (KeyError, ValueError):
            pass

    def wake(self) -> None:
        """Ends the loop's current wait (from any thread)."""
        try:
            os.write(self.wake_w, b"t")
        except OSError:
            pass  # the pipe is full: the loop is awake already

    # -- one round of the loop ------------------------------------------------------

    def head_deadline(self) -> Optional[float]:
        """Seconds until the oldest incomplete request head times out; None when there is none."""
        if not self.partial:
            return None
        return max(0.0, min(c.head_since for c in self.partial) + self.socket_timeout_s - time.monotonic())

    def poll(self, wait: Optional[float]) -> None:
        """Waits up to ``wait`` seconds (None: until something happens) and handles what came:
        requests, new connections, the watched fds; then times out stalled heads and
        closes keep-alive connections idle too long."""
        events = self.selector.wait(wait)
        # Connections request threads are done with first: the threads they free count
        # for this round's accepts.
        while self.done:
            self.returned(*self.done.popleft())
        fds = self.selector.data
        # Requests on connections we hold come first; we accept only when we had none
        # to serve, so a new connection goes to a worker with nothing to do.
        had_work = len(events) > 1 and any(fds.get(fd, ("",))[0] == "conn" for fd, _ in events)
        for fd, _ in events:
            data = fds.get(fd)
            if data is None:
                continue  # unregistered by an earlier event of this round
            kind = data[0]
            if kind == "conn":
                conn = data[1]
                if conn.fd in self.conns:
                    self.serve(conn)
            elif kind == "listener":
                # With threads, listeners are in the poller only while a thread is free.
                if self.lock is not None:
                    self.accept(data[3], data[1], data[2])
                elif not had_work:
                    # Without threads: a connection served and closed at once is followed
                    # by the next one from the same listener (see ACCEPT_BURST).
                    burst = ACCEPT_BURST
                    while self.accept(data[3], data[1], data[2]) and burst:
                        burst -= 1
            elif kind == "call":
                data[1]()
            else:
                try:
                    while os.read(self.wake_r, 512):
                        pass
                except OSError:
                    pass
        now = time.monotonic()
        if self.partial:
            for conn in [c for c in self.partial if now - c.head_since >= self.socket_timeout_s]:
                self.head_timeout(conn)
        if now - self.last_sweep >= SWEEP_S:
            self.last_sweep = now
            for conn in [c for c in self.conns.values() if not c.head_since and not c.busy and now - c.last_active > KEEPALIVE_TIMEOUT_S]:
                self.close(conn)

    # -- connections ----------------------------------------------------------------

    def accept(self, listener: socket.socket, protocol: Any, family: tuple) -> bool:
        """Takes one connection from ``listener`` (of ``protocol``; ``family`` is its
        (family, type)) and serves its request at once when it is already there.
        Returns True when it served the connection to its end (closed): the caller may
        take the next one; False when there was none, or it stays open."""
        # One connection per wake-up: the other workers woke too and take the next ones,
        # which spreads keep-alive connections over the pool.
        worker = self.worker
        if not self.accepting or worker.recycle_pending or worker.stop_requested:
            return False  # stopped accepting earlier in this round of events, or about to
        data: Any = None
        if ACCEPT_READ is not None:
            # The C path: accept4 and the first non-waiting read in one call (None: no
            # connection waiting; data as below).
            try:
                got = ACCEPT_READ(listener.fileno())
            except OSError as err:
                self.log.warn("accept failed: %s" % err)
                return False
            if got is None:
                return False
            fd, peer, data = got
            sock: Any = FdSock(fd)
        else:
            try:
                # What socket.accept() does, minus its family/type lookups: the fd comes back
                # blocking, with the listener's timeouts and TCP_NODELAY.
                fd, peer = listener._accept()  # type: ignore[attr-defined]
            except (BlockingIOError, InterruptedError):
                return False
            except OSError as err:
                self.log.warn("accept failed: %s" % err)
                return False
            sock = FdSock(fd) if FD_SOCKETS else socket.socket(family[0], family[1], 0, fileno=fd)
        if len(self.conns) >= MAX_CONNECTIONS:
            idle = min((c for c in self.conns.values() if not c.busy), key=lambda c: c.last_active, default=None)
            if idle is not None:
                self.close(idle)
        conn = Conn(sock, peer, protocol)
        self.conns[fd] = conn
        # Usually the request is already there (nginx writes it right after connecting):
        # serve it now, without a round through the poller. The read does not wait.
        try:
            if ACCEPT_READ is not None:
                pass  # read already, by accept_read (b"" at EOF or a failed read)
            elif FD_SOCKETS:
                first = self.first_read
                n = os.preadv(fd, first, -1, os.RWF_NOWAIT)
                data = first[0][:n]
            else:
                data = sock.recv(RECV_SIZE, socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            data = None
        except OSError:
            self.close(conn)
            return False
        if data is None and self.lock is None:
            data = self.first_bytes(conn)
            if data is False:
                return False  # closed
        if not data:
            if data is not None:
                self.close(conn)  # EOF before a request
                return False
        else:
            conn.buf = data if type(data) is bytearray else bytearray(data)
            if not self.serve(conn, False):
                return True  # served (or refused) and closed
            if conn.busy:
                return False  # a request thread has it (and registers it when done)
        self.selector.register(conn.fd, ("conn", conn))
        conn.registered = True
        return False

    def first_bytes(self, conn: Conn) -> Any:
        """Waits up to :data:`FIRST_BYTES_WAIT_MS` for ``conn``'s first bytes; returns
        them, None when none came, b"" at EOF, or False when the read failed (closed)."""
        waiter = self.first_waiter
        fd = conn.fd
        waiter.register(fd, select.POLLIN)
        try:
            if not waiter.poll(FIRST_BYTES_WAIT_MS):
                return None
        finally:
            waiter.unregister(fd)
        try:
            if FD_SOCKETS:
                first = self.first_read
                n = os.preadv(fd, first, -1, os.RWF_NOWAIT)  # FD_SOCKETS: preadv2 with RWF_NOWAIT is there
                return first[0][:n]
            return conn.sock.recv(RECV_SIZE, socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return None
        except OSError:
            self.close(conn)
            return False

    def close(self, conn: Conn) -> None:
        """Forgets and closes ``conn`` (nothing when it is closed already)."""
        if self.conns.pop(conn.fd, None) is None:
            return
        self.partial.discard(conn)
        if conn.registered:
            try:
                self.selector.unregister(conn.fd)
            except KeyError:
                pass
        try:
            conn.sock.close()
        except OSError:
            pass

    def close_all(self) -> None:
        """Closes every connection, those request threads have included (they notice on return)."""
        for conn in list(self.conns.values()):
            self.close(conn)

    def stop_accepting(self) -> None:
        """Closes this process's copies of the listening sockets; the master keeps its own."""
        for sock in self.listeners:
            try:
                self.selector.unregister(sock.fileno())
            except KeyError:
                pass
            sock.close()  # close, never shutdown: shutdown would stop the shared socket for everyone
        self.listeners = []
        self.accepting = False
        self.paused_since = 0.0

    def request_ready(self, conn: Conn) -> bool:
        """Whether ``conn.buf`` holds a whole request head, or enough to refuse it (the
        protocol's ``head_ready``). A worker serves one request at a time (per thread), so
        it never waits inside a request for a client's head: a slow or stalled sender
        (slowloris) would hold it for as long as it trickles bytes, since socket-timeout
        bounds each read, not the head. The connection goes back to the selector instead,
        and the loop closes it (head_timeout) if the head is not complete socket-timeout
        after its first byte."""
        buf = conn.buf
        if conn.protocol.head_ready(buf):
            if conn.head_since:
                conn.head_since = 0.0
                self.partial.discard(conn)
            return True
        if buf and not conn.head_since:
            conn.head_since = time.monotonic()
            self.partial.add(conn)
        return False

    def serve(self, conn: Conn, read: bool = True) -> bool:
        """Serves the request(s) ready on ``conn`` (read them first unless ``read`` is False);
        keeps it open for the next one or closes it. Returns whether it stays open."""
        keep = False
        try:
            if read and not conn.recv_more():
                if not conn.buf:
                    self.close(conn)
                    return False
                # The client closed with part of a head sent: its protocol reports it.
                keep = self.serve_one(conn, True)
            elif not self.request_ready(conn):
                return True  # back to the selector until the rest of the head comes
            elif self.lock is not None:
                self.dispatch(conn)
                return True
            else:
                keep = self.serve_one(conn)
            while keep and conn.buf:
                if not self.request_ready(conn):
                    break  # a pipelined request's head is still on its way
                keep = self.serve_one(conn)  # pipelined requests already read
        except ClientError:
            keep = False
        except Exception as err:  # a bug in this worker: log it, drop the connection, keep serving
            self.log.error("internal error serving %s: %s" % (conn.peer_text(), err), None, err)
            keep = False
        if keep:
            conn.last_active = time.monotonic()
        else:
            self.close(conn)
        worker = self.worker
        if worker.max_requests:
            worker.check_recycle()
        return keep

    def serve_one(self, conn: Conn, eof: bool = False) -> bool:
        """The request at the head of ``conn.buf``, refused or served; whether the connection stays open."""
        try:
            request = conn.protocol.read_request(conn.buf, eof, conn.peer)
        except ProtocolError as err:
            self.refuse(conn, err)
            return False
        if request is None:
            return False
        if request[0] is None:  # answered without the app (FastCGI's management records)
            try:
                conn.sock.sendall(request[1])
            except OSError:
                return False
            return request[3]
        return self.worker.handle(conn, request)

    def refuse(self, conn: Conn, err: ProtocolError) -> None:
        """One log line in the protocol's words, and its answer if it has one."""
        msg, fields = conn.protocol.refusal(conn.peer_text(), err.reason, False)
        self.log.warn(msg, fields)
        if err.response:
            try:
                conn.sock.sendall(err.response)
            except OSError:
                pass

    def head_timeout(self, conn: Conn) -> None:
        """Closes a connection whose request head did not come in time (see request_ready)."""
        reason = "request head not complete %g s after its first byte (%d bytes)" % (self.socket_timeout_s, len(conn.buf))
        protocol = conn.protocol
        msg, fields = protocol.refusal(conn.peer_text(), reason, True)
        self.log.warn(msg, fields)
        if protocol.timeout_response:
            try:
                conn.sock.send(protocol.timeout_response, socket.MSG_DONTWAIT)
            except OSError:
                pass
        self.close(conn)

    # -- threads ----------------------------------------------------------------------

    def dispatch(self, conn: Conn) -> None:
        """Hands a connection whose request head is all there to a request thread (the
        next free one). The loop stops watching it until the thread hands it back (see
        returned), and stops watching the listeners while every thread is taken."""
        if conn.registered:
            try:
                self.selector.unregister(conn.fd)
            except KeyError:
                pass
            conn.registered = False
        conn.busy = True
        self.busy += 1
        self.ready_conns.put(conn)  # past `threads`, it waits there for the next free one
        if self.busy >= self.threads and not self.paused_since and self.listeners:
            for sock in self.listeners:
                self.selector.unregister(sock.fileno())
            self.paused_since = time.monotonic()

    def request_thread(self) -> None:
        """One of ``threads``: serves the requests of one connection at a time, as ``serve``
        does in a worker without threads, then hands the connection back to the loop."""
        while True:
            conn = self.ready_conns.get()
            keep = False
            try:
                keep = self.serve_one(conn)
                # Pipelined requests whose head is already here; a partial one goes back to the loop.
                while keep and conn.buf and conn.protocol.head_ready(conn.buf):
                    keep = self.serve_one(conn)
            except ClientError:
                keep = False
            except Exception as err:  # a bug in this worker: log it, drop the connection, keep serving
                self.log.error("internal error serving %s: %s" % (conn.peer_text(), err), None, err)
                keep = False
            except BaseException as err:  # SystemExit or KeyboardInterrupt from the app: as without threads, the worker ends
                self.worker.die("%s raised in a request thread serving %s; exiting" % (type(err).__name__, conn.peer_text()))
            self.done.append((conn, keep))
            self.wake()

    def returned(self, conn: Conn, keep: bool) -> None:
        """A request thread is done with ``conn``: back into the selector, or closed."""
        self.busy -= 1
        conn.busy = False
        if self.paused_since:
            if self.busy < self.threads:
                self.paused_since = 0.0
                for sock in self.listeners:
                    self.selector.register(sock.fileno(), self.listener_keys[sock.fileno()])
            else:
                now = time.monotonic()
                if now - self.paused_since >= ACCEPT_PAUSED_S:
                    self.paused_since = now
                    for sock in list(self.listeners):
                        self.accept(sock, *self.listener_keys[sock.fileno()][1:3])
        if self.conns.get(conn.fd) is not conn:
            return  # closed while a thread had it (the master went away)
        if not keep:
            self.close(conn)
        else:
            conn.last_active = time.monotonic()
            self.selector.register(conn.fd, ("conn", conn))
            conn.registered = True
            if conn.buf:
                self.serve(conn, False)  # a pipelined request, or the start of one
        worker = self.worker
        if worker.max_requests:
            worker.check_recycle()
