"""Emperor's Python WSGI worker: one process of a vassal's pool.

A vassal master spawns this file with the interpreter it picked (the vassal's `home`
environment, else `python3` on PATH). It inherits:

* the listening sockets at fds 3, 4, ... (bound by the master, not listening yet: the
  worker calls listen() and accept() itself, so there is no proxy hop);
* the scoreboard file after them, where it publishes its state in its own slot;
* Node's IPC channel (``NODE_CHANNEL_FD``, one JSON object per line both ways);
* its spec in ``EMPEROR_WORKER`` (packages/vassal/src/worker-spec.ts).

It serves one request at a time (a sync worker, like uWSGI's default and gunicorn's
``sync``), on ``http-socket`` (HTTP/1.1 with keep-alive) and on ``socket`` /
``uwsgi-socket`` (the uwsgi binary protocol nginx's ``uwsgi_pass`` speaks), calling the
app as PEP 3333 says. Standard library only; Python 3.9 or newer.

Mirror of the Node worker (packages/vassal/src/worker/node/worker-main.ts): same
log lines, same scoreboard layout, same graceful stop. Change them together.
"""

from __future__ import annotations

import faulthandler
import importlib
import importlib.util
import io
import json
import os
import queue
import re
import select
import selectors
import signal
import socket
import struct
import sys
import threading
import time
import traceback
from collections import deque
from typing import Any, Callable, Iterable, Optional
from urllib.parse import unquote_to_bytes

# Exit codes shared with the master (packages/protocol/src/ipc.ts ExitCode).
EXIT_OK = 0
EXIT_APP_LOAD = 22
EXIT_UNAVAILABLE = 69

SPEC_VERSION = 1
IPC_VERSION = 1

# Scoreboard slot, byte for byte as packages/vassal/src/shared/scoreboard.ts writes it:
# seq, pid, status, flags, 2 pad, in-flight, 9 doubles (heartbeat, requests, exceptions,
# tx, running time, avg rt, request start, harakiri count, last request end), 8 pad,
# method length, uri length, method (16 B), uri (900 B), 4 pad, seq again.
SLOT = struct.Struct("<IIBB2xI9d8xHH16s900s4xI")
assert SLOT.size == 1024
METHOD_MAX = 16
URI_MAX = 900
STARTING, IDLE, BUSY, STOPPING = 1, 2, 3, 4

# uWSGI's `socket-timeout` default: how long one read or write on a client may block
# (the spec's socketTimeoutMs sets it per vassal).
SOCKET_TIMEOUT_S = 4.0
# The answer to a request head that did not come within socket-timeout of its first byte.
RESPONSE_408 = b"HTTP/1.1 408 Request Timeout\r\nContent-Type: text/plain\r\nContent-Length: 20\r\nConnection: close\r\n\r\n408 Request Timeout\n"
# An idle keep-alive connection is closed after this long (Node's http keepAliveTimeout).
KEEPALIVE_TIMEOUT_S = 5.0
# With threads, while every thread is taken the listening sockets leave the selector (a
# readable listener would wake the loop at once, again and again). As requests end, one
# connection is still taken from them at most this often, so busy keep-alive connections
# cannot starve new ones (a worker whose threads are all stuck takes none: other workers
# can).
ACCEPT_PAUSED_S = 0.01
# Open connections per worker; past it the longest-idle keep-alive connection is closed.
MAX_CONNECTIONS = 512
# Unread request body we read and discard to keep a connection alive; past it we close.
MAX_DRAIN_BYTES = 1 << 20
RECV_SIZE = 64 * 1024
# Without harakiri, how often request starts and ends may be written to the slot, s
# (the Node worker's rates: stats stay fresh at low traffic, cost is bounded under load).
START_PUBLISH_S = 0.001
IDLE_PUBLISH_S = 0.1
# After the master's death (its IPC channel closed) the worker is gone within this.
ORPHAN_EXIT_S = 0.9

HOP_BY_HOP = frozenset(
    ["keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers", "transfer-encoding", "upgrade"]
)
TOKEN = re.compile(rb"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
STATUS = re.compile(r"^[1-9][0-9]{2} [^\r\n]*$")
BAD_HEADER_VALUE = re.compile(r"[\r\n\0]")
NO_BODY_STATUS = frozenset([204, 304])

# Statuses and header names already checked: apps send the same few again and again.
GOOD_STATUSES: set = set()
GOOD_NAMES: set = set()


def remember(cache: set, item: str) -> None:
    if len(cache) >= 1024:
        cache.clear()  # bounded, whatever an app invents
    cache.add(item)


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("", "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


# --- logging -------------------------------------------------------------------------


class Log:
    """Event lines on stderr, in the style the master pinned (``EMPEROR_LOG_STYLE``).

    ``json``: pino's shape, so they interleave with the Node tiers' logs. Levels are
    pino's: 30 info, 40 warn, 50 error, 60 fatal. An exception goes into an ``err`` object
    with ``type``, ``message`` and ``stack`` (pino's err serializer). ``text``: the line
    ``formatTextLine`` of packages/process/src/logger.ts writes, byte for byte (a unit test
    compares them); without the variable, text on a terminal, else JSON.
    """

    NAMES = {10: "TRACE", 20: "DEBUG", 30: "INFO", 40: "WARN", 50: "ERROR", 60: "FATAL"}
    HEAD = ("level", "time", "pid", "msg", "role", "vassal", "worker", "err")
    BARE = re.compile(r'[^ "|=\\\x00-\x1f\x7f]+')
    CONTROL = re.compile(r"[\x00-\x1f\x7f]")

    def __init__(self, bindings: dict) -> None:
        self.bindings = bindings
        style = os.environ.get("EMPEROR_LOG_STYLE")
        self.text = style == "text" or (style != "json" and os.isatty(2))

    @classmethod
    def _escape(cls, text: str) -> str:
        named = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
        return cls.CONTROL.sub(lambda m: named.get(m.group(0), "\\x%02x" % ord(m.group(0))), text)

    @classmethod
    def _value(cls, value) -> str:
        if isinstance(value, str):
            return value if cls.BARE.fullmatch(value) else json.dumps(value, ensure_ascii=False)
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)

    @classmethod
    def format_text(cls, record: dict) -> str:
        """One event as a text line, with its newline (see formatTextLine in logger.ts)."""
        t = record.get("time", 0)
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t / 1000)) + ".%03d" % (t % 1000)
        head = "[pid: %s" % record.get("pid", "?")
        if "role" in record:
            head += "|%s" % record["role"]
        if "vassal" in record:
            head += "|vassal: %s" % cls._escape(str(record["vassal"]))
        if "worker" in record:
            head += "|worker: %s" % record["worker"]
        level = record.get("level")
        line = "%s %s %s] %s" % (when, cls.NAMES.get(level, str(level)), head, cls._escape(str(record.get("msg", ""))))
        fields = ["%s=%s" % (k, cls._value(v)) for k, v in record.items() if k not in cls.HEAD]
        stack = ""
        err = record.get("err")
        if isinstance(err, dict):
            fields.append("err=%s" % cls._value("%s: %s" % (err.get("type", "Error"), err.get("message", ""))))
            if err.get("stack"):
                stack = "".join("\n    " + cls._escape(l) for l in str(err["stack"]).split("\n"))
        elif err is not None:
            fields.append("err=%s" % cls._value(err))
        if fields:
            line += " | " + " ".join(fields)
        return line + stack + "\n"

    def write(self, level: int, msg: str, fields: Optional[dict] = None, exc: Optional[BaseException] = None) -> None:
        record: dict = {"level": level, "time": int(time.time() * 1000), "pid": os.getpid()}
        record.update(self.bindings)
        if fields:
            record.update(fields)
        if exc is not None:
            record["err"] = {
                "type": type(exc).__name__,
                "message": str(exc),
                "stack": "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)).rstrip("\n"),
            }
        record["msg"] = msg
        if self.text:
            line = self.format_text(record)
        else:
            line = json.dumps(record, ensure_ascii=False, separators=(",", ":"), default=str) + "\n"
        data = line.encode("utf-8", "replace")
        try:
            while data:
                data = data[os.write(2, data):]
        except OSError:
            pass

    def info(self, msg: str, fields: Optional[dict] = None) -> None:
        self.write(30, msg, fields)

    def warn(self, msg: str, fields: Optional[dict] = None) -> None:
        self.write(40, msg, fields)

    def error(self, msg: str, fields: Optional[dict] = None, exc: Optional[BaseException] = None) -> None:
        self.write(50, msg, fields, exc)


class ErrorStream(io.TextIOBase):
    """``wsgi.errors``: what the app writes goes to the log, one line per line (level warn)."""

    def __init__(self, log: Log) -> None:
        super().__init__()
        self._log = log
        self._partial = ""

    def writable(self) -> bool:
        return True

    def write(self, s: str) -> int:
        if not isinstance(s, str):
            raise TypeError("wsgi.errors takes str, not %s" % type(s).__name__)
        text = self._partial + s
        *lines, self._partial = text.split("\n")
        for line in lines:
            self._log.warn(line, {"stream": "wsgi.errors"})
        return len(s)

    def writelines(self, lines: Iterable[str]) -> None:  # type: ignore[override]
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        if self._partial:
            self._log.warn(self._partial, {"stream": "wsgi.errors"})
            self._partial = ""


