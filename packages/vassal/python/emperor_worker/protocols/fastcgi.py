"""FastCGI on ``fastcgi-socket``: what nginx's ``fastcgi_pass``, lighttpd's ``fastcgi.server``
and Apache's mod_proxy_fcgi speak (FastCGI 1.0 spec; uWSGI proto/fastcgi.c).

A record is an 8-byte header (version 1, type, request id and content length big-endian,
padding length, a reserved byte), the content (0-65535 bytes) and the padding (0-255
bytes, skipped). A request is ``BEGIN_REQUEST`` (role, flags), a ``PARAMS`` stream of
name-value pairs ended by an empty record, then a ``STDIN`` stream ended by an empty
record (an authorizer gets none). The response is a CGI response (``Status:`` line, the
app's headers, the body) in ``STDOUT`` records of at most 65535 bytes, then an empty
``STDOUT`` and ``END_REQUEST``. One request at a time per connection (``FCGI_MPXS_CONNS``
0, as uWSGI, flup and PHP-FPM): a ``BEGIN_REQUEST`` for another id while one is in
flight is answered ``FCGI_CANT_MPX_CONN``; ``FCGI_GET_VALUES`` and unknown management
records are answered without the app; other roles get ``FCGI_UNKNOWN_ROLE``. With
``FCGI_KEEP_CONN`` the connection serves the next request, else it closes after
``END_REQUEST``. The app's errors go to the worker's log, never to ``FCGI_STDERR`` (as
uWSGI).

Sans-IO (see ``base.py``), with two additions the loop and the WSGI layer know: a
"reply" in place of a request (records answered without the app), and a response ``end``
computed when the response ends (what arrived meanwhile is answered first). The Node
worker's parser (packages/vassal/src/worker/node/protocols/fastcgi-records.ts) reads the
same way and logs the same reasons; change them together.
"""

from __future__ import annotations

import struct
from typing import Any, Optional

from .base import NO_BODY_STATUS, Protocol, ProtocolError, scan_headers

HEADER = struct.Struct(">BBHHBx")
HEADER_LEN = 8
MAX_CONTENT = 0xFFFF

BEGIN_REQUEST, ABORT_REQUEST, END_REQUEST, PARAMS, STDIN, STDOUT = 1, 2, 3, 4, 5, 6
GET_VALUES, GET_VALUES_RESULT, UNKNOWN_TYPE = 9, 10, 11
RESPONDER, AUTHORIZER = 1, 2
KEEP_CONN = 1
REQUEST_COMPLETE, CANT_MPX_CONN, UNKNOWN_ROLE = 0, 1, 3
#: The roles served, with the name ``FCGI_ROLE`` carries in the environ (flup's key).
ROLES = {RESPONDER: "RESPONDER", AUTHORIZER: "AUTHORIZER"}
# Bytes of other records a request head may have around it before it is refused.
HEAD_SLACK = 65536
# Unread body a response's end reads and drops before END_REQUEST (wsgi.py's MAX_DRAIN_BYTES); past it the rest is skipped later.
DRAIN_BYTES = 1 << 20


def record(rtype: int, request_id: int, content: bytes = b"") -> bytes:
    """One record, without padding (``content`` at most 65535 bytes)."""
    return HEADER.pack(1, rtype, request_id, len(content), 0) + content


def stdout(request_id: int, data: bytes) -> bytes:
    """``data`` as STDOUT records of at most 65535 bytes (nothing for no data)."""
    size = len(data)
    if size <= MAX_CONTENT:
        return HEADER.pack(1, STDOUT, request_id, size, 0) + data if size else b""
    return b"".join(record(STDOUT, request_id, data[i:i + MAX_CONTENT]) for i in range(0, size, MAX_CONTENT))


def end_request(request_id: int, protocol_status: int = REQUEST_COMPLETE, app_status: int = 0) -> bytes:
    """``FCGI_END_REQUEST``."""
    return record(END_REQUEST, request_id, struct.pack(">IB3x", app_status, protocol_status))


