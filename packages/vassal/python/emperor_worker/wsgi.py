"""The app's side of a request, as PEP 3333 says: the environ's ``wsgi.*`` keys, the input
and error streams, ``start_response`` and ``write``, the file wrapper, and calling the app
and sending what it returns.

The bytes on the wire are the protocol's business (``protocols/``): ``Response`` asks the
connection's protocol for the head and the body's framing, and sends them.
"""

from __future__ import annotations

import io
import os
import re
import socket
from typing import TYPE_CHECKING, Any, Callable, Iterable, Optional

from .connection import RECV_SIZE, ClientError, Conn
from .log import exc_text
from .protocols import ProtocolError
from .protocols.http import TOKEN

if TYPE_CHECKING:
    from .log import Log

# Unread request body we read and discard to keep a connection alive; past it we close.
MAX_DRAIN_BYTES = 1 << 20

HOP_BY_HOP = frozenset(
    ["keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers", "transfer-encoding", "upgrade"]
)
STATUS = re.compile(r"^[1-9][0-9]{2} [^\r\n]*$")
BAD_HEADER_VALUE = re.compile(r"[\r\n\0]")
ERROR_500 = b"Internal Server Error\n"
# The 500's head when the connection's protocol fails to frame one.
ERROR_500_HEAD = b"HTTP/1.0 500 Internal Server Error\r\nContent-Type: text/plain\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(ERROR_500)

# Statuses, header names and whole header lists already checked: apps send the same
# few again and again.
GOOD_STATUSES: set = set()
GOOD_NAMES: set = set()
GOOD_HEADERS: set = set()


def remember(cache: set, item: str) -> None:
    if len(cache) >= 1024:
        cache.clear()  # bounded, whatever an app invents
    cache.add(item)


class ErrorStream(io.TextIOBase):
    """``wsgi.errors``: what the app writes goes to the log, one line per line (level warn)."""

    def __init__(self, log: "Log") -> None:
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


class Input:
    """``wsgi.input``: the request body, as the protocol's body ``reader`` decodes it from
    the connection (None: no body).

    Reads never go past the body (PEP 3333: the server bounds it). ``interim`` (``100
    Continue``) is sent on the first read, so an app that rejects the request never makes
    the client send the body.
    """

    def __init__(self, conn: Conn, reader: Any, interim: Optional[bytes]) -> None:
        self.conn = conn
        self.reader = reader
        self.eof = reader is None
        self.interim = interim
        self.pending = bytearray()  # decoded body bytes not yet handed to the app

    def _more(self, want: int) -> bool:
        """Appends up to ``want`` (at least 1) decoded bytes to ``pending``; False at the end.

        :raises ClientError: the client went away, stalled past socket-timeout, or sent a malformed body
        """
        if self.eof:
            return False
        conn = self.conn
        if self.interim is not None:
            interim = self.interim
            self.interim = None
            try:
                conn.sock.sendall(interim)
            except OSError as err:
                raise ClientError(str(err))
        reader = self.reader
        buf = conn.buf
        while True:
            try:
                data = reader.read(buf, want)
            except ProtocolError as err:
                raise ClientError(err.reason)
            if data is None:
                if not conn.recv_more():
                    raise ClientError(reader.eof_reason)
            elif data:
                self.pending += data
                return True
            else:
                self.eof = True
                return False

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
        if self.interim is not None:
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


