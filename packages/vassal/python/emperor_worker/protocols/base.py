"""What the serving loop needs from a wire protocol, and what the protocols share.

A protocol turns the bytes a client sent into requests and a response into the bytes to
send back, without a socket, a clock or the app inside (sans-IO, in the manner of h11's
``_readers.py`` and ``_writers.py``): the loop (``server.py``) reads into a connection's
buffer and asks the protocol whether a request head is there and what it says; the WSGI
layer (``wsgi.py``) asks it how to frame the response. One instance serves every
connection of one listening socket and keeps no per-connection state (the uwsgi protocol
keeps the response heads it built): a connection's state is its buffer, a request's is
what ``read_request`` returned.

The values passed between them are plain tuples, not objects, because they are made once
per request on the hot path:

* a request: ``(environ, body, interim, keep_alive, context)``

  - ``environ``: the CGI variables (str, one character per byte), no ``wsgi.*`` keys yet;
  - ``body``: a body reader (see ``LengthReader``), or None when the request has no body;
  - ``interim``: bytes to send before the first read of the body (``100 Continue``), or None;
  - ``keep_alive``: whether the client lets the connection serve another request;
  - ``context``: what the protocol needs back to frame this request's response.

* a response head: ``(head, length, frame, end, keep, count)``

  - ``head``: the bytes of the status line and headers;
  - ``length``: the body length the head announced, or None;
  - ``frame``: None to send body bytes as they are, else a function framing one piece;
  - ``end``: bytes to send after the body (the last chunk), maybe empty; or a function
    of the connection returning them, called when the response ends (FastCGI reads the
    rest of the body and answers what arrived meanwhile; it may raise ClientError);
  - ``keep``: whether the connection may serve another request after this response;
  - ``count``: the number of header lines (the request log's "headers").

* a reply, in place of a request: ``(None, data, None, keep, None)``: input the protocol
  answers without the app (FastCGI's management records); ``data`` is sent and the
  connection stays open when ``keep``.

To add a protocol: a module in this package with a ``Protocol`` subclass, named in
``PROTOCOLS`` (``protocols/__init__.py``) under the name the master gives its sockets
(packages/vassal/src/shared/worker-spec.ts), as ``fastcgi.py`` is.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

# The most body bytes one read takes from a connection's buffer.
MAX_TAKE = 256 * 1024
# Responses to these have no body, whatever the app says (RFC 9110 6.4.1).
NO_BODY_STATUS = frozenset([204, 304])


class ProtocolError(Exception):
    """Input the protocol refuses.

    ``reason`` goes into one log line (the protocol's ``refusal`` words it); ``response``
    is sent before the connection closes (empty: nothing is sent).
    """

    def __init__(self, reason: str, response: bytes = b"") -> None:
        super().__init__(reason)
        self.reason = reason
        self.response = response


class Protocol:
    """One wire protocol, for the connections of one listening socket.

    ``buffer_size`` is uWSGI's ``buffer-size``: the largest request head (HTTP) or
    variable block (uwsgi) accepted, in bytes. ``server`` is the listening socket's
    ``(SERVER_NAME, SERVER_PORT, unix path)``. ``date`` returns the value of an HTTP
    Date header for now (``http.date_clock()``; tests pass a fixed one): the clock,
    injected, for the protocols that write one.
    """

    #: The name the master gives the socket's protocol in the worker spec.
    name = ""
    #: Sent when a request head does not come within socket-timeout (empty: nothing).
    timeout_response = b""
    #: A kept connection stays open after the worker's own 500 (an app that failed before
    #: its response): the protocol's framing ends the request cleanly, and the front end
    #: has no header to learn of a close (FastCGI). HTTP says ``Connection: close`` instead.
    keeps_after_error = False

    def __init__(self, buffer_size: int, server: tuple, date: Callable[[], str]) -> None:
        self.buffer_size = buffer_size
        self.server = server
        self.date = date

    def configure(self, spec: dict) -> None:
        """Reads what the protocol needs from the worker spec (``EMPEROR_WORKER``); most need nothing."""

    def head_ready(self, buf: bytearray) -> bool:
        """Whether ``buf`` holds a whole request head, or enough of one to refuse it (or a
        message the protocol answers itself, see the module's doc): the
        loop starts a request only then, so a slow sender holds a connection, not the
        worker. May drop leading bytes the protocol ignores."""
        raise NotImplementedError

    def read_request(self, buf: bytearray, eof: bool, peer: Any) -> Optional[tuple]:
        """The request at the start of ``buf``, its head taken out of ``buf`` (the body,
        and anything pipelined after it, stay). None when ``buf`` holds no whole head:
        more bytes are needed, or at ``eof`` (the client closed its side) there is no
        request. ``peer`` is the client's address as accept() gave it.

        :raises ProtocolError: the head is malformed or too large, or it was cut short by
            the client closing (when the protocol reports that)
        """
        raise NotImplementedError

    def response_head(
        self, status: str, headers: list, known_length: Optional[int], is_head: bool, keep: bool, context: Any
    ) -> tuple:
        """The head of the response (see the module's doc for the tuple), from the app's
        ``status`` and ``headers`` (already checked by start_response). ``known_length`` is
        the body's length when the server knows it (a one-element list, a file), else None;
        ``is_head``: the request was HEAD; ``keep``: the connection may be reused as far as
        the request and the worker are concerned; ``context``: from ``read_request``."""
        raise NotImplementedError

    def refusal(self, peer: str, reason: str, timed_out: bool) -> tuple:
        """``(message, fields)`` of the one log line (level warn) for a refused request:
        ``reason`` from a ProtocolError, or a head that did not come in time (``timed_out``)."""
        raise NotImplementedError


def scan_headers(headers: list, drop_connection: bool) -> tuple:
    """The app's headers as lines, and what the framing needs from them:
    ``(lines, content_length or None, connection_close, has_date)``. Connection headers
    are left out of ``lines`` when ``drop_connection`` (HTTP: the server decides them)."""
    lines = []
    length = None
    close = False
    has_date = False
    for name, value in headers:
        lname = name.lower()
        if lname == "content-length":
            digits = value.strip()
            length = int(digits) if digits.isascii() and digits.isdigit() else None
        elif lname == "connection":
            if "close" in value.lower():
                close = True
            if drop_connection:
                continue
        elif lname == "date":
            has_date = True
        lines.append("%s: %s\r\n" % (name, value))
    return lines, length, close, has_date


class LengthReader:
    """A body of ``length`` bytes (Content-Length), taken from the front of a buffer.

    Body readers share one interface, so the WSGI input reads any protocol's body:
    ``read(buf, want)`` takes up to ``want`` body bytes out of ``buf`` and returns them,
    b"" once the body is over, or None when ``buf`` holds none yet (read more, then call
    again). ``eof_reason`` says what is wrong when the client closes while a read waits
    for more.
    """

    __slots__ = ("remaining",)

    eof_reason = "the client closed the connection in the middle of the request body"

    def __init__(self, length: int) -> None:
        self.remaining = length

    def read(self, buf: bytearray, want: int) -> Optional[bytes]:
        remaining = self.remaining
        if not remaining:
            return b""
        if not buf:
            return None
        n = min(remaining, want if want > 1 else 1, MAX_TAKE)
        data = bytes(buf[:n])
        del buf[:n]
        self.remaining = remaining - len(data)
        return data


#: A function framing one piece of a response body, as ``response_head`` returns it.
Framer = Callable[[bytes], bytes]
