"""The request log: which requests to log (uWSGI's log_request), their lines, and the
buffer they wait in.

The same lines as the Node worker (packages/vassal/src/shared/request-log.ts): uWSGI's
default line byte for byte, a ``log-format`` template, or a JSON object. Change them
together.
"""

from __future__ import annotations

import json
import os
import re
import time
from typing import TYPE_CHECKING, Callable, Optional

from .contract import DEFAULT_REQUEST_LINE

if TYPE_CHECKING:
    from .log import Log

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


DEFAULT_LINE = DEFAULT_REQUEST_LINE  # generated from packages/protocol/src/contract.ts
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

    def finished(self, wid: int, n: int, entry: tuple, environ: dict, status: int, rt_us: float, rsize: int,
                 hcount: int, hsize: int, nvars: int, pktsize: int) -> bool:
        """Logs one finished request if `wanted` (uWSGI's log_request): its default line, or
        the `log-format`/JSON line. `entry` is (start ms since the epoch, method, URI), `n`
        the worker's request count, `rt_us` the duration in µs, `rsize` the body bytes sent
        and `hsize`/`hcount` the response head's bytes and header count. Shared by the WSGI
        and the ASGI worker. True when a line was recorded."""
        if not (self.enabled or self.wanted(status, rt_us, rsize)):
            return False
        start_ms, method, uri = entry
        addr = environ.get("REMOTE_ADDR", "")
        if self.xff:
            addr = environ.get("HTTP_X_FORWARDED_FOR", "").split(",")[0].strip() or addr
        proto = environ.get("SERVER_PROTOCOL") or "HTTP/1.0"
        user = environ.get("REMOTE_USER", "")
        if self.plain:
            second = int(start_ms // 1000)
            self.default((self.pid, n, n, addr, user, nvars, pktsize,
                          self.date if second == self.second else self.ctime(second), method, uri, rsize,
                          round(rt_us) if self.micros else rt_us / 1000, proto, status, hcount, hsize))
        else:
            f = Facts()
            f.pid, f.wid, f.n, f.method, f.uri, f.proto, f.status = self.pid, wid, n, method, uri, proto, status
            f.addr, f.port, f.user, f.start_ms, f.duration_us = addr, environ.get("REMOTE_PORT", ""), user, start_ms, rt_us
            f.rsize, f.hsize, f.headers, f.vars, f.pktsize, f.environ = rsize, hsize, hcount, nvars, pktsize, environ
            self.request(f)
        return True

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

