"""HTTP/1.1 and 1.0 on ``http-socket``: request heads, chunked bodies, response framing.

Sans-IO (see ``base.py``). The rules are RFC 9112's, refusing what is ambiguous rather
than guessing (obs-fold, both Transfer-Encoding and Content-Length, codings other than
chunked), with nginx's habit of dropping header names that contain ``_``. The environ
is PEP 3333's and gunicorn's: ``SERVER_NAME``/``SERVER_PORT`` from Host when there is one.
"""

from __future__ import annotations

import re
import time
from typing import Any, Callable, Optional
from urllib.parse import unquote_to_bytes

from .base import MAX_TAKE, NO_BODY_STATUS, LengthReader, Protocol, ProtocolError, scan_headers

#: RFC 9110 5.6.2 token: method and header names.
TOKEN = re.compile(rb"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
#: The interim response to ``Expect: 100-continue``, sent when the app first reads the body.
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
#: The answer to a request head that did not come within socket-timeout of its first byte.
RESPONSE_408 = b"HTTP/1.1 408 Request Timeout\r\nContent-Type: text/plain\r\nContent-Length: 20\r\nConnection: close\r\n\r\n408 Request Timeout\n"
#: The end of a chunked body: the last chunk, no trailers.
LAST_CHUNK = b"0\r\n\r\n"
# A chunk size line (or trailer line, or the CRLF after a chunk) longer than this is refused.
MAX_CHUNK_LINE = 4096
CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,16}")

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("", "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def http_date(now: float) -> str:
    """RFC 9110 IMF-fixdate of ``now`` (epoch seconds), independent of the app's locale."""
    t = time.gmtime(now)
    return "%s, %02d %s %04d %02d:%02d:%02d GMT" % (
        _DAYS[t.tm_wday], t.tm_mday, _MONTHS[t.tm_mon], t.tm_year, t.tm_hour, t.tm_min, t.tm_sec
    )


def date_clock(clock: Callable[[], float] = time.time) -> Callable[[], str]:
    """A function returning the Date header's value for now, formatted once per second."""
    cache = [-1, ""]

    def date() -> str:
        now = int(clock())
        if cache[0] != now:
            cache[:] = [now, http_date(now)]
        return cache[1]  # type: ignore[return-value]

    return date


def error_response(status: str) -> bytes:
    """A complete plain-text response for a refused request; the connection closes after it."""
    msg = (status + "\n").encode()
    return b"HTTP/1.1 %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" % (
        status.encode(), len(msg), msg,
    )


def bad_request(status: str, reason: str) -> ProtocolError:
    return ProtocolError(reason, error_response(status))


def chunk(data: bytes) -> bytes:
    """One piece of a chunked response body."""
    return b"%x\r\n" % len(data) + data + b"\r\n"


def read_head(buf: bytearray, limit: int) -> Optional[bytes]:
    """Takes the request head (without its final blank line) out of ``buf``; None when it
    is not all there. Empty lines before a request are dropped (RFC 9112 2.2).

    :raises ProtocolError: 431, the head is larger than ``limit`` bytes (buffer-size)
    """
    while buf[:2] == b"\r\n":
        del buf[:2]
    i = buf.find(b"\r\n\r\n")
    if i < 0:
        if len(buf) > limit:
            raise bad_request("431 Request Header Fields Too Large", "request head larger than buffer-size (%d bytes)" % limit)
        return None
    if i + 4 > limit:
        raise bad_request("431 Request Header Fields Too Large", "request head larger than buffer-size (%d bytes)" % limit)
    head = bytes(buf[:i])
    del buf[: i + 4]
    return head


def parse_head(head: bytes, server: tuple, peer: Any) -> tuple:
    """A request head (the bytes before the blank line) as a request tuple (see base.py);
    the context is whether the request is HTTP/1.1.

    :raises ProtocolError: with the status to answer (400, 501, 505) and why
    """
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ")
    if len(parts) != 3:
        raise bad_request("400 Bad Request", "malformed request line %r" % lines[0][:100])
    method_b, target, version_b = parts
    if not TOKEN.match(method_b):
        raise bad_request("400 Bad Request", "malformed method %r" % method_b[:20])
    if version_b == b"HTTP/1.1":
        http11 = True
    elif version_b == b"HTTP/1.0":
        http11 = False
    elif version_b.startswith(b"HTTP/"):
        raise bad_request("505 HTTP Version Not Supported", "HTTP version %r" % version_b[:20])
    else:
        raise bad_request("400 Bad Request", "malformed request line %r" % lines[0][:100])
    if target[:1] != b"/":
        if target[:7].lower() == b"http://" or target[:8].lower() == b"https://":
            slash = target.find(b"/", target.find(b"//") + 2)
            target = target[slash:] if slash >= 0 else b"/"
        elif target != b"*":
            raise bad_request("400 Bad Request", "malformed request target %r" % target[:100])
    path, _, query = target.partition(b"?")
    environ = {
        "REQUEST_METHOD": method_b.decode("latin-1"),
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
            raise bad_request("400 Bad Request", "malformed header line %r" % line[:100])
        if b"_" in name:
            continue  # as nginx does by default: X_Forwarded_For would pose as X-Forwarded-For
        key = name.decode("latin-1").upper().replace("-", "_")
        if key != "CONTENT_TYPE" and key != "CONTENT_LENGTH":
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
        raise bad_request("400 Bad Request", "HTTP/1.1 request without Host")  # RFC 9112 3.2
    tokens = [t.strip() for t in environ.get("HTTP_CONNECTION", "").lower().split(",")]
    keep_alive = ("close" not in tokens) if http11 else ("keep-alive" in tokens)
    te = environ.get("HTTP_TRANSFER_ENCODING")
    body: Any = None
    if te is not None:
        if "CONTENT_LENGTH" in environ:
            raise bad_request("400 Bad Request", "both Transfer-Encoding and Content-Length")
        if te.lower().split(",")[-1].strip() != "chunked":
            raise bad_request("501 Not Implemented", "transfer coding %r" % te[:40])
        body = ChunkedReader()
    elif "CONTENT_LENGTH" in environ:
        cl = environ["CONTENT_LENGTH"]
        if not (cl.isascii() and cl.isdigit()) or len(cl) > 18:
            raise bad_request("400 Bad Request", "bad Content-Length %r" % cl[:40])
        length = int(cl)
        if length:
            body = LengthReader(length)
    interim = CONTINUE if body is not None and http11 and environ.get("HTTP_EXPECT", "").lower() == "100-continue" else None
    return environ, body, interim, keep_alive, http11


# Where a ChunkedReader is: before a size line, inside a chunk's data, in the trailers.
_SIZE, _DATA, _TRAILER, _DONE = 0, 1, 2, 3


class ChunkedReader:
    """A chunked request body (RFC 9112 7.1), decoded from the front of a buffer; the
    interface of ``base.LengthReader``. Chunk extensions and trailers are read and dropped.

    A chunk's last bytes are handed out only together with the CRLF that must follow them,
    so a body that breaks off there fails on that read, not on the next one.
    """

    __slots__ = ("state", "left", "eof_reason")

    def __init__(self) -> None:
        self.state = _SIZE
        self.left = 0  # bytes of the current chunk not taken yet
        self.eof_reason = "the client closed the connection in the middle of a chunked body"

    def _line(self, buf: bytearray, at: int = 0) -> Optional[int]:
        """Where the CRLF ending the line at ``buf[at:]`` is; None when it has not come."""
        i = buf.find(b"\r\n", at)
        if i >= 0:
            return i
        if len(buf) - at > MAX_CHUNK_LINE:
            raise ProtocolError("chunked body: chunk size line too long")
        self.eof_reason = "the client closed the connection in the middle of a chunked body"
        return None

    def read(self, buf: bytearray, want: int) -> Optional[bytes]:
        """See ``base.LengthReader.read``.

        :raises ProtocolError: a bad chunk size, no CRLF after a chunk, a line too long
        """
        while True:
            state = self.state
            if state == _DATA:
                if not buf:
                    self.eof_reason = "the client closed the connection in the middle of the request body"
                    return None
                n = min(self.left, want if want > 1 else 1, MAX_TAKE, len(buf))
                if n < self.left:
                    data = bytes(buf[:n])
                    del buf[:n]
                    self.left -= n
                    return data
                # The chunk's last bytes, with the CRLF after them.
                i = self._line(buf, n)
                if i is None:
                    return None
                if i != n:
                    raise ProtocolError("chunked body: missing CRLF after a chunk")
                data = bytes(buf[:n])
                del buf[: n + 2]
                self.left = 0
                self.state = _SIZE
                return data
            if state == _SIZE:
                i = self._line(buf)
                if i is None:
                    return None
                size_line = bytes(buf[:i]).split(b";", 1)[0].strip()
                del buf[: i + 2]
                if not CHUNK_SIZE.fullmatch(size_line):
                    raise ProtocolError("chunked body: bad chunk size %r" % size_line[:20])
                self.left = int(size_line, 16)
                self.state = _DATA if self.left else _TRAILER
            elif state == _TRAILER:
                i = self._line(buf)
                if i is None:
                    return None
                del buf[: i + 2]
                if i == 0:
                    self.state = _DONE
            else:
                return b""


class HttpProtocol(Protocol):
    """``http-socket``: HTTP/1.1 with keep-alive and pipelining, and HTTP/1.0."""

    name = "http"
    timeout_response = RESPONSE_408

    def head_ready(self, buf: bytearray) -> bool:
        if buf[:2] == b"\r\n":
            while buf[:2] == b"\r\n":  # RFC 9112 2.2: ignore empty lines before a request
                del buf[:2]
        return b"\r\n\r\n" in buf or len(buf) > self.buffer_size

    def read_request(self, buf: bytearray, eof: bool, peer: Any) -> Optional[tuple]:
        # At eof a head cut short is the client's business: the connection just closes.
        head = read_head(buf, self.buffer_size)
        return None if head is None else parse_head(head, self.server, peer)

    def response_head(
        self, status: str, headers: list, known_length: Optional[int], is_head: bool, keep: bool, http11: Any
    ) -> tuple:
        code = int(status[:3])
        lines, length, close, has_date = scan_headers(headers, True)
        if close:
            keep = False
        no_body = code < 200 or code in NO_BODY_STATUS
        if length is None and known_length is not None and not no_body:
            length = known_length
            lines.append("Content-Length: %d\r\n" % length)
        frame = None
        end = b""
        if length is None and not (is_head or no_body):
            if http11:
                frame = chunk
                end = LAST_CHUNK
                lines.append("Transfer-Encoding: chunked\r\n")
            else:
                keep = False  # HTTP/1.0 without a length: the end of the body is the close
        if not has_date:
            lines.append("Date: %s\r\n" % self.date())
        if not keep:
            lines.append("Connection: close\r\n")
        elif not http11:
            lines.append("Connection: keep-alive\r\n")
        head = ("HTTP/1.1 %s\r\n" % status + "".join(lines) + "\r\n").encode("latin-1")
        return head, length, frame, end, keep, len(lines)

    def refusal(self, peer: str, reason: str, timed_out: bool) -> tuple:
        if timed_out:
            return "HTTP request from %s: %s; connection closed" % (peer, reason), {"peer": peer}
        return "bad HTTP request from %s: %s" % (peer, reason), None