# --- request log -----------------------------------------------------------------------
# The same lines as the Node worker (packages/vassal/src/shared/request-log.ts): uWSGI's default
# line byte for byte, a `log-format` template, or a JSON object. Change them together.

LOG_BUFFER_BYTES = 32 * 1024  # a batch is written once this much has gathered ...
LOG_FLUSH_S = 0.25  # ... or after this long
LOG_BATCH_REQUESTS = 128  # requests whose lines are formatted together
LOG_FORMAT_VAR = re.compile(r"%\(([^()\s]+)\)")
_LOG_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


class Facts:
    """One finished request, as a log-format template or a JSON line sees it (RequestFacts in request-log.ts)."""

    __slots__ = ("pid", "wid", "n", "method", "uri", "proto", "status", "addr", "port", "user", "start_ms",
                 "duration_us", "rsize", "hsize", "headers", "vars", "pktsize", "environ")

    def header(self, name: str) -> str:
        key = name.upper().replace("-", "_")
        return self.environ.get(key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else "HTTP_" + key, "")


def count_vars(environ: dict) -> tuple:
    """The request's variables as uWSGI counts them in its log line (two slots each) and
    their size as a uwsgi packet: taken before the app runs, when environ holds only them
    (and wsgi.url_scheme), with the sums done in C."""
    n = len(environ)
    return n * 2, sum(map(len, environ)) + sum(map(len, environ.values())) + 4 * n


_second = [-1, "", ""]