class Response:
    """One request's response: ``start_response`` and ``write`` for the app; the head and
    the body's framing from the connection's protocol when the first bytes go out (so
    the framing knows what the app sent); the bytes counted for stats and the log.

    ``context`` is the request's, from the protocol; ``keep`` whether the request lets the
    connection be reused; ``owner`` the worker (its ``log``, and ``going_away()``, asked
    when the head goes out: a worker about to stop tells clients to reconnect elsewhere).
    After the app, ``keep`` says whether the connection may serve another request.
    """

    __slots__ = ("conn", "context", "owner", "method", "uri", "is_head", "keep", "status", "headers", "sent",
                 "length", "frame", "end", "written", "hsize", "hcount", "tx")

    def __init__(self, conn: Conn, context: Any, keep: bool, owner: Any, method: str, uri: str) -> None:
        self.conn = conn
        self.context = context
        self.keep = keep
        self.owner = owner
        self.method = method
        self.uri = uri
        self.is_head = method == "HEAD"
        self.status: Optional[str] = None
        self.headers: Optional[list] = None
        self.sent = False  # the head is out
        self.length: Optional[int] = None  # the body length the head announced
        self.frame: Optional[Callable[[bytes], bytes]] = None
        self.end: Any = b""  # bytes, or a function returning them (base.py)
        self.written = 0  # body bytes sent, before framing
        self.hsize = 0  # bytes of the head
        self.hcount = 0  # header lines in the head
        self.tx = 0  # bytes sent, head and framing included

    def start_response(self, status: str, headers: list, exc_info: Any = None) -> Callable:
        """PEP 3333's start_response: checks what the app gives (a bad status, header name
        or value, or a hop-by-hop header raises, which makes it a 500)."""
        if exc_info:
            try:
                if self.sent:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None  # PEP 3333: avoid a reference cycle with the traceback
        elif self.status is not None:
            raise AssertionError("start_response() called a second time without exc_info")
        if status not in GOOD_STATUSES:
            if type(status) is not str or not STATUS.match(status):
                raise ValueError("start_response: status must be a str like '200 OK', got %r" % (status,))
            remember(GOOD_STATUSES, status)
        if type(headers) is not list:
            raise TypeError("start_response: headers must be a list, got %s" % type(headers).__name__)
        try:
            known = tuple(headers) in GOOD_HEADERS
        except TypeError:  # an unhashable item: the checks below say what is wrong with it
            known = False
        if not known:
            check_headers(headers)
        self.status = status
        self.headers = headers
        return self.write

    def write(self, data: bytes) -> None:
        """PEP 3333's write(), returned by start_response."""
        if self.status is None:
            raise AssertionError("write() called before start_response()")
        if not isinstance(data, (bytes, bytearray)):
            raise TypeError("write() takes bytes, not %s" % type(data).__name__)
        self.send(bytes(data))

    def _send_all(self, data: bytes) -> None:
        try:
            self.conn.sock.sendall(data)  # kernel send timeout: socket-timeout without progress, not in all
        except (BlockingIOError, socket.timeout):
            raise ClientError("timed out writing to the client")
        except OSError as err:
            raise ClientError(str(err))
        self.tx += len(data)

    def _head(self, known_length: Optional[int]) -> bytes:
        keep = self.keep and not self.owner.going_away()
        head, self.length, self.frame, self.end, self.keep, self.hcount = self.conn.protocol.response_head(
            self.status, self.headers, known_length, self.is_head, keep, self.context
        )
        self.hsize = len(head)
        return head

    def send(self, data: bytes, known_length: Optional[int] = None) -> None:
        """Sends the head first if it is not out yet, then ``data`` framed; more than the
        announced length is cut (and logged). ``known_length``: see Protocol.response_head.

        :raises ClientError: the client went away or stalled past socket-timeout
        """
        out = b""
        if not self.sent:
            out = self._head(known_length)
            self.sent = True
        if data and not self.is_head:
            length = self.length
            if length is not None:
                room = length - self.written
                if len(data) > room:
                    self.owner.log.warn("%s %s: the app sent more than its Content-Length (%d); truncated" % (self.method, self.uri, length))
                    data = data[:room]
            self.written += len(data)
            if self.frame is not None:
                out += self.frame(data)
            else:
                out = out + data if out else data
            if length is not None and self.written >= length and callable(self.end):
                # The body is complete: its end goes in the same send (FastCGI's END_REQUEST).
                # Sent apart, a front end may answer its client before reading it, and nginx
                # then drops the kept connection when that client closes (measured).
                out += self.end(self.conn)
                self.end = b""
        if out:
            self._send_all(out)

    def send_file(self, filelike: Any, offset: int, count: int) -> None:
        """The body from ``count`` bytes of a regular file at ``offset``: with sendfile(2)
        unless the protocol frames the body (it then goes in pieces through ``send``)."""
        self.send(b"", count)
        if self.is_head or not count:
            return
        length = self.length
        n = count if length is None else min(count, length - self.written)
        if self.frame is not None:  # not HTTP's case: a file's length is known, so it is not chunked
            filelike.seek(offset)
            while n > 0:
                data = filelike.read(min(n, RECV_SIZE))
                if not data:
                    break
                n -= len(data)
                self.send(data)
            return
        try:
            sent = self.conn.sock.sendfile(filelike, offset, n)
        except (BlockingIOError, socket.timeout):
            raise ClientError("timed out writing to the client")
        except OSError as err:
            raise ClientError(str(err))
        self.tx += sent
        self.written += sent

    def finish(self) -> None:
        """After the app's last piece: the end of a framed body; a body shorter than its
        Content-Length is logged and closes the connection."""
        end = self.end
        if callable(end):
            end = end(self.conn)  # FastCGI: END_REQUEST, after the rest of the body and answers to what arrived meanwhile
        if end:
            self._send_all(end)
        elif self.length is not None and self.written < self.length and not self.is_head:
            self.owner.log.warn(
                "%s %s: the app sent %d bytes of its Content-Length %d; connection closed"
                % (self.method, self.uri, self.written, self.length)
            )
            self.keep = False

    def send_error(self) -> None:
        """A plain 500 in place of the app's response, which must not have started; the
        connection closes after it, unless the protocol keeps it (FastCGI's
        ``FCGI_KEEP_CONN``: ``Protocol.keeps_after_error``). A client gone by then is not an
        error here."""
        self.status = "500 Internal Server Error"
        self.headers = [("Content-Type", "text/plain"), ("Content-Length", str(len(ERROR_500)))]
        self.keep = self.keep and self.conn.protocol.keeps_after_error
        try:
            head = self._head(None)
        except Exception:  # the protocol cannot frame even this: the fixed 500 (both protocols answer in HTTP)
            head = ERROR_500_HEAD
            self.hsize, self.hcount = len(head), 3
        self.sent = True
        body = b"" if self.is_head else ERROR_500 if self.frame is None else self.frame(ERROR_500)
        try:
            end = self.end(self.conn) if callable(self.end) else self.end
            self._send_all(head + body + end)
        except ClientError:
            pass


