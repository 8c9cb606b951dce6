"""One client connection of the ASGI worker: its bytes in a buffer with read back-pressure,
read by its own task one request (or WebSocket session) at a time. The loop, the slot and
the request bookkeeping are ``server.py``'s; a request's ``receive``/``send`` are
``cycle.py``'s.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any, Optional

from ..protocols import ProtocolError
from .cycle import WsSession

if TYPE_CHECKING:
    from .server import AsgiServer

# Read no more from a connection while this much of it is unread, bytes.
READ_HIGH = 256 * 1024

class Conn(asyncio.Protocol):
    """One client connection: its bytes in a buffer, read by its own task (``run``) one
    request at a time, in order (pipelined requests wait in the buffer)."""

    def __init__(self, server: "AsgiServer", protocol: Any) -> None:
        self.server = server
        self.protocol = protocol
        self.buf = bytearray()
        self.transport: Any = None
        self.peer: Any = None
        self.waiter: Optional[asyncio.Future] = None
        self.wait_kind = ""  # what the task waits for: "head", "body", "ws", "" (not waiting)
        self.wait_since = 0.0
        self.head_since = 0.0
        self.eof = False
        self.closed = False
        self.read_paused = False
        self.write_paused = False
        self.drain_waiter: Optional[asyncio.Future] = None
        self.watchers: list = []  # futures waiting for the response to end or the client to go
        self.session: Optional[WsSession] = None
        self.task: Optional[asyncio.Task] = None

    # -- asyncio.Protocol ---------------------------------------------------------

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.peer = transport.get_extra_info("peername")
        server = self.server
        server.opening -= 1
        server.conns.add(self)
        self.task = server.loop.create_task(self.run())

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if len(self.buf) > READ_HIGH and not self.read_paused:
            self.transport.pause_reading()
            self.read_paused = True
        self.wake()

    def eof_received(self) -> bool:
        self.eof = True
        self.wake()
        return True  # half-closed: the response may still go out; run() closes

    def connection_lost(self, exc: Optional[BaseException]) -> None:
        self.closed = True
        self.eof = True
        self.server.conns.discard(self)
        self.server.conn_gone()
        self.wake()
        self.wake_watchers()
        d = self.drain_waiter
        if d is not None and not d.done():
            d.set_result(None)

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        d = self.drain_waiter
        if d is not None and not d.done():
            d.set_result(None)

    # -- waiting --------------------------------------------------------------------

    def wake(self) -> None:
        w = self.waiter
        if w is not None:
            self.waiter = None
            if not w.done():
                w.set_result(None)

    def wake_watchers(self) -> None:
        watchers = self.watchers
        if watchers:
            self.watchers = []
            for w in watchers:
                if not w.done():
                    w.set_result(None)

    async def more(self, kind: str) -> None:
        """Waits for more bytes (or the end of the connection)."""
        if self.read_paused:
            self.read_paused = False
            self.transport.resume_reading()
        self.waiter = fut = self.server.loop.create_future()
        self.wait_kind = kind
        self.wait_since = time.monotonic()
        try:
            await fut
        finally:
            self.wait_kind = ""

    async def drain(self) -> None:
        self.drain_waiter = fut = self.server.loop.create_future()
        await fut

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.transport.close()
            self.wake()

    def abort(self) -> None:
        if not self.closed:
            self.closed = True
            self.transport.abort()
            self.wake()

    def peer_text(self) -> str:
        p = self.peer
        if isinstance(p, tuple) and len(p) >= 2:
            return "%s:%s" % (p[0], p[1]) if ":" not in str(p[0]) else "[%s]:%s" % (p[0], p[1])
        return "unix:%s" % (self.protocol.server[2] or "socket")

    # -- the connection's task ------------------------------------------------------

    async def run(self) -> None:
        server = self.server
        protocol = self.protocol
        buf = self.buf
        try:
            while not self.closed:
                while not protocol.head_ready(buf):
                    if self.eof:
                        if buf and protocol.name == "uwsgi":
                            try:
                                protocol.read_request(buf, True, self.peer)
                            except ProtocolError as err:
                                self.refuse(err)
                        return
                    if buf and not self.head_since:
                        self.head_since = time.monotonic()
                    await self.more("head")
                    if self.closed:
                        return
                self.head_since = 0.0
                try:
                    request = protocol.read_request(buf, self.eof, self.peer)
                except ProtocolError as err:
                    self.refuse(err)
                    return
                if request is None:
                    return
                if request[0] is None:  # answered without the app (not a protocol served here)
                    self.transport.write(request[1])
                    if not request[3]:
                        return
                    continue
                if not await server.handle(self, request):
                    return
        except Exception as err:  # a bug here: one line, the connection closes, the worker goes on
            server.log.error("internal error serving %s: %s" % (self.peer_text(), err), None, err)
        finally:
            self.close()

    def refuse(self, err: ProtocolError) -> None:
        msg, fields = self.protocol.refusal(self.peer_text(), err.reason, False)
        self.server.log.warn(msg, fields)
        if err.response and not self.closed:
            self.transport.write(err.response)

    def head_timeout(self, socket_timeout_s: float) -> None:
        """The request head did not come within socket-timeout of its first byte."""
        protocol = self.protocol
        reason = "request head not complete %g s after its first byte (%d bytes)" % (socket_timeout_s, len(self.buf))
        msg, fields = protocol.refusal(self.peer_text(), reason, True)
        self.server.log.warn(msg, fields)
        if protocol.timeout_response and not self.closed:
            self.transport.write(protocol.timeout_response)
        self.close()