def response_end(request_id: int) -> bytes:
    """The empty STDOUT that ends the stream, then END_REQUEST (complete, appStatus 0), as uWSGI sends them."""
    return HEADER.pack(1, STDOUT, request_id, 0, 0) + end_request(request_id)


def pairs(block: bytes) -> dict:
    """The name-value pairs of a PARAMS stream or a GET_VALUES record (spec 3.4), latin-1
    byte for byte; a repeated name keeps its last value.

    :raises ProtocolError: a length runs past the end, or a name is empty
    """
    text = block.decode("latin-1")
    size = len(block)
    out: dict = {}
    pos = 0
    while pos < size:
        start = pos
        try:
            n = block[pos]
            if n < 128:
                pos += 1
            else:
                n = (n & 0x7F) << 24 | block[pos + 1] << 16 | block[pos + 2] << 8 | block[pos + 3]
                pos += 4
            v = block[pos]
            if v < 128:
                pos += 1
            else:
                v = (v & 0x7F) << 24 | block[pos + 1] << 16 | block[pos + 2] << 8 | block[pos + 3]
                pos += 4
        except IndexError:
            raise ProtocolError("malformed name-value pair at byte %d (a length runs past the end)" % start)
        if not n:
            raise ProtocolError("malformed name-value pair at byte %d (an empty name)" % start)
        if pos + n + v > size:
            raise ProtocolError(
                "malformed name-value pair at byte %d (name of %d and value of %d bytes run past the end)" % (start, n, v)
            )
        out[text[pos:pos + n]] = text[pos + n:pos + n + v]
        pos += n + v
    return out


def encode_pairs(items) -> bytes:
    """Name-value pairs (spec 3.4) of ``(name, value)`` byte strings."""
    out = []
    for name, value in items:
        for b in (name, value):
            out.append(bytes([len(b)]) if len(b) < 128 else struct.pack(">I", len(b) | 0x80000000))
        out.append(name)
        out.append(value)
    return b"".join(out)


class Context:
    """One request's state between the parser, the body reader and the response: its id,
    the connection's buffer (to answer what arrives before its END_REQUEST), replies not
    sent yet, and whether the request is over."""

    __slots__ = ("protocol", "request_id", "buf", "pending", "reader", "ended")

    def __init__(self, protocol: "FastcgiProtocol", request_id: int, buf: bytearray, pending: bytes) -> None:
        self.protocol = protocol
        self.request_id = request_id
        self.buf = buf
        self.pending = pending
        self.reader: Optional[StdinReader] = None
        self.ended = False

    def take(self) -> bytes:
        """Replies owed to the front end (management answers, CANT_MPX_CONN), to go out before the next record."""
        out = self.pending
        if out:
            self.pending = b""
        return out

    def frame(self, data: bytes) -> bytes:
        """One piece of the body as STDOUT records, after any reply owed."""
        pending = self.pending
        if pending:
            self.pending = b""
            return pending + stdout(self.request_id, data)
        return stdout(self.request_id, data)

    def end(self, conn: Any = None) -> bytes:
        """The end of the response: replies owed, then answers to the whole records
        already received behind this request (management records, BEGIN_REQUESTs of other
        ids: CANT_MPX_CONN; the rest of this request's body and other records are
        dropped: the request becomes inactive), then the end of STDOUT and END_REQUEST.
        The buffer is at a record boundary (the body reader takes whole records). Reading
        the body after this gives nothing.

        First the rest of the body is read and dropped, up to ``DRAIN_BYTES``, as uWSGI
        does before its END_REQUEST (proto/fastcgi.c): a front end still sending it to a
        connection about to close would get it reset, and maybe lose the response.
        ``conn`` is what to read more from (its ``recv_more()``, the way ``wsgi.Input``
        reads), or None to read nothing.

        :raises ClientError: from ``conn.recv_more()``: the front end went away or stalled
        """
        reader = self.reader
        if conn is not None and reader is not None and not reader.done and not self.ended:
            reader.rest = b""
            dropped = 0
            while dropped <= DRAIN_BYTES:
                try:
                    data = reader.read(self.buf, MAX_CONTENT)
                except ProtocolError:
                    break  # aborted: it ends here anyway
                if data is None:
                    if not conn.recv_more():
                        break
                elif not data:
                    break
                else:
                    dropped += len(data)
        self.ended = True
        return self.take() + self.protocol.answer_behind(self.buf, self.request_id) + response_end(self.request_id)