def _dates(ms: float) -> tuple:
    """ctime(3) and Apache's %t of a time, local, cached per second (as the Node worker does)."""
    sec = int(ms // 1000)
    if _second[0] != sec:
        t = time.localtime(sec)
        off = t.tm_gmtoff // 60
        _second[:] = [
            sec,
            time.ctime(sec),
            "%02d/%s/%d:%02d:%02d:%02d %s%02d%02d" % (t.tm_mday, _LOG_MONTHS[t.tm_mon - 1], t.tm_year, t.tm_hour, t.tm_min, t.tm_sec,
                                                  "-" if off < 0 else "+", abs(off) // 60, abs(off) % 60),
        ]
    return _second[1], _second[2]


DEFAULT_LINE = (
    "[pid: %d|app: 0|req: %d/%d] %s (%s) {%d vars in %d bytes} [%s] %s %s => generated %d bytes in %d {unit} (%s %d) %d headers in %d bytes (1 switches on core 0)\n"
)
DEFAULT_LINE_MSECS = DEFAULT_LINE.replace("{unit}", "msecs")  # the time argument in ms, truncated by %d
DEFAULT_LINE_MICROS = DEFAULT_LINE.replace("{unit}", "micros")  # log-micros: in µs, rounded


def _memory(field: int) -> int:
    """This process's address space (0) or resident memory (1) in bytes, from /proc/self/statm."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[field]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


LOG_VARIABLES: dict = {
    "uri": lambda f: f.uri,
    "method": lambda f: f.method,
    "user": lambda f: f.user,
    "addr": lambda f: f.addr,
    "host": lambda f: f.header("host"),
    "proto": lambda f: f.proto,
    "uagent": lambda f: f.header("user-agent"),
    "referer": lambda f: f.header("referer"),
    "status": lambda f: str(f.status),
    "rsize": lambda f: str(f.rsize),
    "hsize": lambda f: str(f.hsize),
    "size": lambda f: str(f.rsize + f.hsize),
    "cl": lambda f: f.header("content-length") or "0",
    "micros": lambda f: str(round(f.duration_us)),
    "msecs": lambda f: str(int(f.duration_us // 1000)),
    "secs": lambda f: "%.6f" % (f.duration_us / 1e6),
    "tmsecs": lambda f: str(int(f.start_ms)),
    "tmicros": lambda f: str(int(f.start_ms * 1000)),
    "time": lambda f: str(int(f.start_ms // 1000)),
    "epoch": lambda f: str(int(time.time())),
    "ctime": lambda f: _dates(f.start_ms)[0],
    "ltime": lambda f: _dates(f.start_ms)[1],
    "pid": lambda f: str(f.pid),
    "wid": lambda f: str(f.wid),
    "core": lambda f: "0",
    "switches": lambda f: "1",
    "vars": lambda f: str(f.vars),
    "pktsize": lambda f: str(f.pktsize),
    "headers": lambda f: str(f.headers),
    "rss": lambda f: str(_memory(1)),
    "vsz": lambda f: str(_memory(0)),
    "rssM": lambda f: str(_memory(1) // 1048576),
    "vszM": lambda f: str(_memory(0) // 1048576),
    "modifier1": lambda f: "0",
    "modifier2": lambda f: "0",
    "werr": lambda f: "0",
    "rerr": lambda f: "0",
    "ioerr": lambda f: "0",
    "REQUEST_METHOD": lambda f: f.method,
    "REQUEST_URI": lambda f: f.uri,
    "PATH_INFO": lambda f: f.uri.partition("?")[0],
    "QUERY_STRING": lambda f: f.uri.partition("?")[2],
    "SERVER_PROTOCOL": lambda f: f.proto,
    "REMOTE_ADDR": lambda f: f.addr,
    "REMOTE_PORT": lambda f: str(f.port),
    "REMOTE_USER": lambda f: f.user,
}


def compile_log_format(template: str) -> Callable:
    """A `log-format` template as a function of Facts (unknown variables render as "")."""
    parts: list = []
    at = 0
    for m in LOG_FORMAT_VAR.finditer(template):
        if m.start() > at:
            parts.append(template[at:m.start()])
        name = m.group(1)
        if name in LOG_VARIABLES:
            parts.append(LOG_VARIABLES[name])
        elif name.startswith("HTTP_"):
            parts.append(lambda f, h=name[5:].replace("_", "-").lower(): f.header(h))
        else:
            parts.append("")
        at = m.end()
    parts.append(template[at:])
    return lambda f: "".join(p if type(p) is str else p(f) for p in parts) + "\n"


def latin1_of_utf8(text: str) -> str:
    """`text` as one character per byte of its UTF-8: encoded as latin-1, it is that UTF-8 again."""
    return text.encode("utf-8", "replace").decode("latin-1")


def json_line(f: Facts, bindings: dict) -> str:
    record = {"level": 30, "time": round(f.start_ms + f.duration_us / 1000), "pid": f.pid}
    record.update(bindings)
    record.update({
        "msg": "%s %s %d" % (f.method, f.uri, f.status), "addr": f.addr, "user": f.user, "method": f.method, "uri": f.uri,
        "proto": f.proto, "status": f.status, "size": f.rsize, "hsize": f.hsize, "headers": f.headers,
        "micros": round(f.duration_us), "start": int(f.start_ms), "req": f.n, "host": f.header("host"),
    })
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"


class RequestLog:
    """Which requests to log (uWSGI's log_request), their lines, and the buffer they wait in.

    Lines go to fd 2, which is the vassal's `logto` file when it has one (the master
    passes it as stdout and stderr); `reopen` points fds 1 and 2 at the file again after
    logrotate, with dup2, as uWSGI does, so the app's print() follows too.
    """

    def __init__(self, spec: dict, log: Log) -> None:
        c = spec.get("requestLog") or {}
        self.enabled = bool(c.get("enabled", True))
        self.log4xx = bool(c.get("log4xx"))
        self.log5xx = bool(c.get("log5xx"))
        self.slow_us = (c.get("slowMs") or 0) * 1000
        self.zero = bool(c.get("zero"))
        self.big = c.get("bigBytes") or 0
        self.micros = bool(c.get("micros"))
        self.xff = bool(c.get("xForwardedFor"))
        self.logto = spec.get("logto")
        self.log = log
        # Lines are written as latin-1: environ strings are the request's bytes, one
        # character each (PEP 3333), so the file gets those bytes back, as uWSGI writes
        # them. Text of ours in a line (the vassal's name, a template's literal parts)
        # goes in as the latin-1 form of its UTF-8.
        bindings = {"vassal": latin1_of_utf8(spec["vassal"]), "worker": spec["id"]}
        fmt = c.get("format")
        fmt = None if fmt is None else latin1_of_utf8(fmt)
        self.plain = not c.get("json") and fmt is None  # uWSGI's default line: RequestLog.default
        self.line = DEFAULT_LINE_MICROS if self.micros else DEFAULT_LINE_MSECS
        self.second = -1  # see ctime
        self.date = ""
        self.active = self.enabled or self.log4xx or self.log5xx or self.slow_us > 0 or self.zero or self.big > 0
        if c.get("json"):
            self.render: Callable = lambda f: json_line(f, bindings)
        elif fmt is not None:
            self.render = compile_log_format(fmt)
        else:
            self.render = lambda f: ""  # uWSGI's default line is recorded by default() instead
        self.pending: list = []  # formatted lines
        self.records: list = []  # requests waiting for uWSGI's line (see default)
        self.pending_bytes = 0
        self.first_pending = 0.0
        self.pid = os.getpid()

    def wanted(self, status: int, duration_us: float, rsize: int) -> bool:
        return (
            self.enabled
            or (self.zero and rsize == 0)
            or (self.slow_us > 0 and duration_us >= self.slow_us)
            or (self.log4xx and 400 <= status <= 499)
            or (self.log5xx and 500 <= status <= 599)
            or (self.big > 0 and rsize >= self.big)
        )

    def request(self, f: Facts) -> None:
        self.write(self.render(f))

    def default(self, fields: tuple) -> None:
        """Records a request for uWSGI's line: `fields` are exactly the arguments of
        `self.line` (the date from RequestLog.ctime; µs rounded with log-micros, else ms,
        which %d truncates). The lines of a batch are
        formatted together, by one map() in C, when it is written: with a Python loop, or
        a line formatted as each request ends, a line cost a third more (measured with the
        hello world of `npm run bench request-log`)."""
        if not self.pending and not self.records:
            self.first_pending = time.monotonic()
        self.records.append(fields)
        if len(self.records) >= LOG_BATCH_REQUESTS:
            self.flush()

    def ctime(self, second: int) -> str:
        """The date of uWSGI's line for a request that started in `second` (epoch seconds),
        kept in `self.second` and `self.date`: the caller reads those when the second matches."""
        self.date = _dates(second * 1000)[0]
        self.second = second
        return self.date

    def _format_records(self) -> None:
        self.pending.extend(map(self.line.__mod__, self.records))
        self.records = []

    def write(self, line: str) -> None:
        if not self.pending and not self.records:
            self.first_pending = time.monotonic()
        self.pending.append(line)
        self.pending_bytes += len(line)
        if self.pending_bytes >= LOG_BUFFER_BYTES:
            self.flush()

    def due(self) -> Optional[float]:
        """Seconds until the buffer must be written; None when it is empty."""
        if not self.pending and not self.records:
            return None
        return max(0.0, self.first_pending + LOG_FLUSH_S - time.monotonic())

    def flush(self) -> None:
        if self.records:
            self._format_records()
        if not self.pending:
            return
        data = "".join(self.pending).encode("latin-1", "replace")
        self.pending = []
        self.pending_bytes = 0
        while data:
            try:
                data = data[os.write(2, data):]
            except BlockingIOError:  # a shared, non-blocking stderr pipe that is full
                time.sleep(0.01)
            except OSError:
                return

    def reopen(self) -> None:
        self.flush()
        if not self.logto:
            return
        try:
            fd = os.open(self.logto, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        except OSError as err:
            self.log.error("logto: cannot reopen %s: %s; still writing to the old file" % (self.logto, err))
            return
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)


# --- scoreboard ------------------------------------------------------------------------


def _utf8_prefix(text: str, limit: int) -> bytes:
    """UTF-8 of `text` cut to `limit` bytes without splitting a character (as Buffer#write does)."""
    data = text.encode("utf-8", "replace")
    if len(data) <= limit:
        return data
    return data[:limit].decode("utf-8", "ignore").encode("utf-8")


class Scoreboard:
    """This process's slot: one positional write of the whole 1024 bytes each time."""

    def __init__(self, fd: int, index: int) -> None:
        self.fd = fd
        self.offset = index * SLOT.size
        self.seq = 0
        self.last_write = 0.0
        self.pid = os.getpid()

    def write(self, w: "Worker", status: int) -> None:
        self.seq = (self.seq + 1) & 0xFFFFFFFF
        now = time.time()
        self.last_write = now
        req = w.current
        method = _utf8_prefix(req[1], METHOD_MAX) if req else b""
        uri = _utf8_prefix(req[2], URI_MAX) if req else b""
        data = SLOT.pack(
            self.seq, self.pid, status, 1 if w.accepting else 0, len(w.inflight) if w.inflight is not None else 1 if req else 0,
            now * 1000, w.requests, w.exceptions, w.tx_bytes, w.running_time_us, w.avg_rt_us,
            req[0] if req else 0.0, 0.0, w.last_request_end_ms,
            len(method), len(uri), method, uri, self.seq,
        )
        try:
            os.pwrite(self.fd, data, self.offset)
        except OSError as err:
            w.log.error("cannot write the scoreboard: %s" % err)


# --- IPC with the master ----------------------------------------------------------------


class Channel:
    """Node's IPC channel with `serialization: 'json'`: one JSON object per line."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.partial = b""
        os.set_blocking(fd, False)

    def send(self, message: dict) -> None:
        data = (json.dumps(message, separators=(",", ":")) + "\n").encode()
        while data:
            try:
                data = data[os.write(self.fd, data):]
            except BlockingIOError:
                select.select([], [self.fd], [], 1.0)
            except OSError:
                return  # the master is gone; its death is noticed on the read side

    def read(self) -> Optional[list]:
        """Messages received; None at EOF (the master died)."""
        try:
            chunk = os.read(self.fd, 65536)
        except BlockingIOError:
            return []
        except OSError:
            return None
        if not chunk:
            return None
        *lines, self.partial = (self.partial + chunk).split(b"\n")
        out = []
        for line in lines:
            if line.strip():
                try:
                    out.append(json.loads(line))
                except ValueError:
                    out.append(line.decode("utf-8", "replace"))
        return out


# --- request bodies and responses -----------------------------------------------------


class ClientError(OSError):
    """The client broke the request (went away, timed out, sent a malformed body)."""


def head_complete(buf: bytearray, limit: int) -> bool:
    """Whether `buf` holds a whole HTTP request head, or more than `limit` (buffer-size)
    bytes of one, which is refused without waiting for the rest. Empty lines before a
    request are skipped (RFC 9112 2.2)."""
    start = 0
    while buf.startswith(b"\r\n", start):
        start += 2
    return buf.find(b"\r\n\r\n", start) >= 0 or len(buf) - start > limit


class Conn:
    """One client connection and the bytes read from it but not consumed yet."""

    __slots__ = ("sock", "fd", "proto", "buf", "peer", "server", "last_active", "registered", "head_since", "busy")

    def __init__(self, sock: socket.socket, peer: Any, proto: str, server: tuple) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.proto = proto
        self.buf = bytearray()
        self.peer = peer
        self.server = server
        self.last_active = time.monotonic()
        self.registered = False
        # When the first byte of a request head not yet complete came (monotonic); 0 when none.
        self.head_since = 0.0
        # With threads: a request thread has it (not in the selector, not the loop's to close).
        self.busy = False

    def peer_text(self) -> str:
        p = self.peer
        if isinstance(p, tuple) and len(p) >= 2:
            return "%s:%s" % (p[0], p[1]) if ":" not in str(p[0]) else "[%s]:%s" % (p[0], p[1])
        return "unix:%s" % (self.server[2] or "socket")

    def recv_more(self) -> bool:
        """Reads what is available (blocking up to the socket timeout); False at EOF."""
        try:
            data = self.sock.recv(RECV_SIZE)
        except (BlockingIOError, socket.timeout):
            raise ClientError("timed out reading from the client")
        except OSError as err:
            raise ClientError(str(err))
        if not data:
            return False
        self.buf += data
        return True


class Input:
    """``wsgi.input``: the request body, bounded by CONTENT_LENGTH, or chunked-decoded.

    Reads never go past the body (PEP 3333: the server bounds it). ``Expect:
    100-continue`` is answered on the first read, so an app that rejects the request
    never makes the client send the body.
    """

    def __init__(self, conn: Conn, length: int, chunked: bool, expect_continue: bool) -> None:
        self.conn = conn
        self.remaining = length  # content-length mode: body bytes not yet taken from the conn
        self.chunked = chunked
        self.chunk_left = 0  # chunked mode: bytes left in the current chunk
        self.eof = not chunked and length == 0
        self.continue_pending = expect_continue and not self.eof
        self.pending = bytearray()  # decoded body bytes not yet handed to the app

    def _take(self, n: int) -> bytes:
        buf = self.conn.buf
        if not buf and not self.conn.recv_more():
            raise ClientError("the client closed the connection in the middle of the request body")
        data = bytes(buf[:n])
        del buf[:n]
        return data

    def _line(self) -> bytes:
        buf = self.conn.buf
        while True:
            i = buf.find(b"\r\n")
            if i >= 0:
                line = bytes(buf[:i])
                del buf[: i + 2]
                return line
            if len(buf) > 4096:
                raise ClientError("chunked body: chunk size line too long")
            if not self.conn.recv_more():
                raise ClientError("the client closed the connection in the middle of a chunked body")

    def _more(self, want: int) -> bool:
        """Appends up to `want` (at least 1) decoded bytes to `pending`; False at the end."""
        if self.eof:
            return False
        if self.continue_pending:
            self.continue_pending = False
            try:
                self.conn.sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
            except OSError as err:
                raise ClientError(str(err))
        if not self.chunked:
            data = self._take(min(self.remaining, max(want, 1), RECV_SIZE * 4))
            self.remaining -= len(data)
            self.eof = self.remaining == 0
            self.pending += data
            return True
        if self.chunk_left == 0:
            size_line = self._line().split(b";", 1)[0].strip()
            try:
                if not re.fullmatch(rb"[0-9A-Fa-f]{1,16}", size_line):
                    raise ValueError
                self.chunk_left = int(size_line, 16)
            except ValueError:
                raise ClientError("chunked body: bad chunk size %r" % size_line[:20])
            if self.chunk_left == 0:
                while self._line():  # trailers, ignored
                    pass
                self.eof = True
                return False
        data = self._take(min(self.chunk_left, max(want, 1), RECV_SIZE * 4))
        self.chunk_left -= len(data)
        if self.chunk_left == 0:
            if self._line() != b"":
                raise ClientError("chunked body: missing CRLF after a chunk")
        self.pending += data
        return True

    def read(self, size: Optional[int] = -1) -> bytes:
        if size is None or size < 0:
            while self._more(RECV_SIZE * 4):
                pass
            data = bytes(self.pending)
            self.pending.clear()
            return data
        while len(self.pending) < size and self._more(size - len(self.pending)):
            pass
        data = bytes(self.pending[:size])
        del self.pending[:size]
        return data

    def readline(self, size: Optional[int] = -1) -> bytes:
        limit = -1 if size is None else size
        while True:
            i = self.pending.find(b"\n")
            if i >= 0 and (limit < 0 or i < limit):
                end = i + 1
                break
            if 0 <= limit <= len(self.pending):
                end = limit
                break
            if not self._more(RECV_SIZE):
                end = len(self.pending)
                break
        data = bytes(self.pending[:end])
        del self.pending[:end]
        return data

    def readlines(self, hint: int = -1) -> list:
        lines = []
        total = 0
        while True:
            line = self.readline()
            if not line:
                return lines
            lines.append(line)
            total += len(line)
            if 0 < hint <= total:
                return lines

    def __iter__(self) -> "Input":
        return self

    def __next__(self) -> bytes:
        line = self.readline()
        if not line:
            raise StopIteration
        return line

    def drain(self) -> bool:
        """Reads and drops what the app left of the body; False when the connection cannot be reused."""
        if self.continue_pending:
            return False  # the client is still waiting to send it
        self.pending.clear()
        dropped = 0
        try:
            while self._more(RECV_SIZE):
                dropped += len(self.pending)
                self.pending.clear()
                if dropped > MAX_DRAIN_BYTES:
                    return False
        except ClientError:
            return False
        return True


class FileWrapper:
    """``wsgi.file_wrapper``: an iterable over a file; regular files are sent with sendfile(2)."""

    def __init__(self, filelike: Any, blksize: int = 8192) -> None:
        self.filelike = filelike
        self.blksize = blksize
        if hasattr(filelike, "close"):
            self.close = filelike.close

    def __iter__(self) -> "FileWrapper":
        return self

    def __next__(self) -> bytes:
        data = self.filelike.read(self.blksize)
        if data:
            return data
        raise StopIteration

    def regular_file(self) -> Optional[tuple]:
        """(fd, offset, length) when the file is a regular file sendfile can send."""
        try:
            fd = self.filelike.fileno()
            st = os.fstat(fd)
            if not (st.st_mode & 0o170000 == 0o100000):
                return None
            offset = self.filelike.tell()
            return (fd, offset, max(0, st.st_size - offset))
        except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
            return None


class BadRequest(Exception):
    """The request cannot be parsed: answered with `status`, then the connection closes."""

    def __init__(self, status: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status


def uwsgi_block_error(block: bytes) -> str:
    """Why a variable block does not parse, in the words of uWSGI and of the Node parser
    (src/worker/node/uwsgi-packet.ts). Only called once the fast parse failed."""
    end = len(block)
    pos = 0
    while pos < end:
        if pos + 2 > end:
            return "invalid uwsgi request (a key length runs past the end at byte %d)" % (pos + 4)
        klen = block[pos] | block[pos + 1] << 8
        pos += 2
        if klen == 0:
            return "uwsgi key cannot be null (at byte %d)" % (pos + 2)
        if pos + klen + 2 > end:
            return "invalid uwsgi request (current strsize: %d) runs past the end" % klen
        pos += klen
        vlen = block[pos] | block[pos + 1] << 8
        pos += 2
        if pos + vlen > end:
            return "invalid uwsgi request (current strsize: %d) runs past the end" % vlen
        pos += vlen
    return "invalid uwsgi request"


def http_date(now: float) -> str:
    """RFC 9110 IMF-fixdate, independent of the locale the app may set."""
    t = time.gmtime(now)
    return "%s, %02d %s %04d %02d:%02d:%02d GMT" % (
        _DAYS[t.tm_wday], t.tm_mday, _MONTHS[t.tm_mon], t.tm_year, t.tm_hour, t.tm_min, t.tm_sec
    )


# --- the worker -------------------------------------------------------------------------


class Worker:
    """The accept loop, the protocols, the WSGI calls and the bookkeeping."""

    def __init__(self, spec: dict, channel_fd: Optional[int]) -> None:
        self.spec = spec
        self.log = Log({"vassal": spec["vassal"], "worker": spec["id"]})
        self.errors = ErrorStream(self.log)
        self.reqlog = RequestLog(spec, self.log)
        self.scoreboard = Scoreboard(spec["scoreboard"]["fd"], spec["scoreboard"]["index"])
        self.channel = Channel(channel_fd) if channel_fd is not None else None
        self.buffer_size = int(spec["bufferSize"])
        self.socket_timeout_s = (spec.get("socketTimeoutMs") or SOCKET_TIMEOUT_S * 1000) / 1000
        self.heartbeat_s = max(0.05, spec["heartbeatIntervalMs"] / 1000)
        self.max_requests = int(spec.get("maxRequests") or 0)
        self.exact_slot = spec.get("harakiriMs", 0) > 0
        self.min_lifetime_s = (spec.get("minWorkerLifetimeMs") or 0) / 1000
        self.started = time.monotonic()
        self.app: Callable = None  # type: ignore[assignment]
        self.selector = selectors.DefaultSelector()
        self.listeners: list = []
        self.listener_keys: dict = {}  # fd → each listener's selector data, to register it again (see dispatch)
        self.conns: dict = {}
        self.partial: set = set()  # connections whose request head is not all there (see request_ready)
        self.accepting = False
        self.stopping = False
        self.stop_requested = False  # set by SIGTERM; acted on by the loop, not in the handler
        self.recycling = False
        # With threads: the thread that ended the max-requests-th request sets this at once,
        # so no connection is taken (or kept) in the moment before the loop recycles.
        self.recycle_pending = False
        self.status = STARTING
        self.current: Optional[tuple] = None  # (start epoch ms, method, uri) of the (oldest) request in flight
        # `threads` > 1: request threads take connections whose request head is all there
        # (see dispatch); the loop keeps accepting, reading heads and keep-alive for them.
        self.threads = max(1, int(spec.get("threads") or 1))
        self.lock: Optional[threading.RLock] = threading.RLock() if self.threads > 1 else None
        self.inflight: Optional[dict] = {} if self.threads > 1 else None  # id → (start ms, method, uri), oldest first
        self.ready_conns: "queue.SimpleQueue[Conn]" = queue.SimpleQueue()
        self.done: deque = deque()  # (conn, keep) handed back by request threads
        self.busy = 0  # connections handed to request threads and not back yet
        self.paused_since = 0.0  # listeners out of the selector (every thread taken) since, or the last accept then; 0 when not
        self.requests = 0
        self.exceptions = 0
        self.tx_bytes = 0
        self.running_time_us = 0.0
        self.avg_rt_us = 0.0
        self.last_request_end_ms = 0.0
        self._date = (0, "")
        # True while the slot lags the worker's state (a request ended without a write):
        # the loop then wakes within heartbeat_s to catch up; otherwise an idle worker
        # sleeps in select() until a connection, a signal or the master's channel.
        self.stale = False
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)

    # -- state ----------------------------------------------------------------------

    def locked(self, fn: Callable[[], None]) -> None:
        """Runs `fn` under the lock request threads share (slot, counters, request log);
        directly in a worker without threads."""
        lock = self.lock
        if lock is None:
            fn()
        else:
            with lock:
                fn()

    def publish(self) -> None:
        self.locked(self._publish)  # request threads publish too: one write at a time, from one state

    def _publish(self) -> None:
        self.stale = False
        status = STOPPING if self.stopping else self.status if self.status == STARTING else BUSY if self.current else IDLE
        self.scoreboard.write(self, status)

    def send(self, message: dict) -> None:
        if self.channel is not None:
            self.channel.send(message)

    def date(self) -> str:
        now = int(time.time())
        if self._date[0] != now:
            self._date = (now, http_date(now))
        return self._date[1]

    # -- start ----------------------------------------------------------------------

    def load_app(self) -> None:
        """Imports the app (uWSGI's `module` / `wsgi-file` / `callable`); exits 22 on any failure."""
        app = self.spec["app"]
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
            self.app = obj
        except BaseException as err:  # noqa: B036 - SystemExit at import is a load failure too
            self.log.error("cannot load app %s: %s: %s" % (target, type(err).__name__, err), {"module": target}, err)
            os._exit(EXIT_APP_LOAD)

    def listen(self) -> None:
        for s in self.spec["sockets"]:
            sock = socket.socket(fileno=s["fd"])
            try:
                sock.listen(int(self.spec["backlog"]))
            except OSError as err:
                # Two vassals bound the same port before either listened: the second loses here.
                self.log.error("cannot listen on %s: %s" % (s["name"], err), {"code": err.errno})
                os._exit(EXIT_UNAVAILABLE)
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
            try:
                name = sock.getsockname()
            except OSError:
                name = ""
            if isinstance(name, tuple):
                server = (str(name[0]), str(name[1]), "")
            else:
                server = ("localhost", "80", name if isinstance(name, str) else "")
            self.listeners.append(sock)
            family = (int(sock.family), int(sock.type))
            key = ("listener", s["protocol"], server, family)
            self.listener_keys[sock.fileno()] = key
            self.selector.register(sock, selectors.EVENT_READ, key)

    def _on_sigterm(self, *_: Any) -> None:
        # Python runs this between any two bytecodes of the main thread, maybe in the
        # middle of the loop's bookkeeping: only set a flag (the wake-up fd ends select).
        self.stop_requested = True

    def going_away(self) -> bool:
        """This process will stop soon: its responses tell clients to reconnect elsewhere."""
        return self.stopping or self.stop_requested or self.recycling or self.recycle_pending

    def install_signals(self) -> None:
        signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)
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
        self.selector.register(self._wake_r, selectors.EVENT_READ, ("wake",))
        if self.channel is not None:
            self.selector.register(self.channel.fd, selectors.EVENT_READ, ("channel",))

    # -- stopping -------------------------------------------------------------------

    def stop_accepting(self) -> None:
        """Closes this process's copies of the listening sockets; the master keeps its own."""
        for sock in self.listeners:
            try:
                self.selector.unregister(sock)
            except (KeyError, ValueError):
                pass
            sock.close()  # close, never shutdown: shutdown would stop the shared socket for everyone
        self.listeners = []
        self.accepting = False
        self.paused_since = 0.0

    def begin_stop(self) -> None:
        """Graceful stop: stop accepting, finish the request in flight, let keep-alive connections end."""
        if self.stopping:
            return
        self.stopping = True
        self.stop_accepting()
        if not self.current:
            self.publish()

    def on_channel(self) -> None:
        assert self.channel is not None
        messages = self.channel.read()
        if messages is None:
            # The master is gone: no orphans. Exit within 1 s whatever is running
            # (setpriv --pdeathsig KILL covers a worker stuck in C code).
            self.log.warn("lost the master; exiting")
            try:
                self.selector.unregister(self.channel.fd)
            except (KeyError, ValueError):
                pass
            self.channel = None
            timer = threading.Timer(ORPHAN_EXIT_S, lambda: (self.reqlog.flush(), os._exit(EXIT_OK)))
            timer.daemon = True
            timer.start()
            self.begin_stop()
            for conn in list(self.conns.values()):
                self.close(conn)
            return
        for m in messages:
            if isinstance(m, dict) and "cmd" in m:
                continue  # Node's internal messages (NODE_*), not ours
            if isinstance(m, dict) and m.get("v") == IPC_VERSION and m.get("type") == "stop":
                self.begin_stop()
            elif isinstance(m, dict) and m.get("v") == IPC_VERSION and m.get("type") == "reopen-logs":
                self.locked(self.reqlog.reopen)
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
            self.stop_accepting()
            self.publish()
            self.send({"v": IPC_VERSION, "type": "recycle", "reason": "max-requests"})

    # -- the loop -------------------------------------------------------------------

    def run(self) -> None:
        self.publish()  # "starting", as the Node worker does before its app loads
        self.install_signals()
        self.load_app()
        self.listen()
        for i in range(self.threads if self.threads > 1 else 0):
            threading.Thread(target=self.request_thread, name="request-%d" % (i + 1), daemon=True).start()
        self.status = IDLE
        self.accepting = True
        self.publish()
        self.send({"v": IPC_VERSION, "type": "ready"})
        last_sweep = time.monotonic()
        while True:
            if self.stop_requested and not self.stopping:
                self.begin_stop()
            if self.stopping and not self.conns:
                break
            # Nothing to catch up, no connection to sweep, no log to flush: sleep until
            # something happens (a 1 s wake-up per idle worker costs CPU on a host of many vassals).
            wait = self.heartbeat_s if self.stale or self.conns else None
            due = self.reqlog.due()
            if due is not None:
                wait = due if wait is None else min(wait, due)
            if self.partial:
                until = max(0.0, min(c.head_since for c in self.partial) + self.socket_timeout_s - time.monotonic())
                wait = until if wait is None else min(wait, until)
            events = self.selector.select(wait)
            # Connections request threads are done with first: the threads they free count
            # for this round's accepts.
            while self.done:
                self.returned(*self.done.popleft())
            # Requests on connections we hold come first; we accept only when we had none
            # to serve, so a new connection goes to a worker with nothing to do.
            had_work = any(key.data[0] == "conn" for key, _ in events)
            for key, _ in events:
                kind = key.data[0]
                if kind == "conn":
                    conn = key.data[1]
                    if conn.fd in self.conns:
                        self.serve(conn)
                elif kind == "listener":
                    # With threads, listeners are in the selector only while a thread is free.
                    if self.lock is not None or not had_work:
                        self.accept(key.fileobj, key.data[1], key.data[2], key.data[3])
                elif kind == "channel":
                    self.on_channel()
                else:
                    try:
                        while os.read(self._wake_r, 512):
                            pass
                    except OSError:
                        pass
            now = time.monotonic()
            if self.partial:
                for conn in [c for c in self.partial if now - c.head_since >= self.socket_timeout_s]:
                    self.head_timeout(conn)
            if now - last_sweep >= 0.5:
                last_sweep = now
                for conn in [c for c in self.conns.values() if not c.head_since and not c.busy and now - c.last_active > KEEPALIVE_TIMEOUT_S]:
                    self.close(conn)
            if self.stale and time.time() - self.scoreboard.last_write >= self.heartbeat_s:
                self.publish()
            if self.reqlog.due() == 0.0:
                self.locked(self.reqlog.flush)
        self.publish()
        self.errors.flush()
        self.reqlog.flush()

    def accept(self, listener: socket.socket, proto: str, server: tuple, family: tuple) -> None:
        # One connection per wake-up: the other workers woke too and take the next ones,
        # which spreads keep-alive connections over the pool.
        if not self.accepting or self.recycle_pending:
            return  # stopped accepting earlier in this round of events, or about to
        try:
            # What socket.accept() does, minus its family/type lookups: the fd comes back
            # blocking, with the listener's timeouts and TCP_NODELAY.
            fd, peer = listener._accept()  # type: ignore[attr-defined]
        except (BlockingIOError, InterruptedError):
            return
        except OSError as err:
            self.log.warn("accept failed: %s" % err)
            return
        sock = socket.socket(family[0], family[1], 0, fileno=fd)
        if len(self.conns) >= MAX_CONNECTIONS:
            idle = min((c for c in self.conns.values() if not c.busy), key=lambda c: c.last_active, default=None)
            if idle is not None:
                self.close(idle)
        conn = Conn(sock, peer, proto, server)
        self.conns[conn.fd] = conn
        # Usually the request is already there (nginx writes it right after connecting):
        # serve it now, without a round through the selector.
        try:
            data = sock.recv(RECV_SIZE, socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            data = None
        except OSError:
            self.close(conn)
            return
        if data == b"":
            self.close(conn)
            return
        if data is not None:
            conn.buf += data
            if not self.serve(conn, False) or conn.busy:
                return  # closed, or a request thread has it (and registers it when done)
        self.selector.register(sock, selectors.EVENT_READ, ("conn", conn))
        conn.registered = True

    def close(self, conn: Conn) -> None:
        if self.conns.pop(conn.fd, None) is None:
            return
        self.partial.discard(conn)
        if conn.registered:
            try:
                self.selector.unregister(conn.sock)
            except (KeyError, ValueError):
                pass
        try:
            conn.sock.close()
        except OSError:
            pass

    def serve(self, conn: Conn, read: bool = True) -> bool:
        """Serves the request(s) ready on `conn` (read them first unless `read` is False);
        keeps it open for the next one or closes it. Returns whether it stays open."""
        keep = False
        try:
            eof = read and not conn.recv_more()
            if eof and not conn.buf:
                self.close(conn)
                return False
            # At EOF with part of a request read, serving it reports the truncation as before.
            if not eof:
                buf = conn.buf
                if conn.proto == "uwsgi" or buf.startswith(b"\r\n") or b"\r\n\r\n" not in buf:
                    if not self.request_ready(conn):
                        return True  # back to the selector until the rest of the head comes
                elif conn.head_since:  # the usual case above, a whole HTTP head, inline
                    conn.head_since = 0.0
                    self.partial.discard(conn)
            if self.lock is not None:
                self.dispatch(conn)
                return True
            if conn.proto == "uwsgi":
                self.serve_uwsgi(conn)
            else:
                keep = self.serve_http(conn)
                while keep and conn.buf:
                    if not self.request_ready(conn):
                        break  # a pipelined request's head is still on its way
                    keep = self.serve_http(conn)  # pipelined requests already read
        except ClientError:
            keep = False
        except Exception as err:  # a bug in this worker: log it, drop the connection, keep serving
            self.log.error("internal error serving %s: %s" % (conn.peer_text(), err), None, err)
            keep = False
        if keep:
            conn.last_active = time.monotonic()
        else:
            self.close(conn)
        if self.max_requests:
            self.check_recycle()
        return keep

    # -- threads ----------------------------------------------------------------------

    def dispatch(self, conn: Conn) -> None:
        """Hands a connection whose request head is all there to a request thread (the
        next free one). The loop stops watching it until the thread hands it back (see
        returned), and stops watching the listeners while every thread is taken."""
        if conn.registered:
            try:
                self.selector.unregister(conn.sock)
            except (KeyError, ValueError):
                pass
            conn.registered = False
        conn.busy = True
        self.busy += 1
        self.ready_conns.put(conn)  # past `threads`, it waits there for the next free one
        if self.busy >= self.threads and not self.paused_since and self.listeners:
            for sock in self.listeners:
                self.selector.unregister(sock)
            self.paused_since = time.monotonic()

    def request_thread(self) -> None:
        """One of `threads`: serves the requests of one connection at a time, as `serve`
        does in a worker without threads, then hands the connection back to the loop."""
        while True:
            conn = self.ready_conns.get()
            keep = False
            try:
                if conn.proto == "uwsgi":
                    self.serve_uwsgi(conn)
                else:
                    keep = self.serve_http(conn)
                    # Pipelined requests whose head is already here; a partial one goes back to the loop.
                    while keep and conn.buf and head_complete(conn.buf, self.buffer_size):
                        keep = self.serve_http(conn)
            except ClientError:
                keep = False
            except Exception as err:  # a bug in this worker: log it, drop the connection, keep serving
                self.log.error("internal error serving %s: %s" % (conn.peer_text(), err), None, err)
                keep = False
            except BaseException as err:  # SystemExit or KeyboardInterrupt from the app: as without threads, the worker ends
                self.log.error("%s raised in a request thread serving %s; exiting" % (type(err).__name__, conn.peer_text()))
                self.errors.flush()
                self.locked(self.reqlog.flush)
                os._exit(1)
            self.done.append((conn, keep))
            try:
                os.write(self._wake_w, b"t")
            except OSError:
                pass  # the pipe is full: the loop is awake already

    def returned(self, conn: Conn, keep: bool) -> None:
        """A request thread is done with `conn`: back into the selector, or closed."""
        self.busy -= 1
        conn.busy = False
        if self.paused_since:
            if self.busy < self.threads:
                self.paused_since = 0.0
                for sock in self.listeners:
                    self.selector.register(sock, selectors.EVENT_READ, self.listener_keys[sock.fileno()])
            else:
                now = time.monotonic()
                if now - self.paused_since >= ACCEPT_PAUSED_S:
                    self.paused_since = now
                    for sock in list(self.listeners):
                        self.accept(sock, *self.listener_keys[sock.fileno()][1:])
        if self.conns.get(conn.fd) is not conn:
            return  # closed while a thread had it (the master went away)
        if not keep:
            self.close(conn)
        else:
            conn.last_active = time.monotonic()
            self.selector.register(conn.sock, selectors.EVENT_READ, ("conn", conn))
            conn.registered = True
            if conn.buf:
                self.serve(conn, False)  # a pipelined request, or the start of one
        if self.max_requests:
            self.check_recycle()

    def request_ready(self, conn: Conn) -> bool:
        """Whether `conn.buf` holds a whole request head (HTTP) or packet header and vars
        (uwsgi), or enough to refuse it. A worker serves one request at a time, so it never
        waits inside `serve` for a client's head: a slow or stalled sender (slowloris) would
        hold it for as long as it trickles bytes, since `socket-timeout` bounds each read,
        not the head. The connection goes back to the selector instead, and the loop
        closes it (head_timeout) if the head is not complete socket-timeout after its
        first byte."""
        buf = conn.buf
        if conn.proto == "uwsgi":
            size = buf[1] | buf[2] << 8 if len(buf) >= 4 else 0
            ready = len(buf) >= 4 and (buf[0] != 0 or len(buf) >= 4 + size or size > self.buffer_size)
        else:
            while buf.startswith(b"\r\n"):  # RFC 9112 2.2: ignore empty lines before a request
                del buf[:2]
            ready = head_complete(buf, self.buffer_size)
        if ready:
            if conn.head_since:
                conn.head_since = 0.0
                self.partial.discard(conn)
        elif buf and not conn.head_since:
            conn.head_since = time.monotonic()
            self.partial.add(conn)
        return ready

    def head_timeout(self, conn: Conn) -> None:
        """Closes a connection whose request head did not come in time (see request_ready)."""
        reason = "request head not complete %g s after its first byte (%d bytes)" % (self.socket_timeout_s, len(conn.buf))
        if conn.proto == "uwsgi":
            self.uwsgi_error(conn, reason)
        else:
            self.log.warn("HTTP request from %s: %s; connection closed" % (conn.peer_text(), reason), {"peer": conn.peer_text()})
            try:
                conn.sock.send(RESPONSE_408, socket.MSG_DONTWAIT)
            except OSError:
                pass
        self.close(conn)

    # -- HTTP -----------------------------------------------------------------------

    def read_head(self, conn: Conn) -> Optional[bytes]:
        buf = conn.buf
        while True:
            while buf[:2] == b"\r\n":  # RFC 9112 2.2: ignore empty lines before a request
                del buf[:2]
            i = buf.find(b"\r\n\r\n")
            if i >= 0:
                if i + 4 > self.buffer_size:
                    break
                head = bytes(buf[:i])
                del buf[: i + 4]
                return head
            if len(buf) > self.buffer_size:
                break
            if not conn.recv_more():
                if buf:
                    raise ClientError("the client closed the connection in the middle of the request head")
                return None
        raise BadRequest(
            "431 Request Header Fields Too Large",
            "request head larger than buffer-size (%d bytes)" % self.buffer_size,
        )

    def serve_http(self, conn: Conn) -> bool:
        """One HTTP/1.x request; True when the connection stays open."""
        try:
            head = self.read_head(conn)
            if head is None:
                return False
            environ, http11, keep_alive, body = self.parse_http(conn, head)
        except BadRequest as err:
            self.log.warn("bad HTTP request from %s: %s" % (conn.peer_text(), err))
            msg = (err.status + "\n").encode()
            try:
                conn.sock.sendall(
                    b"HTTP/1.1 %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
                    % (err.status.encode(), len(msg), msg)
                )
            except OSError:
                pass
            return False
        keep_alive = self.call_app(conn, environ, body, "HTTP/1.1", http11, keep_alive)
        if keep_alive and not body.eof:
            keep_alive = body.drain()
        return keep_alive and not self.going_away()

    def parse_http(self, conn: Conn, head: bytes) -> tuple:
        lines = head.split(b"\r\n")
        parts = lines[0].split(b" ")
        if len(parts) != 3:
            raise BadRequest("400 Bad Request", "malformed request line %r" % lines[0][:100])
        method_b, target, version_b = parts
        if not TOKEN.match(method_b):
            raise BadRequest("400 Bad Request", "malformed method %r" % method_b[:20])
        if version_b == b"HTTP/1.1":
            http11 = True
        elif version_b == b"HTTP/1.0":
            http11 = False
        elif version_b.startswith(b"HTTP/"):
            raise BadRequest("505 HTTP Version Not Supported", "HTTP version %r" % version_b[:20])
        else:
            raise BadRequest("400 Bad Request", "malformed request line %r" % lines[0][:100])
        if target[:1] != b"/":
            if target[:7].lower() == b"http://" or target[:8].lower() == b"https://":
                slash = target.find(b"/", target.find(b"//") + 2)
                target = target[slash:] if slash >= 0 else b"/"
            elif target != b"*":
                raise BadRequest("400 Bad Request", "malformed request target %r" % target[:100])
        path, _, query = target.partition(b"?")
        method = method_b.decode("latin-1")
        server = conn.server
        peer = conn.peer
        environ = {
            "REQUEST_METHOD": method,
            "SCRIPT_NAME": "",
            "PATH_INFO": (unquote_to_bytes(path) if b"%" in path else path).decode("latin-1"),
            "QUERY_STRING": query.decode("latin-1"),
            "REQUEST_URI": target.decode("latin-1"),
            "SERVER_PROTOCOL": version_b.decode("latin-1"),
            "SERVER_NAME": server[0],
            "SERVER_PORT": server[1],
            "REMOTE_ADDR": peer[0] if isinstance(peer, tuple) else "",
            "REMOTE_PORT": str(peer[1]) if isinstance(peer, tuple) else "",
            "wsgi.url_scheme": "http",
        }
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            if not sep or not TOKEN.match(name):
                # obs-fold or garbage: RFC 9112 5.2 allows rejecting it, and we do.
                raise BadRequest("400 Bad Request", "malformed header line %r" % line[:100])
            if b"_" in name:
                continue  # as nginx does by default: X_Forwarded_For would pose as X-Forwarded-For
            key = name.decode("latin-1").upper().replace("-", "_")
            if key == "CONTENT_TYPE" or key == "CONTENT_LENGTH":
                pass
            else:
                key = "HTTP_" + key
            val = value.strip(b" \t").decode("latin-1")
            if key in environ:
                val = environ[key] + ("; " if key == "HTTP_COOKIE" else ", ") + val
            environ[key] = val
        host = environ.get("HTTP_HOST")
        if host:
            # gunicorn and wsgiref take SERVER_NAME/PORT from Host when there is one.
            name, _, port = host.rpartition(":") if host.rfind(":") > host.rfind("]") else (host, "", "")
            environ["SERVER_NAME"] = name
            environ["SERVER_PORT"] = port or "80"
        elif http11:
            raise BadRequest("400 Bad Request", "HTTP/1.1 request without Host")  # RFC 9112 3.2
        tokens = [t.strip() for t in environ.get("HTTP_CONNECTION", "").lower().split(",")]
        keep_alive = ("close" not in tokens) if http11 else ("keep-alive" in tokens)
        te = environ.get("HTTP_TRANSFER_ENCODING")
        chunked = False
        length = 0
        if te is not None:
            if "CONTENT_LENGTH" in environ:
                raise BadRequest("400 Bad Request", "both Transfer-Encoding and Content-Length")
            if te.lower().split(",")[-1].strip() != "chunked":
                raise BadRequest("501 Not Implemented", "transfer coding %r" % te[:40])
            chunked = True
        elif "CONTENT_LENGTH" in environ:
            cl = environ["CONTENT_LENGTH"]
            if not cl.isdigit() or len(cl) > 18:
                raise BadRequest("400 Bad Request", "bad Content-Length %r" % cl[:40])
            length = int(cl)
        expect = environ.get("HTTP_EXPECT", "").lower() == "100-continue" and http11
        body = Input(conn, length, chunked, expect)
        return environ, http11, keep_alive, body

    # -- uwsgi ----------------------------------------------------------------------

    def uwsgi_error(self, conn: Conn, reason: str) -> None:
        self.log.warn(
            "uwsgi packet from %s: %s; connection closed" % (conn.peer_text(), reason),
            {"peer": conn.peer_text()},
        )

    def serve_uwsgi(self, conn: Conn) -> None:
        """One uwsgi packet (uWSGI proto/uwsgi.c), then the connection closes."""
        buf = conn.buf
        while len(buf) < 4:
            if not conn.recv_more():
                self.uwsgi_error(conn, "truncated header (%d of 4 bytes)" % len(buf))
                return
        modifier1, size, _modifier2 = struct.unpack_from("<BHB", buf)
        if modifier1 != 0:
            self.uwsgi_error(conn, "unavailable modifier requested: %d (only 0, WSGI, is served)" % modifier1)
            return
        if size > self.buffer_size:
            self.uwsgi_error(conn, "invalid request block size: %d (max %d, buffer-size)" % (size, self.buffer_size))
            return
        end = 4 + size
        while len(buf) < end:
            if not conn.recv_more():
                self.uwsgi_error(conn, "truncated packet (%d of %d bytes)" % (len(buf), end))
                return
        # One decode of the whole block, then slices: a Python loop per var is the cost here.
        block = bytes(buf[4:end])
        text = block.decode("latin-1")
        size = end - 4
        environ: dict = {}
        pos = 0
        try:
            while pos < size:
                klen = block[pos] | block[pos + 1] << 8
                if not klen:
                    self.uwsgi_error(conn, "uwsgi key cannot be null (at byte %d)" % (pos + 4))
                    return
                pos += 2
                key = text[pos : pos + klen]
                pos += klen
                vlen = block[pos] | block[pos + 1] << 8
                pos += 2
                environ[key] = text[pos : pos + vlen]
                pos += vlen
        except IndexError:
            pos = size + 1
        if pos != size:
            self.uwsgi_error(conn, uwsgi_block_error(block))
            return
        del buf[:end]
        environ.setdefault("SCRIPT_NAME", "")
        environ.setdefault("PATH_INFO", "")
        environ.setdefault("QUERY_STRING", "")
        environ.setdefault("REQUEST_METHOD", "GET")
        environ.setdefault("SERVER_PROTOCOL", "HTTP/1.0")
        https = environ.get("HTTPS", "").lower()
        scheme = environ.get("REQUEST_SCHEME", environ.get("UWSGI_SCHEME", "")).lower()
        environ["wsgi.url_scheme"] = "https" if https in ("on", "1") or scheme == "https" else "http"
        cl = environ.get("CONTENT_LENGTH", "")
        length = int(cl) if cl.isdigit() and len(cl) <= 18 else 0
        body = Input(conn, length, False, False)
        self.call_app(conn, environ, body, None, False, False)

    # -- WSGI -----------------------------------------------------------------------

    def call_app(
        self, conn: Conn, environ: dict, body: Input, http_version: Optional[str], http11: bool, keep_alive: bool
    ) -> bool:
        """Calls the app and sends its response. `http_version` None means the uwsgi
        protocol: a raw response, no framing, and the connection closes after it.
        Returns whether the connection may be reused."""
        uwsgi = http_version is None
        method = environ["REQUEST_METHOD"]
        uri = environ.get("REQUEST_URI") or (
            environ["PATH_INFO"] + ("?" + environ["QUERY_STRING"] if environ["QUERY_STRING"] else "")
        )
        # Before the wsgi.* keys and the app's own; only when a request may be logged.
        nvars, pktsize = count_vars(environ) if self.reqlog.active else (0, 0)
        environ["wsgi.version"] = (1, 0)
        environ["wsgi.input"] = body
        environ["wsgi.errors"] = self.errors
        environ["wsgi.multithread"] = self.lock is not None
        environ["wsgi.multiprocess"] = True
        environ["wsgi.run_once"] = False
        environ["wsgi.file_wrapper"] = FileWrapper
        environ["wsgi.input_terminated"] = True
        t0 = time.perf_counter()
        now = time.time()
        start_ms = now * 1000
        entry = (start_ms, method, uri)
        lock = self.lock
        if lock is None:
            self.current = entry
            # With harakiri the slot's request start is the master's clock for a sync worker:
            # always written. Without, as the Node worker: unless written in the last 1 ms.
            if self.exact_slot or now - self.scoreboard.last_write >= START_PUBLISH_S:
                self.publish()
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
                if self.exact_slot or now - self.scoreboard.last_write >= START_PUBLISH_S:
                    self._publish()
                else:
                    self.stale = True  # another start was just written: the loop writes this one soon
        is_head = method == "HEAD"
        sock = conn.sock
        # Response state, shared with start_response and write.
        st: dict = {"status": None, "headers": None, "sent": False, "length": None, "chunked": False, "written": 0, "hsize": 0, "hcount": 0}
        tx = 0
        keep = keep_alive

        def send_all(data: bytes) -> None:
            nonlocal tx
            try:
                sock.sendall(data)  # kernel send timeout: 4 s without progress, not 4 s in all
            except (BlockingIOError, socket.timeout):
                raise ClientError("timed out writing to the client")
            except OSError as err:
                raise ClientError(str(err))
            tx += len(data)

        def head_bytes(known_length: Optional[int]) -> bytes:
            """The status line and headers, with the framing decided now."""
            nonlocal keep
            if self.going_away():
                keep = False  # this process is going away: clients reconnect to another one
            status = st["status"]
            code = int(status[:3])
            lines = []
            has_date = False
            length = None
            for name, value in st["headers"]:
                lname = name.lower()
                if lname == "content-length":
                    length = int(value.strip()) if value.strip().isdigit() else None
                elif lname == "connection":
                    if "close" in value.lower():
                        keep = False
                    if not uwsgi:
                        continue  # ours decides below
                elif lname == "date":
                    has_date = True
                lines.append("%s: %s\r\n" % (name, value))
            bodyless = is_head or code < 200 or code in NO_BODY_STATUS
            if length is None and known_length is not None and not (code < 200 or code in NO_BODY_STATUS):
                length = known_length
                lines.append("Content-Length: %d\r\n" % length)
            st["length"] = length
            if uwsgi:
                first = "%s %s\r\n" % (environ["SERVER_PROTOCOL"] or "HTTP/1.0", status)
            else:
                if length is None and not bodyless:
                    if http11:
                        st["chunked"] = True
                        lines.append("Transfer-Encoding: chunked\r\n")
                    else:
                        keep = False  # HTTP/1.0 without a length: the end of the body is the close
                if not has_date:
                    lines.append("Date: %s\r\n" % self.date())
                if not keep:
                    lines.append("Connection: close\r\n")
                elif not http11:
                    lines.append("Connection: keep-alive\r\n")
                first = "HTTP/1.1 %s\r\n" % status
            head = (first + "".join(lines) + "\r\n").encode("latin-1")
            st["hsize"] = len(head)
            st["hcount"] = len(lines)
            return head

        def send_body(data: bytes, known_length: Optional[int] = None) -> None:
            """Sends the headers first if they are not out yet, then `data` framed."""
            out = b""
            if not st["sent"]:
                out = head_bytes(known_length)
                st["sent"] = True
            if data and not is_head:
                length = st["length"]
                if length is not None:
                    room = length - st["written"]
                    if len(data) > room:
                        self.log.warn("%s %s: the app sent more than its Content-Length (%d); truncated" % (method, uri, length))
                        data = data[:room]
                st["written"] += len(data)
                if st["chunked"]:
                    out += b"%x\r\n" % len(data) + data + b"\r\n"
                else:
                    out = out + data if out else data
            if out:
                send_all(out)

        def write(data: bytes) -> None:
            if st["status"] is None:
                raise AssertionError("write() called before start_response()")
            if not isinstance(data, (bytes, bytearray)):
                raise TypeError("write() takes bytes, not %s" % type(data).__name__)
            send_body(bytes(data))

        def start_response(status: str, headers: list, exc_info: Any = None) -> Callable:
            if exc_info:
                try:
                    if st["sent"]:
                        raise exc_info[1].with_traceback(exc_info[2])
                finally:
                    exc_info = None  # PEP 3333: avoid a reference cycle with the traceback
            elif st["status"] is not None:
                raise AssertionError("start_response() called a second time without exc_info")
            if status not in GOOD_STATUSES:
                if type(status) is not str or not STATUS.match(status):
                    raise ValueError("start_response: status must be a str like '200 OK', got %r" % (status,))
                remember(GOOD_STATUSES, status)
            if type(headers) is not list:
                raise TypeError("start_response: headers must be a list, got %s" % type(headers).__name__)
            for h in headers:
                if type(h) is not tuple or len(h) != 2 or type(h[1]) is not str:
                    raise TypeError("start_response: each header must be a (str, str) tuple, got %r" % (h,))
                name = h[0]
                if name not in GOOD_NAMES:
                    if type(name) is not str or not TOKEN.match(name.encode("latin-1", "replace")):
                        raise ValueError("start_response: invalid header name %r" % (name,))
                    if name.lower() in HOP_BY_HOP:
                        raise ValueError("start_response: hop-by-hop header %r is the server's business (PEP 3333)" % name)
                    remember(GOOD_NAMES, name)
                if BAD_HEADER_VALUE.search(h[1]):
                    raise ValueError("start_response: invalid header value %r" % (h,))
            st["status"] = status
            st["headers"] = headers
            return write

        result: Any = None
        failed: Optional[BaseException] = None
        client_gone: Optional[ClientError] = None
        try:
            result = self.app(environ, start_response)
            known: Optional[int] = None
            wrapper_file = result.regular_file() if isinstance(result, FileWrapper) else None
            if wrapper_file is not None:
                if st["status"] is None:
                    raise AssertionError("the app returned without calling start_response()")
                _, offset, count = wrapper_file
                send_body(b"", count)
                if not is_head and count:
                    length = st["length"]
                    n = count if length is None else min(count, length - st["written"])
                    if st["chunked"]:
                        send_all(b"%x\r\n" % n)
                    try:
                        sent = sock.sendfile(result.filelike, offset, n)
                    except (BlockingIOError, socket.timeout):
                        raise ClientError("timed out writing to the client")
                    except OSError as err:
                        raise ClientError(str(err))
                    tx += sent
                    st["written"] += sent
                    if st["chunked"]:
                        send_all(b"\r\n")
            else:
                if type(result) in (list, tuple) and len(result) == 1:
                    chunk = result[0]
                    if isinstance(chunk, (bytes, bytearray)):
                        known = len(chunk)  # PEP 3333: a one-element list gives the length
                for chunk in result:
                    if st["status"] is None:
                        raise AssertionError("the app yielded a body before calling start_response()")
                    if type(chunk) is not bytes:
                        if isinstance(chunk, bytearray):
                            chunk = bytes(chunk)
                        else:
                            raise TypeError("the app yielded %s, not bytes (PEP 3333)" % type(chunk).__name__)
                    if chunk:
                        send_body(chunk, known)
                if st["status"] is None:
                    raise AssertionError("the app returned without calling start_response()")
                if not st["sent"]:
                    send_body(b"", 0 if known is None else known)
            if st["chunked"]:
                send_all(b"0\r\n\r\n")
            elif st["length"] is not None and st["written"] < st["length"] and not is_head:
                self.log.warn(
                    "%s %s: the app sent %d bytes of its Content-Length %d; connection closed"
                    % (method, uri, st["written"], st["length"])
                )
                keep = False
        except ClientError as err:
            client_gone = err
        except Exception as err:  # the app's: a 500 if we still can, and counted
            failed = err
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                try:
                    close()  # PEP 3333: always, whatever happened
                except ClientError as err:
                    client_gone = client_gone or err
                except Exception as err:
                    failed = failed or err
        app_failed = failed is not None
        if failed is not None:
            keep = False
            self.log.error(
                "exception in %s %s: %s: %s" % (method, uri, type(failed).__name__, failed),
                {"method": method, "uri": uri},
                failed,
            )
            if not st["sent"]:
                text = b"Internal Server Error\n"
                first = (environ["SERVER_PROTOCOL"] or "HTTP/1.0") if uwsgi else "HTTP/1.1"
                extra = "" if uwsgi else "Date: %s\r\nConnection: close\r\n" % self.date()
                head500 = (
                    "%s 500 Internal Server Error\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n%s\r\n"
                    % (first, len(text), extra)
                ).encode("latin-1")
                st.update(status="500 Internal Server Error", sent=True, hsize=len(head500), hcount=2 if uwsgi else 4)
                try:
                    send_all(head500 + (b"" if is_head else text))
                except ClientError:
                    pass
            failed = None  # drop the traceback's frames now
        if client_gone is not None:
            keep = False
            self.log.warn("%s %s: client %s went away: %s" % (method, uri, conn.peer_text(), client_gone))
        rt_us = (time.perf_counter() - t0) * 1e6
        # The counters, the slot and the request log are the worker's, shared by its threads.
        if lock is not None:
            lock.acquire()
        try:
            self.requests += 1
            if app_failed:
                self.exceptions += 1
            self.running_time_us += rt_us
            self.avg_rt_us = rt_us if self.avg_rt_us == 0 else (self.avg_rt_us + rt_us) / 2  # uWSGI's running average
            self.tx_bytes += tx
            now = time.time()
            self.last_request_end_ms = now * 1000
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
            status = int(st["status"][:3]) if st["sent"] else 0
            rsize = max(0, tx - st["hsize"])
            log = self.reqlog
            if log.enabled or log.wanted(status, rt_us, rsize):
                addr = environ.get("REMOTE_ADDR", "")
                if log.xff:
                    addr = environ.get("HTTP_X_FORWARDED_FOR", "").split(",")[0].strip() or addr
                proto = environ.get("SERVER_PROTOCOL") or "HTTP/1.0"
                user = environ.get("REMOTE_USER", "")
                if log.plain:
                    second = int(start_ms // 1000)
                    log.default((log.pid, self.requests, self.requests, addr, user, nvars, pktsize,
                                 log.date if second == log.second else log.ctime(second), method, uri, rsize,
                                 round(rt_us) if log.micros else rt_us / 1000, proto, status, st["hcount"], st["hsize"]))
                else:
                    f = Facts()
                    f.pid, f.wid, f.n, f.method, f.uri, f.proto, f.status = log.pid, self.spec["id"], self.requests, method, uri, proto, status
                    f.addr, f.port, f.user, f.start_ms, f.duration_us = addr, environ.get("REMOTE_PORT", ""), user, start_ms, rt_us
                    f.rsize, f.hsize, f.headers, f.vars, f.pktsize, f.environ = rsize, st["hsize"], st["hcount"], nvars, pktsize, environ
                    log.request(f)
            return keep and not uwsgi
        finally:
            if lock is not None:
                lock.release()


def main() -> None:
    if sys.version_info < (3, 9):
        sys.stderr.write("emperor_worker.py needs Python 3.9 or newer, not %s\n" % sys.version.split()[0])
        os._exit(EXIT_APP_LOAD)
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
    # sys.path[0] is this file's directory: the app's directory (the cwd, uWSGI's chdir)
    # takes its place, and pythonpath entries come first, in the order given.
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]
    sys.path[0:0] = list(app.get("pythonpath") or []) + [os.getcwd()]
    sys.argv = [app.get("wsgiFile") or app.get("module") or "emperor-worker"]
    try:
        import ctypes

        title = ("emperor worker %d" % spec["id"]).encode()[:15]
        ctypes.CDLL(None).prctl(15, ctypes.c_char_p(title), 0, 0, 0)  # PR_SET_NAME: what ps and ss show
    except Exception:
        pass
    worker = Worker(spec, int(channel) if channel else None)
    try:
        worker.run()
    except Exception as err:
        worker.reqlog.flush()
        worker.log.write(60, "worker failed: %s: %s" % (type(err).__name__, err), None, err)
        os._exit(1)
    worker.reqlog.flush()
    os._exit(EXIT_OK)


if __name__ == "__main__":
    main()
