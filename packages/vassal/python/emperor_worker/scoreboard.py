"""This worker's slot in the vassal's scoreboard: how the master sees it without a message
per request (docs/architecture.md, "How state flows").

The layout is generated into ``contract.py`` from packages/protocol/src/contract.ts, the
one definition both sides use.
"""

from __future__ import annotations

import os
import struct
import time
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    from .log import Log

from .contract import BUSY, IDLE, METHOD_MAX, SLOT_FORMAT, SLOT_SIZE, STARTING, STOPPING, URI_MAX  # noqa: F401 (re-exported)

# The fields, in contract.SLOT_FIELDS order: seq, pid, status, flags, in-flight, heartbeat,
# requests, exceptions, tx, running time, avg rt, request start, harakiri count, last
# request end, WebSocket sessions, method length, uri length, method, uri, seq again.
SLOT = struct.Struct(SLOT_FORMAT)
assert SLOT.size == SLOT_SIZE


def utf8_prefix(text: str, limit: int) -> bytes:
    """UTF-8 of ``text`` cut to ``limit`` bytes without splitting a character (as Buffer#write does)."""
    data = text.encode("utf-8", "replace")
    if len(data) <= limit:
        return data
    return data[:limit].decode("utf-8", "ignore").encode("utf-8")


class Scoreboard:
    """This process's slot (``index``) in the scoreboard file ``fd``: one positional write
    of the whole 1024 bytes each time, framed by a sequence number at both ends so the
    master never reads a torn slot."""

    def __init__(self, fd: int, index: int, log: "Log") -> None:
        self.fd = fd
        self.offset = index * SLOT.size
        self.seq = 0
        self.last_write = 0.0  # epoch seconds
        self.pid = os.getpid()
        self.log = log

    def write(
        self, status: int, accepting: bool, in_flight: int, request: Optional[tuple], requests: int, exceptions: int,
        tx_bytes: int, running_time_us: float, avg_rt_us: float, last_request_end_ms: float,
        event_loop: bool = False, harakiri_count: float = 0.0, websockets: int = 0,
    ) -> None:
        """Writes the slot; the heartbeat is now. ``request`` is the (oldest) request in
        flight as ``(start epoch ms, method, uri)``, or None. ``event_loop``: an ASGI
        worker, judged by its heartbeat (flags bit 1); ``harakiri_count``: requests it
        ended itself for harakiri; ``websockets``: its WebSocket sessions open. A failed
        write is logged."""
        self.seq = (self.seq + 1) & 0xFFFFFFFF
        now = time.time()
        self.last_write = now
        method = utf8_prefix(request[1], METHOD_MAX) if request else b""
        uri = utf8_prefix(request[2], URI_MAX) if request else b""
        data = SLOT.pack(
            self.seq, self.pid, status, (1 if accepting else 0) | (2 if event_loop else 0), in_flight,
            now * 1000, requests, exceptions, tx_bytes, running_time_us, avg_rt_us,
            request[0] if request else 0.0, harakiri_count, last_request_end_ms, websockets,
            len(method), len(uri), method, uri, self.seq,
        )
        try:
            os.pwrite(self.fd, data, self.offset)
        except OSError as err:
            self.log.error("cannot write the scoreboard: %s" % err)


class RequestCounters:
    """The request counters a slot carries (uWSGI's ``requests``, ``exceptions``, ``tx``,
    ``running_time``, ``avg_rt`` and ``last_request_end``), kept by the WSGI worker and the
    ASGI server alike: :meth:`count_request` once per finished request."""

    def init_counters(self) -> None:
        self.requests = 0
        self.exceptions = 0
        self.tx_bytes = 0
        self.running_time_us = 0.0
        self.avg_rt_us = 0.0
        self.last_request_end_ms = 0.0

    def count_request(self, rt_us: float, tx_bytes: int, failed: bool) -> float:
        """Counts a request that took ``rt_us`` µs and sent ``tx_bytes``; ``failed``: the app
        raised. Returns now, epoch seconds (the request's end)."""
        self.requests += 1
        if failed:
            self.exceptions += 1
        self.running_time_us += rt_us
        self.avg_rt_us = rt_us if self.avg_rt_us == 0 else (self.avg_rt_us + rt_us) / 2  # uWSGI's running average
        self.tx_bytes += tx_bytes
        now = time.time()
        self.last_request_end_ms = now * 1000
        return now