class StdinReader:
    """The request's STDIN stream, decoded from whole records at the front of the
    connection's buffer (the interface of ``base.LengthReader``), so the buffer is always
    at a record boundary for whoever reads it next. Records of other requests met on
    the way are answered (queued on the context) or dropped; ``FCGI_ABORT_REQUEST`` for
    this one ends the request."""

    __slots__ = ("ctx", "rest", "done")

    eof_reason = "the front end closed the connection in the middle of the request body"

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.rest = b""  # the part of a record's content not handed out yet
        self.done = False

    def read(self, buf: bytearray, want: int) -> Optional[bytes]:
        if self.ctx.ended:
            return b""  # END_REQUEST is out: what is left of the body is dropped
        rest = self.rest
        if rest:
            n = want if want > 0 else 1
            self.rest = rest[n:]
            return rest[:n]
        if self.done:
            return b""
        ctx = self.ctx
        rid = ctx.request_id
        while True:
            have = len(buf)
            if have < HEADER_LEN:
                return None
            version, rtype, request_id, length, padding = HEADER.unpack_from(buf)
            if version != 1:
                raise ProtocolError("unsupported FastCGI version %d (type %d, at byte 0; only 1 exists)" % (version, rtype))
            total = HEADER_LEN + length + padding
            if have < total:
                return None
            content = bytes(buf[HEADER_LEN:HEADER_LEN + length])
            del buf[:total]
            if request_id == rid:
                if rtype == STDIN:
                    if not length:
                        self.done = True
                        return b""
                    n = want if want > 0 else 1
                    if n < length:
                        self.rest = content[n:]
                        return content[:n]
                    return content
                if rtype == ABORT_REQUEST:
                    raise ProtocolError("the front end aborted the request (FCGI_ABORT_REQUEST)")
                if rtype == BEGIN_REQUEST:
                    raise ProtocolError("a second BEGIN_REQUEST for request %d, which is active" % rid)
            else:
                ctx.pending += ctx.protocol.answer_other(rtype, request_id, content)