def check_headers(headers: list) -> None:
    """start_response's checks of the app's headers: (str, str) tuples, token names, not
    hop-by-hop, values without CR, LF or NUL. A list that passes is remembered (by value:
    equal tuples of equal strings) and not checked again.

    :raises TypeError: an item is not a (str, str) tuple
    :raises ValueError: a bad name, a hop-by-hop header, or a bad value
    """
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
    remember(GOOD_HEADERS, tuple(headers))


def run_app(app: Callable, environ: dict, response: Response, log: "Log") -> bool:
    """Calls the app with ``environ`` and sends what it returns through ``response``:
    a FileWrapper over a regular file with sendfile, a one-element list with its length,
    anything else piece by piece. The result's ``close()`` is always called. An exception
    from the app (its call, its iterable, its ``close()`` or the lookup of it, or the
    protocol framing its response) is logged with its traceback and answered 500 if
    nothing was sent yet, else the connection closes; a client that went away is one
    warning. Returns True when the app raised. What still escapes (a bug here) is the
    caller's to end: ``Worker.handle`` does the request's bookkeeping in any case."""
    result: Any = None
    failed: Optional[BaseException] = None
    client_gone: Optional[ClientError] = None
    try:
        result = app(environ, response.start_response)
        if type(result) is list and len(result) == 1 and type(result[0]) is bytes and response.status is not None:
            # The usual answer, a list of one bytes: its length is known (PEP 3333), and
            # head and body go in one write; a list has no close().
            chunk = result[0]
            result = None
            response.send(chunk, len(chunk))
            response.finish()
            return False
        wrapper_file = result.regular_file() if isinstance(result, FileWrapper) else None
        if wrapper_file is not None:
            if response.status is None:
                raise AssertionError("the app returned without calling start_response()")
            response.send_file(result.filelike, wrapper_file[1], wrapper_file[2])
        else:
            known: Optional[int] = None
            if type(result) in (list, tuple) and len(result) == 1:
                chunk = result[0]
                if isinstance(chunk, (bytes, bytearray)):
                    known = len(chunk)  # PEP 3333: a one-element list gives the length
            for chunk in result:
                if response.status is None:
                    raise AssertionError("the app yielded a body before calling start_response()")
                if type(chunk) is not bytes:
                    if isinstance(chunk, bytearray):
                        chunk = bytes(chunk)
                    else:
                        raise TypeError("the app yielded %s, not bytes (PEP 3333)" % type(chunk).__name__)
                if chunk:
                    response.send(chunk, known)
            if response.status is None:
                raise AssertionError("the app returned without calling start_response()")
            if not response.sent:
                response.send(b"", 0 if known is None else known)
        response.finish()
    except ClientError as err:
        client_gone = err
    except Exception as err:  # the app's: a 500 if we still can, and counted
        failed = err
    finally:
        try:
            close = getattr(result, "close", None)
            if close is not None:
                close()  # PEP 3333: always, whatever happened
        except ClientError as err:
            client_gone = client_gone or err
        except Exception as err:  # close() raised, or looking it up did (a property, a proxy)
            failed = failed or err
    if failed is not None:
        method, uri = response.method, response.uri
        log.error("exception in %s %s: %s: %s" % (method, uri, type(failed).__name__, exc_text(failed)), {"method": method, "uri": uri}, failed)
        if response.sent:
            response.keep = False  # cut short: only a close tells the client
        else:
            response.send_error()  # closes, unless the protocol keeps the connection after it
        failed = None  # drop the traceback's frames now
        app_failed = True
    else:
        app_failed = False
    if client_gone is not None:
        response.keep = False
        log.warn("%s %s: client %s went away: %s" % (response.method, response.uri, response.conn.peer_text(), exc_text(client_gone)))
    return app_failed
