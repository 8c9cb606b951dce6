"""The ASGI worker: one asyncio loop serving many requests at once, bounded by ``async``.

It takes over a ``Worker`` (worker.py) whose app is an ASGI app, keeping its log, request
log, scoreboard slot and master channel, and serves:

* ``http-socket``: HTTP/1.1 keep-alive, pipelining, chunked bodies both ways,
  ``Expect: 100-continue`` (sent on the app's first ``receive``), and WebSockets
  (RFC 6455, ``websocket.py``);
* ``socket`` / ``uwsgi-socket``: one uwsgi packet per connection (nginx ``uwsgi_pass``),
  HTTP only.

The bytes are the sans-IO parsers' business (``protocols/``); a request's CGI environ
from them becomes the ASGI scope. Health, as the Node worker's: ``harakiri`` cancels an
overdue request's task (504 when nothing was sent) and the slot, written every heartbeat
while ``harakiri`` is on, is the master's sign that the loop still turns (a blocked loop
stops it and the master kills the worker). The slot says "event loop" (flags bit 1) so the
master judges it by that heartbeat. Graceful stop: stop accepting, let requests finish,
close WebSockets with 1001, run the lifespan shutdown; the master's mercy bounds it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import time
from typing import TYPE_CHECKING, Any, Optional

from ..contract import EXIT_APP_LOAD, EXIT_OK, IPC_VERSION
from ..log import exc_text
from ..mount import manage_script_name
from ..protocols import make_protocol
from ..protocols.http import date_clock
from ..request_log import count_vars
from ..scoreboard import BUSY, IDLE, STARTING, STOPPING, RequestCounters
from . import websocket as ws
from .conn import Conn
from .cycle import Cycle, WsSession, make_scope
from .lifespan import Lifespan

if TYPE_CHECKING:
    from ..worker import Worker

# An idle keep-alive connection is closed after this long, s (as the WSGI worker).
KEEPALIVE_TIMEOUT_S = 5.0
# How often connections are looked at for the timeouts, s.
SWEEP_S = 0.5
# Request body left unread by the app that is read and dropped to keep the connection; past it, it closes.
MAX_DRAIN_BYTES = 1 << 20
# Without harakiri: how often request starts and ends may be written to the slot, s (the Node worker's rates).
START_PUBLISH_S = 0.001
IDLE_PUBLISH_S = 0.1
# After the master's death (its channel closed) the worker is gone within this, s.
ORPHAN_EXIT_S = 0.9
# After the server's close frame, how long the client's close frame is waited for, s.
WS_CLOSE_WAIT_S = 1.0

ERROR_500 = b"Internal Server Error\n"
ERROR_504 = b"Gateway Timeout\n"



class AsgiServer(RequestCounters):
    """Serves ``worker``'s ASGI app (see the module's doc) until a graceful stop ends."""

    def __init__(self, worker: "Worker") -> None:
        self.worker = worker
        spec = worker.spec
        self.spec = spec
        self.log = worker.log
        self.reqlog = worker.reqlog
        self.scoreboard = worker.scoreboard
        self.channel = worker.channel
        self.app = worker.app
        app = spec["app"]
        self.limit = max(1, int(app.get("asyncLimit") or 1000))
        self.ws_max = max(1, int(app.get("websocketsMaxBytes") or 1 << 20))
        self.harakiri_s = (spec.get("harakiriMs") or 0) / 1000
        self.heartbeat_s = worker.heartbeat_s
        self.socket_timeout_s = (spec.get("socketTimeoutMs") or 4000) / 1000
        self.buffer_size = int(spec["bufferSize"])
        self.max_requests = int(spec.get("maxRequests") or 0)
        self.min_lifetime_s = (spec.get("minWorkerLifetimeMs") or 0) / 1000
        mount = spec.get("mount") or {}
        self.mountpoint = mount.get("mountpoint") or ""
        self.manage_script_name = bool(mount.get("manageScriptName"))
        self.started = time.monotonic()
        self.loop: Any = None
        self.conns: set = set()
        self.opening = 0  # accepted, not yet in conns (connect_accepted_socket runs as a task)
        self.inflight: dict = {}  # id(entry) → (start ms, method, uri), oldest first
        self.listeners: list = []  # (socket, protocol)
        self.accepting = False
        self.paused = False
        self.stopping = False
        self.recycling = False
        self.status = STARTING
        self.state: dict = {}
        self.lifespan: Optional[Lifespan] = None
        self.init_counters()
        self.harakiris = 0
        self.ws_open = 0
        self.stale = False
        self.shown_busy = False
        self.beat: Any = None
        self.flush_timer: Any = None
        self.sweeper: Any = None
        self.done: Optional[asyncio.Future] = None

    # -- the slot -------------------------------------------------------------------

    def publish(self) -> None:
        """Writes the slot: status, requests in flight (the oldest one's start, method and URI), counters."""
        self.stale = False
        inflight = self.inflight
        current = next(iter(inflight.values()), None) if inflight else None
        status = STOPPING if self.stopping else STARTING if self.status == STARTING else BUSY if current else IDLE
        self.shown_busy = status == BUSY
        self.scoreboard.write(
            status, self.accepting, len(inflight), current, self.requests, self.exceptions, self.tx_bytes,
            self.running_time_us, self.avg_rt_us, self.last_request_end_ms, event_loop=True, harakiri_count=self.harakiris, websockets=self.ws_open,
        )

    def heartbeat(self) -> None:
        """Every heartbeat while ``harakiri`` is on (the master's sign the loop turns), else
        while the slot lags or requests are in flight."""
        self.beat = None
        if self.harakiri_s > 0 or self.stale or self.inflight:
            self.publish()
        self.arm_heartbeat()

    def arm_heartbeat(self) -> None:
        if self.beat is None and (self.harakiri_s > 0 or self.stale or self.inflight):
            self.beat = self.loop.call_later(self.heartbeat_s, self.heartbeat)

    def arm_flush(self) -> None:
        if self.flush_timer is None:
            due = self.reqlog.due()
            if due is not None:
                self.flush_timer = self.loop.call_later(due, self.flush_log)

    def flush_log(self) -> None:
        self.flush_timer = None
        self.reqlog.flush()
        self.arm_flush()

    # -- lifecycle ------------------------------------------------------------------

    def run(self) -> None:
        """Runs the loop (uvloop's when installed) until the worker stops."""
        try:
            import uvloop  # type: ignore[import-not-found]

            loop = uvloop.new_event_loop()
        except ImportError:
            loop = asyncio.new_event_loop()
        self.loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self.main())
        finally:
            self.publish()
            self.worker.errors.flush()
            self.reqlog.flush()

    async def main(self) -> None:
        loop = self.loop
        self.done = loop.create_future()
        loop.add_signal_handler(signal.SIGTERM, self.begin_stop)
        if self.channel is not None:
            loop.add_reader(self.channel.fd, self.on_channel)
        # Startup: an app that fails it fails the worker's start (the master respawns with backoff).
        lifespan = Lifespan(self.app, self.state)
        failure = await lifespan.startup()
        if failure is not None:
            self.log.error("ASGI lifespan startup failed: %s" % failure, None, lifespan.error)
            self.reqlog.flush()
            os._exit(EXIT_APP_LOAD)
        if lifespan.supported:
            self.lifespan = lifespan
        if not self.stopping:  # a stop that came during the startup: no listening, straight to the shutdown
            self.listen()
            self.status = IDLE
            self.accepting = True
            self.publish()
            self.arm_heartbeat()
            self.worker.send({"v": IPC_VERSION, "type": "ready"})
            self.sweeper = loop.call_later(SWEEP_S, self.sweep)
        await self.done
        if self.sweeper is not None:
            self.sweeper.cancel()
        if self.lifespan is not None:
            failure = await self.lifespan.shutdown()
            if failure is not None:
                self.log.error("ASGI lifespan shutdown failed: %s" % failure, None, self.lifespan.error)

    def listen(self) -> None:
        """Listens on the inherited sockets; exits 22 for a protocol ASGI apps are not served on, 69 when listen() fails."""
        from ..contract import EXIT_UNAVAILABLE

        spec = self.spec
        date = date_clock()
        for s in spec["sockets"]:
            if s["protocol"] not in ("http", "uwsgi"):
                self.log.error("%s: ASGI apps are served on http-socket and socket (uwsgi), not %s" % (s["name"], s["protocol"]))
                os._exit(EXIT_APP_LOAD)
            sock = socket.socket(fileno=s["fd"])
            try:
                sock.listen(int(spec["backlog"]))
            except OSError as err:
                self.log.error("cannot listen on %s: %s" % (s["name"], err), {"code": err.errno})
                os._exit(EXIT_UNAVAILABLE)
            sock.setblocking(False)
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                name = sock.getsockname()
            except OSError:
                name = ""
            server = (str(name[0]), str(name[1]), "") if isinstance(name, tuple) else ("localhost", "80", name if isinstance(name, str) else "")
            protocol = make_protocol(s["protocol"], self.buffer_size, server, date, spec)
            self.listeners.append((sock, protocol))
            self.loop.add_reader(sock.fileno(), self.accept, sock, protocol)

    def accept(self, sock: socket.socket, protocol: Any) -> None:
        """Takes one connection (the other workers woke too and take the next ones)."""
        if not self.accepting:
            return
        try:
            client, _peer = sock.accept()
        except (BlockingIOError, InterruptedError):
            return
        except OSError as err:
            self.log.warn("accept failed: %s" % err)
            return
        client.setblocking(False)
        self.opening += 1
        if len(self.conns) + self.opening > self.limit:
            idle = next((c for c in self.conns if c.wait_kind == "head" and not c.buf), None)
            if idle is not None:
                idle.close()
        self.loop.create_task(self.open_conn(client, protocol))
        if len(self.conns) + self.opening >= self.limit:
            self.pause_accepting()

    async def open_conn(self, client: socket.socket, protocol: Any) -> None:
        try:
            await self.loop.connect_accepted_socket(lambda: Conn(self, protocol), client)
        except OSError:  # the client went away before its transport was made
            self.opening -= 1
            client.close()
            self.conn_gone()

    def pause_accepting(self) -> None:
        """At the ``async`` cap: the listeners leave the loop until a connection ends."""
        if not self.paused:
            self.paused = True
            for sock, _ in self.listeners:
                self.loop.remove_reader(sock.fileno())

    def conn_gone(self) -> None:
        if self.paused and self.accepting and len(self.conns) + self.opening < self.limit:
            self.paused = False
            for sock, protocol in self.listeners:
                self.loop.add_reader(sock.fileno(), self.accept, sock, protocol)
        if self.stopping and not self.conns and self.done is not None and not self.done.done():
            self.done.set_result(None)

    def stop_accepting(self) -> None:
        """Closes this process's copies of the listening sockets; the master keeps its own."""
        for sock, _ in self.listeners:
            if not self.paused:
                self.loop.remove_reader(sock.fileno())
            sock.close()
        self.listeners = []
        self.accepting = False

    def going_away(self) -> bool:
        return self.stopping or self.recycling

    def begin_stop(self) -> None:
        """Graceful stop: no new connections, requests finish, WebSockets get 1001. An idle
        keep-alive connection is left to the client, as in the WSGI worker: its next request
        is answered with ``Connection: close`` (closing it now could cross a request already
        on its way), or it ends at the keep-alive timeout."""
        if self.stopping:
            return
        self.stopping = True
        self.stop_accepting()
        for conn in list(self.conns):
            if conn.session is not None:
                conn.session.going_away()
        self.publish()
        self.conn_gone()

    def on_channel(self) -> None:
        """The master wrote (``stop``, ``reopen-logs``, ``publish``), or went away."""
        channel = self.channel
        assert channel is not None
        messages = channel.read()
        if messages is None:
            self.log.warn("lost the master; exiting")
            self.loop.remove_reader(channel.fd)
            self.channel = self.worker.channel = None
            self.loop.call_later(ORPHAN_EXIT_S, lambda: (self.reqlog.flush(), os._exit(EXIT_OK)))
            self.begin_stop()
            for conn in list(self.conns):
                conn.abort()
            return
        for m in messages:
            if isinstance(m, dict) and "cmd" in m:
                continue
            kind = m.get("type") if isinstance(m, dict) and m.get("v") == IPC_VERSION else None
            if kind == "stop":
                self.begin_stop()
            elif kind == "reopen-logs":
                self.reqlog.reopen()
            elif kind == "publish":
                last = self.scoreboard.last_write
                self.publish()
                self.scoreboard.last_write = last
                self.worker.send({"v": IPC_VERSION, "type": "published"})
            else:
                self.log.warn("master→worker: unknown message %s" % str(m)[:120])

    def sweep(self) -> None:
        """Times out stalled heads and bodies and idle keep-alive connections."""
        now = time.monotonic()
        timeout = self.socket_timeout_s
        for conn in list(self.conns):
            kind = conn.wait_kind
            if kind == "head":
                if conn.buf:
                    if conn.head_since and now - conn.head_since >= timeout:
                        conn.head_timeout(timeout)
                elif now - conn.wait_since > KEEPALIVE_TIMEOUT_S:
                    conn.close()
            elif kind == "body" and now - conn.wait_since >= timeout:
                self.log.warn("%s: no request body for %g s (socket-timeout); connection closed" % (conn.peer_text(), timeout))
                conn.abort()
        self.sweeper = self.loop.call_later(SWEEP_S, self.sweep)

    def check_recycle(self) -> None:
        """uWSGI's max-requests, gated by min-worker-lifetime: asks the master for a replacement once."""
        if (self.max_requests > 0 and not self.recycling and not self.stopping and self.requests >= self.max_requests
                and time.monotonic() - self.started >= self.min_lifetime_s):
            self.recycling = True
            self.log.info("served %d requests (max-requests %d); asking to be replaced" % (self.requests, self.max_requests),
                          {"requests": self.requests})
            self.stop_accepting()
            self.publish()
            self.worker.send({"v": IPC_VERSION, "type": "recycle", "reason": "max-requests"})

    # -- requests -------------------------------------------------------------------

    def begin(self, method: str, uri: str) -> tuple:
        now = time.time()
        entry = (now * 1000, method, uri)
        self.inflight[id(entry)] = entry
        if self.harakiri_s > 0 or not self.shown_busy or now - self.scoreboard.last_write >= START_PUBLISH_S:
            self.publish()
        else:
            self.stale = True
        self.arm_heartbeat()
        return entry

    async def handle(self, conn: Conn, request: tuple) -> bool:
        """Serves one request; whether the connection may serve another."""
        environ, reader, interim, keep_alive, context = request
        method = environ["REQUEST_METHOD"]
        uri = environ.get("REQUEST_URI") or (
            environ["PATH_INFO"] + ("?" + environ["QUERY_STRING"] if environ["QUERY_STRING"] else "")
        )
        if self.manage_script_name:
            manage_script_name(environ, self.mountpoint)
        nvars, pktsize = count_vars(environ) if self.reqlog.active else (0, 0)
        if conn.protocol.name == "http" and environ.get("HTTP_UPGRADE", "").lower() == "websocket":
            return await self.websocket(conn, environ, method, uri, nvars, pktsize)
        cycle = Cycle(conn, self, reader, interim, keep_alive, context, method == "HEAD")
        scope = make_scope(environ, "http", self.state if self.lifespan is not None else None)
        entry = self.begin(method, uri)
        t0 = time.perf_counter()
        timer = None
        if self.harakiri_s > 0:
            timer = self.loop.call_later(self.harakiri_s, self.harakiri, cycle, asyncio.current_task(), entry)
        failed = False
        try:
            await self.app(scope, cycle.receive, cycle.send)
            if not cycle.complete:
                if not cycle.started or not cycle.head_sent:
                    self.log.error("%s %s: the app returned without a complete response" % (method, uri), {"method": method, "uri": uri})
                    failed = True
                    if not cycle.head_sent:
                        cycle.send_error("500 Internal Server Error", ERROR_500)
                cycle.keep = False
        except asyncio.CancelledError:
            if not cycle.harakiri:
                raise
            if not cycle.head_sent:
                cycle.send_error("504 Gateway Timeout", ERROR_504)
            cycle.keep = False
        except Exception as err:
            failed = True
            self.log.error("exception in %s %s: %s: %s" % (method, uri, type(err).__name__, exc_text(err)),
                           {"method": method, "uri": uri}, err)
            if not cycle.head_sent:
                try:
                    cycle.send_error("500 Internal Server Error", ERROR_500)
                except Exception:
                    conn.abort()
            cycle.keep = False
        finally:
            if timer is not None:
                timer.cancel()
            conn.wake_watchers()
            self.end(entry, environ, cycle.status if cycle.head_sent else 0, cycle.tx, cycle.hsize, cycle.hcount,
                     failed, (time.perf_counter() - t0) * 1e6, nvars, pktsize)
        keep = cycle.keep and not conn.closed
        if keep and not cycle.body_done and cycle.reader is not None:
            keep = await self.drain(cycle)
        if self.max_requests:
            self.check_recycle()
        return keep and not self.going_away()

    async def drain(self, cycle: Cycle) -> bool:
        """Reads and drops the body the app left; False when the connection cannot be reused."""
        if cycle.interim is not None:
            return False  # the client still waits for 100 Continue before sending it
        dropped = 0
        while dropped <= MAX_DRAIN_BYTES:
            message = await cycle.receive()
            if message["type"] != "http.request":
                return False
            dropped += len(message["body"])
            if not message["more_body"]:
                return not cycle.conn.closed
        return False

    def harakiri(self, cycle: Cycle, task: Any, entry: tuple) -> None:
        """A request ran past ``harakiri``: one line, its task cancelled (504 if nothing was sent)."""
        start_ms, method, uri = entry
        ran_s = time.time() - start_ms / 1000
        self.harakiris += 1
        self.log.error("HARAKIRI: %s %s ran for %.1f s (harakiri %g s); cancelled%s" % (
            method, uri, ran_s, self.harakiri_s, "" if cycle.head_sent else ", 504 sent"),
            {"method": method, "uri": uri, "ran_ms": round(ran_s * 1000), "harakiri_ms": round(self.harakiri_s * 1000)})
        cycle.harakiri = True
        if task is not None:
            task.cancel()

    async def websocket(self, conn: Conn, environ: dict, method: str, uri: str, nvars: int, pktsize: int) -> bool:
        """A WebSocket handshake, then the session until it closes; the connection ends with it."""
        key = environ.get("HTTP_SEC_WEBSOCKET_KEY", "")
        version = environ.get("HTTP_SEC_WEBSOCKET_VERSION", "")
        problem = None
        if method != "GET":
            problem = "400 Bad Request", "WebSocket upgrade with %s" % method[:16]
        elif version != "13":
            problem = "426 Upgrade Required", "Sec-WebSocket-Version %r (13 is served)" % version[:20]
        elif not ws.valid_key(key):
            problem = "400 Bad Request", "bad Sec-WebSocket-Key"
        if problem is not None:
            status, reason = problem
            self.log.warn("bad WebSocket handshake from %s: %s" % (conn.peer_text(), reason))
            body = (status + "\n").encode()
            extra = b"Sec-WebSocket-Version: 13\r\n" if status[:3] == "426" else b""
            conn.transport.write(b"HTTP/1.1 %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n%sConnection: close\r\n\r\n%s" % (
                status.encode(), len(body), extra, body))
            return False
        protocols = environ.get("HTTP_SEC_WEBSOCKET_PROTOCOL")
        subprotocols = [p.strip() for p in protocols.split(",") if p.strip()] if protocols else []
        session = WsSession(conn, self, key, subprotocols)
        conn.session = session
        scope = make_scope(environ, "websocket", self.state if self.lifespan is not None else None)
        scope["subprotocols"] = subprotocols
        if self.stopping:
            session.going_away()
        entry = self.begin(method, uri)
        t0 = time.perf_counter()
        failed = False
        try:
            await self.app(scope, session.receive, session.send)
        except Exception as err:
            failed = True
            self.log.error("exception in %s %s (WebSocket): %s: %s" % (method, uri, type(err).__name__, exc_text(err)),
                           {"method": method, "uri": uri}, err)
            if session.state == "open":
                session.write(ws.close_frame(ws.INTERNAL_ERROR))
                session.state = "closing"
        finally:
            if session.status == 101:
                self.ws_open -= 1
            if session.state == "connecting":
                # The app ended without accepting: refused, as a websocket.close would be.
                await session.send({"type": "websocket.close"})
            elif session.state == "open":
                session.write(ws.close_frame(ws.NORMAL))
                session.state = "closing"
            if session.state == "closing" and not conn.closed:
                await self.await_close(conn, session)
            self.end(entry, environ, session.status, session.tx, session.hsize, session.hcount,
                     failed, (time.perf_counter() - t0) * 1e6, nvars, pktsize)
        return False

    async def await_close(self, conn: Conn, session: WsSession) -> None:
        """After our close frame: the client's, for at most WS_CLOSE_WAIT_S, then the connection closes."""
        deadline = self.loop.time() + WS_CLOSE_WAIT_S
        timer = self.loop.call_at(deadline, conn.close)
        try:
            while not conn.closed:
                try:
                    message = session.reader.next(conn.buf)
                except ws.FrameError:
                    break
                if message is None:
                    if conn.eof:
                        break
                    await conn.more("ws-close")
                elif message[0] == ws.CLOSE:
                    break
        finally:
            timer.cancel()
            conn.close()

    def end(self, entry: tuple, environ: dict, status: int, tx: int, hsize: int, hcount: int, failed: bool,
            rt_us: float, nvars: int, pktsize: int) -> None:
        """Counts a finished request, updates the slot, logs the request (as the WSGI worker does)."""
        now = self.count_request(rt_us, tx, failed)
        self.inflight.pop(id(entry), None)
        if self.harakiri_s > 0 or now - self.scoreboard.last_write >= IDLE_PUBLISH_S:
            self.publish()
        else:
            self.stale = True
            self.arm_heartbeat()
        rsize = max(0, tx - hsize)
        if self.reqlog.finished(self.spec["id"], self.requests, entry, environ, status, rt_us, rsize, hcount, hsize, nvars, pktsize):
            self.arm_flush()


def serve(worker: "Worker") -> None:
    """Serves ``worker``'s ASGI app until the worker stops (returns then; the caller exits)."""
    AsgiServer(worker).run()