class FastcgiProtocol(Protocol):
    """``fastcgi-socket``: responder and authorizer roles, FCGI_KEEP_CONN, no multiplexing.

    FCGI_GET_VALUES is answered with the vassal's ``FCGI_MAX_CONNS`` and ``FCGI_MAX_REQS``
    from the spec's ``fastcgi`` (packages/vassal/src/shared/worker-spec.ts; see ``configure``).
    """

    name = "fastcgi"
    # END_REQUEST ends the request at a record boundary (``Context.end``). Closing a kept
    # connection after the 500 instead raced nginx reusing it from its cache: it logged
    # "Connection reset by peer" and retried the next request on a new connection.
    keeps_after_error = True

    def __init__(self, buffer_size: int, server: tuple, date) -> None:
        super().__init__(buffer_size, server, date)
        self.values = {"FCGI_MAX_CONNS": "1", "FCGI_MAX_REQS": "1", "FCGI_MPXS_CONNS": "0"}

    def configure(self, spec: dict) -> None:
        """``FCGI_MAX_CONNS`` and ``FCGI_MAX_REQS`` from the spec's ``fastcgi`` (the vassal's capacity)."""
        values = spec.get("fastcgi") or {}
        self.values["FCGI_MAX_CONNS"] = str(int(values.get("maxConns", 1)))
        self.values["FCGI_MAX_REQS"] = str(int(values.get("maxReqs", 1)))

    # -- records answered without the app --------------------------------------------

    def management(self, rtype: int, content: bytes) -> bytes:
        """The answer to a management record (request id 0): GET_VALUES_RESULT with the
        names it knows (spec 4.1), else UNKNOWN_TYPE (4.2)."""
        if rtype != GET_VALUES:
            return record(UNKNOWN_TYPE, 0, bytes([rtype]) + b"\0" * 7)
        try:
            asked = pairs(content)
        except ProtocolError:
            asked = {}
        known = self.values
        return record(GET_VALUES_RESULT, 0, encode_pairs(
            (k.encode("latin-1"), known[k].encode()) for k in asked if k in known
        ))

    def answer_other(self, rtype: int, request_id: int, content: bytes) -> bytes:
        """A record of another request id than the active one: management records are
        answered, a BEGIN_REQUEST is refused CANT_MPX_CONN, the rest is dropped (spec 3.3:
        records of inactive requests are ignored)."""
        if request_id == 0:
            return self.management(rtype, content)
        if rtype == BEGIN_REQUEST:
            return end_request(request_id, CANT_MPX_CONN)
        return b""

    def answer_behind(self, buf: bytearray, request_id: int) -> bytes:
        """Answers the whole records in ``buf`` (received while request ``request_id`` was
        in flight) and takes them out, up to a partial record or the next BEGIN_REQUEST of
        the same id (the front end's next request on a kept connection)."""
        out = b""
        while len(buf) >= HEADER_LEN:
            version, rtype, rid, length, padding = HEADER.unpack_from(buf)
            total = HEADER_LEN + length + padding
            if version != 1 or len(buf) < total or (rid == request_id and rtype == BEGIN_REQUEST):
                break  # the next read_request refuses a bad version, or serves that request
            content = bytes(buf[HEADER_LEN:HEADER_LEN + length])
            del buf[:total]
            if rid != request_id:
                out += self.answer_other(rtype, rid, content)
        return out

    # -- requests ----------------------------------------------------------------------

    def scan(self, buf: bytearray) -> Optional[int]:
        """Where the request head at the front of ``buf`` ends (just past its empty PARAMS
        record), or 0 when the front is a record to answer or refuse on its own, or None
        while more bytes are needed. Drops leading records of no request (inactive ids:
        the rest of a finished request's body)."""
        while True:
            have = len(buf)
            if have < HEADER_LEN:
                return None
            version, rtype, request_id, length, padding = HEADER.unpack_from(buf)
            if version != 1:
                return 0
            total = HEADER_LEN + length + padding
            if request_id == 0 or rtype == BEGIN_REQUEST:
                break
            if have < total:
                return None
            del buf[:total]  # a record of no active request: ignored
        if request_id == 0:
            return 0 if have >= total else None
        if length != 8:
            return 0
        if have < total:
            return None
        if buf[HEADER_LEN] << 8 | buf[HEADER_LEN + 1] not in ROLES:
            return 0
        rid = request_id
        pos = total
        params = 0
        while True:
            if have - pos < HEADER_LEN:
                return None
            version, rtype, request_id, length, padding = HEADER.unpack_from(buf, pos)
            if version != 1:
                return 0
            if request_id == rid and rtype == PARAMS:
                params += length
                if params > self.buffer_size:
                    return 0
            end = pos + HEADER_LEN + length + padding
            if have < end:
                return None
            pos = end
            if request_id == rid and rtype == PARAMS and not length:
                return pos
            if pos - params > HEAD_SLACK:
                return 0

    def head_ready(self, buf: bytearray) -> bool:
        return self.scan(buf) is not None

    def read_request(self, buf: bytearray, eof: bool, peer: Any) -> Optional[tuple]:
        """See ``Protocol.read_request``. Besides a request, returns a reply
        ``(None, bytes, None, keep, None)`` for records answered without the app
        (management records, a refused role). The request's context is a ``Context``; a
        head cut short by the front end closing is refused."""
        where = self.scan(buf)
        if where is None:
            if eof and buf:
                raise ProtocolError("the front end closed the connection in the middle of a record or request head (%d bytes)" % len(buf))
            return None
        version, rtype, rid, length, padding = HEADER.unpack_from(buf)
        if version != 1:
            raise ProtocolError("unsupported FastCGI version %d (type %d, at byte 0; only 1 exists)" % (version, rtype))
        total = HEADER_LEN + length + padding
        if rid == 0:
            content = bytes(buf[HEADER_LEN:HEADER_LEN + length])
            del buf[:total]
            return None, self.management(rtype, content), None, True, None
        if length != 8:
            raise ProtocolError("BEGIN_REQUEST of %d bytes for request %d (8 expected)" % (length, rid))
        role = buf[HEADER_LEN] << 8 | buf[HEADER_LEN + 1]
        keep = bool(buf[HEADER_LEN + 2] & KEEP_CONN)
        if role not in ROLES:
            del buf[:total]
            return None, end_request(rid, UNKNOWN_ROLE), None, keep, None
        if not where:
            raise ProtocolError(self.head_error(buf, rid))
        block = []
        pending = b""
        pos = total
        while pos < where:
            _v, rtype, request_id, length, padding = HEADER.unpack_from(buf, pos)
            content = bytes(buf[pos + HEADER_LEN:pos + HEADER_LEN + length])
            pos += HEADER_LEN + length + padding
            if request_id == rid:
                if rtype == PARAMS:
                    block.append(content)
                elif rtype == BEGIN_REQUEST:
                    raise ProtocolError("a second BEGIN_REQUEST for request %d, which is active" % rid)
                elif rtype == STDIN:
                    raise ProtocolError("STDIN before the end of PARAMS for request %d" % rid)
            else:
                pending += self.answer_other(rtype, request_id, content)
        del buf[:where]
        try:
            environ = pairs(b"".join(block))
        except ProtocolError as err:
            raise ProtocolError("request %d: %s" % (rid, err.reason))
        environ["FCGI_ROLE"] = ROLES[role]
        environ.setdefault("SCRIPT_NAME", "")
        environ.setdefault("PATH_INFO", "")
        environ.setdefault("QUERY_STRING", "")
        environ.setdefault("REQUEST_METHOD", "GET")
        environ.setdefault("SERVER_PROTOCOL", "HTTP/1.1")
        https = environ.get("HTTPS", "").lower()
        environ["wsgi.url_scheme"] = "https" if https in ("on", "1") or environ.get("REQUEST_SCHEME", "").lower() == "https" else "http"
        ctx = Context(self, rid, buf, pending)
        if role == AUTHORIZER:
            return environ, None, None, keep, ctx  # an authorizer gets no body (spec 6.3)
        reader = StdinReader(ctx)
        ctx.reader = reader
        return environ, reader, None, keep, ctx

    def head_error(self, buf: bytearray, rid: int) -> str:
        """Why the head at the front of ``buf`` is refused (``scan`` said so)."""
        pos = HEADER_LEN + 8
        params = 0
        while len(buf) - pos >= HEADER_LEN:
            version, rtype, request_id, length, padding = HEADER.unpack_from(buf, pos)
            if version != 1:
                return "unsupported FastCGI version %d (type %d, at byte %d; only 1 exists)" % (version, rtype, pos)
            if request_id == rid and rtype == PARAMS:
                params += length
                if params > self.buffer_size:
                    return "params of request %d larger than buffer-size (%d bytes)" % (rid, self.buffer_size)
            pos += HEADER_LEN + length + padding
        return "request %d: more than %d bytes of other records around its head" % (rid, HEAD_SLACK)

    def response_head(
        self, status: str, headers: list, known_length: Optional[int], is_head: bool, keep: bool, ctx: Any
    ) -> tuple:
        """The CGI response head (``Status:``, the app's headers, no Connection: FastCGI
        has no hop to describe) in STDOUT records; the body framed in STDOUT records; the
        end computed when the response ends (``Context.end``)."""
        code = int(status[:3])
        lines, length, _close, _has_date = scan_headers(headers, True)
        if length is None and known_length is not None and not (code < 200 or code in NO_BODY_STATUS):
            length = known_length
            lines.append("Content-Length: %d\r\n" % length)
        text = ("Status: %s\r\n" % status + "".join(lines) + "\r\n").encode("latin-1")
        return ctx.take() + stdout(ctx.request_id, text), length, ctx.frame, ctx.end, keep, len(lines)

    def refusal(self, peer: str, reason: str, timed_out: bool) -> tuple:
        return "FastCGI from %s: %s; connection closed" % (peer, reason), {"peer": peer}
